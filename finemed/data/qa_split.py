"""One dev/test split of SQuAD-format QA sets by article, shared by KD training and the QA evaluation tasks.

An article (its ``title``) is *test* when a seeded hash of the title falls under ``TEST_FRACTION``; every
question and context of a test article is test. The rule needs no state and no shuffle of the whole set, so the
``*_test_*`` lm-eval tasks (``finemed/evaluation/tasks``) and the KD data builder (``finemed/distill/data.py``)
draw the same line independently, and a new article lands on one side for good. No library splits SQuAD by
article with a stable hash (``datasets.train_test_split`` shuffles rows, so contexts would leak across).
"""

from __future__ import annotations

import hashlib

from finemed.config import FinemedError

TEST_FRACTION = 0.2  # share of articles held out as test
SPLIT_SEED = 0


def is_test_article(title: str, fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> bool:
    digest = hashlib.sha256(f"finemed-qa-split:{seed}:{title}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_articles(examples: list, fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> tuple[list, list]:
    """(dev/train, test) examples; whole articles go to one side. Needs at least one article on each side."""
    train = [e for e in examples if not is_test_article(e.title, fraction, seed)]
    test = [e for e in examples if is_test_article(e.title, fraction, seed)]
    if not train or not test:
        n = len({e.title for e in examples})
        raise FinemedError(f"QA split: {n} article title(s) put {len(train)} examples on the train side and "
                           f"{len(test)} on the test side; the set needs articles on both sides (more titles)")
    return train, test


def heldout_contexts(examples: list, fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> set[str]:
    """Every context of the test articles: text that training must never see, not even as plain text."""
    return {e.context for e in examples if is_test_article(e.title, fraction, seed)}
