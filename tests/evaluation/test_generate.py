"""``eval generate`` and a ``local:`` judge on a tiny HF model (chat template, batching, cache, counting)."""

import json

from finemed.evaluation.answers import load_answers, load_prompts
from finemed.evaluation.generate import generate_answers, model_spec
from finemed.evaluation.judge import run_pairwise


def test_model_spec():
    assert model_spec("smollm2") == "local:smollm2"
    assert model_spec("http://127.0.0.1:1/v1#m") == "http://127.0.0.1:1/v1#m"


def test_builtin_prompt_sets():
    assert len(load_prompts("builtin:germedbench_patient_text")) == 50
    mq = load_prompts("builtin:germedbench_med_qa", limit=3)
    assert len(mq) == 3 and mq[0].reference == "B" and "A) " in mq[0].prompt
    assert len(load_prompts("builtin:germediq")) == 116


def test_generate_two_models_then_local_judge(tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"id": f"q{i}", "prompt": f"Frage {i}?", "reference": "x"}) for i in range(3)),
                       encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    cache = tmp_path / "gen.sqlite"
    from finemed.models.tiny import save_tiny

    other = save_tiny(tmp_path / "tiny_seed1", seed=1)
    info = generate_answers([str(tiny_model_dir), f"local:{other}"], str(prompts), out, max_tokens=6,
                            batch_size=2, cache=cache)
    assert info["rows"] == 6 and all(m["calls"] == 3 and m["failed"] == 0 for m in info["models"].values())
    rows = load_answers(out)
    assert {r.prompt_id for r in rows} == {"q0", "q1", "q2"} and all(r.reference == "x" for r in rows)
    assert all(r.finish_reason in ("stop", "length") for r in rows)
    again = generate_answers([str(tiny_model_dir)], str(prompts), tmp_path / "a2.jsonl", max_tokens=6, cache=cache)
    assert again["models"][str(tiny_model_dir)]["calls"] == 0  # cached
    # a local: judge; the random tiny model never writes a verdict → every pair counted invalid, none a tie
    j, jinfo = run_pairwise(rows, f"local:{tiny_model_dir}", cache_path=tmp_path / "j.sqlite", max_tokens=4)
    assert len(j) == 3 and all(x.outcome == "invalid" for x in j)
    assert jinfo["invalid_orders"] == 6 and jinfo["client"]["calls"] == 12  # 6 orders + 6 reminders
