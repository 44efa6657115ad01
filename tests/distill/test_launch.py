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
