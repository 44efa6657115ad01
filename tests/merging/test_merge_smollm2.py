"""SmolLM2 merges (slow; the first is also a smoke test): a SLERP of SmolLM2 with a perturbed copy."""

from __future__ import annotations

import pytest
import torch
import yaml


@pytest.fixture(scope="module")
def smol_pair(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_merge import make_pair

    return make_pair(tmp_path_factory.mktemp("smol"), noise=1e-2)


@pytest.mark.slow
@pytest.mark.smoke
def test_smollm2_slerp_half_way(smol_pair, tmp_path):
    from safetensors.torch import load_file

    from finemed.merging.merge import merge_file
    from finemed.models.loading import load_causal_lm

    base, noisy = smol_pair
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"base": str(base), "cpt": str(noisy), "t": 0.5}))
    out = merge_file(tmp_path / "m.yaml", tmp_path / "merged")
    m, b, n = (load_file(str(d / "model.safetensors")) for d in (out, base, noisy))
    k = "model.layers.10.mlp.up_proj.weight"
    assert torch.allclose(m[k], (b[k] + n[k]) / 2, atol=2e-3) and not torch.equal(m[k], b[k])
    model, tok = load_causal_lm(out)
    assert tok.get_vocab() == load_causal_lm(base)[1].get_vocab()
    assert model.config.num_hidden_layers == 30
