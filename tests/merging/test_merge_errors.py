"""Bad merge input gets one clear line: t outside [0, 1], architecture/shape/vocabulary mismatch, unknown
method, CLI exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from finemed.core.config import ConfigError, FinemedError
from finemed.merging.merge import check_compatible, load_merge_config, merge_file


@pytest.mark.parametrize("t", [1.5, -0.1, [0.0, 1.2], [{"filter": "mlp", "value": [0, 2]}]])
def test_t_outside_unit_interval(tiny_pair, tmp_path, t):
    base, cpt = tiny_pair
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"base": str(base), "cpt": str(cpt), "t": t}))
    with pytest.raises(ConfigError, match=r"outside \[0, 1\]"):
        load_merge_config(tmp_path / "m.yaml")
    assert not (tmp_path / "out").exists()


def test_t_outside_unit_interval_in_raw_mergekit_yaml(tiny_pair, tmp_path):
    base, cpt = tiny_pair
    raw = {"merge_method": "slerp", "base_model": str(base), "models": [{"model": str(base)}, {"model": str(cpt)}],
           "parameters": {"t": 1.3}}
    (tmp_path / "raw.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"parameters.t=1.3 is outside \[0, 1\]"):
        load_merge_config(tmp_path / "raw.yaml")


def test_architecture_and_shape_mismatch(tiny_pair, tmp_path):
    from finemed.models.tiny import save_tiny

    base, _ = tiny_pair
    deeper = save_tiny(tmp_path / "deeper", num_layers=3, hidden_size=32)
    with pytest.raises(FinemedError, match=r"num_hidden_layers differs: .* has 4, .* has 3"):
        check_compatible([str(base), str(deeper)])
    other = tmp_path / "arch"
    shutil.copytree(base, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["architectures"] = ["MistralForCausalLM"]
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FinemedError, match=r"architecture mismatch: .*(Llama.*Mistral|Mistral.*Llama)ForCausalLM"):
        merge_file_from(base, other, tmp_path)
    assert not (tmp_path / "out").exists()


def merge_file_from(base, cpt, tmp_path):
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"base": str(base), "cpt": str(cpt), "t": 0.5}))
    return merge_file(tmp_path / "m.yaml", tmp_path / "out")


def test_vocabulary_mismatch_same_size(tiny_pair, tmp_path):
    base, cpt = tiny_pair
    other = tmp_path / "vocab"
    shutil.copytree(cpt, other)
    tj = json.loads((other / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[300:302]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(FinemedError, match=r"vocabulary mismatch: .* 512 tokens, .* 512 \(first difference"):
        merge_file_from(base, other, tmp_path)
    assert not (tmp_path / "out").exists()


def test_cli_prints_one_line_and_exits_2(tiny_pair, tmp_path):
    base, cpt = tiny_pair
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"base": str(base), "cpt": str(cpt), "t": 3}))
    proc = subprocess.run([sys.executable, "-m", "finemed.cli", "merge", str(tmp_path / "m.yaml"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "outside [0, 1]" in lines[0]
    from typer.testing import CliRunner

    from finemed.cli import app

    ok = CliRunner().invoke(app, ["merge", str(tmp_path / "m.yaml"), "--set", "t=0.25", "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    model = tmp_path / "out" / "model"
    assert (model / "model.safetensors").is_file() and (model / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["method"] == "slerp"


def test_unknown_method_names_mergekits_methods(tiny_pair, tmp_path):
    from finemed.merging.merge import MergeSpec, short_form_methods, to_mergekit

    base, cpt = tiny_pair
    assert {"slerp", "linear", "task_arithmetic", "ties", "della"} <= set(short_form_methods())
    with pytest.raises(ConfigError, match="short form takes one of .*della"):
        to_mergekit(MergeSpec(base=str(base), cpt=str(cpt), method="nope"))
    with pytest.raises(ConfigError, match="short form takes one of"):
        to_mergekit(MergeSpec(base=str(base), cpt=str(cpt), method="passthrough"))  # no t / weight parameter
