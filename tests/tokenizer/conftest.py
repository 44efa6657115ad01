"""A hand-countable tokenizer: every whitespace word is cut into chunks of 3 characters."""

from __future__ import annotations

import re

import pytest

from finemed.data.tokenizers import AnyTokenizer


class Chunk3(AnyTokenizer):
    """``"Katze"`` → ``Kat ze`` (2 tokens); whitespace is dropped. Ids are running chunk numbers."""

    kind = "test"
    source = "chunk3"

    def __init__(self, name: str = "chunk3"):
        self.name = name
        self.vocab: dict[str, int] = {}

    @property
    def vocab_size(self) -> int:
        return 100

    def encode_batch_offsets(self, texts):
        out = []
        for text in texts:
            ids, offsets = [], []
            for m in re.finditer(r"\S+", text):
                for i in range(m.start(), m.end(), 3):
                    piece = text[i:min(i + 3, m.end())]
                    ids.append(self.vocab.setdefault(piece, len(self.vocab) % 100))
                    offsets.append((i, min(i + 3, m.end())))
            out.append((ids, offsets))
        return out

    def encode_batch(self, texts):
        return [ids for ids, _ in self.encode_batch_offsets(texts)]


@pytest.fixture
def chunk3():
    return Chunk3()
