"""finemed.tokenizer"""
