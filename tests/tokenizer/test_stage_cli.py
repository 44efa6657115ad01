"""The tokenizer.compare stage end to end on a tiny sweep, and the CLI (schema, exit codes, one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finemed.tokenizer.cost import flops_per_token, preset
from finemed.tokenizer.stage import TokenizerStageConfig, run

LANGS = ["eng_Latn", "deu_Latn", "fra_Latn"]
KEYS = {"fertility", "parity", "parity_sum", "continued_words", "bytes_per_token"}


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage")
    cfg = TokenizerStageConfig.model_validate({
        "sweep": {"algorithms": ["bpe"], "libraries": ["hf", "sp"], "vocab_sizes": [600, 1200],
                  "corpora": [
                      {"name": "EN", "total_bytes": 60_000, "languages": {"eng_Latn": {"sources": ["sib200:eng_Latn", "xquad:en"]}}},
                      {"name": "MULTI", "total_bytes": 60_000, "languages": {
                          lang: {"sources": [f"sib200:{lang}"]} for lang in LANGS}}]},
        "tokenizers": ["gpt2"], "langs": LANGS, "splits": ["dev"], "findings": ["EN", "MULTI"],
        "costs": [{"mix": {lang: 1 for lang in LANGS}, "model": "2.6b", "tokenizer": "EN-BPE-HF-1.2",
                   "baseline": "MULTI-BPE-HF-1.2"}],
    })
    return run(cfg, out, log=lambda *_: None), out


def test_stage_outputs(stage_run):
    result, out = stage_run
    for f in ("metrics.json", "metrics.csv", "details.json", "fertility_vs_vocab.png", "parity.png", "cost.json",
              "cost_0.md", "cost_0.png", "findings.md", "result.json"):
        assert (out / f).is_file(), f
    assert (out / "fertility_vs_vocab.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"EN-BPE-HF-0.6", "EN-BPE-HF-1.2", "EN-BPE-SP-0.6", "EN-BPE-SP-1.2", "MULTI-BPE-HF-0.6",
                            "MULTI-BPE-HF-1.2", "MULTI-BPE-SP-0.6", "MULTI-BPE-SP-1.2", "gpt2"}
    for per in metrics.values():
        assert set(per) == set(LANGS) and all(set(m) == KEYS for m in per.values())
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 9 * 3


def test_stage_extra_cost_is_the_formula(stage_run):
    result, out = stage_run
    m = json.loads((out / "metrics.json").read_text())
    shape = preset("2.6b")
    fpt = flops_per_token(shape, 1200)
    en = sum(m["EN-BPE-HF-1.2"][lang]["fertility"] for lang in LANGS) / 3 * fpt
    multi = sum(m["MULTI-BPE-HF-1.2"][lang]["fertility"] for lang in LANGS) / 3 * fpt
    assert result.extra_cost_fraction == pytest.approx(en / multi - 1)
    assert result.extra_cost.startswith(f"{100 * (en / multi - 1):+.1f}% EN-BPE-HF-1.2 vs MULTI-BPE-HF-1.2")
    # the paper's direction: English-only costs more on a multilingual mix
    assert result.extra_cost_fraction > 0.05


def test_stage_findings(stage_run):
    result, _ = stage_run
    rows = result.findings["en_only_vs_multi"]
    assert len(rows) == 2 * 2 * 2  # (hf, sp) × (600, 1200) × (deu, fra)
    assert result.findings["en_only_higher_everywhere"] is True


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "finemed.cli", "tokenizer", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_cli_eval_schema_and_cost(tmp_path):
    out = tmp_path / "ev"
    proc = _cli("eval", "--tokenizer", "gpt2", "--tokenizer", "o200k_base", "--parallel",
                "sib200", "--langs", "eng_Latn,deu_Latn", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"gpt2", "o200k_base"}
    assert round(metrics["gpt2"]["deu_Latn"]["fertility"], 3) == 2.645
    assert round(metrics["o200k_base"]["deu_Latn"]["parity_sum"], 3) == 1.308
    assert set(metrics["gpt2"]["deu_Latn"]) == KEYS
    proc = _cli("cost", "--metrics", str(out), "--mix", "deu_Latn=1", "--model", "smollm2", "--baseline",
                "o200k_base", "--tokenizer", "gpt2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    cost = json.loads((out / "cost.json").read_text())
    rows = {r["tokenizer"]: r for r in cost["rows"]}
    expected = (2.645 * flops_per_token(preset("smollm2"), 50257)) / (1.608 * flops_per_token(preset("smollm2"), 200019)) - 1
    assert rows["gpt2"]["extra_vs_baseline"] == pytest.approx(expected, abs=2e-3)
    assert f"{100 * rows['gpt2']['extra_vs_baseline']:+.1f}%" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["eval", "--tokenizer", "gpt2", "--langs", "eng_Latn,xx_Latn"], "unknown language code 'xx_Latn'"),
    (["eval", "--tokenizer", "no-such-tok", "--langs", "eng_Latn"], "not a known name"),
    (["eval", "--tokenizer", "gpt2", "--words", "bogus"], "--words 'bogus' unknown"),
    (["train", "--source", "deu_Latn=sib200:deu_Latn", "--vocab-size", "90000", "--algorithm", "bpe",
      "--library", "sp", "--max-bytes", "20000"], "larger than possible"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, message):
    proc = _cli(*args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "o" / "metrics.json").exists()
