"""GPU check of issue 22: the three GPU paths no CPU test exercises, in one script (about 8 minutes on one H100).

1. CPT MFU of a ~0.9B Llama-architecture model in bf16 (SDPA, or flash-attention 2 where installed), through
   finemed's CPT trainer: ``benchmarks/gpu_cpt_mfu.py`` in a fresh process; its ``mfu=`` line is kept.
2. ``eval.qa`` (lm-eval, XQuAD-de 0-shot) through the vLLM backend and the HF backend on the same model (SmolLM2,
   ``finemed models fetch smollm2``) and questions: the number of identical predictions out of all. vLLM runs
   from its own venv (``make vllm`` on CPU; on a GPU machine ``FINEMED_VLLM_VENV`` at a CUDA vLLM venv) and is
   skipped with one line where there is none.
3. One KD step with the teacher in bf16: the ``train.distill`` stage, online mode, teacher ``teacher_dtype:
   bfloat16``, one step, a layer-dropped student.

``--cpu`` runs the same code on the CPU with tiny sizes (the fast test does). Each part prints one result line;
the last line is ``gpu_check=ok`` or ``gpu_check=failed (<parts>)``.

    python benchmarks/gpu_check.py            # on the GPU machine
    python benchmarks/gpu_check.py --cpu      # the same paths, tiny, on CPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cpt_mfu(cpu: bool) -> str:
    args = ["--dry-run-cpu", "--hidden", "64", "--layers", "2", "--seq-len", "64", "--batch-size", "2",
            "--steps", "8", "--warmup", "2", "--vocab", "512"] if cpu else \
        ["--steps", "80", "--warmup", "10", "--seq-len", "2048", "--batch-size", "8"]
    out = subprocess.run([sys.executable, str(HERE / "gpu_cpt_mfu.py"), *args], capture_output=True, text=True,
                         timeout=400)
    lines = [x for x in out.stdout.splitlines() if x.startswith(("mfu", "tokens"))]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"gpu_cpt_mfu.py exit {out.returncode}: {(out.stderr or out.stdout)[-300:]}")
    return " | ".join(lines[-3:])


def qa_backends(cpu: bool, tmp: Path) -> str:
    from finemed.core.qa_eval import QaEvalConfig
    from finemed.evaluation.qa import run

    task = "xquad_de_0shot"
    common = dict(model="smollm2", tasks=[task], limit=4 if cpu else 200, batch_size=4 if cpu else 32,
                  device="cpu" if cpu else "cuda", dtype="float32" if cpu else "bfloat16")
    t0 = time.perf_counter()
    run(QaEvalConfig(**common, backend="hf"), tmp / "hf")
    hf_s = time.perf_counter() - t0
    from finemed.core.engine import vllm_python, vllm_venv

    if vllm_python() is None:  # vLLM lives in its own venv, never in finemed's (see finemed/core/engine.py)
        return (f"eval.qa hf: {common['limit']} questions in {hf_s:.1f} s; vllm: skipped (no vLLM venv at "
                f"{vllm_venv()}; `make vllm`, or FINEMED_VLLM_VENV pointing at a CUDA vLLM venv)")
    t0 = time.perf_counter()
    run(QaEvalConfig(**common, backend="vllm"), tmp / "vllm")
    vl_s = time.perf_counter() - t0
    hf = json.loads((tmp / "hf" / f"predictions_{task}.json").read_text())
    vl = json.loads((tmp / "vllm" / f"predictions_{task}.json").read_text())
    same = sum(hf[k] == vl.get(k) for k in hf)
    return f"eval.qa identical predictions vllm vs hf: {same}/{len(hf)} (hf {hf_s:.1f} s, vllm {vl_s:.1f} s)"


def kd_step(cpu: bool, tmp: Path) -> str:
    import torch

    from finemed.distill.train import DistillConfig, run

    cfg = DistillConfig(teacher="smollm2", keep_every=2, mode="online", teacher_dtype="bfloat16", steps=1,
                        batch_size=2 if cpu else 8, seq_len=32 if cpu else 1024, max_train_sequences=4 if cpu else 64,
                        max_heldout_docs=2, eval_qa=0, compare_ce=False, save_student=False, warmup_steps=0,
                        device="cpu" if cpu else "cuda", dtype="bfloat16")
    res = run(cfg, tmp / "kd")
    peak = f", peak GPU {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if torch.cuda.is_available() else ""
    return (f"kd step (teacher bf16, online): loss {res.kd_train.train_loss}, {res.kd_train.tokens_per_second} "
            f"tokens/s{peak}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="the same code on CPU, tiny sizes")
    ap.add_argument("--only", choices=["cpt", "qa", "kd"], action="append", help="run only these parts")
    args = ap.parse_args()
    failed = []
    with tempfile.TemporaryDirectory(prefix="finemed-gpu-check-") as tmp:
        parts = {"cpt": lambda: cpt_mfu(args.cpu), "qa": lambda: qa_backends(args.cpu, Path(tmp)),
                 "kd": lambda: kd_step(args.cpu, Path(tmp))}
        for name, fn in parts.items():
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            try:
                print(f"{name}: {fn()} [{time.perf_counter() - t0:.0f} s]", flush=True)
            except Exception as err:  # one line per failed part; the others still run
                failed.append(name)
                print(f"{name}: FAILED {type(err).__name__}: {str(err).splitlines()[0][:300]}", flush=True)
    print("gpu_check=ok" if not failed else f"gpu_check=failed ({', '.join(failed)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
