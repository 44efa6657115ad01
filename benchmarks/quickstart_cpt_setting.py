"""Choose the quickstart's CPT setting (lr, steps) on dev: does CPT hurt, and does the merge restore?

The quickstart should show the DeFineMed story: CPT costs instruction following, a SLERP merge back to the
instruct model gets part of it back and keeps most of the domain bpb gain. This script runs the quickstart's own
``cpt`` and ``merge`` stages (``finemed run recipes/quickstart.yaml --only cpt merge --set ...``) for each setting
in SETTINGS, on the corpus of an earlier quickstart run (its ``corpus`` stage is linked, not rebuilt), and reads
what the merge sweep wrote. Everything it reads is the **dev** half: the probe's 62 dev instructions
(``probe/t*.json``, items tagged ``split``) and the sweep's QA dev questions; the scoreboard reports the test half.

Pre-registered before the first run (commit of this file), alpha 0.05, two-sided exact tests:

- ``hurts``: the CPT model (t=1) passes fewer probe dev items than the instruct model (t=0): exact McNemar on the
  paired dev items, p < 0.05 and the difference in that direction.
- ``restores``: the merge the sweep chose passes more probe dev items than the CPT model: exact McNemar,
  Holm-adjusted over the sweep's merged points (t strictly between 0 and 1), p < 0.05 in that direction.
- ``keeps_gain``: the chosen merge keeps >= 50% of CPT's domain bpb gain ((bpb_0 - bpb_t) / (bpb_0 - bpb_1),
  the sweep's own ``gain_kept``), a point estimate on the held-out docs.
- The rule: the first setting in SETTINGS order (cheapest first) where all three hold is the quickstart's; if none
  does, the one with the smallest larger p of ``hurts`` and ``restores``, and the README says so with the numbers.

    .venv/bin/python benchmarks/quickstart_cpt_setting.py --base runs/ [--out /tmp/cpt-setting] [--only NAME ...]

A setting whose sweep already ran under ``--out`` is judged again, not rerun; ``results.json`` there holds every
setting's numbers and the choice (the 2026-12-06 run's copy: ``docs/results/quickstart-cpt-setting.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "quickstart.yaml"
SETTINGS = [  # (name, lr, steps), cheapest first; a CPT step costs ~10 s on 2 cores, so steps stay <= 36
    ("lr2e-4_s36", 2.0e-4, 36),  # the quickstart's setting before this sweep (read from --base when it ran it)
    ("lr1e-3_s24", 1.0e-3, 24),  # 24 steps: a full quickstart with 36 ran ~25 min, over the 20-minute budget
    ("lr2e-3_s24", 2.0e-3, 24),
    ("lr1e-3_s36", 1.0e-3, 36),
]
LINKED = ("fetch", "labels", "classifier", "corpus")  # upstream stages reused from --base
ALPHA = 0.05


def run_setting(name: str, lr: float, steps: int, base: Path, out: Path) -> float:
    runs = out / name
    (runs / "quickstart").mkdir(parents=True, exist_ok=True)
    for stage in LINKED:
        link = runs / "quickstart" / stage
        if not link.exists():
            link.symlink_to((base / "quickstart" / stage).resolve())
    cmd = [str(ROOT / ".venv" / "bin" / "finemed"), "run", str(RECIPE), "--only", "cpt", "--only", "merge",
           "--runs-dir", str(runs), "--set", f"cpt.lr={lr}", "--set", f"cpt.max_steps={steps}",
           "--set", f"cpt.save_steps={steps // 3}"]
    t0 = time.perf_counter()
    with open(runs / "log.txt", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ).returncode
    if rc != 0:
        raise SystemExit(f"{name}: finemed run exited {rc}; see {runs / 'log.txt'}")
    return time.perf_counter() - t0


def ran_it(base: Path, lr: float, steps: int) -> bool:
    """Whether the --base run's own cpt and merge stages already are this setting."""
    from finemed.core.artifacts import read_manifest

    cpt = read_manifest(base / "quickstart" / "cpt")
    done = (base / "quickstart" / "merge" / "sweep.json").is_file()
    return bool(cpt and done and cpt.config.get("lr") == lr and cpt.config.get("max_steps") == steps)


def judge(sweep_dir: Path) -> dict:
    from finemed.core.artifacts import read_json, read_manifest
    from finemed.merging.sweep import SweepPoint, select
    from finemed.papers.claims import holm
    from finemed.papers.measures import mcnemar, verdict_rate

    sweep = read_json(sweep_dir / "sweep.json")
    probe = {p.stem: read_json(p) for p in (sweep_dir / "probe").glob("t*.json")}
    label = {pt["label"]: pt for pt in sweep["points"]}
    for lab, pt in label.items():  # exact dev rates from the items (sweeps before 2026-12-06 rounded them)
        pt["probe_pass_rate"] = verdict_rate(probe[lab.replace("=", "")], "dev")
    hurt = mcnemar(probe["t0"], probe["t1"], split="dev")  # only_first: instruct-only passes
    merged = [lab for lab, pt in label.items() if 0.0 < pt["t"] < 1.0]
    raw = {lab: mcnemar(probe["t1"], probe[lab.replace("=", "")], split="dev") for lab in merged}
    adj = holm({lab: r["p"] for lab, r in raw.items()})
    cfg = read_manifest(sweep_dir).config  # the sweep's own rule, applied to the exact rates
    points = [SweepPoint.model_validate(pt) for pt in label.values()]
    pick, guard = select(points, label["t=0"]["probe_pass_rate"], cfg["min_probe_keep"], label["t=0"].get("qa_dev_f1"),
                         cfg.get("min_qa_keep", 0.8))
    chosen = pick.label
    bpb = {lab: pt["bpb"]["domain"] for lab, pt in label.items()}
    gain = bpb["t=0"] - bpb["t=1"]
    gain_kept = (bpb["t=0"] - bpb[chosen]) / gain if gain > 0 else None
    rest = raw.get(chosen)
    p_rest = adj.get(chosen, 1.0)
    out = {
        "probe_dev": {lab: round(pt["probe_pass_rate"], 4) for lab, pt in label.items()},
        "qa_dev_f1": {lab: pt.get("qa_dev_f1") for lab, pt in label.items()},
        "bpb_domain": {lab: pt["bpb"]["domain"] for lab, pt in label.items()},
        "chosen": chosen, "sweep_chose": sweep["chosen"], "gain_kept": gain_kept, "guard_failed": guard,
        "hurts": {**hurt, "holds": hurt["p"] < ALPHA and hurt["only_first"] > hurt["only_second"]},
        "restores": {**(rest or {}), "p_holm": round(p_rest, 4),
                     "holds": bool(rest) and p_rest < ALPHA and rest["only_second"] > rest["only_first"]},
        "keeps_gain": {"holds": (gain_kept or 0.0) >= 0.5},
        "merge_points": {lab: {**r, "p_holm": round(adj[lab], 4)} for lab, r in raw.items()},
    }
    out["all_hold"] = all(out[c]["holds"] for c in ("hurts", "restores", "keeps_gain"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="a runs dir holding a finished quickstart/corpus")
    ap.add_argument("--out", type=Path, default=Path("/tmp/cpt-setting"))
    ap.add_argument("--only", action="append", default=None, help="setting names (default: all)")
    args = ap.parse_args()
    if not (args.base / "quickstart" / "corpus" / "manifest.json").is_file():
        sys.exit(f"--base {args.base}: no finished quickstart/corpus there; run `make quickstart` first")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, lr, steps in SETTINGS:
        if args.only and name not in args.only:
            continue
        done = args.out / name / "quickstart" / "merge"
        if ran_it(args.base, lr, steps):
            seconds, merge = None, args.base / "quickstart" / "merge"
        elif (done / "sweep.json").is_file():  # ran before: judged again, not rerun
            seconds, merge = None, done
        else:
            seconds, merge = run_setting(name, lr, steps, args.base, args.out), args.out / name / "quickstart" / "merge"
        results[name] = {"lr": lr, "steps": steps, "seconds": None if seconds is None else round(seconds, 1),
                         "sweep_dir": str(merge), **judge(merge)}
        r = results[name]
        took = "ran before" if seconds is None else f"{seconds:.0f} s"
        print(f"{name}: {took}; probe dev {r['probe_dev']}; QA dev F1 {r['qa_dev_f1']}; chosen {r['chosen']} "
              f"(gain kept {r['gain_kept']}); hurts p={r['hurts']['p']} ({r['hurts']['only_first']} vs "
              f"{r['hurts']['only_second']}) {r['hurts']['holds']}; restores p_holm={r['restores']['p_holm']} "
              f"{r['restores']['holds']}; keeps_gain {r['keeps_gain']['holds']}", flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    chosen = next((n for n, r in results.items() if r["all_hold"]), None)
    if chosen is None and results:
        chosen = min(results, key=lambda n: max(results[n]["hurts"]["p"], results[n]["restores"]["p_holm"]))
        print(f"no setting meets all three; closest: {chosen}")
    print(f"chosen setting: {chosen}")
    (args.out / "results.json").write_text(json.dumps({"settings": results, "chosen": chosen}, indent=1))


if __name__ == "__main__":
    main()
