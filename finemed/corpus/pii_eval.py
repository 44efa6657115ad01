"""Stage ``corpus.pii_eval``: span-level scoring of the de-identifier on GraSCCo, on a fixed dev/test split.

The 42 GraSCCo letters are split ONCE by a seeded hash of the doc id into a dev half (for rule work) and a
test half (the headline numbers); both id lists are recorded in ``pii_eval.json``.

Recall per gold label: a gold span counts as found when the redacted spans cover all its characters
(whatever label they carry). Precision per predicted label: the share of predicted spans that overlap
some gold span. ``leaks`` counts found gold spans whose string still appears in the redacted text at the
place of the span (must be 0); ``found_strings_elsewhere_ge4chars`` counts found gold strings (≥ 4 chars)
that still occur elsewhere in the doc.

Two clinical negative controls (PHI-free text, bundled in ``finemed/corpus/pii_data/``):
``clinical_untouched`` is the share of negative sentences the de-identifier leaves byte-identical (the
changed ones are listed), and the same-surname letters ("Frau Dr. Leber", "Herr Kopf", …) count the organ
words of their bodies before and after redaction (``organ_words_lost`` must be 0).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import StageConfig
from finemed.core.logs import get_logger, progress
from finemed.core.plan_estimates import cpu
from finemed.core.stages import StageResult, planner, stage
from finemed.corpus.pii import PiiConfig, redact
from finemed.corpus.pii_lexicon import letter_text, load_negatives, load_surname_letters
from finemed.data.loaders import GrasccoDoc, load_grascco

log = get_logger(__name__)
SPLIT_SEED = 20240
GROUPS = ("CONTACT_", "NAME_", "LOCATION_")
HONORIFIC_BEFORE = re.compile(r"(?:Herrn?|Frau|Dr\.|Prof\.)[ \t]+$")  # "Frau Blase": a name, not an organ


class PiiEvalConfig(StageConfig):
    input: str | None = None  # GraSCCo jsonl; None: the bundled one
    split_seed: int = SPLIT_SEED
    negatives: str | None = None  # negative-control sentences (.json/.txt); None: bundled
    surname_letters: str | None = None  # same-surname letters (.json); None: bundled
    miss_examples: int = 5
    pii: PiiConfig = Field(default_factory=PiiConfig)


class LabelScore(BaseModel):
    precision: float | None
    recall: float | None
    support: int
    predicted: int


class GroupScore(BaseModel):
    recall: float | None
    support: int


class HalfScore(BaseModel):
    docs: int
    per_label: dict[str, LabelScore]
    groups: dict[str, GroupScore]
    micro: LabelScore
    leaks: int


class PiiEvalResult(StageResult):
    key_metric: ClassVar[str] = "test.micro.recall"
    split_seed: int
    dev_ids: list[str]
    test_ids: list[str]
    dev: HalfScore
    test: HalfScore
    clinical_untouched: float
    negatives: int
    changed_negatives: list[dict[str, str]]
    organ_words_before: int
    organ_words_after: int
    organ_words_lost: int


def split_ids(ids: list[str], seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """Deterministic dev/test halves: ids sorted by ``sha256(seed:id)``, the first half is dev."""
    order = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def _offset_map(spans, redacted: str) -> dict[int, int]:
    """Original offsets of span boundaries → offsets in the redacted text."""
    out: dict[int, int] = {}
    pos_red, pos_orig = 0, 0
    for sp in spans:
        pos_red += sp.start - pos_orig
        out[sp.start] = pos_red
        end = redacted.find("]", pos_red)
        pos_red += end - pos_red + 1 if redacted.startswith("[", pos_red) and end >= 0 else 0
        pos_orig = sp.end
        out[sp.end] = pos_red
    return out


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def score(docs: list[GrasccoDoc], cfg: PiiConfig | None = None, miss_examples: int = 5,
          desc: str = "pii eval") -> dict:
    """Per-label/group/micro precision and recall, leaks and miss examples of ``redact`` on ``docs``."""
    gold_n: dict[str, int] = defaultdict(int)
    gold_found: dict[str, int] = defaultdict(int)
    pred_n: dict[str, int] = defaultdict(int)
    pred_tp: dict[str, int] = defaultdict(int)
    misses: dict[str, list[str]] = defaultdict(list)
    false_pos: dict[str, list[str]] = defaultdict(list)
    leaks: list[dict] = []
    elsewhere = 0
    for d in progress(docs, desc, total=len(docs)):
        redacted, spans = redact(d.text, cfg)
        offsets = _offset_map(spans, redacted)
        covered = bytearray(len(d.text))
        for sp in spans:
            covered[sp.start:sp.end] = b"\x01" * (sp.end - sp.start)
        for g in d.phi:
            gold_n[g.label] += 1
            if g.end > g.start and all(covered[g.start:g.end]):
                gold_found[g.label] += 1
                first = next(sp for sp in spans if sp.end > g.start)
                last = [sp for sp in spans if sp.start < g.end][-1]
                a, b = offsets[first.start], offsets[last.end]
                if g.text.strip() and g.text in redacted[a:b]:
                    leaks.append({"doc": d.id, "label": g.label, "text": g.text})
                elif len(g.text) >= 4 and g.text in redacted:
                    elsewhere += 1
            elif len(misses[g.label]) < miss_examples:
                ctx = d.text[max(0, g.start - 30):g.end + 15].replace("\n", "⏎")
                misses[g.label].append(f"{d.id}: {ctx}  <{g.text}>")
        for sp in spans:
            pred_n[sp.label] += 1
            if any(g.start < sp.end and sp.start < g.end for g in d.phi):
                pred_tp[sp.label] += 1
            elif len(false_pos[sp.label]) < miss_examples:
                ctx = d.text[max(0, sp.start - 25):sp.end + 15].replace("\n", "⏎")
                false_pos[sp.label].append(f"{d.id}: {ctx}  <{d.text[sp.start:sp.end]}>")
    per_label = {label: {"precision": _ratio(pred_tp[label], pred_n[label]),
                         "recall": _ratio(gold_found[label], gold_n[label]),
                         "support": gold_n[label], "predicted": pred_n[label]}
                 for label in sorted(set(gold_n) | set(pred_n))}
    tot_p, tot_tp = sum(pred_n.values()), sum(pred_tp.values())
    micro = {"precision": _ratio(tot_tp, tot_p), "recall": _ratio(sum(gold_found.values()), sum(gold_n.values())),
             "support": sum(gold_n.values()), "predicted": tot_p}
    groups = {}
    for prefix in GROUPS:
        n = sum(v for k, v in gold_n.items() if k.startswith(prefix))
        f = sum(v for k, v in gold_found.items() if k.startswith(prefix))
        groups[prefix + "*"] = {"recall": _ratio(f, n), "support": n}
    return {"docs": len(docs), "per_label": per_label, "groups": groups, "micro": micro,
            "leaks": len(leaks), "leak_examples": leaks[:10], "found_strings_elsewhere_ge4chars": elsewhere,
            "miss_examples": dict(misses), "false_positive_examples": dict(false_pos)}


def negative_control(cfg: PiiConfig | None = None, path: str | None = None) -> dict:
    """``clinical_untouched``: share of PHI-free clinical sentences left byte-identical; the changed ones."""
    sents = load_negatives(path)
    changed = []
    for s in sents:
        red, _ = redact(s, cfg)
        if red != s:
            changed.append({"text": s, "redacted": red})
    return {"negatives": len(sents), "clinical_untouched": _ratio(len(sents) - len(changed), len(sents)) or 0.0,
            "changed_negatives": changed}


def organ_words(cfg: PiiConfig | None = None, path: str | None = None) -> dict:
    """Organ-word tokens in the bodies of the same-surname letters, before and after redaction."""
    before = after = 0
    for letter in load_surname_letters(path):
        text, words = letter_text(letter), set(letter["organs"])
        _, spans = redact(text, cfg)
        start = text.index(letter["body"])
        for m in re.finditer(r"[A-Za-zÄÖÜäöüß]+", letter["body"]):
            if m.group() in words and not HONORIFIC_BEFORE.search(letter["body"][:m.start()]):
                before += 1
                s, e = start + m.start(), start + m.end()
                after += not any(sp.start < e and s < sp.end for sp in spans)
    return {"organ_words_before": before, "organ_words_after": after, "organ_words_lost": before - after}


@stage("corpus.pii_eval")
def run(cfg: PiiEvalConfig, run_dir: Path) -> PiiEvalResult:
    docs = load_grascco(cfg.input)
    dev_ids, test_ids = split_ids([d.id for d in docs], cfg.split_seed)
    by_id = {d.id: d for d in docs}
    dev = score([by_id[i] for i in dev_ids], cfg.pii, cfg.miss_examples, "pii eval (dev)")
    test = score([by_id[i] for i in test_ids], cfg.pii, cfg.miss_examples, "pii eval (test)")
    neg = negative_control(cfg.pii, cfg.negatives)
    organs = organ_words(cfg.pii, cfg.surname_letters)
    detail = {"split_seed": cfg.split_seed, "dev_ids": dev_ids, "test_ids": test_ids, "dev": dev, "test": test,
              **neg, **organs,
              "scoring": "gold found = all chars covered by redacted spans (any label); "
                         "precision = predicted spans overlapping gold"}
    atomic_write_json(Path(run_dir) / "pii_eval.json", detail)
    log.info("pii eval: test micro recall %s precision %s, clinical_untouched %.4f, organ words lost %d",
             test["micro"]["recall"], test["micro"]["precision"], neg["clinical_untouched"],
             organs["organ_words_lost"])
    keys = set(HalfScore.model_fields)
    return PiiEvalResult(split_seed=cfg.split_seed, dev_ids=dev_ids, test_ids=test_ids,
                         dev={k: dev[k] for k in keys}, test={k: test[k] for k in keys}, **neg, **organs)


@planner("corpus.pii_eval")
def plan(cfg: PiiEvalConfig, ctx) -> dict:
    """``finemed plan``: regex/lexicon redaction of GraSCCo and the negative controls: seconds of CPU."""
    return {**cpu(30.0), "disk_gib": 0.0,
            "assumes": "the bundled GraSCCo (~60 case reports) or a file of similar size; no model"}
