"""Stage ``merge.sweep``: merge the CPT model back into the instruct model at several t and pick one.

For each t the merged model (mergekit, :mod:`finemed.merging.merge`) is scored on held-out domain bpb,
general German/English bpb, the bilingual instruction probe (:mod:`finemed.merging.probe`, both halves of its
fixed dev/test split) and F1 on a small English QA dev set (:mod:`finemed.merging.qa_dev`: XQuAD-en articles
that no reported QA score uses). The endpoints are the two input models themselves: t=0 is the instruct model,
t=1 the CPT model.

**Rule for t (dev data only).** A t *keeps QA* when its QA dev F1 is at least ``min_qa_keep`` (0.8) of the
instruct model's, and *keeps the probe* when its probe pass rate on the dev half is at least ``min_probe_keep``
(0.8) of the instruct model's. Among the t that keep both, choose the lowest domain bpb (ties: the smaller t).
If none keeps both, choose among those that keep QA the highest probe dev pass rate (ties: lower domain bpb,
then smaller t). The rule never hands on a t that does not keep QA, unless no t does: then it chooses the
highest QA dev F1 (ties: higher probe, smaller t), says so in one log line and in ``sweep.json``
(``guard_failed``). The probe's test half and the held-out bpb are reported, never selected on. The result
reports, at the chosen t, the share of the instruct probe (dev) and QA dev F1 kept and the share of the CPT
domain-bpb gain kept, against the acceptance goals (≥ 0.8, ≥ ``min_qa_keep`` and ≥ 0.5).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from finemed.core.artifacts import atomic_path, atomic_write_json
from finemed.core.config import ConfigError, FinemedError, StageConfig
from finemed.core.engine import Engine, VLLMSettings, choose_engine, release, serve
from finemed.core.logs import get_logger, progress
from finemed.core.plan_estimates import decode_steps, inference, merge_cost
from finemed.core.runtime import Device, DType, Runtime, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.core.texts import TextSet, general_eval_default, heldout_texts
from finemed.merging.merge import MergeSpec, check_compatible, run_merge, short_form_methods, to_mergekit
from finemed.merging.probe import probe_items, run_probe, run_probe_served
from finemed.merging.probe_items import SPLIT_RULE
from finemed.merging.qa_dev import QADevConfig, score_dev, write_dev_set
from finemed.models.bpb import compute_bpb
from finemed.models.loading import load_causal_lm
from finemed.models.registry import resolve_model_path

log = get_logger(__name__)


class SweepConfig(StageConfig):
    """Stage ``merge.sweep``. The held-out sets are chosen by the same hash rule as ``train.cpt``.

    ``method`` is a short-form merge method (:func:`finemed.merging.merge.short_form_methods`), merged in
    ``merge_dtype``; ``device``/``dtype`` are where and in which precision the merged models are scored.
    """

    base: str = "smollm2"
    cpt: str
    method: str = "slerp"
    t_values: list[float] = Field(default_factory=lambda: [0.0, 0.3, 0.5, 0.7, 1.0])
    # layer-wise SLERP: named per-layer t schedules (interpolated over the layers by mergekit), e.g.
    # {valley: [0, 0.5, 1, 0.5, 0]}; each is one more sweep point, chosen by the same rule as a uniform t
    schedules: dict[str, list[float]] = {}
    merge_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: Device = "auto"
    dtype: DType = "auto"
    domain: TextSet = TextSet(source="builtin:medical")
    general_eval: dict[str, TextSet] = Field(default_factory=general_eval_default)
    heldout_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    eval_max_docs: int = Field(default=16, ge=1)
    eval_max_length: int = Field(default=512, ge=2)
    eval_batch_size: int = Field(default=4, ge=1)
    seed: int = 0
    probe_max_new_tokens: int = Field(default=48, ge=1)
    probe_batch_size: int = Field(default=25, ge=1)
    probe_limit: int | None = Field(default=None, ge=1)
    min_probe_keep: float = Field(default=0.8, ge=0.0, le=1.0)  # of the instruct model's probe pass rate (dev half)
    # QA dev guard: F1 on a few XQuAD-en dev questions (qa_dev.py); None turns the guard off
    qa_dev: QADevConfig | None = Field(default_factory=QADevConfig)
    min_qa_keep: float = Field(default=0.8, ge=0.0, le=1.0)  # of the instruct model's QA dev F1
    engine: Engine = "auto"  # the probe's: auto (vLLM where `make vllm` ran; a server start per point) | hf | vllm
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)
    keep: Literal["chosen", "all"] = "chosen"

    @field_validator("t_values")
    @classmethod
    def _unit(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one t, e.g. [0, 0.5, 1]")
        bad = [t for t in v if not 0.0 <= t <= 1.0]
        if bad:
            raise ValueError(f"t={bad[0]} is outside [0, 1]; t is the CPT model's share (0 = base, 1 = cpt)")
        return sorted(set(v))

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, ts in v.items():
            if len(ts) < 2 or any(not 0.0 <= t <= 1.0 for t in ts):
                raise ValueError(f"schedule {name!r}: give >= 2 values in [0, 1], e.g. [0, 0.5, 1, 0.5, 0]")
        return v


class SweepPoint(BaseModel):
    t: float  # the uniform t, or a schedule's mean (where it is drawn)
    label: str = ""  # "t=0.5" or the schedule's name
    schedule: list[float] | None = None
    bpb: dict[str, float]
    probe_pass_rate: float  # the probe's dev half: what the rule reads
    probe_by_lang: dict[str, float]  # dev half, by language
    probe_test_pass_rate: float | None = None  # the test half: reported, never selected on
    qa_dev_f1: float | None = None  # percent; None when the QA guard is off
    qa_dev_em: float | None = None
    seconds: float


class SweepResult(StageResult):
    key_metric: ClassVar[str] = "chosen"
    chosen: str  # the chosen point's label: "t=0.5" or a schedule name
    chosen_t: float
    rule: str
    chosen_model: str
    probe_kept: float | None  # probe dev pass rate at chosen t / instruct's
    qa_kept: float | None = None  # QA dev F1 at chosen t / instruct's
    gain_kept: float | None  # (bpb_base - bpb_t) / (bpb_base - bpb_cpt) on the domain set
    guard_failed: str | None = None  # the one line when no t keeps min_qa_keep of the instruct QA dev F1
    qa_dev: dict | None = None  # the QA dev set: source, task, questions, titles, ids
    probe_split: str = ""  # the probe's dev/test rule
    meets_probe_goal: bool
    meets_gain_goal: bool
    plot: str
    points: list[SweepPoint]


RULE = ("lowest domain bpb among t with probe dev pass rate >= {keep:.0%} of the instruct model's "
        "(ties: smaller t); if none, the highest probe dev pass rate")
QA_RULE = ("; only t whose QA dev F1 >= {qa:.0%} of the instruct model's ({task}, {n} questions), unless none: "
           "then the highest QA dev F1")


def select(points: list[SweepPoint], base_pass: float, min_keep: float, base_qa: float | None = None,
           min_qa_keep: float = 0.8) -> tuple[SweepPoint, str | None]:
    """Apply the stated rule (see the module docstring): ``(chosen point, guard_failed line or None)``.
    ``base_qa`` None: no QA guard (every point keeps QA)."""
    eps = 1e-12
    keeps_qa = [p for p in points if base_qa is None or (p.qa_dev_f1 is not None
                                                         and p.qa_dev_f1 >= min_qa_keep * base_qa - eps)]
    if not keeps_qa:
        best = max(points, key=lambda p: (p.qa_dev_f1 or 0.0, p.probe_pass_rate, -p.t))
        share = (best.qa_dev_f1 or 0.0) / base_qa if base_qa else 0.0
        return best, (f"QA guard failed: no candidate keeps QA dev F1 >= {min_qa_keep:.0%} of the instruct model's "
                      f"({base_qa:.1f}); chose the highest, {best.label} at {best.qa_dev_f1 or 0.0:.1f} "
                      f"({share:.0%})")
    ok = [p for p in keeps_qa if p.probe_pass_rate >= min_keep * base_pass - eps]
    if ok:
        return min(ok, key=lambda p: (p.bpb["domain"], p.t)), None
    return max(keeps_qa, key=lambda p: (p.probe_pass_rate, -p.bpb["domain"], -p.t)), None


def choose_point(points: list[SweepPoint], base_pass: float, min_keep: float, base_qa: float | None = None,
                 min_qa_keep: float = 0.8) -> SweepPoint:
    return select(points, base_pass, min_keep, base_qa, min_qa_keep)[0]


def choose_t(points: list[SweepPoint], base_pass: float, min_keep: float, base_qa: float | None = None,
             min_qa_keep: float = 0.8) -> float:
    return choose_point(points, base_pass, min_keep, base_qa, min_qa_keep).t


def plot_sweep(points: list[SweepPoint], chosen: SweepPoint, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    uniform = [p for p in points if p.schedule is None]
    ts = [p.t for p in uniform]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in points[0].bpb:
        ax.plot(ts, [p.bpb[name] for p in uniform], marker="o", label=f"bpb {name}")
    for p in points:
        if p.schedule is not None:
            ax.scatter([p.t], [p.bpb["domain"]], marker="*", s=90, zorder=5)
            ax.annotate(f"{p.label} (probe {p.probe_pass_rate:.2f})", (p.t, p.bpb["domain"]), fontsize=7)
    ax.set_xlabel("t (0 = instruct, 1 = CPT)")
    ax.set_ylabel("bits per byte (lower is better)")
    ax2 = ax.twinx()
    ax2.plot(ts, [p.probe_pass_rate for p in uniform], marker="s", color="black", linestyle="--",
             label="probe pass rate (dev)")
    if all(p.qa_dev_f1 is not None for p in uniform):
        ax2.plot(ts, [p.qa_dev_f1 / 100 for p in uniform], marker="^", color="tab:purple", linestyle="-.",
                 label="QA dev F1 / 100")
    ax2.set_ylabel("probe pass rate, QA F1 / 100 (dev)")
    ax2.set_ylim(0, 1)
    ax.axvline(chosen.t, color="grey", linestyle=":", label=f"chosen {chosen.label}")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, fontsize=8, loc="upper center")
    ax.set_title("SLERP t-sweep: domain/general bpb and instruction following")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def _evaluate(model_dir: Path, sets: dict[str, list[str]], config: SweepConfig, rt: Runtime,
              qa_file: Path | None, qa_out: Path) -> tuple[dict, object, dict | None]:
    """(bpb by set, probe result with both halves, QA dev scores or None) of one sweep point."""
    # the probe first: on vLLM its server starts before this point's HF model takes memory; the QA dev set runs on
    # the same server, which then stops (each sweep point is a new model: its server would only hold memory)
    probe = qa = None
    if choose_engine(config.engine, "merge probe") == "vllm":
        server = serve(model_dir, config.vllm)  # the probe's client and lm-eval find this one (same model, settings)
        try:
            probe = run_probe_served(model_dir, engine="vllm", vllm=config.vllm, limit=config.probe_limit,
                                     max_new_tokens=config.probe_max_new_tokens, keep_server=True)
            if qa_file is not None and config.qa_dev is not None:
                qa = score_dev(config.qa_dev, qa_file, qa_out, seed=config.seed, model_dir=model_dir,
                               vllm=config.vllm)
        finally:
            release(server)
    model, tok = load_causal_lm(model_dir, runtime=rt)
    bpb = {name: round(compute_bpb(model, tok, texts, max_length=config.eval_max_length,
                                   batch_size=config.eval_batch_size, progress=False, runtime=rt).bpb, 6)
           for name, texts in sets.items()}
    if probe is None:
        probe = run_probe(model, tok, max_new_tokens=config.probe_max_new_tokens, batch_size=config.probe_batch_size,
                          limit=config.probe_limit, runtime=rt)
    if qa is None and qa_file is not None and config.qa_dev is not None:
        qa = score_dev(config.qa_dev, qa_file, qa_out, seed=config.seed, model=model, tok=tok, runtime=rt)
    return bpb, probe, qa


@stage("merge.sweep")
def run(config: SweepConfig, run_dir: Path) -> SweepResult:
    """Stage entry: writes ``sweep.json``, ``sweep.png``, ``probe/t*.json`` and the chosen model ``merged/``."""
    if config.method not in short_form_methods():
        raise ConfigError(f"sweep method {config.method!r}: use one of {', '.join(short_form_methods())}")
    run_dir = Path(run_dir)
    base, cpt = resolve_model_path(config.base), resolve_model_path(config.cpt)
    check_compatible([str(base), str(cpt)])
    sets = {}
    for name, ts in {"domain": config.domain, **config.general_eval}.items():
        cap = min(config.eval_max_docs, ts.max_docs or config.eval_max_docs)
        sets[name] = heldout_texts(ts.source, config.heldout_fraction, config.seed, cap)
        if not sets[name]:
            raise FinemedError(f"sweep: held-out set {name!r} ({ts.source}) is empty; add texts or raise "
                               f"heldout_fraction")
    rt = resolve(config.device, config.dtype)
    qa_info = qa_file = None
    if config.qa_dev is not None:
        qa_file = run_dir / "qa_dev" / "dev.json"
        qa_info = write_dev_set(config.qa_dev, config.seed, qa_file)
    t_values = sorted(set(config.t_values) | {0.0, 1.0})
    points: list[SweepPoint] = []
    merged_dirs: dict[str, Path] = {}
    todo: list[tuple[str, float | list[float]]] = [(f"t={t:g}", t) for t in t_values]
    todo += [(name, ts) for name, ts in config.schedules.items()]
    for label, t in progress(todo, "sweep points"):
        start = time.perf_counter()
        if t in (0.0, 1.0):
            model_dir = base if t == 0.0 else cpt
        else:
            spec = MergeSpec(base=str(base), cpt=str(cpt), method=config.method, t=t, dtype=config.merge_dtype)
            slug = label.replace("=", "").replace("/", "_")
            model_dir = run_merge(to_mergekit(spec), run_dir / f"merged-{slug}", check=False)
            merged_dirs[label] = model_dir
        slug = label.replace("=", "").replace("/", "_")
        bpb, probe, qa = _evaluate(model_dir, sets, config, rt, qa_file, run_dir / "qa_dev" / slug)
        atomic_write_json(run_dir / "probe" / f"{label.replace('=', '')}.json", probe)  # both halves, tagged
        schedule = t if isinstance(t, list) else None
        dev, test = probe.half("dev"), probe.half("test")
        points.append(SweepPoint(t=sum(t) / len(t) if schedule else t, label=label, schedule=schedule, bpb=bpb,
                                 probe_pass_rate=dev.pass_rate if dev else probe.pass_rate,
                                 probe_by_lang=dev.by_lang if dev else probe.by_lang,
                                 probe_test_pass_rate=test.pass_rate if test else None,
                                 qa_dev_f1=qa["f1"] if qa else None, qa_dev_em=qa["em"] if qa else None,
                                 seconds=round(time.perf_counter() - start, 2)))
        log.info("sweep %s: bpb %s, probe dev %.2f, QA dev F1 %s", label, bpb, points[-1].probe_pass_rate,
                 "-" if qa is None else f"{qa['f1']:.1f}")
        atomic_write_json(run_dir / "points.partial.json", points)  # progress; sweep.json is the result
    by_t = {p.t: p for p in points if p.schedule is None}
    asked = [p for p in points if p.schedule is not None or p.t in config.t_values]
    base_qa = by_t[0.0].qa_dev_f1
    pick, guard_failed = select(asked or points, by_t[0.0].probe_pass_rate, config.min_probe_keep, base_qa,
                                config.min_qa_keep)
    if guard_failed:
        log.warning(guard_failed)
    chosen = pick.t
    base_pass, gain_total = by_t[0.0].probe_pass_rate, by_t[0.0].bpb["domain"] - by_t[1.0].bpb["domain"]
    probe_kept = pick.probe_pass_rate / base_pass if base_pass > 0 else None
    qa_kept = pick.qa_dev_f1 / base_qa if base_qa and pick.qa_dev_f1 is not None else None
    gain_kept = (by_t[0.0].bpb["domain"] - pick.bpb["domain"]) / gain_total if gain_total > 0 else None
    chosen_dir = run_dir / "merged"  # always the chosen model, so later stages can name ${stage:NAME}/merged
    with atomic_path(chosen_dir) as tmp:
        shutil.copytree(merged_dirs.get(pick.label) or (base if pick.label == "t=0" else cpt), tmp)
    if config.keep == "chosen":
        for d in merged_dirs.values():
            shutil.rmtree(d, ignore_errors=True)
    plot = plot_sweep(points, pick, run_dir / "sweep.png")
    rule = RULE.format(keep=config.min_probe_keep)
    if qa_info is not None:
        rule += QA_RULE.format(qa=config.min_qa_keep, task=qa_info["task"], n=qa_info["questions"])
    result = SweepResult(
        chosen=pick.label, chosen_t=chosen, rule=rule, chosen_model=str(chosen_dir),
        probe_kept=None if probe_kept is None else round(probe_kept, 4),
        qa_kept=None if qa_kept is None else round(qa_kept, 4),
        gain_kept=None if gain_kept is None else round(gain_kept, 4), guard_failed=guard_failed, qa_dev=qa_info,
        probe_split=SPLIT_RULE,
        meets_probe_goal=probe_kept is not None and probe_kept >= 0.8,
        meets_gain_goal=gain_kept is not None and gain_kept >= 0.5, plot=str(plot), points=points)
    (run_dir / "points.partial.json").unlink(missing_ok=True)
    atomic_write_json(run_dir / "sweep.json", result)
    return result


@planner("merge.sweep")
def plan(config: SweepConfig, ctx) -> dict:
    """``finemed plan``: candidates = t values (0 and 1 are the inputs, not merged) + schedules; each merged
    one costs a merge and its disk; each candidate is scored on the held-out bpb sets and the probe."""
    t_values = set(config.t_values) | {0.0, 1.0}
    candidates = len(t_values) + len(config.schedules)
    merges = candidates - 2
    sets = {"domain": config.domain, **config.general_eval}
    bpb_tokens = sum(min(config.eval_max_docs, ts.max_docs or config.eval_max_docs) for ts in sets.values()) \
        * config.eval_max_length
    probes = len(probe_items("all", config.probe_limit))
    qa = config.qa_dev
    qa_tokens = qa.limit * ((qa.max_context_chars or 700) // 4 + 40) * (1 + qa.shots) + 32 * qa.limit if qa else 0
    score = inference(config.base, ctx, tokens=bpb_tokens + probes * (60 + config.probe_max_new_tokens) + qa_tokens,
                      decode_steps=decode_steps(probes, config.probe_batch_size, config.probe_max_new_tokens)
                      + (decode_steps(qa.limit, qa.batch_size, 32) if qa else 0))
    merge = merge_cost(config.base, ctx, inputs=2, dtype=config.merge_dtype)
    merged = merge.get("merged_model_gib", 0.0)
    return {"model": score.get("model", config.base), "parameters": score.get("parameters"),
            "candidates": candidates, "merges": merges, "probe_prompts": probes, "bpb_tokens_per_candidate": bpb_tokens,
            "flops": candidates * score.get("flops", 0.0),
            "gpu_hours": round(candidates * score.get("gpu_hours", 0.0), 6),
            "memory_gib_per_process": max(score.get("memory_gib_per_process", 0.0),
                                          merge.get("merge_memory_gib", 0.0)),
            "disk_gib": round(merged * (merges + 1), 3), "disk_gib_after": round(merged * (1 if config.keep ==
                                                                                         "chosen" else merges + 1), 3),
            "merged_model_gib": merged, "cpu_hours": round(merges * merge.get("cpu_hours", 0.0), 4),
            "qa_dev_questions": qa.limit if qa else 0,
            "assumes": f"every bpb doc fills eval_max_length ({config.eval_max_length} tokens); probe prompts ~60 "
                       f"tokens and answers run to probe_max_new_tokens; merges I/O-bound at 500 MB/s; peak disk "
                       f"holds every merged candidate and the chosen copy (keep: {config.keep} prunes at the end)"}
