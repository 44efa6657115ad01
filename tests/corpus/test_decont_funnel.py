"""The funnel in stats.json: every block that drops docs has its own row (in, dropped, out, reasons)."""

from __future__ import annotations

from finemed.corpus.stats import funnel

# block_stats rows as a default build writes them (names are datatrove's "TYPE: name")
BLOCKS = [
    {"stage": "filter", "block": "📖 - READER: 🐿 Jsonl (counted skips)", "in": 100, "kept": 100, "dropped": 0},
    {"stage": "filter", "block": "🔻 - FILTER: 🌐 langid", "in": 100, "kept": 90, "dropped": 10,
     "reasons": {"lang_en": 10}},
    {"stage": "filter", "block": "🔻 - FILTER: 🥇 fineweb quality", "in": 90, "kept": 90, "dropped": 0},
    {"stage": "filter", "block": "🦠 - DECONT: 🦠 decontamination", "in": 90, "kept": 85, "dropped": 5,
     "reasons": {"decontaminated": 5}, "changed": 7, "cut_chars": 2900},
    {"stage": "filter", "block": "💽 - WRITER: 🐿 Jsonl", "in": 85, "kept": 85, "dropped": 0},
    {"stage": "filter", "block": "🫂 - DEDUP: 🎯 MinHash stage 1", "in": 85, "kept": 85, "dropped": 0},
    {"stage": "minhash_buckets", "block": "🫂 - DEDUP: 🎯 MinHash stage 2", "in": 0, "kept": 0, "dropped": 0},
    {"stage": "final", "block": "📖 - READER: 🐿 Jsonl (this rank's file)", "in": 85, "kept": 85, "dropped": 0},
    {"stage": "final", "block": "🫂 - DEDUP: 🎯 MinHash stage 4", "in": 85, "kept": 80, "dropped": 5},
    {"stage": "final", "block": "🔐 - PII: pii", "in": 80, "kept": 80, "dropped": 0},
]


def test_every_dropping_block_has_its_own_row():
    rows = funnel(BLOCKS)
    assert [r["block"] for r in rows] == ["read", "🌐 langid", "🥇 fineweb quality", "🦠 decontamination",
                                          "minhash dedup"]
    dec = rows[3]
    assert (dec["in"], dec["dropped"], dec["out"], dec["reasons"], dec["changed"]) == (
        90, 5, 85, {"decontaminated": 5}, 7)
    mh = rows[4]
    assert (mh["in"], mh["dropped"], mh["out"], mh["reasons"]) == (85, 5, 80, {})  # dedup keeps its own 5 drops
    for r in rows:
        assert r["out"] == r["in"] - r["dropped"] == r["kept"]
        assert set(r) >= {"block", "stage", "in", "dropped", "out", "reasons"}


def test_decontamination_counts_dropped_and_changed():
    from finemed.corpus.stats import decont_counts

    assert decont_counts(BLOCKS) == {"in": 90, "dropped": 5, "changed": 7, "cut_chars": 2900}
    assert decont_counts([b for b in BLOCKS if "DECONT" not in b["block"]]) is None
