"""Smoke variant of the slow SmolLM2 claim "CPT lowers held-out domain bpb by >= 10% relative".

A tiny model trains 30 steps on a small, repetitive German discharge-letter corpus; the held-out letters
(the stage's own hash split, never trained on) drop by >= 10% in bpb, and the general set is reported
before and after, as in ``test_train_smollm2.py``.
"""

from __future__ import annotations

import json
import random

import pytest

from finemed.cpt.train import CptConfig, run

pytestmark = pytest.mark.smoke


def _letters(path, n: int = 60, seed: int = 0):
    rng = random.Random(seed)
    drugs = ["Metformin", "Ramipril", "Bisoprolol", "Ibuprofen", "Pantoprazol", "Simvastatin"]
    diagnoses = ["Hypertonie", "Diabetes mellitus Typ 2", "Vorhofflimmern", "Pneumonie", "Gastritis"]
    rows = []
    for _ in range(n):
        d, m, dose = rng.choice(diagnoses), rng.choice(drugs), rng.choice([5, 10, 20, 40, 500])
        rows.append(f"Der Patient wurde mit {d} aufgenommen. Wir begannen eine Therapie mit {m} {dose} mg "
                    f"einmal täglich. Die Laborwerte waren im Verlauf unauffällig. Entlassung in gutem "
                    f"Allgemeinzustand.")
    path.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in rows), encoding="utf-8")
    return path


def test_tiny_cpt_drops_heldout_domain_bpb_by_ten_percent(tiny_dir, tmp_path):
    domain = _letters(tmp_path / "letters.jsonl")
    cfg = CptConfig(model=str(tiny_dir), domain={"source": str(domain)},
                    general_eval={"general_en": {"source": "builtin:xquad.en", "max_docs": 20}},
                    heldout_fraction=0.2, eval_max_docs=8, seq_len=64, batch_size=4, max_steps=30, warmup_steps=2,
                    lr=3e-3, save_steps=1000, logging_steps=5, report_to=[], device="cpu", dtype="float32", seed=0)
    res = run(cfg, tmp_path / "cpt")
    assert res.steps == 30 and res.heldout_docs["domain"] >= 4
    assert res.domain_bpb_drop >= 0.10, (res.bpb_before, res.bpb_after)
    assert res.bpb_after["domain"] < res.bpb_before["domain"]
    assert set(res.bpb_after) == set(res.bpb_before) == {"domain", "general_en"}
