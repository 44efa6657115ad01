"""Stage ``eval.scoreboard``: every model of the chain against every measure, with paired deltas vs instruct.

It answers the question a user of a DeFineMed-style chain comes with: did the domain model get better at the
domain without getting worse at what it could do before? It reads what the eval stages wrote (``bpb.json`` with
per-document bits, ``qa_results.json`` + ``items_<task>.json``, the sweep's ``probe/t*.json``,
``failures_items.json``, ``winrates.json``), computes no score twice, and writes ``scoreboard.json``::

    {"models": {MODEL: {MEASURE: value}}, "deltas": {MODEL: {MEASURE: {delta, lo, hi, n, verdict}}},
     "measures": {MEASURE: {label, higher_is_better, chance, source}}, "judge": {...}, "missing": {...},
     "mcq_length_bias": {TASK: {MODEL: {...}}}, "selection": {stage, chosen, qa_kept, guard_failed, line}}

``selection`` is what the merge sweep handed on and whether its QA dev guard held; the report and the CLI show its
line first, so a model below the stated QA share cannot pass unnoticed.

``mcq_length_bias`` shows why MCQ ``acc`` can sit below chance while ``acc_norm`` sits at it (see
:func:`length_bias`).

MODEL is ``instruct``, ``cpt``, ``merge`` or ``student``. Each delta against the instruct model has a paired
bootstrap CI over the items both models answered (documents for bpb, questions for QA/MCQ, instructions for
the probe, prompts for failure modes); ``better``/``worse``/``unchanged`` is read off the CI (it excludes 0 or
not), never off the sign, and ``unchanged`` reads ``not testable here`` where the baseline sits at the measure's
floor (QA EM/F1 or the probe at 0, MCQ at or below chance). scipy's ``bootstrap(paired=True)`` resamples one
statistic of paired samples but not a ratio of sums (bpb) in one vectorised call over a shared resample, hence the
few numpy lines here.

The judge's win-rate enters only when the judge is not one of the chain's models or the embedded SmolLM2: a
135M judge tests the plumbing, so the scoreboard then says "judge: plumbing only" and ranks nothing by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from finemed.core.artifacts import atomic_write_json, read_json, read_manifest
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import cpu
from finemed.core.stages import StageResult, planner, stage

log = get_logger(__name__)
Role = Literal["instruct", "cpt", "merge", "student"]
ROLES: tuple[str, ...] = ("instruct", "cpt", "merge", "student")
PLUMBING = "judge: plumbing only"
NOT_TESTABLE = "not testable here"
# a measure's per-item data: {item id: value} (mean / median) or {item id: (bits, bytes)} (ratio of sums)
Items = dict[str, Any]


class ScoreboardConfig(StageConfig):
    models: dict[Role, str] = Field(description="role -> the model path (or name) the eval stages recorded")
    evals: list[str] = Field(description="the eval stage dirs to read (eval.bpb/qa/mcq/failures/pairwise, "
                                         "merge.sweep for the probe)")
    baseline: Role = "instruct"
    embedded_judges: list[str] = Field(["smollm2"], description="judges that test plumbing only (besides the "
                                                                "chain's own models)")
    bootstrap: int = Field(2000, ge=100)
    ci: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = 0


class ScoreboardResult(StageResult):
    key_metric: ClassVar[str] = "summary"
    scoreboard: str
    models: list[str]
    n_measures: int
    verdicts: dict[str, dict[str, int]]  # model -> {better, worse, unchanged, no CI}
    judge: str
    summary: str


class Measure:
    """One row of the board: a label, its direction, the statistic over items, and each role's items."""

    def __init__(self, key: str, label: str, higher_is_better: bool, stat: str, source: str,
                 chance: float | None = None, floor: float | None = None):
        self.key, self.label, self.higher, self.stat, self.source, self.chance = key, label, higher_is_better, \
            stat, source, chance
        self.floor = floor  # a baseline at or below it cannot show a loss: chance for MCQ, 0 for QA and the probe
        self.values: dict[str, float] = {}
        self.items: dict[str, Items] = {}

    def add(self, role: str, value: float | None, items: Items | None) -> None:
        if value is not None:
            self.values[role] = float(value)
        if items:
            self.items[role] = items


# ------------------------------------------------------------------------------------------ statistics
def _stat(x: np.ndarray, kind: str) -> np.ndarray:
    """The statistic over the last item axis of resampled ``x``: mean, median or ratio of sums (x[..., 0/1])."""
    if kind == "ratio":
        return x[..., 0].sum(axis=-1) / x[..., 1].sum(axis=-1)
    return np.median(x, axis=-1) if kind == "median" else x.mean(axis=-1)


def paired_delta(a: Items, b: Items, *, stat: str, higher_is_better: bool, n_boot: int, ci: float,
                 seed: int) -> dict[str, Any]:
    """Delta ``stat(b) - stat(a)`` on the items both have, with a percentile CI from one shared resample of the
    item ids (paired); the verdict is ``better``/``worse`` when the CI excludes 0, else ``unchanged``."""
    ids = sorted(set(a) & set(b))
    if not ids:
        return {"delta": None, "lo": None, "hi": None, "n": 0, "verdict": "no CI"}
    xa = np.asarray([a[i] for i in ids], dtype=float)
    xb = np.asarray([b[i] for i in ids], dtype=float)
    if stat == "ratio":
        xa = xa.reshape(len(ids), 2)
        xb = xb.reshape(len(ids), 2)
    delta = float(_stat(xb[None], stat)[0] - _stat(xa[None], stat)[0])
    idx = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    boots = _stat(xb[idx], stat) - _stat(xa[idx], stat)
    lo, hi = (float(v) for v in np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2]))
    if lo > 0 or hi < 0:
        verdict = "better" if (lo > 0) == higher_is_better else "worse"
    else:
        verdict = "unchanged"
    return {"delta": round(delta, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": len(ids), "verdict": verdict}


def at_floor(d: dict[str, Any], m: Measure, baseline: float) -> dict[str, Any]:
    """``unchanged`` becomes ``not testable here`` where the baseline sits at the measure's floor (QA or the probe at
    0, MCQ at or below chance): there a loss cannot show, so a CI spanning 0 says nothing about harm."""
    if d["verdict"] == "unchanged" and m.floor is not None and baseline <= m.floor + 1e-9:
        return {**d, "verdict": NOT_TESTABLE}
    return d


# ------------------------------------------------------------------------------------------ readers
def _norm(spec: str) -> str:
    spec = str(spec).removeprefix("local:")
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def _roles(config: ScoreboardConfig) -> dict[str, str]:
    """normalised model path -> role (a path named by two roles keeps the first in chain order)."""
    out: dict[str, str] = {}
    for role in ROLES:
        if role in config.models:
            out.setdefault(_norm(config.models[role]), role)
    return out


def _file(stage_dir: Path, name: str) -> Any:
    path = stage_dir / name
    if not path.is_file():
        raise FinemedError(f"scoreboard: {path} is missing; run that eval stage to the end first (it writes "
                           f"{name})")
    return read_json(path)


def _read_bpb(stage_dir: Path, role: str, board: dict[str, Measure]) -> None:
    data = _file(stage_dir, "bpb.json")
    for name, s in data["sets"].items():
        m = board.setdefault(f"bpb.{name}", Measure(f"bpb.{name}", f"bpb {name}", False, "ratio", stage_dir.name))
        items = {str(i): (bits, n) for i, (bits, n) in enumerate(zip(s.get("doc_bits", []), s.get("doc_bytes", [])))}
        m.add(role, s["bpb"], items)


_METRICS = {"exact_match": ("EM", 1.0), "f1": ("F1", 1.0), "acc": ("acc", 100.0), "acc_norm": ("acc_norm", 100.0)}


def _positions(picks: list[int]) -> dict[str, int]:
    """How often each option letter (A, B, ...) was picked."""
    return {"ABCDEFGH"[i]: picks.count(i) for i in range(max(picks) + 1)} if picks else {}


def length_bias(items: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """How option length and position steer a multiple-choice pick: the share of items where ``acc`` (argmax of the
    summed log-likelihood) and ``acc_norm`` (argmax per character, as lm-eval divides) pick the shortest option,
    where the gold one is the shortest or the longest, and the picks and golds per option letter. A summed
    log-likelihood falls with every token, so ``acc`` prefers short options; a small model also prefers the option
    it read first. When gold options run long, or the answer key avoids the favoured letter (GerMedBench med_qa's
    first 30 golds are all B or C), ``acc`` sits below chance while ``acc_norm`` does not."""
    rows = [r for r in items.values() if r.get("option_ll") and r.get("option_chars") and r.get("label") is not None]
    if not rows:
        return None

    def share(flags: list[bool]) -> float:
        return round(sum(flags) / len(flags), 4)

    def pick(r: dict, per_char: bool) -> int:
        scores = [ll / n if per_char else ll for ll, n in zip(r["option_ll"], r["option_chars"])]
        return max(range(len(scores)), key=scores.__getitem__)

    shortest = [min(range(len(r["option_chars"])), key=r["option_chars"].__getitem__) for r in rows]
    longest = [max(range(len(r["option_chars"])), key=r["option_chars"].__getitem__) for r in rows]
    return {"n": len(rows),
            "acc_picks_shortest": share([pick(r, False) == s for r, s in zip(rows, shortest)]),
            "acc_norm_picks_shortest": share([pick(r, True) == s for r, s in zip(rows, shortest)]),
            "gold_is_shortest": share([r["label"] == s for r, s in zip(rows, shortest)]),
            "gold_is_longest": share([r["label"] == g for r, g in zip(rows, longest)]),
            "acc_picks_by_position": _positions([pick(r, False) for r in rows]),
            "acc_norm_picks_by_position": _positions([pick(r, True) for r in rows]),
            "gold_by_position": _positions([r["label"] for r in rows]),
            "gold_chars": round(float(np.mean([r["option_chars"][r["label"]] for r in rows])), 1),
            "other_chars": round(float(np.mean([b for r in rows for i, b in enumerate(r["option_chars"])
                                                if i != r["label"]])), 1)}


def _read_lmeval(stage_dir: Path, role: str, board: dict[str, Measure], bias: dict[str, dict[str, Any]]) -> None:
    data = _file(stage_dir, "qa_results.json")
    for task, res in data["tasks"].items():
        path = stage_dir / f"items_{task}.json"
        items = read_json(path) if path.is_file() else {}
        lb = length_bias(items)
        if lb is not None:
            bias.setdefault(task, {})[role] = lb
        options = [len(r["option_ll"]) for r in items.values() if r.get("option_ll")]
        chance = round(100 * float(np.mean([1 / k for k in options])), 2) if options else None
        for metric, (label, scale) in _METRICS.items():
            if metric not in res:
                continue
            key = f"{task}.{metric}"
            at_chance = chance if metric.startswith("acc") else None
            m = board.setdefault(key, Measure(key, f"{task.replace('_', ' ')} {label}", True, "mean", stage_dir.name,
                                              at_chance, floor=at_chance if metric.startswith("acc") else 0.0))
            per = {i: scale * r[metric] for i, r in items.items() if isinstance(r.get(metric), (int, float))}
            m.add(role, None if res[metric] is None else scale * res[metric], per)


def selection_line(sweep: dict[str, Any], stage: str) -> str:
    """One line on what the merge sweep handed on and whether its QA dev guard held (from ``sweep.json``)."""
    kept = [f"{what} {100 * sweep[key]:.0f}% of the instruct model's" for what, key in
            (("QA dev F1", "qa_kept"), ("probe dev pass rate", "probe_kept")) if sweep.get(key) is not None]
    line = f"{stage}: chose {sweep['chosen']}" + (f" ({'; '.join(kept)})" if kept else "")
    return line + (f". {sweep['guard_failed']}" if sweep.get("guard_failed") else "")


def _read_probe(stage_dir: Path, roles: dict[str, str], board: dict[str, Measure],
                selection: dict[str, Any]) -> None:
    """The sweep's instruction probe, test half: t=0 is the instruct model, t=1 the CPT model, the chosen point the
    merge. ``selection`` gets what the sweep chose and its QA guard's line, for the report's first lines."""
    sweep = _file(stage_dir, "sweep.json")
    selection.update(stage=stage_dir.name, chosen=sweep["chosen"], qa_kept=sweep.get("qa_kept"),
                     probe_kept=sweep.get("probe_kept"), guard_failed=sweep.get("guard_failed"),
                     line=selection_line(sweep, stage_dir.name))
    m = board.setdefault("probe.pass_rate", Measure("probe.pass_rate", "instruction probe", True, "mean",
                                                    stage_dir.name, floor=0.0))
    who = [("t=0", "instruct"), ("t=1", "cpt"), (sweep["chosen"], "merge")]  # the chosen t may be 0 or 1 too
    wanted = set(roles.values())
    for label, role in who:
        path = stage_dir / "probe" / f"{label.replace('=', '')}.json"
        if role not in wanted or not path.is_file():
            continue
        probe = read_json(path)  # the test half only: the sweep selected its t on the dev half
        test = (probe.get("splits") or {}).get("test")
        items = [it for it in probe.get("items", []) if it.get("split", "test") == "test"]
        m.add(role, test["pass_rate"] if test else probe["pass_rate"], {it["id"]: float(it["passed"]) for it in items})


def _read_failures(stage_dir: Path, roles: dict[str, str], board: dict[str, Measure]) -> None:
    table = _file(stage_dir, "failures.json")
    path = stage_dir / "failures_items.json"
    rows = read_json(path) if path.is_file() else []
    for key, field, label, stat in (("off_language", "off_lang_sentence_share", "off-language share", "mean"),
                                    ("length_ratio", "median_length_ratio", "length ratio vs human", "median")):
        item_field = "length_ratio" if key == "length_ratio" else field
        m = board.setdefault(key, Measure(key, label, False, stat, stage_dir.name))
        for model, vals in table.items():
            role = roles.get(_norm(model))
            if role is None:
                continue
            per = {r["prompt_id"]: r[item_field] for r in rows
                   if _norm(r["model"]) == _norm(model) and r.get(item_field) is not None}
            m.add(role, vals.get(field), per)


def judge_is_plumbing(judge: str, config: ScoreboardConfig) -> bool:
    """A local judge that is one of the chain's models or an embedded small model tests plumbing only."""
    if not judge.startswith("local:"):
        return False
    name = _norm(judge)
    own = {_norm(p) for p in config.models.values()}
    embedded = set(config.embedded_judges) | {Path(e).name for e in config.embedded_judges}
    return name in own or name in embedded or Path(name).name in embedded


def _read_judge(stage_dir: Path, roles: dict[str, str], board: dict[str, Measure], config: ScoreboardConfig,
                judge: dict[str, Any]) -> None:
    manifest = read_manifest(stage_dir)
    spec = str((manifest.config or {}).get("judge", "")) if manifest else ""
    data = _file(stage_dir, "winrates.json")
    judge.update(judge=spec, stage=stage_dir.name)
    if judge_is_plumbing(spec, config):
        judge.update(status=PLUMBING, note=f"{spec} judges models of its own size: its win-rates test the "
                                           f"evaluation chain, they rank nothing")
        return
    judge.update(status="scored")
    m = board.setdefault("judge.win_rate", Measure("judge.win_rate", "judge win-rate", True, "mean", stage_dir.name))
    for model, rate in data.get("overall_winrate", {}).items():
        role = roles.get(_norm(model))
        if role is not None:
            m.add(role, rate, None)


# ------------------------------------------------------------------------------------------ the stage
def build(config: ScoreboardConfig) -> dict[str, Any]:
    """Read every eval stage in ``config.evals`` and return the scoreboard (see the module docstring)."""
    if config.baseline not in config.models:
        raise FinemedError(f"scoreboard: the baseline {config.baseline!r} is not among models "
                           f"({', '.join(config.models)}); add models.{config.baseline}: PATH")
    roles = _roles(config)
    board: dict[str, Measure] = {}
    judge: dict[str, Any] = {"status": "not run"}
    bias: dict[str, dict[str, Any]] = {}
    selection: dict[str, Any] = {}
    for spec in config.evals:
        stage_dir = Path(spec)
        manifest = read_manifest(stage_dir)
        if manifest is None:
            raise FinemedError(f"scoreboard: {stage_dir} holds no manifest.json; name the dir of a finished eval "
                               f"stage (e.g. ${{stage:qa_instruct}})")
        kind = manifest.kind
        model = (manifest.config or {}).get("model")
        role = roles.get(_norm(model)) if model else None
        if kind in ("eval.bpb", "eval.qa", "eval.mcq"):
            if role is None:
                log.warning("scoreboard: %s scored %s, which is none of the models; skipped", stage_dir.name, model)
            elif kind == "eval.bpb":
                _read_bpb(stage_dir, role, board)
            else:
                _read_lmeval(stage_dir, role, board, bias)
        elif kind == "merge.sweep":
            _read_probe(stage_dir, roles, board, selection)
        elif kind == "eval.failures":
            _read_failures(stage_dir, roles, board)
        elif kind in ("eval.pairwise", "eval.winrates"):
            _read_judge(stage_dir, roles, board, config, judge)
        else:
            raise FinemedError(f"scoreboard: {stage_dir} is a {kind} stage; evals takes eval.bpb, eval.qa, "
                               f"eval.mcq, eval.failures, eval.pairwise and merge.sweep dirs")
    present = [r for r in ROLES if r in config.models]
    base = config.baseline
    models = {r: {k: round(m.values[r], 4) for k, m in board.items() if r in m.values} for r in present}
    deltas: dict[str, dict[str, Any]] = {}
    for r in present:
        if r == base:
            continue
        deltas[r] = {}
        for k, m in board.items():
            if r not in m.values or base not in m.values:
                continue
            d = paired_delta(m.items.get(base, {}), m.items.get(r, {}), stat=m.stat, higher_is_better=m.higher,
                             n_boot=config.bootstrap, ci=config.ci, seed=config.seed)
            if d["delta"] is None:  # no per-item scores: the value delta, with no verdict
                d["delta"] = round(m.values[r] - m.values[base], 4)
            deltas[r][k] = at_floor(d, m, m.values[base])
    measures = {k: {"label": m.label, "higher_is_better": m.higher, "chance": m.chance, "source": m.source,
                    "statistic": m.stat} for k, m in board.items()}
    missing = {r: [k for k in board if k not in models[r]] for r in present}
    return {"models": models, "baseline": base, "deltas": deltas, "measures": measures, "judge": judge,
            "missing": {r: v for r, v in missing.items() if v}, "ci": config.ci, "bootstrap": config.bootstrap,
            "mcq_length_bias": bias, "selection": selection,
            "not_in_recipe": [r for r in ROLES if r not in config.models]}


def verdict_counts(board: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for role, ds in board["deltas"].items():
        counts = {"better": 0, "worse": 0, "unchanged": 0, NOT_TESTABLE: 0, "no CI": 0}
        for d in ds.values():
            counts[d["verdict"]] += 1
        out[role] = counts
    return out


@stage("eval.scoreboard")
def run(config: ScoreboardConfig, run_dir: Path) -> ScoreboardResult:
    """Stage entry: writes ``scoreboard.json`` (models x measures, paired deltas vs the baseline)."""
    board = build(config)
    path = atomic_write_json(Path(run_dir) / "scoreboard.json", board)
    counts = verdict_counts(board)
    summary = "; ".join(f"{r} vs {board['baseline']}: {c['better']} better, {c['worse']} worse, "
                        f"{c['unchanged']} unchanged, {c[NOT_TESTABLE]} {NOT_TESTABLE}" for r, c in counts.items())
    judge = board["judge"].get("status", "not run")
    log.info("scoreboard: %s (%s)", summary, judge)
    return ScoreboardResult(scoreboard=str(path), models=list(board["models"]), n_measures=len(board["measures"]),
                            verdicts=counts, judge=judge, summary=summary or "baseline only")


@planner("eval.scoreboard")
def plan(config: ScoreboardConfig, ctx) -> dict:
    """``finemed plan``: CPU only; reads JSON and resamples item ids ``bootstrap`` times per measure and model."""
    per_measure = config.bootstrap * 2e-5  # numpy resample of a few hundred items, measured well under this
    measures = 24  # about the quickstart's, per compared model
    return {"evals": len(config.evals), **cpu(len(config.models) * measures * per_measure), "disk_gib": 0.0,
            "assumes": f"{config.bootstrap} paired resamples per measure and model, ~{measures} measures; no model"}
