"""Parallel eval data: aligned sentences per language, checked for alignment.

``load_parallel(spec, langs)`` reads

- a folder laid out like ``shared/data/sib200`` (``LANG/{train,dev,test}.tsv`` with ``index_id``; ``sib200``
  or ``builtin:sib200`` names the bundled one). Rows are aligned by ``index_id``; all chosen splits are used;
- ``xquad`` or ``builtin:xquad`` (the bundled XQuAD contexts, de/en/es) or a folder of ``xquad.XX.json``
  files, aligned by article and paragraph order;
- a TSV file whose header names the languages (plus an optional ``id`` column), one aligned row per line;
- a folder of ``LANG.txt`` (one sentence per line, aligned by line) or ``LANG.tsv`` (columns ``id`` and
  ``text``, aligned by id).

Language codes are FLORES-200 codes (``eng_Latn``, ``deu_Latn``…). Misaligned inputs (different line counts or
ids) and unknown codes are errors that name the file and the first bad row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from finemed.core.config import FinemedError
from finemed.data.registry import bundled_path

XQUAD_CODES = {"de": "deu_Latn", "en": "eng_Latn", "es": "spa_Latn", "ar": "arb_Arab", "el": "ell_Grek",
               "hi": "hin_Deva", "ro": "ron_Latn", "ru": "rus_Cyrl", "th": "tha_Thai", "tr": "tur_Latn",
               "vi": "vie_Latn", "zh": "zho_Hans"}
SIB_SPLITS = ("train", "dev", "test")


@dataclass
class ParallelSet:
    name: str
    texts: dict[str, list[str]]  # lang → aligned sentences
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def _unknown(lang: str, available: list[str], where: str) -> FinemedError:
    return FinemedError(f"unknown language code {lang!r} in {where}; available: "
                        f"{', '.join(sorted(available)) or 'none'} (FLORES-200 codes such as eng_Latn, deu_Latn)")


def _check_aligned(lang: str, ids: list[str], ref_lang: str, ref_ids: list[str], where: str) -> None:
    if len(ids) != len(ref_ids):
        raise FinemedError(f"misaligned parallel data in {where}: {lang} has {len(ids)} rows, {ref_lang} has "
                           f"{len(ref_ids)}; every language needs the same sentences")
    for row, (a, b) in enumerate(zip(ids, ref_ids), 1):
        if a != b:
            raise FinemedError(f"misaligned parallel data in {where}: row {row} has id {a!r} in {lang} but {b!r} "
                               f"in {ref_lang}; sort both files by id")


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def _sib_like(root: Path, langs: list[str], splits: tuple[str, ...]) -> ParallelSet:
    available = [p.name for p in root.iterdir() if p.is_dir()]
    for lang in langs:
        if lang not in available:
            raise _unknown(lang, available, str(root))
    texts: dict[str, list[str]] = {lang: [] for lang in langs}
    all_ids: list[str] = []
    for split in splits:
        ref_ids = None
        for lang in langs:
            f = root / lang / f"{split}.tsv"
            if not f.is_file():
                raise FinemedError(f"{f} is missing; a SIB-200-style folder needs LANG/{split}.tsv for every language")
            rows = _read_tsv(f)
            if rows and ("index_id" not in rows[0] or "text" not in rows[0]):
                raise FinemedError(f"{f}: expected the columns index_id and text (tab-separated, with a header)")
            ids = [r["index_id"] for r in rows]
            if ref_ids is None:
                ref_ids, ref_lang = ids, lang
                all_ids += [f"{split}:{i}" for i in ids]
            else:
                _check_aligned(lang, ids, ref_lang, ref_ids, str(f))
            texts[lang] += [r["text"] or "" for r in rows]
    return ParallelSet(root.name, texts, all_ids)


def _xquad(root: Path | None, langs: list[str]) -> ParallelSet:
    files = ({code: bundled_path(f"xquad.{code}") for code in ("de", "en", "es")} if root is None
             else {p.name.split(".")[1]: p for p in root.glob("xquad.*.json")})
    by_lang = {XQUAD_CODES.get(code, code): f for code, f in files.items()}
    texts, ref_ids, ref_lang = {}, None, ""
    for lang in langs:
        if lang not in by_lang:
            raise _unknown(lang, list(by_lang), f"XQuAD ({root or 'bundled'})")
        data = json.loads(by_lang[lang].read_text(encoding="utf-8"))["data"]
        ids = [f"{a}:{p}" for a, art in enumerate(data) for p, _ in enumerate(art["paragraphs"])]
        if ref_ids is None:
            ref_ids, ref_lang = ids, lang
        else:
            _check_aligned(lang, ids, ref_lang, ref_ids, str(by_lang[lang]))
        texts[lang] = [para["context"] for art in data for para in art["paragraphs"]]
    return ParallelSet("xquad", texts, ref_ids or [])


def _tsv_file(path: Path, langs: list[str]) -> ParallelSet:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header:
            raise FinemedError(f"{path}: empty TSV; the header must name the languages (e.g. id, eng_Latn, deu_Latn)")
        rows = list(reader)
    for lang in langs:
        if lang not in header:
            raise _unknown(lang, [h for h in header if h != "id"], str(path))
    for lineno, row in enumerate(rows, 2):
        if len(row) != len(header):
            raise FinemedError(f"misaligned parallel data in {path}:{lineno}: {len(row)} columns, header has "
                               f"{len(header)}; every row needs one sentence per language")
    ids = [r[header.index("id")] for r in rows] if "id" in header else [str(i) for i in range(len(rows))]
    return ParallelSet(path.stem, {lang: [r[header.index(lang)] for r in rows] for lang in langs}, ids)


def _per_language_files(root: Path, langs: list[str]) -> ParallelSet:
    files = {p.stem: p for p in sorted(root.iterdir()) if p.suffix in (".txt", ".tsv") and p.is_file()}
    texts, ref_ids, ref_lang = {}, None, ""
    for lang in langs:
        if lang not in files:
            raise _unknown(lang, list(files), str(root))
        f = files[lang]
        if f.suffix == ".txt":
            lines = f.read_text(encoding="utf-8").rstrip("\n").split("\n")
            ids, sents = [str(i) for i in range(len(lines))], lines
        else:
            rows = _read_tsv(f)
            if rows and ("id" not in rows[0] or "text" not in rows[0]):
                raise FinemedError(f"{f}: expected the columns id and text (tab-separated, with a header)")
            ids, sents = [r["id"] for r in rows], [r["text"] or "" for r in rows]
        if ref_ids is None:
            ref_ids, ref_lang = ids, lang
        else:
            _check_aligned(lang, ids, ref_lang, ref_ids, str(f))
        texts[lang] = sents
    return ParallelSet(root.name, texts, ref_ids or [])


def load_parallel(spec: str | Path | None, langs: list[str], splits: tuple[str, ...] = SIB_SPLITS) -> ParallelSet:
    """Aligned sentences of ``langs`` from ``spec`` (see the module docstring); ``None`` = bundled SIB-200."""
    langs = [lang.strip() for lang in langs if lang.strip()]
    if not langs:
        raise FinemedError("--langs is empty; give FLORES-200 codes such as eng_Latn,deu_Latn")
    if len(set(langs)) != len(langs):
        raise FinemedError(f"--langs repeats a language: {','.join(langs)}")
    bad = [s for s in splits if s not in SIB_SPLITS]
    if bad:
        raise FinemedError(f"unknown split {bad[0]!r}; expected some of {', '.join(SIB_SPLITS)}")
    spec = str(spec) if spec is not None else "sib200"
    if spec in ("builtin:sib200", "builtin:xquad"):
        spec = spec[len("builtin:"):]
    if spec == "sib200":
        return _sib_like(bundled_path("sib200"), langs, splits)
    if spec == "xquad":
        return _xquad(None, langs)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FinemedError(f"--parallel {spec}: no such file or folder; pass a SIB-200-style folder, a TSV, "
                           f"a folder of LANG.txt files, 'sib200' or 'xquad'")
    if path.is_file():
        return _tsv_file(path, langs)
    if any((p / f"{s}.tsv").is_file() for p in path.iterdir() if p.is_dir() for s in SIB_SPLITS):
        return _sib_like(path, langs, splits)
    if any(path.glob("xquad.*.json")):
        return _xquad(path, langs)
    return _per_language_files(path, langs)
