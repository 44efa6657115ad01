"""finemed.corpus"""
