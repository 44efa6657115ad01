"""Step ``decont``: datatrove's n-gram decontamination filter over the index of :mod:`finemed.corpus.decont`."""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.decont.n_grams import NGramsDecontFilter

from finemed.corpus.decont import build_index, ngrams_config
from finemed.corpus.registry import BlockContext, block, section


class DecontFilter(NGramsDecontFilter):
    """datatrove's filter, with drop reason ``decontaminated`` (the matched n-gram and set stay in metadata)."""

    name = "🦠 decontamination"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        keep = super().filter(doc)
        return True if keep is True else (False, "decontaminated")


@block("decont")
def decont(ctx: BlockContext, **params) -> DecontFilter | None:
    cfg = section(ctx.pipeline.decont, params)
    if not cfg.enabled or not cfg.sets:
        return None
    index = build_index(cfg)
    return DecontFilter(str(index), config=ngrams_config(cfg), language=cfg.language,
                        exclusion_writer=ctx.exclusion_writer("decont"))
