"""Benchmark decontamination (step ``decont``): which evaluation texts, and their n-gram hash index.

A training doc that shares one ``n_grams``-word n-gram (13 by default, as in GPT-3 and datatrove's
decontamination) with any evaluation item is dropped, reason ``decontaminated`` in ``stats.json``.

datatrove's :class:`~datatrove.pipeline.decont.NGramsDecontFilter` does the filtering unchanged (its
``simplify_text`` normalisation, word tokenizer, ``ngrams`` and xxhash64). Its index builder,
``NGramsDecontIndexer``, is not used: it declares ``lighteval`` as a required dependency (not installed;
the step cannot even be constructed without it, and its ``run`` loads lighteval tasks from the Hub), and it
must run as a separate single-task pipeline stage. The index is built here in-process instead, the way the
indexer's ``compute_hashes`` does it (datatrove's ``simplify_text`` → word tokenizer → ``ngrams`` → hash)
on every n-gram of each eval text, written in datatrove's ``<task>.index.hashes`` format and cached by the
fingerprint of the sets.

``sets``: ``builtin:`` names and jsonl/parquet/txt paths (:mod:`finemed.texts`; ``PATH#field``), plus
``benchmark:germedbench`` (every GerMedBench task: questions, options, explanations, case texts and the
other string fields) and ``benchmark:germediq`` (GerMedIQ questions). MMLU-de/MedQA-de: add their files
as paths. Items shorter than ``n_grams`` words have no n-gram and cannot be matched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from pydantic import Field

from finemed.config import ConfigError, StageConfig
from finemed.data import loaders
from finemed.data.registry import cache_dir
from finemed.logs import get_logger, progress
from finemed.texts import iter_texts

log = get_logger(__name__)
BENCHMARKS = ("benchmark:germedbench", "benchmark:germediq")
GERMEDBENCH_TASKS = ("med_qa", "patient_text", "med_extraction", "icd10_coding")
INDEX_VERSION = 1


def default_sets() -> list[str]:
    """Every benchmark finemed evaluates on (bundled ones; MMLU-de/MedQA-de are added as paths)."""
    squad = [f"builtin:{name}{field}" for name in ("xquad.de", "xquad.en", "xquad.es", "mlqa.de")
             for field in ("", "#question")]
    return [*BENCHMARKS, *squad]


class DecontConfig(StageConfig):
    enabled: bool = True
    sets: list[str] = Field(default_factory=default_sets)
    n_grams: int = Field(13, ge=3)
    language: str = "deu"  # datatrove word tokenizer used on both the eval texts and the docs


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _germedbench() -> Iterator[str]:
    for task in GERMEDBENCH_TASKS:
        for row in loaders.load_germedbench(task):
            fields = {k: v for k, v in row.items() if k not in ("id", "fachbereich", "schwierigkeitsgrad")}
            yield from _strings(fields)
            if "question" in row:  # the MCQ item as a prompt shows it: n-grams across question/options/explanation
                opts = "\n".join(f"{k}) {v}" for k, v in (row.get("options") or {}).items())
                yield f"{row['question']}\n{opts}\n{row.get('explanation', '')}"


def eval_texts(spec: str) -> Iterator[str]:
    """The texts of one evaluation set ``spec``."""
    if spec == "benchmark:germedbench":
        yield from _germedbench()
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
    raw = json.dumps([INDEX_VERSION, cfg.n_grams, cfg.language, stamp], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def task_name(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in spec).strip("_")[:80]


def build_index(cfg: DecontConfig, root: Path | None = None) -> Path:
    """Write ``<task>.index.hashes`` per set (datatrove's format) into a cached folder; return it."""
    import numpy as np
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.text import ngrams, simplify_text
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    out = Path(root or cache_dir() / "corpus" / "decont") / _fingerprint(cfg)
    if (out / "done").is_file():
        return out
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    dt = ngrams_config(cfg)
    dtype = np.dtype(dt.hash_config.np_descr)
    tokenizer, hash_func = load_word_tokenizer(cfg.language), create_hash_func(dt.hash_config)
    for spec in progress(cfg.sets, "decont index (eval sets)"):
        hashes: set[int] = set()
        for text in eval_texts(spec):
            tokens = tokenizer.word_tokenize(simplify_text(text, dt.norm_config))
            hashes.update(hash_func(" ".join(g)) for g in ngrams(tokens, cfg.n_grams))
        log.info("decont: %d %d-gram hashes from %s", len(hashes), cfg.n_grams, spec)
        np.array(sorted(hashes), dtype=dtype).tofile(tmp / f"{task_name(spec)}.index.hashes")
    (tmp / "done").write_text("\n".join(cfg.sets) + "\n", encoding="utf-8")
    if (out / "done").is_file():  # another process finished first
        shutil.rmtree(tmp)
    else:
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def ngrams_config(cfg: DecontConfig):
    """datatrove's n-gram config (normalisation, hash) with our ``n_grams``; every n-gram of an eval text counts."""
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig

    return NGramsDecontConfig(n_grams=cfg.n_grams, find_query_ngrams=False, find_overlap_ngrams=False)
