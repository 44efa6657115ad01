"""GPU check: CPT throughput and MFU of a ~0.9B Llama-architecture model through finemed's CPT trainer.

A randomly initialised ``LlamaForCausalLM`` (hidden 2048, 16 layers, 16 heads / 8 KV heads, MLP 5632,
vocab 32000: about 0.9B parameters
with the defaults) trains for ``--steps`` steps as ``finemed train cpt`` trains: fp32 master weights (so
fp32 AdamW state) under bf16 autocast (the runtime policy, ``resolve(..., train=True)``), with SDPA (or
flash-attention 2 when installed), on packed blocks from finemed's data pipeline (random token ids), through
the same ``TrainingArguments`` and Trainer subclass. The steps after the warmup are split into
``--rounds`` (>= 3) equal windows; each window's tokens/s gives an MFU, summarised as min/median/max:

    MFU = tokens/s × (6 N + 12 L d s) / peak bf16 FLOP/s      (N params, L layers, d hidden, s seq_len)

reported twice: N = all parameters (input embedding and untied LM head included, as PaLM counts) and
N = non-embedding parameters (as Kaplan et al. count); the counts come from
:func:`finemed.models.arch.parameter_counts`. The input embedding is a lookup (no FLOPs) and the LM head a
real matmul, so the true figure lies between the two. Peak dense bf16 from
:data:`finemed.models.compute.PEAK_TFLOPS` (H100/H200 989 TFLOP/s, A100 312; override with ``--peak-tflops``).
Last line: ``mfu=<median, non-embedding N>``.

    python benchmarks/gpu_cpt_mfu.py [--steps 300] [--seq-len 2048] [--batch-size 8] [--compile]
    python benchmarks/gpu_cpt_mfu.py --dry-run-cpu --hidden 64 --layers 2 --seq-len 64 --batch-size 2 --steps 8 \
        --warmup 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _rounds import rounds_arg, summarize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--rounds", type=rounds_arg, default=3, help="windows the timed steps are split into")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--dry-run-cpu", action="store_true", help="check the script on CPU (use small sizes)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

    from finemed.core.runtime import resolve
    from finemed.core.training import trainer_classes, training_args
    from finemed.cpt.train import CptConfig
    from finemed.data.packing import MixedBlocks, PackCollator, PackedBlocks
    from finemed.models.arch import parameter_counts
    from finemed.models.compute import PEAK_TFLOPS

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run_cpu:
        raise SystemExit("gpu_cpt_mfu.py needs a CUDA GPU (or --dry-run-cpu with small --hidden/--layers)")
    timed_steps = args.steps - args.warmup
    if timed_steps < args.rounds:
        raise SystemExit(f"--steps {args.steps} - --warmup {args.warmup} leaves {timed_steps} timed steps, "
                         f"fewer than --rounds {args.rounds} windows")
    card = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in card.lower()), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        import flash_attn  # noqa: F401
        attn = "flash_attention_2"
    except ImportError:
        attn = "sdpa"
    heads = 16 if args.hidden >= 256 else 4
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                      num_hidden_layers=args.layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                      max_position_embeddings=max(4096, args.seq_len),
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = attn
    config = CptConfig(seq_len=args.seq_len, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=3e-4,
                       warmup_steps=min(50, args.steps // 5), max_steps=args.steps, dtype="bfloat16",
                       torch_compile=args.compile, gradient_checkpointing=args.gradient_checkpointing,
                       save_steps=10**9, logging_steps=50, report_to=[])
    rt = resolve(config.device, config.dtype, train=True)  # fp32 weights, bf16 autocast: as train.cpt runs
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device=rt.device, dtype=rt.weight_dtype)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.save_pretrained(tmp)
        counts = parameter_counts(tmp)
    assert counts["total"] == sum(p.numel() for p in model.parameters()), counts

    tokens_needed = (args.steps + 1) * args.batch_size * args.grad_accum * args.seq_len
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, cfg.vocab_size, size=tokens_needed, dtype=np.uint16)
    tokens[rng.random(tokens_needed) < 1 / 1500] = cfg.eos_token_id  # documents of ~1500 tokens
    dataset = MixedBlocks(PackedBlocks(tokens, args.seq_len), seed=0)

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            marks[state.global_step] = time.perf_counter()

    CptTrainer, _, _ = trainer_classes()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = CptTrainer(model=model, args=training_args(config, Path(tmp), rt), train_dataset=dataset,
                             data_collator=PackCollator(cfg.eos_token_id), callbacks=[Clock()])
        model.train()
        trainer.train()
    optim_dtypes = sorted({str(v.dtype).replace("torch.", "") for st in trainer.optimizer.state.values()
                           for v in st.values() if torch.is_tensor(v) and v.dim() > 0})
    tok_per_step = args.batch_size * args.grad_accum * args.seq_len
    # the timed steps split into --rounds windows of (nearly) equal length
    edges = [args.warmup + round(i * timed_steps / args.rounds) for i in range(args.rounds + 1)]
    window_tps = [(b - a) * tok_per_step / (marks[b] - marks[a]) for a, b in zip(edges, edges[1:])]
    tps = timed_steps * tok_per_step / (marks[args.steps] - marks[args.warmup])
    attn_flops = 12 * cfg.num_hidden_layers * cfg.hidden_size * args.seq_len
    flops_all = 6 * counts["total"] + attn_flops
    flops_non_emb = 6 * counts["non_embedding"] + attn_flops
    print(f"card={card} attn={attn} compile={args.compile} params={counts['total']:,} "
          f"(non-embedding {counts['non_embedding']:,}, embedding {counts['embedding']:,}) "
          f"seq_len={args.seq_len} batch={args.batch_size}x{args.grad_accum} steps={args.steps}")
    print(f"precision: weights {str(next(model.parameters()).dtype).replace('torch.', '')}, "
          f"optimizer state {','.join(optim_dtypes)}, autocast {rt.compute} ({rt.describe()})")
    if cuda:
        print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"tokens/s={tps:,.0f} (per window: {summarize(window_tps).describe(0, 'windows')})")
    print(f"achieved={tps * flops_all / 1e12:.2f} TFLOP/s (6N all params) "
          f"{tps * flops_non_emb / 1e12:.2f} TFLOP/s (6N non-embedding)")
    if not peak:
        print("mfu=unknown (pass --peak-tflops for this card)")
        return
    mfu_all = [t * flops_all / (peak * 1e12) for t in window_tps]
    mfu_non = [t * flops_non_emb / (peak * 1e12) for t in window_tps]
    print(f"mfu_all_params: {summarize(mfu_all).describe(4, 'windows')} (peak {peak:.0f} TFLOP/s bf16 dense)")
    print(f"mfu_non_embedding: {summarize(mfu_non).describe(4, 'windows')}")
    print(f"mfu_all_params={statistics.median(mfu_all):.4f} mfu_non_embedding={statistics.median(mfu_non):.4f}")
    print(f"mfu={statistics.median(mfu_non):.4f}")


if __name__ == "__main__":
    main()
