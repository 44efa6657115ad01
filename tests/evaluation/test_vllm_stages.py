"""The stages that generate or score, on the real managed vLLM server (SmolLM2, .venv-vllm).

All share ONE server (the session fixture ``vllm_server``): each stage's own ``finemed.core.engine.serve`` call with
default settings finds it running. Skipped, with the reason, only where `make vllm` has not been run.
"""

from __future__ import annotations

import json

import pytest

from finemed.core.llm import LLMClient
from finemed.evaluation.answers import AnswerRow, write_answers

pytestmark = [pytest.mark.slow, pytest.mark.smoke]


def test_llm_client_serves_a_local_model_on_the_running_server(vllm_server, smollm2_dir, tmp_path):
    client = LLMClient(f"local:{smollm2_dir}", engine="vllm", cache_path=tmp_path / "c.sqlite", max_tokens=8)
    try:
        assert client.engine == "vllm" and client.server is vllm_server  # reused, not a second server
        convs = [[{"role": "user", "content": f"Nenne die Zahl {i}."}] for i in range(8)]
        replies = client.chat(convs, logprobs=5)
        assert all(r.text and r.top_logprobs and len(r.top_logprobs) == 5 for r in replies)
        again = client.chat(convs, logprobs=5)
        assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in replies]
    finally:
        client.close()


def test_generate_runs_on_vllm_and_records_it(vllm_server, tmp_path):
    from finemed.evaluation.generate import GenerateConfig, run

    cfg = GenerateConfig(models=["local:smollm2"], prompts="builtin:germediq", limit=4, max_tokens=24,
                         engine="vllm")
    res = run(cfg, tmp_path / "gen")
    assert res.engines == {"local:smollm2": "vllm"} and res.rows == 4
    rows = [json.loads(line) for line in (tmp_path / "gen" / "answers.jsonl").read_text().splitlines()]
    assert all(r["answer"].strip() and r["finish_reason"] in ("stop", "length") for r in rows)
    assert res.models["local:smollm2"]["failed"] == 0


def test_local_judge_on_vllm(vllm_server, smollm2_dir, tmp_path):
    from finemed.evaluation.winrate import WinrateStageConfig, run

    answers = {"gut": "Ruhe, ausreichend trinken und bei Bedarf Paracetamol.", "kurz": "Tabletten.",
               "falsch": "Viel Kaffee und wenig Schlaf."}
    rows = [AnswerRow(model=m, prompt_id="p1", prompt="Was hilft bei Kopfschmerzen?", answer=a)
            for m, a in answers.items()]
    src = write_answers(tmp_path / "answers.jsonl", rows)
    cfg = WinrateStageConfig(answers=str(src), judge=f"local:{smollm2_dir}", engine="vllm", max_tokens=12,
                             bootstrap=10)
    res = run(cfg, tmp_path / "judge")
    info = res.judge_info
    assert info["engine"] == "vllm" and info["pairs"] == 3 and info["client"]["errors"] == 0
    # every order ends with a verdict: parsed text, or P(A) vs P(B) from the server's top_logprobs
    assert info["invalid_orders"] == 0 and sum(res.outcomes.values()) == 3


def test_annotate_verdicts_come_from_top_logprobs(vllm_server, smollm2_dir, tmp_path):
    from finemed.corpus.annotate import AnnotateConfig, run

    cfg = AnnotateConfig(llm=f"local:{smollm2_dir}", sample=8, dev_size=8, template="de", label_field="medical",
                         n_boot=100, engine="vllm")
    out = run(cfg, tmp_path / "a")
    assert out.engine == "vllm" and out.methods == {"logprobs": 8} and out.share_labelled == 1.0
    assert out.agreement is not None


def test_merge_probe_on_vllm(vllm_server, smollm2_dir):
    from finemed.merging.probe import run_probe_served

    res = run_probe_served(smollm2_dir, engine="vllm", limit=6, max_new_tokens=32)
    assert res.engine == "vllm" and len(res.items) == 6 and 0.0 <= res.pass_rate <= 1.0
