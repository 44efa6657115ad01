"""annotate: a real local HF model labels sampled docs through finemed.llm; a rerun is fully cached."""

from __future__ import annotations

import json

import numpy as np

from finemed.corpus.annotate import AnnotateConfig, annotate, bootstrap_prf, parse_verdict


def test_parse_and_bootstrap():
    assert [parse_verdict(t) for t in ("Ja.", "Nein", "yes, medical", "No", "vielleicht", None)] == [1, 0, 1, 0, None, None]
    r = bootstrap_prf(np.array([1, 1, 0, 0, 1, 0] * 5), np.array([1, 0, 0, 0, 1, 1] * 5))
    assert r["precision"]["value"] == round(2 / 3, 4) and r["precision"]["ci95"][0] <= 2 / 3 <= r["precision"]["ci95"][1]


def test_annotate_local_model_is_cached_on_rerun(small_dev, tmp_path):
    from finemed.models.tiny import save_tiny

    model_dir = save_tiny(tmp_path / "tiny")
    cfg = AnnotateConfig(input=str(small_dev), llm=f"local:{model_dir}", sample=6, max_tokens=3, label_field="medical")
    first = annotate(cfg, tmp_path / "a", cache_path=tmp_path / "cache.sqlite")
    assert first["sampled"] == 6 and first["llm_stats"]["cache_hits"] == 0
    assert first["labelled"] + sum(first["skipped"].values()) == 6  # every doc: a label or a counted reason
    second = annotate(cfg, tmp_path / "b", cache_path=tmp_path / "cache.sqlite")
    assert second["llm_stats"]["cache_hits"] == 6
    rows = [json.loads(x) for x in (tmp_path / "b" / "labels.jsonl").read_text().splitlines()]
    assert all(r["cached"] for r in rows) and len(rows) == 6
