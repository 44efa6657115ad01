"""Stage ``papers.select_cpt``: the CPT run of a sweep that DeFineMed's merge starts from, chosen on dev.

The study needs a CPT run that learned the domain and hurt instruction following, so that a merge has something
to restore. A recipe cannot branch on a measured value; this stage is the branch. It probes every ``train.cpt``
run of the sweep and the instruct model (:mod:`finemed.merging.probe`, cached per model under ``probe/``), applies
the rule stated in the recipe before anything ran (:func:`rule_pick`, ``min_probe_drop``), writes
``selection.json`` (every run's row and the pick) and links ``model`` to the chosen run's model dir: the merge
sweep, the answers and the findings read ``${stage:NAME}/model``.

The rule reads the probe's dev half only; the findings' verdicts read the test half, which no choice has seen.
Written here because no library selects a checkpoint by a probe of this kind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from finemed.core.artifacts import atomic_write_json, read_json, read_manifest
from finemed.core.config import FinemedError
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import earlier
from finemed.core.stages import StageResult, planner, stage
from finemed.merging.probe import probe_cost
from finemed.papers import measures as C

log = get_logger(__name__)
RULE = ("lowest held-out domain bpb among runs that lowered it and whose probe (dev half) falls >= min_probe_drop "
        "below the instruct model's; else the learning run with the lowest probe (dev half)")


class SelectCptConfig(C.ProbeSettings):
    runs: list[str] = Field(min_length=1, description="the train.cpt run dirs of the sweep")
    instruct: str = Field(description="the instruct model dir the runs started from")
    min_probe_drop: float = Field(0.1, ge=0.0, le=1.0, description="absolute probe drop (dev half) that 'hurts'")


class SelectCptResult(StageResult):
    key_metric: ClassVar[str] = "chosen"
    chosen: str
    model: str
    instruct_probe_dev: float
    rows: list[dict[str, Any]]
    rule: str


def sweep_row(run: Path, probe: dict[str, Any]) -> dict[str, Any]:
    """One CPT run: lr, steps, tokens, held-out domain bpb before/after, probe pass rate on each half."""
    manifest, metrics = read_manifest(run), run / "metrics.json"
    if manifest is None or not metrics.is_file() or not (run / "model").is_dir():
        raise FinemedError(f"papers.select_cpt: {run} holds no finished train.cpt run; run the sweep stages first")
    conf, res = manifest.config, read_json(metrics)
    return {"run": run.name, "lr": conf.get("lr"), "steps": res.get("steps"),
            "tokens": res.get("steps", 0) * conf.get("batch_size", 0) * conf.get("seq_len", 0),
            "domain_bpb_before": res["bpb_before"].get("domain"), "domain_bpb": res["bpb_after"].get("domain"),
            "probe": C.verdict_rate(probe), "probe_dev": C.verdict_rate(probe, "dev")}


def rule_pick(rows: list[dict[str, Any]], instruct_probe: float, drop: float) -> str | None:
    """:data:`RULE` over ``rows`` (:func:`sweep_row`), with ``instruct_probe`` the instruct model's dev-half rate.
    A diverged run hurts the probe too but has nothing for a merge to keep, hence "runs that lowered it"."""
    learned = [r for r in rows if r["domain_bpb"] < r.get("domain_bpb_before", float("inf"))] or rows
    if not learned:
        return None
    hurt = [r for r in learned if r["probe_dev"] <= instruct_probe - drop + 1e-12]
    return (min(hurt, key=lambda r: r["domain_bpb"]) if hurt else min(learned, key=lambda r: r["probe_dev"]))["run"]


def link_model(run_dir: Path, target: Path) -> Path:
    """``run_dir/model`` -> ``target`` as a relative symlink (the runs dir can move as a whole)."""
    link = run_dir / "model"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(target.resolve(), run_dir.resolve()), target_is_directory=True)
    return link


@stage("papers.select_cpt")
def run(cfg: SelectCptConfig, run_dir: Path) -> SelectCptResult:
    """Probe each run and the instruct model, apply the rule on dev, link ``model``; write ``selection.json``."""
    run_dir = Path(run_dir)
    runs = [Path(r) for r in cfg.runs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise FinemedError(f"papers.select_cpt: runs must be distinct stage dirs; got {', '.join(names)}")
    instruct = C.probe_model(Path(cfg.instruct), run_dir / "probe" / "instruct.json", cfg)
    rows = [sweep_row(r, C.probe_model(r / "model", run_dir / "probe" / f"{r.name}.json", cfg)) for r in runs]
    base = C.verdict_rate(instruct, "dev")
    pick = rule_pick(rows, base, cfg.min_probe_drop)
    chosen = runs[names.index(pick)]
    for row in rows:
        row["chosen"] = row["run"] == pick
    link = link_model(run_dir, chosen / "model")
    atomic_write_json(run_dir / "selection.json", {"rule": RULE, "min_probe_drop": cfg.min_probe_drop,
                                                   "instruct_probe_dev": base, "chosen": pick, "rows": rows})
    log.info("select_cpt: %s (instruct probe dev %.2f; %s)", pick, base,
             ", ".join(f"{r['run']} bpb {r['domain_bpb']:.3f} probe dev {r['probe_dev']:.2f}" for r in rows))
    return SelectCptResult(chosen=pick, model=str(link), instruct_probe_dev=base, rows=rows, rule=RULE)


@planner("papers.select_cpt")
def plan(cfg: SelectCptConfig, ctx) -> dict:
    """``finemed plan``: the probe of every run and the instruct model; ``model`` sizes like the runs."""
    models = [(earlier(ctx, r) or {}).get("model") or cfg.instruct for r in cfg.runs]
    return {**probe_cost([cfg.instruct, *models], ctx, limit=cfg.probe_limit, max_new_tokens=cfg.probe_max_new_tokens,
                         batch_size=cfg.probe_batch_size), "model": models[0]}
