"""Stage ``papers.kd_qa``: the KD-for-QA paper's claims, checked on what ``kd-qa-mini`` trained and scored.

Reads the earlier stages' outputs (nothing is retrained or regenerated): the article split (``data.qa_split``:
``test.json`` and each test question's language), the ``eval.qa`` run dirs of the untuned model, the teacher and
every student (``predictions_<task>.json``), and the ``train.distill`` run dirs (parameter counts). Each answer
is rescored per question with :func:`finemed.core.qa_metrics.score_one` in its own language's metric
(SQuAD normalisation for English, MLQA's for German), because ``eval.qa`` scores a whole ``squad_v1`` file with
one language and keeps only means; the paired CIs need the per-question values.

Claims are pre-registered in the recipe (``claims:``, :mod:`finemed.papers.claims`) under the ids of
:data:`CLAIMS`; a template claim is judged once per model it concerns, Holm-corrected within its family:

- ``teacher_beats_untuned`` (the precondition): teacher − untuned 1-shot EM, paired bootstrap;
- ``students_retain``: per KD student, student − ``min_retention`` × teacher 1-shot F1 per question; not testable
  while the teacher's F1 is at its floor;
- ``one_shot_helps``: per model (teacher and KD students), 1-shot − 0-shot F1;
- ``kd_beats_ce`` (the comparison the paper's method rests on): per student size, KD − CE 1-shot F1; not testable
  while neither student scores above the floor (a cut that training has not healed gives 0 and 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from finemed.core.artifacts import atomic_write_json, atomic_write_text, read_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import cpu
from finemed.core.plateau import PlateauRule, window_change
from finemed.core.qa_metrics import score_one
from finemed.core.stages import StageResult, planner, stage
from finemed.data.loaders import load_squad
from finemed.papers import claims as K
from finemed.papers.measures import fmt_ci, paired_bootstrap, paired_diff, publish, require, results_doc_field

log = get_logger(__name__)
CLAIMS = ("teacher_beats_untuned", "students_retain", "one_shot_helps", "kd_beats_ce")
METRICS = ("exact_match", "f1", "rougeL")
SHORT = {"exact_match": "EM", "f1": "F1", "rougeL": "ROUGE-L"}


class StudentRuns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kd: str = Field(description="the eval.qa run dir of the KD student")
    ce: str = Field(description="the eval.qa run dir of the CE-only student (same data, steps and order)")
    distill: str = Field(description="the train.distill run dir of the KD student (parameter counts, steps)")
    ce_distill: str | None = Field(None, description="the train.distill run dir of the CE student (its steps)")


class KdQaConfig(StageConfig):
    split: str = Field(description="the data.qa_split run dir (test.json, split.json)")
    base: str = Field(description="the eval.qa run dir of the untuned model")
    teacher: str = Field(description="the eval.qa run dir of the fine-tuned teacher")
    students: dict[str, StudentRuns]
    tasks: dict[int, str] = {0: "squad_v1_0shot", 1: "squad_v1_1shot"}
    min_retention: float = Field(0.5, gt=0.0, le=1.0, description="the share of teacher F1 that counts as 'large'")
    bootstrap: int = Field(2000, ge=0)
    seed: int = 0
    results_doc: str | None = results_doc_field()
    claims: dict[str, K.ClaimSpec] = Field(description="the pre-registered claims, ids " + ", ".join(CLAIMS))

    @field_validator("claims")
    @classmethod
    def _registered(cls, v: dict[str, K.ClaimSpec]) -> dict[str, K.ClaimSpec]:
        K.require_ids(v, CLAIMS, "papers.kd_qa")
        return v


class KdQaResult(StageResult):
    key_metric: ClassVar[str] = "summary"
    summary: str
    findings: str
    questions: int
    scores: dict[str, dict[str, dict[str, float]]]  # {model: {"0shot": {metric: %}}}
    retention: dict[str, dict[str, dict[str, float | None]]]  # {model: {"1shot": {metric: %}}}
    parameter_reduction_pct: dict[str, float]
    kd_minus_ce: dict[str, dict[str, list[float]]]  # {student: {"1shot.f1": [mean, lo, hi]}}
    claims: dict[str, str]
    claims_hash: str
    steps: dict[str, str] = {}  # {student: "N" or "N (plateau)"}: its training steps, and whether the rule ended them


def per_question(eval_dir: Path, task: str, gold: dict[str, Any], lang: dict[str, str]) -> dict[str, list[float]]:
    """{metric: [score per test question, in ``gold`` order]} from ``predictions_<task>.json`` (0-1 scale)."""
    preds = read_json(require(Path(eval_dir) / f"predictions_{task}.json", f"eval.qa predictions of {task}"))
    missing = [q for q in gold if q not in preds]
    if missing:
        raise FinemedError(f"{eval_dir}: predictions_{task}.json lacks {len(missing)} test question(s) (e.g. "
                           f"{missing[0]}); run eval.qa with limit: null on the split's test.json")
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for qid, ex in gold.items():
        s = score_one(preds[qid], ex.answers, lang.get(qid, "en"))
        for m in METRICS:
            out[m].append(s[m])
    return out


def _shots(model: str, eval_dir: Path, tasks: dict[int, str]) -> list[int]:
    """The shots scored for ``model``: every task, except that the untuned model may have run the 1-shot task
    alone (its one claim, ``teacher_beats_untuned``, is on 1-shot EM; its 0-shot run would be 4 minutes of CPU
    that no verdict reads)."""
    if model == "untuned" and not (eval_dir / f"predictions_{tasks[0]}.json").is_file():
        return [1]
    return list(tasks)


def _mean(xs: list[float]) -> float:
    return round(100 * sum(xs) / len(xs), 2) if xs else float("nan")


def _ci(a: list[float], b: list[float], n: int, seed: int) -> list[float]:
    """b − a in points (x100) with its paired 95% bootstrap CI."""
    return [round(100 * v, 2) for v in paired_bootstrap(a, b, n, seed)]


def _ev(a: list[float], b: list[float], cfg: "KdQaConfig", claim: str, what: str, *,
        floor_lo: float | None = None) -> K.Evidence:
    """(b − a) in points with its bootstrap CI and p; ``floor_lo``: the best CI lower bound (points) of the scores
    involved, checked against the claim's floor."""
    spec = cfg.claims[claim]
    d = paired_diff(a, b, cfg.bootstrap, cfg.seed, spec.alpha)
    pts = {k: None if d[k] is None else round(100 * d[k], 2) for k in ("estimate", "lo", "hi")}
    testable, why = K.at_floor(floor_lo, spec.floor) if spec.floor is not None else (True, "")
    return K.Evidence(**pts, p=d["p"], testable=testable, why_not=why,
                      detail=f"{what} {fmt_ci((pts['estimate'], pts['lo'], pts['hi']), 1)} points (n = {d['n']})")


def _best_lo(*series: list[float], n: int, seed: int) -> float:
    """The highest 95% CI lower bound of the mean (in points) among the score series."""
    return max(100 * paired_bootstrap([0.0] * len(s), s, n, seed)[1] for s in series)


def judge_claims(cfg: "KdQaConfig", per_q: dict) -> tuple[dict[str, K.Verdict], dict[str, K.ClaimSpec]]:
    """Expand the template claims per model, attach the evidence and judge (Holm within each template)."""
    n, seed, one = cfg.bootstrap, cfg.seed, 1
    specs: dict[str, K.ClaimSpec] = {}
    ev: dict[str, K.Evidence] = {}

    def add(cid: str, template: str, evidence: K.Evidence) -> None:
        spec = cfg.claims[template]
        specs[cid] = spec.model_copy(update={"family": spec.family or template}) if template != cid else spec
        ev[cid] = evidence

    teacher_f1 = per_q["teacher"][one]["f1"]
    add("teacher_beats_untuned", "teacher_beats_untuned",
        _ev(per_q["untuned"][one]["exact_match"], per_q["teacher"][one]["exact_match"], cfg, "teacher_beats_untuned",
            "1-shot EM teacher − untuned"))
    r = cfg.min_retention
    for s in cfg.students:
        kd = per_q[f"{s}_kd"][one]["f1"]
        add(f"students_retain.{s}", "students_retain",
            _ev([r * x for x in teacher_f1], kd, cfg, "students_retain",
                f"1-shot F1 {s}_kd − {r:g} × teacher", floor_lo=_best_lo(teacher_f1, n=n, seed=seed)))
    for m in ["teacher", *(f"{s}_kd" for s in cfg.students)]:
        add(f"one_shot_helps.{m}", "one_shot_helps",
            _ev(per_q[m][0]["f1"], per_q[m][one]["f1"], cfg, "one_shot_helps", f"F1 1-shot − 0-shot of {m}",
                floor_lo=_best_lo(per_q[m][0]["f1"], per_q[m][one]["f1"], n=n, seed=seed)))
    for s in cfg.students:
        kd, ce = per_q[f"{s}_kd"][one]["f1"], per_q[f"{s}_ce"][one]["f1"]
        add(f"kd_beats_ce.{s}", "kd_beats_ce",
            _ev(ce, kd, cfg, "kd_beats_ce", f"1-shot F1 KD − CE ({s})", floor_lo=_best_lo(kd, ce, n=n, seed=seed)))
    return K.judge_all(specs, ev), specs


def _rule(distill_dir: Path) -> PlateauRule | None:
    """The plateau rule a train.distill run was given (its manifest's config)."""
    manifest = Path(distill_dir) / "manifest.json"
    rule = read_json(manifest).get("config", {}).get("plateau") if manifest.is_file() else None
    return PlateauRule(**rule) if rule else None


def end_change(history: list[tuple[int, float]], steps: int, final: float | None,
               rule: PlateauRule | None) -> float | None:
    """The relative held-out bpb improvement over the rule's last window at the end of training
    (:func:`finemed.core.plateau.window_change` with ``final`` at ``steps`` as the last point), so a student that
    hit the ceiling shows how far it was from the plateau. None without a rule, a final score or a scored step
    early enough."""
    if rule is None or final is None:
        return None
    return window_change([(s, v) for s, v in history if s < steps] + [(steps, final)], rule)


def _curve_lines(curves: dict[str, dict]) -> list[str]:
    """How each student's training ended, with the held-out bpb the plateau rule scored."""
    if not curves:
        return []
    rules = sorted({c["rule"] for c in curves.values()})
    lines = ["", "## Training to the plateau", "", "Rule, stated in the recipe before the run: " + "; ".join(rules)
             + ". A student that reached the step ceiling still improving is marked so.", "",
             "| student | steps | ended by | held-out bpb by step | change over the last window at the end |",
             "|---|---|---|---|---|"]
    for name, c in curves.items():
        ended = "the plateau rule" if c["stopped_by"] == "plateau" else "the step ceiling (not plateaued)"
        points = list(c["history"]) + ([(c["steps"], c["final_bpb"])] if c.get("final_bpb") is not None
                                       and c["stopped_by"] != "plateau" else [])
        change = c.get("end_change")
        shown = "" if change is None else f"{-100 * change:+.1f}% over the last {c['window']:.0%} of steps"
        lines.append(f"| {name} | {c['steps']} | {ended} | "
                     + ", ".join(f"{int(st)}: {v:.3f}" for st, v in points) + f" | {shown} |")
    return lines


def findings_md(res: dict[str, Any], per_lang: dict[str, dict[str, float]], shot_ci: dict[str, list[float]],
                claim_lines: list[str], langs: dict[str, int]) -> str:
    """The findings tables, as written to ``findings.md`` (and ``docs/results/kd-qa.md``)."""
    lines = ["# KD for QA in miniature (kd-qa-mini)", "",
             f"Test set: {res['questions']} questions from held-out articles ("
             + ", ".join(f"{n} {lang}" for lang, n in langs.items())
             + "); no test article was trained on. Scores in % (per-question EM/F1/ROUGE-L in each question's "
               "language, mean); CIs are paired bootstrap 95% over questions. Retention = student / teacher, "
               "parameter reduction = 1 − student / teacher parameters.", "",
             "## Scores and retention", "",
             "| model | params | reduction % | steps | shots | EM | F1 | ROUGE-L | retention EM % | retention F1 % "
             "| retention ROUGE-L % |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, by_shot in res["scores"].items():
        params = res["params"].get(model)
        red = res["parameter_reduction_pct"].get(model)
        for shot, sc in by_shot.items():
            ret = res["retention"].get(model, {}).get(shot, {})
            cells = [f"{sc[m]:.1f}" for m in METRICS]
            rcells = ["" if ret.get(m) is None else f"{ret[m]:.0f}" for m in METRICS]
            lines.append(f"| {model} | {'' if params is None else f'{params / 1e6:.1f}M'} | "
                         f"{'' if red is None else f'{red:.1f}'} | {res.get('steps', {}).get(model, '')} | {shot} | "
                         + " | ".join(cells + rcells) + " |")
    lines += _curve_lines(res.get("curves", {}))
    lines += ["", "## By language (1-shot F1)", "", "| model | " + " | ".join(per_lang[next(iter(per_lang))])
              + " |", "|---|" + "---|" * len(per_lang[next(iter(per_lang))])]
    for model, by in per_lang.items():
        lines.append(f"| {model} | " + " | ".join(f"{v:.1f}" for v in by.values()) + " |")
    lines += ["", "## KD − CE (same data and order; steps as above)", "", "| student | shots | ΔEM | ΔF1 | ΔROUGE-L |",
              "|---|---|---|---|---|"]
    for student, d in res["kd_minus_ce"].items():
        for shot in ("0shot", "1shot"):
            lines.append(f"| {student} | {shot} | "
                         + " | ".join(fmt_ci(d[f"{shot}.{m}"], 1) for m in METRICS) + " |")
    lines += ["", "## One-shot − zero-shot F1", "", "| model | ΔF1 [95% CI] |", "|---|---|"]
    lines += [f"| {m} | {fmt_ci(ci, 1)} |" for m, ci in shot_ci.items()]
    lines += ["", "## Claims (pre-registered in the recipe; a template claim per model, Holm within it)", ""]
    lines += claim_lines
    return "\n".join(lines) + "\n"


@stage("papers.kd_qa")
def run(cfg: KdQaConfig, run_dir: Path) -> KdQaResult:
    """Rescore every model per question, compute retention, reduction and paired CIs; write ``findings.md``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    split = Path(cfg.split)
    gold = {e.id: e for e in load_squad(require(split / "test.json", "the split's test.json")) if e.answers}
    lang = read_json(require(split / "split.json", "the split's split.json"))["lang"]
    evals = {"untuned": cfg.base, "teacher": cfg.teacher}
    for s, r in cfg.students.items():
        evals[f"{s}_kd"], evals[f"{s}_ce"] = r.kd, r.ce
    per_q = {m: {shot: per_question(Path(d), cfg.tasks[shot], gold, lang) for shot in _shots(m, Path(d), cfg.tasks)}
             for m, d in evals.items()}
    scores = {m: {f"{shot}shot": {k: _mean(v) for k, v in by[shot].items()} for shot in by}
              for m, by in per_q.items()}
    teacher = scores["teacher"]
    retention = {m: {sh: {k: (round(100 * v / teacher[sh][k], 1) if teacher[sh][k] else None)
                          for k, v in sc.items()} for sh, sc in by.items()}
                 for m, by in scores.items() if m not in ("untuned", "teacher")}
    params: dict[str, float] = {}
    reduction: dict[str, float] = {}
    steps: dict[str, str] = {}  # training steps per student, "(plateau)" where the stated rule ended training
    curves: dict[str, dict] = {}  # per student: how training ended and the held-out bpb the plateau rule scored
    for s, r in cfg.students.items():
        info = read_json(require(Path(r.distill) / "metrics.json", f"the train.distill metrics of {s}"))
        params["teacher"] = params["untuned"] = info["student"]["teacher_parameters"]
        for role in ("kd", "ce"):
            params[f"{s}_{role}"] = info["student"]["student_parameters"]
            reduction[f"{s}_{role}"] = info["parameter_reduction_pct"]
        for role, d in (("kd", r.distill), ("ce", r.ce_distill)):
            if d is not None:
                m = info if role == "kd" else read_json(require(Path(d) / "metrics.json",
                                                                f"the train.distill metrics of {s}_ce"))
                steps[f"{s}_{role}"] = f"{m['steps']}" + (" (plateau)" if m["kd_train"].get("stopped_by") ==
                                                          "plateau" else "")
                rule, history = _rule(Path(d)), m["kd_train"].get("plateau", [])
                curves[f"{s}_{role}"] = {
                    "steps": m["steps"], "stopped_by": m["kd_train"].get("stopped_by", "steps"), "history": history,
                    "rule": rule.describe() if rule else "no plateau rule (a fixed number of steps)",
                    "final_bpb": m.get("bpb_student"), "window": rule.window if rule else None,
                    "end_change": end_change(history, m["steps"], m.get("bpb_student"), rule)}
    n, seed = cfg.bootstrap, cfg.seed
    kd_ce = {s: {f"{shot}shot.{m}": _ci(per_q[f"{s}_ce"][shot][m], per_q[f"{s}_kd"][shot][m], n, seed)
                 for shot in cfg.tasks for m in METRICS} for s in cfg.students}
    shot_ci = {m: _ci(per_q[m][0]["f1"], per_q[m][1]["f1"], n, seed) for m in evals if len(per_q[m]) == 2}
    verdicts, specs = judge_claims(cfg, per_q)
    claims = {cid: v.line() for cid, v in verdicts.items()}
    per_lang = {}
    for m in evals:
        f1s = per_q[m][1]["f1"]
        per_lang[m] = {lg: _mean([f for f, q in zip(f1s, gold) if lang.get(q, "en") == lg])
                       for lg in sorted(set(lang.get(q, "en") for q in gold))}
    langs = {lg: sum(lang.get(q, "en") == lg for q in gold) for lg in sorted(set(lang.get(q, "en") for q in gold))}
    res = {"questions": len(gold), "scores": scores, "retention": retention, "parameter_reduction_pct": reduction,
           "kd_minus_ce": kd_ce, "claims": claims, "params": params, "steps": steps, "curves": curves}
    md = findings_md(res, per_lang, shot_ci, K.table(verdicts, specs), langs)
    atomic_write_text(run_dir / "findings.md", md)
    publish(md, cfg.results_doc)
    atomic_write_json(run_dir / "per_question.json", {"ids": list(gold), "scores": per_q,
                                                      "one_shot_minus_zero_f1": shot_ci})
    summary = (f"teacher 1-shot EM {teacher['1shot']['exact_match']:.1f} vs untuned "
               f"{scores['untuned']['1shot']['exact_match']:.1f}; "
               + "; ".join(f"{s} KD/CE F1 retention {retention[f'{s}_kd']['1shot']['f1']}/"
                           f"{retention[f'{s}_ce']['1shot']['f1']}%" for s in cfg.students))
    log.info("kd-qa findings: %s", summary)
    return KdQaResult(summary=summary, findings=str(run_dir / "findings.md"), questions=len(gold), scores=scores,
                      retention=retention, parameter_reduction_pct=reduction, kd_minus_ce=kd_ce, claims=claims,
                      claims_hash=K.claims_hash(cfg.claims), steps=steps)


@planner("papers.kd_qa")
def plan(cfg: KdQaConfig, ctx) -> dict:
    """``finemed plan``: rescoring earlier predictions and paired bootstraps: CPU only."""
    runs = 2 + len(cfg.students)
    return {**cpu(runs * len(cfg.tasks) * (0.5 + cfg.bootstrap * 0.001)), "disk_gib": 0.0,
            "assumes": "reads earlier run dirs; ~1 ms per bootstrap resample per model and task"}
