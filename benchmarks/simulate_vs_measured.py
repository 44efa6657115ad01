"""``finemed plan --simulate`` against a real run: one FSDP training step of SmolLM2-135M's architecture in 2 gloo
processes (real tensors) versus the same step simulated on fake tensors with a fake process group.

Per rank it prints the simulated peak (fake tensors, ``FSDPMemTracker`` + AdamW moments), the same tracker on the
real tensors, and the process's own peak RSS increase over its RSS before the model was built (an independent
measure: it also holds allocator slack, gloo buffers and autograd bookkeeping). ``ratio=`` is simulated / RSS
increase, the last line.

    python benchmarks/simulate_vs_measured.py [--seq-len 256] [--batch-size 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def build(model: str):
    from transformers import AutoModelForCausalLM

    from finemed.models.arch import hf_config

    cfg = hf_config(model)
    cfg._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)


def step(model_name: str, world: int, seq_len: int, batch: int) -> dict[str, int]:
    from finemed.orchestrate.simulate import phases as P

    model = build(model_name)
    policy = P.wrap_policy(model, ",".join(model._no_split_modules), "bench")
    P.shard(model, policy, world, bf16=False)
    return P.step_peak(model, batch=batch, seq_len=seq_len)


def worker(rank: int, world: int, port: int, args, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    real = step(args.model, world, args.seq_len, args.batch_size)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out[rank] = {"tracked": real["total"], "rss": peak - base}
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=2)
    args = ap.parse_args()
    world = 2
    from torch._subclasses.fake_tensor import FakeTensorMode

    from finemed.orchestrate.simulate.fakes import fake_process_group

    with fake_process_group(world), FakeTensorMode(allow_non_fake_inputs=True):
        sim = step(args.model, world, args.seq_len, args.batch_size)["total"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(worker, args=(world, port, args, out), nprocs=world, join=True)
    mib = 2 ** 20
    for rank in range(world):
        print(f"rank {rank}: simulated {sim / mib:.0f} MiB, tracked on real tensors {out[rank]['tracked'] / mib:.0f} "
              f"MiB, peak RSS increase {out[rank]['rss'] / mib:.0f} MiB")
    print(f"ratio={sim / max(out[r]['rss'] for r in range(world)):.3f}")


if __name__ == "__main__":
    sys.exit(main())
