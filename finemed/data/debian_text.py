"""Real text in five languages from Debian: translated man pages and fortunes, fetched once at setup time.

Debian ships the Linux man pages translated into German, French, Italian and Spanish (``manpages-de``,
``-fr``, ``-it``, ``-es``; English: ``manpages``) and fortune cookies in four of them (``fortunes``,
``fortunes-de``, ``-it``, ``-es``; there is no French one in Debian main). ``make debian-text`` (or
``finemed data fetch-debian``) downloads the packages once with ``apt-get download`` (no root needed), unpacks
them with ``dpkg-deb -x``, renders every man page to plain text with ``groff -k -mandoc -rHY=0 -Tutf8`` (no
hyphenation) and writes::

    $FINEMED_CACHE/debian-text/<lang>.jsonl      {"text", "doc", "package", "split"} per document
    $FINEMED_CACHE/debian-text/manifest.json     packages, versions, documents and bytes per language and split

A document is one man page, or one fortune. The held-out split is by document: a document is ``heldout`` when
the hash of its name (package + path [+ index]) falls below :data:`HELDOUT_FRACTION`, so every text of a page is
on one side. At run time nothing is fetched: a missing cache is one error line naming the make target.

Text sources (:mod:`finemed.core.texts`): ``builtin:debian.de`` (the train split), ``builtin:debian.de@heldout``,
``builtin:debian.de@all``, and ``builtin:debian.mix`` / ``builtin:debian.mix-BYTES`` (all five languages, round-robin
by document, each cut to the same number of bytes: BYTES, or the smallest language's). Without ``groff`` (or with
``--no-groff``) a man page is rendered by :func:`strip_roff`, a documented fallback that drops requests and escapes
(coarser, but the same text).

Written here because no library fetches and renders Debian packages; the work is done by apt-get, dpkg-deb and
groff, called as subprocesses.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

from finemed.core.config import FinemedError
from finemed.core.logs import Counter, get_logger
from finemed.data.registry import DataMissingError, cache_dir

log = get_logger(__name__)

LANGS = ("en", "de", "fr", "it", "es")
PACKAGES: dict[str, tuple[str, ...]] = {
    "en": ("manpages", "fortunes"),
    "de": ("manpages-de", "fortunes-de"),
    "fr": ("manpages-fr",),
    "it": ("manpages-it", "fortunes-it"),
    "es": ("manpages-es", "fortunes-es"),
}
SIB_CODE = {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn", "it": "ita_Latn", "es": "spa_Latn"}
HELDOUT_FRACTION = 0.1
SPLITS = ("train", "heldout", "all")
MAKE_TARGET = "make debian-text"


def text_dir() -> Path:
    return cache_dir() / "debian-text"


# ------------------------------------------------------------------------------------------------ rendering
_ROFF_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\s[+-]?\d"), ""),  # size changes
    (re.compile(r"\\\((em|en)"), "—"), (re.compile(r"\\\(bu"), "•"), (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),  # other named glyphs
    (re.compile(r"\\[-e]"), lambda m: "-" if m.group(0) == "\\-" else "\\"),
    (re.compile(r"\\[&|^:%]"), ""), (re.compile(r"\\ "), " "), (re.compile(r'\\".*$'), ""),
]


def strip_roff(source: str) -> str:
    """A coarse roff → text fallback for hosts without groff: comment and request lines go, except the text
    arguments of the macros that carry text (``.SH``, ``.SS``, ``.B``, ``.I``, ``.BR``, ``.IR``, ``.IP``, ``.TP``
    bodies); font, size and glyph escapes are removed; paragraphs (``.PP``/``.P``/``.LP``/``.SH``) break."""
    out: list[str] = []
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"")) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].partition(" ")
            if macro in ("PP", "P", "LP", "SH", "SS", "TP", "IP", "HP"):
                out.append("")
            if macro in ("SH", "SS", "B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "IP") and rest:
                out.append(rest.replace('"', ""))
            continue
        out.append(line)
    text = "\n".join(out)
    for pattern, repl in _ROFF_ESCAPES:
        text = pattern.sub(repl, text) if not callable(repl) else pattern.sub(repl, text)
    return re.sub(r"\\(.)", r"\1", text)


def clean_rendered(text: str) -> str:
    """Rendered page → text: drop the header and footer lines, indentation and justification spaces; keep
    paragraphs (blank-line separated)."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    body = [ln for ln in lines if ln.strip()]
    if len(body) > 2 and re.search(r"\(\d\w*\)\s*$", body[0]):  # "LS(1)   User Commands   LS(1)"
        lines = lines[lines.index(body[0]) + 1:]
        last = max(i for i, ln in enumerate(lines) if ln.strip())
        lines = lines[:last]
    paras, cur = [], []
    for ln in lines:
        if ln.strip():
            cur.append(re.sub(r"\s{2,}", " ", ln.strip()))
        elif cur:
            paras.append("\n".join(cur))
            cur = []
    if cur:
        paras.append("\n".join(cur))
    return "\n\n".join(paras).strip()


def render_man(path: Path, groff: str | None) -> str:
    """One man page (``.gz``) → plain text; ``.so`` redirect stubs give ``""``."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    src = raw.decode("utf-8", errors="replace")
    if src.lstrip().startswith(".so ") and len(src.strip().splitlines()) <= 2:
        return ""
    if groff:
        proc = subprocess.run([groff, "-k", "-t", "-mandoc", "-rHY=0", "-Tutf8", "-P-cbou"], input=raw,
                              capture_output=True, env={**os.environ, "GROFF_NO_SGR": "1"}, timeout=60)
        if proc.returncode == 0 and proc.stdout.strip():
            return clean_rendered(proc.stdout.decode("utf-8", errors="replace"))
    return clean_rendered(strip_roff(src))


def read_fortunes(path: Path) -> list[str]:
    """The cookies of one fortune file (``%``-separated), UTF-8, else Latin-1."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [c.strip() for c in re.split(r"^%\s*$", text, flags=re.M) if c.strip()]


# ------------------------------------------------------------------------------------------------ fetching
def split_of(doc: str) -> str:
    digest = hashlib.blake2b(doc.encode("utf-8"), digest_size=8).digest()
    return "heldout" if int.from_bytes(digest, "big") / 2**64 < HELDOUT_FRACTION else "train"


def download(packages: Iterable[str], dest: Path) -> list[Path]:
    """``apt-get download`` the packages into ``dest`` (no root needed); one error line if that fails."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise FinemedError("debian text: apt-get not found; run `make debian-text` on a Debian/Ubuntu host, or copy "
                           f"its {text_dir()} from one")
    proc = subprocess.run([apt, "download", *packages], cwd=dest, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FinemedError(f"debian text: `apt-get download {' '.join(packages)}` failed ({last}); run "
                           f"`apt-get update` first or check the network")
    return sorted(dest.glob("*.deb"))


def _man_files(root: Path, lang: str) -> list[Path]:
    base = root / "usr/share/man" / ("" if lang == "en" else lang)
    return sorted(p for p in base.glob("man*/*") if p.is_file() and not p.is_symlink())


def _fortune_files(root: Path) -> list[Path]:
    out = []
    for p in sorted((root / "usr/share/games/fortunes").rglob("*")):
        if (not p.is_file() or p.suffix in (".dat", ".u8") or "off" in p.relative_to(root).parts
                or p.name.startswith(".")):
            continue
        u8 = p.with_name(p.name + ".u8")
        out.append(u8 if u8.is_file() and not u8.is_symlink() else p)  # the UTF-8 copy where one exists
    return out


def package_docs(pkg: str, root: Path, lang: str, groff: str | None) -> Iterator[dict]:
    if pkg.startswith("manpages"):
        files = _man_files(root, lang)
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool, \
                Counter(f"rendering {pkg}", len(files)) as bar:
            for path, text in zip(files, pool.map(lambda p: render_man(p, groff), files)):
                bar.advance(1)
                if text:
                    doc = f"{pkg}/{path.parent.name}/{path.name.removesuffix('.gz')}"
                    yield {"text": text, "doc": doc, "package": pkg, "split": split_of(doc)}
    else:
        for path in _fortune_files(root):
            for i, cookie in enumerate(read_fortunes(path)):
                doc = f"{pkg}/{path.name.removesuffix('.u8')}#{i}"
                yield {"text": cookie, "doc": doc, "package": pkg, "split": split_of(doc)}


def fetch(*, force: bool = False, use_groff: bool = True, langs: Iterable[str] = LANGS) -> dict:
    """Download, unpack and render the packages of ``langs`` into :func:`text_dir`; returns the manifest."""
    out = text_dir()
    manifest_path = out / "manifest.json"
    langs = list(langs)
    if not force and manifest_path.is_file() and all((out / f"{lang}.jsonl").is_file() for lang in langs):
        log.info("debian text: cached at %s", out)
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    groff = shutil.which("groff") if use_groff else None
    if groff is None:
        log.warning("debian text: groff not used; rendering man pages with the roff-stripping fallback")
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"renderer": "groff -k -t -mandoc -rHY=0 -Tutf8" if groff else "strip_roff",
                      "heldout_fraction": HELDOUT_FRACTION, "langs": {}}
    with tempfile.TemporaryDirectory(prefix="finemed-debian-") as tmp:
        tmp = Path(tmp)
        debs = download([p for lang in langs for p in PACKAGES[lang]], tmp)
        by_pkg = {d.name.split("_")[0]: d for d in debs}
        for lang in langs:
            stats = {"packages": {}, "docs": {"train": 0, "heldout": 0}, "bytes": {"train": 0, "heldout": 0}}
            part = out / f"{lang}.jsonl.part"
            with open(part, "w", encoding="utf-8") as fh:
                for pkg in PACKAGES[lang]:
                    if pkg not in by_pkg:
                        raise FinemedError(f"debian text: package {pkg} was not downloaded; check apt sources")
                    root = tmp / pkg
                    subprocess.run(["dpkg-deb", "-x", str(by_pkg[pkg]), str(root)], check=True)
                    stats["packages"][pkg] = by_pkg[pkg].name.split("_")[1].replace("%3a", ":")
                    for row in package_docs(pkg, root, lang, groff):
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                        stats["docs"][row["split"]] += 1
                        stats["bytes"][row["split"]] += len(row["text"].encode("utf-8"))
            part.replace(out / f"{lang}.jsonl")
            manifest["langs"][lang] = stats
            log.info("debian text %s: %s train bytes, %s held-out bytes (%s docs)", lang,
                     f"{stats['bytes']['train']:,}", f"{stats['bytes']['heldout']:,}", sum(stats["docs"].values()))
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


# ------------------------------------------------------------------------------------------------ reading
def require(lang: str) -> Path:
    if lang not in LANGS:
        raise FinemedError(f"builtin:debian.{lang}: unknown language; use one of {', '.join(LANGS)} or mix")
    path = text_dir() / f"{lang}.jsonl"
    if not path.is_file():
        raise DataMissingError(f"debian text {lang}: {path} is missing; fetch it once with `{MAKE_TARGET}` "
                               f"(apt-get download, at setup time)")
    return path


def read_split(lang: str, split: str = "train") -> Iterator[str]:
    """Texts of ``lang`` in ``split`` (train, heldout or all), in file order."""
    if split not in SPLITS:
        raise FinemedError(f"builtin:debian.{lang}@{split}: unknown split; use train, heldout or all")
    with open(require(lang), encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if split == "all" or row["split"] == split:
                yield row["text"]


def split_bytes(lang: str, split: str) -> int:
    manifest = json.loads((text_dir() / "manifest.json").read_text(encoding="utf-8")) \
        if (text_dir() / "manifest.json").is_file() else {}
    stats = manifest.get("langs", {}).get(lang)
    if stats is None:
        return sum(len(t.encode("utf-8")) for t in read_split(lang, split))
    return stats["bytes"]["train"] + stats["bytes"]["heldout"] if split == "all" else stats["bytes"][split]


def read_mix(split: str = "train", per_lang_bytes: int | None = None) -> Iterator[str]:
    """All five languages, round-robin by document, each cut to the same UTF-8 bytes: ``per_lang_bytes``, at
    most the smallest language's (the default). The last document of a language is cut at a character."""
    smallest = min(split_bytes(lang, split) for lang in LANGS)
    budget = min(per_lang_bytes, smallest) if per_lang_bytes else smallest
    iters = {lang: read_split(lang, split) for lang in LANGS}
    used = dict.fromkeys(LANGS, 0)
    while iters:
        for lang in list(iters):
            text = next(iters[lang], None)
            if text is None or used[lang] >= budget:
                del iters[lang]
                continue
            raw = text.encode("utf-8")
            if used[lang] + len(raw) > budget:
                text = raw[:budget - used[lang]].decode("utf-8", errors="ignore")
                raw = text.encode("utf-8")
            used[lang] += len(raw)
            if text.strip():
                yield text


def read(name: str, split: str) -> Iterator[str]:
    """``builtin:debian.LANG[@SPLIT]``, ``builtin:debian.mix[@SPLIT]`` or ``builtin:debian.mix-BYTES[@SPLIT]`` (BYTES
    per language, e.g. ``mix-400000``); the default split is train."""
    split = split or "train"
    if name == "mix" or name.startswith("mix-"):
        size = name.partition("-")[2]
        if size and not size.isdigit():
            raise FinemedError(f"builtin:debian.{name}: expected mix-BYTES with BYTES an integer, e.g. mix-400000")
        return read_mix(split, int(size) if size else None)
    return read_split(name, split)
