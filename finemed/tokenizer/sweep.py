"""The ``tokenizer.train`` stage: a training sweep, algorithm × library × vocab size × training corpus.

Each corpus is a set of languages, each with text sources (:mod:`finemed.core.texts` specs) and a weight; the
corpus' ``total_bytes`` (default: ``bytes_per_language`` × the number of languages) is split over its
languages by weight: the byte budget per language. The lines of one corpus are gathered once, to a file
in the run dir, and every tokenizer of that corpus streams exactly those lines. Outputs::

    RUN/<NAME>/                 one HF-loadable tokenizer dir per combination (EN-BPE-SP-2, …)
    RUN/corpora.json            bytes actually read per corpus and language
    RUN/sweep.json              the TrainedTokenizer records (and the skipped ones, with the reason)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Optional

from pydantic import Field, field_validator

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.stages import StageResult, planner, stage
from finemed.tokenizer.sources import LinesFile, language_texts, training_lines
from finemed.tokenizer.tokenizer_plan import train_cost
from finemed.tokenizer.train import Algorithm, Library, TrainedTokenizer, VocabTooLargeError, tokenizer_name, train_one

log = get_logger(__name__)


class LanguageData(StageConfig):
    sources: list[str] = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class CorpusSpec(StageConfig):
    name: str = Field(default="CUSTOM", pattern=r"^[A-Za-z0-9_.]+$")  # the name prefix: EN, MULTI, DE
    languages: dict[str, LanguageData] = Field(min_length=1)
    total_bytes: Optional[int] = Field(default=None, gt=0)  # split over the languages by weight
    bytes_per_language: int = Field(default=5_000_000, gt=0)  # when total_bytes is not given: this × languages

    def budgets(self) -> dict[str, int]:
        total = self.total_bytes or self.bytes_per_language * len(self.languages)
        total_w = sum(d.weight for d in self.languages.values())
        return {lang: int(total * d.weight / total_w) for lang, d in self.languages.items()}


class SweepConfig(StageConfig):
    algorithms: list[Algorithm] = ["bpe", "unigram"]
    libraries: list[Library] = ["hf", "sp"]
    vocab_sizes: list[int] = Field(default=[2000, 4000, 8000, 16000], min_length=1)
    corpora: list[CorpusSpec] = Field(min_length=1)
    character_coverage: float = Field(default=0.9995, gt=0, le=1)
    threads: int = Field(default=2, ge=1)
    # a vocab size the corpus cannot support: error (default), or skip that tokenizer and record why
    skip_impossible: bool = False
    # one name per vocab size, in place of the size in thousands (EN-BPE-HF-<name>); a rehearsal that shrinks
    # vocab_sizes keeps the names, so later stages find the same dirs
    size_names: Optional[list[str]] = None

    @field_validator("vocab_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(x < 100 for x in v):
            raise ValueError("every vocab size must be at least 100")
        return v

    @field_validator("size_names")
    @classmethod
    def _one_per_size(cls, v: Optional[list[str]], info) -> Optional[list[str]]:
        sizes = info.data.get("vocab_sizes") or []
        if v is not None and len(v) != len(sizes):
            raise ValueError(f"size_names needs one name per vocab size ({len(sizes)}), got {len(v)}")
        return v

    def size_name(self, vocab: int) -> Optional[str]:
        return self.size_names[self.vocab_sizes.index(vocab)] if self.size_names else None


class SweepResult(StageResult):
    key_metric: ClassVar[str] = "n_trained"
    n_trained: int
    tokenizers: list[TrainedTokenizer]
    corpora: dict[str, dict[str, int]]  # corpus → lang → bytes read
    skipped: list[dict] = []  # {"name", "reason"} for vocab sizes the corpus cannot support


def gather_corpus(spec: CorpusSpec, lines: LinesFile) -> dict[str, int]:
    """Append the training lines of one corpus to ``lines``; return the bytes read per language."""
    used = {}
    for lang, budget in spec.budgets().items():
        texts, n = language_texts(spec.languages[lang].sources, budget, description=f"reading {spec.name} {lang}")
        if not texts:
            raise FinemedError(f"empty corpus {spec.name}: language {lang} got no text from "
                               f"{spec.languages[lang].sources}; check the sources")
        used[lang] = n
        lines.extend(training_lines(texts))
    return used


def run_sweep(config: SweepConfig, out_dir: Path) -> SweepResult:
    """Train every combination of ``config`` into ``out_dir`` (see the module docstring)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    combos = [(a, lib, v) for a in config.algorithms for lib in config.libraries for v in sorted(config.vocab_sizes)]
    total, done, t0 = len(combos) * len(config.corpora), 0, time.perf_counter()
    trained, corpora, skipped = [], {}, []
    for corpus in config.corpora:
        lines = LinesFile(out_dir / f".lines-{corpus.name}.txt")
        lines.remove()
        try:
            used = gather_corpus(corpus, lines)
            corpora[corpus.name] = used
            log.info("corpus %s: %s bytes, %s lines (%s)", corpus.name, f"{sum(used.values()):,}", f"{len(lines):,}",
                     ", ".join(f"{k} {v:,}" for k, v in used.items()))
            for algorithm, library, vocab in combos:
                name = tokenizer_name(algorithm, library, vocab, corpus.name, config.size_name(vocab))
                try:
                    info = train_one(lines, algorithm=algorithm, library=library, vocab_size=vocab,
                                     out_dir=out_dir / name, corpus=corpus.name, train_bytes=sum(used.values()),
                                     character_coverage=config.character_coverage, threads=config.threads,
                                     name=name)
                    what = f"vocab {info.vocab_size} in {info.seconds:.1f} s"
                    trained.append(info)
                except VocabTooLargeError as err:
                    if not config.skip_impossible:
                        raise
                    skipped.append({"name": name, "reason": str(err)})
                    what = f"skipped ({err})"
                done += 1
                eta = (time.perf_counter() - t0) / done * (total - done)
                log.info("[%d/%d] %s: %s; eta %.0f s", done, total, name, what, eta)
        finally:
            lines.remove()
    result = SweepResult(n_trained=len(trained), tokenizers=trained, corpora=corpora, skipped=skipped)
    atomic_write_json(out_dir / "corpora.json", corpora)
    atomic_write_json(out_dir / "sweep.json", result.model_dump())
    return result


@stage("tokenizer.train")
def run(cfg: SweepConfig, run_dir: Path) -> SweepResult:
    """Stage entry: the sweep, one tokenizer dir per combination under ``run_dir``."""
    return run_sweep(cfg, run_dir)


@planner("tokenizer.train")
def plan(config: SweepConfig, ctx) -> dict:
    """``finemed plan``: CPU time, host memory and disk of the sweep (tokenizer_plan)."""
    return train_cost(config)
