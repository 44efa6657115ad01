"""Our merge of the short form equals `mergekit-yaml` on a mergekit YAML written by hand for the same merge, bit for
bit, for every method (tiny models). The reference YAMLs are literal text here, not finemed's ``to_mergekit``:
t is the CPT model's share (slerp: ``parameters.t``; linear: weights 1 - t and t), or the weight of the task
vector cpt - base (task_arithmetic, ties, dare_*: base_model plus the CPT model, with density where the
method has one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from finemed.merging.merge import merge_file

MERGEKIT_YAML = str(Path(sys.executable).with_name("mergekit-yaml"))
METHODS = ("slerp", "linear", "task_arithmetic", "ties", "dare_ties", "dare_linear")


def _tensors(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


# by hand, from mergekit's documented config format; {base} and {cpt} are the two model dirs
HAND = {
    "slerp": """\
merge_method: slerp
dtype: float32
base_model: {base}
models:
  - model: {base}
  - model: {cpt}
parameters:
  t: [0.0, 0.4, 1.0]
""",
    "linear": """\
merge_method: linear
dtype: float32
models:
  - model: {base}
    parameters: {{weight: 0.65}}
  - model: {cpt}
    parameters: {{weight: 0.35}}
""",
    "task_arithmetic": """\
merge_method: task_arithmetic
dtype: float32
base_model: {base}
models:
  - model: {cpt}
    parameters: {{weight: 0.35}}
""",
}
for _method in ("ties", "dare_ties", "dare_linear"):
    HAND[_method] = f"""\
merge_method: {_method}
dtype: float32
base_model: {{base}}
models:
  - model: {{cpt}}
    parameters: {{{{weight: 0.35, density: 0.6}}}}
"""


def _short(base, cpt, method) -> dict:
    t = [0.0, 0.4, 1.0] if method == "slerp" else 0.35
    return {"base": str(base), "cpt": str(cpt), "method": method, "t": t, "density": 0.6, "random_seed": 0}


RAW = {"merge_method": "slerp", "dtype": "float32",
       "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
                            {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]}, {"value": 0.5}]}}


@pytest.fixture(scope="module")
def mergekit_runs(tiny_pair, tmp_path_factory):
    """Run `mergekit-yaml` for every method plus one raw YAML, all in parallel; return the work dir."""
    base, cpt = tiny_pair
    work = tmp_path_factory.mktemp("identity")
    raw = {**RAW, "base_model": str(base),
           "slices": [{"sources": [{"model": str(base), "layer_range": [0, 4]},
                                   {"model": str(cpt), "layer_range": [0, 4]}]}]}
    (work / "raw.mergekit.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    jobs = {"raw": []}
    for method in METHODS:
        short = _short(base, cpt, method)
        (work / f"{method}.short.yaml").write_text(yaml.safe_dump(short))
        (work / f"{method}.mergekit.yaml").write_text(HAND[method].format(base=base, cpt=cpt))
        jobs[method] = ["--random-seed", "0"]
    procs = {name: subprocess.Popen([MERGEKIT_YAML, str(work / f"{name}.mergekit.yaml"), str(work / f"{name}.ref"),
                                     *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, extra in jobs.items()}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"mergekit-yaml {name}: {out[-1500:]}"
    return work


@pytest.mark.parametrize("method", METHODS)
def test_method_is_bit_identical_to_mergekit_yaml(tiny_pair, mergekit_runs, method):
    base, cpt = tiny_pair
    ours = merge_file(mergekit_runs / f"{method}.short.yaml", mergekit_runs / f"{method}.ours")
    a, b = _tensors(ours), _tensors(mergekit_runs / f"{method}.ref")
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), f"{method}: {k} differs"
    assert (ours / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    # the merge really mixed the two models (not a copy of either)
    base_t, cpt_t = _tensors(base), _tensors(cpt)
    k = "model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(a[k], base_t[k]) and not torch.equal(a[k], cpt_t[k]), method


def test_raw_mergekit_yaml_is_accepted_as_is(mergekit_runs):
    ours = merge_file(mergekit_runs / "raw.mergekit.yaml", mergekit_runs / "raw.ours")
    a, b = _tensors(ours), _tensors(mergekit_runs / "raw.ref")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _slerp(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SLERP (Shoemake 1985) of the whole tensor ``a`` towards ``b``: theta is the angle between the two flattened,
    normalised tensors; the result is (sin((1 - t) theta) a + sin(t theta) b) / sin(theta) (in float64)."""
    x, y = a.double().flatten(), b.double().flatten()
    theta = torch.acos(torch.dot(x / x.norm(), y / y.norm()).clamp(-1, 1))
    return ((torch.sin((1 - t) * theta) * x + torch.sin(t * theta) * y) / torch.sin(theta)).view_as(a)


def test_per_layer_t_is_interpolated_across_layers(tiny_pair, tmp_path):
    """t=[0, 1] over 4 layers: layer i gets t = i / 3 (0, 1/3, 2/3, 1): layer 0 is the base model, layer 3 the CPT
    model, and layers 1 and 2 equal a SLERP written out here with t = 1/3 and 2/3."""
    base, cpt = tiny_pair
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"base": str(base), "cpt": str(cpt), "t": [0.0, 1.0]}))
    m = _tensors(merge_file(tmp_path / "m.yaml", tmp_path / "out"))
    b, c = _tensors(base), _tensors(cpt)
    k = "model.layers.{}.self_attn.q_proj.weight"
    assert torch.allclose(m[k.format(0)], b[k.format(0)], atol=1e-6)
    assert torch.allclose(m[k.format(3)], c[k.format(3)], atol=1e-6)
    for layer, t in ((1, 1 / 3), (2, 2 / 3)):
        name = k.format(layer)
        want = _slerp(t, b[name], c[name])
        assert torch.allclose(m[name].double(), want, atol=1e-6), (layer, (m[name].double() - want).abs().max())


@pytest.mark.parametrize("method", ["slerp", "linear"])
def test_t_endpoints_reproduce_the_inputs(tiny_pair, tmp_path, method):
    base, cpt = tiny_pair
    for t, ref in ((0.0, base), (1.0, cpt)):
        (tmp_path / "m.yaml").write_text(yaml.safe_dump({"base": str(base), "cpt": str(cpt), "method": method, "t": t}))
        m, r = _tensors(merge_file(tmp_path / "m.yaml", tmp_path / f"o{t}")), _tensors(ref)
        assert all(torch.allclose(m[k], r[k], atol=1e-6) for k in m)
