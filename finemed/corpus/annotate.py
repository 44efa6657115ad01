"""Stage ``corpus.annotate``: zero-shot medical/not-medical labels from an LLM that always answer.

1. ``sample + dev_size`` docs are drawn, seeded, from random row groups (files for JSONL) holding about
   ``sample_oversample`` times as many rows, read in parallel with only the columns the stage uses
   (:func:`finemed.corpus.rows.sample_rows`): a 260k-doc sample never reads all of FineWeb2. With gold labels
   (``label_field`` or ``human_labels``) the first ``dev_size`` gold-labelled docs form the dev set; it never
   overlaps the scored docs.
2. The prompt is a German or English template (``template``), optionally with a block of ``k_shot`` labelled
   examples drawn from the dev set. ``template: auto`` picks the template with the best F1 on the rest of the
   dev set, where the threshold on P(yes) is tuned for ``target_precision`` (as the classifier does).
3. Verdicts come from next-token probabilities (:mod:`finemed.core.verdicts`): every scored doc gets a label
   and P(yes); only an endpoint without logprobs falls back to parsing text (unparseable: counted, no label).
4. Against gold labels: P/R/F1 with bootstrap CIs, the calibration of P(yes) (``calibration.png``) and the
   confusion matrix with examples of each error (:mod:`finemed.corpus.annotate_agreement`).

Writes ``labels.jsonl`` (id, text, label, p_yes, method, ...: the classifier trains on it directly).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from finemed.core.artifacts import atomic_path
from finemed.core.config import FinemedError, StageConfig
from finemed.core.engine import Engine, VLLMSettings
from finemed.core.llm import LLMClient
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import CPU_S, cpu, decode_steps, gib, inference, is_remote
from finemed.core.runtime import Device, DType
from finemed.core.stages import StageResult, planner, stage
from finemed.core.verdicts import Verdict, parse_verdict, verdicts
from finemed.corpus.annotate_agreement import bootstrap_prf, calibration, confusion, plot_calibration, prf
from finemed.corpus.classifier_eval import prf_at, tune_threshold
from finemed.corpus.corpus_plan import DOC_BYTES, docs_in
from finemed.corpus.rows import read_rows, sample_rows
from finemed.corpus.sample_input import default_dev_input

log = get_logger(__name__)
TEMPLATES = {
    "de": ("Du bist ein sorgfältiger Annotator. Entscheide, ob der folgende Text medizinischen Inhalt hat "
           "(Krankheiten, Diagnostik, Therapie, Medikamente, Gesundheitsversorgung, klinische Dokumente).\n\n"
           "{examples}Text:\n\"\"\"\n{text}\n\"\"\"\n\n"
           "Ist der Text medizinisch? Antworte nur mit \"Ja\" oder \"Nein\"."),
    "en": ("You are a careful annotator. Decide whether the following German text is medical "
           "(diseases, diagnostics, therapy, drugs, health care, clinical documents).\n\n"
           "{examples}Text:\n\"\"\"\n{text}\n\"\"\"\n\nIs the text medical? Answer only \"Yes\" or \"No\"."),
}
SHOT_WORDS = {"de": ("Beispiele", "Antwort", "Ja", "Nein"), "en": ("Examples", "Answer", "Yes", "No")}

# parse_verdict and bootstrap_prf stay importable from here (older callers)
__all__ = ["AnnotateConfig", "AnnotateResult", "TEMPLATES", "bootstrap_prf", "build_prompt",
           "parse_verdict", "reservoir", "run"]


class AnnotateConfig(StageConfig):
    input: str | None = None  # parquet/jsonl file or dir; None: the dev input
    llm: str  # "http://127.0.0.1:PORT/v1#MODEL" or "local:PATH_OR_NAME"
    sample: int = Field(200, gt=0)  # docs to label (besides the dev set)
    seed: int = 0
    template: str = "auto"  # auto (chosen on the dev set among `templates`) | de | en | custom with {text}
    templates: list[str] = Field(default_factory=lambda: ["de", "en"])
    k_shot: int = Field(0, ge=0)  # labelled examples in the prompt, from the dev set
    dev_size: int = Field(40, ge=0)  # gold-labelled docs to choose template and threshold on; never scored
    target_precision: float = Field(0.9, gt=0, le=1)
    threshold: float | None = Field(None, ge=0, le=1)  # fixed P(yes) threshold; None: tuned on the dev set
    max_chars: int = Field(600, gt=0)  # a 135M model loses the question after long docs; faster too
    shot_chars: int = Field(200, gt=0)
    concurrency: int = Field(8, ge=1)
    batch_size: int = Field(8, ge=1)
    max_tokens: int = Field(8, ge=1)  # text fallback only
    timeout_s: float = Field(60.0, gt=0)
    human_labels: str | None = None  # jsonl/parquet with id, label (0/1)
    label_field: str | None = None  # or a column of the input holding gold labels (e.g. "medical")
    cache: str | None = None  # SQLite verdict cache; default RUN_DIR/verdicts.sqlite
    n_boot: int = Field(1000, ge=10)
    sample_oversample: float = Field(4.0, ge=1)  # rows read per sampled doc (whole row groups): the draw's spread
    read_workers: int = Field(8, ge=1)  # threads reading parquet footers and row groups
    examples_per_error: int = Field(3, ge=0)
    device: Device = "auto"
    dtype: DType = "auto"
    engine: Engine = "auto"  # a local: llm: auto (vLLM where `make vllm` ran: verdicts from top_logprobs) | hf | vllm
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)


class AnnotateResult(StageResult):
    key_metric: ClassVar[str] = "agreement.f1.value"
    sampled: int
    labelled: int
    share_labelled: float
    positives: int
    unparseable: int
    llm_errors: int
    methods: dict[str, int]
    template: str
    k_shot: int
    threshold: float
    threshold_from: str  # dev | config | default
    dev: dict
    agreement: dict | None = None
    confusion: dict | None = None
    calibration: dict | None = None
    calibration_png: str | None = None
    labels: str
    docs_per_s: float
    llm_stats: dict[str, int]
    input_rows_read: int | None = None  # rows the sample was drawn from (row groups read), not the input's size
    engine: str = "hf"  # what answered: hf | vllm | http


def reservoir(rows, n: int, seed: int = 0) -> list[dict]:
    """``n`` rows drawn uniformly in one pass (Algorithm R), then shuffled; rows without text are skipped."""
    rng = random.Random(seed)
    keep: list[dict] = []
    seen = 0
    for r in rows:
        if not str(r.get("text") or "").strip():
            continue
        seen += 1
        if len(keep) < n:
            keep.append(r)
        else:
            j = rng.randrange(seen)
            if j < n:
                keep[j] = r
    rng.shuffle(keep)
    return keep


def build_prompt(template: str, text: str, shots: list[dict], max_chars: int, shot_chars: int) -> str:
    """The template filled with ``text`` and, if ``shots``, a block of labelled examples."""
    lang = template if template in SHOT_WORDS else "de"
    head, answer, yes, no = SHOT_WORDS[lang]
    block = ""
    if shots:
        block = f"{head}:\n\n" + "".join(
            f"Text:\n\"\"\"\n{s['text'][:shot_chars]}\n\"\"\"\n{answer}: {yes if s['gold'] == 1 else no}\n\n"
            for s in shots) + "---\n\n"
    body = TEMPLATES.get(template, template)
    if "{examples}" not in body:
        body = "{examples}" + body
    return body.replace("{examples}", block).replace("{text}", text[:max_chars])


def _gold(cfg: AnnotateConfig, rows: list[dict]) -> dict[str, int]:
    if cfg.human_labels:
        return {str(g["id"]): int(g["label"]) for g in read_rows(cfg.human_labels)
                if g.get("label") in (0, 1, True, False)}
    if cfg.label_field:
        return {str(r["id"]): int(r[cfg.label_field]) for r in rows if r.get(cfg.label_field) in (0, 1, True, False)}
    return {}


def _shots(dev: list[dict], k: int) -> list[dict]:
    """``k`` examples, positives and negatives alternating, from the front of the dev set."""
    pos, neg = [r for r in dev if r["gold"] == 1], [r for r in dev if r["gold"] == 0]
    out = []
    while len(out) < k and (pos or neg):
        for side in (pos, neg):
            if side and len(out) < k:
                out.append(side.pop(0))
    return out


def _score(client: LLMClient, cfg: AnnotateConfig, template: str, docs: list[dict], shots: list[dict]):
    msgs = [[{"role": "user", "content": build_prompt(template, d["text"], shots, cfg.max_chars, cfg.shot_chars)}]
            for d in docs]
    tag = f"annotate:{template[:40]}:k{len(shots)}"
    return verdicts(client, msgs, cache_tag=tag, text_max_tokens=cfg.max_tokens)


def _label(v: Verdict, thr: float) -> int | None:
    return int(v.p_yes >= thr) if v.p_yes is not None else v.text_label


def _choose(client: LLMClient, cfg: AnnotateConfig, tune: list[dict], shots: list[dict]) -> tuple[str, float, dict]:
    """The template (``auto``: the best F1 on the dev set) and the P(yes) threshold for the target precision."""
    candidates = cfg.templates if cfg.template == "auto" else [cfg.template]
    y = np.array([d["gold"] for d in tune])
    report: dict[str, dict] = {}
    best: tuple[float, float, str, float] | None = None
    for name in candidates:
        vs = _score(client, cfg, name, tune, shots) if len(tune) else []
        probs = [v.p_yes for v in vs]
        if len(tune) and all(p is not None for p in probs) and 0 < y.sum() < len(y):
            p = np.array(probs, dtype=float)
            thr = cfg.threshold if cfg.threshold is not None else tune_threshold(y, p, cfg.target_precision)
            at = prf_at(y, p, thr)
            from sklearn.metrics import average_precision_score

            ap = float(average_precision_score(y, p))
            report[name] = {**at.model_dump(), "average_precision": round(ap, 4)}
            key = (at.f1, ap)
        else:  # text fallback or a one-class dev set: no threshold to tune
            thr = cfg.threshold if cfg.threshold is not None else 0.5
            labels = [_label(v, thr) for v in vs]
            pairs = [(g, x) for g, x in zip(y, labels) if x is not None]
            f1 = round(prf(np.array([g for g, _ in pairs]), np.array([x for _, x in pairs]))[2], 4) if pairs else 0.0
            report[name] = {"threshold": thr, "f1": f1, "labelled": len(pairs)}
            key = (f1, 0.0)
        if best is None or key > best[:2]:
            best = (*key, name, float(thr))
    assert best is not None
    return best[2], best[3], report


def _write_labels(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@stage("corpus.annotate")
def run(cfg: AnnotateConfig, run_dir: Path) -> AnnotateResult:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    source = cfg.input or str(default_dev_input())
    if cfg.template not in TEMPLATES and cfg.template != "auto" and "{text}" not in cfg.template:
        raise FinemedError(f"annotate template {cfg.template!r}: expected auto, {', '.join(TEMPLATES)} or a "
                           "custom template containing {text}")
    columns = ["id", "text", "source", *([cfg.label_field] if cfg.label_field else [])]
    rows, read = sample_rows(source, cfg.sample + cfg.dev_size, seed=cfg.seed, columns=columns,
                             oversample=cfg.sample_oversample, workers=cfg.read_workers)
    log.info("annotate: %d docs drawn from %d rows (%d of %d row groups/files; columns %s)", len(rows),
             read["rows_read"], read["units_read"], read["units_total"], ", ".join(columns))
    gold = _gold(cfg, rows)
    for r in rows:
        r["id"] = str(r["id"])
        if r["id"] in gold:
            r["gold"] = gold[r["id"]]
    dev_ids = {r["id"] for r in [r for r in rows if "gold" in r][:cfg.dev_size]}
    dev = [r for r in rows if r["id"] in dev_ids]
    docs = [r for r in rows if r["id"] not in dev_ids][:cfg.sample]
    shots = _shots(dev, cfg.k_shot)
    shot_ids = {s["id"] for s in shots}
    tune = [r for r in dev if r["id"] not in shot_ids]

    client = LLMClient(cfg.llm, cache_path=Path(cfg.cache) if cfg.cache else run_dir / "verdicts.sqlite",
                       concurrency=cfg.concurrency, max_tokens=cfg.max_tokens, temperature=0.0,
                       timeout_s=cfg.timeout_s, batch_size=cfg.batch_size, device=cfg.device, dtype=cfg.dtype,
                       engine=cfg.engine, vllm=cfg.vllm)
    try:
        if tune:
            template, thr, dev_report = _choose(client, cfg, tune, shots)
            thr_from = "config" if cfg.threshold is not None else "dev"
        else:
            template = cfg.template if cfg.template != "auto" else cfg.templates[0]
            thr, dev_report = (cfg.threshold if cfg.threshold is not None else 0.5), {}
            thr_from = "config" if cfg.threshold is not None else "default"
        log.info("annotate: template %s, k=%d, threshold %.4f (%s); scoring %d docs", template, len(shots), thr,
                 thr_from, len(docs))
        t0 = time.perf_counter()
        vs = _score(client, cfg, template, docs, shots)
        seconds = time.perf_counter() - t0
    finally:
        client.close()

    out_rows = []
    for d, v in zip(docs, vs):
        row = {"id": d["id"], "text": d["text"], "label": _label(v, thr),
               "p_yes": None if v.p_yes is None else round(v.p_yes, 6), "method": v.method, "cached": v.cached}
        if v.method == "text":
            row["reply"] = (v.reply or "")[:100]
        for key in ("gold", "source"):
            if key in d:
                row[key] = d[key]
        out_rows.append(row)
    _write_labels(run_dir / "labels.jsonl", out_rows)

    methods: dict[str, int] = {}
    for v in vs:
        methods[v.method] = methods.get(v.method, 0) + 1
    labelled = [r for r in out_rows if r["label"] is not None]
    res = dict(sampled=len(docs), labelled=len(labelled), share_labelled=round(len(labelled) / max(len(docs), 1), 4),
               positives=sum(r["label"] == 1 for r in labelled),
               unparseable=sum(v.method == "text" and v.error is None and v.text_label is None for v in vs),
               llm_errors=sum(v.error is not None for v in vs), methods=methods, template=template,
               k_shot=len(shots), threshold=round(float(thr), 6), threshold_from=thr_from,
               dev={"size": len(dev), "shots": len(shots), "tuned_on": len(tune), "templates": dev_report},
               labels=str(run_dir / "labels.jsonl"), docs_per_s=round(len(docs) / max(seconds, 1e-9), 3),
               llm_stats=dict(client.stats), engine=client.engine, input_rows_read=read["rows_read"])
    judged = [r for r in labelled if "gold" in r]
    if judged:
        y, p = np.array([r["gold"] for r in judged]), np.array([r["label"] for r in judged])
        res["agreement"] = bootstrap_prf(y, p, n_boot=cfg.n_boot, seed=cfg.seed)
        res["confusion"] = confusion(judged, cfg.examples_per_error)
        with_p = [r for r in judged if r["p_yes"] is not None]
        if with_p:
            calib = calibration(np.array([r["gold"] for r in with_p]), np.array([r["p_yes"] for r in with_p]))
            res["calibration"] = calib
            title = f"{cfg.llm.rsplit('/', 1)[-1][-40:]}  template={template[:12]} k={len(shots)}  n={len(with_p)}"
            res["calibration_png"] = str(plot_calibration(calib, thr, run_dir / "calibration.png", title))
    return AnnotateResult(**res)



@planner("corpus.annotate")
def plan(cfg: AnnotateConfig, ctx) -> dict:
    """``finemed plan``: one verdict call per sampled doc (+ the dev set once per candidate template), the
    client's CPU time, a local LLM's forward cost (P(yes) from one next-token step), the sample on disk."""
    available, how = docs_in(cfg.input, ctx)
    sample = min(cfg.sample, available) if available else cfg.sample
    how = how if available else "the config's sample (the input is not countable before the run)"
    templates = len(cfg.templates) if cfg.template == "auto" else 1
    calls = sample + cfg.dev_size * templates
    prompt_tokens = calls * (min(cfg.max_chars, DOC_BYTES) + 300 + cfg.k_shot * cfg.shot_chars) / 4
    est = {"docs": sample, "docs_out": sample, "docs_source": how, "llm_calls": calls, "llm": cfg.llm,
           **cpu(calls * CPU_S["annotate_doc"]), "disk_gib": gib(sample * 7000)}
    if is_remote(cfg.llm):
        est["endpoint_calls"] = calls
        where = "the endpoint's GPU time is not counted here"
    else:
        est.update({k: v for k, v in inference(cfg.llm, ctx, tokens=prompt_tokens,
                                               decode_steps=decode_steps(calls, cfg.batch_size, 1)).items()
                    if k in ("gpu_hours", "memory_gib_per_process", "parameters", "flops", "note")})
        where = "local LLM batched by batch_size"
    est["assumes"] = (f"docs capped at max_chars ({cfg.max_chars}), ~300 B of instructions, 4 B/token; one "
                      f"next-token verdict per call (retries not counted); ~6 ms client CPU per doc; {where}; "
                      f"~7 KB per sampled doc on disk")
    return est
