"""The tokenizer study samples each source across its stream (seeded), not its first bytes (issue 22, item 15)."""

from __future__ import annotations

import json
import random

from finemed.tokenizer.sources import language_texts, shuffle_buffer


def _shards(folder, n_shards=4, per_shard=200):
    folder.mkdir()
    for s in range(n_shards):
        with open(folder / f"shard{s}.jsonl", "w") as fh:
            for i in range(per_shard):
                fh.write(json.dumps({"text": f"shard{s} doc{i:03d} " + "wort " * 5}) + "\n")
    return folder


def test_budget_samples_every_shard_and_deep_into_each(tmp_path):
    src = str(_shards(tmp_path / "src"))
    texts, used = language_texts([src], 4_000, buffer=50)  # ~100 of 800 texts
    assert 3_990 <= used <= 4_000
    whole = texts[:-1]  # the last text is cut to fit the budget
    shards = {t.split()[0] for t in whole}
    positions = [int(t.split()[1][3:]) for t in whole]
    assert shards == {"shard0", "shard1", "shard2", "shard3"}  # the old reader stayed in shard0
    assert len(set(positions)) > 20  # many positions, not one run of a shard's head ...
    assert max(positions) > 20  # ... and past its first texts
    again, _ = language_texts([src], 4_000, buffer=50)
    other, _ = language_texts([src], 4_000, buffer=50, seed=1)
    assert again == texts and other != texts  # seeded


def test_full_budget_reads_every_text_once(tmp_path):
    src = str(_shards(tmp_path / "src", n_shards=3, per_shard=30))
    texts, _ = language_texts([src], 10**9, buffer=7)
    assert sorted(t.split()[0] + t.split()[1] for t in texts) == sorted(
        f"shard{s}doc{i:03d}" for s in range(3) for i in range(30))


def test_shuffle_buffer_is_a_seeded_permutation():
    items = [str(i) for i in range(100)]
    out = list(shuffle_buffer(iter(items), 10, random.Random(0)))
    assert sorted(out, key=int) == items and out != items
    assert out == list(shuffle_buffer(iter(items), 10, random.Random(0)))
