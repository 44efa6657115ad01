"""Smoke variant of the slow SmolLM2 claim "``eval qa``'s lm-eval EM/F1 equal the official scripts' scoring".

A tiny model is taught (a few dozen full-batch steps) to answer a small SQuAD-format file's questions in the
eval's own 0-shot prompt: exactly, with an article in front (EM after SQuAD normalisation), with extra words
(partial F1), or wrongly. ``eval.qa`` (lm-eval, task ``squad_v1_0shot`` on that file) then scores its greedy
answers, and :func:`finemed.evaluation.qa_metrics.score_predictions` (the official-script logic) rescores the
written predictions file: the numbers agree, and they are neither 0 nor 100, so the check has teeth.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.smoke

# (context, question, gold answer, what the model is taught to say)
QA = [
    ("Anna works as a nurse in Berlin.", "Where does Anna work?", "Berlin", "Berlin"),
    ("The clinic opens at eight in the morning.", "When does the clinic open?", "at eight", "The at eight"),
    ("Paul takes Metformin for his diabetes.", "What does Paul take?", "Metformin",
     "Metformin every single day"),
    ("The ward has twelve beds and two doctors.", "How many beds are there?", "twelve", "two doctors"),
    ("Maria was born in Hamburg in 1980.", "Where was Maria born?", "Hamburg", "Hamburg"),
    ("The test showed high blood pressure.", "What did the test show?", "high blood pressure",
     "blood pressure readings"),
]


def _squad_file(path):
    data = {"version": "1.1", "data": []}
    for i, (ctx, q, gold, _) in enumerate(QA):
        data["data"].append({"title": f"article {i % 2}", "paragraphs": [{"context": ctx, "qas": [
            {"id": f"q{i}", "question": q, "answers": [{"text": gold, "answer_start": ctx.find(gold)}]}]}]})
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _teach(model_dir, data_file, steps: int = 60):
    """Full-batch AdamW on ``prompt + " " + taught answer + "\\n"`` (loss on the answer), saved in place."""
    import torch

    from finemed.data.loaders import load_squad
    from finemed.evaluation.qa_prompts import TARGET_DELIMITER, zero_shot_prompt
    from finemed.models.loading import load_causal_lm, save_model
    from finemed.runtime import resolve

    model, tok = load_causal_lm(str(model_dir), runtime=resolve("cpu", "float32", train=True))
    taught = {f"q{i}": said for i, (*_, said) in enumerate(QA)}
    rows = []
    for ex in load_squad(data_file):
        prompt = tok(zero_shot_prompt(ex), add_special_tokens=False)["input_ids"]
        answer = tok(TARGET_DELIMITER + taught[ex.id] + "\n", add_special_tokens=False)["input_ids"]
        rows.append((prompt + answer, [-100] * len(prompt) + answer))
    width = max(len(r) for r, _ in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lab) in enumerate(rows):
        ids[i, :len(r)], labels[i, :len(r)], att[i, :len(r)] = torch.tensor(r), torch.tensor(lab), 1
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    save_model(model.eval(), tok, model_dir)
    return loss.item()


def test_lm_eval_em_f1_equal_official_scoring_of_the_predictions_file(tmp_path):
    from finemed.data.loaders import load_squad
    from finemed.evaluation.qa import QaEvalConfig
    from finemed.evaluation.qa_metrics import score_predictions
    from finemed.models.tiny import save_tiny
    from finemed.stages import run_stage

    data = _squad_file(tmp_path / "qa.json")
    model_dir = save_tiny(tmp_path / "model", num_layers=2, hidden_size=64)
    assert _teach(model_dir, data) < 0.5  # it learned the answers
    cfg = QaEvalConfig(model=str(model_dir), tasks=["squad_v1_0shot"], data=str(data), limit=len(QA), batch_size=3,
                       device="cpu", dtype="float32")
    r = run_stage("eval.qa", cfg, tmp_path / "eval").result["tasks"]["squad_v1_0shot"]
    preds = json.loads((tmp_path / "eval" / "predictions_squad_v1_0shot.json").read_text(encoding="utf-8"))
    assert r["n"] == len(QA) == len(preds)
    official = score_predictions(load_squad(data), preds, "en")
    assert official["exact_match"] == pytest.approx(r["exact_match"])
    assert official["f1"] == pytest.approx(r["f1"])
    assert official["rougeL"] == pytest.approx(r["rougeL"])
    # the model answers: some right, not all (the taught mix scores EM 50, F1 67.8 when recalled exactly)
    assert 0 < r["exact_match"] < 100 and r["exact_match"] < r["f1"] < 100, (r, preds)
