"""``finemed merge``: mergekit-backed model merges, from a raw mergekit YAML or a short finemed form.

mergekit is the engine: a merge here is ``mergekit.merge.run_merge`` with the same ``MergeOptions`` the
``mergekit-yaml`` CLI builds, so the output tensors are bit-identical to running ``mergekit-yaml`` on the same
YAML (tested for every method). What finemed adds:

- the short form ``{base, cpt, method, t, density}`` for the DeFineMed case (an instruct model and its CPT
  descendant), expanded to mergekit YAML by :func:`to_mergekit`; ``t`` is a scalar or a per-layer list that
  mergekit interpolates across layers (a gradient), or mergekit's ``[{filter: ..., value: ...}]`` form;
- checks before any tensor is read: ``t`` in [0, 1], and every referenced model has the same architecture,
  shape and vocabulary (one line naming the two models and the difference);
- an atomic output dir (tmp then rename) holding an HF model with the tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import Field

from finemed.config import ConfigError, FinemedError, StageConfig, read_yaml, validate

METHODS = ("slerp", "linear", "task_arithmetic", "ties", "dare_ties", "dare_linear")
SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "vocab_size")
TValue = Union[float, list[float], list[dict[str, Any]]]


class MergeSpec(StageConfig):
    """The short finemed form: merge ``cpt`` back into ``base`` (the instruct model) with ``method``.

    ``t`` is the share of the CPT model: 0 gives ``base``, 1 gives ``cpt`` (slerp, linear), or the weight of
    the task vector ``cpt - base`` (task_arithmetic, ties, dare_*). ``density`` is the kept fraction for
    ties/dare. ``dtype`` is the merge and output dtype.
    """

    base: str
    cpt: str
    method: Literal["slerp", "linear", "task_arithmetic", "ties", "dare_ties", "dare_linear"] = "slerp"
    t: TValue = 0.5
    density: float = Field(default=0.5, gt=0.0, le=1.0)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    random_seed: int | None = 0


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
    from finemed.models.loading import resolve_model_path

    check_t(spec.t)
    base, cpt = str(resolve_model_path(spec.base)), str(resolve_model_path(spec.cpt))
    cfg: dict[str, Any] = {"merge_method": spec.method, "dtype": spec.dtype}
    if spec.method == "slerp":
        cfg.update(base_model=base, models=[{"model": base}, {"model": cpt}], parameters={"t": spec.t})
    elif spec.method == "linear":
        cfg["models"] = [{"model": base, "parameters": {"weight": _one_minus(spec.t)}},
                         {"model": cpt, "parameters": {"weight": spec.t}}]
    else:
        params: dict[str, Any] = {"weight": spec.t}
        if spec.method in ("ties", "dare_ties", "dare_linear"):
            params["density"] = spec.density
        cfg.update(base_model=base, models=[{"model": cpt, "parameters": params}])
    return cfg


def load_merge_config(path: Path | str, overrides: list[str] | None = None) -> tuple[dict, int | None]:
    """Read either form from YAML; return ``(mergekit_dict, random_seed)``. Raw mergekit YAML is kept as is."""
    from finemed.config import apply_overrides

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
    """The ``MergeOptions`` that ``mergekit-yaml CONFIG OUT [--random-seed N]`` builds (CPU defaults)."""
    from mergekit.options import MergeOptions

    return MergeOptions(random_seed=random_seed, **overrides)


def run_merge(mk: dict, out: Path | str, *, random_seed: int | None = None, check: bool = True, **options) -> Path:
    """Merge with mergekit into ``out`` (atomically): an HF dir with weights, config and tokenizer."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge as mk_run_merge
    from pydantic import ValidationError

    from finemed.artifacts import atomic_path, atomic_write_text

    if mk.get("merge_method") not in METHODS and mk.get("merge_method") not in _mergekit_methods():
        raise ConfigError(f"merge_method {mk.get('merge_method')!r} unknown; use one of {', '.join(METHODS)}")
    try:
        cfg = MergeConfiguration.model_validate(mk)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"mergekit config: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if check:
        check_compatible([str(m.model.path) for m in cfg.referenced_models()])
    opts = merge_options(random_seed, **options)
    opts.apply_global_options()
    source = yaml.safe_dump(mk, sort_keys=False)
    out = Path(out)
    with atomic_path(out) as tmp:
        mk_run_merge(cfg, str(tmp), options=opts, config_source=source)
        if not any(tmp.glob("*.safetensors")):
            raise FinemedError(f"merge: mergekit wrote no weights to {out}; check the config")
        atomic_write_text(tmp / "finemed_merge.yaml", source)
    return out


def _mergekit_methods() -> set[str]:
    from mergekit.merge_methods.registry import registered_methods

    return {m.name() for m in registered_methods()}


def merge_file(config: Path | str, out: Path | str, overrides: list[str] | None = None) -> Path:
    """``finemed merge CONFIG.yaml --out DIR``: either YAML form."""
    mk, seed = load_merge_config(config, overrides)
    return run_merge(mk, out, random_seed=seed)
