"""Step ``decont``: the rule of :mod:`finemed.corpus.decont_rule` as a datatrove filter.

A dropped doc leaves with reason ``decontaminated`` (the leaked item and its coverage in metadata); a kept doc
whose shared spans were cut out carries ``decont_cuts``/``decont_cut_chars`` and counts in the block's
``changed`` stat, which ``stats.json`` reports beside the drops.

With ``max_corpus_df`` set, shared n-grams found in that many docs of the same pass (one task's shard) are corpus
boilerplate and are not cut: a doc with cut candidates is held until the shard ends (at most ``max_held_docs``;
beyond that the oldest is decided with the counts so far), then decided with the shard's counts. Held docs leave
after the others, which datatrove's later steps (the intermediate writer, MinHash signatures) do not mind.
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.typeshelper import StatHints

from finemed.corpus.decont import DecontConfig, build_index
from finemed.corpus.decont_rule import DecontIndex, Match, decide, hash_func, match, resolve
from finemed.corpus.registry import BlockContext, block, section


class DecontFilter(BaseFilter):
    """Drops docs that hold a benchmark item, cuts shorter shared spans out of the others."""

    type = "🦠 - DECONT"
    name = "🦠 decontamination"

    def __init__(self, index_file: str | Path, config: DecontConfig, exclusion_writer=None):
        super().__init__(exclusion_writer=exclusion_writer)
        self.index_file = str(index_file)
        self.config = config
        self._index: DecontIndex | None = None
        self._hasher = None

    def _load(self) -> DecontIndex:
        if self._index is None:
            self._index, self._hasher = DecontIndex.load(self.index_file), hash_func()
        return self._index

    def _apply(self, doc: Document, d) -> bool | tuple[bool, str]:
        if d.item is not None:
            doc.metadata.update(decont_item=d.item, decont_coverage=d.coverage)
        if d.action == "drop":
            doc.metadata["decont_cuts"] = d.cuts
            return False, d.reason
        if d.action == "cut":
            doc.text = d.text
            doc.metadata.update(decont_cuts=d.cuts, decont_cut_chars=d.cut_chars)
            self.stat_update("changed")
            self.stat_update("cut_chars", value=d.cut_chars)
        return True

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        index = self._load()
        return self._apply(doc, decide(doc.text, index, self.config, self._hasher))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if self.config.max_corpus_df is None:
            yield from super().run(data, rank, world_size)
            return
        index, cfg = self._load(), self.config
        corpus_df: Counter = Counter()
        frequent: set[int] = set()  # index positions shared by max_corpus_df docs or more
        held: deque[tuple[Document, Match]] = deque()
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:

            def emit(doc: Document, m: Match | None):
                keep = self._apply(doc, resolve(doc.text, m, index, cfg, frequent))
                self.stat_update(StatHints.total)
                if keep is True:
                    self.stat_update(StatHints.forwarded)
                    self.update_doc_stats(doc)
                    yield doc
                    return
                self.stat_update(StatHints.dropped, f"dropped_{keep[1]}")
                if writer:
                    doc.metadata["filter_reason"] = keep[1]
                    writer.write(doc, rank)

            for doc in data:
                with self.track_time():
                    m = match(doc.text, index, cfg, self._hasher)
                    cands = m.candidates(index, cfg) if m is not None and m.coverage < cfg.leak_share else set()
                if not cands:
                    yield from emit(doc, m)
                    continue
                corpus_df.update(cands)
                frequent.update(p for p in cands if corpus_df[p] >= cfg.max_corpus_df)
                held.append((doc, m))
                if len(held) > cfg.max_held_docs:
                    yield from emit(*held.popleft())
            while held:
                yield from emit(*held.popleft())


@block("decont")
def decont(ctx: BlockContext, **params) -> DecontFilter | None:
    cfg = section(ctx.pipeline.decont, params)
    if not cfg.enabled or not cfg.sets:
        return None
    return DecontFilter(build_index(cfg), cfg, exclusion_writer=ctx.exclusion_writer("decont"))
