"""QA/MCQ lm-eval tasks: prompts, exemplars, local data, MCQ loaders, a tiny-model run, qa-score CLI."""

import json
import sys
from pathlib import Path

import official_scripts as official
import pytest
from mc_reference import option_loglikelihoods

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "finemed" / "core" / "lmeval_tasks"))

from finemed.core.config import FinemedError
from finemed.core.qa_prompts import one_shot_prompt, pick_exemplar, zero_shot_prompt
from finemed.data.loaders import load_squad
from finemed.data.mcq import load_germedbench_mcq, load_mcq_file, mcq_rows


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


# (prediction, golds, lang, metric, EM, F1): EM and F1 worked out by hand after the official normalisation
# (lower-case, drop punctuation, drop articles, collapse whitespace), max over the golds
CRAFTED = [
    # squad: "the denver broncos." -> "denver broncos" = gold
    ("The Denver Broncos.", ["Denver Broncos"], "en", "squad", 1, 1.0),
    # "apple day" vs "apple": 1 shared, P 1/2, R 1 -> F1 2/3
    ("an apple a day", ["apple"], "en", "squad", 0, 2 / 3),
    # "the" is stripped as a word only: "theatre district" vs "theatre" -> P 1/2, R 1 -> 2/3
    ("Theatre district", ["the theatre"], "en", "squad", 0, 2 / 3),
    # three golds: 0; "denver broncos" P 2/3 R 1 -> 4/5; "broncos" P 1/3 R 1 -> 1/2; max 4/5
    ("Broncos of Denver", ["Carolina Panthers", "Denver Broncos", "the Broncos"], "en", "squad", 0, 0.8),
    # ASCII punctuation goes: "usa" = "usa"
    ("U.S.A.", ["USA"], "en", "squad", 1, 1.0),
    # SQuAD v1.1 keeps Unicode quotes: "«paris»" vs "paris", no shared token
    ("«Paris»", ["Paris"], "en", "squad", 0, 0.0),
    # whitespace collapses
    ("  New\tYork \n City ", ["new york city"], "en", "squad", 1, 1.0),
    # duplicates count once against one gold token: P 1/2, R 1 -> 2/3
    ("paris paris", ["paris"], "en", "squad", 0, 2 / 3),
    # squad keeps German articles: "die katze" vs "katze" -> 2/3
    ("die Katze", ["Katze"], "de", "squad", 0, 2 / 3),
    # squad keeps the en dash: "blutdruck – 14090" vs "blutdruck 14090": P 2/3, R 1 -> 4/5
    ("Blutdruck – 140/90", ["Blutdruck 140/90"], "de", "squad", 0, 0.8),
    # mlqa de: "die" is an article
    ("die Katze", ["Katze"], "de", "mlqa", 1, 1.0),
    # „ “ are Unicode punctuation (Ps/Pf), "des" an article: "pudels kern" both
    ("„Des Pudels Kern“", ["Pudels Kern"], "de", "mlqa", 1, 1.0),
    # "einer" and "der" are articles, case-insensitive, umlauts stay: "ärzte" both
    ("Einer der Ärzte", ["Ärzte"], "de", "mlqa", 1, 1.0),
    # the en dash is Unicode punctuation (Pd): "blutdruck 14090" both
    ("Blutdruck – 140/90", ["Blutdruck 140/90"], "de", "mlqa", 1, 1.0),
    # two golds: "patienten mit fieber" vs "patienten" P 1/3 R 1 -> 1/2; vs "fieber" 1/2; max 1/2
    ("einem Patienten mit Fieber", ["dem Patienten", "Fieber"], "de", "mlqa", 0, 0.5),
    # articles only as whole words: "dieser denker" vs "denker" -> 2/3
    ("Dieser Denker", ["der Denker"], "de", "mlqa", 0, 2 / 3),
    # German MLQA does not strip English articles: "the rhine" vs "rhine" -> 2/3
    ("the Rhine", ["Rhine"], "de", "mlqa", 0, 2 / 3),
    # gold normalises to nothing: EM 1 ("" == ""), F1 0 (no shared token), as in both scripts
    ("", ["der"], "de", "mlqa", 1, 0.0),
    # Spanish articles
    ("los gatos", ["gatos"], "es", "mlqa", 1, 1.0),
]


@pytest.mark.parametrize("pred,golds,lang,metric,em,f1", CRAFTED)
def test_lm_eval_hook_scores_crafted_answers_as_worked_out_by_hand(pred, golds, lang, metric, em, f1):
    """The hook lm-eval calls per answer, and the tests' own copy of the official scripts, both give the hand
    values (the copy is checked too, so a wrong literal cannot pass on one side only)."""
    import utils

    assert max(official.em(pred, g, lang, metric) for g in golds) == em
    assert max(official.f1(pred, g, lang, metric) for g in golds) == pytest.approx(f1)
    got = utils.process_results_qa({"answers": golds, "lang": lang, "metric": metric}, [pred])
    assert got["exact_match"] == 100.0 * em and got["f1"] == pytest.approx(100.0 * f1), (pred, golds, got)


def test_corpus_scores_count_missing_answers_as_wrong():
    from finemed.core.qa_metrics import score_predictions
    from finemed.data.loaders import QAExample

    golds = {"q1": ["Berlin"], "q2": ["der Rhein", "Rhein"], "q3": ["1990"], "q4": ["Bonn"]}
    preds = {"q1": "Berlin", "q2": "den Rhein!", "q3": "im Jahr 1990", "zz": "ignored"}  # q4 unanswered
    # mlqa de: q1 EM 1 F1 1; q2 "rhein" EM 1 F1 1; q3 "im jahr 1990" vs "1990" EM 0, F1 1/2; q4 0
    # EM (1 + 1) / 4 = 50, F1 (1 + 1 + 0.5) / 4 = 62.5
    assert official.evaluate(golds, preds, "de", "mlqa") == {"exact_match": 50.0, "f1": 62.5,
                                                              "rougeL": 62.5}
    exs = [QAExample(id=k, title="t", context="c", question="q", answers=v) for k, v in golds.items()]
    assert score_predictions(exs, preds, "de") == {"exact_match": 50.0, "f1": 62.5, "rougeL": 62.5}


def test_finemed_tasks_are_found_by_their_lm_eval_tags():
    from finemed.core.lmeval import finemed_tasks, resolve_tasks, task_manager

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
    from finemed.core.lmeval import resolve_tasks

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
    from finemed.core.qa_eval import QaEvalConfig, evaluate_model
    from finemed.core.runtime import Runtime
    from finemed.models.loading import load_causal_lm
    from finemed.models.tiny import save_tiny

    model, tok = load_causal_lm(save_tiny(tmp_path / "tiny"), device="cpu")
    cfg = QaEvalConfig(model="unused", tasks=["xquad_de_0shot", "germedbench_medqa"], limit=3, batch_size=3)
    res = evaluate_model(model, tok, cfg, tmp_path, runtime=Runtime(device="cpu", compute="float32"))
    qa, mc = res["tasks"]["xquad_de_0shot"], res["tasks"]["germedbench_medqa"]
    assert qa["n"] == 3 and mc["n"] == 3
    preds = json.loads((tmp_path / "predictions_xquad_de_0shot.json").read_text())
    # lm-eval's EM/F1/ROUGE-L equal the tests' own copy of the MLQA script on its predictions
    golds = {ex.id: ex.answers for ex in load_squad(name="xquad.de")[:3]}
    assert set(preds) == set(golds)
    ref = official.evaluate(golds, preds, "de", "mlqa")
    assert {k: qa[k] for k in ref} == pytest.approx(ref), (qa, preds)
    # each option's log-likelihood equals a plain forward's, and acc is the share of items whose gold option wins
    items = json.loads((tmp_path / "items_germedbench_medqa.json").read_text())
    hits = 0
    for row in mcq_rows(load_germedbench_mcq()[:3]):
        by_hand = option_loglikelihoods(model, tok, row["prompt"], row["choices"], model.config.max_position_embeddings)
        assert items[row["id"]]["option_ll"] == pytest.approx(by_hand, abs=1e-3), row["id"]
        hits += int(max(range(len(by_hand)), key=by_hand.__getitem__) == row["label"])
    assert mc["acc"] == hits / 3


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


def test_backend_choice_is_recorded_and_follows_the_engine_policy(tiny_model_dir, tmp_path, monkeypatch):
    from finemed.core import lmeval as lmeval_runner
    from finemed.core.config import FinemedError
    from finemed.core.qa_eval import QaEvalConfig
    from finemed.core.stages import run_stage

    # one policy (finemed.core.engine): vLLM wherever `make vllm` ran (CPU included), else hf
    monkeypatch.setenv("FINEMED_VLLM_VENV", str(tmp_path / "no-venv"))
    monkeypatch.delenv("FINEMED_ENGINE", raising=False)
    assert lmeval_runner.choose_backend("auto") == "hf"
    with pytest.raises(FinemedError, match="no vLLM venv .*make vllm"):
        lmeval_runner.choose_backend("vllm")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".finemed-vllm").write_text("x")
    monkeypatch.setenv("FINEMED_VLLM_VENV", str(venv))
    assert lmeval_runner.choose_backend("auto") == "vllm" and lmeval_runner.choose_backend("hf") == "hf"
    monkeypatch.setenv("FINEMED_ENGINE", "hf")
    cfg = QaEvalConfig(model=str(tiny_model_dir), tasks=["xquad_de_0shot"], limit=2, device="cpu", dtype="float32")
    out = run_stage("eval.qa", cfg, tmp_path / "qa")
    manifest = json.loads((tmp_path / "qa" / "manifest.json").read_text())
    assert out.result["backend"] == "hf" and manifest["result"]["backend"] == "hf"
    assert manifest["config"]["backend"] == "auto"
