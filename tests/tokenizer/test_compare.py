"""The tokenizer.compare stage end to end on a tiny sweep, through the stage runner."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finemed.core.stages import get, run_stage
from finemed.tokenizer.compare import CompareConfig, CompareResult
from finemed.tokenizer.cost import flops_per_token, preset

LANGS = ["eng_Latn", "deu_Latn", "fra_Latn"]
KEYS = {"fertility", "parity", "parity_sum", "continued_words", "bytes_per_token"}


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage")
    cfg = CompareConfig.model_validate({
        "sweep": {"algorithms": ["bpe"], "libraries": ["hf", "sp"], "vocab_sizes": [600, 1200],
                  "corpora": [
                      {"name": "EN", "total_bytes": 60_000,
                       "languages": {"eng_Latn": {"sources": ["builtin:sib200.eng_Latn", "builtin:xquad.en"]}}},
                      {"name": "MULTI", "total_bytes": 60_000, "languages": {
                          lang: {"sources": [f"builtin:sib200.{lang}"]} for lang in LANGS}}]},
        "tokenizers": ["gpt2"], "langs": LANGS, "splits": ["dev"], "findings": ["EN", "MULTI"],
        "costs": [{"mix": {lang: 1 for lang in LANGS}, "model": "2.6b", "tokenizer": "EN-BPE-HF-1.2",
                   "baseline": "MULTI-BPE-HF-1.2"}],
    })
    outcome = run_stage("tokenizer.compare", cfg, out)
    return CompareResult.model_validate(outcome.result), out


def test_registered_with_key_metric():
    sdef = get("tokenizer.compare")
    assert sdef.config is CompareConfig and sdef.metric == "extra_cost"
    assert {get(k).module for k in ("tokenizer.train", "tokenizer.eval", "tokenizer.cost")} == {
        "finemed.tokenizer.sweep", "finemed.tokenizer.evaluate", "finemed.tokenizer.cost"}


def test_stage_modules_do_not_import_torch():
    code = ("import sys, finemed.tokenizer.cli, finemed.tokenizer.compare, finemed.tokenizer.sweep, "
            "finemed.tokenizer.evaluate, finemed.tokenizer.cost; print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_stage_outputs(stage_run):
    result, out = stage_run
    for f in ("tokenizer_metrics.json", "tokenizer_metrics.csv", "details.json", "fertility_vs_vocab.png",
              "parity.png", "cost.json", "cost_0.md", "cost_0.png", "findings.md", "metrics.json", "manifest.json"):
        assert (out / f).is_file(), f
    assert (out / "fertility_vs_vocab.png").read_bytes()[:4] == b"\x89PNG"
    table = json.loads((out / "tokenizer_metrics.json").read_text())
    assert set(table) == {"EN-BPE-HF-0.6", "EN-BPE-HF-1.2", "EN-BPE-SP-0.6", "EN-BPE-SP-1.2", "MULTI-BPE-HF-0.6",
                          "MULTI-BPE-HF-1.2", "MULTI-BPE-SP-0.6", "MULTI-BPE-SP-1.2", "gpt2"}
    for per in table.values():
        assert set(per) == set(LANGS) and all(set(m) == KEYS for m in per.values())
    assert len((out / "tokenizer_metrics.csv").read_text().splitlines()) == 1 + 9 * 3
    # metrics.json is the stage Result (written by the runner), not the eval table
    assert json.loads((out / "metrics.json").read_text()) == json.loads(result.model_dump_json())
    assert not list((out / "tokenizers").glob(".lines-*"))  # the streamed training lines are cleaned up


def test_stage_extra_cost_is_the_formula(stage_run):
    result, out = stage_run
    m = json.loads((out / "tokenizer_metrics.json").read_text())
    shape = preset("2.6b")
    fpt = flops_per_token(shape, 1200)
    en = sum(m["EN-BPE-HF-1.2"][lang]["fertility"] for lang in LANGS) / 3 * fpt
    multi = sum(m["MULTI-BPE-HF-1.2"][lang]["fertility"] for lang in LANGS) / 3 * fpt
    assert result.extra_cost_fraction == pytest.approx(en / multi - 1)
    assert result.extra_cost.startswith(f"{100 * (en / multi - 1):+.1f}% EN-BPE-HF-1.2 vs MULTI-BPE-HF-1.2")
    # the paper's direction: English-only costs more on a multilingual mix
    assert result.extra_cost_fraction > 0.05
    cost = json.loads((out / "cost.json").read_text())
    assert cost[0]["extra"] == pytest.approx(result.extra_cost_fraction) and cost[0]["baseline"] == "MULTI-BPE-HF-1.2"


def test_stage_findings(stage_run):
    result, _ = stage_run
    rows = result.findings["en_only_vs_multi"]
    assert len(rows) == 2 * 2 * 2  # (hf, sp) × (600, 1200) × (deu, fra)
    assert result.findings["en_only_higher_everywhere"] is True


def test_stage_cached_on_rerun(stage_run):
    result, out = stage_run
    cfg = CompareConfig(tokenizers=["gpt2"], langs=LANGS, splits=["dev"])
    other = out.parent / "gpt2-only"
    first = run_stage("tokenizer.compare", cfg, other)
    again = run_stage("tokenizer.compare", cfg, other)
    assert (first.status, again.status) == ("complete", "cached") and again.result == first.result
    assert first.result["extra_cost"] is None
    assert first.result["fertility"]["gpt2"] == result.fertility["gpt2"]
