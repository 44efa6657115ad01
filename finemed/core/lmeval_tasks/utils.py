"""lm-eval hooks for finemed's tasks: local datasets (``custom_dataset``) and per-example metrics.

The YAMLs in this folder reference these with ``!function utils.NAME``. Datasets come from the bundled
files (or a user path passed as lm-eval ``--metadata``), prompts from :mod:`finemed.core.qa_prompts`
(pre-rendered into a ``prompt`` column so ``finemed eval qa`` and ``lm_eval --include_path`` agree byte for
byte), metrics from :mod:`finemed.core.qa_metrics`.
"""

from __future__ import annotations

from typing import Any

from finemed.core.config import FinemedError
from finemed.core.qa_metrics import default_metric, score_one
from finemed.core.qa_prompts import build_prompt
from finemed.data.loaders import load_squad
from finemed.data.mcq import load_germedbench_mcq, load_mcq_file, mcq_rows

QA_DATASETS = {"xquad_de": ("xquad.de", "de"), "xquad_en": ("xquad.en", "en"), "xquad_es": ("xquad.es", "es"),
               "mlqa_de": ("mlqa.de", "de"), "squad_v1": ("squad_v1.1", "en")}


def qa_rows(dataset: str, shots: int = 0, seed: int = 0, path: str | None = None, n: int | None = None,
            lang: str | None = None, metric: str | None = None) -> list[dict[str, Any]]:
    """Rows ``{id, title, context, question, answers, prompt, lang, metric}`` of a QA task."""

    name, default_lang = QA_DATASETS[dataset]
    # a user path only replaces the "any SQuAD-format file" task; the named sets keep their bundled data
    examples = load_squad(path) if path and dataset == "squad_v1" else load_squad(name=name)
    lang = lang or default_lang
    metric = metric or default_metric(lang)
    chosen = examples[: int(n)] if n else examples
    return [{"id": ex.id, "title": ex.title, "context": ex.context, "question": ex.question,
             "answers": list(ex.answers), "prompt": build_prompt(ex, examples, int(shots), int(seed)),
             "lang": lang, "metric": metric} for ex in chosen]


def load_qa(dataset: str = "xquad_de", shots: int = 0, seed: int = 0, path: str | None = None,
            n: int | None = None, lang: str | None = None, metric: str | None = None, **_: Any):
    """``custom_dataset`` hook: a DatasetDict with one ``test`` split."""
    import datasets

    rows = qa_rows(dataset, shots, seed, path, n, lang, metric)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_results_qa(doc: dict, results: list[str]) -> dict[str, float]:
    """EM / F1 / ROUGE-L in percent for one generated answer, max over the gold answers."""

    pred = results[0].strip() if results else ""
    return {k: 100.0 * v for k, v in score_one(pred, doc["answers"], doc["lang"], doc["metric"]).items()}


def load_mcq(path: str | None = None, source: str = "germedbench_med_qa", n: int | None = None, **_: Any):
    """``custom_dataset`` hook for MCQ: GerMedBench med_qa, or a user CSV/JSON in MMLU-de/MedQA-de layout."""
    import datasets


    if source == "file" and not path:
        raise FinemedError("task finemed_mcq_file needs a file: pass metadata {'path': 'FILE.csv|json'} (--data)")
    items = load_mcq_file(path) if source == "file" else load_germedbench_mcq()
    rows = mcq_rows(items[: int(n)] if n else items)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
