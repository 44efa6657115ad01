"""QA/MCQ lm-eval tasks: prompts, exemplars, local data, MCQ loaders, a tiny-model run, qa-score CLI."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "finemed" / "evaluation" / "tasks"))

from finemed.config import FinemedError
from finemed.data.loaders import load_squad
from finemed.data.mcq import load_germedbench_mcq, load_mcq_file, mcq_rows
from finemed.evaluation.qa_prompts import one_shot_prompt, pick_exemplar, zero_shot_prompt


def test_prompts_and_seeded_exemplar_from_other_article():
    exs = load_squad(name="xquad.en")
    ex = exs[0]
    assert zero_shot_prompt(ex) == f"Context: {ex.context}\n\nQuestion: {ex.question}\n\nAnswer:"
    e1, e2 = pick_exemplar(exs, ex, 0), pick_exemplar(exs, ex, 0)
    assert e1 == e2 and e1.title != ex.title
    assert {pick_exemplar(exs, ex, s).id for s in range(10)} != {e1.id}  # the seed matters
    p = one_shot_prompt(ex, e1)
    assert p.startswith(zero_shot_prompt(e1) + " " + e1.answers[0] + "\n\n") and p.endswith(zero_shot_prompt(ex))
    assert all(pick_exemplar(exs, x, 3).title != x.title for x in exs[::50])


def test_task_rows_and_metric_hook():
    import utils

    rows = utils.qa_rows("xquad_de", shots=1, n=5)
    assert len(rows) == 5 and rows[0]["lang"] == "de" and rows[0]["metric"] == "mlqa"
    assert rows[0]["prompt"].count("Context:") == 2
    assert utils.qa_rows("mlqa_de", n=2)[0]["id"] and utils.qa_rows("xquad_en", n=1)[0]["metric"] == "squad"
    doc = {"answers": ["der Rhein", "Rhein"], "lang": "de", "metric": "mlqa"}
    assert utils.process_results_qa(doc, [" Rhein\n"]) == {"exact_match": 100.0, "f1": 100.0, "rougeL": 100.0}
    assert utils.process_results_qa(doc, ["Donau"])["f1"] == 0.0


def test_finemed_tasks_are_found_by_their_lm_eval_tags():
    from finemed.evaluation.lmeval_runner import finemed_tasks, resolve_tasks, task_manager

    ours = finemed_tasks(task_manager())
    qa = {f"finemed_{d}_{s}shot" for d in ("xquad_de", "xquad_en", "xquad_es", "mlqa_de", "squad_v1") for s in (0, 1)}
    assert {t for t, tag in ours.items() if tag == "finemed_qa"} == qa
    assert {t for t, tag in ours.items() if tag == "finemed_mcq"} == {"finemed_germedbench_medqa", "finemed_mcq_file"}
    plan = resolve_tasks(["xquad_de_0shot", "finemed_germedbench_medqa"])  # short and full names
    assert plan.names == {"xquad_de_0shot": "finemed_xquad_de_0shot",
                          "finemed_germedbench_medqa": "finemed_germedbench_medqa"}
    assert plan.tags == {"xquad_de_0shot": "finemed_qa", "finemed_germedbench_medqa": "finemed_mcq"}
    assert not plan.stock


def test_stock_lm_eval_tasks_are_accepted_and_unknown_names_are_one_line():
    from finemed.evaluation.lmeval_runner import resolve_tasks

    plan = resolve_tasks(["xquad_de_0shot", "global_mmlu_full_de_medical_genetics"])
    assert plan.stock and plan.names["global_mmlu_full_de_medical_genetics"] == "global_mmlu_full_de_medical_genetics"
    with pytest.raises(FinemedError, match=r"eval task\(s\) xquad_xx_0shot unknown: .*xquad_de_0shot") as err:
        resolve_tasks(["xquad_xx_0shot"])
    assert "\n" not in str(err.value)


def test_mcq_loaders(tmp_path):
    items = load_germedbench_mcq()
    assert len(items) == 49 and items[0].answer == "B" and len(items[0].options) == 5
    r = mcq_rows(items[:1])[0]
    assert r["label"] == 1 and r["choices"][1].startswith("ST-Hebungsinfarkt") and r["prompt"].endswith("Antwort:")
    csv_h = tmp_path / "mmlu.csv"
    csv_h.write_text("Question,A,B,C,D,Answer\nWas ist 2+2?,3,4,5,6,B\n", encoding="utf-8")
    csv_raw = tmp_path / "raw.csv"
    csv_raw.write_text("Was ist 2+2?,3,4,5,6,B\n", encoding="utf-8")
    js = tmp_path / "medqa.jsonl"
    js.write_text(json.dumps({"question": "Q?", "options": {"A": "x", "B": "y"}, "answer_idx": "A"}) + "\n"
                  + json.dumps({"question": "R?", "options": ["u", "v", "w"], "answer": "w"}) + "\n", encoding="utf-8")
    assert load_mcq_file(csv_h)[0].answer == "B" and load_mcq_file(csv_raw)[0].options["B"] == "4"
    got = load_mcq_file(js)
    assert [g.answer for g in got] == ["A", "C"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "Z"}) + "\n")
    with pytest.raises(FinemedError, match="answer 'Z'"):
        load_mcq_file(bad)


def test_tiny_model_through_lm_eval(tmp_path):
    from finemed.evaluation.qa import QaEvalConfig, evaluate_model
    from finemed.models.loading import load_causal_lm
    from finemed.models.tiny import save_tiny

    model, tok = load_causal_lm(save_tiny(tmp_path / "tiny"), device="cpu")
    cfg = QaEvalConfig(model="unused", tasks=["xquad_de_0shot", "germedbench_medqa"], limit=3, batch_size=3)
    res = evaluate_model(model, tok, cfg, tmp_path)
    qa, mc = res["tasks"]["xquad_de_0shot"], res["tasks"]["germedbench_medqa"]
    assert qa["n"] == 3 and mc["n"] == 3 and 0 <= qa["f1"] <= 100 and 0 <= mc["acc"] <= 1
    preds = json.loads((tmp_path / "predictions_xquad_de_0shot.json").read_text())
    assert len(preds) == 3
    # rescoring lm-eval's predictions with the official-script metric gives lm-eval's number
    from finemed.evaluation.qa_metrics import score_predictions

    exs = load_squad(name="xquad.de")[:3]
    assert score_predictions(exs, preds, "de")["f1"] == pytest.approx(qa["f1"])


def run_cli(*args):
    from typer.testing import CliRunner

    from finemed.cli import app

    return CliRunner().invoke(app, ["eval", *args])


def test_qa_score_cli(tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": "der Rhein", "answer_start": 0},
                                                  {"text": "Rhein", "answer_start": 0}]},
        {"id": "q2", "question": "?", "answers": [{"text": "1990", "answer_start": 0}]}]}]}]}), encoding="utf-8")
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps({"q1": "den Rhein!", "zz": "x"}), encoding="utf-8")
    r = run_cli("qa-score", "--data", str(data), "--predictions", str(pred), "--lang", "de")
    assert r.exit_code == 0 and json.loads(r.stdout.strip()) == {"exact_match": 50.0, "f1": 50.0}
    r = run_cli("qa-score", "--data", str(data), "--predictions", str(pred), "--lang", "de", "--metric", "squad")
    # SQuAD keeps German articles: "den rhein" vs "rhein" → EM 0, F1 2/3 on q1
    assert json.loads(r.stdout.strip()) == {"exact_match": 0.0, "f1": pytest.approx(100 * (2 / 3) / 2)}
    pred.write_text("[1, 2]")
    r = run_cli("qa-score", "--data", str(data), "--predictions", str(pred), "--lang", "de")
    assert r.exit_code != 0 and "question ids" in str(r.exception)


def test_backend_choice_is_recorded_and_vllm_refused_where_it_cannot_run(tiny_model_dir, tmp_path, monkeypatch):
    from finemed.config import FinemedError
    from finemed.evaluation import lmeval_runner
    from finemed.evaluation.qa import QaEvalConfig
    from finemed.runtime import Runtime
    from finemed.stages import run_stage

    cpu = Runtime(device="cpu", compute="float32")
    assert lmeval_runner.choose_backend("auto", cpu) == "hf"
    monkeypatch.setattr(lmeval_runner, "vllm_available", lambda: True)
    assert lmeval_runner.choose_backend("auto", cpu) == "hf"  # vLLM only on a GPU
    assert lmeval_runner.choose_backend("auto", Runtime(device="cuda:0", compute="bfloat16")) == "vllm"
    with pytest.raises(FinemedError, match="needs a CUDA device"):
        lmeval_runner.choose_backend("vllm", cpu)
    monkeypatch.setattr(lmeval_runner, "vllm_available", lambda: False)
    with pytest.raises(FinemedError, match="vllm package is not installed"):
        lmeval_runner.choose_backend("vllm", Runtime(device="cuda:0", compute="bfloat16"))
    cfg = QaEvalConfig(model=str(tiny_model_dir), tasks=["xquad_de_0shot"], limit=2, device="cpu", dtype="float32")
    out = run_stage("eval.qa", cfg, tmp_path / "qa")
    manifest = json.loads((tmp_path / "qa" / "manifest.json").read_text())
    assert out.result["backend"] == "hf" and manifest["result"]["backend"] == "hf"
    assert manifest["config"]["backend"] == "auto"
