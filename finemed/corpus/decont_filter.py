"""Step ``decont``: the rule of :mod:`finemed.corpus.decont_rule` as a datatrove filter.

A dropped doc leaves with reason ``decontaminated`` (the leaked item and its coverage in metadata); a kept doc
whose shared spans were cut out carries ``decont_cuts``/``decont_cut_chars`` and counts in the block's
``changed`` stat, which ``stats.json`` reports beside the drops.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from finemed.corpus.decont import DecontConfig, build_index
from finemed.corpus.decont_rule import DecontIndex, decide, hash_func
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

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._index is None:
            self._index, self._hasher = DecontIndex.load(self.index_file), hash_func()
        d = decide(doc.text, self._index, self.config, self._hasher)
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


@block("decont")
def decont(ctx: BlockContext, **params) -> DecontFilter | None:
    cfg = section(ctx.pipeline.decont, params)
    if not cfg.enabled or not cfg.sets:
        return None
    return DecontFilter(build_index(cfg), cfg, exclusion_writer=ctx.exclusion_writer("decont"))
