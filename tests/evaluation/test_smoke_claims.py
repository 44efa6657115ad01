"""Smoke variant of the slow SmolLM2 claim "``eval qa``'s lm-eval EM/F1 equal the official scripts' scoring".

A tiny model is taught (a few dozen full-batch steps) to answer a small SQuAD-format file's questions in the
eval's own 0-shot prompt: exactly, with an article in front (EM after SQuAD normalisation), with extra words
(partial F1), or wrongly. ``eval.qa`` (lm-eval, task ``squad_v1_0shot`` on that file) then scores its greedy
answers. The reference is independent of finemed: the tests' own copy of the SQuAD v1.1 script
(``official_scripts.py``) rescores the written predictions file, and the taught answers' scores are worked out
by hand (EM 50, F1 67.8): lm-eval's numbers equal both.
"""

from __future__ import annotations

import json

import official_scripts as official
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

    from finemed.core.qa_prompts import TARGET_DELIMITER, zero_shot_prompt
    from finemed.core.runtime import resolve
    from finemed.data.loaders import load_squad
    from finemed.models.loading import load_causal_lm, save_model

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
    from finemed.core.qa_eval import QaEvalConfig
    from finemed.core.stages import run_stage
    from finemed.models.tiny import save_tiny

    data = _squad_file(tmp_path / "qa.json")
    model_dir = save_tiny(tmp_path / "model", num_layers=2, hidden_size=64)
    assert _teach(model_dir, data) < 0.5  # it learned the answers
    cfg = QaEvalConfig(model=str(model_dir), tasks=["squad_v1_0shot"], data=str(data), limit=len(QA), batch_size=3,
                       device="cpu", dtype="float32")
    r = run_stage("eval.qa", cfg, tmp_path / "eval").result["tasks"]["squad_v1_0shot"]
    preds = json.loads((tmp_path / "eval" / "predictions_squad_v1_0shot.json").read_text(encoding="utf-8"))
    assert r["n"] == len(QA) == len(preds)
    golds = {f"q{i}": [gold] for i, (_, _, gold, _) in enumerate(QA)}
    ref = official.evaluate(golds, preds, "en", "squad")
    assert {k: r[k] for k in ref} == pytest.approx(ref), (r, preds)
    # the model says what it was taught, and that mix scores, by hand (SQuAD v1.1 normalisation):
    # q0 "berlin" EM 1 F1 1; q1 "the at eight" -> "at eight" EM 1 F1 1; q2 "metformin every single day" vs
    # "metformin": P 1/4 R 1 -> F1 0.4; q3 "two doctors" vs "twelve" 0; q4 EM 1 F1 1; q5 "blood pressure
    # readings" vs "high blood pressure": 2 shared, P 2/3 R 2/3 -> 2/3 (ROUGE-L: same LCS lengths, same values)
    assert preds == {f"q{i}": said for i, (*_, said) in enumerate(QA)}
    by_hand = 100 * (1 + 1 + 0.4 + 0 + 1 + 2 / 3) / 6  # 67.78
    assert r["exact_match"] == 50.0
    assert r["f1"] == pytest.approx(by_hand) and r["rougeL"] == pytest.approx(by_hand)
