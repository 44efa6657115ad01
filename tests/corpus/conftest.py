"""Shared fixtures: a small dev input (bundled texts) and a fastText classifier trained on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def small_dev(tmp_path_factory) -> Path:
    from finemed.corpus.sample_input import write_sample_input

    out = tmp_path_factory.mktemp("dev") / "input"
    write_sample_input(out, shards=4, n_fortune_docs=150, non_german_per_lang=3)
    return out


@pytest.fixture(scope="session")
def small_clf(small_dev, tmp_path_factory) -> Path:
    from finemed.corpus.train_classifier import TrainClassifierConfig, train

    out = tmp_path_factory.mktemp("clf")
    train(TrainClassifierConfig(input=str(small_dev), target_precision=0.9), out)
    return out
