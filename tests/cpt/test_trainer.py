"""Exact resume: SIGKILL a CPT run mid-training, rerun it, and get the uninterrupted final loss (tiny model)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

DRIVER = textwrap.dedent("""
    import json, os, signal, sys
    from transformers import TrainerCallback
    from finemed.cpt.train import CptConfig, run

    cfg = CptConfig.model_validate(json.loads(sys.argv[1]))
    kill_at = int(sys.argv[3])

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    res = run(cfg, sys.argv[2], callbacks=[Kill()] if kill_at else None)
    print("RESULT" + res.model_dump_json())
""")


def _run(cfg: dict, run_dir, kill_at: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cfg), str(run_dir), str(kill_at)],
                          capture_output=True, text=True, timeout=300)


def _result(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_sigkill_then_rerun_matches_uninterrupted_loss(tiny_dir, med_jsonl, tmp_path):
    cfg = {"model": str(tiny_dir), "domain": {"source": str(med_jsonl)}, "general_eval": {},
           "heldout_fraction": 0.2, "eval_max_docs": 2, "seq_len": 32, "batch_size": 4, "max_steps": 10,
           "warmup_steps": 2, "lr": 3e-3, "save_steps": 3, "save_total_limit": 5, "logging_steps": 1,
           "report_to": [], "dtype": "float32"}
    ref = _result(_run(cfg, tmp_path / "ref"))

    killed = _run(cfg, tmp_path / "cut", kill_at=7)
    assert killed.returncode == -signal.SIGKILL
    ckpts = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-3", "checkpoint-6"]
    assert not (tmp_path / "cut" / "model").exists() and not (tmp_path / "cut" / "log_history.json").exists()

    resumed = _result(_run(cfg, tmp_path / "cut"))
    assert resumed["resumed_from"].endswith("checkpoint-6")
    assert resumed["steps"] == ref["steps"] == 10
    assert abs(resumed["final_loss"] - ref["final_loss"]) < 1e-5
    assert abs(resumed["bpb_after"]["domain"] - ref["bpb_after"]["domain"]) < 1e-5
    assert resumed["bpb_before"] == ref["bpb_before"]
    # the loss at every step after the resume point matches too
    def hist(d):
        return {h["step"]: h["loss"] for h in json.loads((d / "log_history.json").read_text()) if "loss" in h}

    a, b = hist(tmp_path / "ref"), hist(tmp_path / "cut")
    assert all(abs(a[s] - b[s]) < 1e-5 for s in range(7, 11))


def test_incomplete_checkpoint_is_ignored_on_resume(tmp_path):
    from finemed.core.training import COMPLETE_MARK, drop_incomplete_checkpoints, last_good_checkpoint

    for step, done in ((2, True), (4, True), (6, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if done:
            (d / COMPLETE_MARK).write_text(str(step))
    assert last_good_checkpoint(tmp_path).name == "checkpoint-4"
    assert drop_incomplete_checkpoints(tmp_path) == ["checkpoint-6"]
    assert not (tmp_path / "checkpoint-6").exists()


def test_training_args_checkpointing_and_checkpoint_contents():
    """Defects 6 and 7: under an FSDP launch the Trainer's activation checkpointing stays off (FSDP's own does it:
    tests/foundation/test_launch.py); a run that will not resume saves weights-only checkpoints; the launch's
    timeout reaches ddp_timeout."""
    from finemed.core.runtime import Runtime
    from finemed.core.training import training_args
    from finemed.cpt.train import CptConfig

    rt = Runtime(device="cpu", compute="float32", train=True)
    fsdp = CptConfig(gradient_checkpointing=True, launch={"processes": 2, "strategy": "fsdp", "timeout_s": 3600})
    args = training_args(fsdp, "/tmp/x", rt)
    assert not args.activation_checkpointing and args.ddp_timeout == 3600 and not args.save_only_model
    single = CptConfig(gradient_checkpointing=True, resume=False)
    args = training_args(single, "/tmp/x", rt)
    assert args.activation_checkpointing and args.save_only_model and args.save_total_limit == 2
