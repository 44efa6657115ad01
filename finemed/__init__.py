"""finemed: compact, specialised language models for a non-English domain, end to end."""

__version__ = "0.1.0"
