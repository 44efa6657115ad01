"""``finemed plan`` for the corpus stages: docs in, CPU-hours at the measured rates, LLM calls, disk out.

Rates (README, "How it scales"; ``benchmarks/scaling.py`` and ``bench_corpus.py`` on the 2-core box): the corpus
pipeline ~15 ms of CPU per doc and worker, the annotate client ~6 ms per doc (the LLM's time is extra), fastText
training ~1.5 min per 260k docs, MinHash clustering ~0.2 KB of RAM per doc, ~7 KB per sampled doc on disk. An
input on the hub cannot be counted offline: give ``plan: {STAGE: {docs: N}}`` in the recipe, else the estimate
states the cost per million docs.
"""

from __future__ import annotations

from typing import Any

from finemed.core.plan_estimates import CPU_S, count_rows, cpu, earlier, gib, model_size, stage_hints
from finemed.models.compute import PEAK_TFLOPS

DEV_INPUT_DOCS = 3122  # the dev input (corpus.sample_input's defaults), counted
DOC_BYTES = 3000  # an average web doc (FineWeb2 German: ~3 KB of text)
# encoders that are not bundled architectures: parameters from their model cards
KNOWN_PARAMS = {"FacebookAI/xlm-roberta-base": 278_000_000, "xlm-roberta-base": 278_000_000}


def docs_in(source: str | None, ctx) -> tuple[int | None, str]:
    """Docs a stage reads: a plan hint, the dev input, an earlier stage's output, or a local count."""
    hint = stage_hints(ctx).get("docs")
    if hint:
        return int(hint), "the recipe's plan hint"
    if source is None:
        return DEV_INPUT_DOCS, "the dev input"
    prior = earlier(ctx, source)
    if prior is not None:
        n = prior.get("docs_out") or prior.get("docs")
        return (int(n), "the earlier stage's output") if n else (None, "an earlier stage's output, size unknown")
    n = count_rows(source)
    if n is not None:
        return n, "counted"
    return None, "not countable offline (a hub or remote input): set plan.<stage>.docs"


def encoder_params(model: str, ctx) -> int:
    return model_size(model, ctx).get("parameters") or KNOWN_PARAMS.get(model, 278_000_000)


def encoder_gpu(model: str, ctx, tokens: float, *, train: bool = False) -> dict[str, Any]:
    """GPU cost of an encoder classifier over ``tokens``: 2P FLOPs per token forward, 6P to train."""
    params = encoder_params(model, ctx)
    flops = (6.0 if train else 2.0) * params * tokens
    peak = PEAK_TFLOPS[ctx.gpu]
    return {"classifier_parameters": params, "flops": flops,
            "gpu_hours": round(flops / (ctx.mfu * peak * 1e12) / 3600, 6),
            "memory_gib_per_process": round((16 if train else 2) * params / (1 << 30) + 1.5, 2)}


def per_million(rate_s: float) -> dict[str, Any]:
    return {"cpu_hours_per_million_docs": round(rate_s * 1e6 / 3600, 2)}


def build_cost(docs: int | None, how: str, classifier: dict[str, Any] | None, workers: int, ctx,
               classifier_gpus: float | None = None) -> dict[str, Any]:
    """``corpus.build``: the pipeline's CPU time, MinHash memory, output disk and the domain classifier's cost.

    ``classifier_gpus``: the GPUs a Ray/Slurm task of the classifier's stage asks for (None: local executor).
    The GPU estimate assumes them; a transformer classifier on a cluster executor that asks for none is flagged.
    """
    est: dict[str, Any] = {"docs_in": docs, "docs_source": how, "workers": workers,
                           **per_million(CPU_S["corpus_doc"])}
    assumes = (f"~15 ms of CPU per doc (all steps), spread over {workers} workers; MinHash clustering 0.2 KB of RAM "
               f"per doc in one process; output at most the input, ~{DOC_BYTES} B/doc")
    transformer = classifier and classifier.get("classifier_kind") == "transformer"
    if transformer and classifier_gpus is not None:
        est["classifier_gpus_per_task"] = classifier_gpus
        if not classifier_gpus:
            est["warning"] = ("the transformer classifier would score every doc on CPU: the executor's tasks ask "
                              "for no GPU; set executor.ray.gpus_per_task (or executor.slurm.gpus_per_task)")
    if docs is None:
        if transformer:
            scoring = encoder_gpu(classifier.get("model", ""), ctx, 1e6 * min(DOC_BYTES / 4, classifier.get(
                "max_length", 512)))
            est["gpu_hours_per_million_docs"] = scoring["gpu_hours"]
        est["assumes"] = assumes + "; docs unknown before the run: cost per million docs only"
        return est
    est.update(cpu(docs * CPU_S["corpus_doc"]))
    est["wall_hours"] = round(est["cpu_hours"] / max(workers, 1), 3)
    est["memory_gib_per_process"] = round(max(0.8, 0.2e3 * docs / (1 << 30)), 2)
    est["memory_kind"] = "host RAM"
    est["disk_gib"] = gib(docs * DOC_BYTES)
    if transformer:
        model = classifier.get("model", "")
        max_len = classifier.get("max_length", 512)
        est.update({k: v for k, v in encoder_gpu(model, ctx, docs * min(DOC_BYTES / 4, max_len)).items()
                    if k != "memory_gib_per_process"})
        assumes += f"; the transformer classifier ({model}) scores every doc that reaches the domain step on GPU"
    est["assumes"] = assumes
    return est
