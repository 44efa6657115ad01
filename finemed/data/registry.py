"""Where data lives: the bundled copy (FINEMED_DATA_DIR or ../shared/data), hub ids, and the cache dir.

Offline, a missing dataset raises :class:`DataMissingError` with one line that says what is missing,
where it was looked for, and where it comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from finemed.core.config import FinemedError

REPO_ROOT = Path(__file__).resolve().parents[2]


class DataMissingError(FinemedError):
    """A bundled or named dataset is not where it should be."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    bundled: str | None  # path relative to the data dir
    hub_id: str | None  # what an online user can pass instead
    url: str | None
    origin: str  # where the bundled copy comes from (for the error message)


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("xquad.de", "xquad/xquad.de.json", "google/xquad:xquad.de",
                "https://github.com/deepmind/xquad/raw/master/xquad.de.json",
                "github.com/deepmind/xquad"),
    DatasetInfo("xquad.en", "xquad/xquad.en.json", "google/xquad:xquad.en",
                "https://github.com/deepmind/xquad/raw/master/xquad.en.json",
                "github.com/deepmind/xquad"),
    DatasetInfo("xquad.es", "xquad/xquad.es.json", "google/xquad:xquad.es",
                "https://github.com/deepmind/xquad/raw/master/xquad.es.json",
                "github.com/deepmind/xquad"),
    DatasetInfo("mlqa.de", "mlqa/dev-context-de-question-de.json", "facebook/mlqa:mlqa.de.de",
                "https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip",
                "facebookresearch/MLQA dev de-de"),
    DatasetInfo("squad_v1.1", "squad_v1.1/dev-v1.1.json", "rajpurkar/squad",
                "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",
                "the SQuAD v1.1 dev set (held back in the development bundle)"),
    DatasetInfo("fineweb2.deu_Latn", None, "HuggingFaceFW/fineweb-2:deu_Latn",
                "hf://datasets/HuggingFaceFW/fineweb-2/data/deu_Latn/train",
                "FineWeb2 German split (not bundled; pass hf:// or a local parquet dir)"),
    DatasetInfo("sib200", "sib200", "Davlan/sib200",
                "https://github.com/dadelani/sib-200",
                "github.com/dadelani/sib-200 data/annotated"),
    DatasetInfo("grascco", "grascco/grascco_phi.jsonl", None,
                "https://zenodo.org/records/6539131",
                "GraSCCo (Zenodo 6539131) with GraSCCo_PHI annotations"),
    DatasetInfo("germediq", "germediq", None,
                "https://github.com/Jhofenbitzer/GerMedIQ-Corpus",
                "github.com/Jhofenbitzer/GerMedIQ-Corpus CorpusFiles"),
    DatasetInfo("germedbench", "germedbench", None,
                "https://github.com/thalamiq/germedbench",
                "github.com/thalamiq/germedbench data/ and results/"),
    DatasetInfo("fortunes_de", "fortunes_de/fortunes_de.jsonl", None,
                None,
                "Debian package fortunes-de 0.35-1, re-packed as jsonl"),
    DatasetInfo("tokenizers", "tokenizers", None, None, "the pretrained tokenizer bundle (see tokenizers/SOURCES.md)"),
]}


def data_dir_or_none() -> Path | None:
    env = os.environ.get("FINEMED_DATA_DIR")
    if env:
        return Path(env).expanduser()
    for cand in (REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return None


def data_dir() -> Path:
    d = data_dir_or_none()
    if d is None or not d.is_dir():
        where = os.environ.get("FINEMED_DATA_DIR") or str(REPO_ROOT.parent / "shared" / "data")
        raise DataMissingError(f"bundled data dir not found at {where}; put the shared/ folder beside the "
                               f"repo or set FINEMED_DATA_DIR to its data/ folder")
    return d


def bundled_path(name_or_rel: str) -> Path:
    """Path of a registered dataset (``xquad.de``) or a path relative to the data dir; must exist."""
    info = DATASETS.get(name_or_rel)
    rel = info.bundled if info else name_or_rel
    if rel is None:
        raise DataMissingError(f"dataset {name_or_rel!r} is not bundled; it comes from {info.origin}"
                               f"{' (hub id ' + info.hub_id + ')' if info.hub_id else ''}: pass a local path")
    base = data_dir()
    path = base / rel
    if not path.exists():
        origin = info.origin if info else "the shared data bundle"
        raise DataMissingError(f"{name_or_rel}: {path} is missing; it comes from {origin} "
                               f"(see {base / 'SOURCES.md'}); restore it or set FINEMED_DATA_DIR")
    return path


def require_file(path: Path | str, what: str) -> Path:
    """A user-given input path must exist: one clear line otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataMissingError(f"{what}: {p} does not exist; check the path")
    return p


def cache_dir() -> Path:
    d = Path(os.environ.get("FINEMED_CACHE", "~/.cache/finemed")).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d
