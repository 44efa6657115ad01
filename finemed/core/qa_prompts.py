"""Raw "Context/Question/Answer" prompts for extractive QA, 0-shot and 1-shot.

The style is the one of lm-eval's XQuAD tasks (``doc_to_text`` ``Context: …\\n\\nQuestion: …\\n\\nAnswer:``,
target delimiter ``" "``, few-shot delimiter ``"\\n\\n"``), with English labels for every language, so a
1-shot prompt is exactly what lm-eval renders with one fixed exemplar. The exemplar comes from another article
(title) and is picked by a seeded RNG keyed by the example id, so every run and every backend (``finemed eval qa``,
``lm_eval --include_path``, the distillation stage) sees the same prompt.
"""

from __future__ import annotations

import random
from typing import Sequence

from finemed.core.config import FinemedError
from finemed.data.loaders import QAExample

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


def zero_shot_prompt(ex: QAExample) -> str:
    """``Context: C\\n\\nQuestion: Q\\n\\nAnswer:`` (the model continues after the colon; stop at newline)."""
    return f"Context: {ex.context}\n\nQuestion: {ex.question}\n\nAnswer:"


def one_shot_prompt(ex: QAExample, exemplar: QAExample) -> str:
    """The exemplar's prompt with its first gold answer, a blank line, then the 0-shot prompt of ``ex``."""
    if not exemplar.answers:
        raise FinemedError(f"QA exemplar {exemplar.id}: has no gold answer; pick an answered example")
    return (zero_shot_prompt(exemplar) + TARGET_DELIMITER + exemplar.answers[0] + FEWSHOT_DELIMITER
            + zero_shot_prompt(ex))


def pick_exemplar(examples: Sequence[QAExample], ex: QAExample, seed: int = 0) -> QAExample:
    """A seeded exemplar for ``ex`` from a different article (title) with at least one answer.

    Deterministic in (seed, ex.id, the order of ``examples``): rejection sampling with an RNG seeded by
    ``f"{seed}:{ex.id}"``, falling back to a scan when few candidates qualify. O(1) expected per call.
    """
    ok = lambda e: e.title != ex.title and e.answers and e.id != ex.id  # noqa: E731
    rng = random.Random(f"{seed}:{ex.id}")
    n = len(examples)
    for _ in range(64 if n else 0):
        cand = examples[rng.randrange(n)]
        if ok(cand):
            return cand
    pool = [e for e in examples if ok(e)]
    if not pool:
        raise FinemedError(f"QA example {ex.id}: no exemplar from another article; the data needs at least two titles")
    return pool[rng.randrange(len(pool))]


def build_prompt(ex: QAExample, examples: Sequence[QAExample], shots: int, seed: int = 0) -> str:
    """0-shot or 1-shot prompt for ``ex``; ``examples`` is the pool the exemplar comes from."""
    if shots == 0:
        return zero_shot_prompt(ex)
    if shots == 1:
        return one_shot_prompt(ex, pick_exemplar(examples, ex, seed))
    raise FinemedError(f"QA shots={shots}: only 0 or 1 are supported")
