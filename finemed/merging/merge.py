"""Stage ``merge.apply``: mergekit-backed model merges, from a raw mergekit config or a short finemed form.

mergekit is the engine: a merge here is ``mergekit.merge.run_merge`` with the ``MergeOptions`` the
``mergekit-yaml`` CLI builds plus bounded memory (:func:`merge_options`, :func:`release_reads`), so the output
tensors are bit-identical to running ``mergekit-yaml`` on the same YAML (tested for every method) and peak
memory does not grow with the model beyond one output shard. What finemed adds:

- the short form ``{base, cpt, method, t, density}`` for the DeFineMed case (an instruct model and its CPT
  descendant), expanded to mergekit YAML by :func:`to_mergekit`; ``t`` is a scalar or a per-layer list that
  mergekit interpolates across layers (a gradient), or mergekit's ``[{filter: ..., value: ...}]`` form.
  ``method`` is any method in mergekit's own registry that takes a ``t`` (slerp, nearswap) or a ``weight``
  (linear, task_arithmetic, ties, dare_*, della, breadcrumbs, ...): see :func:`short_form_methods`;
- checks before any tensor is read: ``t`` in [0, 1], and every referenced model has the same architecture,
  shape and vocabulary (one line naming the two models and the difference);
- an atomic output dir (tmp then rename) holding an HF model with the tokenizer (safetensors shards of at most
  ``OUT_SHARD_BYTES``, with an index when there are several).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import yaml
from pydantic import Field, field_validator, model_validator

from finemed.core.artifacts import atomic_path, atomic_write_text
from finemed.core.config import ConfigError, FinemedError, StageConfig, apply_overrides, read_yaml, validate
from finemed.core.logs import get_logger, progress_enabled
from finemed.core.plan_estimates import merge_cost
from finemed.core.stages import StageResult, planner, stage
from finemed.models.loading import check_weights
from finemed.models.registry import resolve_model_path

log = get_logger(__name__)
SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "vocab_size")
TValue = Union[float, list[float], list[dict[str, Any]]]
OUT_SHARD_BYTES = 1_000_000_000  # output held in RAM per shard; a 7B bf16 model is 15 shards
MERGE_OPTIONS = {"out_shard_size": OUT_SHARD_BYTES, "lazy_unpickle": True}


class MergeKnobs(StageConfig):
    """What the short form and the ``merge.apply`` stage share: the method, ``t`` (checked against [0, 1]),
    density, merge dtype and seed."""

    method: str = "slerp"
    t: TValue = 0.5
    density: float = Field(default=0.5, gt=0.0, le=1.0)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    random_seed: int | None = 0

    @field_validator("t")
    @classmethod
    def _unit_t(cls, v: Any) -> Any:
        try:
            check_t(v)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return v


class MergeSpec(MergeKnobs):
    """The short finemed form: merge ``cpt`` back into ``base`` (the instruct model) with ``method``.

    ``t`` is the share of the CPT model: 0 gives ``base``, 1 gives ``cpt`` (slerp, linear), or the weight of
    the task vector ``cpt - base`` (task_arithmetic, ties, dare_*). ``density`` is the kept fraction where the
    method has one (ties/dare). ``dtype`` is the merge and output dtype.
    """

    base: str
    cpt: str


# ------------------------------------------------------------------------------------------ methods
def merge_methods() -> dict[str, Any]:
    """mergekit's registry: ``{name: MergeMethodSpec}`` of every method it implements."""
    from mergekit.merge_methods.registry import registered_methods

    return {m.spec.name: m.spec for m in registered_methods()}


def _layout(spec) -> str | None:
    """How the short form maps onto a method: ``t`` (shared t), ``task`` (weight of cpt - base), ``weights``."""
    params = {p.name: p.scope.value for p in spec.parameters}
    if params.get("t") == "shared":
        return "t"
    if params.get("weight") == "non_base":
        return "task"
    if params.get("weight") == "input":
        return "weights"
    return None


def short_form_methods() -> list[str]:
    """The mergekit methods the short form can express (they take a ``t`` or a per-model ``weight``)."""
    return sorted(name for name, spec in merge_methods().items() if _layout(spec))


def check_t(t: Any, where: str = "t") -> None:
    """Every number in ``t`` (scalar, list, or filter list) must be a finite float in [0, 1]."""
    if isinstance(t, dict):
        if "value" not in t:
            raise ConfigError(f"{where}: a filter entry needs a 'value' key, e.g. {{filter: self_attn, value: 0.3}}")
        return check_t(t["value"], where)
    if isinstance(t, list):
        if not t:
            raise ConfigError(f"{where}: an empty list; give a number in [0, 1] or a list of them")
        for i, v in enumerate(t):
            check_t(v, f"{where}[{i}]")
        return
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise ConfigError(f"{where}: {t!r} is not a number; give t in [0, 1]")
    if not 0.0 <= float(t) <= 1.0:
        raise ConfigError(f"{where}={t} is outside [0, 1]; t is the CPT model's share (0 = base, 1 = cpt)")


def _one_minus(t: Any) -> Any:
    if isinstance(t, list):
        return [_one_minus(v) for v in t]
    if isinstance(t, dict):
        return {**t, "value": _one_minus(t["value"])}
    return round(1.0 - float(t), 12)


def to_mergekit(spec: MergeSpec) -> dict:
    """Expand the short form into a mergekit configuration dict (model names resolved to paths)."""
    check_t(spec.t)
    methods = merge_methods()
    layout = _layout(methods[spec.method]) if spec.method in methods else None
    if layout is None:
        raise ConfigError(f"merge method {spec.method!r}: the short form takes one of "
                          f"{', '.join(short_form_methods())}; write a mergekit YAML for other methods")
    base, cpt = str(resolve_model_path(spec.base)), str(resolve_model_path(spec.cpt))
    cfg: dict[str, Any] = {"merge_method": spec.method, "dtype": spec.dtype}
    if layout == "t":
        cfg.update(base_model=base, models=[{"model": base}, {"model": cpt}], parameters={"t": spec.t})
    elif layout == "weights":
        cfg["models"] = [{"model": base, "parameters": {"weight": _one_minus(spec.t)}},
                         {"model": cpt, "parameters": {"weight": spec.t}}]
    else:
        params: dict[str, Any] = {"weight": spec.t}
        if any(p.name == "density" for p in methods[spec.method].parameters):
            params["density"] = spec.density
        cfg.update(base_model=base, models=[{"model": cpt, "parameters": params}])
    return cfg


def load_merge_config(path: Path | str, overrides: list[str] | None = None) -> tuple[dict, int | None]:
    """Read either form from YAML; return ``(mergekit_dict, random_seed)``. Raw mergekit YAML is kept as is."""

    data = apply_overrides(read_yaml(path), overrides)
    if "merge_method" in data:
        seed = data.pop("random_seed", None) if "random_seed" in data else None
        params = data.get("parameters") or {}
        if data["merge_method"] in ("slerp",) and "t" in params:
            check_t(params["t"], f"{path}: parameters.t")
        return data, seed
    spec = validate(MergeSpec, data, str(path))
    return to_mergekit(spec), spec.random_seed


# --------------------------------------------------------------------------------------------- checks
def _model_dir(ref: str) -> Path:
    p = Path(ref).expanduser()
    if not (p / "config.json").is_file():
        raise FinemedError(f"merge: model {ref!r} is not a local HF dir with config.json; "
                           f"download it first (finemed runs offline)")
    return p


def _vocab(d: Path) -> dict[str, int] | None:
    f = d / "tokenizer.json"
    if not f.is_file():
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(f)).get_vocab(with_added_tokens=True)


def check_compatible(refs: list[str]) -> None:
    """Same architecture, shapes and vocabulary for every model, or one line naming the difference."""
    dirs = [_model_dir(r) for r in dict.fromkeys(refs)]
    for d in dirs:
        check_weights(d)  # a truncated or pickle-only checkpoint is one line here, not a mergekit traceback
    if len(dirs) < 2:
        return
    first, cfg0 = dirs[0], json.loads((dirs[0] / "config.json").read_text())
    for d in dirs[1:]:
        cfg = json.loads((d / "config.json").read_text())
        if cfg.get("architectures") != cfg0.get("architectures"):
            raise FinemedError(f"merge: architecture mismatch: {first} is {cfg0.get('architectures')}, {d} is "
                               f"{cfg.get('architectures')}; merge checkpoints of the same architecture")
        for key in SHAPE_KEYS:
            if cfg.get(key) != cfg0.get(key):
                raise FinemedError(f"merge: {key} differs: {first} has {cfg0.get(key)}, {d} has {cfg.get(key)}; "
                                   f"merge checkpoints of the same model family and size")
        t0, t1 = first / "tokenizer.json", d / "tokenizer.json"
        if t0.is_file() and t1.is_file() and t0.read_bytes() == t1.read_bytes():
            continue
        v0, v1 = _vocab(first), _vocab(d)
        if v0 is not None and v1 is not None and v0 != v1:
            diff = sorted(set(v0.items()) ^ set(v1.items()), key=lambda kv: kv[1])[:1]
            raise FinemedError(f"merge: vocabulary mismatch: {first} has {len(v0)} tokens, {d} has {len(v1)} "
                               f"(first difference {diff[0][0]!r}); merge models that share one tokenizer")


def referenced_models(mk: dict) -> list[str]:
    from mergekit.config import MergeConfiguration

    cfg = MergeConfiguration.model_validate(mk)
    return sorted(str(m.model.path) for m in cfg.referenced_models())


# ------------------------------------------------------------------------------------------------ merge
def merge_options(random_seed: int | None = None, **overrides):
    """The ``MergeOptions`` of every finemed merge (``merge.apply`` and ``merge.sweep``), bounded in memory.

    As ``mergekit-yaml CONFIG OUT --out-shard-size 1B --lazy-unpickle [--random-seed N]``: mergekit's writer
    holds the output tensors until a shard is full, so ``out_shard_size`` (bytes, despite mergekit's
    "parameters") bounds the output held in RAM (the default 5B held any model up to 5 GB whole);
    ``lazy_unpickle`` reads ``.bin`` inputs tensor by tensor instead of whole. The tensors are unchanged.
    """
    from mergekit.options import MergeOptions

    return MergeOptions(**{**MERGE_OPTIONS, "random_seed": random_seed, **overrides})


def release_reads(models, options) -> None:
    """Make mergekit's cached loaders of ``models`` close a safetensors file after each tensor read.

    mergekit keeps one ``safe_open`` per input model; its tensors are views of the memory map, so every page
    read stays resident (in RSS) until the map closes: the whole of each input by the end of a merge.
    Reopening per tensor (a header parse) frees each map once its tensors are consumed.
    """
    from mergekit.io.tasks import LoaderCache

    cache = LoaderCache()
    cache.setup(options=options)
    for model in models:
        loader = cache.get(model)
        if getattr(loader, "finemed_releases", False) or not loader.index.is_safetensors:
            continue

        def get_tensor(*args, _read=loader.get_tensor, _loader=loader, **kwargs):
            tensor = _read(*args, **kwargs)
            _loader.flush()
            return tensor

        loader.get_tensor = get_tensor
        loader.finemed_releases = True


def run_merge(mk: dict, out: Path | str, *, random_seed: int | None = None, check: bool = True, **options) -> Path:
    """Merge with mergekit into ``out`` (atomically): an HF dir with weights, config and tokenizer."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge as mk_run_merge
    from pydantic import ValidationError

    methods = merge_methods()
    if mk.get("merge_method") not in methods:
        raise ConfigError(f"merge_method {mk.get('merge_method')!r} unknown; mergekit has {', '.join(sorted(methods))}")
    try:
        cfg = MergeConfiguration.model_validate(mk)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"mergekit config: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if check:
        check_compatible([str(m.model.path) for m in cfg.referenced_models()])
    opts = merge_options(random_seed, **{"quiet": not progress_enabled(), **options})
    opts.apply_global_options()
    release_reads(cfg.referenced_models(), opts)
    source = yaml.safe_dump(mk, sort_keys=False)
    out = Path(out)
    log.info("merge %s of %d models into %s", mk["merge_method"], len(cfg.referenced_models()), out)
    with atomic_path(out) as tmp:
        mk_run_merge(cfg, str(tmp), options=opts, config_source=source)
        if not any(tmp.glob("*.safetensors")):
            raise FinemedError(f"merge: mergekit wrote no weights to {out}; check the config")
        atomic_write_text(tmp / "finemed_merge.yaml", source)
    return out


def merge_file(config: Path | str, out: Path | str, overrides: list[str] | None = None) -> Path:
    """Either YAML form merged into ``out`` (the library call; the CLI goes through the stage)."""
    mk, seed = load_merge_config(config, overrides)
    return run_merge(mk, out, random_seed=seed)


# ------------------------------------------------------------------------------------------------ stage
class MergeConfig(MergeKnobs):
    """Stage ``merge.apply``: the short form (``base``, ``cpt``, ``method``, ``t``, ...) or a raw ``mergekit``
    config (any mergekit YAML, as a mapping); the merged HF model goes to ``RUN_DIR/model``."""

    base: str | None = None
    cpt: str | None = None
    mergekit: dict[str, Any] | None = Field(None, description="a raw mergekit config, used as is")

    @model_validator(mode="after")
    def _one_form(self) -> "MergeConfig":
        if self.mergekit is None and not (self.base and self.cpt):
            raise ValueError("give base and cpt (the short form) or mergekit (a raw mergekit config)")
        if self.mergekit is not None and (self.base or self.cpt):
            raise ValueError("give either the short form (base, cpt) or mergekit, not both")
        return self

    def to_mergekit(self) -> dict:
        if self.mergekit is not None:
            params = self.mergekit.get("parameters") or {}
            if self.mergekit.get("merge_method") == "slerp" and "t" in params:
                check_t(params["t"], "mergekit.parameters.t")
            return dict(self.mergekit)
        return to_mergekit(MergeSpec(**self.model_dump(exclude={"mergekit"})))


class MergeResult(StageResult):
    key_metric: ClassVar[str] = "method"
    model: str
    method: str
    models: list[str]


@stage("merge.apply")
def run(config: MergeConfig, run_dir: Path) -> MergeResult:
    """Stage entry: merge into ``RUN_DIR/model`` (weights, config, tokenizer, ``finemed_merge.yaml``)."""
    mk = config.to_mergekit()
    out = run_merge(mk, Path(run_dir) / "model", random_seed=config.random_seed)
    return MergeResult(model=str(out), method=mk["merge_method"], models=referenced_models(mk))


def _mergekit_models(node: Any) -> list[str]:
    """The ``model:`` strings of a raw mergekit config (no mergekit import: ``finemed plan`` stays light)."""
    if isinstance(node, dict):
        own = [node["model"]] if isinstance(node.get("model"), str) else []
        return own + [m for v in node.values() for m in _mergekit_models(v)]
    if isinstance(node, list):
        return [m for v in node for m in _mergekit_models(v)]
    return []


@planner("merge.apply")
def plan(config: MergeConfig, ctx) -> dict:
    """``finemed plan``: one merged model (disk), the merge's host memory and I/O time; no GPU."""
    models = [config.base, config.cpt] if config.mergekit is None else _mergekit_models(config.mergekit)
    dtype = config.dtype if config.mergekit is None else str(config.mergekit.get("dtype", "float32"))
    est = merge_cost(models[0] if models else None, ctx, inputs=max(len(set(models)), 1), dtype=dtype)
    return {**est, "candidates": 1, "disk_gib": est.get("merged_model_gib", 0.0),
            "memory_gib_per_process": est.get("merge_memory_gib", 0.0),
            "assumes": f"sized as {est.get('model')}; {dtype} output; inputs read in fp32 layer by layer; "
                       "disk at 500 MB/s"}
