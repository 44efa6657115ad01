"""End-to-end build on the local executor, the output format, and the stats."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from finemed.corpus.build import CorpusBuildConfig, run


def _ids(out_dir):
    return {r for f in sorted((out_dir / "output").glob("*.parquet"))
            for r in pq.read_table(f, columns=["id"]).column("id").to_pylist()}


def test_build_end_to_end(small_dev, small_clf, tmp_path):
    # one worker keeps the fast set fast; several workers are covered by the Ray test and the benchmark
    cfg = CorpusBuildConfig(input=str(small_dev), classifier=str(small_clf), executor={"workers": 1})
    res = run(cfg, tmp_path / "run")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    input_ids = {r for f in small_dev.glob("*.parquet")
                 for r in pq.read_table(f, columns=["id"]).column("id").to_pylist()}
    out_ids = _ids(tmp_path / "run")
    assert res.kept == len(out_ids) > 50
    assert out_ids <= input_ids  # input ids are kept
    assert stats["input_docs"] == len(input_ids)
    surv = stats["survival"]["per_class"]
    assert surv["non_german"]["kept"] == 0
    assert surv["medical"]["rate"] > 0.75  # classifier recall × dedup of near-duplicates
    assert surv["german_other"]["rate"] < 0.1
    assert surv["contaminated"]["in"] > 100 and surv["contaminated"]["kept"] == 0  # planted benchmark items go
    reasons = {k for b in stats["blocks"] for k in b.get("reasons", {})}
    assert "domain_below_threshold" in reasons and any(k.startswith("lang_") for k in reasons)
    assert stats["totals"]["words"] > 1000 and stats["dropped_samples"]
    assert (tmp_path / "run" / "funnel.png").stat().st_size > 1000
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "run" / "output" / "*.parquet"), split="train")
    assert len(ds) == res.kept
    assert {"text", "id", "url", "language", "domain_score", "pii_count"} <= set(ds.column_names)
    assert min(ds["domain_score"]) >= stats["domain_threshold"] - 1e-5  # scores are stored rounded to 5 places
    assert sum(ds["pii_count"]) > 0 and "[DATE]" in "".join(ds["text"])
