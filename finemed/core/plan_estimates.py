"""Shared arithmetic of the ``@planner`` estimates of the inference, data and CPU stages (``finemed plan``).

Training stages size themselves with :mod:`finemed.core.training_plan`. The other stages use the same keys, so the
totals sum them (``gpu_hours``, ``memory_gib_per_process``, ``disk_gib``, ``judge_calls``, ``cpu_hours``), and
state their assumptions under ``assumes``. The numbers are rough by design:

- a forward pass costs ``2·P`` FLOPs per token (Kaplan et al. 2020, attention terms left out); prefill and
  log-likelihood scoring run at the plan's MFU;
- greedy decoding is memory-bound: each decode step of a batch reads the 16-bit weights once, so its time is
  ``max(compute time, steps · weight bytes / HBM bandwidth)``. No library gives this for an arbitrary model
  (the roofline is two lines), hence :data:`HBM_GBPS` (vendor data sheets);
- text that is not tokenised at plan time counts ``4`` bytes per token (:data:`BYTES_PER_TOKEN`);
- CPU rates are the measured ones of ``make bench-scaling`` (README, "How it scales").

A model named by the path an earlier stage writes (``${stage:merge}/merged``) is sized as the model that
stage's estimate names (its ``model`` key), since the path does not exist before the run.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from finemed.core.config import FinemedError
from finemed.core.texts import iter_texts
from finemed.models import arch
from finemed.models.compute import PEAK_TFLOPS
from finemed.models.memory import GIB, inference_memory

BYTES_PER_TOKEN = 4.0
# HBM bandwidth per GPU, GB/s (vendor data sheets)
HBM_GBPS = {"h100": 3350.0, "h200": 4800.0, "a100": 2039.0, "l40s": 864.0, "a10g": 600.0}
# measured CPU seconds per unit (README "How it scales", benchmarks/scaling.py on the 2-core box)
CPU_S = {"corpus_doc": 0.015, "annotate_doc": 0.006, "fasttext_doc": 90.0 / 260_000, "tokenizer_train_gb": 300.0,
         "tokenizer_eval_sentence": 240.0 / 1e6, "tokenize_token": 1.2e-6}
DISK_MBPS = 500.0  # sequential read/write of model shards (an assumed local NVMe/SSD rate)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
JUDGMENT_BYTES = 1400  # eval.pairwise: judgments.jsonl and the judge cache per judgment (measured)


def stage_hints(ctx, *names: str) -> dict[str, Any]:
    """The recipe's ``plan:`` hints for this stage (by its name, else the first of ``names`` given)."""
    hints = getattr(ctx, "hints", {}) or {}
    for key in (getattr(ctx, "stage_name", ""), *names):
        if key and isinstance(hints.get(key), dict):
            return hints[key]
    return {}


def earlier(ctx, path: str | None) -> dict[str, Any] | None:
    """The estimate of the earlier stage whose output dir holds ``path`` (None: not produced in this plan)."""
    if not path:
        return None
    for out, est in (getattr(ctx, "earlier", {}) or {}).items():
        if str(path) == out or str(path).startswith(out.rstrip("/") + "/"):
            return est
    return None


def is_remote(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def model_spec(spec: str | None, ctx) -> str | None:
    """A spec :func:`finemed.models.arch.config_dict` can read, or None where the size is unknown."""
    if not spec or is_remote(spec):
        return None
    spec = spec.removeprefix("local:")
    prior = earlier(ctx, spec)
    if prior is not None:
        return prior.get("model")
    try:
        arch.config_dict(spec)
    except FinemedError:
        return None
    return spec


def sized(spec: str, ctx) -> str:
    """``spec``, or the model an earlier stage's estimate names for the path it writes (for training planners)."""
    return model_spec(spec, ctx) or spec


@lru_cache(maxsize=64)
def _size(spec: str) -> dict[str, Any]:
    cfg = arch.config_dict(spec)
    return {"parameters": arch.parameter_counts(spec)["total"], "layers": cfg.get("num_hidden_layers", 0),
            "hidden": cfg.get("hidden_size", 0), "vocab": cfg.get("vocab_size", 0)}


def model_size(spec: str | None, ctx) -> dict[str, Any]:
    """``{model, parameters, layers, hidden, vocab}`` of ``spec`` ({} where it cannot be sized before the run)."""
    resolved = model_spec(spec, ctx)
    if resolved is None:
        return {}
    try:
        return {"model": resolved, **_size(resolved)}
    except (FinemedError, OSError, ValueError, KeyError):
        return {}


def inference(spec: str | None, ctx, *, tokens: float, decode_steps: float = 0.0,
              bytes_per_param: int = 2) -> dict[str, Any]:
    """Forward-pass cost of ``tokens`` tokens through ``spec`` (``decode_steps`` batched decode steps, each
    reading the weights once); {} with a note where the model cannot be sized."""
    if ctx.gpu not in PEAK_TFLOPS or ctx.gpu not in HBM_GBPS:
        raise FinemedError(f"gpu {ctx.gpu!r} unknown; expected one of {', '.join(PEAK_TFLOPS)}")
    size = model_size(spec, ctx)
    if not size:
        return {"model": spec, "tokens": int(tokens), "note": "model size unknown before the run: not costed"}
    params = size["parameters"]
    flops = 2.0 * params * tokens
    compute_s = flops / (ctx.mfu * PEAK_TFLOPS[ctx.gpu] * 1e12)
    memory_s = decode_steps * bytes_per_param * params / (HBM_GBPS[ctx.gpu] * 1e9)
    return {"model": size["model"], "parameters": params, "tokens": int(tokens), "flops": flops,
            "gpu_hours": round(max(compute_s, memory_s) / 3600, 6),
            "memory_gib_per_process": inference_memory(params, bytes_per_param=bytes_per_param)}


def gib(nbytes: float) -> float:
    return round(nbytes / GIB, 3)


def cpu(seconds: float) -> dict[str, Any]:
    """``cpu_hours`` and a class a reader takes in at a glance."""
    cls = ("seconds" if seconds < 60 else "minutes" if seconds < 3600 else "hours" if seconds < 86400 else "days")
    return {"cpu_hours": round(seconds / 3600, 4), "cpu_time_class": cls}


def readable_now(source: str) -> bool:
    """Whether a text/data source can be read at plan time (bundled, or a local path that exists)."""
    if source.startswith("builtin:"):
        return True
    if source.startswith(("hf:", "hf://")) or "://" in source:
        return False
    return Path(source.split("#", 1)[0]).expanduser().exists()


@lru_cache(maxsize=64)
def _text_stats(source: str, max_docs: int | None) -> tuple[int, int]:
    docs = nbytes = 0
    for text in iter_texts(source, max_docs):
        docs += 1
        nbytes += len(text.encode("utf-8"))
    return docs, nbytes


def text_stats(source: str, max_docs: int | None = None, max_chars: int | None = None) -> tuple[int, int] | None:
    """(docs, bytes) of a text source readable now, each doc capped at ``max_chars`` (None: not readable now)."""
    if not readable_now(source):
        return None
    try:
        docs, nbytes = _text_stats(source, max_docs)
    except (FinemedError, OSError, ValueError):
        return None
    if max_chars and docs:
        nbytes = min(nbytes, docs * max_chars)
    return docs, nbytes


def count_rows(path: str | None) -> int | None:
    """Rows of a local parquet/jsonl file or dir of them (parquet from its metadata); None: not countable now."""
    if not path or not readable_now(path):
        return None
    p = Path(path).expanduser()
    files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.suffix in (".parquet", ".jsonl", ".csv"))
    rows = 0
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows += pq.ParquetFile(f).metadata.num_rows
        elif f.suffix in (".jsonl", ".csv"):  # a CSV's header line, if any, counts as one row
            with open(f, "rb") as fh:
                rows += sum(1 for line in fh if line.strip())
    return rows if files else None


def decode_steps(items: int, batch_size: int, max_new_tokens: int) -> float:
    return math.ceil(items / max(batch_size, 1)) * max_new_tokens


def merge_cost(model: str | None, ctx, *, inputs: int, dtype: str) -> dict[str, Any]:
    """One mergekit merge of ``inputs`` models: output disk, host memory (a 1 GB output shard plus one layer of
    each input, as mergekit's lazy loader holds) and I/O-bound CPU time at :data:`DISK_MBPS`."""
    size = model_size(model, ctx)
    if not size:
        return {"model": model, "note": "model size unknown before the run: not costed"}
    params, width = size["parameters"], DTYPE_BYTES.get(dtype, 4)
    out = params * width
    layer = params / max(size["layers"], 1) * 4 * inputs
    return {"model": size["model"], "parameters": params, "merged_model_gib": gib(out),
            "merge_memory_gib": gib(1.0e9 + layer + 1.5 * GIB),
            **cpu((inputs * 2 * params + out) / (DISK_MBPS * 1e6))}
