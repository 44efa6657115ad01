"""The KD retention report: teacher vs students on held-out bpb and QA EM/F1/ROUGE-L, and parameter reduction.

QA answers come from greedy ``model.generate`` on the evaluation's own 0-/1-shot prompts (cut at the first
newline, as lm-eval's XQuAD tasks do) and are scored by :mod:`finemed.evaluation.qa_metrics`. Retention is
student / teacher for the QA scores and teacher bpb / student bpb for bpb (lower bpb is better).
"""

from __future__ import annotations

from pathlib import Path

import torch

from finemed.artifacts import atomic_write_text


@torch.no_grad()
def greedy_answers(model, tok, prompts: list[str], max_new_tokens: int = 16, batch_size: int = 8,
                   bf16: bool = False) -> list[str]:
    """Greedy continuations of ``prompts``, cut at the first newline and stripped."""
    device = next(model.parameters()).device
    side, tok.padding_side = tok.padding_side, "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                gen = model.generate(**enc.to(device), max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=pad, eos_token_id=tok.eos_token_id)
            for row in gen[:, enc["input_ids"].shape[1]:]:
                out.append(tok.decode(row, skip_special_tokens=True).split("\n")[0].strip())
    finally:
        tok.padding_side = side
    return out


def qa_scores(models: dict, tok, examples: list, n: int, max_new_tokens: int, seed: int = 0,
              bf16: bool = False, shots: tuple[int, ...] = (0, 1), lang: str = "en", pool: list | None = None) -> dict:
    """{model: {"0shot": {exact_match, f1, rougeL}, "1shot": ...}} on the first ``n`` answered examples.

    1-shot exemplars come from ``pool`` (default: ``examples``), always from another article."""
    from finemed.evaluation.qa_metrics import score_predictions
    from finemed.evaluation.qa_prompts import build_prompt

    chosen = [e for e in examples if e.answers][:n]
    scores: dict = {}
    for name, model in models.items():
        model.eval()
        scores[name] = {}
        for shot in shots:
            prompts = [build_prompt(e, pool or examples, shot, seed) for e in chosen]
            preds = greedy_answers(model, tok, prompts, max_new_tokens, bf16=bf16)
            s = score_predictions(chosen, {e.id: p for e, p in zip(chosen, preds)}, lang)
            scores[name][f"{shot}shot"] = {k: round(v, 2) for k, v in s.items()}
    scores["questions"] = len(chosen)
    return scores


def retention(result: dict) -> dict:
    """Retention % of each student vs the teacher (bpb: teacher/student; QA: student/teacher)."""
    out: dict = {"parameter_reduction_pct": result.get("parameter_reduction_pct")}
    for who, key in (("kd", "bpb_student"), ("ce", "bpb_ce")):
        if key in result:
            out[f"{who}_bpb_retention_pct"] = round(100 * result["bpb_teacher"] / result[key], 2)
    qa = result.get("qa") or {}
    for who in ("kd", "ce"):
        for shot, teacher in (qa.get("teacher") or {}).items():
            for metric, t in teacher.items():
                s = (qa.get(who) or {}).get(shot, {}).get(metric)
                if s is not None and t > 0:
                    out[f"{who}_{shot}_{metric}_retention_pct"] = round(100 * s / t, 1)
    return out


def write_report(result: dict, path: Path) -> None:
    """A short markdown table of the run."""
    info = result["student"]
    lines = ["# Knowledge distillation", "",
             f"mode {result['mode']}, {result['steps']} steps of {result['train_tokens_per_step']} tokens; "
             f"student {info['student_parameters']:,} vs teacher {info['teacher_parameters']:,} parameters "
             f"(reduction {result['parameter_reduction_pct']}%)", "",
             "| model | held-out bpb |", "|---|---|", f"| teacher | {result['bpb_teacher']:.4f} |",
             f"| student at init | {result['bpb_student_init']:.4f} |", f"| KD student | {result['bpb_student']:.4f} |"]
    if "bpb_ce" in result:
        lines.append(f"| CE-only student | {result['bpb_ce']:.4f} |")
    qa = result.get("qa")
    if qa:
        lines += ["", f"QA on {qa['questions']} held-out questions (EM / F1 / ROUGE-L, %):", "",
                  "| model | " + " | ".join(qa["teacher"]) + " |", "|---|" + "---|" * len(qa["teacher"])]
        for name in ("teacher", "kd", "ce"):
            if name in qa:
                cells = [f"{v['exact_match']:.1f} / {v['f1']:.1f} / {v['rougeL']:.1f}" for v in qa[name].values()]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Retention: " + ", ".join(f"{k}={v}" for k, v in result["retention"].items()), ""]
    atomic_write_text(path, "\n".join(lines))
