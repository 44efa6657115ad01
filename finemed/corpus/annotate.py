"""``finemed corpus annotate``: zero-shot medical/not-medical labels from an LLM (DeFineMed's labeller).

Docs are sampled from the input (seeded), each is put into a German or English prompt template, and
the shared :class:`finemed.llm.LLMClient` labels them (batched, retried, SQLite-cached, so a rerun
never relabels a doc). A reply is parsed as 1 (``ja``/``yes``/``medizinisch``), 0 (``nein``/``no``)
or unparseable (counted, no label). With a human-labelled file (``id``, ``label``) it reports the
judge's P/R/F1 with a bootstrap 95% CI. Writes ``labels.jsonl`` and ``annotate.json``.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
from pydantic import Field

from finemed.artifacts import atomic_path, atomic_write_json
from finemed.config import StageConfig

TEMPLATES = {
    "de": ("Du bist ein sorgfältiger Annotator. Entscheide, ob der folgende Text medizinischen Inhalt hat "
           "(Krankheiten, Diagnostik, Therapie, Medikamente, Gesundheitsversorgung, klinische Dokumente).\n\n"
           "Text:\n\"\"\"\n{text}\n\"\"\"\n\nAntworte nur mit \"Ja\" oder \"Nein\"."),
    "en": ("You are a careful annotator. Decide whether the following German text is medical "
           "(diseases, diagnostics, therapy, drugs, health care, clinical documents).\n\n"
           "Text:\n\"\"\"\n{text}\n\"\"\"\n\nAnswer only \"Yes\" or \"No\"."),
}
_YES = re.compile(r"^\W*(ja|yes|medizinisch|medical)\b", re.I)
_NO = re.compile(r"^\W*(nein|no|nicht medizinisch|not medical)\b", re.I)


class AnnotateConfig(StageConfig):
    input: str
    llm: str  # "http://127.0.0.1:PORT/v1#MODEL" or "local:PATH_OR_NAME"
    sample: int = Field(200, gt=0)
    seed: int = 0
    template: str = "de"  # a key of TEMPLATES or a custom template with {text}
    max_chars: int = 2000
    concurrency: int = 8
    max_tokens: int = 8
    human_labels: str | None = None  # jsonl with id, label (0/1)
    label_field: str | None = None  # or a column of the input holding gold labels (e.g. "medical")


def parse_verdict(text: str | None) -> int | None:
    if not text:
        return None
    if _NO.search(text):
        return 0
    if _YES.search(text):
        return 1
    return None


def bootstrap_prf(y: np.ndarray, p: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    def prf(yy, pp):
        tp = int(((pp == 1) & (yy == 1)).sum())
        fp = int(((pp == 1) & (yy == 0)).sum())
        fn = int(((pp == 0) & (yy == 1)).sum())
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        return pr, rc, (2 * pr * rc / (pr + rc) if pr + rc else 0.0)

    point = prf(y, p)
    rng = np.random.default_rng(seed)
    boots = np.array([prf(y[idx], p[idx]) for idx in (rng.integers(0, len(y), len(y)) for _ in range(n_boot))])
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    return {name: {"value": round(point[i], 4), "ci95": [round(lo[i], 4), round(hi[i], 4)]}
            for i, name in enumerate(("precision", "recall", "f1"))} | {"n": int(len(y))}


def annotate(cfg: AnnotateConfig, out: Path, cache_path: Path | None = None) -> dict:
    from finemed.corpus.readers import read_rows
    from finemed.llm import LLMClient

    rows = [r for r in read_rows(cfg.input) if str(r.get("text") or "").strip()]
    rows = random.Random(cfg.seed).sample(rows, min(cfg.sample, len(rows)))
    template = TEMPLATES.get(cfg.template, cfg.template)
    messages = [[{"role": "user", "content": template.format(text=r["text"][: cfg.max_chars])}] for r in rows]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    client = LLMClient(cfg.llm, cache_path=cache_path or out / "verdicts.sqlite", concurrency=cfg.concurrency,
                       max_tokens=cfg.max_tokens, temperature=0.0)
    replies = client.chat(messages, cache_tag=f"annotate:{cfg.template[:40]}")
    labels = []
    skipped = {"llm_error": 0, "unparseable": 0}
    for r, rep in zip(rows, replies):
        y = parse_verdict(rep.text)
        if rep.error:
            skipped["llm_error"] += 1
        elif y is None:
            skipped["unparseable"] += 1
        labels.append({"id": str(r["id"]), "label": y, "reply": (rep.text or "")[:100], "cached": rep.cached})
    with atomic_path(out / "labels.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in labels), encoding="utf-8")
    res = {"sampled": len(rows), "labelled": sum(x["label"] is not None for x in labels), "skipped": skipped,
           "positives": sum(x["label"] == 1 for x in labels), "llm_stats": dict(client.stats)}
    gold = {}
    if cfg.human_labels:
        gold = {str(g["id"]): int(g["label"]) for g in read_rows(cfg.human_labels) if g.get("label") in (0, 1)}
    elif cfg.label_field:
        gold = {str(r["id"]): int(r[cfg.label_field]) for r in rows if r.get(cfg.label_field) in (0, 1)}
    pairs = [(gold[x["id"]], x["label"]) for x in labels if x["id"] in gold and x["label"] is not None]
    if pairs:
        y, p = (np.array(v) for v in zip(*pairs))
        res["judge_vs_gold"] = bootstrap_prf(y, p)
    atomic_write_json(out / "annotate.json", res)
    return res
