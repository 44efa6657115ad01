"""QA splits by article, shared by the stages that must never see each other's questions.

``data.qa_split`` (KD and SFT data), ``train.sft``'s held-out articles and ``merge.sweep``'s QA dev guard all split
with :func:`split_articles`: a title (an article) lies on one side only, chosen by a seeded hash of the title.
"""

from __future__ import annotations

import random
from itertools import zip_longest
from pathlib import Path

from finemed.core.config import FinemedError
from finemed.core.texts import heldout_score
from finemed.data.loaders import QAExample, load_squad


def load_qa_source(spec: str) -> list[QAExample]:
    """SQuAD-format examples from a file path or a bundled name."""
    path = Path(spec).expanduser()
    return load_squad(path) if path.is_file() else load_squad(name=spec)


def split_articles(examples: list[QAExample], fraction: float, seed: int = 0,
                   salt: str = "") -> tuple[list, list]:
    """(train, held) with whole articles on one side: a title is held out when the hash score of ``salt + title``
    is below ``fraction``; with two or more titles each side keeps at least one. Asserts that no title is shared.

    ``data.qa_split`` (the test split) hashes the bare title; ``train.sft`` salts it, so its held-out articles
    are a fresh sample of the train side (with the same hash they would all score above the test fraction)."""
    titles = sorted({e.title for e in examples})
    if len(titles) < 2:
        raise FinemedError(f"QA split: {len(titles)} article title(s); splitting by article needs at least two")
    scores = {t: heldout_score(salt + t, seed) for t in titles}
    held = {t for t in titles if scores[t] < fraction}
    ranked = sorted(titles, key=scores.get)
    if not held:
        held = {ranked[0]}
    if len(held) == len(titles):
        held.discard(ranked[-1])
    train = [e for e in examples if e.title not in held]
    test = [e for e in examples if e.title in held]
    shared = {e.title for e in train} & {e.title for e in test}
    assert not shared, f"QA split: articles on both sides: {sorted(shared)[:3]}"
    return train, test


def to_squad(examples: list[QAExample]) -> dict:
    """SQuAD v1.1 layout, articles and paragraphs in first-seen order."""
    articles: dict[str, dict[str, list]] = {}
    for e in examples:
        paras = articles.setdefault(e.title, {})
        paras.setdefault(e.context, []).append({
            "id": e.id, "question": e.question,
            "answers": [{"text": t, "answer_start": s} for t, s in zip(e.answers, e.answer_starts or [])]
            or [{"text": t, "answer_start": -1} for t in e.answers]})
    return {"version": "1.1", "data": [{"title": t, "paragraphs": [{"context": c, "qas": q} for c, q in p.items()]}
                                       for t, p in articles.items()]}


def sample_test(test: list[QAExample], n: int | None, max_chars: int | None, seed: int) -> list[QAExample]:
    """Up to ``n`` answered questions, round-robin over the (shuffled) test articles; grouped by article."""
    pool = [e for e in test if e.answers and (max_chars is None or len(e.context) <= max_chars)]
    by_title: dict[str, list[QAExample]] = {}
    for e in pool:
        by_title.setdefault(e.title, []).append(e)
    rng = random.Random(seed)
    titles = sorted(by_title)
    rng.shuffle(titles)
    for t in titles:
        rng.shuffle(by_title[t])
    picked: list[QAExample] = []
    for row in zip_longest(*(by_title[t] for t in titles)):
        picked += [e for e in row if e is not None]
    picked = picked[:n] if n else picked
    keep = {e.id for e in picked}
    return [e for t in titles for e in by_title[t] if e.id in keep]
