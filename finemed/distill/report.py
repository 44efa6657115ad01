"""The KD retention report: teacher vs students on held-out bpb and QA EM/F1/ROUGE-L, and parameter reduction.

QA numbers come from the same lm-eval task as stage ``eval.qa`` (``finemed_squad_v1_{0,1}shot``, the
"any SQuAD-format file" task, through :mod:`finemed.core.lmeval`), so KD scores compare with
``eval.qa`` runs: same prompts, greedy generation cut at the first newline, same metrics. The task reads a
SQuAD file written here that lists the held-out questions first, then the training ones as the 1-shot
exemplar pool; only the held-out ones are scored. Retention is student / teacher for the QA scores and
teacher bpb / student bpb for bpb (lower bpb is better).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from finemed.core.artifacts import atomic_write_text
from finemed.core.lmeval import evaluate, make_lm
from finemed.core.runtime import Runtime

QA_METRICS = ("exact_match", "f1", "rougeL")
QA_TASK = "finemed_squad_v1_{shot}shot"


def write_squad(examples: list, path: Path) -> Path:
    """``examples`` as a SQuAD-format file, one article entry per example, in order."""
    data = {"data": [{"title": e.title, "paragraphs": [{"context": e.context, "qas": [
        {"id": e.id, "question": e.question,
         "answers": [{"text": a, "answer_start": s} for a, s in
                     zip(e.answers, e.answer_starts or [-1] * len(e.answers))]}]}]} for e in examples]}
    atomic_write_text(path, json.dumps(data, ensure_ascii=False))
    return path


def qa_scores(models: dict, tok, examples: list, n: int, workdir: Path, *, pool: list | None = None,
              shots: tuple[int, ...] = (0, 1), lang: str = "en", batch_size: int = 8,
              runtime: Runtime | None = None) -> tuple[dict, int]:
    """({model: {"0shot": {exact_match, f1, rougeL}, "1shot": ...}}, questions) on the first ``n`` answered
    held-out ``examples``; 1-shot exemplars come from ``pool`` (default: ``examples``), always another article."""
    chosen = [e for e in examples if e.answers][:n]
    chosen_ids = {e.id for e in chosen}
    rest = [e for e in (pool or examples) if e.id not in chosen_ids]
    path = write_squad(chosen + rest, Path(workdir) / "qa_heldout.json")
    tasks = [QA_TASK.format(shot=s) for s in shots]
    meta = {"path": str(path), "lang": lang, "n": len(chosen)}
    scores: dict = {}
    for name, model in models.items():
        model.eval()
        lm = make_lm(model, tok, batch_size=batch_size)
        with runtime.autocast() if runtime is not None else contextlib.nullcontext():
            res = evaluate(lm, tasks, limit=len(chosen), metadata=meta)["results"]
        scores[name] = {f"{s}shot": {m: round(float(res[t][m]), 2) for m in QA_METRICS}
                        for s, t in zip(shots, tasks)}
    return scores, len(chosen)


def retention(bpb: dict[str, float | None], qa: dict | None, reduction_pct: float) -> dict[str, float]:
    """Retention % of each student vs the teacher (bpb: teacher/student; QA: student/teacher).

    ``bpb`` maps ``teacher``, ``kd`` and ``ce`` to held-out bpb (``None``: not run)."""
    out: dict[str, float] = {"parameter_reduction_pct": reduction_pct}
    for who in ("kd", "ce"):
        if bpb.get(who) is not None:
            out[f"{who}_bpb_retention_pct"] = round(100 * bpb["teacher"] / bpb[who], 2)
    qa = qa or {}
    for who in ("kd", "ce"):
        for shot, teacher in (qa.get("teacher") or {}).items():
            for metric, t in teacher.items():
                s = (qa.get(who) or {}).get(shot, {}).get(metric)
                if s is not None and t > 0:
                    out[f"{who}_{shot}_{metric}_retention_pct"] = round(100 * s / t, 1)
    return out


def write_report(result, path: Path) -> None:
    """A short markdown table of a :class:`finemed.distill.train.DistillResult`."""
    info = result.student
    lines = ["# Knowledge distillation", "",
             f"mode {result.mode}, {result.steps} steps of {result.train_tokens_per_step} tokens; "
             f"student {info.student_parameters:,} vs teacher {info.teacher_parameters:,} parameters "
             f"(reduction {result.parameter_reduction_pct}%)", "",
             "| model | held-out bpb |", "|---|---|", f"| teacher | {result.bpb_teacher:.4f} |",
             f"| student at init | {result.bpb_student_init:.4f} |", f"| KD student | {result.bpb_student:.4f} |"]
    if result.bpb_ce is not None:
        lines.append(f"| CE-only student | {result.bpb_ce:.4f} |")
    for name, tr in (("KD", result.kd_train), ("CE", result.ce_train)):
        if tr is not None and tr.stopped_by == "plateau":
            lines += ["", f"{name} training stopped by the plateau rule at step {tr.steps}; held-out bpb by step: "
                          + ", ".join(f"{s}: {v:.4f}" for s, v in tr.plateau)]
    qa = result.qa
    if qa:
        lines += ["", f"QA on {result.qa_questions} held-out questions (EM / F1 / ROUGE-L, %; lm-eval "
                      f"{QA_TASK.format(shot='N')}):", "",
                  "| model | " + " | ".join(qa["teacher"]) + " |", "|---|" + "---|" * len(qa["teacher"])]
        for name in ("teacher", "kd", "ce"):
            if name in qa:
                cells = [f"{v['exact_match']:.1f} / {v['f1']:.1f} / {v['rougeL']:.1f}" for v in qa[name].values()]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Retention: " + ", ".join(f"{k}={v}" for k, v in result.retention.items()), ""]
    atomic_write_text(path, "\n".join(lines))
