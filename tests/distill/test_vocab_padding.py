"""KD across padded vocabularies: same tokenizer, different logit widths (Qwen2.5-7B vs 3B, Pythia-6.9b vs 160m).

Both pairs distil the wider teacher into the narrower student, as the KD paper does (larger into smaller), so
every test runs on both; the stage runs use the Qwen pair only (one stage run is enough), through their own
fixture, so no test is skipped."""

from __future__ import annotations

import pytest
import torch

from finemed.core.config import FinemedError
from finemed.distill.losses import kd_loss
from finemed.distill.trainer import check_vocab, kd_step_loss
from finemed.models.arch import tiny_standin
from finemed.models.loading import load_causal_lm

PAIRS = {"qwen": ("Qwen/Qwen2.5-7B-Instruct", 152064, "Qwen/Qwen2.5-3B-Instruct", 151936),
         "pythia": ("EleutherAI/pythia-6.9b", 50432, "EleutherAI/pythia-160m", 50304)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``name -> (name, teacher dir, student dir, shared width)``, each pair built once for the module."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            t_spec, t_vocab, s_spec, s_vocab = PAIRS[name]
            root = tmp_path_factory.mktemp(name)
            teacher = tiny_standin(t_spec, root / "teacher", layers=2, hidden=16, heads=2, vocab_size=t_vocab)
            student = tiny_standin(s_spec, root / "student", layers=1, hidden=16, heads=2, vocab_size=s_vocab, seed=1)
            cache[name] = (name, teacher, student, min(t_vocab, s_vocab))
        return cache[name]

    return get


@pytest.fixture(scope="module", params=sorted(PAIRS))
def pair(request, built):
    return built(request.param)


@pytest.fixture(scope="module")
def qwen_pair(built):
    return built("qwen")


def test_both_pairs_distil_a_wider_teacher_into_a_narrower_student():
    from finemed.models.arch import config_dict

    for t_spec, t_vocab, s_spec, s_vocab in PAIRS.values():
        assert config_dict(t_spec)["vocab_size"] == t_vocab > s_vocab == config_dict(s_spec)["vocab_size"]


def test_padded_widths_with_one_tokenizer_slice_to_the_shared_vocab(pair):
    name, t_dir, s_dir, shared = pair
    teacher, tok = load_causal_lm(str(t_dir), device="cpu")
    student, s_tok = load_causal_lm(str(s_dir), device="cpu")
    assert check_vocab(tok, s_tok, teacher, student) == shared
    texts = ["Der Patient klagt seit drei Tagen über starke Kopfschmerzen.",
             "Blutdruck 140/90 mmHg, Puls 80/min, Temperatur 37,2 Grad."]
    ids = torch.tensor([tok(t, add_special_tokens=False)["input_ids"][:10] for t in texts])
    att = torch.ones_like(ids)
    att[1, -3:] = 0  # right padding in the second row
    batch = {"input_ids": ids, "attention_mask": att, "labels": ids.masked_fill(att == 0, -100)}
    loss, logits = kd_step_loss(student, batch, "online", teacher, {"temperature": 2.0}, vocab=shared)
    assert logits.shape[-1] == shared
    # by hand: full forwards, shift, keep scored positions, slice both to the shared width
    with torch.no_grad():
        s_full = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        t_full = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    valid = (batch["labels"][:, 1:] != -100) & batch["attention_mask"][:, 1:].bool()
    s = s_full[:, :-1][valid][:, :shared]
    t = t_full[:, :-1][valid][:, :shared]
    lp_t, lp_s = torch.log_softmax(t / 2.0, -1), torch.log_softmax(s / 2.0, -1)
    by_hand = 4.0 * (lp_t.exp() * (lp_t - lp_s)).sum(-1).mean()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-3, abs=1e-5)
    assert float(loss) == pytest.approx(float(kd_loss(s, t, temperature=2.0)), rel=1e-3, abs=1e-5)


def test_a_true_vocab_mismatch_keeps_the_clear_error(pair, tmp_path):
    from finemed.models.tiny import tiny_tokenizer

    name, t_dir, s_dir, _ = pair
    teacher, tok = load_causal_lm(str(t_dir), device="cpu")
    student, _ = load_causal_lm(str(s_dir), device="cpu")
    with pytest.raises(FinemedError, match="tokenizers differ"):
        check_vocab(tok, tiny_tokenizer(), teacher, student)
    student.resize_token_embeddings(1000)  # narrower than the tokenizer: not padding
    with pytest.raises(FinemedError, match="resize the smaller model's embeddings"):
        check_vocab(tok, tok, teacher, student)


def test_kd_stage_runs_on_the_qwen_padded_pair(qwen_pair, tmp_path):
    from finemed.distill.train import DistillConfig, run

    name, t_dir, s_dir, shared = qwen_pair
    cfg = DistillConfig(teacher=str(t_dir), student=str(s_dir), text=["builtin:xquad.en"], qa=None, seq_len=32,
                        batch_size=2, steps=2, max_train_sequences=4, max_heldout_docs=2, top_k=8, eval_qa=0,
                        compare_ce=False, save_student=False, dtype="float32", heldout_fraction=0.2)
    r = run(cfg, tmp_path / "kd")
    assert r.cache.computed_shards == 1 and r.kd_train.train_loss is not None and r.bpb_student > 0
    from finemed.distill.logit_cache import LogitCache

    cache = LogitCache(tmp_path / "kd" / "logits")
    assert cache.plan.vocab_size == shared and int(cache[0]["teacher_ids"].max()) < shared


def _batch(tok):
    texts = ["Der Patient klagt seit drei Tagen über starke Kopfschmerzen.",
             "Blutdruck 140/90 mmHg, Puls 80/min, Temperatur 37,2 Grad."]
    ids = torch.tensor([tok(t, add_special_tokens=False)["input_ids"][:10] for t in texts])
    att = torch.ones_like(ids)
    att[1, -3:] = 0
    return ids, att, ids.masked_fill(att == 0, -100)


def test_a_cache_at_the_teachers_padded_width_is_sliced_for_the_narrower_student(pair, tmp_path):
    """train.cache_logits writes the teacher's full width (152,064); a 151,936-wide student reuses it, sliced.
    With k = the full width the sliced cache is exactly the dense loss on the sliced logits."""
    from finemed.distill.logit_cache import LogitCache, build_cache

    name, t_dir, s_dir, shared = pair
    teacher, tok = load_causal_lm(str(t_dir), device="cpu")
    student, _ = load_causal_lm(str(s_dir), device="cpu")
    width = int(teacher.get_output_embeddings().weight.shape[0])
    assert width > shared  # the teacher is the wider model in both pairs
    ids, att, labels = _batch(tok)
    build_cache(teacher, ids, att, labels, tmp_path / "c", k=width, temperature=2.0, value_dtype="float32",
                shard_size=2)
    rep = build_cache(teacher, ids, att, labels, tmp_path / "c", k=width, temperature=2.0, value_dtype="float32",
                      shard_size=2, vocab=shared)  # was: "differs in vocab_size"
    assert (rep.computed_shards, rep.reused_shards) == (0, 1)
    cache = LogitCache(tmp_path / "c")
    assert cache.plan.vocab_size == width
    batch = {key: torch.stack([cache[i][key] for i in range(2)]) for key in cache[0]}
    loss, logits = kd_step_loss(student, batch, "offline", kd_args={"temperature": 2.0}, cache_temperature=2.0,
                                vocab=shared)
    assert logits.shape[-1] == shared
    with torch.no_grad():
        s_full = student(input_ids=ids, attention_mask=att).logits
        t_full = teacher(input_ids=ids, attention_mask=att).logits
    valid = (labels[:, 1:] != -100) & att[:, 1:].bool()
    by_hand = kd_loss(s_full[:, :-1][valid][:, :shared], t_full[:, :-1][valid][:, :shared], temperature=2.0)
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-3, abs=1e-5)  # float32 sums over 152k ids
    # a narrower cache cannot serve a wider request: the clear error stays
    build_cache(teacher, ids, att, labels, tmp_path / "n", k=8, shard_size=2, vocab=shared)
    with pytest.raises(FinemedError, match="differs in vocab_size"):
        build_cache(teacher, ids, att, labels, tmp_path / "n", k=8, shard_size=2)


def test_sliced_top_k_teacher_renormalises_over_the_shared_ids():
    from finemed.distill.losses import TopKTeacher

    logits = torch.tensor([[3.0, 2.5, 1.0, 0.5, 0.0, -1.0]])  # ids 4 and 5 are padding (shared vocab 4)
    values, ids = logits.topk(4, -1)  # ids [0, 1, 2, 3]... make a padding id rank second:
    logits[0, 5] = 2.8
    values, ids = logits.topk(3, -1)  # ids [0, 5, 1]
    p = torch.softmax(logits, -1)
    rest = 1 - p[0, ids[0]].sum()
    t = TopKTeacher(ids, values, rest.view(1), 1.0).sliced(4)
    assert t.ids.tolist() == [[0, 1]]
    shared = torch.softmax(logits[0, :4], -1)
    # the padding id outside the top-k (id 4) is counted as shared rest mass: the documented approximation
    expect_rest = (1 - p[0, [0, 1, 5]].sum()) / (1 - p[0, 5])
    assert float(t.rest_mass[0]) == pytest.approx(float(expect_rest), rel=1e-6)
    top = torch.softmax(t.values[0], -1) * (1 - t.rest_mass[0])
    assert torch.allclose(top, p[0, [0, 1]] / (1 - p[0, 5]), rtol=1e-6)
    assert float(top.sum() + t.rest_mass[0]) == pytest.approx(1.0, abs=1e-6)
    assert TopKTeacher(ids, values, rest.view(1), 1.0).sliced(6).ids is ids  # nothing to drop
    del shared


def test_distill_reuses_a_teacher_width_cache_from_the_cache_logits_stage(qwen_pair, tmp_path):
    from finemed.distill.cache_logits import CacheLogitsConfig
    from finemed.distill.cache_logits import run as cache_run
    from finemed.distill.train import DistillConfig, run

    name, t_dir, s_dir, shared = qwen_pair
    data = dict(text=["builtin:xquad.en"], qa=None, seq_len=32, batch_size=2, steps=2, max_train_sequences=4,
                max_heldout_docs=2, top_k=8, dtype="float32", heldout_fraction=0.2)
    first = cache_run(CacheLogitsConfig(teacher=str(t_dir), **data), tmp_path / "cache")
    assert first.computed_shards == 1
    cfg = DistillConfig(teacher=str(t_dir), student=str(s_dir), cache_dir=str(tmp_path / "cache"), eval_qa=0,
                        compare_ce=False, save_student=False, **data)
    r = run(cfg, tmp_path / "kd")
    assert (r.cache.computed_shards, r.cache.reused_shards) == (0, 1)
    assert r.kd_train.train_loss is not None and r.kd_train.train_loss == r.kd_train.train_loss and r.bpb_student > 0
