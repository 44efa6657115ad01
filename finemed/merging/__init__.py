"""finemed.merging"""
