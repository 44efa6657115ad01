"""Stage ``train.cache_logits``: run the teacher once over the KD training data and store its top-k logits.

The cache (:mod:`finemed.distill.logit_cache`) is written into the run dir and is resumable: a rerun after a
crash recomputes only unfinished shards. ``train.distill`` with ``mode: offline`` and ``cache_dir:`` pointing
at such a run dir reuses it for any student that shares the teacher's tokenizer.

The config classes here are shared: :class:`KDDataConfig` (what the KD data is) is extended by
:class:`CacheLogitsConfig` (teacher and cache), which ``train.distill``'s config extends in turn.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import DTYPE_BYTES, gib, inference, model_size
from finemed.core.runtime import Device, DType, Runtime, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.distill.data import build_data
from finemed.distill.logit_cache import CacheReport, build_cache
from finemed.models.loading import load_causal_lm

log = get_logger(__name__)


class KDDataConfig(StageConfig):
    """The KD training data: plain text (held out by hash) and QA-format prompts (held out by article)."""

    text: list[str] = ["builtin:xquad.en"]  # plain-text KD sources (finemed.core.texts grammar)
    qa: str | None = "xquad.en"  # SQuAD-format file or bundled name for QA-format KD; split by title
    qa_shots: list[int] = [0, 1]
    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_train_sequences: int | None = None  # default steps × batch_size × processes: one epoch, all the cache needs
    qa_fraction: float = Field(0.25, ge=0.0, le=1.0)  # share of QA-format sequences under that cap
    max_heldout_docs: int = 40
    seq_len: int = Field(256, ge=8)
    batch_size: int = Field(4, ge=1)
    steps: int = Field(40, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _shots(self) -> "KDDataConfig":
        if any(s not in (0, 1) for s in self.qa_shots):
            raise ValueError("qa_shots entries must be 0 or 1")
        return self


class CacheLogitsConfig(KDDataConfig):
    """Stage ``train.cache_logits``: the teacher, k and the cache layout, over :class:`KDDataConfig` data."""

    teacher: str = "smollm2"
    top_k: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    cache_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    shard_size: int = Field(64, ge=1)  # sequences per shard: the unit of resume
    device: Device = "auto"
    dtype: DType = "auto"


class CacheLogitsResult(StageResult, CacheReport):
    """The cache's :class:`CacheReport` and the stage's seconds."""

    key_metric: ClassVar[str] = "tokens"
    seconds: float = 0.0


def cache_logits(cfg: CacheLogitsConfig, out: Path | str, *, rt: Runtime | None = None, teacher=None, tok=None,
                 data: tuple | None = None, vocab: int | None = None) -> CacheLogitsResult:
    """Write the top-k cache of ``cfg``'s KD data to ``out`` (the teacher and data are built unless given);
    ``vocab`` slices the teacher's logits to the width it shares with the student."""
    t0 = time.perf_counter()
    rt = rt or resolve(cfg.device, cfg.dtype)
    if teacher is None:
        teacher, tok = load_causal_lm(cfg.teacher, runtime=rt)
    vocab = vocab or int(teacher.get_output_embeddings().weight.shape[0])
    if cfg.top_k > vocab:  # fail before tokenising the data
        raise FinemedError(f"top-k cache: k={cfg.top_k} must be within 1..{vocab} (the teacher vocab size)")
    ids, att, labels = data if data is not None else build_data(cfg, tok, Path(out) / ".data").train
    report = build_cache(teacher, ids, att, labels, out, k=cfg.top_k, temperature=cfg.temperature,
                         value_dtype=cfg.cache_dtype, runtime=rt, teacher_name=str(cfg.teacher),
                         batch_size=cfg.batch_size * 2, shard_size=cfg.shard_size, vocab=vocab)
    return CacheLogitsResult(**report.model_dump(), seconds=round(time.perf_counter() - t0, 2))


@stage("train.cache_logits")
def run(cfg: CacheLogitsConfig, run_dir: Path) -> CacheLogitsResult:
    """The teacher's top-k cache of the KD data, written into ``run_dir`` (rerun to resume after a crash)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rt = resolve(cfg.device, cfg.dtype)
    log.info("train.cache_logits on %s", rt.describe())
    return cache_logits(cfg, run_dir, rt=rt)


@planner("train.cache_logits")
def plan(cfg: CacheLogitsConfig, ctx) -> dict:
    """``finemed plan``: the teacher's forward FLOPs over the KD tokens (sequences x seq_len) and the cache's
    disk: tokens x top_k x (value + index bytes) plus the token data (input_ids, labels int32, mask uint8)."""
    sequences = cfg.max_train_sequences or cfg.steps * cfg.batch_size
    tokens = sequences * cfg.seq_len
    est = inference(cfg.teacher, ctx, tokens=tokens)
    vocab = model_size(cfg.teacher, ctx).get("vocab", 0)
    index_bytes = 2 if 0 < vocab <= 65536 else 4
    per_token = cfg.top_k * (DTYPE_BYTES[cfg.cache_dtype] + index_bytes) + 9
    logits = 2 * cfg.batch_size * cfg.seq_len * vocab * 4  # one batch of fp32 logits before the top-k
    return {**est, "sequences": sequences, "bytes_per_token": per_token, "disk_gib": gib(tokens * per_token),
            "memory_gib_per_process": round(est.get("memory_gib_per_process", 0.0) + logits / (1 << 30), 2),
            "assumes": f"tokens = {sequences} sequences x seq_len {cfg.seq_len} (steps x batch_size unless "
                       f"max_train_sequences); top-{cfg.top_k} {cfg.cache_dtype} values + "
                       f"{'uint16' if index_bytes == 2 else 'int32'} indices per token; batch 2 x batch_size"}
