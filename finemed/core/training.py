"""The CPT training loop on the HF ``Trainer``: arguments, callbacks, checkpoint marks and the final save.

The Trainer (on accelerate) does AdamW, warmup + decay, accumulation, mixed precision, gradient checkpointing,
``torch.compile``, checkpoints with optimizer/scheduler/RNG state and exact resume. Added here:

:func:`trainer_classes` builds them on first use (so importing this module stays free of torch):

- ``CptTrainer`` stops at once on a NaN/inf loss (:class:`NonFiniteLoss`), before the optimizer steps on
  it or anything else is saved;
- ``MarkComplete`` marks a checkpoint complete after its save, so a SIGKILL during a save leaves an
  unmarked one that :func:`drop_incomplete_checkpoints` removes and resume never picks;
- ``BpbEval`` logs held-out bpb every ``eval_steps`` steps (to TensorBoard and the log history).
"""

from __future__ import annotations

import os
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from finemed.core.artifacts import atomic_write_json
from finemed.core.launch import enable_cpu_fsdp, fsdp_owns_checkpointing
from finemed.core.runtime import Runtime

COMPLETE_MARK = "finemed_complete"


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, value: float):
        super().__init__(f"loss {value} at step {step}")
        self.step, self.value = step, value


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


@lru_cache(maxsize=1)
def trainer_classes() -> tuple[type, type, type]:
    """``(CptTrainer, MarkComplete, BpbEval)``: the Trainer subclass and the two callbacks."""
    import torch
    from transformers import Trainer, TrainerCallback

    class CptTrainer(Trainer):
        """The HF Trainer, stopping on the first non-finite loss (and running FSDP on CPU when launched so)."""

        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            if enable_cpu_fsdp(self.accelerator):
                self.is_fsdp_enabled = True

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
        """Every ``every`` steps (not at the last), log ``bpb_<set>`` from ``score(model)``; with ``before_path``,
        score once at the start of training too (every rank, through the prepared, e.g. FSDP-sharded, model) into
        ``self.before``, written by rank 0 to ``before_path``."""

        def __init__(self, trainer: Any, score: Callable[[object], dict[str, float]], every: int,
                     before_path: Path | None = None):
            self.trainer, self.score, self.every, self.before_path = trainer, score, every, before_path
            self.before: dict[str, float] = {}

        def on_train_begin(self, args, state, control, **kw):
            if self.before_path is not None and state.global_step == 0:
                self.before = self.score(self.trainer.model)  # FSDP2 shards the model in place
                if self.trainer.is_world_process_zero():
                    atomic_write_json(self.before_path, self.before)

        def on_step_end(self, args, state, control, **kw):
            if self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
                scores = self.score(self.trainer.model)
                self.trainer.log({f"bpb_{k}": v for k, v in scores.items()})

    return CptTrainer, MarkComplete, BpbEval


def training_args(config, output_dir: Path, rt: Runtime):
    """The ``TrainingArguments`` of a CPT run (shared with ``benchmarks/bench_cpt.py`` and ``gpu_cpt_mfu.py``).

    - Activation checkpointing: the Trainer's flag only without FSDP; under FSDP the accelerate config turns on
      FSDP's own (:func:`finemed.core.launch.accelerate_config`), never both.
    - Checkpoints (every ``save_steps``, at most ``save_total_limit`` kept): with ``resume: true`` the weights
      plus optimizer, scheduler and RNG state (AdamW: ~12 bytes/param in fp32, sharded under FSDP); with
      ``resume: false`` the weights only (``save_only_model``; not under FSDP, whose sharded checkpoints
      transformers refuses to save without their optimizer state).
    - ``ddp_timeout``: the launch's ``timeout_s``, the same one ``init_process_group`` got.
    """
    from transformers import TrainingArguments

    launch = getattr(config, "launch", None)
    fsdp = fsdp_owns_checkpointing(launch)

    return TrainingArguments(
        **rt.trainer_kwargs(),
        output_dir=str(output_dir), learning_rate=config.lr, warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler, num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        weight_decay=config.weight_decay, adam_beta2=config.adam_beta2, max_grad_norm=config.max_grad_norm,
        activation_checkpointing=config.gradient_checkpointing and not fsdp,
        torch_compile=config.torch_compile, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, save_only_model=not getattr(config, "resume", True) and not fsdp,
        ddp_timeout=launch.timeout_s if launch is not None else 1800,
        logging_steps=config.logging_steps, report_to=[r for r in config.report_to if r != "tensorboard"],
        seed=config.seed, data_seed=config.seed, dataloader_num_workers=config.dataloader_workers,
        dataloader_pin_memory=rt.is_cuda, remove_unused_columns=False, ddp_find_unused_parameters=False)


def tensorboard_callbacks(report_to: list[str], run_dir: Path) -> list:
    """A TensorBoard callback writing to ``run_dir/tb`` (transformers 5 dropped ``logging_dir``)."""
    if "tensorboard" not in report_to:
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run_dir / "tb")))]


def release_training_state(trainer: Any) -> None:
    """After ``train()``: free the AdamW moments and the gradients (the checkpoints hold what resume needs), so
    the final evaluation and the consolidated gather do not stack on top of them in host memory."""
    if trainer.optimizer is not None:
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.optimizer.state.clear()
    trainer.model.zero_grad(set_to_none=True)


def plain_model(sharded_model: Any, state: dict) -> Any:
    """A plain (unsharded) HF model of ``sharded_model``'s class and config holding a gathered full ``state``
    (no copy: the tensors are assigned)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(sharded_model.config)
    plain.load_state_dict(state, assign=True, strict=False)
    plain.tie_weights()
    buffers = dict(sharded_model.named_buffers())  # non-persistent buffers (rotary inv_freq): not in the state
    for name, buf in list(plain.named_buffers()):
        if buf.is_meta and name in buffers:
            owner, _, attr = name.rpartition(".")
            plain.get_submodule(owner).register_buffer(attr, buffers[name].detach().clone(), persistent=False)
    if getattr(sharded_model, "generation_config", None) is not None:
        plain.generation_config = sharded_model.generation_config
    return plain.eval()


def for_eval(model: Any, rt: Runtime) -> Any:
    """``model`` placed for evaluation by ``rt`` (an inference runtime): on a GPU there in its compute dtype (bf16),
    never fp32 on the host; on a CPU unchanged (fp32 weights under bf16 autocast)."""
    return model.to(device=rt.device, dtype=rt.weight_dtype).eval()


def gather_full_state(trainer: Any) -> dict:
    """Under FSDP: every rank joins the gather (a collective) of one full state dict, offloaded to host memory;
    rank 0 gets it, the others an empty dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def consolidated_model(trainer: Any) -> Any | None:
    """The trained model, plain: under FSDP every rank must call this (the gather is a collective) and rank 0
    gets an unsharded copy, the other ranks None; without FSDP the unwrapped model itself."""
    if not getattr(trainer, "is_fsdp_enabled", False):
        return trainer.accelerator.unwrap_model(trainer.model)
    state = gather_full_state(trainer)
    return plain_model(trainer.accelerator.unwrap_model(trainer.model), state) if trainer.is_world_process_zero() \
        else None


def save_consolidated(sharded_model: Any, state: dict, out: Path, dtype: Any = None) -> None:
    """Save a gathered full ``state`` as a plain HF safetensors dir (the FSDP model's own ``save_pretrained``
    would touch its sharded parameters, a collective, from rank 0 alone), in ``dtype`` (None: as trained)."""
    plain = plain_model(sharded_model, state)
    if dtype is not None:
        plain.to(dtype)
    plain.save_pretrained(str(out), safe_serialization=True)


def save_final(trainer: Any, tok, out: Path, dtype: Any = None) -> Path:
    """Save the trained model + tokenizer to ``out`` atomically as safetensors, in ``dtype`` (bf16 where the
    run trained in bf16: half of fp32's bytes; None keeps the weights' own dtype); under FSDP every rank joins
    the gather. The trained model itself is cast in place: call this last."""
    partial = out.with_name(f".{out.name}.partial")
    if getattr(trainer, "is_fsdp_enabled", False):
        # sharded checkpoints: gather one full state dict (collective), written once, consolidated, by rank 0
        state = gather_full_state(trainer)
        if trainer.is_world_process_zero():
            save_consolidated(trainer.accelerator.unwrap_model(trainer.model), state, partial, dtype)
    elif trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        if dtype is not None:
            model.to(dtype)  # in place: tied weights stay tied
        model.save_pretrained(str(partial), safe_serialization=True)
    if trainer.is_world_process_zero():
        tok.save_pretrained(str(partial))
        (partial / "training_args.bin").unlink(missing_ok=True)  # a pickle; not part of the model
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(partial, out)
    trainer.accelerator.wait_for_everyone()
    return out
