"""train.distill (offline top-k KD) in 2 processes on CPU (gloo, DDP): the per-step KD losses equal one process on
the same global batch and data order; the teacher cache is computed once (by rank 0)."""

from __future__ import annotations

from finemed.data.packing import TOKENIZE_LOG
from finemed.distill.train import run


def test_offline_kd_two_processes_match_one(kd_cfg, tmp_path):
    common = dict(steps=10, max_train_sequences=40, logging_steps=1, compare_ce=False, eval_qa=0, save_student=False,
                  alpha=0.5)
    one = run(kd_cfg(batch_size=4, **common), tmp_path / "one")
    two = run(kd_cfg(batch_size=2, launch={"processes": 2, "strategy": "ddp"}, **common), tmp_path / "two")
    a, b = [h["loss"] for h in one.kd_train.log], [h["loss"] for h in two.kd_train.log]
    assert len(a) == len(b) == 10
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4 and a[0] > 1.0  # alpha 0.5: CE + KD
    assert max(abs(x - y) / x for x, y in zip(a, b)) < 1e-4
    assert abs(one.bpb_student - two.bpb_student) < 1e-4
    assert two.processes == 2 and two.train_tokens_per_step == one.train_tokens_per_step
    assert two.cache.computed_shards + two.cache.reused_shards == one.cache.shards
    assert (tmp_path / "two" / "report.md").is_file()
    assert len((tmp_path / "two" / ".data" / TOKENIZE_LOG).read_text().splitlines()) == 1


def test_offline_kd_fsdp_two_processes_gathers_then_rank0_evaluates_and_saves(kd_cfg, tmp_path, capfd):
    """FSDP shards the student in place: every rank joins the gather of the trained student, then rank 0 alone
    scores QA and saves it (it used to run generation and save_pretrained on the sharded student: a deadlock).
    The teacher stays on rank 0 alone (offline KD: rank 1 releases it after building its student)."""
    from safetensors.torch import load_file

    common = dict(steps=4, max_train_sequences=16, logging_steps=1, compare_ce=False, save_student=True, alpha=0.5)
    one = run(kd_cfg(batch_size=4, eval_qa=0, **common), tmp_path / "one")
    two = run(kd_cfg(batch_size=2, eval_qa=1, launch={"processes": 2, "strategy": "fsdp"}, **common),
              tmp_path / "two")
    a, b = [h["loss"] for h in one.kd_train.log], [h["loss"] for h in two.kd_train.log]
    assert len(a) == len(b) == 4 and max(abs(x - y) for x, y in zip(a, b)) < 1e-4
    assert abs(one.bpb_student - two.bpb_student) < 1e-4 and two.processes == 2
    assert two.qa_questions == 1 and set(two.qa) == {"teacher", "kd"}  # scored by rank 0 on the gathered student
    w1 = load_file(str(tmp_path / "one" / "student" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "student" / "model.safetensors"))
    assert set(w1) == set(w2) and max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-4
    assert "FSDP" in (tmp_path / "two" / "launch" / "accelerate.yaml").read_text()
    logs = capfd.readouterr()
    assert "rank 1: teacher released" in logs.out + logs.err
    assert "rank 0: teacher released" not in logs.out + logs.err


def test_plateau_rule_under_fsdp_two_processes_stops_every_rank_together(kd_cfg, tmp_path):
    """The plateau score runs on every rank through the sharded student; all ranks stop at the same step (a rank
    that stopped alone would leave the other waiting in a collective until the launch timeout)."""
    r = run(kd_cfg(batch_size=2, steps=8, max_train_sequences=16, compare_ce=False, eval_qa=0, save_student=False,
                   plateau={"eval_every": 2, "min_change": 1.0},
                   launch={"processes": 2, "strategy": "fsdp", "timeout_s": 180}), tmp_path / "p")
    assert r.processes == 2 and r.kd_train.stopped_by == "plateau" and r.kd_train.steps == r.steps == 2
    assert [s for s, _ in r.kd_train.plateau] == [0, 2]
