"""Stage ``train.cpt``: continual pre-training of a causal LM on domain text (the DeFineMed recipe).

The HF ``Trainer`` trains (:mod:`finemed.core.training`); ``launch: {processes, machines, strategy}`` runs it in
several processes (DDP or FSDP2 with sharded checkpoints, :mod:`finemed.core.launch`). What this stage adds:

- the data: :mod:`finemed.data.packing` tokenises domain (+ replay) text once per tokenizer and data fingerprint
  (every rank and every resume reads that stream); held-out domain and general sets come
  from the same seeded hash split (:mod:`finemed.core.texts`), so no evaluated text is ever trained on;
- bpb on the held-out sets before, at ``eval_steps`` intervals (logged to TensorBoard) and after training;
- resume only from checkpoints marked complete (a SIGKILL during a save leaves an unmarked one, removed);
- a NaN/inf loss stops training at once with one line naming the last good checkpoint.

Outputs in the run dir: ``model/``, ``checkpoints/``, ``tb/``, ``bpb_before.json``, ``log_history.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from finemed.core import training as T
from finemed.core.artifacts import atomic_write_json, read_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.launch import (
    LaunchConfig,
    fault_callbacks,
    in_launched_process,
    launch_stage,
    needs_launch,
    rank,
    world_size,
)
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import sized
from finemed.core.runtime import Device, DType, Runtime, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.core.texts import TextSet, general_eval_default, heldout_texts, iter_texts, train_texts
from finemed.core.training_plan import check_memory, estimate
from finemed.data.packing import MixedBlocks, PackCollator, PackedBlocks, token_stream
from finemed.models.arch import from_scratch
from finemed.models.bpb import compute_bpb
from finemed.models.loading import attention_implementation, load_causal_lm, load_tokenizer
from finemed.models.registry import resolve_model_path

log = get_logger(__name__)


class CptConfig(StageConfig):
    """Stage ``train.cpt``. Every paper hyperparameter is a key; defaults follow DeFineMed where it says."""

    model: str = "smollm2"
    # from_config: train from scratch; ``model``'s config.json (or a bundled architecture) with ``architecture``
    # overrides, the vocabulary of ``tokenizer`` (a tokenizer dir; default: ``model``'s), weights seeded by ``seed``
    init: Literal["pretrained", "from_config"] = "pretrained"
    architecture: dict[str, Any] = Field(default_factory=dict)
    tokenizer: str | None = None
    domain: TextSet = TextSet(source="builtin:medical")
    replay: TextSet | None = None
    replay_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    general_eval: dict[str, TextSet] = Field(default_factory=general_eval_default)
    heldout_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    eval_max_docs: int = Field(default=32, ge=1)
    seq_len: int = Field(default=1024, ge=2)
    doc_mask: bool = False
    lr: float = Field(default=2e-5, gt=0.0)
    warmup_steps: int = Field(default=500, ge=0)
    lr_scheduler: str = "linear"
    epochs: float = Field(default=2.0, gt=0.0)
    max_steps: int = -1
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    weight_decay: float = Field(default=0.0, ge=0.0)
    adam_beta2: float = Field(default=0.999, gt=0.0, lt=1.0)
    max_grad_norm: float = Field(default=1.0, ge=0.0)
    device: Device = "auto"
    dtype: DType = "auto"  # compute precision: mixed bf16/fp16 over fp32 weights, or float32
    gradient_checkpointing: bool = False
    torch_compile: bool = False
    # passed to from_pretrained; flash_attention_2 needs the `gpu` extra and CUDA, else SDPA with one warning
    attn_implementation: str | None = None
    revision: str | None = None  # hub revision of a hub-id `model` (a commit hash pins it; default main)
    save_dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 where it trains bf16 on a GPU
    eval_steps: int = Field(default=0, ge=0)
    eval_max_length: int = Field(default=512, ge=2)
    eval_batch_size: int = Field(default=4, ge=1)
    save_steps: int = Field(default=200, ge=1)
    save_total_limit: int = Field(default=2, ge=1)
    logging_steps: int = Field(default=10, ge=1)
    dataloader_workers: int = Field(default=0, ge=0)
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    seed: int = 0
    resume: bool = True
    launch: LaunchConfig = LaunchConfig()  # processes/machines/strategy: `finemed run` launches them itself


class CptResult(StageResult):
    key_metric: ClassVar[str] = "bpb_after.domain"

    model_dir: str
    bpb_before: dict[str, float]
    bpb_after: dict[str, float]
    domain_bpb_drop: float  # relative: (before - after) / before on the held-out domain set
    heldout_docs: dict[str, int]
    train_blocks: int
    train_tokens_per_epoch: int
    domain_train_tokens: int
    replay_share: float
    steps: int
    final_loss: float | None
    train_seconds: float
    tokens_per_second: float
    resumed_from: str | None = None
    processes: int = 1
    runtime: dict[str, str] = {}


def eval_texts(config: CptConfig) -> dict[str, list[str]]:
    """Held-out sets: ``domain`` plus each ``general_eval`` set, all texts whose hash score < fraction. A source
    that names a held-out split already (``...@heldout``, e.g. ``builtin:debian.mix-8000@heldout``) is taken whole
    (up to the caps): it shares no document with a train split, and splitting it again would leave almost nothing."""
    sets = {"domain": config.domain, **config.general_eval}
    out: dict[str, list[str]] = {}
    for name, ts in sets.items():
        cap = min(config.eval_max_docs, ts.max_docs or config.eval_max_docs)
        if ts.source.endswith("@heldout"):
            out[name] = list(iter_texts(ts.source, cap))
        else:
            out[name] = heldout_texts(ts.source, config.heldout_fraction, config.seed, cap)
        if not out[name]:
            raise FinemedError(f"held-out set {name!r} ({ts.source}) is empty: no text fell in the held-out "
                               f"{config.heldout_fraction:.0%}; add texts or raise heldout_fraction")
    return out


def bpb_sets(model, tok, sets: dict[str, list[str]], config: CptConfig, rt: Runtime,
             progress: bool = True) -> dict[str, float]:
    return {name: round(compute_bpb(model, tok, texts, max_length=config.eval_max_length,
                                    batch_size=config.eval_batch_size, progress=progress, runtime=rt).bpb, 6)
            for name, texts in sets.items()}


def build_datasets(config: CptConfig, tok, workdir: Path):
    """The domain (+ replay) token streams, tokenised once per tokenizer and data (shared by every rank and
    every resume), and the mixed, shuffled block dataset over them."""
    def texts(ts: TextSet):
        return lambda: train_texts(ts.source, config.heldout_fraction, config.seed, ts.max_docs)

    def key(ts: TextSet) -> dict:
        return {"source": ts.source, "max_docs": ts.max_docs, "heldout_fraction": config.heldout_fraction,
                "seed": config.seed}

    dom = token_stream(texts(config.domain), tok, workdir, "domain", key(config.domain))
    domain = PackedBlocks(dom.array(), config.seq_len)
    if len(domain) == 0:
        raise FinemedError(f"domain data {config.domain.source!r} gave {dom.tokens} training tokens in {dom.docs} "
                           f"docs, fewer than one block of seq_len={config.seq_len}; add text or lower seq_len")
    replay = None
    if config.replay is not None and config.replay_ratio > 0:
        rep = token_stream(texts(config.replay), tok, workdir, "replay", key(config.replay))
        replay = PackedBlocks(rep.array(), config.seq_len)
    return MixedBlocks(domain, replay, config.replay_ratio, seed=config.seed), dom.tokens


def _check_model(model, tok, config: CptConfig) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and config.seq_len > limit:
        raise FinemedError(f"seq_len={config.seq_len} exceeds the maximum of model {config.model!r} "
                           f"(max_position_embeddings={limit}); set seq_len <= {limit}")
    if tok.eos_token_id is None:
        raise FinemedError(f"model {config.model!r}: its tokenizer has no EOS token; packing needs one")


def plan_tokens(config: CptConfig, hints: dict | None = None) -> float:
    """Tokens trained: max_steps x global batch x seq_len, else epochs x the local corpus, else the hint."""
    launch = config.launch
    if config.max_steps > 0:
        return float(config.max_steps * config.batch_size * config.grad_accum * launch.world_size * config.seq_len)
    src = Path(config.domain.source).expanduser()
    if src.exists():
        tok = load_tokenizer(resolve_model_path(config.model))
        n = sum(len(ids) + 1 for t in train_texts(config.domain.source, config.heldout_fraction, config.seed,
                                                   config.domain.max_docs)
                for ids in [tok(t, add_special_tokens=False)["input_ids"]])
        return float(config.epochs * n / (1.0 - config.replay_ratio))
    tokens = (hints or {}).get("tokens")
    if tokens is None:
        raise FinemedError(f"train.cpt plan: {config.domain.source!r} is not local and max_steps is unset; give "
                           f"plan: {{STAGE: {{tokens: N}}}} in the recipe")
    return float(tokens)


def cpt_estimate(config: CptConfig, tokens: float, mfu: float = 0.4, gpu: str = "h100") -> dict:
    return estimate(config.model, tokens, seq_len=config.seq_len, micro_batch=config.batch_size,
                    launch=config.launch, save_total_limit=config.save_total_limit,
                    mixed_precision=config.dtype != "float32", gradient_checkpointing=config.gradient_checkpointing,
                    mfu=mfu, gpu=gpu)


@planner("train.cpt")
def plan(config: CptConfig, ctx) -> dict:
    """``finemed plan``: tokens, FLOPs, GPU-hours, memory per process (and its terms) and disk."""
    hints = ctx.hints.get(getattr(ctx, "stage_name", ""), {}) or ctx.hints.get("cpt", {})
    config = config.model_copy(update={"model": sized(config.model, ctx)})  # an earlier stage's output: its model
    return cpt_estimate(config, plan_tokens(config, hints), ctx.mfu, ctx.gpu)


def _tokenizer_dir(config: CptConfig) -> Path:
    return Path(config.tokenizer).expanduser() if config.tokenizer else resolve_model_path(config.model)


def _compute_dtype(config: CptConfig) -> str:
    return {"bf16": "bfloat16", "no": "float32"}.get(config.launch.mixed_precision, config.dtype)


@stage("train.cpt")
def run(config: CptConfig, run_dir: Path, callbacks: list | None = None) -> CptResult:
    """CPT ``config.model``; writes ``model/``, ``checkpoints/``, ``tb/`` and ``log_history.json``.

    With ``launch.processes * launch.machines > 1`` this process tokenises the data once, then launches the
    processes (:func:`finemed.core.launch.launch_stage`), each running this function, and returns rank 0's result.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    launched = in_launched_process()
    sharded = launched and world_size() > 1 and config.launch.strategy == "fsdp"
    rt = resolve(config.device, _compute_dtype(config), train=True, sharded=sharded)
    if needs_launch(config.launch):
        build_datasets(config, load_tokenizer(_tokenizer_dir(config)), run_dir / "data")
        if config.resume and ckpt_dir.is_dir():
            T.drop_incomplete_checkpoints(ckpt_dir)
        return CptResult.model_validate(launch_stage("train.cpt", config, run_dir, config.launch, config.model,
                                                     activation_checkpointing=config.gradient_checkpointing))
    if config.max_steps > 0 and not launched:
        check_memory("train.cpt", cpt_estimate(config, 1.0)["memory_gib_per_process"], rt.device, config.launch)
    log.info("train.cpt on %s", rt.describe())
    if config.init == "from_config":
        model, tok = from_scratch(config.model, config.tokenizer, config.architecture, config.seed, rt)
        if config.attn_implementation:
            model.set_attn_implementation(attention_implementation(config.attn_implementation, rt.device))
    else:
        model, tok = load_causal_lm(config.model, runtime=rt, attn_implementation=config.attn_implementation,
                                    revision=config.revision)
    _check_model(model, tok, config)
    sets = eval_texts(config)
    train_ds, dom_tokens = build_datasets(config, tok, run_dir / "data")

    resume_from = None
    if config.resume and ckpt_dir.is_dir():
        if not launched:
            T.drop_incomplete_checkpoints(ckpt_dir)
        resume_from = T.last_good_checkpoint(ckpt_dir)
    before_path = run_dir / "bpb_before.json"
    before: dict[str, float] = {}
    if resume_from is not None and before_path.is_file():
        before = read_json(before_path)
    elif not sharded and rank() == 0:  # the loaded weights (a checkpoint is restored inside train()); only rank
        before = bpb_sets(model, tok, sets, config, rt)  # 0's result is kept
        atomic_write_json(before_path, before)
    # under FSDP nobody holds the whole model on a GPU: every rank scores "before" through the sharded model, at
    # the start of training (BpbEval)
    score_before = before_path if sharded and resume_from is None else None

    CptTrainer, MarkComplete, BpbEval = T.trainer_classes()
    model.train()
    trainer = CptTrainer(model=model, args=T.training_args(config, ckpt_dir, rt), train_dataset=train_ds,
                         data_collator=PackCollator(tok.eos_token_id, config.doc_mask,
                                                    attn=model.config._attn_implementation),
                         callbacks=[MarkComplete(), *T.tensorboard_callbacks(config.report_to, run_dir),
                                    *(callbacks or []), *fault_callbacks()])
    bpb_eval = BpbEval(trainer, lambda m: bpb_sets(m, tok, sets, config, rt, progress=False), config.eval_steps,
                       before_path=score_before)
    trainer.add_callback(bpb_eval)
    t0 = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except T.NonFiniteLoss as err:
        good = T.last_good_checkpoint(ckpt_dir)
        where = f"last good checkpoint kept: {good}" if good else "no checkpoint was saved before it"
        raise FinemedError(f"CPT stopped: non-finite loss ({err.value}) at step {err.step}; {where}. "
                           f"Lower lr, raise warmup_steps or use dtype: float32, then rerun to resume") from None
    seconds = time.perf_counter() - t0
    before = bpb_eval.before or before
    T.release_training_state(trainer)
    steps = trainer.state.global_step
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.eval()
    after = bpb_sets(model, tok, sets, config, rt)
    model_dir = T.save_final(trainer, tok, run_dir / "model", rt.save_dtype(config.save_dtype))
    if trainer.is_world_process_zero():
        atomic_write_json(run_dir / "log_history.json", trainer.state.log_history)
    start_step = int(resume_from.name.split("-")[1]) if resume_from else 0
    world = trainer.args.world_size
    tokens_trained = (steps - start_step) * config.batch_size * config.grad_accum * config.seq_len * world
    return CptResult(
        model_dir=str(model_dir), bpb_before=before, bpb_after=after,
        domain_bpb_drop=round((before["domain"] - after["domain"]) / before["domain"], 6) if before else 0.0,
        heldout_docs={k: len(v) for k, v in sets.items()}, train_blocks=len(train_ds),
        train_tokens_per_epoch=len(train_ds) * config.seq_len, domain_train_tokens=dom_tokens,
        replay_share=round(train_ds.replay_share, 4), steps=steps,
        final_loss=losses[-1] if losses else None, train_seconds=round(seconds, 2),
        tokens_per_second=round(tokens_trained / seconds, 1) if seconds > 0 else 0.0,
        resumed_from=str(resume_from) if resume_from else None, processes=world, runtime=rt.describe())
