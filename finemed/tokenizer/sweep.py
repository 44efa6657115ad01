"""A training sweep from one config: algorithm × library × vocab size × training corpus.

Each corpus is a set of languages, each with sources and a weight; the corpus' ``total_bytes`` is split
over its languages by weight (the byte budget per language). The texts of one corpus are gathered once
and every tokenizer of that corpus trains on exactly the same lines. Outputs::

    OUT/<NAME>/                 one HF-loadable tokenizer dir per combination (EN-BPE-SP-2, …)
    OUT/corpora.json            bytes actually read per corpus and language
    OUT/sweep.json              the TrainedTokenizer records (and the skipped ones, with the reason)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from finemed.artifacts import atomic_write_json
from finemed.config import FinemedError, StageConfig
from finemed.tokenizer.sources import language_texts, training_lines
from finemed.tokenizer.train import (Algorithm, Library, TrainedTokenizer, VocabTooLargeError, tokenizer_name,
                                     train_one)


class LanguageData(StageConfig):
    sources: list[str] = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class CorpusSpec(StageConfig):
    name: str = Field(pattern=r"^[A-Za-z0-9_.]+$")  # the name prefix: EN, MULTI, DE
    total_bytes: int = Field(gt=0)
    languages: dict[str, LanguageData] = Field(min_length=1)

    def budgets(self) -> dict[str, int]:
        total_w = sum(d.weight for d in self.languages.values())
        return {lang: int(self.total_bytes * d.weight / total_w) for lang, d in self.languages.items()}


class SweepConfig(StageConfig):
    algorithms: list[Algorithm] = ["bpe", "unigram"]
    libraries: list[Library] = ["hf", "sp"]
    vocab_sizes: list[int] = Field(default=[2000, 4000, 8000, 16000], min_length=1)
    corpora: list[CorpusSpec] = Field(min_length=1)
    character_coverage: float = Field(default=0.9995, gt=0, le=1)
    threads: int = Field(default=2, ge=1)
    # a vocab size the corpus cannot support: error (default), or skip that tokenizer and record why
    skip_impossible: bool = False

    @field_validator("vocab_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(x < 100 for x in v):
            raise ValueError("every vocab size must be at least 100")
        return v


class SweepResult(BaseModel):
    tokenizers: list[TrainedTokenizer]
    corpora: dict[str, dict[str, int]]  # corpus → lang → bytes read
    skipped: list[dict] = []  # {"name", "reason"} for vocab sizes the corpus cannot support


def gather_corpus(spec: CorpusSpec) -> tuple[list[str], dict[str, int]]:
    """The training lines of one corpus and the bytes read per language."""
    lines, used = [], {}
    for lang, budget in spec.budgets().items():
        texts, n = language_texts(spec.languages[lang].sources, budget)
        if not texts:
            raise FinemedError(f"empty corpus {spec.name}: language {lang} got no text from "
                               f"{spec.languages[lang].sources}; check the sources")
        used[lang] = n
        lines += list(training_lines(texts))
    return lines, used


def run_sweep(config: SweepConfig, out_dir: Path, *, log=print) -> SweepResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    trained, corpora, skipped = [], {}, []
    for corpus in config.corpora:
        lines, used = gather_corpus(corpus)
        corpora[corpus.name] = used
        log(f"corpus {corpus.name}: {sum(used.values()):,} bytes, {len(lines):,} lines "
            f"({', '.join(f'{k} {v:,}' for k, v in used.items())})")
        for algorithm in config.algorithms:
            for library in config.libraries:
                for vocab in sorted(config.vocab_sizes):
                    name = tokenizer_name(algorithm, library, vocab, corpus.name)
                    try:
                        info = train_one(lines, algorithm=algorithm, library=library, vocab_size=vocab,
                                         out_dir=out_dir / name, corpus=corpus.name, train_bytes=sum(used.values()),
                                         character_coverage=config.character_coverage, threads=config.threads)
                    except VocabTooLargeError as err:
                        if not config.skip_impossible:
                            raise
                        skipped.append({"name": name, "reason": str(err)})
                        log(f"  {name}: skipped ({err})")
                        continue
                    log(f"  {info.name}: vocab {info.vocab_size} in {info.seconds:.1f}s")
                    trained.append(info)
    result = SweepResult(tokenizers=trained, corpora=corpora, skipped=skipped)
    atomic_write_json(out_dir / "corpora.json", corpora)
    atomic_write_json(out_dir / "sweep.json", result.model_dump())
    return result
