"""train.distill on tiny models: offline/online/on-policy/CE runs, cache reuse, QA via lm-eval, stage errors."""

import json

import pytest

from finemed.core import stages
from finemed.core.config import FinemedError
from finemed.distill.train import DistillConfig, DistillResult, qa_lang, run
from finemed.models.tiny import save_tiny, tiny_llama, tiny_tokenizer


def test_offline_run_and_cache_reuse(kd_cfg, tmp_path):
    outcome = stages.run_stage("train.distill", kd_cfg(), tmp_path / "a")
    r = DistillResult.model_validate(outcome.result)
    assert r.student.kept_layers == [0, 2] and 0.3 < r.parameter_reduction_pct < 60
    assert r.train_sequences == 12 and r.cache.computed_shards == 1
    # 16 uint16 ids + 16 fp16 values + fp32 rest + ids/mask/labels per token
    assert 16 * 4 + 4 + 9 <= r.cache.bytes_per_token < 16 * 4 + 4 + 9 + 20
    for value in (r.bpb_teacher, r.bpb_student, r.bpb_ce, r.bpb_student_init):
        assert 0.5 < value < 20
    assert r.bpb_student != r.bpb_student_init  # it trained
    assert r.kd_beats_ce == (r.bpb_student < r.bpb_ce)
    # QA from the eval.qa lm-eval task on the held-out questions: EM/F1/ROUGE-L in percent per model and shot
    assert set(r.qa) == {"teacher", "kd", "ce"} and r.qa_questions == 2
    assert set(r.qa["kd"]) == {"0shot", "1shot"}
    assert all(0 <= v <= 100 for shots in r.qa.values() for m in shots.values() for v in m.values())
    assert r.retention["kd_bpb_retention_pct"] == round(100 * r.bpb_teacher / r.bpb_student, 2)
    assert r.retention["parameter_reduction_pct"] == r.parameter_reduction_pct
    heldout = json.loads((tmp_path / "a" / "qa_heldout.json").read_text())["data"]
    assert len(heldout) >= 2  # the scored questions first, then the 1-shot exemplar pool
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["bpb_student"] == r.bpb_student
    assert "| KD student |" in (tmp_path / "a" / "report.md").read_text()
    saved = json.loads((tmp_path / "a" / "student" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 2
    # a second student, any HF model with the same tokenizer, reuses the cache: no teacher forward
    other = save_tiny(tmp_path / "other_student", seed=5, num_layers=1, hidden_size=32)
    r2 = run(kd_cfg(student=str(other), compare_ce=False, eval_qa=0, save_student=False,
                    cache_dir=str(tmp_path / "a" / "logits")), tmp_path / "b")
    assert (r2.cache.computed_shards, r2.cache.reused_shards) == (0, 1)
    assert r2.student.kept_layers is None and r2.bpb_ce is None and r2.qa is None
    assert r2.parameter_reduction_pct > r.parameter_reduction_pct


def test_online_mode_lowers_the_kd_loss(kd_cfg, tmp_path):
    r = run(kd_cfg(mode="online", steps=6, compare_ce=False, eval_qa=0, save_student=False), tmp_path / "o")
    losses = [h["loss"] for h in r.kd_train.log]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    assert r.cache is None and r.runtime["device"] == "cpu" and r.runtime["compute_dtype"] == "float32"


def test_on_policy_mode_uses_trl_distillation_trainer(kd_cfg, tmp_path):
    r = run(kd_cfg(mode="on_policy", steps=2, batch_size=2, max_new_tokens=4, compare_ce=False, eval_qa=0,
                   save_student=False), tmp_path / "p")
    assert r.mode == "on_policy" and r.kd_train.seconds > 0
    assert r.bpb_student != r.bpb_student_init  # TRL's trainer updated the student in place


def test_vocab_mismatch_in_the_stage(kd_cfg, tmp_path):
    from finemed.models.loading import save_model

    tok = tiny_tokenizer(vocab_size=300)
    other = save_model(tiny_llama(vocab_size=300, num_layers=1), tok, tmp_path / "other")
    with pytest.raises(FinemedError, match="cross-tokenizer KD, TRL GOLD, is out of scope"):
        run(kd_cfg(student=str(other)), tmp_path / "r")


def test_config_errors_and_defaults():
    with pytest.raises(ValueError, match="keep_every or layers"):
        DistillConfig(keep_every=None, layers=None)
    with pytest.raises(ValueError):
        DistillConfig(mode="dense")
    with pytest.raises(ValueError, match="qa_shots"):
        DistillConfig(qa_shots=[2])
    with pytest.raises(ValueError):
        DistillConfig(autocast=True)  # replaced by dtype
    cfg = DistillConfig()
    assert (cfg.device, cfg.dtype, cfg.text) == ("auto", "auto", ["builtin:xquad.en"])
    assert qa_lang(cfg) == "en" and qa_lang(DistillConfig(qa="xquad.de")) == "de"
    assert qa_lang(DistillConfig(qa="my/qa.json")) == "en" and qa_lang(DistillConfig(qa_lang="es")) == "es"


def test_distill_recipe_validates():
    from pathlib import Path

    from finemed.orchestrate.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "distill.yaml")
    entry = recipe.stages[0]
    cfg = stages.get(entry.kind).config.model_validate(entry.config)
    assert isinstance(cfg, DistillConfig) and cfg.text == ["builtin:xquad.en"] and cfg.dtype == "auto"


def test_cli_train_distill_runs_and_prints_the_summary(kd_cfg, env, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from finemed.cli import app

    root, teacher = env
    cfg = kd_cfg(compare_ce=False, eval_qa=0, save_student=False).model_dump(exclude={"teacher"})
    (tmp_path / "kd.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["train", "distill", "-c", str(tmp_path / "kd.yaml"), "--teacher", str(teacher),
                                   "--mode", "online", "--set", "steps=2", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{\n"):])  # the Trainer's log lines come first
    assert out["mode"] == "online" and out["bpb_ce"] is None and out["bpb_student"] > 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["kind"] == "train.distill" and manifest["status"] == "complete"


def test_teacher_is_eval_only_in_bf16_on_a_gpu_and_only_where_needed(kd_cfg, monkeypatch):
    """Defect 5: the teacher was loaded as a training model (fp32) on every GPU. It now takes the inference
    policy's dtype (bf16 on a GPU, fp32 weights under autocast on a CPU) unless teacher_dtype says otherwise, and
    offline KD keeps it on rank 0 only (the cache, its bpb and QA scores)."""
    import torch

    from finemed.core.runtime import Runtime
    from finemed.distill.train import teacher_dtype, teacher_needed_here

    gpu, cpu = Runtime("cuda:0", "bfloat16"), Runtime("cpu", "bfloat16")
    assert teacher_dtype(kd_cfg(), gpu) == torch.bfloat16 and teacher_dtype(kd_cfg(), cpu) == torch.float32
    assert teacher_dtype(kd_cfg(teacher_dtype="float32"), gpu) == torch.float32
    monkeypatch.setenv("RANK", "1")
    assert not teacher_needed_here(kd_cfg(mode="offline")) and teacher_needed_here(kd_cfg(mode="online"))
    monkeypatch.setenv("RANK", "0")
    assert teacher_needed_here(kd_cfg(mode="offline"))


def test_plateau_rule_ends_kd_and_ce_training_and_records_the_steps(kd_cfg, tmp_path):
    """min_change 100%: the first scored step after step 0 meets the rule, so both students stop at step 2 of 20."""
    r = run(kd_cfg(steps=20, eval_qa=0, save_student=False,
                   plateau={"eval_every": 2, "window": 0.2, "min_change": 1.0}), tmp_path / "p")
    for tr in (r.kd_train, r.ce_train):
        assert tr.stopped_by == "plateau" and tr.steps == 2
        assert [s for s, _ in tr.plateau] == [0, 2] and all(0.5 < v < 20 for _, v in tr.plateau)
    assert r.steps == 2
    assert "stopped by the plateau rule at step 2" in (tmp_path / "p" / "report.md").read_text()
    # min_steps above the ceiling: the rule never applies, training runs all its steps
    r2 = run(kd_cfg(steps=4, eval_qa=0, save_student=False, compare_ce=False,
                    plateau={"eval_every": 2, "min_change": 0.0, "min_steps": 10}), tmp_path / "q")
    assert r2.kd_train.stopped_by == "steps" and r2.kd_train.steps == r2.steps == 4
    with pytest.raises(ValueError, match="plateau works with mode online or offline"):
        DistillConfig(teacher="x", mode="on_policy", plateau={"eval_every": 2})
