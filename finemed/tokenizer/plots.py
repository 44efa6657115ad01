"""PNG plots of the tokenizer lab (matplotlib, Agg): fertility vs vocab size, parity bars, the cost table.

Each writes atomically (tmp file, then rename) and returns the path.
"""

from __future__ import annotations

from pathlib import Path

from finemed.core.plotting import pyplot, save_png


def _save(fig, path: Path) -> Path:
    return save_png(fig, path)


def plot_fertility_vs_vocab(metrics: dict, info: dict[str, dict], path: Path) -> Path:
    """One panel per language; a line per (corpus, algorithm, library) over vocab size.

    ``info[name]`` holds ``corpus``, ``algorithm``, ``library`` and ``vocab_size`` (a trained tokenizer's
    ``finemed_tokenizer.json``); tokenizers without it are drawn as single labelled points.
    """
    langs = sorted({lang for per in metrics.values() for lang in per})
    plt = pyplot()
    fig, axes = plt.subplots(1, len(langs), figsize=(3.6 * len(langs), 3.4), squeeze=False, sharey=True)
    styles = {"bpe": "-", "unigram": "--"}
    markers = {"hf": "o", "sp": "s"}
    for ax, lang in zip(axes[0], langs):
        series: dict[tuple, list[tuple[int, float]]] = {}
        for name, per in metrics.items():
            if lang not in per:
                continue
            meta = info.get(name)
            if meta and meta.get("algorithm"):
                key = (meta["corpus"], meta["algorithm"], meta["library"])
                series.setdefault(key, []).append((meta["vocab_size"], per[lang]["fertility"]))
            elif meta and meta.get("vocab_size"):
                ax.scatter([meta["vocab_size"]], [per[lang]["fertility"]], s=14, color="grey")
                ax.annotate(name, (meta["vocab_size"], per[lang]["fertility"]), fontsize=6)
        for (corpus, alg, lib), pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], styles.get(alg, "-"), marker=markers.get(lib, "o"),
                    label=f"{corpus} {alg.upper()[:3]}-{lib.upper()}", markersize=4)
        ax.set_xscale("log", base=2)
        ax.set_title(lang, fontsize=9)
        ax.set_xlabel("vocab size", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fertility (tokens / word)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7,
                   bbox_to_anchor=(0.5, -0.2))
    return _save(fig, path)


def plot_parity(metrics: dict, path: Path, key: str = "parity_sum") -> Path:
    """Grouped bars: ``key`` per language (x) for each tokenizer (colour); 1.0 = English parity."""
    names = list(metrics)
    langs = sorted({lang for per in metrics.values() for lang in per})
    width = 0.8 / max(1, len(names))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(langs) + 0.25 * len(names)), 3.6))
    for i, name in enumerate(names):
        vals = [metrics[name].get(lang, {}).get(key) or 0 for lang in langs]
        ax.bar([x + i * width for x in range(len(langs))], vals, width, label=name)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(langs))], langs, fontsize=8)
    ax.set_ylabel(f"{key} (tokens L / tokens eng)")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_cost_table(markdown: str, path: Path, title: str = "") -> Path:
    """Render a markdown table (from :func:`finemed.tokenizer.cost.table_markdown`) as a PNG."""
    lines = [ln for ln in markdown.strip().splitlines() if ln.startswith("|") and not set(ln) <= set("|-")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.24 * len(cells) + 0.3))
    ax.axis("off")
    table = ax.table(cellText=cells[1:], colLabels=cells[0], loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(cells[0]))))
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)
