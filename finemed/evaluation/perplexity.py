"""Stage ``eval.bpb``: bits per byte of one causal LM on several named text sets.

The bpb computation itself (windowing, batching) is :func:`finemed.models.bpb.compute_bpb`; text sets are
:mod:`finemed.core.texts` sources (``builtin:medical``, ``builtin:fortunes_de``, a jsonl path, ``hf:...``), each
reduced to a seeded sample of at most ``max_docs`` texts and ``max_chars`` characters.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import StageConfig
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import inference, text_stats
from finemed.core.runtime import Device, DType, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.core.texts import read_texts
from finemed.models.bpb import compute_bpb, subsample
from finemed.models.loading import check_model, load_causal_lm

log = get_logger(__name__)


def _default_sets() -> dict[str, str]:
    return {"medical": "builtin:medical", "german": "builtin:fortunes_de", "english": "builtin:xquad.en"}


class BpbSetsConfig(StageConfig):
    """Stage ``eval.bpb``: one model, several named text sets."""

    model: str = "smollm2"
    sets: dict[str, str] = Field(default_factory=_default_sets)
    max_docs: int | None = Field(default=None, ge=1)
    max_chars: int | None = Field(default=60000, ge=1)
    max_length: int = Field(default=1024, ge=2)
    stride: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=4, ge=1)
    device: Device = "auto"
    dtype: DType = "auto"
    seed: int = 0
    allow_pickle: bool = False

    @field_validator("sets")
    @classmethod
    def _nonempty(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("give at least one text set, e.g. {medical: builtin:medical}")
        return v


class SetBpb(StageResult):
    bpb: float
    loss_per_token: float
    tokens: int
    bytes: int
    docs: int = 0
    doc_bits: list[float] = []  # per document, for paired comparisons (eval.scoreboard)
    doc_bytes: list[int] = []


class BpbSetsResult(StageResult):
    key_metric: ClassVar[str] = "bpb"
    model: str
    bpb: dict[str, float]
    sets: dict[str, SetBpb]
    runtime: dict[str, str]


@stage("eval.bpb")
def run(config: BpbSetsConfig, run_dir: Path) -> BpbSetsResult:
    """Stage entry: bpb of ``config.model`` on each set; writes ``bpb.json``."""
    check_model(config.model, config.allow_pickle)  # a bad model dir fails before the texts and torch load
    texts = {name: subsample(read_texts(spec), config.max_docs, config.max_chars, config.seed)
             for name, spec in config.sets.items()}
    rt = resolve(config.device, config.dtype)
    model, tok = load_causal_lm(config.model, runtime=rt, allow_pickle=config.allow_pickle)
    sets = {}
    for name, t in texts.items():
        res = compute_bpb(model, tok, t, max_length=config.max_length, stride=config.stride,
                          batch_size=config.batch_size, runtime=rt)
        sets[name] = SetBpb(**res.model_dump())
        log.info("bpb %s: %.4f (%d docs)", name, res.bpb, res.docs)
    result = BpbSetsResult(model=config.model, bpb={k: round(v.bpb, 4) for k, v in sets.items()}, sets=sets,
                           runtime=rt.describe())
    atomic_write_json(Path(run_dir) / "bpb.json", result)
    return result


@planner("eval.bpb")
def plan(config: BpbSetsConfig, ctx) -> dict:
    """``finemed plan``: forward tokens of each set (its bytes, capped by max_docs and max_chars, / 4), FLOPs,
    GPU-hours and memory; a sliding ``stride`` scores each token max_length / stride times."""
    sizes: dict[str, int | str] = {}
    total = 0.0
    for name, spec in config.sets.items():
        stats = text_stats(spec, config.max_docs)
        nbytes = stats[1] if stats else (config.max_chars or 0)
        nbytes = min(nbytes, config.max_chars) if config.max_chars else nbytes
        sizes[name] = nbytes if stats else f"{nbytes} (not readable now: max_chars assumed)"
        total += nbytes / 4
    overlap = config.max_length / config.stride if config.stride else 1.0
    return {**inference(config.model, ctx, tokens=total * overlap), "set_bytes": sizes, "disk_gib": 0.0,
            "assumes": "4 bytes/token; max_chars caps each set's total; a set not readable before the run counts "
                       "max_chars bytes"}
