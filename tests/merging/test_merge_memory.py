"""Bounded merge memory: small output shards (an index, loadable, same tensors) and released input maps."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from finemed.merging.merge import OUT_SHARD_BYTES, MergeSpec, merge_options, run_merge, to_mergekit


def _tensors(d):
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_merge_options_are_bounded_and_shared():
    opts = merge_options(3)
    assert (opts.out_shard_size, opts.lazy_unpickle, opts.random_seed) == (OUT_SHARD_BYTES, True, 3)
    assert 0 < OUT_SHARD_BYTES <= 1_000_000_000  # mergekit's default 5B held any model up to 5 GB whole
    assert merge_options(out_shard_size=1000).out_shard_size == 1000  # an explicit option wins


def test_sharded_output_loads_as_one_model_and_equals_one_shard(tiny_pair, tmp_path):
    from mergekit.io.tasks import LoaderCache

    from finemed.models.loading import load_causal_lm

    base, cpt = tiny_pair
    mk = to_mergekit(MergeSpec(base=str(base), cpt=str(cpt), t=0.4))
    whole = run_merge(mk, tmp_path / "whole")
    sharded = run_merge(mk, tmp_path / "sharded", out_shard_size=20_000)
    assert [p.name for p in whole.glob("*.safetensors")] == ["model.safetensors"]
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(shards) > 3 and sorted(set(index["weight_map"].values())) == shards
    a, b = _tensors(whole), _tensors(sharded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model, tok = load_causal_lm(sharded, device="cpu")
    ref, _ = load_causal_lm(whole, device="cpu")
    ids = torch.tensor([tok("Der Patient klagt über Schmerzen.")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)
    # the input models' safetensors files are not held open (mapped) after a merge
    loaders = [ldr for ref_, ldr in LoaderCache().loaders.items() if str(ref_.model.path) in (str(base), str(cpt))]
    assert len(loaders) == 2 and all(ldr.current_shard is None and ldr.finemed_releases for ldr in loaders)
