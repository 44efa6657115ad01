"""The fast default domain classifier: fastText supervised (the ``fasttext`` module datatrove installs).

Texts are lower-cased, whitespace-collapsed and cut to ``max_chars`` before training and scoring, so
the two always see the same input. Word bigrams plus character n-grams (2–5) cope with German
compounds and clinical abbreviations. ``score`` returns P(medical) per text.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from finemed.core.artifacts import atomic_path
from finemed.core.config import FinemedError
from finemed.core.logs import get_logger

log = get_logger(__name__)

_WS = re.compile(r"\s+")


class FastTextParams(BaseModel):
    epoch: int = 15
    lr: float = 0.5
    dim: int = 32
    word_ngrams: int = 2
    minn: int = 2
    maxn: int = 5
    bucket: int = 200_000
    max_chars: int = 4000
    seed: int = 0


def normalize(text: str, max_chars: int = 4000) -> str:
    return _WS.sub(" ", text[:max_chars].lower()).strip()


def train_fasttext(texts: list[str], labels: list[int], out: Path, params: FastTextParams | None = None) -> Path:
    """Train on (text, 0/1) pairs and save ``out`` (a .bin file, written atomically)."""
    import fasttext

    params = params or FastTextParams()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as fh:
        for t, y in zip(texts, labels):
            fh.write(f"__label__{int(y)} {normalize(t, params.max_chars)}\n")
        train_file = fh.name
    kwargs = dict(epoch=params.epoch, dim=params.dim, wordNgrams=params.word_ngrams, minn=params.minn,
                  maxn=params.maxn, bucket=params.bucket, thread=1, seed=params.seed, verbose=0)
    try:
        lr = params.lr
        for attempt in range(4):  # a small training set can diverge at the default lr: halve it and retry
            try:
                model = _train_isolated(train_file, lr, kwargs, out) if attempt else \
                    fasttext.train_supervised(train_file, lr=lr, **kwargs)
                if attempt:
                    return Path(out)
                break
            except RuntimeError as err:
                if "NaN" not in str(err) or attempt == 3:
                    raise FinemedError(f"fastText training failed ({err}) on {len(texts)} docs even at lr {lr:g}; "
                                       f"give it more labelled docs") from None
                lr = lr if attempt == 0 else lr / 2
                log.warning("fastText diverged on %d docs; retrying at lr %g in a fresh process", len(texts), lr)
    finally:
        Path(train_file).unlink(missing_ok=True)
    with atomic_path(out) as tmp:
        model.save_model(str(tmp))
    return Path(out)


def _fit_and_save(train_file: str, lr: float, kwargs: dict, out: str) -> None:
    import fasttext

    model = fasttext.train_supervised(train_file, lr=lr, **kwargs)
    with atomic_path(out) as tmp:
        model.save_model(str(tmp))


def _train_isolated(train_file: str, lr: float, kwargs: dict, out: Path) -> None:
    """Train in a fresh (spawned) process: fastText can hit NaN in a process whose floating-point state another
    library changed (seen after bf16 torch kernels ran in the same process); a clean process trains normally."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_fit_and_save, args=(train_file, lr, kwargs, str(out)))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"Encountered NaN (fresh process exit {proc.exitcode})")


class FastTextScorer:
    """P(medical) from a saved fastText model; loaded lazily (and again in each worker process)."""

    def __init__(self, model_path: Path | str, max_chars: int = 4000):
        self.model_path = str(model_path)
        self.max_chars = max_chars
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import fasttext

            self._model = fasttext.load_model(self.model_path)
        return self._model

    def score(self, texts: list[str], progress: str | None = None) -> np.ndarray:
        """P(medical) per text (``progress``: accepted for the scorer interface; fastText needs no bar)."""
        if not texts:
            return np.zeros(0)
        labels, probs = self.model.predict([normalize(t, self.max_chars) for t in texts], k=2)
        out = np.empty(len(texts))
        for i, (ls, ps) in enumerate(zip(labels, probs)):
            d = dict(zip(ls, ps))
            out[i] = float(d.get("__label__1", 1.0 - d.get("__label__0", 1.0)))
        return np.clip(out, 0.0, 1.0)

    def __getstate__(self):
        return {**self.__dict__, "_model": None}
