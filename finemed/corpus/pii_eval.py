"""``finemed corpus pii-eval``: span-level scoring of the de-identifier on GraSCCo-format jsonl.

Recall per gold label: a gold span counts as found when the redacted spans cover all its characters
(whatever label they carry). Precision per predicted label: the share of predicted spans that overlap
some gold span. ``leaks`` counts found gold spans whose string still appears in the redacted text
(must be 0): the text that replaced a found span must not contain the gold string; ``found_strings_elsewhere_ge4chars`` counts found gold strings (≥ 4 chars) that still occur elsewhere in the doc. Writes ``DIR/pii_eval.json``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from finemed.artifacts import atomic_write_json
from finemed.corpus.pii import PiiConfig, redact
from finemed.data.loaders import load_grascco


def _offset_map(text: str, spans, redacted: str) -> dict[int, int]:
    """Original offsets of span boundaries → offsets in the redacted text."""
    out: dict[int, int] = {}
    pos_red, pos_orig = 0, 0
    for sp in spans:
        pos_red += sp.start - pos_orig
        out[sp.start] = pos_red
        placeholder_len = _placeholder_len(redacted, pos_red)
        pos_red += placeholder_len
        pos_orig = sp.end
        out[sp.end] = pos_red
    return out


def _placeholder_len(redacted: str, at: int) -> int:
    end = redacted.find("]", at)
    return end - at + 1 if redacted.startswith("[", at) and end >= 0 else 0


def evaluate(path: Path | str | None = None, cfg: PiiConfig | None = None, miss_examples: int = 5) -> dict:
    docs = load_grascco(path)
    gold_n: dict[str, int] = defaultdict(int)
    gold_found: dict[str, int] = defaultdict(int)
    pred_n: dict[str, int] = defaultdict(int)
    pred_tp: dict[str, int] = defaultdict(int)
    misses: dict[str, list[str]] = defaultdict(list)
    leaks: list[dict] = []
    elsewhere = 0
    for d in docs:
        redacted, spans = redact(d.text, cfg)
        offsets = _offset_map(d.text, spans, redacted)
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
                misses[g.label].append(d.text[max(0, g.start - 30):g.end + 15].replace("\n", "⏎") + f"  <{g.text}>")
        for sp in spans:
            pred_n[sp.label] += 1
            if any(g.start < sp.end and sp.start < g.end for g in d.phi):
                pred_tp[sp.label] += 1
    per_label = {}
    for label in sorted(set(gold_n) | set(pred_n)):
        per_label[label] = {
            "precision": round(pred_tp[label] / pred_n[label], 4) if pred_n[label] else None,
            "recall": round(gold_found[label] / gold_n[label], 4) if gold_n[label] else None,
            "support": gold_n[label], "predicted": pred_n[label],
        }
    tot_g, tot_f = sum(gold_n.values()), sum(gold_found.values())
    tot_p, tot_tp = sum(pred_n.values()), sum(pred_tp.values())
    micro = {"precision": round(tot_tp / tot_p, 4) if tot_p else None,
             "recall": round(tot_f / tot_g, 4) if tot_g else None, "support": tot_g, "predicted": tot_p}
    groups = {}
    for prefix in ("CONTACT_", "NAME_", "LOCATION_"):
        n = sum(v for k, v in gold_n.items() if k.startswith(prefix))
        f = sum(v for k, v in gold_found.items() if k.startswith(prefix))
        groups[prefix + "*"] = {"recall": round(f / n, 4) if n else None, "support": n}
    return {"docs": len(docs), "per_label": per_label, "micro": micro, "groups": groups,
            "leaks": len(leaks), "leak_examples": leaks[:10], "found_strings_elsewhere_ge4chars": elsewhere, "miss_examples": dict(misses),
            "scoring": "gold found = all chars covered by redacted spans (any label); precision = predicted spans overlapping gold"}


def run_pii_eval(input_path: Path | str | None, out: Path, cfg: PiiConfig | None = None) -> dict:
    res = evaluate(input_path, cfg)
    atomic_write_json(Path(out) / "pii_eval.json", res)
    return res
