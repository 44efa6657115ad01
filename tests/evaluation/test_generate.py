"""``eval.generate`` on tiny HF models (shared generation loop, rows, stage cache) and a ``local:`` judge."""

import json

from finemed.core.stages import run_stage
from finemed.evaluation.answers import load_answers, load_prompts
from finemed.evaluation.generate import GenerateConfig, is_remote
from finemed.evaluation.judge import run_pairwise


def test_is_remote():
    assert not is_remote("smollm2") and not is_remote("local:smollm2")
    assert is_remote("http://127.0.0.1:1/v1#m")


def test_builtin_prompt_sets():
    assert len(load_prompts("builtin:germedbench_patient_text")) == 50
    mq = load_prompts("builtin:germedbench_med_qa", limit=3)
    assert len(mq) == 3 and mq[0].reference == "B" and "A) " in mq[0].prompt
    assert len(load_prompts("builtin:germediq")) == 116


def test_generate_two_models_then_local_judge(tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"id": f"q{i}", "prompt": f"Frage {i}?", "reference": "x"})
                                 for i in range(3)), encoding="utf-8")
    from finemed.models.tiny import save_tiny

    other = save_tiny(tmp_path / "tiny_seed1", seed=1)
    cfg = GenerateConfig(models=[str(tiny_model_dir), f"local:{other}"], prompts=str(prompts), max_tokens=6,
                         batch_size=2, device="cpu")
    out = run_stage("eval.generate", cfg, tmp_path / "gen")
    info = out.result
    assert info["rows"] == 6 and all(m["calls"] == 3 and m["failed"] == 0 for m in info["models"].values())
    rows = load_answers(info["answers"])
    assert {r.prompt_id for r in rows} == {"q0", "q1", "q2"} and all(r.reference == "x" for r in rows)
    assert all(r.finish_reason in ("stop", "length") for r in rows)
    assert run_stage("eval.generate", cfg, tmp_path / "gen").status == "cached"
    # a local: judge; the random tiny model never writes a verdict, so after the reminder every order is decided
    # by P(A) vs P(B) of its next token: no pair is invalid, and both orders carry a letter
    j, jinfo = run_pairwise(rows, f"local:{tiny_model_dir}", cache_path=tmp_path / "j.sqlite", max_tokens=4)
    assert len(j) == 3 and all(x.outcome != "invalid" and x.verdict_ab in "AB" and x.verdict_ba in "AB" for x in j)
    assert jinfo["invalid_orders"] == 0 and jinfo["prob_verdicts"] == 6
    assert jinfo["client"]["calls"] == 18  # 6 orders + 6 reminders + 6 letter probabilities
