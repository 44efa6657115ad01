"""Top-k logit cache on a tiny Llama: round trip, storage, resume after a crash, corruption/missing errors."""

import pytest
import torch

from finemed.core.config import FinemedError
from finemed.core.runtime import Runtime
from finemed.distill.logit_cache import LogitCache, build_cache
from finemed.distill.losses import kd_loss
from finemed.models.tiny import tiny_llama

V = 512
FP32 = Runtime(device="cpu", compute="float32")  # exact comparisons: no bf16 autocast


@pytest.fixture(scope="module")
def teacher():
    return tiny_llama(vocab_size=V, num_layers=2, seed=1)


def _data(n=10, length=16):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, V, (n, length), generator=g)
    att = torch.ones_like(ids)
    att[1, 12:] = 0
    labels = ids.masked_fill(att == 0, -100)
    return ids, att, labels


def test_round_trip_and_storage(teacher, tmp_path):
    ids, att, labels = _data()
    rep = build_cache(teacher, ids, att, labels, tmp_path / "c", k=8, shard_size=4, value_dtype="float16",
                      runtime=FP32)
    assert rep.path == str(tmp_path / "c")
    assert (rep.shards, rep.computed_shards, rep.reused_shards, rep.tokens) == (3, 3, 0, 160)
    # uint16 ids (2 B) + fp16 values (2 B) per kept logit, 4 B rest mass, plus 4+1+4 B ids/mask/labels
    assert 8 * 4 + 4 + 9 <= rep.bytes_per_token < 8 * 4 + 4 + 9 + 12  # + the safetensors header
    cache = LogitCache(tmp_path / "c")
    assert len(cache) == 10
    item = cache[5]
    assert torch.equal(item["input_ids"], ids[5]) and torch.equal(item["labels"], labels[5])
    with torch.no_grad():
        logits = teacher(input_ids=ids[5:6], attention_mask=att[5:6]).logits[0]
    top_v, top_i = logits.topk(8, -1)
    assert torch.equal(item["teacher_ids"], top_i)
    assert torch.allclose(item["teacher_values"], top_v, atol=2e-2)
    rest = 1 - torch.softmax(logits, -1).gather(-1, top_i).sum(-1)
    assert torch.allclose(item["teacher_rest"], rest, atol=1e-6)


def test_offline_equals_online_loss(teacher, tmp_path):
    """k = vocab and fp32 values: the cached sparse teacher gives the online loss (1e-5)."""
    from finemed.distill.trainer import kd_step_loss

    ids, att, labels = _data(4)
    build_cache(teacher, ids, att, labels, tmp_path / "full", k=V, shard_size=4, value_dtype="float32", runtime=FP32)
    cache = LogitCache(tmp_path / "full")
    batch = torch.utils.data.default_collate([cache[i] for i in range(4)])
    student = tiny_llama(vocab_size=V, num_layers=1, seed=2)
    for div in ("forward_kl", "reverse_kl", "jsd"):
        args = {"divergence": div, "beta": 0.5, "temperature": 1.0, "alpha": 0.0}
        online, _ = kd_step_loss(student, batch, "online", teacher, args)
        offline, _ = kd_step_loss(student, batch, "offline", None, args)
        assert abs(online.item() - offline.item()) < 1e-5, div
        assert online.item() > 1e-3


def test_resume_after_crash_skips_finished_shards(teacher, tmp_path):
    ids, att, labels = _data(10)
    out = tmp_path / "c"

    class Crash(RuntimeError):
        pass

    def crash_after_second(shard):
        if shard == 1:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        build_cache(teacher, ids, att, labels, out, k=8, shard_size=3, on_shard=crash_after_second)
    assert not (out / "index.json").exists()
    with pytest.raises(FinemedError, match="unfinished; rerun cache-logits"):
        LogitCache(out)
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.safetensors")}
    assert sorted(done) == ["shard-00000.safetensors", "shard-00001.safetensors"]
    calls = []
    hook = teacher.register_forward_hook(lambda m, a, o: calls.append(1))
    try:
        rep = build_cache(teacher, ids, att, labels, out, k=8, shard_size=3, batch_size=8)
    finally:
        hook.remove()
    assert (rep.computed_shards, rep.reused_shards) == (2, 2)
    assert len(calls) == 2  # one forward per remaining shard (rows 6..8, 9)
    assert all(( out / n).stat().st_mtime_ns == t for n, t in done.items())
    assert len(LogitCache(out)) == 10


def test_different_plan_in_same_dir_is_refused(teacher, tmp_path):
    ids, att, labels = _data(4)
    build_cache(teacher, ids, att, labels, tmp_path / "c", k=8, shard_size=4)
    with pytest.raises(FinemedError, match="different plan.*k"):
        build_cache(teacher, ids, att, labels, tmp_path / "c", k=16, shard_size=4)


def test_k_larger_than_vocab(teacher, tmp_path):
    ids, att, labels = _data(2)
    with pytest.raises(FinemedError, match=r"k=600 must be within 1\.\.512"):
        build_cache(teacher, ids, att, labels, tmp_path / "c", k=600)


def test_missing_shard(teacher, tmp_path):
    ids, att, labels = _data(8)
    build_cache(teacher, ids, att, labels, tmp_path / "c", k=4, shard_size=4)
    (tmp_path / "c" / "shard-00001.safetensors").unlink()
    with pytest.raises(FinemedError, match=r"shard-00001.safetensors: missing logits shard \(rows 4\.\.8\)"):
        LogitCache(tmp_path / "c")


def test_corrupted_shard(teacher, tmp_path):
    ids, att, labels = _data(8)
    build_cache(teacher, ids, att, labels, tmp_path / "c", k=4, shard_size=4)
    path = tmp_path / "c" / "shard-00000.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits in the tensor payload
    path.write_bytes(bytes(data))
    cache = LogitCache(tmp_path / "c")
    assert len(cache[5]["input_ids"]) == 16  # shard 1 still reads
    with pytest.raises(FinemedError, match="shard-00000.safetensors: corrupted logits shard"):
        cache[0]
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(FinemedError, match="corrupted logits shard \\(SafetensorError"):
        LogitCache(tmp_path / "c", verify=False)[0]
    # a rerun of cache-logits recomputes exactly the corrupted shard
    rep = build_cache(teacher, ids, att, labels, tmp_path / "c", k=4, shard_size=4)
    assert (rep.computed_shards, rep.reused_shards) == (1, 1)
    assert torch.equal(LogitCache(tmp_path / "c")[0]["input_ids"], ids[0])


def test_kd_step_projects_only_scored_positions(teacher):
    """QA-style labels (prompt masked) and padding: only labelled positions reach the lm-head and the loss,
    and the loss equals the full-logits computation restricted to those positions."""
    from finemed.distill.losses import shift_for_lm
    from finemed.distill.trainer import kd_step_loss

    ids, att, labels = _data(4)
    labels[:, :10] = -100  # the "prompt"
    student = tiny_llama(vocab_size=V, num_layers=1, seed=3)
    loss, logits = kd_step_loss(student, {"input_ids": ids, "attention_mask": att, "labels": labels}, "online",
                                teacher, {"divergence": "forward_kl"})
    n_scored = int(((labels[:, 1:] != -100) & att[:, 1:].bool()).sum())
    assert logits.shape == (n_scored, V) and n_scored == 3 * 6 + 2  # labels 10-15; row 1 is padding from 12
    with torch.no_grad():
        s_full, lab = shift_for_lm(student(input_ids=ids, attention_mask=att).logits, labels)
        t_full, _ = shift_for_lm(teacher(input_ids=ids, attention_mask=att).logits, labels)
    ref = kd_loss(s_full, t_full, lab, mask=att[:, 1:])
    assert abs(loss.item() - ref.item()) < 1e-6
