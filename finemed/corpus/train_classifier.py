"""Stage ``corpus.train_classifier``: train the domain classifier, tune its threshold, report P/R/F1.

Labels come from a column of the input (``medical`` in the dev input: 1/0, other values skipped and
counted) or from an ``annotate`` verdict file (``labels.jsonl`` with ``id`` and ``label``). Output dir:
``classifier.json`` (kind, threshold, metrics; written last, so its presence marks a complete dir), the
model (``model.bin`` or ``model/``), ``pr_curve.png`` and ``test_scores.npz``. The transformer kind trains
and scores on ``device``/``dtype`` (:mod:`finemed.core.runtime`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from finemed.core.artifacts import atomic_write_json, config_hash, fingerprint, read_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import CPU_S, cpu, earlier, gib
from finemed.core.runtime import Device, DType
from finemed.core.stages import StageResult, planner, stage
from finemed.corpus.classifier_eval import Prf, plot_pr_curve, prf_at, split_by_source, tune_threshold
from finemed.corpus.classifier_fasttext import FastTextParams, FastTextScorer, train_fasttext
from finemed.corpus.corpus_plan import docs_in, encoder_gpu
from finemed.corpus.registry import heavy
from finemed.corpus.rows import read_rows
from finemed.corpus.sample_input import default_dev_input
from finemed.corpus.scorers import CLASSIFIER_JSON
from finemed.data.registry import cache_dir

log = get_logger(__name__)


class TrainClassifierConfig(StageConfig):
    input: str | None = None  # labelled parquet/jsonl file or dir; None: the dev input
    labels: str | None = None  # annotate output (jsonl: id, label); default: the label_field column
    label_field: str = "medical"
    # the stated rule for LLM labels: train on them only when their agreement with the gold column (F1, from the
    # annotate stage's metrics.json beside `labels`) reaches this; else train on gold and say so in labels_from
    min_label_f1: float | None = Field(None, ge=0, le=1)
    kind: Literal["fasttext", "transformer"] = "fasttext"
    target_precision: float = Field(0.95, gt=0, le=1)
    seed: int = 0
    fasttext: FastTextParams = Field(default_factory=FastTextParams)
    base_model: str = "FacebookAI/xlm-roberta-base"  # transformer kind; a tiny model dir in tests
    epochs: float = 2.0
    max_length: int = 256
    batch_size: int = 16
    learning_rate: float = 3e-5
    device: Device = "auto"
    dtype: DType = "auto"


class TrainClassifierResult(StageResult):
    key_metric: ClassVar[str] = "test.f1"
    kind: str
    threshold: float
    target_precision: float
    valid: Prf
    test: Prf
    test_at_half: Prf  # the test split at threshold 0.5
    split: dict[str, int]
    skipped: dict[str, int]
    labels_from: str
    classifier: str  # the classifier dir (classifier.json + model)
    # trained on external (e.g. LLM) labels: P/R/F1 against the input's gold column on every doc that had no
    # external label (never trained or tuned on), so the cost of noisy labels shows
    gold_test: Prf | None = None
    gold_test_docs: int = 0


def labelled_rows(cfg: TrainClassifierConfig) -> tuple[list[dict], dict[str, int], list[dict]]:
    """Rows with a 0/1 label; ``skipped`` counts the rest by reason; with external ``labels``, also the rows that
    have none but carry a gold ``label_field`` (the out-of-sample gold check)."""
    source = cfg.input or str(default_dev_input())
    rows = list(read_rows(source, columns=["id", "text", "source", "group", cfg.label_field]))  # not all columns
    skipped = {"no_label": 0, "empty_text": 0}
    ext: dict[str, int] = {}
    if cfg.labels:
        for r in read_rows(cfg.labels):
            if r.get("label") in (0, 1, True, False):
                ext[str(r["id"])] = int(r["label"])
    out, gold_only = [], []
    for r in rows:
        y = ext.get(str(r.get("id"))) if cfg.labels else r.get(cfg.label_field)
        if y not in (0, 1, True, False):
            skipped["no_label"] += 1
            if cfg.labels and r.get(cfg.label_field) in (0, 1, True, False) and str(r.get("text") or "").strip():
                gold_only.append({**r, "label": int(r[cfg.label_field])})
            continue
        if not str(r.get("text") or "").strip():
            skipped["empty_text"] += 1
            continue
        out.append({**r, "label": int(y)})
    if len({r["label"] for r in out}) < 2:
        raise FinemedError(f"{cfg.labels or source}: need both labels 0 and 1 in {cfg.label_field!r}; "
                           f"got {len(out)} labelled rows")
    return out, skipped, gold_only


def _train_and_score(cfg: TrainClassifierConfig, splits: dict, out: Path):
    texts = {k: [r["text"] for r in v] for k, v in splits.items()}
    ys = {k: np.array([r["label"] for r in v]) for k, v in splits.items()}
    if cfg.kind == "fasttext":
        train_fasttext(texts["train"], list(ys["train"]), out / "model.bin", cfg.fasttext)
        scorer = FastTextScorer(out / "model.bin", cfg.fasttext.max_chars)
        extra = {"max_chars": cfg.fasttext.max_chars}
    else:
        transformer = heavy("classifier_transformer")  # torch: imported only for this kind
        transformer.train_transformer(texts["train"], list(ys["train"]), out / "model", cfg)
        scorer = transformer.TransformerScorer(out / "model", max_length=cfg.max_length, batch_size=cfg.batch_size,
                                               device=cfg.device, dtype=cfg.dtype)
        extra = {"max_length": cfg.max_length, "base_model": cfg.base_model}
    scores = {k: scorer.score(texts[k], progress=f"scoring {k}") for k in ("valid", "test", "gold") if k in texts}
    return ys, scores, extra


def apply_label_rule(cfg: TrainClassifierConfig) -> tuple[TrainClassifierConfig, str | None]:
    """``min_label_f1``: keep the external labels when the annotate stage's F1 against gold reaches it, else gold."""
    if cfg.labels is None or cfg.min_label_f1 is None:
        return cfg, None
    metrics = Path(cfg.labels).parent / "metrics.json"
    f1 = ((read_json(metrics).get("agreement") or {}).get("f1") or {}).get("value") if metrics.is_file() else None
    if f1 is not None and f1 >= cfg.min_label_f1:
        return cfg, f"LLM labels (F1 {f1:.3f} >= {cfg.min_label_f1} against gold)"
    why = f"F1 {f1:.3f} < {cfg.min_label_f1}" if f1 is not None else f"no agreement in {metrics}"
    log.warning("LLM labels not used (%s): training on the gold column %s instead", why, cfg.label_field)
    return cfg.model_copy(update={"labels": None}), f"gold column {cfg.label_field} (LLM labels rejected: {why})"


def train(cfg: TrainClassifierConfig, out: Path) -> TrainClassifierResult:
    """Train into ``out`` (no manifest): the stage body, also used for the cached default classifier."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, rule = apply_label_rule(cfg)
    rows, skipped, gold_only = labelled_rows(cfg)
    splits = split_by_source(rows, seed=cfg.seed)
    if gold_only:
        splits["gold"] = gold_only
    log.info("training a %s classifier on %d docs (valid %d, test %d)", cfg.kind, len(splits["train"]),
             len(splits["valid"]), len(splits["test"]))
    ys, scores, extra = _train_and_score(cfg, splits, out)
    thr = tune_threshold(ys["valid"], scores["valid"], cfg.target_precision)
    res = TrainClassifierResult(
        kind=cfg.kind, threshold=thr, target_precision=cfg.target_precision,
        valid=prf_at(ys["valid"], scores["valid"], thr), test=prf_at(ys["test"], scores["test"], thr),
        test_at_half=prf_at(ys["test"], scores["test"], 0.5), split={k: len(v) for k, v in splits.items()},
        skipped=skipped, labels_from=rule or cfg.labels or f"column {cfg.label_field}", classifier=str(out),
        gold_test=prf_at(ys["gold"], scores["gold"], thr) if gold_only else None, gold_test_docs=len(gold_only))
    plot_pr_curve({cfg.kind: (ys["test"], scores["test"])}, {cfg.kind: res.test}, out / "pr_curve.png")
    np.savez(out / "test_scores.npz", y=ys["test"], s=scores["test"],
             ids=np.array([str(r["id"]) for r in splits["test"]]))
    meta = {**res.model_dump(mode="json", exclude={"classifier"}), **extra,
            "split_method": "stratified by source, grouped by near-dup group"}
    atomic_write_json(out / CLASSIFIER_JSON, meta)  # last: its presence marks a complete classifier dir
    return res


@stage("corpus.train_classifier")
def run(cfg: TrainClassifierConfig, run_dir: Path) -> TrainClassifierResult:
    return train(cfg, run_dir)


def cached_default_classifier(dev_input: Path | None = None) -> Path:
    """The default fastText classifier trained on the dev input, cached by the input's fingerprint."""
    dev_input = Path(dev_input) if dev_input else default_dev_input()
    cfg = TrainClassifierConfig(input=str(dev_input))
    key = f"{fingerprint(dev_input)}-{config_hash(cfg.model_copy(update={'input': ''}))}"
    d = cache_dir() / "corpus" / f"fasttext-{key}"
    if (d / CLASSIFIER_JSON).is_file() and read_json(d / CLASSIFIER_JSON).get("kind") == "fasttext":
        return d
    train(cfg, d)
    return d


@planner("corpus.train_classifier")
def plan(cfg: TrainClassifierConfig, ctx) -> dict:
    """``finemed plan``: fastText on CPU (measured rate) or the transformer's fine-tuning FLOPs on GPU."""
    labels = earlier(ctx, cfg.labels) if cfg.labels else None
    docs, how = (labels.get("docs"), "the annotate stage's sample") if labels else docs_in(cfg.input, ctx)
    if labels is None and cfg.input and earlier(ctx, cfg.input):
        docs, how = earlier(ctx, cfg.input).get("docs"), "the earlier stage's labels"
    docs = docs or 0
    est = {"docs": docs, "docs_source": how, "classifier_kind": cfg.kind, "max_length": cfg.max_length}
    if cfg.kind == "fasttext":
        return {**est, **cpu(docs * CPU_S["fasttext_doc"]), "disk_gib": gib(docs * 200 + 100e6),
                "assumes": "fastText at ~1.5 min per 260k docs on one core; the model ~100 MB"}
    tokens = docs * cfg.max_length * cfg.epochs
    gpu = encoder_gpu(cfg.base_model, ctx, tokens, train=True)
    return {**est, "model": cfg.base_model, "tokens": tokens, **gpu,
            "disk_gib": gib(2 * gpu["classifier_parameters"] * 4),
            "assumes": f"every doc fills max_length ({cfg.max_length}) for {cfg.epochs} epochs; 6P FLOPs per "
                       "token; fp32 weights + AdamW (16 B/parameter); the model and one checkpoint on disk"}
