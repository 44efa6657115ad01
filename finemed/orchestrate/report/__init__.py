"""Reporting: tables and plots from the JSON each stage writes (never recomputed)."""
