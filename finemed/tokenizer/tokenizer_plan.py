"""``finemed plan`` for the tokenizer stages: CPU time, host memory and disk, from the measured rates.

Rates (README, "How it scales"; ``benchmarks/scaling.py``): training ~5 CPU-minutes and up to ~2.8 bytes of RAM
per text byte (BPE word counts) per GB of text and tokenizer; evaluation ~4 CPU-minutes per million sentences
and tokenizer. A trained tokenizer takes ~60 bytes per vocabulary entry on disk (``tokenizer.json`` with its
merges, or SentencePiece's model and vocab). No GPU.
"""

from __future__ import annotations

from typing import Any

from finemed.core.plan_estimates import CPU_S, cpu, gib

RAM_PER_TEXT_BYTE = 2.8
DISK_PER_VOCAB_ENTRY = 60
# sentences per language in each SIB-200 split (Adelani et al. 2024); other parallel sets: PARALLEL_DEFAULT
SIB_SENTENCES = {"train": 701, "dev": 99, "test": 204}
PARALLEL_DEFAULT = 1000


def train_cost(sweep) -> dict[str, Any]:
    """A ``tokenizer.train`` sweep (``finemed.tokenizer.sweep.SweepConfig``): one tokenizer per algorithm x
    library x vocab size x corpus, each trained on its corpus' byte budget."""
    per_corpus = {c.name: sum(c.budgets().values()) for c in sweep.corpora}
    each = len(sweep.algorithms) * len(sweep.libraries) * len(sweep.vocab_sizes)
    text_bytes = sum(per_corpus.values()) * each
    disk = sum(per_corpus.values()) + DISK_PER_VOCAB_ENTRY * sum(sweep.vocab_sizes) * len(sweep.algorithms) \
        * len(sweep.libraries) * len(per_corpus)
    return {"tokenizers": each * len(per_corpus), "corpus_bytes": per_corpus,
            **cpu(text_bytes / 1e9 * CPU_S["tokenizer_train_gb"]),
            "memory_gib_per_process": gib(RAM_PER_TEXT_BYTE * max(per_corpus.values(), default=0)),
            "memory_kind": "host RAM", "disk_gib": gib(disk),
            "assumes": "~5 CPU-minutes per GB per tokenizer; up to 2.8 B of RAM per text byte (one tokenizer at "
                       "a time); the sampled corpus text is written once per corpus; ~60 B per vocab entry"}


def eval_cost(tokenizers: int, parallel: str, langs: list[str], splits: list[str]) -> dict[str, Any]:
    """A ``tokenizer.eval`` of ``tokenizers`` tokenizers over the parallel set's languages and splits."""
    per_lang = sum(SIB_SENTENCES.get(s, PARALLEL_DEFAULT) for s in splits) if parallel == "sib200" \
        else PARALLEL_DEFAULT
    sentences = per_lang * len(langs)
    return {"tokenizers_evaluated": tokenizers, "sentences": sentences,
            **cpu(tokenizers * sentences * CPU_S["tokenizer_eval_sentence"]),
            "memory_gib_per_process": gib(sentences * 500 + 0.5e9), "memory_kind": "host RAM",
            "disk_gib": gib(tokenizers * len(langs) * 2000 + 1e6),
            "assumes": f"{per_lang} sentences per language ({parallel}); ~4 CPU-minutes per million sentences "
                       "and tokenizer; 0.5 KB RAM per sentence; metrics, details and plots only on disk"}
