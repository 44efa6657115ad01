"""The KD training step on the HF Trainer, the input checks, and TRL's on-policy DistillationTrainer.

``KDTrainer`` (:func:`kd_trainer_class`) is ``transformers.Trainer`` with one override, ``compute_loss``:
the student's logits are scored by :func:`finemed.distill.losses.kd_loss` against

- ``online``: the teacher's logits from a forward in the same step (no grad, eval mode, its own dtype);
- ``offline``: the sparse top-k teacher carried in the batch from a :class:`LogitCache`;
- ``ce``: nobody (α = 1), the CE-only baseline with the same loop.

TRL 1.16's ``DistillationTrainer`` is on-policy only (the student generates its completions; its loss is a
fused chunked lm-head kernel), so it serves ``mode: on_policy``; TRL's offline GKD trainer keeps dense
teacher logits and has no top-k cache, hence this small subclass. Cross-tokenizer KD (TRL's GOLD) is out of
scope: teacher and student must share one tokenizer, checked by :func:`check_vocab`.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import TYPE_CHECKING

from finemed.core.config import FinemedError
from finemed.core.launch import enable_cpu_fsdp
from finemed.core.runtime import Runtime
from finemed.distill.losses import TopKTeacher, kd_loss

if TYPE_CHECKING:
    import torch


def check_vocab(teacher_tok, student_tok, teacher_model=None, student_model=None) -> int | None:
    """Same tokenizer (same tokens at the same ids), or one line naming the first ids that differ.

    The logit widths may differ by padding only (Qwen2.5-7B 152,064 vs 3B 151,936; Pythia 50,304 vs 50,432):
    then both models' logits are sliced to the shared width, returned here (None when the widths are equal).
    A width below the tokenizer's size is a true mismatch.
    """
    tv, sv = teacher_tok.get_vocab(), student_tok.get_vocab()
    t_by_id, s_by_id = {i: t for t, i in tv.items()}, {i: t for t, i in sv.items()}
    diff = [i for i in sorted(set(t_by_id) | set(s_by_id)) if t_by_id.get(i) != s_by_id.get(i)]
    if diff:
        shown = ", ".join(f"{i} ({t_by_id.get(i)!r} vs {s_by_id.get(i)!r})" for i in diff[:3])
        raise FinemedError(f"KD: teacher and student tokenizers differ ({len(tv)} vs {len(sv)} tokens, {len(diff)} "
                           f"ids differ; first: {shown}); logit KD needs one shared tokenizer (cross-tokenizer "
                           f"KD, TRL GOLD, is out of scope)")
    if teacher_model is None or student_model is None:
        return None
    vt = int(teacher_model.get_output_embeddings().weight.shape[0])
    vs = int(student_model.get_output_embeddings().weight.shape[0])
    needed = max(tv.values(), default=-1) + 1
    if min(vt, vs) < needed:
        raise FinemedError(f"KD: teacher has {vt} output logits, student {vs}, but their tokenizer has ids up to "
                           f"{needed - 1}; resize the smaller model's embeddings to at least {needed}")
    return None if vt == vs else min(vt, vs)


def check_teacher(teacher, student, dtype: torch.dtype | None = None) -> None:
    """The teacher must sit on the student's device, in the expected dtype."""
    tp, sp = next(teacher.parameters()), next(student.parameters())
    if tp.device != sp.device:
        raise FinemedError(f"KD: teacher is on {tp.device} but the student is on {sp.device}; move the teacher to "
                           f"{sp.device} (set device:) before training")
    if dtype is not None and tp.dtype != dtype:
        raise FinemedError(f"KD: teacher dtype is {tp.dtype} but {dtype} was expected (teacher_dtype); load or cast "
                           f"the teacher to {dtype}")


@lru_cache(maxsize=1)
def kd_trainer_class():
    """``KDTrainer``: ``transformers.Trainer`` with :func:`kd_step_loss` as its loss (built on first use, so
    importing this module stays free of torch)."""
    from transformers import Trainer

    class KDTrainer(Trainer):
        """HF Trainer whose loss is :func:`kd_loss` against an online teacher, a top-k cache, or CE alone."""

        def __init__(self, *args, kd_mode: str = "online", teacher=None, divergence: str = "forward_kl",
                     beta: float = 0.5, temperature: float = 1.0, alpha: float = 0.0, cache_temperature: float = 1.0,
                     vocab: int | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            if kd_mode not in ("online", "offline", "ce"):
                raise FinemedError(f"KD: mode {kd_mode!r} unknown for KDTrainer; use online, offline or ce")
            if kd_mode == "online" and teacher is None:
                raise FinemedError("KD: online mode needs a teacher model")
            self.kd_mode, self.teacher = kd_mode, teacher
            self.kd_args = dict(divergence=divergence, beta=beta, temperature=temperature,
                                alpha=1.0 if kd_mode == "ce" else alpha)
            self.cache_temperature, self.vocab = cache_temperature, vocab
            if teacher is not None:
                teacher.eval()
                teacher.requires_grad_(False)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, logits = kd_step_loss(model, inputs, self.kd_mode, self.teacher, self.kd_args, self.cache_temperature,
                                        vocab=self.vocab)
            if num_items_in_batch is not None:
                # a mean over the scored tokens of the whole global batch (all processes, all accumulation steps),
                # not a mean of per-process means: N processes then train exactly as one on the same batch
                loss = loss * logits.size(0) / num_items_in_batch.to(loss.device).clamp_min(1)
                if self.args.average_tokens_across_devices:
                    loss = loss * self.accelerator.num_processes
            return (loss, {"logits": logits}) if return_outputs else loss

        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            if enable_cpu_fsdp(self.accelerator):
                self.is_fsdp_enabled = True

    return KDTrainer


def kd_step_loss(student, batch: dict, mode: str, teacher=None, kd_args: dict | None = None,
                 cache_temperature: float = 1.0, vocab: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one KD batch: student forward, teacher forward or cache lookup, :func:`kd_loss`.

    Only the scored positions (label set, attention on) are projected onto the vocabulary, through the
    models' own ``logits_to_keep`` (a boolean ``(B, L)`` mask): QA prompts and padding never reach the
    lm-head, the softmax or the divergence. The returned logits are those rows, flattened ``(N, V)``;
    ``vocab`` (teacher and student padded differently, :func:`check_vocab`) slices both to the shared width.
    """
    import torch

    kd_args = dict(kd_args or {})
    ids, att, labels = batch["input_ids"], batch.get("attention_mask"), batch["labels"]
    valid = labels[:, 1:] != -100
    if att is not None:
        valid &= att[:, 1:].bool()
    keep = torch.zeros_like(ids, dtype=torch.bool)
    keep[:, :-1] = valid
    s_logits = _scored_logits(student, ids, att, keep)
    if vocab is not None:
        s_logits = s_logits[:, :vocab]
    s_labels = labels[:, 1:][valid]
    if mode == "ce":
        kd_args["alpha"] = 1.0
        target = s_logits.detach()  # unused: alpha = 1
    elif mode == "online":
        with torch.no_grad():
            target = _scored_logits(teacher, ids, att, keep)
        if vocab is not None:
            target = target[:, :vocab]
    elif mode == "offline":
        target = TopKTeacher(batch["teacher_ids"][:, :-1][valid], batch["teacher_values"][:, :-1][valid],
                             batch["teacher_rest"][:, :-1][valid], cache_temperature)
        if vocab is not None:  # a cache at the teacher's wider padded width: slice it to the shared vocabulary
            target = target.sliced(vocab)
    else:
        raise FinemedError(f"KD: mode {mode!r} unknown; use online, offline or ce")
    return kd_loss(s_logits, target, s_labels, **kd_args), s_logits


def _scored_logits(model, ids: torch.Tensor, att: torch.Tensor | None, keep: torch.Tensor) -> torch.Tensor:
    """``(N, V)`` logits at the ``keep`` positions; models without ``logits_to_keep`` project every position."""
    inner = getattr(model, "module", model)  # DDP/FSDP wrappers pass keyword arguments through
    if "logits_to_keep" in inspect.signature(inner.forward).parameters:
        out = model(input_ids=ids, attention_mask=att, logits_to_keep=keep).logits
        if out.dim() == 2:
            return out
        return out[keep]  # an older head that ignored the mask form
    return model(input_ids=ids, attention_mask=att).logits[keep]


def run_on_policy(student, teacher, tokenizer, prompts: list[str], out_dir, *, steps: int, batch_size: int, lr: float,
                  max_new_tokens: int, divergence: str, beta: float, temperature: float, rt: Runtime, seed: int):
    """``mode: on_policy``: TRL's DistillationTrainer (student generates, teacher scores), CPU-safe settings.

    Its defaults (``bf16=True``, gradient checkpointing on) are overridden: device and precision come from
    ``rt``, and no checkpointing (it slows CPU steps and these students are small).
    """
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    beta_trl = {"forward_kl": 0.0, "reverse_kl": 1.0}.get(divergence, beta)
    args = DistillationConfig(**rt.trainer_kwargs(), output_dir=str(out_dir), max_steps=steps,
                              per_device_train_batch_size=batch_size, learning_rate=lr, gradient_checkpointing=False,
                              max_completion_length=max_new_tokens, beta=beta_trl, temperature=temperature,
                              report_to=[], save_strategy="no", logging_steps=max(1, steps // 4), seed=seed)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer)
    out = trainer.train()
    tokenizer.padding_side = "right"
    return trainer.model, out
