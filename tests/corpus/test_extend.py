"""Extend finemed: a corpus filter is one class with ``@block`` and its name in ``pipeline.steps``."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from datatrove.pipeline.filters.base_filter import BaseFilter

from finemed.core.config import ConfigError, validate
from finemed.corpus.build import CorpusBuildConfig, run
from finemed.corpus.registry import block

MED = ("Der Patient wurde am 12.03.2024 mit akuter Dyspnoe und Fieber stationär aufgenommen. "
       "Die Therapie mit Antibiotika wurde begonnen, das CRP sank deutlich. ") * 3


@block("no_lorem")
class NoLoremFilter(BaseFilter):
    name = "🚫 no lorem ipsum"

    def filter(self, doc):
        return "lorem ipsum" not in doc.text.lower() or (False, "lorem_ipsum")


def test_custom_filter_named_in_steps_counts_its_drops(tmp_path):
    docs = [{"id": f"ok{i}", "text": MED + f" Fall {i}."} for i in range(4)]
    docs += [{"id": f"lorem{i}", "text": MED + " Lorem ipsum dolor sit amet."} for i in range(2)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "docs.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    cfg = validate(CorpusBuildConfig, {"input": str(tmp_path / "in"), "executor": {"workers": 1}, "tokenizer": None,
                                       "pipeline": {"steps": ["length", "no_lorem", "pii"]}}, "test")
    res = run(cfg, tmp_path / "run")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    ours = next(b for b in stats["blocks"] if "no lorem ipsum" in b["block"])
    assert ours["reasons"] == {"lorem_ipsum": 2} and ours["in"] == 6 and ours["kept"] == 4
    assert {d["id"] for d in stats["dropped_samples"]["lorem_ipsum"]} == {"lorem0", "lorem1"}
    ids = {i for f in (tmp_path / "run" / "output").glob("*.parquet")
           for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}
    assert res.kept == 4 and ids == {"ok0", "ok1", "ok2", "ok3"}
    assert stats["classifier"] is None  # no domain step: no classifier trained or loaded


def test_unknown_step_is_one_line_listing_the_known_ones():
    with pytest.raises(ConfigError) as err:
        validate(CorpusBuildConfig, {"pipeline": {"steps": ["length", "no_such_filter"]}}, "corpus.yaml")
    msg = str(err.value)
    assert "\n" not in msg and "no_such_filter" in msg
    for name in ("langid", "domain", "gopher", "c4", "fineweb", "minhash", "pii", "no_lorem"):
        assert name in msg
