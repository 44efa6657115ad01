"""Training: data packing and mixing, continual pre-training, knowledge distillation."""
