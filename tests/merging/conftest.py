"""Tiny model pairs for merge tests: same architecture and tokenizer, different weights."""

from __future__ import annotations

import os

import pytest

for _v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_v, "1")


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    from finemed.models.tiny import save_tiny

    root = tmp_path_factory.mktemp("pair")
    return (save_tiny(root / "base", seed=0, num_layers=4, hidden_size=32),
            save_tiny(root / "cpt", seed=1, num_layers=4, hidden_size=32))
