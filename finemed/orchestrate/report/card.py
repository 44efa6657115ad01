"""``finemed card RUN_DIR --stage merge``: a Hugging Face model card (``README.md``) next to the merged model.

The YAML metadata carries ``base_model``, ``datasets``, ``language``, a licence placeholder and a ``model-index``
with the evaluation results that the run's ``eval.qa``/``eval.mcq`` stages wrote; the body gives the recipe, the
corpus funnel, the evaluation and the known failure modes. ``huggingface_hub.ModelCard`` builds and parses it,
so the metadata follows the Hub's schema; nothing is recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finemed.core.artifacts import atomic_write_text, read_json, read_manifest
from finemed.core.config import FinemedError
from finemed.models.registry import is_registered
from finemed.orchestrate.report.collect import stage_view

HUB_IDS = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
# finemed task prefix → (task type, dataset id, dataset config, split)
TASK_DATASETS = {
    "xquad_de": ("question-answering", "google/xquad", "xquad.de", "validation"),
    "xquad_en": ("question-answering", "google/xquad", "xquad.en", "validation"),
    "xquad_es": ("question-answering", "google/xquad", "xquad.es", "validation"),
    "mlqa_de": ("question-answering", "facebook/mlqa", "mlqa.de.de", "validation"),
    "squad_v1": ("question-answering", "rajpurkar/squad", "plain_text", "validation"),
    "germedbench_medqa": ("multiple-choice", "thalamiq/germedbench", "med_qa", "test"),
}


def _hub_id(model: str) -> str:
    if is_registered(model):
        return HUB_IDS.get(model, model)
    config = Path(model) / "config.json"
    if config.is_file():
        name = json.loads(config.read_text(encoding="utf-8")).get("_name_or_path") or ""
        if name.startswith(str(Path.home())) or not name:
            return HUB_IDS["smollm2"] if "smollm2" in model.lower() else Path(model).name
        return name
    return model


def _eval_results(run_dir: Path, model_dir: Path) -> list[Any]:
    from huggingface_hub import EvalResult

    results = []
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        manifest = read_manifest(sub)
        if manifest is None or manifest.kind not in ("eval.qa", "eval.mcq") or manifest.status not in (
                "complete", "cached"):
            continue
        tasks = (read_json(sub / "metrics.json") if (sub / "metrics.json").is_file() else {}).get("tasks", {})
        for task, metrics in tasks.items():
            short = task.removeprefix("finemed_")
            prefix = next((p for p in TASK_DATASETS if short.startswith(p)), None)
            ttype, ds, cfg, split = TASK_DATASETS.get(prefix or "", ("text-generation", short, None, "test"))
            for metric, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    results.append(EvalResult(task_type=ttype, dataset_type=ds, dataset_name=f"{short} ({sub.name})",
                                              dataset_config=cfg, dataset_split=split, metric_type=metric,
                                              metric_value=float(value), metric_name=f"{metric} ({short})"))
    return results


def _funnel(run_dir: Path) -> str:
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        view = stage_view(sub)
        if view.kind == "corpus.build" and view.extra and view.extra.get("funnel"):
            funnel = view.extra["funnel"]
            lines = ["| block | kept |", "|---|---|"] + [f"| {f['block']} | {f['kept']} |" for f in funnel]
            return "\n".join(lines)
    return "No corpus stage in this run."


def _failures(run_dir: Path) -> str:
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        view = stage_view(sub)
        if view.kind == "eval.failures" and isinstance(view.result, dict):
            return str(view.result.get("summary", "")) or "See the failure-mode stage."
    return ("Not measured in this run. DeFineMed reports language mixing and verbosity after merging: check the "
            "`eval.failures` stage before relying on the model.")


def write_card(run_dir: Path | str, stage: str = "merge") -> Path:
    """Write ``README.md`` into the stage's model dir (``merged/`` of a sweep, or the merge.apply dir)."""
    from huggingface_hub import ModelCard, ModelCardData

    run_dir = Path(run_dir)
    stage_dir = run_dir / stage
    manifest = read_manifest(stage_dir)
    if manifest is None or manifest.status not in ("complete", "cached"):
        raise FinemedError(f"{stage_dir}: no complete stage {stage!r}; run the recipe first")
    model_dir = stage_dir / "merged" if (stage_dir / "merged" / "config.json").is_file() else stage_dir
    if not (model_dir / "config.json").is_file():
        raise FinemedError(f"{stage_dir}: holds no merged model (config.json); is {stage!r} a merge stage?")
    config = manifest.config if isinstance(manifest.config, dict) else {}
    base = _hub_id(str(config.get("base", "")))
    name = f"{run_dir.name}-{stage}"
    data = ModelCardData(base_model=base, language=["de"], license="other", library_name="transformers",
                         tags=["finemed", "medical", "continual-pretraining", "merge", "slerp"],
                         datasets=["HuggingFaceFW/fineweb-2"], model_name=name,
                         eval_results=_eval_results(run_dir, model_dir) or None)
    result = read_json(stage_dir / "metrics.json") if (stage_dir / "metrics.json").is_file() else {}
    body = f"""
# {name}

A German medical model built with finemed's DeFineMed recipe: continual pre-training on a domain corpus cut
from FineWeb2, then a SLERP merge back to the instruct model `{base}`.

**Licence**: set `license:` above before publishing; it must respect the base model's licence and the data's.

## Recipe

- run dir: `{run_dir}`; merge stage `{stage}` ({manifest.kind}), config hash `{manifest.config_hash}`
- merge: {json.dumps({k: v for k, v in config.items() if k in ("method", "t_values", "t", "cpt", "base")})}
- result: {json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))})}

## Data funnel

{_funnel(run_dir)}

## Evaluation

See `model-index` above (from the run's `eval.qa`/`eval.mcq` stages) and `report.html` in the run dir.

## Known failure modes

{_failures(run_dir)}
"""
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body)
    path = model_dir / "README.md"
    atomic_write_text(path, str(card))
    return path
