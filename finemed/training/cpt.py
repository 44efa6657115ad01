"""Stage ``train.cpt``: continual pre-training of a causal LM on domain text (the DeFineMed recipe).

The HF ``Trainer`` (on accelerate) does the training: AdamW, warmup + linear decay, epochs or max steps,
accumulation, bf16 autocast, gradient checkpointing, ``torch.compile``, TensorBoard, checkpoints with
optimizer/scheduler/RNG state and exact resume; FSDP comes from an accelerate config
(:func:`fsdp_accelerate_config`). What is added here:

- the data: :mod:`finemed.training.data` packs domain (+ replay) text; held-out domain and general sets
  come from the same seeded hash split, so no evaluated text is ever trained on;
- bpb on the held-out sets before, at ``eval_steps`` intervals (logged to TensorBoard) and after training;
- resume only from checkpoints marked complete (a SIGKILL during a save leaves an unmarked one, removed);
- a NaN/inf loss stops training at once with one line naming the last good checkpoint, before the optimizer
  steps on it or anything else is saved.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from finemed.artifacts import atomic_write_json, read_json
from finemed.config import FinemedError, StageConfig

COMPLETE_MARK = "finemed_complete"


class TextSet(StageConfig):
    """A text source (``builtin:NAME``, a jsonl/txt/parquet file or dir, or ``hf:DATASET``)."""

    source: str
    field: str = "text"
    max_docs: int | None = Field(default=None, ge=1)


def _general_default() -> dict[str, TextSet]:
    return {"general_de": TextSet(source="builtin:fortunes", max_docs=150),
            "general_en": TextSet(source="builtin:xquad_en", max_docs=12)}


class CptConfig(StageConfig):
    """Stage ``train.cpt``. Every paper hyperparameter is a key; defaults follow DeFineMed where it says."""

    model: str = "smollm2"
    domain: TextSet = TextSet(source="builtin:medical")
    replay: TextSet | None = None
    replay_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    general_eval: dict[str, TextSet] = Field(default_factory=_general_default)
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
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    torch_compile: bool = False
    attn_implementation: str | None = None
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


class CptResult(BaseModel):
    model_dir: str
    bpb_before: dict[str, float]
    bpb_after: dict[str, float]
    domain_bpb_drop: float  # relative: (before - after) / before on the held-out domain set
    train_blocks: int
    train_tokens_per_epoch: int
    replay_share: float
    steps: int
    final_loss: float | None
    train_seconds: float
    tokens_per_second: float
    resumed_from: str | None = None


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, value: float):
        super().__init__(f"loss {value} at step {step}")
        self.step, self.value = step, value


# --------------------------------------------------------------------------------------------- helpers
def use_bf16(precision: str) -> bool:
    import torch

    from finemed.evaluation.perplexity import bf16_supported

    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return torch.cuda.is_available() or bf16_supported()


def last_good_checkpoint(out_dir: Path) -> Path | None:
    """The highest ``checkpoint-N`` dir that carries the completion mark."""
    best, best_step = None, -1
    for d in Path(out_dir).glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / COMPLETE_MARK).is_file() and int(m.group(1)) > best_step:
            best, best_step = d, int(m.group(1))
    return best


def drop_incomplete_checkpoints(out_dir: Path) -> list[str]:
    """Remove checkpoint dirs without the completion mark (a process died while saving them)."""
    removed = []
    for d in Path(out_dir).glob("checkpoint-*"):
        if d.is_dir() and not (d / COMPLETE_MARK).is_file():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


def eval_texts(config: CptConfig) -> dict[str, list[str]]:
    """Held-out sets: ``domain`` plus each ``general_eval`` set, all texts whose hash score < fraction."""
    from finemed.training.data import heldout_texts

    sets = {"domain": config.domain, **config.general_eval}
    out: dict[str, list[str]] = {}
    for name, ts in sets.items():
        cap = min(config.eval_max_docs, ts.max_docs or config.eval_max_docs)
        out[name] = heldout_texts(ts.source, config.heldout_fraction, config.seed, cap, ts.field)
        if not out[name]:
            raise FinemedError(f"held-out set {name!r} ({ts.source}) is empty: no text fell in the held-out "
                               f"{config.heldout_fraction:.0%}; add texts or raise heldout_fraction")
    return out


def _train_texts(ts: TextSet, config: CptConfig):
    from finemed.training.data import train_texts

    return train_texts(ts.source, config.heldout_fraction, config.seed, ts.max_docs, ts.field)


def bpb_sets(model, tok, sets: dict[str, list[str]], config: CptConfig, autocast: bool) -> dict[str, float]:
    from finemed.evaluation.perplexity import compute_bpb

    return {name: round(compute_bpb(model, tok, texts, max_length=config.eval_max_length,
                                    batch_size=config.eval_batch_size, progress=False, autocast=autocast).bpb, 6)
            for name, texts in sets.items()}


def build_datasets(config: CptConfig, tok, workdir: Path):
    """Token files for domain and replay text (train part only) and the mixed, shuffled block dataset."""
    from finemed.training.data import MixedBlocks, PackedBlocks, write_token_file

    dom = write_token_file(_train_texts(config.domain, config), tok, workdir / "domain.bin")
    domain = PackedBlocks(dom.array(), config.seq_len)
    if len(domain) == 0:
        raise FinemedError(f"domain data {config.domain.source!r} gave {dom.tokens} training tokens in {dom.docs} "
                           f"docs, fewer than one block of seq_len={config.seq_len}; add text or lower seq_len")
    replay = None
    if config.replay is not None and config.replay_ratio > 0:
        rep = write_token_file(_train_texts(config.replay, config), tok, workdir / "replay.bin")
        replay = PackedBlocks(rep.array(), config.seq_len)
    return MixedBlocks(domain, replay, config.replay_ratio, seed=config.seed), dom.tokens


def fsdp_accelerate_config(model_dir: str | None = None, num_processes: int = 8, layer_cls: str | None = None) -> dict:
    """An accelerate FSDP2 config for multi-GPU CPT (full sharding, bf16, transformer-layer wrapping)."""
    if layer_cls is None and model_dir:
        from transformers import AutoConfig

        from finemed.models.loading import resolve_model_path

        cfg = AutoConfig.from_pretrained(str(resolve_model_path(model_dir)))
        arch = (cfg.architectures or ["LlamaForCausalLM"])[0]
        layer_cls = arch.replace("ForCausalLM", "DecoderLayer")
    return {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "FSDP", "mixed_precision": "bf16",
        "num_machines": 1, "num_processes": num_processes, "machine_rank": 0, "main_training_function": "main",
        "rdzv_backend": "static", "same_network": True, "use_cpu": False, "downcast_bf16": "no",
        "fsdp_config": {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": layer_cls or "LlamaDecoderLayer",
            "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
            "fsdp_activation_checkpointing": False},
    }


# ------------------------------------------------------------------------------------------------ train
def _trainer_classes():
    import torch
    from transformers import Trainer, TrainerCallback

    class CptTrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if not torch.isfinite(loss).all():
                raise NonFiniteLoss(self.state.global_step + 1, float(loss.float().mean()))
            return loss

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir() and args.should_save:
                (ckpt / COMPLETE_MARK).write_text(str(state.global_step))

    class BpbEval(TrainerCallback):
        def __init__(self, trainer, tok, sets, config, autocast):
            self.trainer, self.tok, self.sets, self.config, self.autocast = trainer, tok, sets, config, autocast

        def on_step_end(self, args, state, control, **kw):
            every = self.config.eval_steps
            if every and state.global_step % every == 0 and state.global_step < state.max_steps:
                scores = bpb_sets(self.trainer.model, self.tok, self.sets, self.config, self.autocast)
                self.trainer.log({f"bpb_{k}": v for k, v in scores.items()})

    return CptTrainer, MarkComplete, BpbEval


def training_args(config: CptConfig, output_dir: Path, bf16: bool):
    """The ``TrainingArguments`` of a CPT run (shared with ``benchmarks/bench_cpt.py``)."""
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(output_dir), learning_rate=config.lr, warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler, num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        weight_decay=config.weight_decay, adam_beta2=config.adam_beta2, max_grad_norm=config.max_grad_norm,
        bf16=bf16, activation_checkpointing=config.gradient_checkpointing, torch_compile=config.torch_compile,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps, report_to=[r for r in config.report_to if r != "tensorboard"],
        seed=config.seed, data_seed=config.seed, dataloader_num_workers=config.dataloader_workers,
        dataloader_pin_memory=cuda, use_cpu=not cuda, remove_unused_columns=False, disable_tqdm=True)


def _tensorboard(config: CptConfig, run_dir: Path) -> list:
    """A TensorBoard callback writing to ``run_dir/tb`` (transformers 5 dropped ``logging_dir``)."""
    if "tensorboard" not in config.report_to:
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run_dir / "tb")))]


def run(config: CptConfig, run_dir: Path, callbacks: list | None = None) -> CptResult:
    """Stage entry: CPT ``config.model``; writes ``model/``, ``checkpoints/``, ``tb/``, ``metrics.json``."""
    import os

    import torch

    from finemed.models.loading import load_causal_lm
    from finemed.training.data import PackCollator

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    bf16 = use_bf16(config.precision)
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    model, tok = load_causal_lm(config.model, device=device)
    if config.attn_implementation:
        model.config._attn_implementation = config.attn_implementation
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and config.seq_len > limit:
        raise FinemedError(f"seq_len={config.seq_len} exceeds the maximum of model {config.model!r} "
                           f"(max_position_embeddings={limit}); set seq_len <= {limit}")
    if tok.eos_token_id is None:
        raise FinemedError(f"model {config.model!r}: its tokenizer has no EOS token; packing needs one")
    sets = eval_texts(config)
    train_ds, dom_tokens = build_datasets(config, tok, run_dir / "data")

    resume_from = None
    if config.resume and ckpt_dir.is_dir():
        drop_incomplete_checkpoints(ckpt_dir)
        resume_from = last_good_checkpoint(ckpt_dir)
    before_path = run_dir / "bpb_before.json"
    if resume_from is not None and before_path.is_file():
        before = read_json(before_path)
    else:
        before = bpb_sets(model, tok, sets, config, bf16)
        atomic_write_json(before_path, before)

    args = training_args(config, ckpt_dir, bf16)
    CptTrainer, MarkComplete, BpbEval = _trainer_classes()
    model.train()
    trainer = CptTrainer(model=model, args=args, train_dataset=train_ds,
                         data_collator=PackCollator(tok.eos_token_id, config.doc_mask),
                         callbacks=[MarkComplete(), *_tensorboard(config, run_dir), *(callbacks or [])])
    trainer.add_callback(BpbEval(trainer, tok, sets, config, bf16))
    t0 = time.perf_counter()
    try:
        out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except NonFiniteLoss as err:
        good = last_good_checkpoint(ckpt_dir)
        where = f"last good checkpoint kept: {good}" if good else "no checkpoint was saved before it"
        raise FinemedError(f"CPT stopped: non-finite loss ({err.value}) at step {err.step}; {where}. "
                           f"Lower lr, raise warmup_steps or use precision: fp32, then rerun to resume") from None
    seconds = time.perf_counter() - t0
    steps = trainer.state.global_step
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.eval()
    after = bpb_sets(model, tok, sets, config, bf16)
    model_dir = _save_final(trainer, tok, run_dir / "model")
    start_step = int(resume_from.name.split("-")[1]) if resume_from else 0
    tokens_trained = (steps - start_step) * config.batch_size * config.grad_accum * config.seq_len
    result = CptResult(
        model_dir=str(model_dir), bpb_before=before, bpb_after=after,
        domain_bpb_drop=round((before["domain"] - after["domain"]) / before["domain"], 6),
        train_blocks=len(train_ds), train_tokens_per_epoch=len(train_ds) * config.seq_len,
        replay_share=round(train_ds.replay_share, 4), steps=steps,
        final_loss=losses[-1] if losses else None, train_seconds=round(seconds, 2),
        tokens_per_second=round(tokens_trained / seconds, 1) if seconds > 0 else 0.0,
        resumed_from=str(resume_from) if resume_from else None)
    if trainer.is_world_process_zero():
        atomic_write_json(run_dir / "metrics.json", {**result.model_dump(), "train_runtime": out.metrics.get(
            "train_runtime"), "heldout_docs": {k: len(v) for k, v in sets.items()},
            "domain_train_tokens": dom_tokens, "log_history": trainer.state.log_history})
    return result


def _save_final(trainer, tok, out: Path) -> Path:
    """Save the trained model + tokenizer to ``out`` atomically; under FSDP every rank joins the gather."""
    import os

    partial = out.with_name(f".{out.name}.partial")
    trainer.save_model(str(partial))  # collective under FSDP; writes on the main process only
    if trainer.is_world_process_zero():
        tok.save_pretrained(str(partial))
        (partial / "training_args.bin").unlink(missing_ok=True)  # a pickle; not part of the model
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(partial, out)
    trainer.accelerator.wait_for_everyone()
    return out


def steps_for_tokens(tokens: int, config: CptConfig) -> int:
    """How many optimizer steps consume ``tokens`` tokens with this config's batch shape."""
    return max(1, math.ceil(tokens / (config.batch_size * config.grad_accum * config.seq_len)))
