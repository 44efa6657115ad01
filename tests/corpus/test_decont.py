"""Decontamination: planted benchmark items are dropped, clean medical docs (even with short overlaps) kept."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from finemed.corpus.build import CorpusBuildConfig, run
from finemed.corpus.decont import DecontConfig, default_sets, eval_texts
from finemed.corpus.pipeline import DEFAULT_STEPS
from finemed.corpus.sample_input import _medical_positives
from finemed.data import loaders


def _words(text: str, start: int, n: int) -> str:
    return " ".join(text.split()[start:start + n])


def _benchmark_items(rng: random.Random) -> list[str]:
    """20 evaluation items (each >= 13 words): MCQ questions, case texts, QA contexts, GerMedIQ questions."""
    qa = loaders.load_germedbench("med_qa")
    cases = loaders.load_germedbench("patient_text") + loaders.load_germedbench("icd10_coding")
    squad = [e.context for e in loaders.load_squad(name="xquad.de")][:50]
    mlqa = [e.context for e in loaders.load_squad(name="mlqa.de")][:50]
    germediq = [q for q in eval_texts("benchmark:germediq") if len(q.split()) >= 14]
    items = [r["question"] for r in rng.sample(qa, 6)] + [r["explanation"] for r in rng.sample(qa, 2)]
    items += [_words(r["text"], 10, 30) for r in rng.sample(cases, 5)]
    items += [_words(t, 5, 25) for t in rng.sample(squad, 2) + rng.sample(mlqa, 2)]
    items += rng.sample(germediq, 3)
    return items


def _docs(rng: random.Random) -> tuple[list[dict], set[str]]:
    # GraSCCo letters are left out: two of them share 13 words of letter boilerplate with GerMedBench case
    # texts ("der sich vom 0 bis 0 0 in unserer stationaren behandlung befand diagnosen"), a true n-gram match
    pos = _medical_positives()
    clean = [t for s, t in pos if s.startswith("sib200")]
    clean += [t for s, t in pos if s == "germediq/human"][: 100 - len(clean)]
    assert len(clean) == 100
    qa = loaders.load_germedbench("med_qa")
    docs, planted = [], set()
    for i, text in enumerate(clean):
        if i < 20:  # a benchmark item inside a medical doc
            item = _benchmark_items(rng)[i]
            cut = len(text) // 2
            text = f"{text[:cut]}\n{item}\n{text[cut:]}"
            planted.add(f"doc-{i:03d}")
        elif i < 40:  # a short phrase (< 13 words) shared with a benchmark item: must stay
            text = f"{text}\n{_words(qa[i % len(qa)]['question'], 0, 10)}"
        docs.append({"id": f"doc-{i:03d}", "text": text})
    return docs, planted


def test_default_steps_and_sets():
    assert DEFAULT_STEPS.index("fineweb") < DEFAULT_STEPS.index("decont") < DEFAULT_STEPS.index("minhash")
    sets = default_sets()
    assert {"benchmark:germedbench", "benchmark:germediq", "builtin:xquad.de#question", "builtin:mlqa.de"} <= set(sets)
    assert DecontConfig().n_grams == 13


def test_planted_benchmark_items_are_dropped(tmp_path):
    docs, planted = _docs(random.Random(0))
    src = tmp_path / "in" / "docs.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    cfg = CorpusBuildConfig(input=str(src), tokenizer=None, pipeline={"steps": ["decont"]},
                            executor={"workers": 1})
    res = run(cfg, tmp_path / "run")
    kept = {i for f in (tmp_path / "run" / "output").glob("*.parquet")
            for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}
    assert {d["id"] for d in docs} - kept == planted  # exactly the 20 planted docs are dropped
    assert res.kept == 80
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    reasons = {k: v for b in stats["blocks"] for k, v in b.get("reasons", {}).items()}
    assert reasons == {"decontaminated": 20}
    assert stats["dropped_samples"]["decontaminated"]


def test_unknown_benchmark_name_is_one_clear_error():
    from finemed.config import ConfigError

    with pytest.raises(ConfigError, match="benchmark:germedbench"):
        list(eval_texts("benchmark:nope"))
