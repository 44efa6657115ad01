"""README "Extend finemed": a new eval task is one lm-eval YAML (tagged ``finemed_qa`` / ``finemed_mcq``) in a
task dir, plus its data; ``eval.qa`` / ``eval.mcq`` find it through lm-eval's index (``task_dirs``), no code."""

from __future__ import annotations

import json

from mc_reference import accuracy

from finemed.core.qa_eval import QaEvalConfig
from finemed.core.stages import run_stage
from finemed.evaluation.mcq import McqEvalConfig
from finemed.models.loading import load_causal_lm

QA_YAML = """tag: finemed_qa
task: finemed_capitals
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: generate_until
doc_to_text: "Frage: {{{{question}}}}\\nAntwort:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], do_sample: false, max_gen_toks: 8}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true}}
"""

MCQ_YAML = """tag: finemed_mcq
task: finemed_organs
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Frage: {{{{question}}}}\\nAntwort:"
doc_to_choice: choices
doc_to_target: label
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
"""


def _write(tmp_path, name, yaml_text, rows):
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (tasks / f"{name}.yaml").write_text(yaml_text.format(data=data), encoding="utf-8")
    return tasks


def test_new_qa_task_from_a_yaml(tiny_model_dir, tmp_path):
    pairs = [("Deutschland", "Berlin"), ("Frankreich", "Paris"), ("Polen", "Warschau")]
    rows = [{"id": f"c{i}", "question": f"Hauptstadt von {land}?", "answer": stadt}
            for i, (land, stadt) in enumerate(pairs)]
    tasks = _write(tmp_path, "capitals", QA_YAML, rows)
    cfg = QaEvalConfig(model=str(tiny_model_dir), tasks=["capitals"], task_dirs=[str(tasks)], limit=None,
                       batch_size=2, device="cpu", dtype="float32")
    res = run_stage("eval.qa", cfg, tmp_path / "run").result
    r = res["tasks"]["capitals"]
    preds = json.loads((tmp_path / "run" / "predictions_capitals.json").read_text())
    assert set(preds) == {"c0", "c1", "c2"}
    # the stock exact_match is the share of answers equal to the target: a random tiny model names no capital
    assert [preds[f"c{i}"] == stadt for i, (_, stadt) in enumerate(pairs)] == [False] * 3
    assert r["n"] == 3 and r["exact_match"] == 0.0


def test_new_mcq_task_from_a_yaml(tiny_model_dir, tmp_path):
    rows = [{"question": "Welches Organ pumpt Blut?", "choices": ["Herz", "Leber", "Niere"], "label": 0},
            {"question": "Welches Organ filtert Urin?", "choices": ["Lunge", "Niere"], "label": 1}]
    tasks = _write(tmp_path, "organs", MCQ_YAML, rows)
    cfg = McqEvalConfig(model=str(tiny_model_dir), tasks=["finemed_organs"], task_dirs=[str(tasks)],
                        batch_size=2, device="cpu", dtype="float32")
    res = run_stage("eval.mcq", cfg, tmp_path / "run").result
    r = res["tasks"]["finemed_organs"]
    # acc equals an argmax over option log-likelihoods from plain forwards of the same model
    model, tok = load_causal_lm(str(tiny_model_dir), device="cpu")
    items = [(f"Frage: {row['question']}\nAntwort:", row["choices"], row["label"]) for row in rows]
    assert r["n"] == 2 and r["acc"] == accuracy(model, tok, items, model.config.max_position_embeddings)
    assert res["summary"].startswith("finemed_organs acc")
