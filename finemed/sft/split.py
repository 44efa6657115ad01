"""Stage ``data.qa_split``: SQuAD-format QA sets split by article into a train file and a test file.

Every source (XQuAD-en, MLQA-de, any SQuAD-format file) is split with :func:`finemed.data.qa_splits.split_articles`
(a title's hash decides its side; no article on both, asserted here again over the written files). The test
file keeps a seeded sample of at most ``max_test`` questions per source, spread over the test articles
(round-robin) and, with ``max_context_chars``, only paragraphs up to that length (shorter prompts: a CPU budget;
the filter is the same for every model scored). Sources are interleaved article by article, so the first N
questions of the test file mix the languages.

Outputs: ``train.json`` and ``test.json`` (SQuAD v1.1 layout, for ``train.sft``/``train.distill`` and
``eval.qa``'s ``squad_v1_*`` tasks with ``data:``), ``train_contexts.jsonl`` (``{"text"}``, the train paragraphs
as plain text) and ``split.json`` (each test question's language and source, the titles on each side).
"""

from __future__ import annotations

import json
from itertools import zip_longest
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from finemed.core.artifacts import atomic_write_json, atomic_write_text
from finemed.core.config import FinemedError, StageConfig
from finemed.core.plan_estimates import cpu
from finemed.core.stages import StageResult, planner, stage
from finemed.data.loaders import QAExample, load_squad
from finemed.data.qa_splits import load_qa_source, sample_test, split_articles, to_squad


class QASource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str  # a SQuAD-format file or a bundled name
    lang: str = "en"  # the QA metric's language (answer normalisation)


class QASplitConfig(StageConfig):
    sources: list[QASource] = [QASource(data="xquad.en", lang="en"), QASource(data="mlqa.de", lang="de")]
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    max_test: int | None = Field(None, ge=1, description="test questions kept per source (None: all)")
    max_context_chars: int | None = Field(None, ge=1, description="test paragraphs up to this length only")
    seed: int = 0


class QASplitResult(StageResult):
    key_metric: ClassVar[str] = "test_questions"
    train_file: str
    test_file: str
    train_questions: int
    test_questions: int
    per_source: dict[str, dict[str, int]]


def _interleave_articles(parts: list[list[QAExample]]) -> list[QAExample]:
    grouped = []
    for exs in parts:
        order: dict[str, list[QAExample]] = {}
        for e in exs:
            order.setdefault(e.title, []).append(e)
        grouped.append(list(order.values()))
    return [e for row in zip_longest(*grouped) for arts in row if arts for e in arts]


@stage("data.qa_split")
def run(config: QASplitConfig, run_dir: Path) -> QASplitResult:
    """Write ``train.json``, ``test.json``, ``train_contexts.jsonl`` and ``split.json``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trains, tests, info, langs = [], [], {}, {}
    for src in config.sources:
        exs = load_qa_source(src.data)
        train, test = split_articles(exs, config.test_fraction, config.seed)
        test = sample_test(test, config.max_test, config.max_context_chars, config.seed)
        if not test:
            raise FinemedError(f"data.qa_split: {src.data} kept no test question; raise max_context_chars or "
                               f"test_fraction")
        trains.append(train)
        tests.append(test)
        langs.update({e.id: src.lang for e in test})
        info[src.data] = {"train_questions": len(train), "train_articles": len({e.title for e in train}),
                          "test_questions": len(test), "test_articles": len({e.title for e in test})}
    train_all, test_all = [e for t in trains for e in t], _interleave_articles(tests)
    if len({e.id for e in test_all}) != len(test_all):
        raise FinemedError("data.qa_split: question ids repeat across sources; give sources with distinct ids")
    atomic_write_text(run_dir / "train.json", json.dumps(to_squad(train_all), ensure_ascii=False))
    atomic_write_text(run_dir / "test.json", json.dumps(to_squad(test_all), ensure_ascii=False))
    written_train, written_test = load_squad(run_dir / "train.json"), load_squad(run_dir / "test.json")
    shared = {e.title for e in written_train} & {e.title for e in written_test}
    assert not shared, f"data.qa_split: articles in both files: {sorted(shared)[:3]}"
    if {e.context for e in written_train} & {e.context for e in written_test}:
        raise FinemedError("data.qa_split: a paragraph appears under titles on both sides; deduplicate the source")
    contexts = list(dict.fromkeys(e.context for e in train_all))
    atomic_write_text(run_dir / "train_contexts.jsonl",
                      "".join(json.dumps({"text": c}, ensure_ascii=False) + "\n" for c in contexts))
    atomic_write_json(run_dir / "split.json", {
        "lang": langs, "source": {e.id: s.data for s, t in zip(config.sources, tests) for e in t},
        "train_titles": sorted({e.title for e in train_all}), "test_titles": sorted({e.title for e in test_all})})
    return QASplitResult(train_file=str(run_dir / "train.json"), test_file=str(run_dir / "test.json"),
                         train_questions=len(written_train), test_questions=len(written_test), per_source=info)


@planner("data.qa_split")
def plan(config: QASplitConfig, ctx) -> dict:
    """``finemed plan``: questions per source x test_fraction (capped at max_test) go to test.json; CPU seconds."""
    sizes = {s.data: len(load_qa_source(s.data)) for s in config.sources}
    test = {k: min(int(n * config.test_fraction), config.max_test or n) for k, n in sizes.items()}
    context = config.max_context_chars or 700
    return {"questions": sizes, "test_questions": sum(test.values()), "test_context_bytes": context,
            **cpu(0.0002 * sum(sizes.values())), "disk_gib": round(2 * sum(sizes.values()) * 900 / (1 << 30), 4),
            "assumes": "test questions ~ test_fraction of each source (split by article, so only roughly); "
                       f"test contexts ~{context} chars; train and test files hold each question once"}
