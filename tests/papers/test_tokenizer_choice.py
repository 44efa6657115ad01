"""Tokenizer choice in miniature: the Debian text source, the findings' statistics, and a tiny ``--rehearse`` of
recipes/papers/tokenizer-choice-mini.yaml.

The rehearsal points ``$FINEMED_CACHE`` at a temporary dir holding a tiny model as ``models/smollm2`` (only its
architecture class is used: the models train from scratch) and a small ``debian-text/`` cache built from SIB-200
sentences, so nothing is fetched; each stage's ``rehearse:`` mapping shrinks vocab sizes, models, steps and limits.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from finemed.core.config import FinemedError
from finemed.core.texts import read_texts
from finemed.data import debian_text
from finemed.orchestrate.recipe import load_recipe, run_recipe, run_root
from finemed.papers.tokenizer_choice import log_interp_vocab, spearman_ci

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "tokenizer-choice-mini.yaml"


def test_roff_fallback_and_rendered_cleanup():
    src = '.\\" comment\n.TH LS 1\n.SH NAME\nls \\- list \\fBdirectory\\fR contents\n.PP\nSecond \\(em para.\n'
    text = debian_text.clean_rendered(debian_text.strip_roff(src))
    assert "comment" not in text and "\\f" not in text
    assert "ls - list directory contents" in text and "Second — para." in text
    page = "LS(1)        User Commands        LS(1)\n\nNAME\n       ls  -  list\n\nGNU        2023       LS(1)\n"
    assert debian_text.clean_rendered(page) == "NAME\nls - list"


def test_render_man_skips_so_stubs_and_reads_fortunes(tmp_path):
    stub = tmp_path / "a.1.gz"
    stub.write_bytes(gzip.compress(b".so man1/b.1\n"))
    assert debian_text.render_man(stub, groff=None) == ""
    fortunes = tmp_path / "cookies"
    fortunes.write_bytes("Erster Keks.\n%\nZweiter\nKeks ä.\n%\n".encode("latin-1"))
    assert debian_text.read_fortunes(fortunes) == ["Erster Keks.", "Zweiter\nKeks ä."]


def test_debian_source_splits_mix_and_missing_cache(tmp_path, monkeypatch, write_fake_debian):
    monkeypatch.setenv("FINEMED_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FinemedError, match="make debian-text"):
        read_texts("builtin:debian.de")
    monkeypatch.setenv("FINEMED_CACHE", str(tmp_path / "cache"))
    write_fake_debian(tmp_path / "cache")
    train, held = read_texts("builtin:debian.de"), read_texts("builtin:debian.de@heldout")
    assert train and held and not set(train) & set(held)
    assert len(read_texts("builtin:debian.de@all")) == len(train) + len(held)
    mix = read_texts("builtin:debian.mix-3000")
    assert sum(len(t.encode("utf-8")) for t in mix) == 5 * 3000
    with pytest.raises(FinemedError, match="unknown language"):
        read_texts("builtin:debian.xx")
    with pytest.raises(FinemedError, match="mix-BYTES"):
        read_texts("builtin:debian.mix-abc")


def test_spearman_ci_and_vocab_interpolation():
    x = list(range(20))
    ci = spearman_ci(x, [2 * v for v in x], n_boot=200, confidence=0.95, seed=0)
    assert ci["rho"] == pytest.approx(1.0) and ci["lo"] == pytest.approx(1.0) and ci["n"] == 20
    assert math.isnan(spearman_ci([1, 1, 1], [1, 2, 3], n_boot=100, confidence=0.95, seed=0)["rho"])
    need, how = log_interp_vocab([(4000, 1.6), (16000, 1.2)], 1.4)
    assert how == "interpolated" and need == pytest.approx(8000)
    need, how = log_interp_vocab([(4000, 1.6), (16000, 1.2)], 1.0)
    assert how == "extrapolated" and need == pytest.approx(32000)


def test_tokenizer_choice_mini_rehearsal(rehearsal_runs, tmp_path):  # the fake debian-text: rehearsal_runs
    outcomes = run_recipe(RECIPE, rehearse=True, runs_dir=rehearsal_runs)
    assert [o.status for o in outcomes] == ["complete"] * len(outcomes)
    root = run_root(load_recipe(RECIPE), rehearsal_runs, rehearse=True)
    res = json.loads((root / "findings" / "metrics.json").read_text())
    assert res["n_models"] == 16 and res["flops_equal_within"] < 0.02  # 6 steps at vocab 500, 5 at 700
    assert set(res["measured_extra_cost"]) == {f"EN-{a}-{lib}-{v}" for a in ("BPE", "UNI") for lib in ("HF", "SP")
                                               for v in (4, 12)}
    md = (root / "findings" / "findings.md").read_text()
    assert "## Claims of the paper" in md and "Spearman" in md
    from finemed.papers.claims import WORDS
    assert all(v.split(":")[0] in WORDS for v in res["claims"].values()) and len(res["claims_hash"]) == 16
    assert not (tmp_path / "docs").exists()  # the rehearsal does not overwrite docs/results


def _row(corpus, sib, fert, bpb, n=100, majority=0.25):
    langs = ["eng_Latn", "deu_Latn"]
    return {"corpus": corpus, "algorithm": "BPE", "library": "HF", "vocab": 4000,
            "sib": dict.fromkeys(langs, sib), "sib_n": dict.fromkeys(langs, n),
            "sib_majority": dict.fromkeys(langs, majority), "fertility": dict.fromkeys(langs, fert),
            "bpb": dict.fromkeys(langs, bpb)}


def test_tokenizer_claims_at_chance_are_not_testable():
    """SIB-200 accuracy at the majority-class rate: 'does not predict' is not testable, never 'holds'."""
    from types import SimpleNamespace

    from finemed.papers.claims import DOES_NOT_HOLD, HOLDS, NO_EVIDENCE, NOT_TESTABLE, ClaimSpec, judge_all
    from finemed.papers.tokenizer_claims import CLAIMS, evidence, wilson_low

    assert wilson_low(0.5, 100) == pytest.approx(0.4038, abs=1e-4)  # Wilson 95% for 50/100
    spec = {c: ClaimSpec(statement=c, measure="m", test="bootstrap_ci", direction="greater", floor=0.0)
            for c in CLAIMS}
    spec["no_prediction_sib"] = ClaimSpec(statement="s", measure="m", test="spearman_bootstrap", direction="none",
                                          min_effect=0.3, floor=0.0)
    spec["no_prediction_bpb"] = spec["no_prediction_sib"].model_copy(update={"floor": None})
    cfg = SimpleNamespace(langs=["eng_Latn", "deu_Latn"], ref_lang="eng_Latn", en_corpus="EN", multi_corpus="MULTI",
                          bootstrap=200, confidence=0.95, seed=0, claims=spec)
    rows = [_row("EN", 0.27, 1.8, 3.1), _row("MULTI", 0.26, 1.4, 2.9)]
    corrs = [{"metric": "fertility", "score": "sib", "scope": "pooled", "rho": 0.05, "lo": -0.2, "hi": 0.25, "n": 4},
             {"metric": "fertility", "score": "bpb", "scope": "pooled", "rho": 0.1, "lo": -0.2, "hi": 0.25, "n": 4}]
    out = judge_all(spec, evidence(cfg, rows, corrs, [], []))
    assert out["no_prediction_sib"].verdict == NOT_TESTABLE and "chance" in out["no_prediction_sib"].detail
    assert out["no_prediction_bpb"].verdict == HOLDS  # the same CI within +-0.3 on a measure above its floor
    assert out["multi_better_sib"].verdict == NOT_TESTABLE
    assert out["en_costs_more"].verdict == NO_EVIDENCE and out["vocab_3x"].verdict == NO_EVIDENCE  # none measured
    costs = [{"measured": m} for m in (0.4, 0.6, 0.5, 0.7)]
    assert judge_all(spec, evidence(cfg, rows, corrs, costs, []))["en_costs_more"].verdict == HOLDS
    costs = [{"measured": m} for m in (-0.4, -0.6, -0.5, -0.7)]
    assert judge_all(spec, evidence(cfg, rows, corrs, costs, []))["en_costs_more"].verdict == DOES_NOT_HOLD
    rows = [_row("EN", 0.70, 1.8, 3.1), _row("MULTI", 0.72, 1.4, 2.9)]
    out = judge_all(spec, evidence(cfg, rows, corrs, [], []))
    assert out["no_prediction_sib"].verdict == NOT_TESTABLE  # above chance, but the models do not differ
    assert "sampling noise" in out["no_prediction_sib"].detail
    rows = [_row("EN", 0.40, 1.8, 3.1), _row("MULTI", 0.80, 1.4, 2.9)]
    out = judge_all(spec, evidence(cfg, rows, corrs, [], []))
    assert out["no_prediction_sib"].verdict == HOLDS  # above chance and the models differ: the null claim is judged


def test_extra_cost_is_read_off_both_learning_curves(tmp_path):
    """The better model's first crossing of the worse one's final bpb, linear between eval points."""
    from finemed.core.config import FinemedError
    from finemed.papers.claims import bootstrap_ci
    from finemed.papers.tokenizer_cost import bpb_curve, extra_cost_to_same_bpb, fmt_cost, steps_to_reach

    multi = [(0, 6.0), (8, 4.0), (16, 3.0), (24, 2.5)]
    en = [(0, 6.0), (8, 4.5), (16, 3.8), (24, 3.5)]
    assert steps_to_reach(multi, 3.5) == pytest.approx(12.0) and steps_to_reach(multi, 2.0) is None
    got = extra_cost_to_same_bpb(en, multi, 10.0, 10.0)  # MULTI reaches EN's final 3.5 at step 12 of 24
    assert got["target_bpb"] == 3.5 and got["multi_steps"] == pytest.approx(12.0)
    assert got["measured"] == pytest.approx(24 / 12 - 1)
    got = extra_cost_to_same_bpb(multi, en, 10.0, 10.0)  # swapped: the EN-only model is the better one
    assert got["measured"] == pytest.approx(12 / 24 - 1)
    assert extra_cost_to_same_bpb(en, multi, 10.0, 5.0)["measured"] == pytest.approx(24 * 10 / (12 * 5) - 1)
    at_init = [(0, 3.4), (8, 3.0), (16, 2.9), (24, 2.8)]  # the multilingual model starts below EN-only's final bpb
    assert math.isinf(extra_cost_to_same_bpb(en, at_init, 10.0, 10.0)["measured"])
    ci = bootstrap_ci([0.2, 0.3, math.inf, 0.5, 0.4], stat="median", n_boot=200, confidence=0.95, seed=0)
    assert ci["estimate"] == 0.4 and 0 < ci["lo"] <= 0.4 <= ci["hi"]  # one unbounded pair does not swamp the median
    ci = bootstrap_ci([0.2, 0.3, 0.9, 0.5, 0.4], stat="mean", n_boot=200, confidence=0.95, seed=0)
    assert ci["estimate"] == pytest.approx(0.46) and ci["lo"] < 0.46 < ci["hi"]  # the mean, not the median
    assert fmt_cost(math.inf) == "unbounded" and fmt_cost(0.25) == "+25.0%"

    run = tmp_path / "train"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"steps": 24, "bpb_after": {"mix": 2.5, "domain": 2.0}}))
    (run / "bpb_before.json").write_text(json.dumps({"mix": 6.0, "domain": 6.1}))
    (run / "log_history.json").write_text(json.dumps(
        [{"loss": 5.0, "step": 8}, {"bpb_mix": 4.0, "bpb_domain": 4.1, "step": 8}, {"bpb_mix": 3.0, "step": 16}]))
    assert bpb_curve(run, "mix") == [(0, 6.0), (8, 4.0), (16, 3.0), (24, 2.5)]
    with pytest.raises(FinemedError, match="no learning curve on held-out set 'other'"):
        bpb_curve(run, "other")
