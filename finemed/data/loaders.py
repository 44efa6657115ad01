"""Typed loaders for the bundled datasets (and the same formats from user paths).

Each loader takes an optional path; without one it reads the bundled copy through the registry, which
raises a one-line :class:`DataMissingError` when it is missing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.data.registry import DataMissingError, bundled_path, require_file


class QAExample(BaseModel):
    id: str
    title: str
    context: str
    question: str
    answers: list[str]
    answer_starts: list[int] = []


class SibSentence(BaseModel):
    index_id: str
    category: str
    text: str
    split: str


class Document(BaseModel):
    id: str
    text: str
    source: str
    meta: dict = {}


class PhiSpan(BaseModel):
    start: int
    end: int
    label: str
    text: str


class GrasccoDoc(BaseModel):
    id: str
    text: str
    phi: list[PhiSpan]


SIB_SPLITS = ("train", "dev", "test")


def read_jsonl(path: Path | str) -> Iterator[dict]:
    """The rows of a jsonl file; an invalid line (not UTF-8, not JSON, not an object) is one clear error naming
    the file and the line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise FinemedError(f"{path}:{lineno}: not UTF-8 text; save the file as UTF-8 JSON lines") from None
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise FinemedError(f"{path}:{lineno}: invalid JSON ({err.msg}); fix or remove that line") from None
                if not isinstance(row, dict):
                    raise FinemedError(f"{path}:{lineno}: a JSON {type(row).__name__}, not an object; every line "
                                       f"must be one {{...}} row")
                yield row


def load_squad(path: Path | str | None = None, *, name: str = "xquad.de") -> list[QAExample]:
    """SQuAD-format json (XQuAD, MLQA, SQuAD v1.1): one :class:`QAExample` per question."""
    path = require_file(path, "SQuAD-format file") if path else bundled_path(name)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        articles = raw["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise FinemedError(f"{path}: not SQuAD-format JSON ({type(err).__name__}: {err}); expected "
                           f'{{"data": [{{"title", "paragraphs": [{{"context", "qas"}}]}}]}}') from None
    out = []
    for art in articles:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                out.append(QAExample(id=str(qa["id"]), title=art.get("title", ""), context=para["context"],
                                     question=qa["question"], answers=[a["text"] for a in qa.get("answers", [])],
                                     answer_starts=[int(a.get("answer_start", -1)) for a in qa.get("answers", [])]))
    return out


def sib200_languages(root: Path | str | None = None) -> list[str]:
    root = Path(root) if root else bundled_path("sib200")
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def load_sib200(lang: str, root: Path | str | None = None, splits: tuple[str, ...] = SIB_SPLITS) -> list[SibSentence]:
    """SIB-200 sentences of one language, all splits in order (row-aligned across languages)."""
    root = Path(root) if root else bundled_path("sib200")
    lang_dir = root / lang
    if not lang_dir.is_dir():
        have = ", ".join(sib200_languages(root)) if root.is_dir() else "none"
        raise DataMissingError(f"SIB-200 language {lang!r} not found under {root}; available: {have}")
    out = []
    for split in splits:
        f = lang_dir / f"{split}.tsv"
        if not f.is_file():
            raise DataMissingError(f"SIB-200 {lang}: {f} is missing; it comes from github.com/dadelani/sib-200")
        with open(f, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                out.append(SibSentence(index_id=row["index_id"], category=row["category"], text=row["text"],
                                       split=split))
    return out


def load_grascco(path: Path | str | None = None) -> list[GrasccoDoc]:
    path = require_file(path, "GraSCCo jsonl") if path else bundled_path("grascco")
    return [GrasccoDoc.model_validate(d) for d in read_jsonl(Path(path))]


def load_fortunes(path: Path | str | None = None) -> list[Document]:
    path = require_file(path, "fortunes jsonl") if path else bundled_path("fortunes_de")
    return [Document(id=d["id"], text=d["text"], source="fortunes_de", meta={"category": d.get("category", "")})
            for d in read_jsonl(Path(path))]


def load_germediq(kind: str = "llm", root: Path | str | None = None) -> list[dict]:
    """GerMedIQ rows as dicts: ``kind`` = ``human`` | ``llm`` | ``judgments`` (``;``-separated CSV)."""
    files = {"human": "GerMedIQ-Human.csv", "llm": "GerMedIQ-LLM.csv", "judgments": "Human-Judgments.csv"}
    if kind not in files:
        raise FinemedError(f"GerMedIQ kind {kind!r} unknown; expected one of {', '.join(files)}")
    root = Path(root) if root else bundled_path("germediq")
    f = root / files[kind]
    if not f.is_file():
        raise DataMissingError(f"GerMedIQ: {f} is missing; it comes from github.com/Jhofenbitzer/GerMedIQ-Corpus")
    with open(f, encoding="utf-8", newline="") as fh:
        return [{k: v for k, v in row.items() if k} for row in csv.DictReader(fh, delimiter=";")]


def load_germedbench(task: str, root: Path | str | None = None) -> list[dict]:
    """GerMedBench task rows (``med_qa``, ``patient_text``, ``icd10_coding``, ``med_extraction``, …)."""
    root = Path(root) if root else bundled_path("germedbench")
    f = root / "data" / f"{task}.jsonl"
    if not f.is_file():
        have = ", ".join(sorted(p.stem for p in (root / "data").glob("*.jsonl")))
        raise DataMissingError(f"GerMedBench task {task!r}: {f} is missing (available: {have}); "
                               f"it comes from github.com/thalamiq/germedbench")
    return list(read_jsonl(f))


def load_germedbench_results(task: str, root: Path | str | None = None) -> dict[str, dict]:
    """Per-model result files of a GerMedBench task: ``{model_name: {"summary", "predictions"}}``."""
    root = Path(root) if root else bundled_path("germedbench")
    d = root / "results" / task
    if not d.is_dir():
        raise DataMissingError(f"GerMedBench results for {task!r}: {d} is missing; it comes from "
                               f"github.com/thalamiq/germedbench")
    out = {}
    for f in sorted(d.glob("*.json")):
        raw = json.loads(f.read_text(encoding="utf-8"))
        out[raw.get("summary", {}).get("model") or f.stem.split("__20")[0].replace("__", "/")] = raw
    return out


def medical_documents() -> list[Document]:
    """German medical text: GraSCCo letters plus GerMedBench case texts (the quickstart's domain set)."""
    docs = [Document(id=f"grascco/{d.id}", text=d.text, source="grascco") for d in load_grascco()]
    for task in ("patient_text", "med_extraction", "icd10_coding"):
        for row in load_germedbench(task):
            docs.append(Document(id=f"germedbench/{row['id']}", text=row["text"], source=f"germedbench/{task}"))
    return docs
