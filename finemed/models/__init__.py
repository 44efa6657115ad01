"""Model loading (safe by default), the embedded SmolLM2, tiny test models, student init."""
