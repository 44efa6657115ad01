"""The merge sweep's QA dev set: a few XQuAD-en questions from articles no reported QA score uses, and their F1.

The t-sweep must not hand on a model that lost the extractive QA its instruct model could do. English XQuAD is
the QA measure above its floor at 135M (SmolLM2 scores 0 on German extractive QA, so German QA cannot show a
loss). Selection reads only this dev set; the scoreboard and findings read test items, which it never touches:

- **Articles.** The split is :func:`finemed.data.qa_splits.split_articles` (the one the ``data.qa_split`` stage uses),
  applied twice: first exactly as ``data.qa_split`` splits with its defaults (bare title, ``avoid_test_fraction``
  0.25, seed) and the test articles are dropped; then the remaining articles are split again with the salt
  ``"merge.sweep:"`` and ``fraction`` (0.25): the held side are the dev articles. For XQuAD-en with seed 0 these are
  9 of its 48 articles, none of them ``Super_Bowl_50``, the article of the first 20 questions that the
  quickstart's ``eval.qa`` stages score (``tests/merging/test_qa_dev.py`` asserts it from the recipe).
- **Questions.** :func:`finemed.data.qa_splits.sample_test`: up to ``limit`` (16) answered questions, round-robin over
  the shuffled dev articles, paragraphs up to ``max_context_chars`` (700) only: short prompts, a CPU budget.
- **Scoring.** The same lm-eval path as ``eval.qa`` (:mod:`finemed.evaluation.qa`): the ``squad_v1_{shots}shot``
  task on the dev file written here (the 1-shot exemplar comes from another dev article), greedy, stop at the
  newline, at most 32 tokens, SQuAD v1.1 EM/F1 (percent). On the vLLM engine it runs on the server the probe
  started for the same model; else on the model object already loaded for bpb.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from finemed.core.artifacts import atomic_write_text
from finemed.core.config import FinemedError, StageConfig
from finemed.core.engine import VLLMSettings
from finemed.core.qa_eval import QaEvalConfig, evaluate_model, run_eval
from finemed.core.runtime import Runtime
from finemed.data.loaders import QAExample
from finemed.data.qa_splits import load_qa_source, sample_test, split_articles, to_squad

DEV_SALT = "merge.sweep:"


class QADevConfig(StageConfig):
    """The sweep's QA dev set (English SQuAD-format: the task's answer normalisation is SQuAD v1.1's)."""

    source: str = Field("xquad.en", description="an English SQuAD-format file or bundled name")
    avoid_test_fraction: float = Field(0.25, gt=0.0, lt=1.0,
                                       description="data.qa_split's test_fraction: those articles are never dev")
    fraction: float = Field(0.25, gt=0.0, lt=1.0, description="share of the remaining articles that are dev")
    limit: int = Field(16, ge=1, description="dev questions scored per sweep point")
    shots: Literal[0, 1] = 1
    max_context_chars: int | None = Field(700, ge=1)
    batch_size: int = Field(8, ge=1)

    @property
    def task(self) -> str:
        return f"squad_v1_{self.shots}shot"


def dev_examples(cfg: QADevConfig, seed: int = 0) -> list[QAExample]:
    """The dev questions (see the module docstring), grouped by article."""
    examples = load_qa_source(cfg.source)
    rest, _test = split_articles(examples, cfg.avoid_test_fraction, seed)
    _train, dev = split_articles(rest, cfg.fraction, seed, salt=DEV_SALT)
    picked = sample_test(dev, cfg.limit, cfg.max_context_chars, seed)
    if len({e.title for e in picked}) < 2 and cfg.shots == 1:
        raise FinemedError(f"sweep qa_dev: {len(picked)} question(s) from {cfg.source} in fewer than two articles; "
                           f"a 1-shot prompt needs two: raise qa_dev.fraction or max_context_chars, or set shots: 0")
    if not picked:
        raise FinemedError(f"sweep qa_dev: no dev question in {cfg.source}; raise qa_dev.fraction or "
                           f"max_context_chars")
    return picked


def write_dev_set(cfg: QADevConfig, seed: int, path: Path) -> dict[str, Any]:
    """Write the dev questions as SQuAD v1.1 JSON to ``path``; return what sweep.json records about them."""
    picked = dev_examples(cfg, seed)
    atomic_write_text(path, json.dumps(to_squad(picked), ensure_ascii=False))
    return {"source": cfg.source, "task": cfg.task, "file": str(path), "questions": len(picked),
            "titles": sorted({e.title for e in picked}), "ids": [e.id for e in picked]}


def score_dev(cfg: QADevConfig, dev_file: Path, out_dir: Path, *, seed: int = 0, model=None, tok=None,
              runtime: Runtime | None = None, model_dir: Path | None = None,
              vllm: VLLMSettings | None = None) -> dict[str, float]:
    """EM and F1 (percent) on the dev file: on ``model``/``tok`` (hf), or on the vLLM server for ``model_dir``
    when no model object is given. Per-item scores land in ``out_dir`` as eval.qa writes them."""
    qcfg = QaEvalConfig(model=str(model_dir or "smollm2"), tasks=[cfg.task], data=str(dev_file), limit=None,
                        batch_size=cfg.batch_size, seed=seed, backend="hf" if model is not None else "vllm",
                        vllm=vllm or VLLMSettings())
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        res = evaluate_model(model, tok, qcfg, out_dir, runtime=runtime)["tasks"][cfg.task]
    else:
        res = run_eval(qcfg, out_dir).tasks[cfg.task]
    return {"f1": round(float(res["f1"]), 4), "em": round(float(res["exact_match"]), 4), "n": int(res["n"])}
