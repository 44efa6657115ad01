"""The corpus commands are thin wrappers over their stages: config + flags + --set, metrics.json, cache."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from finemed.corpus.cli import app

MED = ("Die Patientin wurde mit Verdacht auf Pneumonie aufgenommen; Röntgen-Thorax und CRP bestätigten "
       "den Befund, eine Antibiose wurde begonnen. ") * 3


def test_sample_input_command_writes_shards_and_metrics(tmp_path):
    out = tmp_path / "dev"
    res = CliRunner().invoke(app, ["sample-input", "--out", str(out), "--shards", "2", "--set", "n_fortune_docs=20",
                                   "--set", "non_german_per_lang=1"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    rows = sum(pq.read_metadata(f).num_rows for f in (out / "data").glob("*.parquet"))
    assert metrics["shards"] == 2 and metrics["docs"] == rows == metrics["medical"] + metrics["german_other"] + \
        metrics["non_german"]
    assert json.loads((out / "manifest.json").read_text())["kind"] == "corpus.sample_input"


def test_build_command_prints_the_funnel_and_caches(tmp_path):
    (tmp_path / "in").mkdir()
    docs = [{"id": f"d{i}", "text": MED + f" Zimmer {i}."} for i in range(3)] + [{"id": "big", "text": "x " * 600}]
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    (tmp_path / "c.yaml").write_text("pipeline:\n  steps: [length, pii]\n  max_doc_chars: 1000\ntokenizer: null\n")
    args = ["build", "-c", str(tmp_path / "c.yaml"), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "run"),
            "--workers", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "input docs: 4" in first.output and "too_long=1" in first.output and "kept=3" in first.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["kept"] == 3
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "kept=3" in again.output
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] in ("complete", "cached")
