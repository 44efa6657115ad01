"""Decontamination end to end: planted benchmark excerpts never reach the output; clean letters stay."""

from __future__ import annotations

import json
import random
import re

import pyarrow.parquet as pq
import pytest

from finemed.corpus.build import CorpusBuildConfig, run
from finemed.corpus.decont import DecontConfig, default_sets, eval_texts
from finemed.corpus.pipeline import DEFAULT_STEPS
from finemed.data import loaders

EXCERPT_WORDS = (15, 25, 40, 80)
BOILERPLATE = ("Sehr geehrte Frau Kollegin, sehr geehrter Herr Kollege, wir berichten über unseren gemeinsamen "
               "Patienten, Herrn Klaus Berger, der sich vom 03.04. bis 11.04. in unserer Behandlung befand.")
LAB_PANEL = "Labor bei Entlassung: GGT 12 U/l AP 80 U/l Bilirubin gesamt 0,4 mg/dl Kreatinin 1,1 mg/dl CRP 4 mg/l."


def _norm_words(text: str) -> list[str]:
    """Lowercase words without punctuation: an independent check, not the rule's own normaliser."""
    return [w for w in re.sub(r"[^\w\s]", "", text.lower()).split() if w]


def _has_13_words_of(excerpt: str, output: str) -> bool:
    words, out = _norm_words(excerpt), " " + " ".join(_norm_words(output)) + " "
    return any(" " + " ".join(words[i:i + 13]) + " " in out for i in range(len(words) - 12))


def _planted_docs(rng: random.Random) -> tuple[list[dict], dict[str, str]]:
    """GraSCCo letters (clean: in no benchmark). 12 get a GerMedBench/XQuAD excerpt of 15-80 words, 8 the letter
    opening, 8 a lab panel, the rest nothing."""
    letters = [d.text for d in loaders.load_grascco()][:36]
    cases = [r["text"] for t in ("patient_text", "icd10_coding") for r in loaders.load_germedbench(t)]
    contexts = list(dict.fromkeys(e.context for e in loaders.load_squad(name="xquad.de")))
    sources = [t for t in cases + contexts if len(t.split()) >= 100]
    docs, planted = [], {}
    for i, text in enumerate(letters):
        mid = text.find(" ", len(text) // 2)
        if i < 12:
            words = rng.choice(sources).split()
            n = EXCERPT_WORDS[i % 4]
            start = rng.randrange(0, len(words) - n)
            insert = planted[f"doc-{i:03d}"] = " ".join(words[start:start + n])
        elif i < 20:
            insert = BOILERPLATE
        elif i < 28:
            insert = LAB_PANEL
        else:
            insert = ""
        docs.append({"id": f"doc-{i:03d}", "text": f"{text[:mid]}\n{insert}\n{text[mid:]}" if insert else text})
    return docs, planted


def test_default_steps_and_sets():
    assert DEFAULT_STEPS.index("fineweb") < DEFAULT_STEPS.index("decont") < DEFAULT_STEPS.index("minhash")
    sets = default_sets()
    assert {"benchmark:germedbench", "benchmark:germediq", "builtin:xquad.de#question", "builtin:mlqa.de"} <= set(sets)
    assert DecontConfig().n_grams == 13


def test_planted_excerpts_never_reach_the_output_and_clean_letters_stay(tmp_path):
    docs, planted = _planted_docs(random.Random(0))
    src = tmp_path / "in" / "docs.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    cfg = CorpusBuildConfig(input=str(src), tokenizer=None, pipeline={"steps": ["decont"]},
                            executor={"workers": 1})
    res = run(cfg, tmp_path / "run")
    out = {i: t for f in (tmp_path / "run" / "output").glob("*.parquet")
           for i, t in zip(*pq.read_table(f, columns=["id", "text"]).to_pydict().values())}
    for doc_id, excerpt in planted.items():  # dropped, or the excerpt cut out
        assert doc_id not in out or not _has_13_words_of(excerpt, out[doc_id]), (doc_id, excerpt)
    clean = {d["id"] for d in docs} - set(planted)
    assert clean <= set(out)  # no letter with only the opening or a lab panel is dropped
    unchanged = {d["id"] for d in docs if d["id"] in clean and out[d["id"]] == d["text"]}
    assert len(unchanged) >= len(clean) - 2  # and nearly all of them are not even changed
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    dc = stats["decontamination"]
    assert dc["dropped"] == len(docs) - res.kept and dc["in"] == len(docs)
    assert dc["changed"] == sum(out[i] != d["text"] for d in docs if (i := d["id"]) in out) >= 1
    row = next(r for r in stats["funnel"] if "decontamination" in r["block"])
    assert (row["in"], row["dropped"], row["out"]) == (len(docs), dc["dropped"], res.kept)
    assert row["reasons"] == ({"decontaminated": dc["dropped"]} if dc["dropped"] else {})


def test_unknown_benchmark_name_is_one_clear_error():
    from finemed.core.config import ConfigError

    with pytest.raises(ConfigError, match="benchmark:germedbench"):
        list(eval_texts("benchmark:nope"))
