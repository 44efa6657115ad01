"""KD step costs on SmolLM2-135M-Instruct (teacher) → 15-layer student, and step time vs TRL, in one process.

Every comparison calls each side once untimed, then runs ``--rounds`` (>= 3) rounds with the sides in
alternating order (:mod:`_rounds`); each
side's value in a round is the median of ``--reps`` (>= 3) timed steps, so one step slowed by another job cannot
move it (the old default, 2, took their mean: one slow step made a 2.6x round); the per-round ratios are
summarised min/median/max. Trainer sides build a fresh Trainer per round and drop its first step (lazy
initialisation). Defaults (batch 2, 3 reps, 3 rounds, SmolLM2 teacher) were estimated from FLOPs to finish in <= 8
minutes on 2 quiet cores before the warm-up calls were added; those add one round's work to every comparison
(about 4/3 of that, ~11 minutes, not measured).

1. ``kd_overhead``: online KD step / (teacher forward + student CE forward/backward/step), timed separately
   (goal <= 1.1): what KD adds beyond the two forwards it cannot avoid.
2. ``offline_vs_ce``: offline top-k KD step (cache lookup + sparse loss) / CE-only step (goal <= 1.15).
3. ``vs_trl_off_policy``: like for like, both HF Trainers: TRL 1.16's ``GKDTrainer`` in its off-policy
   setting (``lmbda=0``: no student generation, ``seq_kd=False``; ``beta=0``: forward KL, temperature 1)
   vs our ``KDTrainer`` (``mode: online``, forward KL, temperature 1, alpha 0), on the same batch (QA prompts
   + 16 answer tokens, loss on the answer tokens), the same student init, optimizer settings and dtype
   (``--trl-dtype``, fp32 by default). Ratio: TRL s/step over ours. Printed last as ``ratio=``. The work
   differs: ours computes logits at the answer positions only (``logits_to_keep``, in both models), while
   GKDTrainer computes full-sequence logits and slices them; the loss is the same. Where ours is faster, that
   is why.
4. ``vs_trl_on_policy`` (a second, labelled line): TRL's ``DistillationTrainer`` (on-policy only in 1.16: the
   student generates the 16 completion tokens each step) vs our off-policy online KD step on prompt + 16
   tokens. The generation is the method's difference; this says what off-policy KD saves per step.

    flock /tmp/finemed-heavy.lock .venv/bin/python benchmarks/bench_distill.py [--rounds 3] [--reps 3] [--batch 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from _rounds import print_ratio, report, rounds_arg, run_rounds

NEW_TOKENS = 16
RATIO = ("TRL GKDTrainer(lmbda=0) s/step / ours KDTrainer s/step, same batch, loss and dtype; ours computes "
         "logits at answer positions only (> 1: ours faster)")


def _reps_arg(value: str) -> int:
    """``--reps``: at least 3, so the median of a side's steps ignores one slowed step."""
    import argparse

    if not value.isdigit() or int(value) < 3:
        raise argparse.ArgumentTypeError(f"reps={value}: need at least 3 timed steps per side and round")
    return int(value)


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _batch(tok, prompts: list[str], completion: int, seq_len: int | None = None):
    """Right-padded prompt + ``completion`` tokens; labels only on the completion (or all, for plain text)."""
    rows = []
    for p in prompts:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        rows.append(ids[-((seq_len or 10**9) - completion):])
    width = max(len(r) for r in rows) + completion
    ids = torch.full((len(rows), width), tok.pad_token_id or 0, dtype=torch.long)
    att = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    g = torch.Generator().manual_seed(0)
    for i, r in enumerate(rows):
        comp = torch.randint(4, min(len(tok), 40000), (completion,), generator=g)
        ids[i, :len(r) + completion] = torch.cat([torch.tensor(r), comp])
        att[i, :len(r) + completion] = 1
        labels[i, len(r):len(r) + completion] = comp
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


def _rows(batch: dict, steps: int):
    """The rows of one batch repeated ``steps`` times, as a torch-format ``datasets.Dataset`` (TRL's trainers
    take no other kind): read sequentially, every step of every trainer sees exactly this batch."""
    from datasets import Dataset

    return Dataset.from_dict({k: v.tolist() * steps for k, v in batch.items()}).with_format("torch")


def _step_timer():
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], 0.0

        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.t0)

    return Timer()


def _common_args(args, steps: int, out: str) -> dict:
    """The Trainer settings both sides of the TRL comparisons share."""
    return dict(output_dir=out, max_steps=steps, per_device_train_batch_size=args.batch, learning_rate=1e-6,
                lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, use_cpu=True,
                bf16=args.trl_dtype == "bfloat16", gradient_checkpointing=False, report_to=[], save_strategy="no",
                logging_steps=1, seed=0, data_seed=0, remove_unused_columns=False, dataloader_num_workers=0,
                train_sampling_strategy="sequential")


def ours_trainer_step(student, teacher, batch, args) -> tuple[float, float]:
    """(median s/step after the first, first-step loss) of our KDTrainer, online forward KL."""
    from transformers import TrainingArguments, default_data_collator

    from finemed.distill.trainer import kd_trainer_class

    steps = args.reps + 1
    timer = _step_timer()
    trainer = kd_trainer_class()(model=copy.deepcopy(student), args=TrainingArguments(
        **_common_args(args, steps, "/tmp/bench_distill_ours")), train_dataset=_rows(batch, steps),
        data_collator=default_data_collator, callbacks=[timer], kd_mode="online", teacher=teacher,
        divergence="forward_kl", temperature=1.0, alpha=0.0)
    trainer.train()
    return statistics.median(timer.times[1:]), _first_loss(trainer)


def trl_gkd_step(student, teacher, tok, batch, args) -> tuple[float, float]:
    """(median s/step after the first, first-step loss) of TRL's GKDTrainer, off-policy (lmbda=0)."""
    from transformers import default_data_collator
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    steps = args.reps + 1
    timer = _step_timer()
    cfg = GKDConfig(**_common_args(args, steps, "/tmp/bench_distill_gkd"), lmbda=0.0, seq_kd=False, beta=0.0,
                    temperature=1.0, max_new_tokens=NEW_TOKENS, disable_dropout=True)
    trainer = GKDTrainer(model=copy.deepcopy(student), teacher_model=teacher, args=cfg,
                         train_dataset=_rows(batch, steps), data_collator=default_data_collator,
                         processing_class=tok, callbacks=[timer])
    trainer.train()
    return statistics.median(timer.times[1:]), _first_loss(trainer)


def trl_on_policy_step(student, teacher, tok, prompts, args) -> float:
    """Median s/step (after the first) of TRL's DistillationTrainer, generating NEW_TOKENS per prompt."""
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    steps = args.reps + 1
    timer = _step_timer()
    tok.padding_side = "left"
    common = _common_args(args, steps, "/tmp/bench_distill_trl")
    common.pop("data_seed")
    cfg = DistillationConfig(**common, max_completion_length=NEW_TOKENS,
                             generation_kwargs={"min_new_tokens": NEW_TOKENS}, beta=0.0, shuffle_dataset=False)
    trainer = DistillationTrainer(model=copy.deepcopy(student), teacher_model=teacher, args=cfg, callbacks=[timer],
                                  train_dataset=Dataset.from_dict({"prompt": prompts * steps}), processing_class=tok)
    trainer.train()
    tok.padding_side = "right"
    return statistics.median(timer.times[1:])


def _first_loss(trainer) -> float:
    return next((h["loss"] for h in trainer.state.log_history if "loss" in h), float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=rounds_arg, default=3)
    ap.add_argument("--reps", type=_reps_arg, default=3, help="timed steps per side and round (median, >= 3)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--trl-dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--skip-on-policy", action="store_true")
    ap.add_argument("--model", default="smollm2", help="teacher (HF dir or name); a tiny dir smoke-tests the script")
    args = ap.parse_args()

    from finemed.core.qa_prompts import zero_shot_prompt
    from finemed.core.runtime import resolve
    from finemed.data.loaders import load_squad
    from finemed.distill.logit_cache import teacher_topk
    from finemed.distill.trainer import kd_step_loss
    from finemed.models.loading import load_causal_lm
    from finemed.models.student import init_student

    torch.manual_seed(0)
    rt = resolve("cpu", "auto", train=True)  # CPU benchmark: fp32 weights, bf16 autocast where supported
    teacher, tok = load_causal_lm(args.model, runtime=rt)
    student, info = init_student(teacher, keep_every=2)
    teacher.requires_grad_(False)
    print(f"teacher {info.teacher_parameters:,} params, student {info.student_parameters:,} "
          f"({len(info.kept_layers)} layers, reduction {100 * info.reduction:.1f}%)")
    exs = [e for e in load_squad(name="xquad.en") if len(e.context) < 700][: args.batch * 4]
    prompts = [zero_shot_prompt(e) for e in exs[: args.batch]]
    work = copy.deepcopy(student)  # the in-process steps train a copy; the TRL comparisons start from `student`
    opt = torch.optim.AdamW(work.parameters(), lr=1e-6)

    def student_step(batch, mode, kd_args=None, autocast=True):
        work.train()
        opt.zero_grad(set_to_none=True)
        with rt.autocast() if autocast else torch.autocast("cpu", enabled=False):
            loss, _ = kd_step_loss(work, batch, mode, teacher, kd_args or {})
        loss.backward()
        opt.step()

    # 1 + 2: plain-text-like sequences of seq_len tokens, all positions scored, bf16 autocast (the CPU default)
    text_batch = _batch(tok, [e.context for e in exs[: args.batch]], args.seq_len // 2, args.seq_len)
    text_batch["labels"] = text_batch["input_ids"].masked_fill(text_batch["attention_mask"] == 0, -100)
    n_tokens = int(text_batch["attention_mask"].sum())

    def teacher_fwd():
        with torch.no_grad(), rt.autocast():
            teacher(input_ids=text_batch["input_ids"], attention_mask=text_batch["attention_mask"])

    ids, vals, rest = teacher_topk(teacher, text_batch["input_ids"], text_batch["attention_mask"], args.k,
                                   runtime=rt)
    offline_batch = dict(text_batch, teacher_ids=ids.to(torch.uint16).long(), teacher_values=vals.half().float(),
                         teacher_rest=rest)
    sides = {"teacher_fwd": teacher_fwd, "ce": lambda: student_step(text_batch, "ce"),
             "online_kd": lambda: student_step(text_batch, "online"),
             "offline_kd": lambda: student_step(offline_batch, "offline")}
    # warm-up: one untimed call each (first-call allocations, autocast caches)
    res = run_rounds({k: (lambda f=f: _median_time(f, args.reps)) for k, f in sides.items()}, args.rounds,
                     warmup=True, unit="s")
    v = res.values
    kd_overhead = [kd / (t + ce) for kd, t, ce in zip(v["online_kd"], v["teacher_fwd"], v["ce"])]
    print(f"[{rt.compute} autocast, batch {args.batch} x {text_batch['input_ids'].shape[1]} tokens ({n_tokens} real)] "
          + ", ".join(f"{k} {statistics.median(x):.3f}s" for k, x in v.items()) + f" (offline top-{args.k})")
    report("kd_overhead", kd_overhead, "(online KD / (teacher fwd + CE step); goal <= 1.1)")
    off_ratios = report("offline_vs_ce", res.ratios("offline_kd", "ce"), "(goal <= 1.15)")
    if args.skip_trl:
        print("no ratio= line: --skip-trl runs no peer")
        return

    qa_batch = _batch(tok, prompts, NEW_TOKENS)
    qa_tokens = int(qa_batch["attention_mask"].sum())
    on_policy = None
    if not args.skip_on_policy:
        # 4 (printed second): TRL on-policy (generates NEW_TOKENS) vs our off-policy online KD step
        on = run_rounds({"trl_on_policy": lambda: trl_on_policy_step(student, teacher, tok, prompts, args),
                         "ours_online": lambda: ours_trainer_step(student, teacher, qa_batch, args)[0]},
                        args.rounds, warmup=True, unit="s/step")
        on_policy = on.ratios("trl_on_policy", "ours_online")
    # 3: TRL GKDTrainer off-policy (lmbda=0) vs our KDTrainer, same batch / loss / dtype / init
    losses: dict[str, float] = {}

    def side(name, fn):
        def once() -> float:
            secs, losses[name] = fn()
            return secs
        return once

    off = run_rounds({"trl_gkd": side("trl_gkd", lambda: trl_gkd_step(student, teacher, tok, qa_batch, args)),
                      "ours_kd": side("ours_kd", lambda: ours_trainer_step(student, teacher, qa_batch, args))},
                     args.rounds, warmup=True, unit="s/step")
    off_policy = off.ratios("trl_gkd", "ours_kd")
    print(f"[{args.trl_dtype}, batch {args.batch}, prompt + {NEW_TOKENS} answer tokens = {qa_tokens} tokens/step] "
          f"TRL GKDTrainer(lmbda=0) {statistics.median(off.values['trl_gkd']):.3f}s/step, ours KDTrainer "
          f"{statistics.median(off.values['ours_kd']):.3f}s/step; first-step loss TRL {losses['trl_gkd']:.6g} "
          f"ours {losses['ours_kd']:.6g} (same batch and init: equal up to float error)")
    print(f"kd_overhead={statistics.median(kd_overhead):.3f} offline_vs_ce={off_ratios.median:.3f}")
    if on_policy is not None:
        report("vs_trl_on_policy", on_policy, "(TRL DistillationTrainer s/step, generating 16 tokens / ours "
                                              "off-policy online KD; the method differs)")
    report("vs_trl_off_policy", off_policy, "(TRL GKDTrainer lmbda=0 s/step / ours; same batch, loss, dtype; "
                                            "ours: logits at answer positions only)")
    print_ratio(off_policy, RATIO)


if __name__ == "__main__":
    main()
