"""The ground floor: the stage contract and the policies and shared primitives every stage uses.

Config, artifacts, logs, runtime, texts, llm, launch, QA prompts and metrics, lm-eval running and the HF Trainer
setup that CPT, KD and SFT share. Imports no stage package.
"""
