"""``finemed eval``: thin wrappers over the evaluation stages (``-c CONFIG``, ``--set``, ``--out``, ``--force``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from finemed.core.config import FinemedError
from finemed.core.qa_metrics import score_predictions
from finemed.data.loaders import load_squad
from finemed.orchestrate.stage_cli import CONFIG, FORCE, OUT, SET, run_command

app = typer.Typer(help="Evaluate: bpb, QA, MCQ, generation, judge win-rates, failure modes.", no_args_is_help=True)


def _csv(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def _echo(res: dict, keys: tuple[str, ...]) -> None:
    typer.echo(json.dumps({k: res.get(k) for k in keys}, ensure_ascii=False))


@app.command("bpb")
def bpb(model: Optional[str] = typer.Option(None, "--model", help="HF model dir or registered name (smollm2)"),
        data: Optional[str] = typer.Option(None, "--data", help="One text set: builtin:NAME, a file (PATH#field), "
                                                                "hf:DS... (default: the config's sets)"),
        max_docs: Optional[int] = typer.Option(None, "--max-docs", help="Seeded sample of at most N docs per set"),
        config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Bits per byte and per-token loss of a causal LM on text sets → OUT/bpb.json."""
    res = run_command("eval.bpb", config, set_, out, force=force,
                      flags={"model": model, "sets": {"data": data} if data else None, "max_docs": max_docs})
    _echo(res, ("model", "bpb"))


@app.command("qa")
def qa(model: Optional[str] = typer.Option(None, "--model", help="HF model dir or registered name (smollm2)"),
       tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma list: xquad_{de,en,es}_{0,1}shot, mlqa_de_*, "
                                                                 "squad_v1_* (with --data), or any lm-eval task"),
       limit: Optional[int] = typer.Option(None, "--limit", help="First N examples per task"),
       data: Optional[str] = typer.Option(None, "--data", help="SQuAD-format file for the squad_v1 tasks"),
       config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Extractive QA (EM / F1 / ROUGE-L) through lm-eval on a model object → OUT/qa_results.json."""
    res = run_command("eval.qa", config, set_, out, force=force,
                      flags={"model": model, "tasks": _csv(tasks), "limit": limit, "data": data})
    _echo(res, ("summary", "tasks"))


@app.command("mcq")
def mcq(model: Optional[str] = typer.Option(None, "--model", help="HF model dir or registered name"),
        data: Optional[str] = typer.Option(None, "--data", help="CSV (MMLU layout) or JSON/JSONL (MedQA layout); "
                                                                "default: GerMedBench med_qa"),
        tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma list of MCQ tasks (finemed or lm-eval)"),
        limit: Optional[int] = typer.Option(None, "--limit", help="First N questions per task"),
        config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Multiple-choice accuracy (acc, character-length-normalised acc_norm) by log-likelihood."""
    res = run_command("eval.mcq", config, set_, out, force=force,
                      flags={"model": model, "data": data, "tasks": _csv(tasks), "limit": limit})
    _echo(res, ("summary", "tasks"))


@app.command("qa-score")
def qa_score(data: Path = typer.Option(..., "--data", help="SQuAD-format dataset JSON"),
             predictions: Path = typer.Option(..., "--predictions", help='JSON {"question_id": "answer text"}'),
             lang: str = typer.Option("en", "--lang", help="Answer language (en, de, es, ...)"),
             metric: Optional[str] = typer.Option(None, "--metric",
                                                  help="squad | mlqa (default: squad for en, else mlqa)")):
    """Score a predictions file like the official SQuAD v1.1 / MLQA scripts; prints one JSON line (percent)."""

    examples = load_squad(data)
    try:
        preds = json.loads(Path(predictions).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FinemedError(f"{predictions}: predictions file not found; pass a JSON {{question_id: answer}}") from None
    except json.JSONDecodeError as err:
        raise FinemedError(f"{predictions}: invalid JSON ({err.msg}); expected {{question_id: answer}}") from None
    if not isinstance(preds, dict) or not all(isinstance(v, str) for v in preds.values()):
        raise FinemedError(f"{predictions}: expected a JSON object mapping question ids to answer strings")
    scores = score_predictions(examples, preds, lang, metric)
    typer.echo(json.dumps({"exact_match": scores["exact_match"], "f1": scores["f1"]}))


@app.command("generate")
def generate(model: Optional[list[str]] = typer.Option(None, "--model",
                                                       help="Model dir/name or URL#MODEL; repeat for N models"),
             prompts: Optional[str] = typer.Option(None, "--prompts",
                                                   help="builtin:germedbench_patient_text | builtin:germedbench_med_qa"
                                                        " | builtin:germediq | a JSONL with 'prompt'"),
             limit: Optional[int] = typer.Option(None, "--limit", help="First N prompts"),
             config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Answers of N models on a prompt set → OUT/answers.jsonl rows {model, prompt_id, prompt, answer, ...}."""
    res = run_command("eval.generate", config, set_, out, force=force,
                      flags={"models": model or None, "prompts": prompts, "limit": limit})
    _echo(res, ("rows", "answers", "models"))


@app.command("pairwise")
def pairwise(answers: Optional[str] = typer.Option(None, "--answers",
                                                   help="Answers JSONL or builtin:germedbench_patient_text ..."),
             judge: Optional[str] = typer.Option(None, "--judge",
                                                 help="http://HOST:PORT/v1#MODEL | local:PATH | scores:FIELD"),
             lang: Optional[str] = typer.Option(None, "--lang", help="Judge prompt language: de | en"),
             reference: Optional[str] = typer.Option(None, "--reference", help="Reference model for LC win-rates"),
             config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Pairwise judging in both orders → win-rates, Bradley–Terry with CIs, LC win-rates, heatmap."""
    res = run_command("eval.pairwise", config, set_, out, force=force,
                      flags={"answers": answers, "judge": judge, "lang": lang, "reference": reference})
    _echo(res, ("top", "ranking", "outcomes", "judge_info"))


@app.command("failures")
def failures(answers: Optional[str] = typer.Option(None, "--answers", help="Answers JSONL or builtin:germediq ..."),
             lang: Optional[str] = typer.Option(None, "--lang", help="Expected answer language"),
             human_model: Optional[str] = typer.Option(None, "--human-model",
                                                       help="Model name of human reference answers"),
             config: Optional[Path] = CONFIG, set_: Optional[list[str]] = SET, out: Path = OUT, force: bool = FORCE):
    """Language mixing and verbosity per model → OUT/failures.json {model: {metric: value}}."""
    res = run_command("eval.failures", config, set_, out, force=force,
                      flags={"answers": answers, "lang": lang, "human_model": human_model})
    typer.echo(res.get("summary", json.dumps(res, ensure_ascii=False)) if isinstance(res, dict) else res)
