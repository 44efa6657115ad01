"""Benchmark the CPT stage on SmolLM2 (CPU, bf16 autocast where supported), in one process:

1. data: tokens/s of the data pipeline alone (tokenise the bundled medical text into a token file, pack,
   mix, shuffle, collate through a DataLoader) vs the tokens/s a training step consumes. Goal >= 20x.
2. step: tokens/s of a CPT training step (our HF Trainer setup, ``finemed.core.training``) vs a bare
   PyTorch loop on the same model, data, batch shape, AdamW, linear schedule, clipping and autocast.
   Goal >= 0.9x. Both run once untimed, then ``--rounds`` (>= 3) times in alternating order from the same
   initial weights (:mod:`_rounds`); the per-round ratio ours/bare tokens/s (= bare seconds / ours) is
   summarised as min/median/max. Differences in work: the Trainer also runs its callbacks, its logging and
   the checkpoint bookkeeping of ``training_args`` (no checkpoint is written: ``save_steps`` exceeds the run);
   the bare loop only steps.

Last two lines: ``ratio means: ...`` and ``ratio=<median step ratio>``.

    python benchmarks/bench_cpt.py [--steps 6] [--rounds 3] [--seq-len 256] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _rounds import print_ratio, report, rounds_arg, run_rounds

RATIO = "bare PyTorch loop seconds / ours (HF Trainer) seconds per training token (> 1: ours faster)"


def data_pipeline_tps(tok, seq_len: int, batch_size: int, workdir: Path) -> tuple[float, int]:
    """Raw texts → token file → packed/mixed/shuffled blocks → collated batches; tokens/s end to end."""
    import torch

    from finemed.core.texts import iter_texts
    from finemed.data.packing import MixedBlocks, PackCollator, PackedBlocks, write_token_file

    texts = list(iter_texts("builtin:medical"))
    start = time.perf_counter()
    info = write_token_file(texts, tok, workdir / "bench.bin", progress=False)
    ds = MixedBlocks(PackedBlocks(info.array(), seq_len), seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True,
                                         collate_fn=PackCollator(tok.eos_token_id))
    n = sum(int(b["input_ids"].numel()) for b in loader)
    return n / (time.perf_counter() - start), n


def trainer_tps(model, tok, dataset, config, steps: int, warmup: int, workdir: Path) -> float:
    """Tokens/s of our Trainer-based CPT steps, timed from the end of step ``warmup`` to the last step."""
    from transformers import TrainerCallback

    from finemed.core.runtime import resolve
    from finemed.core.training import trainer_classes, training_args
    from finemed.data.packing import PackCollator

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks[state.global_step] = time.perf_counter()

    CptTrainer, _, _ = trainer_classes()
    cfg = config.model_copy(update={"max_steps": steps})
    rt = resolve(cfg.device, cfg.dtype, train=True)
    trainer = CptTrainer(model=model, args=training_args(cfg, workdir / "ckpt", rt),
                         train_dataset=dataset, data_collator=PackCollator(tok.eos_token_id), callbacks=[Clock()])
    model.train()
    trainer.train()
    tokens = (steps - warmup) * cfg.batch_size * cfg.seq_len
    return tokens / (marks[steps] - marks[warmup])


def bare_tps(model, tok, dataset, config, steps: int, warmup: int) -> float:
    """The same steps as a plain PyTorch loop (DataLoader, AdamW, linear warmup/decay, clip, autocast)."""
    import torch
    from torch.optim.lr_scheduler import LambdaLR

    from finemed.core.runtime import resolve
    from finemed.data.packing import PackCollator

    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                                         collate_fn=PackCollator(tok.eos_token_id),
                                         generator=torch.Generator().manual_seed(0))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=config.lr)
    w = max(config.warmup_steps, 1)
    sched = LambdaLR(opt, lambda s: min((s + 1) / w, max(0.0, (steps - s) / max(1, steps - w))))
    rt = resolve(config.device, config.dtype, train=True)
    model.train()
    it = iter(loader)
    marks = {}
    for step in range(1, steps + 1):
        batch = next(it)
        batch = {k: v.to(rt.device) for k, v in batch.items()}
        with rt.autocast():
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        _ = loss.item()
        marks[step] = time.perf_counter()
    return (steps - warmup) * config.batch_size * config.seq_len / (marks[steps] - marks[warmup])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=rounds_arg, default=3)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()

    import torch

    from finemed.core.runtime import resolve
    from finemed.core.texts import iter_texts
    from finemed.cpt.train import CptConfig
    from finemed.data.packing import MixedBlocks, PackedBlocks, write_token_file
    from finemed.models.loading import load_causal_lm

    config = CptConfig(seq_len=args.seq_len, batch_size=args.batch_size, lr=1e-4, warmup_steps=2,
                       save_steps=10_000, logging_steps=10_000, report_to=[])
    model, tok = load_causal_lm("smollm2", runtime=resolve(config.device, config.dtype, train=True))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_tps, n_tokens = data_pipeline_tps(tok, args.seq_len, args.batch_size, work)
        info = write_token_file(iter_texts("builtin:medical"), tok, work / "train.bin")
        dataset = MixedBlocks(PackedBlocks(info.array(), args.seq_len), seed=0)
        counter = iter(range(10**6))

        def side(kind: str):
            def once() -> float:
                model.load_state_dict(init)
                if kind == "ours":
                    return trainer_tps(model, tok, dataset, config, args.steps, args.warmup, work / f"r{next(counter)}")
                return bare_tps(model, tok, dataset, config, args.steps, args.warmup)
            return once

        res = run_rounds({"bare": side("bare"), "ours": side("ours")}, args.rounds, warmup=True,
                         unit="train tokens/s")
    t_ours, t_bare = statistics.median(res.values["ours"]), statistics.median(res.values["bare"])
    print(f"threads={torch.get_num_threads()} seq_len={args.seq_len} batch={args.batch_size} steps={args.steps}")
    print(f"data pipeline: {data_tps:,.0f} tokens/s over {n_tokens:,} tokens (tokenise+pack+mix+collate)")
    print(f"training step: ours {t_ours:.1f} tokens/s, bare PyTorch {t_bare:.1f} tokens/s")
    print(f"data_ratio={data_tps / t_ours:.1f} (data pipeline vs training consumption; goal >= 20)")
    ratios = res.ratios("ours", "bare")
    report("step_ratio", ratios, "(Trainer step vs bare loop; goal >= 0.9)")
    print_ratio(ratios, RATIO)


if __name__ == "__main__":
    main()
