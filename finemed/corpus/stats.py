"""Stats of a corpus build: the funnel (one row per dropping block) with reasons, totals, dropped samples, a PNG.

Per-block counts come from datatrove's own merged ``logs/<stage>/stats.json``; totals (docs, words,
tokens with a named tokenizer) are measured on the written output. When the input carries the dev
input's ``source``/``medical`` columns, survival per source and of the medical positives is added.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from finemed.core.artifacts import atomic_path, read_json
from finemed.data.registry import cache_dir


def _num(v) -> float:
    if isinstance(v, dict):
        return float(v.get("total", v.get("n", 0)))
    return float(v) if isinstance(v, (int, float)) else 0.0


def merge_task_stats(run_dir: Path, stage: str) -> Path | None:
    """Sum a stage's per-task ``logs/<stage>/stats/<rank>.json`` into ``logs/<stage>/stats.json`` (datatrove's
    ``PipelineStats``, as its ``merge_stats`` tool): what the local executor writes at its end, done after the
    fact for Slurm arrays or partial reruns. None when the stage left no task stats."""
    tasks = sorted((run_dir / "logs" / stage / "stats").glob("*.json"))
    if not tasks:
        return None
    from datatrove.utils.stats import PipelineStats

    merged = sum((PipelineStats.from_json(read_json(f)) for f in tasks), start=PipelineStats())
    out = run_dir / "logs" / stage / "stats.json"
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        merged.save_to_disk(fh)
    return out


def block_stats(run_dir: Path, stage: str) -> list[dict]:
    f = run_dir / "logs" / stage / "stats.json"
    if not f.is_file():
        return []
    out = []
    for entry in read_json(f):
        st = {k: _num(v) for k, v in (entry.get("stats") or {}).items()}
        reasons = {k[len("dropped_"):]: int(v) for k, v in st.items() if k.startswith("dropped_")}
        skipped = {k[len("skipped_"):]: int(v) for k, v in st.items() if k.startswith("skipped_")}
        rescued = {k[len("rescued_"):]: int(v) for k, v in st.items() if k.startswith("rescued_")}
        item = {"stage": stage, "block": entry.get("name", "?"), "in": int(st.get("total", 0)),
                "kept": int(st.get("forwarded", int(st.get("total", 0)) - int(st.get("dropped", 0)))),
                "dropped": int(st.get("dropped", 0))}  # a filter that forwards nothing has no "forwarded" stat
        if "changed" in st:  # docs kept but edited (decont's cuts)
            item.update(changed=int(st["changed"]), cut_chars=int(st.get("cut_chars", 0)))
        if "documents" in st:  # readers count docs read
            item.update({"in": int(st["documents"]), "kept": int(st["documents"]), "dropped": 0})
        for extra, val in (("reasons", reasons), ("skipped", skipped), ("rescued", rescued)):
            if val:
                item[extra] = val
        out.append(item)
    return out


def tokenizer_path(name: str | None) -> Path | None:
    """A tokenizer.json: a path, a dir holding one, ``smollm2`` (the cached model) or a bundled name."""
    if not name:
        return None
    p = Path(name).expanduser()
    cands = [p, p / "tokenizer.json"]
    if name == "smollm2":
        cands.append(cache_dir() / "models" / "smollm2" / "tokenizer.json")
        cands.append(Path("~/.cache/finemed/models/smollm2/tokenizer.json").expanduser())
    return next((c for c in cands if c.is_file()), None)


def output_totals(out_dir: Path, tokenizer: str | None) -> dict:
    import pyarrow.parquet as pq

    files = sorted(out_dir.glob("*.parquet"))
    docs = words = chars = 0
    texts_for_tokens: list[str] = []
    by_source: Counter = Counter()
    tok_file = tokenizer_path(tokenizer)
    tok = None
    tokens = 0
    if tok_file:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tok_file))
    for f in files:
        t = pq.read_table(f, columns=["text", "meta"])
        for text, meta in zip(t.column("text").to_pylist(), t.column("meta").to_pylist()):
            docs += 1
            words += len(text.split())
            chars += len(text)
            src = json.loads(meta or "{}").get("source")
            if src is not None:
                by_source[src] += 1
            if tok is not None:
                texts_for_tokens.append(text)
                if len(texts_for_tokens) >= 256:
                    tokens += sum(len(e.ids) for e in tok.encode_batch(texts_for_tokens, add_special_tokens=False))
                    texts_for_tokens = []
    if tok is not None and texts_for_tokens:
        tokens += sum(len(e.ids) for e in tok.encode_batch(texts_for_tokens, add_special_tokens=False))
    return {"docs": docs, "words": words, "chars": chars, "tokens": tokens if tok is not None else None,
            "tokenizer": str(tok_file) if tok_file else None, "files": len(files), "_by_source": by_source}


def source_survival(input_rows: list[dict], kept_by_source: Counter) -> dict:
    """Kept/in per source and per class: ``medical``, ``german_other``, ``non_german``, and ``contaminated``
    for sources the dev input marks as planted evaluation items (``contaminated=1``), which should all go."""
    n_in: Counter = Counter(r["source"] for r in input_rows if r.get("source") is not None)
    per = {s: {"in": n, "kept": kept_by_source.get(s, 0), "rate": round(kept_by_source.get(s, 0) / n, 4)}
           for s, n in sorted(n_in.items())}
    cls = defaultdict(lambda: [0, 0])
    names = {1: "medical", 0: "german_other", -1: "non_german"}
    label = {r["source"]: "contaminated" if r.get("contaminated") else names.get(r.get("medical"), "?")
             for r in input_rows if r.get("source") is not None}
    for s, v in per.items():
        cls[label.get(s)][0] += v["in"]
        cls[label.get(s)][1] += v["kept"]
    per_class = {k: {"in": a, "kept": b, "rate": round(b / a, 4) if a else None} for k, (a, b) in cls.items()}
    return {"per_source": per, "per_class": per_class}


def dropped_samples(run_dir: Path, per_reason: int = 5) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for f in sorted((run_dir / "work" / "dropped").rglob("*.jsonl")):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                md = row.get("metadata") or {}
                reason = md.get("filter_reason") or f.parent.name
                if len(out[reason]) < per_reason:
                    out[reason].append({"id": row.get("id"), "source": md.get("source"),
                                        "domain_score": md.get("domain_score"), "text": row.get("text", "")[:500]})
    return dict(out)


DROPPING_TYPES = ("FILTER", "DECONT")  # datatrove step types that drop docs; MinHash's "stage 4" filter too


def _funnel_name(block: str) -> str:
    if "MinHash stage 4" in block:
        return "minhash dedup"
    return block.split(": ", 1)[-1]


def funnel(blocks: list[dict]) -> list[dict]:
    """One row per block that drops docs, under its own name and in pipeline order, after a ``read`` row.

    A row: ``block`` (short name), ``stage``, ``in``, ``dropped``, ``out`` (= ``kept``, kept for older readers),
    ``reasons`` (drop reason -> docs; may be empty) and, for blocks that edit docs, ``changed``.
    """
    rows = []
    for b in blocks:
        kind = b["block"].split(": ", 1)[0]
        if b["stage"] == "filter" and "READER" in kind:
            name = "read"
        elif b["stage"] in ("filter", "final") and (any(t in kind for t in DROPPING_TYPES)
                                                    or "MinHash stage 4" in b["block"] or b.get("dropped")):
            name = _funnel_name(b["block"])
        else:
            continue
        row = {"block": name, "stage": b["stage"], "in": b["in"], "dropped": b["dropped"], "out": b["kept"],
               "kept": b["kept"], "reasons": dict(b.get("reasons") or {})}
        if "changed" in b:
            row["changed"] = b["changed"]
        rows.append(row)
    return rows


def decont_counts(blocks: list[dict]) -> dict | None:
    """Decontamination's two counts for ``stats.json``: docs dropped, and docs kept but changed by cuts."""
    rows = [b for b in blocks if "DECONT" in b["block"].split(": ", 1)[0]]
    if not rows:
        return None
    return {"in": sum(b["in"] for b in rows), "dropped": sum(b["dropped"] for b in rows),
            "changed": sum(b.get("changed", 0) for b in rows), "cut_chars": sum(b.get("cut_chars", 0) for b in rows)}


def plot_funnel(steps: list[tuple[str, int]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(steps) + 1.2))
    names = [s[0].encode("ascii", "ignore").decode().strip() or s[0] for s in steps][::-1]
    vals = [s[1] for s in steps][::-1]
    ax.barh(names, vals, color="#3b7dd8")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v}", va="center", fontsize=8)
    ax.set_xlabel("docs kept after block")
    ax.set_title("corpus funnel", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
