"""Evaluation: bits per byte, QA (EM/F1/ROUGE-L), MCQ, pairwise judging and win-rates, failure modes."""
