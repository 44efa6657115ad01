"""Stage ``papers.targeted_sft``: DeFineMed's next step, "more targeted fine-tuning", before and after.

A LoRA SFT (``train.sft``) of the merged model on German instruction data is meant to cut language mixing and
bring answer length towards the human answers without losing instruction following. This stage reads the
``eval.failures`` run of both models' answers to HELD-OUT prompts (prompts the SFT never trained on) and the SFT
run, probes both models (:mod:`finemed.merging.probe`: 128 items; the verdict reads the 66-item test half), and
writes the before/after table:

- off-language sentence share and length ratio to the human answers: per-model means (the failures stage's
  table) and the paired per-prompt difference after - before with a 95% bootstrap CI;
- probe pass rate before/after with an exact McNemar test on the paired items.

Claims are pre-registered in the recipe (``claims:``, :mod:`finemed.papers.claims`) under the ids of
:data:`CLAIMS`: ``reduces_mixing`` (off-language share after - before, paired bootstrap; not testable when the
model before the SFT does not mix: its CI lower bound at the floor), ``length_towards_human`` (per-prompt
|log length ratio to the human answer|, after - before) and ``keeps_instruction_following`` (probe pass rate
after - before on the paired items, a non-inferiority margin). Each verdict is one of the four words.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from finemed.core.artifacts import atomic_write_json, atomic_write_text, read_json
from finemed.core.logs import get_logger
from finemed.core.stages import StageResult, planner, stage
from finemed.merging.probe import probe_cost
from finemed.papers import claims as K
from finemed.papers import measures as C

log = get_logger(__name__)
ROLES = ("before", "after")
CLAIMS = ("reduces_mixing", "length_towards_human", "keeps_instruction_following")


class TargetedSftConfig(C.ProbeSettings):
    models: dict[str, str] = Field(description="{before: merged model, after: SFT model}, as named in the answers")
    failures: str = Field(description="the eval.failures run dir of both models' answers to held-out prompts")
    sft: str | None = Field(None, description="the train.sft run dir (its metrics are quoted)")
    results_doc: str | None = C.results_doc_field()
    claims: dict[str, K.ClaimSpec] = Field(description=f"the pre-registered claims, ids {', '.join(CLAIMS)}")

    @field_validator("claims")
    @classmethod
    def _registered(cls, v: dict[str, K.ClaimSpec]) -> dict[str, K.ClaimSpec]:
        K.require_ids(v, CLAIMS, "papers.targeted_sft")
        return v


class TargetedSftResult(StageResult):
    key_metric: ClassVar[str] = "summary"
    summary: str
    findings: str
    probe: dict[str, float]
    off_lang_sentence_share: dict[str, float | None]
    length_ratio: dict[str, float | None]
    off_lang_diff: list[float | None]  # after - before: mean, CI low, CI high
    claims: dict[str, str]
    claims_hash: str


def _sft_lines(sft_dir: Path | None) -> list[str]:
    if sft_dir is None or not (sft_dir / "metrics.json").is_file():
        return []
    m = read_json(sft_dir / "metrics.json")
    keep = {k: v for k, v in m.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return ["", "## The SFT run", "", "| key | value |", "|---|---|"] + [f"| {k} | {C.fmt(v)} |"
                                                                           for k, v in keep.items()]


def evidence(cfg: TargetedSftConfig, probes: dict, fail: dict) -> dict[str, K.Evidence]:
    """What each pre-registered claim is judged on (effects are after - before)."""
    d = fail["diff"]["after-before"]
    off = d["off_lang_sentence_share"]
    before_ci = fail["per_model_ci"]["before"]["off_lang_sentence_share"]
    testable, why = K.at_floor(before_ci[1] if before_ci else None, cfg.claims["reduces_mixing"].floor)
    length = d["abs_log_length_ratio"]
    x, y = C.probe_items(probes["before"], probes["after"])
    probe = C.paired_diff(x, y, cfg.bootstrap, cfg.seed, cfg.claims["keeps_instruction_following"].alpha)
    return {
        "reduces_mixing": K.Evidence(estimate=off[0], lo=off[1], hi=off[2], p=d["off_lang_sentence_share_p"],
                                     testable=testable, why_not=f"the model before the SFT does not mix: {why}",
                                     detail=f"off-language share after - before {C.fmt_ci(off)} "
                                            f"(n = {d['off_lang_sentence_share_n']})"),
        "length_towards_human": K.Evidence(**{k: length[k] for k in ("estimate", "lo", "hi", "p")},
                                           detail=f"|log length ratio| after - before {C.fmt_ci(_tri(length), 3)} "
                                                  f"(n = {length['n']})"),
        "keeps_instruction_following": K.Evidence(**{k: probe[k] for k in ("estimate", "lo", "hi")},
                                                  detail=f"probe pass rate after - before {C.fmt_ci(_tri(probe))} "
                                                         f"({probe['n']} paired items)"),
    }


def _tri(d: dict) -> tuple:
    return d["estimate"], d["lo"], d["hi"]


def findings_markdown(rates: dict, mc: dict, fail: dict, claim_lines: list[str], sft_dir: Path | None) -> str:
    f = C.fmt
    d = fail["diff"]["after-before"]
    lines = ["## Before and after the targeted SFT (held-out prompts)", "",
             "| model | probe pass rate | off-language sentence share | median length ratio vs human | mean words |",
             "|---|---|---|---|---|"]
    for role in ROLES:
        m = fail["models"][role]
        lines.append(f"| {role} | {rates[role]:.2f} | {f(m['off_lang_sentence_share'])} "
                     f"| {f(m['median_length_ratio'], 2)} | {f(m['mean_words'], 1)} |")
    lines += ["", "| after - before (per prompt, 95% bootstrap CI) | n | value |", "|---|---|---|",
              f"| off-language sentence share | {d['off_lang_sentence_share_n']} "
              f"| {C.fmt_ci(d['off_lang_sentence_share'])} |",
              f"| length ratio | {d['length_ratio_n']} | {C.fmt_ci(d['length_ratio'], 2)} |", "",
              f"Probe, exact McNemar on {mc['items']} paired items: before-only passes {mc['only_first']}, "
              f"after-only {mc['only_second']} (p = {mc['p']}).", "",
              "## Claims (pre-registered in the recipe)", ""]
    lines += claim_lines
    return "\n".join(lines + _sft_lines(sft_dir)) + "\n"


@stage("papers.targeted_sft")
def run(cfg: TargetedSftConfig, run_dir: Path) -> TargetedSftResult:
    """Stage entry: writes ``findings.md`` and ``findings.json`` in its run dir (and ``docs/results``)."""
    run_dir = Path(run_dir)
    models = C.require_models(cfg.models, ROLES, "papers.targeted_sft")
    probes = {r: C.probe_model(Path(models[r]), run_dir / "probe" / f"{r}.json", cfg) for r in ROLES}
    rates = {r: C.verdict_rate(probes[r]) for r in ROLES}  # the test half
    mc = C.mcnemar(probes["before"], probes["after"])
    fail = C.failure_pairs(Path(cfg.failures), models, cfg.bootstrap, cfg.seed, pairs=[("before", "after")])
    off = fail["diff"]["after-before"]["off_lang_sentence_share"]
    verdicts = K.judge_all(cfg.claims, evidence(cfg, probes, fail))
    claims = {cid: v.line() for cid, v in verdicts.items()}
    sft_dir = Path(cfg.sft) if cfg.sft else None
    md = findings_markdown(rates, mc, fail, K.table(verdicts, cfg.claims), sft_dir)
    findings = atomic_write_text(run_dir / "findings.md", md)
    C.publish(md, cfg.results_doc)
    atomic_write_json(run_dir / "findings.json", {"probe": rates, "mcnemar": mc, "failures": fail,
                                                  "claims": {k: v.model_dump() for k, v in verdicts.items()},
                                                  "claims_hash": K.claims_hash(cfg.claims)})
    m = fail["models"]
    summary = (f"off-language share {C.fmt(m['before']['off_lang_sentence_share'])} -> "
               f"{C.fmt(m['after']['off_lang_sentence_share'])}, probe {rates['before']:.2f} -> {rates['after']:.2f}")
    log.info("%s", summary)
    return TargetedSftResult(
        summary=summary, findings=str(findings), probe=rates,
        off_lang_sentence_share={r: m[r]["off_lang_sentence_share"] for r in ROLES},
        length_ratio={r: m[r]["median_length_ratio"] for r in ROLES}, off_lang_diff=list(off), claims=claims,
        claims_hash=K.claims_hash(cfg.claims))


@planner("papers.targeted_sft")
def plan(cfg: TargetedSftConfig, ctx) -> dict:
    """``finemed plan``: the probe of both models (before/after); the rest is reading earlier outputs."""
    return probe_cost(list(cfg.models.values()), ctx, limit=cfg.probe_limit,
                      max_new_tokens=cfg.probe_max_new_tokens, batch_size=cfg.probe_batch_size)
