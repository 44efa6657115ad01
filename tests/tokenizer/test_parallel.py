"""Parallel eval data: formats and bad input (unknown language, misaligned files)."""

from __future__ import annotations

import pytest

from finemed.core.config import FinemedError
from finemed.tokenizer.parallel import load_parallel


def _sib(root, lang, rows, split="dev"):
    d = root / lang
    d.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{i}\tcat\t{t}\n" for i, t in rows)
    (d / f"{split}.tsv").write_text("index_id\tcategory\ttext\n" + body, encoding="utf-8")


def test_bundled_sib200_all_splits_aligned():
    data = load_parallel("sib200", ["eng_Latn", "deu_Latn"])
    assert len(data) == 1004 and len(data.texts["deu_Latn"]) == 1004
    dev_test = load_parallel(None, ["eng_Latn", "fra_Latn"], ("dev", "test"))
    assert len(dev_test) == 303


def test_bundled_xquad_contexts():
    data = load_parallel("xquad", ["eng_Latn", "spa_Latn"])
    assert len(data) == 240


def test_builtin_prefix_names_the_bundled_sets():
    assert load_parallel("builtin:xquad", ["deu_Latn"]).texts == load_parallel("xquad", ["deu_Latn"]).texts
    assert len(load_parallel("builtin:sib200", ["deu_Latn"], ("dev",))) == 99


def test_unknown_language_code():
    with pytest.raises(FinemedError, match=r"unknown language code 'xx_Latn'.*available: .*deu_Latn"):
        load_parallel("sib200", ["eng_Latn", "xx_Latn"])
    with pytest.raises(FinemedError, match="unknown language code 'fra_Latn' in XQuAD"):
        load_parallel("xquad", ["fra_Latn"])


def test_sib_like_misaligned_ids_and_counts(tmp_path):
    _sib(tmp_path, "eng_Latn", [(1, "a b"), (2, "c d")])
    _sib(tmp_path, "deu_Latn", [(1, "e f"), (3, "g h")])
    with pytest.raises(FinemedError, match=r"misaligned .*row 2 has id '3' in deu_Latn but '2' in eng_Latn"):
        load_parallel(tmp_path, ["eng_Latn", "deu_Latn"], ("dev",))
    _sib(tmp_path, "deu_Latn", [(1, "e f")])
    with pytest.raises(FinemedError, match="misaligned .*deu_Latn has 1 rows, eng_Latn has 2"):
        load_parallel(tmp_path, ["eng_Latn", "deu_Latn"], ("dev",))
    _sib(tmp_path, "deu_Latn", [(1, "e f"), (2, "g h")])
    assert load_parallel(tmp_path, ["eng_Latn", "deu_Latn"], ("dev",)).texts["deu_Latn"] == ["e f", "g h"]


def test_per_language_txt_and_tsv(tmp_path):
    (tmp_path / "eng_Latn.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "deu_Latn.txt").write_text("eins\nzwei\n", encoding="utf-8")
    with pytest.raises(FinemedError, match="deu_Latn has 2 rows, eng_Latn has 3"):
        load_parallel(tmp_path, ["eng_Latn", "deu_Latn"])
    (tmp_path / "deu_Latn.txt").write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    assert load_parallel(tmp_path, ["eng_Latn", "deu_Latn"]).texts["deu_Latn"][2] == "drei"
    other = tmp_path / "tsv"
    other.mkdir()
    (other / "eng_Latn.tsv").write_text("id\ttext\na\tone\nb\ttwo\n", encoding="utf-8")
    (other / "deu_Latn.tsv").write_text("id\ttext\na\teins\nc\tzwei\n", encoding="utf-8")
    with pytest.raises(FinemedError, match="row 2 has id 'c'"):
        load_parallel(other, ["eng_Latn", "deu_Latn"])


def test_single_tsv(tmp_path):
    f = tmp_path / "pairs.tsv"
    f.write_text("id\teng_Latn\tdeu_Latn\n1\tthe cat\tdie Katze\n2\ta dog\n", encoding="utf-8")
    with pytest.raises(FinemedError, match=r"misaligned .*pairs.tsv:3: 2 columns, header has 3"):
        load_parallel(f, ["eng_Latn", "deu_Latn"])
    f.write_text("id\teng_Latn\tdeu_Latn\n1\tthe cat\tdie Katze\n", encoding="utf-8")
    data = load_parallel(f, ["eng_Latn", "deu_Latn"])
    assert data.ids == ["1"] and data.texts["deu_Latn"] == ["die Katze"]
    with pytest.raises(FinemedError, match="unknown language code 'ita_Latn'"):
        load_parallel(f, ["ita_Latn"])


def test_bad_specs(tmp_path):
    with pytest.raises(FinemedError, match="no such file or folder"):
        load_parallel(tmp_path / "nope", ["eng_Latn"])
    with pytest.raises(FinemedError, match="--langs is empty"):
        load_parallel("sib200", [])
    with pytest.raises(FinemedError, match="unknown split 'validation'"):
        load_parallel("sib200", ["eng_Latn"], ("validation",))
