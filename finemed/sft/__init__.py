"""Supervised fine-tuning: the ``train.sft`` stage (TRL SFTTrainer, optional LoRA) and its QA/instruction data."""
