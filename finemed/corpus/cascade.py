"""Stage ``corpus.cascade``: a fastText prefilter with a recall-oriented threshold, the transformer on survivors.

The prefilter threshold is the highest one that keeps ``prefilter_recall`` of the positives of the
valid split. Docs under it score 0; the rest get the transformer's score, compared against the
transformer's own tuned threshold. Reported on the test split: the share of docs that reach the
transformer and the cascade's recall relative to transformer-only. Writes ``classifier.json``
(kind ``cascade``), usable as ``classifier`` of ``corpus.build``; the scorer is
:class:`finemed.corpus.scorers.CascadeScorer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import StageConfig
from finemed.core.plan_estimates import earlier
from finemed.core.runtime import Device, DType
from finemed.core.stages import StageResult, planner, stage
from finemed.corpus.classifier_eval import Prf, prf_at, recall_threshold, split_by_source
from finemed.corpus.corpus_plan import docs_in, encoder_gpu
from finemed.corpus.rows import read_rows
from finemed.corpus.sample_input import default_dev_input
from finemed.corpus.scorers import CLASSIFIER_JSON, CascadeScorer, classifier_threshold, load_scorer


class CascadeConfig(StageConfig):
    fasttext: str  # a fastText train-classifier dir
    transformer: str  # a transformer train-classifier dir
    input: str | None = None  # labelled input for the valid/test splits; None: the dev input
    prefilter_recall: float = Field(0.98, gt=0, le=1)  # recall of the valid positives the prefilter must keep
    label_field: str = "medical"
    seed: int = 0
    device: Device = "auto"
    dtype: DType = "auto"


class CascadeResult(StageResult):
    key_metric: ClassVar[str] = "recall_relative_to_transformer"
    threshold: float
    prefilter_threshold: float
    share_to_transformer: float
    recall_relative_to_transformer: float
    test_cascade: Prf
    test_transformer_only: Prf
    classifier: str


@stage("corpus.cascade")
def run(cfg: CascadeConfig, run_dir: Path) -> CascadeResult:
    source = cfg.input or str(default_dev_input())
    rows = [r for r in read_rows(source) if r.get(cfg.label_field) in (0, 1) and str(r.get("text") or "").strip()]
    sp = split_by_source(rows, seed=cfg.seed)
    ft, tr = load_scorer(cfg.fasttext), load_scorer(cfg.transformer, cfg.device, cfg.dtype)
    yv = np.array([r[cfg.label_field] for r in sp["valid"]])
    t_pre = recall_threshold(yv, ft.score([r["text"] for r in sp["valid"]]), cfg.prefilter_recall)
    t_tr = classifier_threshold(cfg.transformer)
    texts = [r["text"] for r in sp["test"]]
    y = np.array([r[cfg.label_field] for r in sp["test"]])
    tr_only = tr.score(texts, progress="transformer on test")
    cascade = CascadeScorer(cfg.fasttext, cfg.transformer, t_pre, device=cfg.device, dtype=cfg.dtype)
    cs = cascade.score(texts, progress="cascade on test")
    found_tr = (tr_only >= t_tr) & (y == 1)
    found_cs = (cs >= t_tr) & (y == 1)
    out = Path(run_dir)
    res = CascadeResult(threshold=t_tr, prefilter_threshold=t_pre,
                        share_to_transformer=round(cascade.reached / max(1, cascade.seen), 4),
                        recall_relative_to_transformer=round(float(found_cs.sum() / max(1, found_tr.sum())), 4),
                        test_cascade=prf_at(y, cs, t_tr), test_transformer_only=prf_at(y, tr_only, t_tr),
                        classifier=str(out))
    meta = {"kind": "cascade", **res.model_dump(mode="json", exclude={"classifier"}),
            "prefilter_recall_target": cfg.prefilter_recall, "fasttext_dir": str(cfg.fasttext),
            "transformer_dir": str(cfg.transformer)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / CLASSIFIER_JSON, meta)
    return res


@planner("corpus.cascade")
def plan(cfg: CascadeConfig, ctx) -> dict:
    """``finemed plan``: both classifiers score the input's valid/test splits (the transformer on GPU)."""
    docs, how = docs_in(cfg.input, ctx)
    model = (earlier(ctx, cfg.transformer) or {}).get("model", "FacebookAI/xlm-roberta-base")
    max_len = (earlier(ctx, cfg.transformer) or {}).get("max_length", 512)
    return {"docs": docs, "docs_source": how, **encoder_gpu(model, ctx, (docs or 0) * max_len), "disk_gib": 0.0,
            "assumes": f"every doc scored by {model} at {max_len} tokens (an upper bound: the prefilter drops most)"}
