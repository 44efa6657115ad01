"""Bad input: counted skips with reasons, never a silent loss; a clear error for unusable input."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finemed.core.config import FinemedError
from finemed.corpus.build import CorpusBuildConfig, run

MED = ("Der Patient wurde am 12.03.2024 mit akuter Dyspnoe und Fieber stationär aufgenommen. "
       "Die Therapie mit Antibiotika wurde begonnen, das CRP sank deutlich. ") * 6


def test_bad_jsonl_and_parquet_are_counted(small_clf, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    good = [{"id": f"ok{i}", "text": MED + f" Fall {i}."} for i in range(3)]
    lines = [json.dumps(r).encode() for r in good]
    lines += [b'{"id": "bad-utf8", "text": "\xff\xfe kaputt"}', b"not json at all", b"[1, 2]",
              json.dumps({"id": "notext", "body": MED}).encode(), json.dumps({"id": "empty", "text": "   "}).encode(),
              json.dumps({"id": "huge", "text": "Befund " * 800_000}).encode()]
    (inp / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    res = run(CorpusBuildConfig(input=str(inp), classifier=str(small_clf), executor={"workers": 1},
                                pipeline={"dedup": {"enabled": False}}), tmp_path / "run")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["input_skipped"] == {"invalid_utf8": 1, "invalid_json": 1, "not_an_object": 1,
                                      "missing_text": 1, "empty_text": 1}
    length = next(b for b in stats["blocks"] if "length" in b["block"])
    assert length["reasons"] == {"too_long": 1}
    # every input line is accounted for: read + skipped = 9
    assert stats["input_docs"] == 9
    assert res.kept == 3

    pin = tmp_path / "pin"
    pin.mkdir()
    pq.write_table(pa.Table.from_pylist(good), pin / "good.parquet")
    (pin / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    run(CorpusBuildConfig(input=str(pin), classifier=str(small_clf), executor={"workers": 1},
                          pipeline={"dedup": {"enabled": False}}), tmp_path / "run2")
    stats = json.loads((tmp_path / "run2" / "stats.json").read_text())
    assert stats["input_skipped"] == {"corrupt_parquet": 1}
    assert stats["totals"]["docs"] == 3


def test_missing_or_unsupported_input_is_one_clear_error(small_clf, tmp_path):
    with pytest.raises(FinemedError, match="does not exist"):
        run(CorpusBuildConfig(input=str(tmp_path / "nope"), classifier=str(small_clf)), tmp_path / "r")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.csv").write_text("text\nhallo\n")
    with pytest.raises(FinemedError, match="no .parquet or .jsonl"):
        run(CorpusBuildConfig(input=str(tmp_path / "x"), classifier=str(small_clf)), tmp_path / "r")
