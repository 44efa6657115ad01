"""Shared fixtures for the CPT tests: a tiny HF model dir (seconds to train) and a small text corpus."""

from __future__ import annotations

import json
import os

import pytest

for _v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_v, "1")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from finemed.models.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", num_layers=2, hidden_size=32)


@pytest.fixture(scope="session")
def med_jsonl(tmp_path_factory):
    """Real German medical text (GraSCCo letters) as a jsonl corpus."""
    from finemed.data.loaders import load_grascco

    path = tmp_path_factory.mktemp("corpus") / "med.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for d in load_grascco()[:16]:
            fh.write(json.dumps({"text": d.text[:1500]}, ensure_ascii=False) + "\n")
    return path
