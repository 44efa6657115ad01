"""bpb: equals a direct computation, sliding windows stay close to full context, the eval.bpb stage and its CLI,
SmolLM2."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from finemed.core.config import FinemedError
from finemed.core.runtime import resolve
from finemed.models.bpb import _windows, compute_bpb
from finemed.models.loading import load_causal_lm

FP32 = resolve("cpu", "float32")

TEXTS = ["Der Patient klagt über Brustschmerzen seit drei Tagen.", "The quick brown fox jumps over the lazy dog.",
         "Blutdruck 140/90 mmHg, Puls 88/min – Therapie: Ramipril 5 mg 1-0-0."]


def direct_bpb(model, tok, texts):
    nll, nbytes = 0.0, 0
    for t in texts:
        ids = torch.tensor([[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
        nll -= logp.gather(1, ids[0, 1:, None]).sum().item()
        nbytes += len(t.encode("utf-8"))
    return nll / (math.log(2) * nbytes)


def test_bpb_equals_direct_computation(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir, runtime=FP32)
    res = compute_bpb(model, tok, TEXTS, batch_size=2, runtime=FP32, progress=False)
    assert res.bpb == pytest.approx(direct_bpb(model, tok, TEXTS), abs=1e-6)
    assert res.bytes == sum(len(t.encode()) for t in TEXTS)
    n_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in TEXTS)
    assert res.tokens == n_tokens
    assert res.loss_per_token * res.tokens == pytest.approx(res.bpb * math.log(2) * res.bytes, rel=1e-9)


def test_per_document_bits_match_each_document_alone(tiny_model_dir):
    """Per-document bits (what eval.scoreboard pairs across models) equal each document scored on its own, in the
    input order, even though windows are batched sorted by length."""
    model, tok = load_causal_lm(tiny_model_dir, runtime=FP32)
    res = compute_bpb(model, tok, TEXTS, batch_size=2, runtime=FP32, progress=False)
    assert res.doc_bytes == [len(t.encode("utf-8")) for t in TEXTS]
    for bits, nbytes, text in zip(res.doc_bits, res.doc_bytes, TEXTS):
        assert bits / nbytes == pytest.approx(direct_bpb(model, tok, [text]), abs=1e-4)
    assert sum(res.doc_bits) / res.bytes == pytest.approx(res.bpb, abs=1e-5)


def test_windows_score_each_token_once():
    ids = list(range(23))
    wins = _windows(ids, 8, 3)
    scored = [t for w, ctx in wins for t in w[ctx:]]
    assert scored == list(range(1, 23))
    assert all(len(w) <= 8 for w, _ in wins)


def test_sliding_window_close_to_full_context(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir, runtime=FP32)
    from finemed.data.loaders import load_grascco

    text = load_grascco()[0].text[:2500]
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    assert n > 300
    full = compute_bpb(model, tok, [text], max_length=512, runtime=FP32, progress=False)
    slid = compute_bpb(model, tok, [text], max_length=256, stride=128, runtime=FP32, progress=False)
    assert full.tokens == slid.tokens
    assert abs(slid.bpb - full.bpb) / full.bpb < 0.02


def test_empty_text_set_is_an_error(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir, runtime=FP32)
    with pytest.raises(FinemedError, match="empty"):
        compute_bpb(model, tok, ["", "   "])


def test_cli_writes_bpb_json(tmp_path, tiny_model_dir):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"body": t}) + "\n" for t in TEXTS))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "finemed.cli", "eval", "bpb", "--model", str(tiny_model_dir),
                           "--data", f"{data}#body", "--out", str(out), "--set", "dtype=float32",
                           "--set", "device=cpu"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "bpb.json").read_text())
    assert set(res["sets"]["data"]) == {"bpb", "loss_per_token", "tokens", "bytes", "docs", "doc_bits", "doc_bytes"}
    assert res["runtime"]["compute_dtype"] == "float32" and res["sets"]["data"]["docs"] == 3
    model, tok = load_causal_lm(tiny_model_dir, runtime=FP32)
    assert res["sets"]["data"]["bpb"] == pytest.approx(direct_bpb(model, tok, TEXTS), abs=1e-6)
    assert json.loads((out / "metrics.json").read_text())["bpb"] == {"data": round(res["sets"]["data"]["bpb"], 4)}


def test_stage_on_builtin_sets(tmp_path, tiny_model_dir):
    from finemed.core.stages import run_stage
    from finemed.evaluation.perplexity import BpbSetsConfig

    cfg = BpbSetsConfig(model=str(tiny_model_dir), sets={"medical": "builtin:grascco", "english": "builtin:xquad.en"},
                        max_docs=2, max_chars=2000, max_length=64, device="cpu", dtype="float32")
    res = run_stage("eval.bpb", cfg, tmp_path).result
    assert set(res["bpb"]) == {"medical", "english"} and all(0 < v < 20 for v in res["bpb"].values())
    assert run_stage("eval.bpb", cfg, tmp_path).status == "cached"


@pytest.mark.slow
@pytest.mark.smoke
def test_smollm2_conversion_and_bpb_ordering(smollm2_dir):
    """The converted SmolLM2 keeps its chat template; English bpb is finite and below general German."""
    from finemed.core.texts import read_texts
    from finemed.models.bpb import subsample

    info = json.loads((smollm2_dir / "finemed_conversion.json").read_text())
    assert info["parameters"] == 134_515_008 and info["layers"] == 30 and info["vocab_size"] == 49152
    assert info["max_logit_diff"] <= 1e-4 and info["chat_template"]
    model, tok = load_causal_lm(smollm2_dir)
    assert tok("Hello world")["input_ids"] == [19556, 905]
    en = compute_bpb(model, tok, subsample(read_texts("builtin:xquad.en"), 6, 6000), progress=False)
    de = compute_bpb(model, tok, subsample(read_texts("builtin:fortunes_de"), 40, 6000), progress=False)
    assert math.isfinite(en.bpb) and 0.5 < en.bpb < de.bpb
