"""train.distill on tiny models: offline/online/CE runs, cache reuse, QA masking, vocab/teacher checks, CLI."""

import json

import pytest
import torch

from finemed.config import FinemedError
from finemed.models.tiny import save_tiny, tiny_llama, tiny_tokenizer
from finemed.training.distill import DistillConfig, build_data, run
from finemed.training.distill_trainer import check_teacher, check_vocab


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from finemed.data.loaders import load_squad

    root = tmp_path_factory.mktemp("kd")
    teacher = save_tiny(root / "teacher", num_layers=4)
    exs = load_squad(name="xquad.en")
    titles = list(dict.fromkeys(e.title for e in exs))[:3]
    data = {"data": []}
    for t in titles:
        paras = {}
        for e in exs:
            if e.title == t:
                paras.setdefault(e.context, []).append({"id": e.id, "question": e.question,
                                                        "answers": [{"text": e.answers[0], "answer_start": 0}]})
        data["data"].append({"title": t, "paragraphs": [{"context": c, "qas": q[:2]}
                                                        for c, q in list(paras.items())[:2]]})
    (root / "qa.json").write_text(json.dumps(data))
    texts = [e.context for e in exs][::7][:24]
    (root / "text.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
    return root, teacher


def _cfg(env, **kw):
    root, teacher = env
    base = dict(teacher=str(teacher), text=[str(root / "text.jsonl")], qa=str(root / "qa.json"), seq_len=48,
                batch_size=4, steps=3, max_train_sequences=12, qa_fraction=0.5, eval_qa=2, max_new_tokens=3,
                max_heldout_docs=4, top_k=16, lr=1e-3, heldout_fraction=0.34, autocast=False, save_student=True)
    base.update(kw)
    return DistillConfig(**base)


def test_offline_run_and_cache_reuse(env, tmp_path):
    r = run(_cfg(env), tmp_path / "a")
    assert r["student"]["kept_layers"] == [0, 2] and 0.3 < r["parameter_reduction_pct"] < 60
    assert r["train_sequences"] == 12 and r["cache"]["computed_shards"] == 1
    # 16 uint16 ids + 16 fp16 values + fp32 rest + ids/mask/labels per token
    assert 16 * 4 + 4 + 9 <= r["cache"]["bytes_per_token"] < 16 * 4 + 4 + 9 + 20
    for key in ("bpb_teacher", "bpb_student", "bpb_ce", "bpb_student_init"):
        assert 0.5 < r[key] < 20
    assert r["bpb_student"] != r["bpb_student_init"]  # it trained
    assert set(r["qa"]) == {"teacher", "kd", "ce", "questions"} and r["qa"]["questions"] == 2
    assert r["retention"]["kd_bpb_retention_pct"] == round(100 * r["bpb_teacher"] / r["bpb_student"], 2)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["bpb_student"] == r["bpb_student"]
    assert "| KD student |" in (tmp_path / "a" / "report.md").read_text()
    saved = json.loads((tmp_path / "a" / "student" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 2
    # a second student, any HF model with the same tokenizer, reuses the cache: no teacher forward
    other = save_tiny(tmp_path / "other_student", seed=5, num_layers=1, hidden_size=32)
    r2 = run(_cfg(env, student=str(other), compare_ce=False, eval_qa=0, save_student=False,
                  cache_dir=str(tmp_path / "a" / "logits")), tmp_path / "b")
    assert (r2["cache"]["computed_shards"], r2["cache"]["reused_shards"]) == (0, 1)
    assert r2["student"]["kept_layers"] is None and "bpb_ce" not in r2
    assert r2["parameter_reduction_pct"] > r["parameter_reduction_pct"]


def test_online_mode_lowers_the_kd_loss(env, tmp_path):
    r = run(_cfg(env, mode="online", steps=6, compare_ce=False, eval_qa=0, save_student=False), tmp_path / "o")
    losses = [h["loss"] for h in r["kd_train"]["log"]]
    assert len(losses) >= 3 and losses[-1] < losses[0]


def test_qa_sequences_label_only_the_answer(env):
    from finemed.data.loaders import load_squad
    from finemed.training.distill_data import qa_sequences

    root, _ = env
    tok = tiny_tokenizer()
    exs = load_squad(root / "qa.json")
    ids, att, labels = qa_sequences(exs[:2], exs, tok, 3000, [0, 1])
    assert ids.shape == (4, 3000)
    for row in range(4):
        ans = labels[row][labels[row] != -100]
        assert tok.decode(ans[:-1]).strip() == exs[row // 2].answers[0]
        assert ans[-1].item() == tok.eos_token_id
        assert att[row].sum() > len(ans)  # the prompt is there, unlabeled
    assert att[0].sum() < att[1].sum() < 3000  # the 1-shot prompt is longer
    # too long for seq_len: the prompt is cut from the left, the question and answer stay
    ids, att, labels = qa_sequences(exs[:1], exs, tok, 64, [1])
    assert att.sum() == 64 and tok.decode(ids[0][labels[0] == -100]).endswith("\n\nAnswer:")


def test_heldout_is_not_trained_on(env):
    root, _ = env
    tok = tiny_tokenizer()
    cfg = _cfg(env, max_train_sequences=None)
    (ids, _, _), held, held_qa, _, prompts = build_data(cfg, tok, root / "work")
    assert held and held_qa and prompts
    assert not any(h in p for h in held for p in prompts)
    assert not any(e.context in p for e in held_qa for p in prompts)
    train_text = tok.decode(ids.flatten().tolist())
    assert not any(e.context[:80] in train_text for e in held_qa)


def test_vocab_mismatch_names_first_ids():
    a, b = tiny_tokenizer(), tiny_tokenizer(vocab_size=300)
    check_vocab(a, tiny_tokenizer())  # same tokenizer passes
    with pytest.raises(FinemedError, match=r"tokenizers differ \(512 vs 300 tokens.*first: \d+ \("):
        check_vocab(a, b)


def test_vocab_mismatch_in_the_stage(env, tmp_path):
    from finemed.models.loading import save_model

    tok = tiny_tokenizer(vocab_size=300)
    other = save_model(tiny_llama(vocab_size=300, num_layers=1), tok, tmp_path / "other")
    with pytest.raises(FinemedError, match="cross-tokenizer KD, TRL GOLD, is out of scope"):
        run(_cfg(env, student=str(other)), tmp_path / "r")


def test_teacher_on_wrong_device_or_dtype():
    student, teacher = tiny_llama(num_layers=1), tiny_llama(num_layers=2)
    check_teacher(teacher, student, torch.float32)
    with pytest.raises(FinemedError, match="teacher dtype is torch.bfloat16 but torch.float32 was expected"):
        check_teacher(tiny_llama(num_layers=2).to(torch.bfloat16), student, torch.float32)
    with pytest.raises(FinemedError, match="teacher is on meta but the student is on cpu"):
        check_teacher(tiny_llama(num_layers=2).to("meta"), student)


def test_config_errors():
    with pytest.raises(ValueError, match="keep_every or layers"):
        DistillConfig(keep_every=None, layers=None)
    with pytest.raises(ValueError):
        DistillConfig(mode="dense")


def test_cli_cache_logits_resumes_and_rejects_big_k(env, tmp_path):
    from typer.testing import CliRunner

    from finemed.cli import app

    root, teacher = env
    args = ["train", "distill", "cache-logits", "--teacher", str(teacher), "--set", f"qa={root / 'qa.json'}",
            "--set", f"text=[{root / 'text.jsonl'}]", "--set", "seq_len=48", "--set", "max_train_sequences=10",
            "--set", "autocast=false", "--shard-size", "4"]
    res = CliRunner().invoke(app, args + ["--k", "8", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output[res.output.index("{"):])
    assert (rep["shards"], rep["computed_shards"]) == (3, 3)
    (tmp_path / "c" / "shard-00002.safetensors").unlink()
    (tmp_path / "c" / "shard-00002.json").unlink()
    res = CliRunner().invoke(app, args + ["--k", "8", "--out", str(tmp_path / "c")])
    rep = json.loads(res.output[res.output.index("{"):])
    assert (rep["computed_shards"], rep["reused_shards"]) == (1, 2)
    res = CliRunner().invoke(app, args + ["--k", "5000", "--out", str(tmp_path / "d")])
    # finemed.cli.main turns a FinemedError into its one line and exit code 2
    assert isinstance(res.exception, FinemedError) and "k=5000 must be within 1..512" in str(res.exception)


def test_on_policy_mode_uses_trl_distillation_trainer(env, tmp_path):
    r = run(_cfg(env, mode="on_policy", steps=2, batch_size=2, max_new_tokens=4, compare_ce=False, eval_qa=0,
                 save_student=False), tmp_path / "p")
    assert r["mode"] == "on_policy" and r["kd_train"]["seconds"] > 0
    assert r["bpb_student"] != r["bpb_student_init"]  # TRL's trainer updated the student in place
