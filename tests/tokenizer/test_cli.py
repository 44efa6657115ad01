"""``finemed tokenizer ...``: thin stage wrappers (schema, exit codes, one-line errors, the eval table file)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finemed.orchestrate.stage_cli import build_config
from finemed.tokenizer.cli import _corpus
from finemed.tokenizer.cost import flops_per_token, preset

KEYS = {"fertility", "parity", "parity_sum", "continued_words", "bytes_per_token"}


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "finemed.cli", "tokenizer", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=180)


def test_cli_eval_schema_cost_and_correlate(tmp_path):
    ev, co = tmp_path / "ev", tmp_path / "co"
    proc = _cli("eval", "--tokenizer", "gpt2", "--tokenizer", "o200k_base", "--parallel",
                "builtin:sib200", "--langs", "eng_Latn,deu_Latn", "--out", str(ev))
    assert proc.returncode == 0, proc.stderr
    table = json.loads((ev / "tokenizer_metrics.json").read_text())
    assert set(table) == {"gpt2", "o200k_base"}
    assert round(table["gpt2"]["deu_Latn"]["fertility"], 3) == 2.645
    assert round(table["o200k_base"]["deu_Latn"]["parity_sum"], 3) == 1.308
    assert set(table["gpt2"]["deu_Latn"]) == KEYS
    result = json.loads((ev / "metrics.json").read_text())  # the stage Result
    assert result["lowest_fertility"] == "o200k_base 1.608 (deu_Latn)"
    assert result["fertility"]["gpt2"]["deu_Latn"] == table["gpt2"]["deu_Latn"]["fertility"]

    proc = _cli("cost", "--metrics", str(ev), "--mix", "deu_Latn=1", "--model", "smollm2", "--baseline",
                "o200k_base", "--tokenizer", "gpt2", "--out", str(co))
    assert proc.returncode == 0, proc.stderr
    cost = json.loads((co / "cost.json").read_text())
    rows = {r["tokenizer"]: r for r in cost["rows"]}
    expected = ((2.645 * flops_per_token(preset("smollm2"), 50257))
                / (1.608 * flops_per_token(preset("smollm2"), 200019)) - 1)
    assert rows["gpt2"]["extra_vs_baseline"] == pytest.approx(expected, abs=2e-3)
    assert f"{100 * rows['gpt2']['extra_vs_baseline']:+.1f}%" in proc.stdout
    assert (co / "cost.md").is_file() and (co / "cost.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((co / "metrics.json").read_text())
    assert result["extra_cost_fraction"] == pytest.approx(rows["gpt2"]["extra_vs_baseline"])
    assert result["extra_cost"].endswith("gpt2 vs o200k_base (deu_Latn)") and result["cheapest"] == "o200k_base"

    proc = _cli("cost", "--metrics", str(ev), "--mix", "deu_Latn=1", "--out", str(ev))
    assert proc.returncode == 2 and "is the eval run dir itself" in proc.stderr
    assert json.loads((ev / "metrics.json").read_text())["lowest_fertility"]  # the eval's run is untouched
    assert json.loads((ev / "manifest.json").read_text())["kind"] == "tokenizer.eval"

    scores = tmp_path / "s.csv"
    scores.write_text("tokenizer,qa\ngpt2,1\no200k_base,2\n", encoding="utf-8")
    proc = _cli("correlate", "--metrics", str(ev), "--scores", str(scores))
    assert proc.returncode == 2 and "only 2 tokenizers" in proc.stderr  # read the table, then refused n < 3


def test_cli_cost_reads_the_table_not_the_result(tmp_path):
    (tmp_path / "metrics.json").write_text('{"lowest_fertility": "x"}')
    proc = _cli("cost", "--metrics", str(tmp_path), "--mix", "deu_Latn=1", "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and "tokenizer_metrics.json is missing" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["eval", "--tokenizer", "gpt2", "--langs", "eng_Latn,xx_Latn"], "unknown language code 'xx_Latn'"),
    (["eval", "--tokenizer", "no-such-tok", "--langs", "eng_Latn"], "not a known name"),
    (["eval", "--tokenizer", "gpt2", "--words", "bogus"], "--words 'bogus' unknown"),
    (["train", "--source", "deu_Latn=builtin:sib200.deu_Latn", "--vocab-size", "90000", "--algorithm", "bpe",
      "--library", "sp", "--max-bytes", "20000"], "larger than possible"),
    (["train", "--source", "deu_Latn=sib200:deu_Latn", "--vocab-size", "500"], "sib200:deu_Latn"),
    (["train", "--max-bytes", "100"], "give --source LANG=SOURCE too"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, message):
    proc = _cli(*args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "o" / "tokenizer_metrics.json").exists() and not (tmp_path / "o" / "metrics.json").exists()


def test_train_flags_map_to_config_keys():
    cfg = build_config("tokenizer.train", None, ["threads=1"], flags={
        "corpora": _corpus(["deu_Latn=builtin:fortunes_de", "deu_Latn=x.txt", "eng_Latn=builtin:xquad.en"], "DE",
                           None), "vocab_sizes": [500], "algorithms": None, "libraries": ["hf"]})
    assert cfg.vocab_sizes == [500] and cfg.libraries == ["hf"] and cfg.algorithms == ["bpe", "unigram"]
    (corpus,) = cfg.corpora
    assert corpus.name == "DE" and corpus.languages["deu_Latn"].sources == ["builtin:fortunes_de", "x.txt"]
    assert corpus.budgets() == {"deu_Latn": 5_000_000, "eng_Latn": 5_000_000} and cfg.threads == 1


def test_cli_train_writes_a_sweep(tmp_path):
    out = tmp_path / "tok"
    proc = _cli("train", "--source", "deu_Latn=builtin:fortunes_de", "--vocab-size", "400", "--algorithm", "bpe",
                "--library", "hf", "--max-bytes", "20000", "--name", "DE", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "DE-BPE-HF-0.4" in proc.stdout and (out / "DE-BPE-HF-0.4" / "tokenizer.json").is_file()
    result = json.loads((out / "metrics.json").read_text())
    assert result["n_trained"] == 1 and 19_000 < result["corpora"]["DE"]["deu_Latn"] <= 20_000
