"""KD across padded vocabularies: same tokenizer, different logit widths (Qwen2.5-7B vs 3B, Pythia sizes)."""

from __future__ import annotations

import pytest
import torch

from finemed.config import FinemedError
from finemed.distill.losses import kd_loss
from finemed.distill.trainer import check_vocab, kd_step_loss
from finemed.models.arch import tiny_standin
from finemed.models.loading import load_causal_lm

PAIRS = {"qwen": ("Qwen/Qwen2.5-7B-Instruct", 152064, "Qwen/Qwen2.5-3B-Instruct", 151936),
         "pythia": ("EleutherAI/pythia-160m", 50304, "EleutherAI/pythia-6.9b", 50432)}


@pytest.fixture(scope="module", params=sorted(PAIRS))
def pair(request, tmp_path_factory):
    t_spec, t_vocab, s_spec, s_vocab = PAIRS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    teacher = tiny_standin(t_spec, root / "teacher", layers=2, hidden=16, heads=2, vocab_size=t_vocab)
    student = tiny_standin(s_spec, root / "student", layers=1, hidden=16, heads=2, vocab_size=s_vocab, seed=1)
    return request.param, teacher, student, min(t_vocab, s_vocab)


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


def test_kd_stage_runs_on_the_qwen_padded_pair(pair, tmp_path):
    from finemed.distill.train import DistillConfig, run

    name, t_dir, s_dir, shared = pair
    if name != "qwen":
        pytest.skip("one stage run is enough")
    cfg = DistillConfig(teacher=str(t_dir), student=str(s_dir), text=["builtin:xquad.en"], qa=None, seq_len=32,
                        batch_size=2, steps=2, max_train_sequences=4, max_heldout_docs=2, top_k=8, eval_qa=0,
                        compare_ce=False, save_student=False, dtype="float32", heldout_fraction=0.2)
    r = run(cfg, tmp_path / "kd")
    assert r.cache.computed_shards == 1 and r.kd_train.train_loss is not None and r.bpb_student > 0
    from finemed.distill.logit_cache import LogitCache

    cache = LogitCache(tmp_path / "kd" / "logits")
    assert cache.plan.vocab_size == shared and int(cache[0]["teacher_ids"].max()) < shared
