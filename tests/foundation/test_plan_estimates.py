"""``finemed plan`` estimates every stage kind: each shipped recipe (recipes/ and recipes/papers/) plans with no
stage left without an estimate, judge calls match the hand count, and the per-kind arithmetic is checked on
small configs (counts x sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.core import stages
from finemed.orchestrate.plan import PlanContext, make_plan

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """``make_plan`` once per recipe for this module's tests."""
    cache: dict[Path, object] = {}

    def get(path: Path):
        if path not in cache:
            cache[path] = make_plan(path, runs_dir=tmp_path_factory.mktemp("runs"))
        return cache[path]

    return get


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO / "recipes")) for p in RECIPES])
def test_every_stage_has_an_estimate(path, planned):
    plan = planned(path)
    missing = [f"{s.name} ({s.kind})" for s in plan.stages if not s.estimate]
    assert not missing, f"no estimate for {missing}"
    for s in plan.stages:
        if not s.kind.startswith(("train.cpt", "train.distill")):
            assert s.estimate.get("assumes"), f"{s.name}: the estimate states no assumptions"
    assert set(plan.totals) >= {"gpu_hours", "max_memory_gib_per_process", "disk_gib", "judge_calls", "cpu_hours"}


def test_every_registered_kind_has_a_planner():
    missing = [k for k in stages.known_kinds() if stages.get_planner(k) is None]
    assert not missing, f"stage kinds without a @planner: {missing}"


@pytest.mark.parametrize("name, stage, calls", [
    # 116 GerMedIQ questions x C(4, 2) pairs of instruct, CPT, merged and the Mistral-Small reference x 2 orders
    ("definemed-qwen2.5-7b", "judge", 116 * 6 * 2),
    # 3 questions (the judge's max_prompts of the 12 answered) x C(3, 2) pairs of instruct, CPT and merged SmolLM2
    # x 2 orders
    ("quickstart", "judge", 3 * 3 * 2),
    # pointwise scores from the bundled GerMedBench judge: no judge calls
    ("quickstart", "published_germedbench_winrates", 0),
])
def test_pairwise_judge_calls_match_the_hand_count(name, stage, calls, planned):
    plan = planned(REPO / "recipes" / f"{name}.yaml")
    est = {s.name: s.estimate for s in plan.stages}[stage]
    assert est["judge_calls"] == calls
    assert plan.totals["judge_calls"] == sum(s.estimate.get("judge_calls", 0) for s in plan.stages)


def _pairwise(answers: str, **kw):
    cfg = stages.get("eval.pairwise").config(answers=answers, **kw)
    return stages.get_planner("eval.pairwise")(cfg, PlanContext())


def test_pairwise_counts_pairs_on_an_answers_file(tmp_path):
    rows = [{"model": m, "prompt_id": p, "prompt": "q", "answer": "a"} for p in "123" for m in "ABC"]
    rows = [r for r in rows if not (r["prompt_id"] == "3" and r["model"] == "C")]  # prompt 3: A and B only
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    judge = "http://127.0.0.1:9/v1#judge"
    assert _pairwise(str(path), judge=judge)["judge_calls"] == 2 * (3 + 3 + 1)
    assert _pairwise(str(path), judge=judge, pairs="vs:A")["judge_calls"] == 2 * (2 + 2 + 1)
    assert _pairwise(str(path), judge=judge, max_prompts=1)["judge_calls"] == 2 * 3
    assert _pairwise(str(path), judge="scores:overall")["judge_calls"] == 0


def test_cache_logits_disk_is_tokens_x_top_k_x_bytes():
    cfg = stages.get("train.cache_logits").config(teacher="Qwen/Qwen2.5-1.5B-Instruct", steps=10, batch_size=4,
                                                  seq_len=128, top_k=32, cache_dtype="float16")
    est = stages.get_planner("train.cache_logits")(cfg, PlanContext())
    tokens = 10 * 4 * 128
    assert est["tokens"] == tokens
    assert est["bytes_per_token"] == 32 * (2 + 4) + 9  # fp16 values, int32 indices (vocab > 65536), the data
    assert est["flops"] == pytest.approx(2 * est["parameters"] * tokens)
    assert est["gpu_hours"] > 0 and est["disk_gib"] == pytest.approx(tokens * est["bytes_per_token"] / 2**30, abs=1e-3)


def test_merge_sweep_counts_candidates_and_disk():
    cfg = stages.get("merge.sweep").config(base="Qwen/Qwen2.5-1.5B-Instruct", cpt="runs/x/cpt/model",
                                           t_values=[0.3, 0.5], schedules={"valley": [0, 1, 0]},
                                           merge_dtype="bfloat16")
    est = stages.get_planner("merge.sweep")(cfg, PlanContext())
    assert est["candidates"] == 2 + 2 + 1 and est["merges"] == 3  # t=0 and t=1 are the inputs themselves
    assert est["disk_gib"] == pytest.approx(est["merged_model_gib"] * 4, abs=0.01)
    assert est["merged_model_gib"] == pytest.approx(2 * est["parameters"] / 2**30, abs=0.01)
    assert est["gpu_hours"] > 0


def test_tokenizer_train_counts_tokenizers_and_bytes():
    cfg = stages.get("tokenizer.train").config(
        algorithms=["bpe"], libraries=["hf", "sp"], vocab_sizes=[1000, 2000],
        corpora=[{"name": "EN", "total_bytes": 10**9, "languages": {"eng_Latn": {"sources": ["builtin:xquad.en"]}}}])
    est = stages.get_planner("tokenizer.train")(cfg, PlanContext())
    assert est["tokenizers"] == 4
    assert est["cpu_hours"] == pytest.approx(4 * 300 / 3600, rel=1e-3)  # 5 CPU-minutes per GB and tokenizer


def test_generate_and_qa_scale_with_the_config():
    gen = stages.get("eval.generate").config(models=["Qwen/Qwen2.5-1.5B-Instruct", "http://h:1/v1#m"],
                                             prompts="builtin:germediq", limit=10, max_tokens=64)
    est = stages.get_planner("eval.generate")(gen, PlanContext())
    assert (est["prompts"], est["rows"], est["endpoint_calls"]) == (10, 20, 10)
    assert est["generated_tokens_max"] == 20 * 64 and est["gpu_hours"] > 0
    qa = stages.get("eval.qa").config(model="Qwen/Qwen2.5-1.5B-Instruct", tasks=["xquad_de_0shot"], limit=7)
    q = stages.get_planner("eval.qa")(qa, PlanContext())
    assert q["requests"] == 7 and q["generated_tokens_max"] == 7 * 32
