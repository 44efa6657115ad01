"""``finemed eval``: bits per byte (foundation) and the evaluation stage's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Evaluate: bpb, QA, MCQ, judge win-rates, failure modes.", no_args_is_help=True)


@app.command("bpb")
def bpb(model: str = typer.Option(..., "--model", help="HF model dir or registered name (smollm2)"),
        data: str = typer.Option(..., "--data", help="jsonl (text field), txt, parquet, or builtin:NAME"),
        out: Path = typer.Option(..., "--out", help="Output dir; writes bpb.json"),
        field: str = typer.Option("text", "--field", help="Text field of jsonl/parquet"),
        max_length: int = typer.Option(1024, "--max-length", help="Window length in tokens"),
        stride: Optional[int] = typer.Option(None, "--stride", help="Window stride (default max_length/2)"),
        batch_size: int = typer.Option(4, "--batch-size"),
        max_docs: Optional[int] = typer.Option(None, "--max-docs", help="Seeded sample of at most N docs"),
        no_autocast: bool = typer.Option(False, "--no-autocast", help="fp32 instead of bf16 autocast"),
        allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow pickle (.bin) weights")):
    """Bits per byte and per-token loss of a causal LM on a text set."""
    from finemed.artifacts import atomic_write_json
    from finemed.evaluation.perplexity import compute_bpb, load_texts, subsample
    from finemed.models.loading import load_causal_lm

    texts = subsample(load_texts(data, field=field), max_docs, None)
    m, tok = load_causal_lm(model, allow_pickle=allow_pickle)
    res = compute_bpb(m, tok, texts, max_length=max_length, stride=stride, batch_size=batch_size,
                      autocast=not no_autocast)
    payload = {"bpb": res.bpb, "loss_per_token": res.loss_per_token, "tokens": res.tokens, "bytes": res.bytes}
    atomic_write_json(Path(out) / "bpb.json", payload)
    typer.echo(json.dumps(payload))


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command("qa")
def qa(model: str = typer.Option(..., "--model", help="HF model dir or registered name (smollm2)"),
       tasks: str = typer.Option("xquad_de_0shot,xquad_de_1shot", "--tasks",
                                 help="Comma list: xquad_{de,en,es}_{0,1}shot, mlqa_de_*, squad_v1_* (with --data)"),
       out: Path = typer.Option(..., "--out", help="Output dir: qa_results.json, predictions_<task>.json"),
       limit: Optional[int] = typer.Option(100, "--limit", help="First N questions per task (0: all)"),
       data: Optional[str] = typer.Option(None, "--data", help="SQuAD-format file for the squad_v1 tasks"),
       batch_size: int = typer.Option(8, "--batch-size"),
       dtype: str = typer.Option("bfloat16", "--dtype", help="bfloat16 | float32"),
       seed: int = typer.Option(0, "--seed", help="Seed of the 1-shot exemplar choice")):
    """Extractive QA (EM / F1 / ROUGE-L) through lm-eval on a model object."""
    from finemed.evaluation.qa import QaEvalConfig, run

    cfg = QaEvalConfig(model=model, tasks=_csv(tasks), limit=limit or None, data=data, batch_size=batch_size,
                       dtype=dtype, seed=seed)
    res = run(cfg, out)
    typer.echo(json.dumps(res["tasks"]))


@app.command("mcq")
def mcq(model: str = typer.Option(..., "--model", help="HF model dir or registered name"),
        out: Path = typer.Option(..., "--out", help="Output dir"),
        data: Optional[str] = typer.Option(None, "--data", help="CSV (MMLU layout) or JSON/JSONL (MedQA layout); "
                                                                "default: GerMedBench med_qa"),
        limit: Optional[int] = typer.Option(None, "--limit"),
        batch_size: int = typer.Option(8, "--batch-size"),
        dtype: str = typer.Option("bfloat16", "--dtype")):
    """Multiple-choice accuracy (acc, byte-length-normalised acc_norm) by log-likelihood."""
    from finemed.evaluation.qa import QaEvalConfig, run

    cfg = QaEvalConfig(model=model, tasks=["mcq_file" if data else "germedbench_medqa"], limit=limit, data=data,
                       batch_size=batch_size, dtype=dtype)
    res = run(cfg, out)
    typer.echo(json.dumps(res["tasks"]))


@app.command("qa-score")
def qa_score(data: Path = typer.Option(..., "--data", help="SQuAD-format dataset JSON"),
             predictions: Path = typer.Option(..., "--predictions", help='JSON {"question_id": "answer text"}'),
             lang: str = typer.Option("en", "--lang", help="Answer language (en, de, es, ...)"),
             metric: Optional[str] = typer.Option(None, "--metric", help="squad | mlqa (default: squad for en, else mlqa)")):
    """Score a predictions file like the official SQuAD v1.1 / MLQA scripts; prints one JSON line (percent)."""
    from finemed.config import FinemedError
    from finemed.data.loaders import load_squad
    from finemed.evaluation.qa_metrics import score_predictions

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
def generate(model: list[str] = typer.Option(..., "--model", help="Model dir/name or URL#MODEL; repeat for N models"),
             prompts: str = typer.Option(..., "--prompts", help="builtin:germedbench_patient_text | builtin:germedbench_med_qa "
                                                               "| builtin:germediq | a JSONL with 'prompt'"),
             out: Path = typer.Option(..., "--out", help="Answers JSONL to write"),
             limit: Optional[int] = typer.Option(None, "--limit", help="First N prompts"),
             max_tokens: int = typer.Option(256, "--max-tokens"),
             temperature: float = typer.Option(0.0, "--temperature"),
             seed: int = typer.Option(0, "--seed"),
             batch_size: int = typer.Option(8, "--batch-size"),
             concurrency: int = typer.Option(8, "--concurrency"),
             system: Optional[str] = typer.Option(None, "--system", help="Optional system message"),
             cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite response cache")):
    """Answers of N models on a prompt set → JSONL rows {model, prompt_id, prompt, answer, reference if any}."""
    from finemed.evaluation.generate import generate_answers

    info = generate_answers(model, prompts, out, limit=limit, max_tokens=max_tokens, temperature=temperature,
                            seed=seed, batch_size=batch_size, concurrency=concurrency, system=system, cache=cache)
    typer.echo(json.dumps(info))


@app.command("pairwise")
def pairwise(answers: str = typer.Option(..., "--answers", help="Answers JSONL or builtin:germedbench_patient_text ..."),
             judge: str = typer.Option(..., "--judge", help="http://HOST:PORT/v1#MODEL | local:PATH | scores:FIELD"),
             out: Path = typer.Option(..., "--out", help="Output dir: winrates.json, judgments.jsonl, heatmap PNG"),
             lang: str = typer.Option("de", "--lang", help="Judge prompt language: de | en"),
             pairs: str = typer.Option("all", "--pairs", help="all | vs:MODEL"),
             reference: Optional[str] = typer.Option(None, "--reference", help="Reference model for LC win-rates"),
             fold: Optional[list[str]] = typer.Option(None, "--fold", help="BEFORE,AFTER,REFERENCE win-rate fold-change"),
             concurrency: int = typer.Option(8, "--concurrency"),
             max_tokens: int = typer.Option(256, "--max-tokens"),
             timeout_s: float = typer.Option(60.0, "--timeout"),
             max_prompts: Optional[int] = typer.Option(None, "--max-prompts", help="Judge only the first N prompts"),
             bootstrap: int = typer.Option(200, "--bootstrap"),
             cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite judge cache (default OUT/judge_cache.sqlite)")):
    """Pairwise judging in both orders → win-rates, Bradley–Terry with CIs, LC win-rates, heatmap."""
    from finemed.config import FinemedError
    from finemed.evaluation.winrate import FoldSpec, WinrateStageConfig, run

    folds = []
    for f in fold or []:
        parts = _csv(f)
        if len(parts) != 3:
            raise FinemedError(f"--fold {f!r}: expected BEFORE,AFTER,REFERENCE model names")
        folds.append(FoldSpec(before=parts[0], after=parts[1], reference=parts[2]))
    cfg = WinrateStageConfig(answers=answers, judge=judge, lang=lang, pairs=pairs, reference=reference, fold=folds,
                             concurrency=concurrency, max_tokens=max_tokens, timeout_s=timeout_s,
                             max_prompts=max_prompts, bootstrap=bootstrap, cache=str(cache) if cache else None)
    res = run(cfg, out)
    typer.echo(json.dumps({"top": res["top"], "ranking": res["ranking"], "outcomes": res["outcomes"],
                           "judge_info": res["judge_info"]}))


@app.command("failures")
def failures(answers: str = typer.Option(..., "--answers", help="Answers JSONL or builtin:germediq ..."),
             out: Path = typer.Option(..., "--out", help="Output dir: failures.json, failures_worst.json"),
             lang: str = typer.Option("de", "--lang", help="Expected answer language"),
             human_model: str = typer.Option("human", "--human-model", help="Model name of human reference answers")):
    """Language mixing and verbosity per model → OUT/failures.json {model: {metric: value}}."""
    from finemed.evaluation.failures import FailuresConfig, run

    res = run(FailuresConfig(answers=answers, lang=lang, human_model=human_model), out)
    typer.echo(res["summary"])
