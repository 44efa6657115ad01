"""Stage ``papers.definemed``: DeFineMed's claims, checked on what ``definemed-mini`` trained and measured.

Reads the earlier stages' outputs (nothing is retrained or measured): the CPT sweep's rows and the run chosen on
its dev half (``papers.select_cpt``, :mod:`finemed.papers.select_cpt`, which probed every run), the SLERP sweep
(``merge.sweep``: ``sweep.json`` and the per-point probe answers), the pairwise judge (``eval.pairwise``) and the
failure modes (``eval.failures``) of instruct, CPT and the chosen merge.

Claims are pre-registered in the recipe (``claims:``, :mod:`finemed.papers.claims`) under the ids of
:data:`CLAIMS`, each judged in one of the four verdict words:

- ``cpt_hurts``: probe pass rate CPT - instruct on the paired items (bootstrap CI, exact McNemar p);
- ``merge_restores``: probe pass rate chosen merge - CPT, with the McNemar p Holm-adjusted over every merge point
  the sweep tried (the chosen point is one of several looks);
- ``merge_mixing`` / ``merge_verbosity``: the merge's per-prompt off-language sentence share / length ratio to the
  human answers minus the instruct model's (paired bootstrap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from finemed.core.artifacts import atomic_write_json, atomic_write_text, read_json
from finemed.core.logs import get_logger
from finemed.core.plotting import pyplot, save_png
from finemed.core.stages import StageResult, planner, stage
from finemed.papers import claims as K
from finemed.papers import measures as C

log = get_logger(__name__)
CLAIMS = ("cpt_hurts", "merge_restores", "merge_mixing", "merge_verbosity")


class DefinemedConfig(C.ProbeSettings):
    select: str = Field(description="the papers.select_cpt run dir: the sweep's rows and the run the merge used")
    sweep: str = Field(description="the merge.sweep run dir")
    failures: str = Field(description="the eval.failures run dir (answers of instruct, CPT and merge)")
    judge: str | None = Field(None, description="the eval.pairwise run dir")
    models: dict[str, str] = Field(description="{instruct|cpt|merge: model path as named in the answers}")
    results_doc: str | None = C.results_doc_field()
    claims: dict[str, K.ClaimSpec] = Field(description="the pre-registered claims, ids " + ", ".join(
        ("cpt_hurts", "merge_restores", "merge_mixing", "merge_verbosity")))

    @field_validator("claims")
    @classmethod
    def _registered(cls, v: dict[str, K.ClaimSpec]) -> dict[str, K.ClaimSpec]:
        K.require_ids(v, CLAIMS, "papers.definemed")
        return v


class DefinemedResult(StageResult):
    key_metric: ClassVar[str] = "summary"
    summary: str
    findings: str
    plot: str
    cpt_sweep: list[dict[str, Any]]
    rule_pick: str | None
    probe: dict[str, float]
    off_lang_sentence_share: dict[str, float | None]
    length_ratio: dict[str, float | None]
    claims: dict[str, str]
    claims_hash: str


ROLES = ("instruct", "cpt", "merge")


def _probe_file(sweep_dir: Path, label: str) -> Path:
    return sweep_dir / "probe" / f"{label.replace('=', '')}.json"


def plot_bpb_vs_probe(points: list[dict[str, Any]], chosen: str, path: Path) -> Path:
    """Domain bpb (x) against the probe pass rate (y) for every uniform t and layer-wise schedule."""

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    uni = [p for p in points if p.get("schedule") is None]
    ax.plot([p["bpb"]["domain"] for p in uni], [p["probe_pass_rate"] for p in uni], marker="o", color="tab:blue",
            label="uniform t")
    for p in points:
        star = p.get("schedule") is not None
        if star:
            ax.scatter([p["bpb"]["domain"]], [p["probe_pass_rate"]], marker="*", s=140, color="tab:orange",
                       zorder=5, label=f"layer-wise {p['label']}")
        ax.annotate(p["label"] + (" (chosen)" if p["label"] == chosen else ""),
                    (p["bpb"]["domain"], p["probe_pass_rate"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("held-out domain bits per byte (lower = more domain knowledge)")
    ax.set_ylabel("instruction probe pass rate")
    ax.set_ylim(0, min(1.0, max(p["probe_pass_rate"] for p in points) + 0.1))
    ax.set_title("SLERP merges: domain bpb vs instruction following (t=0 instruct, t=1 CPT)")
    ax.legend(fontsize=8)
    return save_png(fig, path)


def findings_markdown(selection, sweep, rates, mc_cpt, mc_merge, fail, judge, claim_lines) -> str:
    """The findings tables, as written to ``findings.md`` (and copied to docs/results/definemed.md)."""
    f = C.fmt
    lines = ["## CPT sweep (held-out domain bpb and instruction probe of each run)", "",
             "| run | lr | steps | tokens | domain bpb before | domain bpb after | probe dev | probe test | merged |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in selection["rows"]:
        lines.append(f"| {r['run']} | {r['lr']:g} | {r['steps']} | {r['tokens']} | {f(r['domain_bpb_before'])} "
                     f"| {f(r['domain_bpb'])} | {f(r['probe_dev'], 2)} | {f(r['probe'], 2)} "
                     f"| {'yes' if r['chosen'] else ''} |")
    lines += ["", f"Instruct probe {rates['instruct']:.2f} (test half); on the dev half "
              f"{selection['instruct_probe_dev']:.2f}. The run merged is chosen on the dev half by the rule stated "
              f"before the run (`papers.select_cpt`, min_probe_drop {selection['min_probe_drop']:g}): "
              f"{selection['rule']}: **{selection['chosen']}**.", "",
              "## SLERP sweep (t = CPT share; layer-wise schedules by name)", "",
              "| point | t (mean) | " + " | ".join(f"bpb {k}" for k in sweep["points"][0]["bpb"]) + " | probe |",
              "|---|---|" + "---|" * len(sweep["points"][0]["bpb"]) + "---|"]
    for p in sweep["points"]:
        mark = " (chosen)" if p["label"] == sweep["chosen"] else ""
        lines.append(f"| {p['label']}{mark} | {p['t']:.2f} | " + " | ".join(f(v) for v in p["bpb"].values())
                     + f" | {p['probe_pass_rate']:.2f} |")
    lines += ["", f"Chosen by the sweep's rule ({sweep['rule']}): **{sweep['chosen']}**. Plot: bpb_vs_probe.png.",
              "", "## Instruct, CPT and the chosen merge", "",
              "| model | probe pass rate | off-language sentence share | median length ratio vs human | "
              "mean words |", "|---|---|---|---|---|"]
    for role in ROLES:
        m = fail["models"][role]
        lines.append(f"| {role} | {rates[role]:.2f} | {f(m['off_lang_sentence_share'])} "
                     f"| {f(m['median_length_ratio'], 2)} | {f(m['mean_words'], 1)} |")
    lines += ["", f"Probe, exact McNemar on {mc_cpt['items']} paired items: instruct-only passes "
              f"{mc_cpt['only_first']}, CPT-only {mc_cpt['only_second']} (p = {mc_cpt['p']}); "
              f"CPT-only {mc_merge['only_first']}, merge-only {mc_merge['only_second']} (p = {mc_merge['p']}).", "",
              "| paired difference (per prompt, 95% bootstrap CI) | n | off-language sentence share | n "
              "| length ratio |", "|---|---|---|---|---|"]
    for key, d in fail["diff"].items():
        lines.append(f"| {key} | {d['off_lang_sentence_share_n']} | {C.fmt_ci(d['off_lang_sentence_share'])} "
                     f"| {d['length_ratio_n']} | {C.fmt_ci(d['length_ratio'], 2)} |")
    if judge:
        lines += ["", f"## Pairwise judge ({judge.get('_judge', {}).get('judge')}; both orders)", "",
                  "| pair | win-rate | judgments | invalid |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['winrate']:.3f} | {int(v['n'])} | {int(v['invalid'])} |" for k, v in judge.items()
                  if not k.startswith("_")]
    lines += ["", "## The paper's claims, in miniature (pre-registered in the recipe)", ""]
    lines += claim_lines
    return "\n".join(lines) + "\n"


def _probe_evidence(a: dict, b: dict, cfg: DefinemedConfig, alpha: float, p: float, what: str,
                    note: str = "") -> K.Evidence:
    """Pass rate b - a on the paired probe items: bootstrap CI, and the (possibly adjusted) McNemar p."""
    d = C.paired_diff(*C.probe_items(a, b), cfg.bootstrap, cfg.seed, alpha)
    return K.Evidence(estimate=d["estimate"], lo=d["lo"], hi=d["hi"], p=p,
                      detail=f"{what} {C.fmt_ci((d['estimate'], d['lo'], d['hi']))} on {d['n']} paired items; "
                             f"McNemar p = {p:.3f}" + (f" ({note})" if note else ""))


def _failure_evidence(fail: dict, metric: str, what: str, handed_on: str) -> K.Evidence:
    """The merge's answers minus the instruct model's; not testable when the sweep handed on an end point (t=0 is
    the instruct model, t=1 the CPT model: no merge answered)."""
    d = fail["diff"]["merge-instruct"]
    est, lo, hi = d[metric]
    return K.Evidence(estimate=est, lo=lo, hi=hi, p=d[metric + "_p"], testable=handed_on not in ("t=0", "t=1"),
                      why_not=f"the sweep handed on {handed_on}, an end point: no merged model answered",
                      detail=f"{what}, merge - instruct {C.fmt_ci(d[metric])} (n = {d[metric + '_n']})")


def evidence(cfg: DefinemedConfig, sweep: dict, sweep_dir: Path, probes: dict, fail: dict) -> dict[str, K.Evidence]:
    """What each pre-registered claim is judged on; ``merge_restores`` is Holm-adjusted over the sweep's merges."""
    mc_cpt = C.mcnemar(probes["instruct"], probes["cpt"])
    merges = [p["label"] for p in sweep["points"] if p["label"] not in ("t=0", "t=1")]
    raw = {lab: C.mcnemar(probes["cpt"], read_json(_probe_file(sweep_dir, lab)))["p"] for lab in merges}
    adjusted = K.holm(raw) if raw else {}
    chosen = sweep["chosen"]
    if chosen not in adjusted and adjusted:  # the rule handed on an end point: judge the family's best merge
        best = min(adjusted, key=adjusted.get)
        probes = {**probes, "merge": read_json(_probe_file(sweep_dir, best))}
        chosen, why = best, (f"the sweep's rule handed on {sweep['chosen']} (no merge); judged on the merge point "
                             f"with the lowest Holm-adjusted p, {best}, over {len(raw)} merge points")
    else:
        why = (f"p Holm-adjusted over {len(raw)} merge points" if chosen in adjusted else
               f"the sweep tried no merge point between the ends ({chosen}): McNemar p unadjusted")
    p_merge = adjusted.get(chosen, C.mcnemar(probes["cpt"], probes["merge"])["p"])
    return {
        "cpt_hurts": _probe_evidence(probes["instruct"], probes["cpt"], cfg, cfg.claims["cpt_hurts"].alpha,
                                     mc_cpt["p"], "probe pass rate CPT - instruct"),
        "merge_restores": _probe_evidence(
            probes["cpt"], probes["merge"], cfg, cfg.claims["merge_restores"].alpha, p_merge,
            f"probe pass rate merge ({chosen}) - CPT", why),
        "merge_mixing": _failure_evidence(fail, "off_lang_sentence_share", "off-language sentence share",
                                          sweep["chosen"]),
        "merge_verbosity": _failure_evidence(fail, "length_ratio", "length ratio to the human answer",
                                             sweep["chosen"]),
    }


@stage("papers.definemed")
def run(cfg: DefinemedConfig, run_dir: Path) -> DefinemedResult:
    """Stage entry: writes ``findings.md``, ``findings.json`` and ``bpb_vs_probe.png`` in its run dir."""
    run_dir = Path(run_dir)
    C.require_models(cfg.models, ROLES, "papers.definemed")
    sweep_dir = Path(cfg.sweep)
    sweep = read_json(C.require(sweep_dir / "sweep.json", "merge.sweep result"))
    chosen_label = sweep["chosen"]
    probes = {"instruct": read_json(_probe_file(sweep_dir, "t=0")), "cpt": read_json(_probe_file(sweep_dir, "t=1")),
              "merge": read_json(_probe_file(sweep_dir, chosen_label))}
    rates = {r: C.verdict_rate(probes[r]) for r in ROLES}  # the test half
    selection = read_json(C.require(Path(cfg.select) / "selection.json", "papers.select_cpt result"))
    rows, pick = selection["rows"], selection["chosen"]
    plot = plot_bpb_vs_probe(sweep["points"], chosen_label, run_dir / "bpb_vs_probe.png")

    mc_cpt = C.mcnemar(probes["instruct"], probes["cpt"])
    mc_merge = C.mcnemar(probes["cpt"], probes["merge"])
    fail = C.failure_pairs(Path(cfg.failures), cfg.models, cfg.bootstrap, cfg.seed)
    judge = C.judge_winrates(Path(cfg.judge), cfg.models) if cfg.judge else {}

    verdicts = K.judge_all(cfg.claims, evidence(cfg, sweep, sweep_dir, probes, fail))
    claims = {cid: v.line() for cid, v in verdicts.items()}
    md = findings_markdown(selection, sweep, rates, mc_cpt, mc_merge, fail, judge, K.table(verdicts, cfg.claims))
    findings = atomic_write_text(run_dir / "findings.md", md)
    C.publish(md, cfg.results_doc)
    atomic_write_json(run_dir / "findings.json", {"cpt_sweep": rows, "rule_pick": pick, "probe": rates,
                                                  "mcnemar": {"instruct_vs_cpt": mc_cpt, "cpt_vs_merge": mc_merge},
                                                  "failures": fail, "judge": judge,
                                                  "claims": {k: v.model_dump() for k, v in verdicts.items()},
                                                  "claims_hash": K.claims_hash(cfg.claims)})
    held = sum(v.verdict == K.HOLDS for v in verdicts.values())
    summary = (f"probe instruct {rates['instruct']:.2f} / CPT {rates['cpt']:.2f} / merge {rates['merge']:.2f}; "
               f"{held} of {len(claims)} claims hold")
    log.info("%s", summary)
    return DefinemedResult(
        summary=summary, findings=str(findings), plot=str(plot), cpt_sweep=rows, rule_pick=pick, probe=rates,
        off_lang_sentence_share={r: fail["models"][r]["off_lang_sentence_share"] for r in ROLES},
        length_ratio={r: fail["models"][r]["median_length_ratio"] for r in ROLES}, claims=claims,
        claims_hash=K.claims_hash(cfg.claims))


@planner("papers.definemed")
def plan(cfg: DefinemedConfig, ctx) -> dict:
    """``finemed plan``: nothing new is measured; every probe was run by the selection and the merge sweep."""
    return {"gpu_hours": 0.0, "disk_gib": 0.0,
            "assumes": "reads the selection, sweep, answers, judge and failures stages' outputs (seconds of CPU)"}
