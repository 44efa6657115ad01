"""GPU check: CPT throughput and MFU of a ~0.9B Llama-architecture model through finemed's CPT trainer.

A randomly initialised ``LlamaForCausalLM`` (hidden 2048, 16 layers, 16 heads / 8 KV heads, MLP 5632,
vocab 32000: about 0.9B parameters
with the defaults) trains for ``--steps`` steps in bf16 with SDPA (or flash-attention 2
when installed) on packed blocks from finemed's data pipeline (random token ids), using the same
``TrainingArguments`` and Trainer subclass as ``finemed train cpt``. Prints tokens/s after the warmup
steps and the model FLOPs utilisation:

    MFU = tokens/s × (6 N + 12 L d s) / peak bf16 FLOP/s      (N params, L layers, d hidden, s seq_len)

Peak dense bf16: H100 SXM / H200 989 TFLOP/s, A100 312 (override with ``--peak-tflops``).

    python benchmarks/gpu_cpt_mfu.py [--steps 300] [--seq-len 2048] [--batch-size 8] [--compile]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


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
    ap.add_argument("--dry-run-cpu", action="store_true", help="check the script on CPU (use small sizes)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

    from finemed.cpt.train import CptConfig
    from finemed.cpt.trainer import trainer_classes, training_args
    from finemed.data.packing import MixedBlocks, PackCollator, PackedBlocks
    from finemed.runtime import resolve

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run_cpu:
        raise SystemExit("gpu_cpt_mfu.py needs a CUDA GPU (or --dry-run-cpu with small --hidden/--layers)")
    card = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in card), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        import flash_attn  # noqa: F401
        attn = "flash_attention_2"
    except ImportError:
        attn = "sdpa"
    cfg = LlamaConfig(vocab_size=32000, hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                      num_hidden_layers=args.layers, num_attention_heads=16, num_key_value_heads=8,
                      max_position_embeddings=max(4096, args.seq_len),
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16 if cuda else torch.float32).to("cuda" if cuda else "cpu")
    n_params = sum(p.numel() for p in model.parameters())

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

    config = CptConfig(seq_len=args.seq_len, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=3e-4,
                       warmup_steps=min(50, args.steps // 5), max_steps=args.steps, dtype="bfloat16",
                       torch_compile=args.compile, gradient_checkpointing=args.gradient_checkpointing,
                       save_steps=10**9, logging_steps=50, report_to=[])
    rt = resolve(config.device, config.dtype, train=True)
    CptTrainer, _, _ = trainer_classes()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = CptTrainer(model=model, args=training_args(config, Path(tmp), rt), train_dataset=dataset,
                             data_collator=PackCollator(cfg.eos_token_id), callbacks=[Clock()])
        model.train()
        trainer.train()
    tok_per_step = args.batch_size * args.grad_accum * args.seq_len
    tps = (args.steps - args.warmup) * tok_per_step / (marks[args.steps] - marks[args.warmup])
    flops_per_token = 6 * n_params + 12 * cfg.num_hidden_layers * cfg.hidden_size * args.seq_len
    achieved = tps * flops_per_token / 1e12
    print(f"card={card} attn={attn} compile={args.compile} params={n_params / 1e9:.3f}B "
          f"seq_len={args.seq_len} batch={args.batch_size}x{args.grad_accum} steps={args.steps}")
    if cuda:
        print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"tokens/s={tps:,.0f} achieved={achieved:.1f} TFLOP/s")
    if peak:
        print(f"mfu={achieved / peak:.3f} (peak {peak:.0f} TFLOP/s bf16 dense)")
    else:
        print("mfu=unknown (pass --peak-tflops for this card)")


if __name__ == "__main__":
    main()
