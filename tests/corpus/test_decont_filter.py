"""The decont filter as a datatrove step: stats it reports, and the optional corpus-frequency pass."""

from __future__ import annotations

from datatrove.data import Document

from finemed.corpus.decont import DecontConfig, index_from_items
from finemed.corpus.decont_filter import DecontFilter

ITEM = ("Die Patientin berichtet über seit drei Wochen zunehmende Luftnot bei Belastung, nächtlichen Husten und "
        "eine Gewichtszunahme von vier Kilogramm, die Knöchel sind abends deutlich geschwollen und schmerzen sehr")
SHARED = " ".join(ITEM.split()[:14])  # 2 of the item's 20 n-grams
FILLER = " ".join(f"Satz {i}: Der weitere Verlauf war unauffällig und ohne neue Beschwerden." for i in range(10))


def _run(tmp_path, docs: list[str], **overrides) -> tuple[list[Document], dict]:
    cfg = DecontConfig(sets=[], **overrides)
    index_file = tmp_path / "index.npz"
    index_from_items([("item#0", ITEM)], cfg.n_grams).save(index_file)
    step = DecontFilter(index_file, cfg)
    out = list(step.run(iter(Document(text=t, id=str(i)) for i, t in enumerate(docs))))
    return out, {k: v.total for k, v in step.stats.stats.items()}


def test_cut_docs_are_counted_as_changed(tmp_path):
    docs = [FILLER, f"{FILLER} {SHARED} {FILLER}", f"{FILLER} {ITEM} {FILLER}"]
    out, stats = _run(tmp_path, docs)
    assert [d.id for d in out] == ["0", "1"] and "Luftnot" not in out[1].text
    assert (stats["total"], stats["forwarded"], stats["dropped"], stats["changed"]) == (3, 2, 1, 1)
    assert stats["dropped_decontaminated"] == 1 and out[1].metadata["decont_cuts"] == 1


def test_corpus_frequent_ngrams_are_spared_when_asked(tmp_path):
    docs = [f"Brief {i}. {FILLER} {SHARED}" for i in range(3)] + [FILLER]
    out, stats = _run(tmp_path, docs, max_corpus_df=3)
    assert sorted(d.id for d in out) == ["0", "1", "2", "3"] and stats.get("changed", 0) == 0
    assert [d.id for d in out][0] == "3"  # docs with shared n-grams are held to the end of the pass
    out, stats = _run(tmp_path, docs[:2] + docs[3:], max_corpus_df=3)  # in 2 docs only: cut
    assert stats["changed"] == 2 and all("Luftnot" not in d.text for d in out)
    out, stats = _run(tmp_path, docs)  # off (the default): cut everywhere
    assert stats["changed"] == 3
