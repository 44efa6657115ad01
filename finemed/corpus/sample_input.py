"""Stage ``corpus.sample_input`` (``finemed corpus sample-input``): a FineWeb2-schema dev input mixed from the
bundled texts, written as parquet shards under ``DIR/data/``.

FineWeb2 itself is not bundled, so the dev input imitates one of its German shards: multi-sentence
docs with the FineWeb2 columns (``text, id, dump, url, date, file_path, language, language_score,
language_script, minhash_cluster_size, top_langs``) plus ``source`` and ``medical`` for evaluation only.

- positives (``medical=1``): GraSCCo letters, GerMedBench cases and MCQ items, GerMedIQ human answers (one
  interview per participant and questionnaire, without the questions: those are evaluation prompts) and
  SIB-200 German "health" sentences (grouped, 5 per doc, as web snippets are multi-sentence);
- negatives (``medical=0``): fortunes-de (grouped per category to ~60+ words), the other SIB-200
  German topics, XQuAD-de and MLQA-de contexts;
- planted contamination (``contaminated=1``): the GerMedBench items and XQuAD/MLQA contexts are evaluation
  items. They stay in, as benchmark text does leak into web crawls, so the domain classifier learns from
  clinical cases and step ``decont`` shows that it removes them: a build keeps none of them (the survival
  in ``stats.json`` counts them as class ``contaminated``, apart from the clean positives);
- web junk (``junk/*``, ``medical=0``): SEO pharmacy spam, menus, lorem ipsum, code, hashtags,
  teasers, cookie banners, bullet lists: what the quality filters exist for;
- non-German docs from other SIB-200 languages (``medical=-1``: out of scope);
- near-duplicates of some docs (a changed word and a footer line), ``source`` suffixed ``+neardup``;
  ``group`` is shared by a doc and its near-duplicates, so splits keep them together.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from finemed.core.artifacts import atomic_path
from finemed.core.config import StageConfig
from finemed.core.logs import progress
from finemed.core.plan_estimates import CPU_S, cpu, gib
from finemed.core.stages import StageResult, planner, stage
from finemed.corpus.corpus_plan import DEV_INPUT_DOCS, DOC_BYTES
from finemed.data import loaders
from finemed.data.registry import cache_dir

CONTAMINATED = ("germedbench/", "xquad-de", "mlqa-de")  # sources that are evaluation items (planted)
NON_GERMAN = ("eng_Latn", "fra_Latn", "nld_Latn", "dan_Latn", "pol_Latn", "spa_Latn", "rus_Cyrl")


def _chunks(items: list[str], size: int) -> list[str]:
    return [" ".join(items[i:i + size]) for i in range(0, len(items), size) if items[i:i + size]]


def _medical_positives() -> list[tuple[str, str]]:
    """GraSCCo letters, GerMedBench items (planted contamination), GerMedIQ human answers, SIB-200 health."""
    out = [("grascco", d.text) for d in loaders.load_grascco()]
    for task in ("patient_text", "med_extraction", "icd10_coding"):
        out += [(f"germedbench/{task}", r["text"]) for r in loaders.load_germedbench(task)]
    for r in loaders.load_germedbench("med_qa"):
        opts = "\n".join(f"{k}) {v}" for k, v in (r.get("options") or {}).items())
        out.append(("germedbench/med_qa", f"{r['question']}\n{opts}\n{r.get('explanation', '')}".strip()))
    interviews: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in loaders.load_germediq("human"):  # the answers only: GerMedIQ's questions are evaluation prompts
        if (r.get("response") or "").strip():
            interviews[(r["participant_id"], r["questionnaire"])].append(r["response"].strip())
    out += [("germediq/human", "\n".join(qa)) for qa in interviews.values() if len(qa) >= 3]
    health = [s.text for s in loaders.load_sib200("deu_Latn") if s.category == "health"]
    out += [("sib200/deu/health", t) for t in _chunks(health, 5)]
    return out


def _german_negatives(rng: random.Random, n_fortune_docs: int) -> list[tuple[str, str]]:
    by_cat: dict[str, list[str]] = defaultdict(list)
    for d in loaders.load_fortunes():
        by_cat[d.meta.get("category", "")].append(d.text.strip())
    fortune_docs = []
    for cat, texts in sorted(by_cat.items()):
        buf: list[str] = []
        for t in texts:
            buf.append(t)
            if sum(len(x.split()) for x in buf) >= 60:
                fortune_docs.append(("fortunes_de/" + cat, "\n\n".join(buf)))
                buf = []
    rng.shuffle(fortune_docs)
    out = fortune_docs[:n_fortune_docs]
    by_topic: dict[str, list[str]] = defaultdict(list)
    for s in loaders.load_sib200("deu_Latn"):
        if s.category != "health":
            by_topic[s.category].append(s.text)
    for topic, texts in sorted(by_topic.items()):
        out += [(f"sib200/deu/{topic.replace('/', '-')}", t) for t in _chunks(texts, 5)]
    seen: set[str] = set()
    for name in ("xquad.de", "mlqa.de"):
        for ex in loaders.load_squad(name=name):
            if ex.context not in seen:
                seen.add(ex.context)
                out.append((name.replace(".", "-"), ex.context))
    return out


def _non_german(per_lang: int) -> list[tuple[str, str, str]]:
    out = []
    for lang in NON_GERMAN:
        try:
            sents = [s.text for s in loaders.load_sib200(lang)]
        except loaders.DataMissingError:
            continue
        out += [(f"sib200/{lang}", t, lang) for t in _chunks(sents, 5)[:per_lang]]
    return out


PHARMA = ["Ibuprofen", "Viagra", "Antibiotika", "Schmerzmittel", "Blutdrucksenker", "Abnehmpillen", "Cialis"]
MENU = ["Startseite", "Über uns", "Leistungen", "Kontakt", "Impressum", "Datenschutz", "Sprechzeiten",
        "Anfahrt", "Team", "Aktuelles", "Login", "Warenkorb", "Suche", "Newsletter", "Karriere"]


def _web_junk(rng: random.Random, per_kind: int = 8) -> list[tuple[str, str]]:
    """Web boilerplate the quality filters exist for; some of it uses medical words (pharmacy spam)."""
    filler = [ex.context for ex in loaders.load_squad(name="xquad.de")][:200]
    out = []
    for i in range(per_kind):
        drug = PHARMA[i % len(PHARMA)]
        sents = rng.choice(filler).split(". ")
        out.append(("junk/seo-spam", "\n".join(
            f"{drug} kaufen ohne Rezept günstig online Apotheke {drug} rezeptfrei bestellen" for _ in range(12))))
        out.append(("junk/menu", "\n".join(rng.sample(MENU, 12) + [f"© 2024 Praxis Dr. Weber {i}"])))
        out.append(("junk/lorem-ipsum", ". ".join(sents) + "\nLorem ipsum dolor sit amet, consetetur sadipscing elitr, "
                    "sed diam nonumy eirmod tempor invidunt ut labore et dolore magna aliquyam erat.\n"
                    + ". ".join(sents[::-1])))
        out.append(("junk/code", ". ".join(sents) + "\nfunction initTracking() { var c = document.cookie; "
                    "window.dataLayer = window.dataLayer || []; }\n" + ". ".join(sents)))
        out.append(("junk/hashtags", " ".join(f"#{w}" for w in rng.sample(
            ["gesundheit", "fitness", "abnehmen", "wellness", "yoga", "vegan", "arzt", "medizin", "diät",
             "sport", "motivation", "healthy", "lifestyle", "ernährung", "schlaf", "stress"], 14)) + "\n"
            + f"Heute wieder beim Training gewesen und danach {drug} genommen."))
        out.append(("junk/teasers", "\n".join(
            f"{rng.choice(filler)[:60].strip()} ... Weiterlesen …" for _ in range(10))))
        out.append(("junk/cookie-banner", "\n".join([
            "Diese Website verwendet Cookies, um Ihnen das beste Erlebnis zu bieten.",
            "Mit der Nutzung stimmen Sie unserer privacy policy und den terms of use zu.",
            "Wir nutzen Cookies für Statistik und Marketing. Mehr erfahren.",
            "Alle akzeptieren. Nur notwendige Cookies. Einstellungen.",
            f"Praxis für Allgemeinmedizin {i}. Termine nach Vereinbarung."])))
        out.append(("junk/bullets", "\n".join(
            f"- {rng.choice(MENU)} {rng.choice(PHARMA)} {rng.randint(1, 99)} mg" for _ in range(15))))
    return out


def _near_duplicate(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if len(words) > 4:
        i = rng.randrange(len(words))
        words[i] = words[i].upper() if rng.random() < 0.5 else words[i] + ","
    return " ".join(words) + "\n\nQuelle: Nachdruck mit freundlicher Genehmigung."


def build_rows(seed: int = 0, n_fortune_docs: int = 1200, non_german_per_lang: int = 20,
               near_dup_rate: float = 0.05) -> list[dict]:
    """All rows of the dev input, shuffled with ``seed``; ``medical`` is 1, 0 or -1 (not German)."""
    rng = random.Random(seed)
    items = [(s, t, 1, "deu_Latn") for s, t in _medical_positives()]
    items += [(s, t, 0, "deu_Latn") for s, t in _german_negatives(rng, n_fortune_docs)]
    items += [(s, t, 0, "deu_Latn") for s, t in _web_junk(rng)]
    items += [(s, t, -1, lang) for s, t, lang in _non_german(non_german_per_lang)]
    dups = [(s + "+neardup", _near_duplicate(t, rng), m, lang, t)
            for s, t, m, lang in rng.sample(items, int(len(items) * near_dup_rate))]
    items = [(s, t, m, lang, t) for s, t, m, lang in items] + dups
    rng.shuffle(items)
    rows = []
    for i, (source, text, medical, lang, origin) in enumerate(items):
        rows.append({
            "text": text, "id": f"<urn:finemed:dev:{i:06d}>", "dump": "finemed-dev",
            "url": f"https://example.org/{source}/{i}", "date": "2024-01-01T00:00:00Z",
            "file_path": "bundled", "language": lang.split("_")[0], "language_score": 1.0,
            "language_script": lang.split("_")[1], "minhash_cluster_size": 1,
            "top_langs": json.dumps({f"{lang}_score": 1.0}), "source": source, "medical": medical,
            "group": hashlib.sha1(origin.encode()).hexdigest()[:12],  # a doc and its near-duplicates
            "contaminated": int(source.split("+")[0].startswith(CONTAMINATED)),
        })
    return rows


class SampleInputConfig(StageConfig):
    shards: int = Field(4, ge=1)  # parquet files
    seed: int = 0  # shuffle seed
    n_fortune_docs: int = 1200  # general-German negatives from fortunes-de
    non_german_per_lang: int = 20  # docs per non-German SIB-200 language
    near_dup_rate: float = Field(0.05, ge=0, lt=1)


class SampleInputResult(StageResult):
    key_metric: ClassVar[str] = "docs"
    docs: int
    shards: int
    medical: int = 0
    german_other: int = 0
    non_german: int = 0
    path: str  # the dir of parquet shards: the ``input`` of the other corpus stages


def write_sample_input(out: Path, shards: int = 4, seed: int = 0, **kw) -> dict:
    """Write the dev input as ``shards`` parquet files under ``out`` (atomically); return counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = build_rows(seed=seed, **kw)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for k in progress(range(shards), "writing dev input shards"):
            part = rows[k::shards]
            pq.write_table(pa.Table.from_pylist(part), tmp / f"dev-{k:05d}.parquet")
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[{1: "medical", 0: "german_other", -1: "non_german"}[r["medical"]]] += 1
    return {"docs": len(rows), "shards": shards, **counts}


@stage("corpus.sample_input")
def run(cfg: SampleInputConfig, run_dir: Path) -> SampleInputResult:
    data = Path(run_dir) / "data"
    counts = write_sample_input(data, shards=cfg.shards, seed=cfg.seed, n_fortune_docs=cfg.n_fortune_docs,
                                non_german_per_lang=cfg.non_german_per_lang, near_dup_rate=cfg.near_dup_rate)
    return SampleInputResult(**counts, path=str(data))


def default_dev_input() -> Path:
    """The dev input in the cache dir (built once)."""
    path = cache_dir() / "corpus" / "dev-input-v3"  # v3: no GerMedIQ questions; planted items marked
    if not path.is_dir():
        write_sample_input(path)
    return path


@planner("corpus.sample_input")
def plan(cfg: SampleInputConfig, ctx) -> dict:
    """``finemed plan``: a few thousand bundled docs written as parquet shards: seconds of CPU, a few MB."""
    docs = int(DEV_INPUT_DOCS * cfg.n_fortune_docs / 1200)
    return {"docs_out": docs, **cpu(docs * CPU_S["corpus_doc"]), "disk_gib": gib(docs * DOC_BYTES),
            "assumes": f"~{docs} docs (the defaults write {DEV_INPUT_DOCS}; scaled by n_fortune_docs)"}
