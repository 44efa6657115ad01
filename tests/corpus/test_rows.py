"""rows.sample_rows: a seeded sample that reads only some row groups and only the asked columns (issue 22, 13)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from finemed.corpus.rows import sample_rows


def _input(folder, files=5, groups=20, per_group=50):
    folder.mkdir()
    for f in range(files):
        ids = [f"f{f}-{i}" for i in range(groups * per_group)]
        table = pa.table({"id": ids, "text": [f"Text {i}" if not i.endswith("-7") else "" for i in ids],
                          "source": ["web"] * len(ids), "payload": ["x" * 200] * len(ids)})
        pq.write_table(table, folder / f"shard{f}.parquet", row_group_size=per_group)
    return folder


def test_sample_reads_a_bounded_random_subset_of_row_groups_and_columns(tmp_path, monkeypatch):
    src = _input(tmp_path / "in")  # 5,000 rows in 100 row groups
    reads = []
    real = pq.ParquetFile.read_row_group

    def recording(self, i, columns=None, **kw):
        table = real(self, i, columns=columns, **kw)
        reads.append((tuple(table.column_names), table.num_rows))
        return table

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", recording)
    rows, stats = sample_rows(src, 100, seed=1, columns=["id", "text"], oversample=4, workers=2)
    assert len(rows) == 100 and all(r["text"] for r in rows) and set(rows[0]) == {"id", "text"}
    assert {cols for cols, _ in reads} == {("id", "text")}  # never payload or source
    assert stats["rows_read"] == sum(n for _, n in reads) == 400 and stats["units_read"] == 8
    assert stats["units_total"] == 100
    assert len({r["id"].split("-")[0] for r in rows}) >= 3  # row groups from across the files, not the first
    again, _ = sample_rows(src, 100, seed=1, columns=["id", "text"], oversample=4, workers=2)
    other, _ = sample_rows(src, 100, seed=2, columns=["id", "text"], oversample=4, workers=2)
    assert [r["id"] for r in again] == [r["id"] for r in rows] and {r["id"] for r in other} != {r["id"] for r in rows}


def test_small_input_is_read_whole_and_jsonl_by_file(tmp_path):
    src = _input(tmp_path / "in", files=1, groups=2, per_group=10)
    rows, stats = sample_rows(src, 1000, columns=["id", "text"])
    assert stats["rows_read"] == 20 and len(rows) == 19  # f0-7 has empty text
    jl = tmp_path / "jl"
    jl.mkdir()
    for f in range(4):
        (jl / f"{f}.jsonl").write_text("\n".join(json.dumps({"id": f"{f}-{i}", "text": "t", "x": 1})
                                                for i in range(30)))
    rows, stats = sample_rows(jl, 10, columns=["id", "text"], oversample=2)
    assert stats["rows_read"] == 30 and stats["units_read"] == 1 and set(rows[0]) == {"id", "text"}
