"""README "Extend finemed": any merge method in mergekit's registry works through the short form, with no
finemed code. ``breadcrumbs`` and ``della_linear`` had no hand entry in finemed; one YAML file is the whole change."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner


@pytest.mark.parametrize("method", ["breadcrumbs", "della_linear"])
def test_registry_method_through_the_short_form(tiny_pair, tmp_path, method):
    from finemed.cli import app

    base, cpt = tiny_pair
    cfg = tmp_path / "merge.yaml"  # the one file a user writes
    cfg.write_text(yaml.safe_dump({"base": str(base), "cpt": str(cpt), "method": method, "t": 0.5, "density": 0.7}))
    res = CliRunner().invoke(app, ["merge", str(cfg), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    merged = tmp_path / "run" / "model"
    written = yaml.safe_load((merged / "finemed_merge.yaml").read_text())
    assert written["merge_method"] == method
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["method"] == method
    m, b, c = (load_file(str(d / "model.safetensors")) for d in (merged, base, cpt))
    k = "model.layers.1.mlp.down_proj.weight"
    assert m.keys() == b.keys() and not torch.equal(m[k], b[k]) and not torch.equal(m[k], c[k])
