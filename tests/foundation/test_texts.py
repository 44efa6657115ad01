"""The text-source grammar and the held-out split: streaming readers, errors, hf: dirs, a stable disjoint split."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finemed.core.config import FinemedError
from finemed.core.texts import heldout_score, heldout_texts, iter_texts, split_heldout, train_texts

TEXTS = ["Der Patient hat Fieber.", "Die Therapie wirkt.", "The patient is fine now.", "Kurz."]


def test_heldout_split_is_stable_and_disjoint():
    texts = [f"Dokument Nummer {i} über Diabetes." for i in range(400)]
    train, held = split_heldout(texts, 0.2, seed=3)
    assert set(train).isdisjoint(held) and len(train) + len(held) == 400
    assert 50 <= len(held) <= 110
    assert split_heldout(list(reversed(texts)), 0.2, seed=3)[1] == list(reversed(held))
    assert all(heldout_score(t, 3) < 0.2 for t in held)
    assert len(split_heldout(texts, 0.2, seed=3, max_heldout=10)[1]) == 10


def test_streaming_readers_jsonl_parquet_txt_and_errors(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in TEXTS) + "\n\n", encoding="utf-8")
    pq.write_table(pa.table({"text": TEXTS, "x": [1, 2, 3, 4]}), tmp_path / "b.parquet", row_group_size=2)
    (tmp_path / "c.txt").write_text("eins\nzwei\n\n\ndrei\n", encoding="utf-8")
    assert list(iter_texts(str(tmp_path / "a.jsonl"))) == TEXTS
    assert list(iter_texts(str(tmp_path / "b.parquet"))) == TEXTS
    assert list(iter_texts(str(tmp_path / "c.txt"))) == ["eins\nzwei", "drei"]
    assert list(iter_texts(str(tmp_path))) == TEXTS  # a folder with parquet files is read for those only
    (tmp_path / "b.parquet").unlink()
    assert len(list(iter_texts(str(tmp_path)))) == 6  # else every jsonl/txt file in it
    assert list(iter_texts(str(tmp_path / "a.jsonl"), 2)) == TEXTS[:2]
    gen = iter_texts(str(tmp_path / "a.jsonl"))
    assert next(gen) == TEXTS[0]  # lazy: a generator, not a list
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(FinemedError, match=r"bad.jsonl:2: no 'text' field"):
        list(iter_texts(str(tmp_path / "bad.jsonl")))
    with pytest.raises(FinemedError, match="no such file"):
        list(iter_texts(str(tmp_path / "missing.jsonl")))


def test_hf_datasets_streaming_from_a_local_dir(tmp_path):
    pq.write_table(pa.table({"text": TEXTS}), tmp_path / "train.parquet")
    assert list(iter_texts(f"hf:{tmp_path}")) == TEXTS


def test_heldout_and_train_texts_partition_a_source(tmp_path):
    texts = [f"Befund {i}: Blutdruck normal." for i in range(60)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts), encoding="utf-8")
    held = heldout_texts(str(tmp_path / "t.jsonl"), 0.3, seed=1)
    train = list(train_texts(str(tmp_path / "t.jsonl"), 0.3, seed=1))
    assert held and train and set(held).isdisjoint(train) and set(held) | set(train) == set(texts)
    assert heldout_texts(str(tmp_path / "t.jsonl"), 0.3, seed=1, max_docs=2) == held[:2]
