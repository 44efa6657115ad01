"""Benchmark decontamination (step ``decont``): which evaluation texts, and their n-gram index.

The rule (:mod:`finemed.corpus.decont_rule`): a doc is dropped only when it holds most of one benchmark item
(PaLM: ``leak_share`` of the item's ``n_grams``-word n-grams) or needs more than ``max_cuts`` cuts (lm-eval's
janitor); any other shared n-gram is cut out with ``window_chars`` either side, and boilerplate n-grams (in
``max_item_df`` or more benchmark items) and mostly-numeric ones (lab panels, dates) are ignored. Drop reason
``decontaminated``; ``stats.json`` counts dropped and changed docs.

The index is built in-process, one item per benchmark row (an MCQ item is its question, options and
explanation as a prompt shows them; a case is its text and answer fields), because the item frequency of each
n-gram is what tells boilerplate from a leak. datatrove's ``NGramsDecontIndexer`` keeps only a flat hash set
(no item frequency), declares ``lighteval`` as a required dependency and loads its tasks from the Hub. The
index is cached by the fingerprint of the sets and the normalisation.

``sets``: ``builtin:`` names and jsonl/parquet/txt paths (:mod:`finemed.core.texts`; ``PATH#field``), plus
``benchmark:germedbench`` (every GerMedBench task: questions, options, explanations, case texts and the
other string fields; ``benchmark:germedbench/TASK`` for one task) and ``benchmark:germediq`` (GerMedIQ
questions). MMLU-de/MedQA-de: add their files as paths. Items shorter than ``n_grams``
words have no n-gram and cannot be matched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import Field

from finemed.core.config import ConfigError, StageConfig
from finemed.core.logs import get_logger, progress
from finemed.core.texts import iter_texts
from finemed.corpus.decont_rule import DecontIndex, hash_func, item_hashes
from finemed.data import loaders
from finemed.data.registry import cache_dir

log = get_logger(__name__)
BENCHMARKS = ("benchmark:germedbench", "benchmark:germediq")
GERMEDBENCH_TASKS = ("med_qa", "patient_text", "med_extraction", "icd10_coding")
INDEX_VERSION = 2  # 2: one item per row, item frequency per n-gram, janitor normalisation
INDEX_FILE = "index.npz"


def default_sets() -> list[str]:
    """Every benchmark finemed evaluates on (bundled ones; MMLU-de/MedQA-de are added as paths)."""
    squad = [f"builtin:{name}{field}" for name in ("xquad.de", "xquad.en", "xquad.es", "mlqa.de")
             for field in ("", "#question")]
    return [*BENCHMARKS, *squad]


class DecontConfig(StageConfig):
    enabled: bool = True
    sets: list[str] = Field(default_factory=default_sets)
    n_grams: int = Field(13, ge=3)  # words per n-gram (GPT-3, lm-eval's janitor)
    window_chars: int = Field(200, ge=0)  # chars cut either side of a matched n-gram (janitor)
    max_cuts: int = Field(10, ge=0)  # a doc needing more separate cuts is dropped (janitor's too_dirty_cutoff)
    leak_share: float = Field(0.7, gt=0.0, le=1.0)  # drop when one item has this share of its n-grams in a doc (PaLM)
    max_item_df: int = Field(3, ge=1)  # n-grams in this many benchmark items or more are boilerplate: ignored
    max_numeric_share: float = Field(0.5, gt=0.0, le=1.0)  # ignore n-grams with this share of numbers/units or more
    # n-grams shared by this many docs of the same pass are corpus boilerplate (not cut); None: off (see README)
    max_corpus_df: int | None = Field(None, ge=2)
    max_held_docs: int = Field(100_000, ge=1)  # docs held for the corpus counts before the oldest is decided


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def row_items(row: dict) -> list[str]:
    """A GerMedBench row's items: an MCQ as a prompt shows it (question, options, explanation) is one item; a
    case gives one item per string field (the case text, each answer), so a doc holding the case text alone
    covers all of its item (PaLM's share)."""
    if "question" in row:
        opts = "\n".join(f"{k}) {v}" for k, v in (row.get("options") or {}).items())
        return [f"{row['question']}\n{opts}\n{row.get('explanation', '')}"]
    return list(_strings({k: v for k, v in row.items() if k not in ("id", "fachbereich", "schwierigkeitsgrad")}))


def _germedbench(tasks: tuple[str, ...] = GERMEDBENCH_TASKS) -> Iterator[str]:
    for task in tasks:
        for row in loaders.load_germedbench(task):
            yield from row_items(row)


def eval_texts(spec: str) -> Iterator[str]:
    """The items of one evaluation set ``spec``, one text per item."""
    if spec == "benchmark:germedbench":
        yield from _germedbench()
    elif spec.startswith("benchmark:germedbench/"):  # one task, e.g. benchmark:germedbench/med_qa
        task = spec.split("/", 1)[1]
        if task not in GERMEDBENCH_TASKS:
            raise ConfigError(f"pipeline.decont.sets: unknown GerMedBench task in {spec!r}; tasks: "
                              f"{', '.join(GERMEDBENCH_TASKS)}")
        yield from _germedbench((task,))
    elif spec == "benchmark:germediq":
        yield from dict.fromkeys(r["question"] for r in loaders.load_germediq("llm") if r.get("question"))
    elif spec.startswith("benchmark:"):
        raise ConfigError(f"pipeline.decont.sets: unknown {spec!r}; benchmarks: {', '.join(BENCHMARKS)}")
    else:
        yield from iter_texts(spec)


def _fingerprint(cfg: DecontConfig) -> str:
    stamp = []
    for spec in cfg.sets:
        p = Path(spec.partition("#")[0])
        stamp.append([spec, p.stat().st_mtime_ns if p.exists() else None])
    raw = json.dumps([INDEX_VERSION, cfg.n_grams, stamp], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def named_items(cfg: DecontConfig) -> Iterator[tuple[str, str]]:
    """(``set#row``, text) of every benchmark item in ``cfg.sets``."""
    for spec in progress(cfg.sets, "decont index (eval sets)"):
        for row, text in enumerate(eval_texts(spec)):
            yield f"{spec}#{row}", text


def index_from_items(items: Iterable[tuple[str, str]], n_grams: int) -> DecontIndex:
    """The index of named items; a text seen before and items shorter than ``n_grams`` words are skipped."""
    hasher = hash_func()
    seen: set[str] = set()
    hashes, names = [], []
    for name, text in items:
        if text in seen:
            continue
        seen.add(text)
        hs = item_hashes(text, n_grams, hasher)
        if hs:
            hashes.append(hs)
            names.append(name)
    log.info("decont: %d benchmark items with a %d-gram", len(names), n_grams)
    return DecontIndex.from_items(hashes, names)


def build_index(cfg: DecontConfig, root: Path | None = None) -> Path:
    """Write the benchmark index (``index.npz``, :class:`DecontIndex`) into a cached folder; return the file."""
    out = Path(root or cache_dir() / "corpus" / "decont") / _fingerprint(cfg)
    if (out / "done").is_file():
        return out / INDEX_FILE
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    index_from_items(named_items(cfg), cfg.n_grams).save(tmp / INDEX_FILE)
    (tmp / "done").write_text("\n".join(cfg.sets) + "\n", encoding="utf-8")
    if (out / "done").is_file():  # another process finished first
        shutil.rmtree(tmp)
    else:
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out / INDEX_FILE
