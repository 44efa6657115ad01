"""Stage ``train.sft``: supervised fine-tuning with TRL's ``SFTTrainer``, full or LoRA (``peft``).

The data (:mod:`finemed.sft.data`) are prompt/completion pairs (QA in the evaluation's own 0/1-shot prompts,
GerMedIQ question + human answer, JSONL files), raw or in the model's chat template, with the loss on the
completion only; a held-out split (whole articles / questions) gives the eval loss before and after training.
Device and dtype follow :mod:`finemed.core.runtime` (fp32 weights, bf16 autocast where supported). Checkpoints
(``save_steps > 0``) are marked complete after each save and a rerun resumes from the last complete one.

Outputs in the run dir: ``model/`` (a full HF safetensors dir: the LoRA adapter merged in with
``merge_and_unload``, or the fully fine-tuned weights), ``adapter/`` (LoRA only), ``log_history.json`` and
``eval_loss_before.json`` (kept for a resume).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from finemed.core import training as T
from finemed.core.artifacts import atomic_write_json, read_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import sized
from finemed.core.runtime import Device, DType, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.core.training_plan import estimate
from finemed.models.loading import count_parameters, load_causal_lm, save_model
from finemed.sft.data import SftData, build_datasets

log = get_logger(__name__)


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class SftConfig(StageConfig):
    """Stage ``train.sft``; ``lora: null`` fine-tunes every weight."""

    model: str = "smollm2"
    data: SftData = SftData(qa=["xquad.en"])
    lora: LoraSpec | None = None
    max_length: int = Field(512, ge=8)
    lr: float = Field(2e-5, gt=0.0)
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler: str = "linear"
    epochs: float = Field(1.0, gt=0.0)
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    eval_before: bool = True
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, ge=0.0)
    gradient_checkpointing: bool = False
    save_steps: int = Field(0, ge=0)  # 0: no intermediate checkpoints (and no resume)
    save_total_limit: int = Field(1, ge=1)
    logging_steps: int = Field(5, ge=1)
    device: Device = "auto"
    dtype: DType = "auto"
    seed: int = 0
    resume: bool = True


class SftResult(StageResult):
    key_metric: ClassVar[str] = "eval_loss_after"

    model_dir: str
    adapter_dir: str | None = None
    lora: bool
    trainable_parameters: int
    total_parameters: int
    data: dict
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    steps: int
    final_loss: float | None = None
    train_seconds: float
    resumed_from: str | None = None
    runtime: dict[str, str] = {}


def _peft_config(spec: LoraSpec | None):
    if spec is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=spec.target_modules, task_type="CAUSAL_LM")


def _args(config: SftConfig, out: Path, rt):
    from trl import SFTConfig

    return SFTConfig(
        **rt.trainer_kwargs(), output_dir=str(out), learning_rate=config.lr, warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler, num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.grad_accum, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, activation_checkpointing=config.gradient_checkpointing,
        save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 500,
        save_total_limit=config.save_total_limit, logging_steps=config.logging_steps, eval_strategy="no",
        report_to=[], seed=config.seed, data_seed=config.seed, dataloader_num_workers=0,
        dataloader_pin_memory=rt.is_cuda, max_length=config.max_length, packing=False,
        completion_only_loss=True, dataset_num_proc=None)


def _eval_loss(trainer, held) -> float | None:
    if held is None:
        return None
    return round(float(trainer.evaluate(eval_dataset=held)["eval_loss"]), 5)


@stage("train.sft")
def run(config: SftConfig, run_dir: Path) -> SftResult:
    """Fine-tune ``config.model`` on ``config.data``; writes ``model/`` (merged) and, with LoRA, ``adapter/``."""
    import torch
    from trl import SFTTrainer

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rt = resolve(config.device, config.dtype, train=True)
    log.info("train.sft (%s) on %s", "LoRA" if config.lora else "full", rt.describe())
    model, tok = load_causal_lm(config.model, runtime=rt)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and config.max_length > limit:
        raise FinemedError(f"train.sft: max_length={config.max_length} exceeds {config.model!r}'s "
                           f"max_position_embeddings={limit}; set max_length <= {limit}")
    if config.data.format == "chat" and not tok.chat_template:
        raise FinemedError(f"train.sft: {config.model!r} has no chat template; use data.format: completion")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    train_ds, held_ds, info = build_datasets(config.data, tok, config.max_length)
    log.info("SFT data: %d train, %d held-out examples (%s)", info["train"], info["heldout"], info["sources"])

    ckpt_dir = run_dir / "checkpoints"
    resume_from = None
    if config.resume and ckpt_dir.is_dir():
        T.drop_incomplete_checkpoints(ckpt_dir)
        resume_from = T.last_good_checkpoint(ckpt_dir)
    _, MarkComplete, _ = T.trainer_classes()
    model.train()
    trainer = SFTTrainer(model=model, args=_args(config, ckpt_dir, rt), train_dataset=train_ds,
                         processing_class=tok, peft_config=_peft_config(config.lora), callbacks=[MarkComplete()])
    before_path = run_dir / "eval_loss_before.json"
    if resume_from is not None:  # the loss before training, if the first run recorded it
        before = read_json(before_path)["eval_loss"] if before_path.is_file() else None
    else:
        before = _eval_loss(trainer, held_ds) if config.eval_before else None
        atomic_write_json(before_path, {"eval_loss": before})
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - t0
    after = _eval_loss(trainer, held_ds)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    trained = trainer.model
    trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    adapter_dir = None
    if config.lora is not None:
        adapter_dir = run_dir / "adapter"
        trained.save_pretrained(str(adapter_dir))
        tok.save_pretrained(str(adapter_dir))
        trained = trained.merge_and_unload()
    trained.eval()
    model_dir = save_model(trained, tok, run_dir / "model")
    atomic_write_json(run_dir / "log_history.json", trainer.state.log_history)
    return SftResult(model_dir=str(model_dir), adapter_dir=str(adapter_dir) if adapter_dir else None,
                     lora=config.lora is not None, trainable_parameters=trainable,
                     total_parameters=count_parameters(trained), data=info, eval_loss_before=before,
                     eval_loss_after=after, steps=trainer.state.global_step,
                     final_loss=losses[-1] if losses else round(float(out.training_loss), 5),
                     train_seconds=round(seconds, 2),
                     resumed_from=str(resume_from) if resume_from else None, runtime=rt.describe())


@planner("train.sft")
def plan(config: SftConfig, ctx) -> dict:
    """``finemed plan``: full fine-tuning cost (training_plan) of the steps, or of epochs x examples where the
    data can be counted (max_train, else a stated default); LoRA trains fewer weights: the memory is an upper bound."""
    per_step = config.batch_size * config.grad_accum
    if config.max_steps > 0:
        sequences, how = config.max_steps * per_step, "max_steps x batch_size x grad_accum"
    else:
        examples = config.data.max_train or 1000
        sequences = int(config.epochs * examples * max(len(config.data.qa_shots), 1))
        how = f"epochs x {'max_train' if config.data.max_train else 'an assumed 1000'} examples x qa_shots"
    try:
        est = estimate(sized(config.model, ctx), sequences * config.max_length, seq_len=config.max_length,
                       micro_batch=config.batch_size, launch=None, save_total_limit=config.save_total_limit,
                       gradient_checkpointing=config.gradient_checkpointing, mfu=ctx.mfu, gpu=ctx.gpu)
    except FinemedError as err:  # a model another recipe writes: it cannot be sized before it exists
        est = {"model": config.model, "tokens": sequences * config.max_length, "note": f"not costed: {err}"}
    est["assumes"] = (f"{sequences} sequences ({how}), each filling max_length {config.max_length}; "
                      + ("LoRA: full-fine-tuning memory and disk, an upper bound" if config.lora
                         else "full fine-tuning"))
    return est
