"""Config loading: overrides and one-line errors that name the file, the key and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finemed.core.config import ConfigError, apply_overrides, load_config
from finemed.evaluation.perplexity import BpbSetsConfig
from finemed.orchestrate.recipe import load_recipe

GOOD = """name: demo
stages:
  - name: bpb
    kind: eval.bpb
    config: {model: smollm2, max_chars: 1000}
"""


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_overrides_set_nested_values_with_yaml_types():
    data = {"a": {"b": 1}}
    apply_overrides(data, ["a.b=2", "a.c=true", "d.e=[1, 2]", "name=x"])
    assert data == {"a": {"b": 2, "c": True}, "d": {"e": [1, 2]}, "name": "x"}


def test_recipe_override_addresses_a_stage(tmp_path):
    r = load_recipe(write(tmp_path, GOOD), ["bpb.max_chars=5", "name=other"])
    assert r.name == "other"
    assert r.stages[0].config["max_chars"] == 5


def test_a_recipe_with_a_base_is_that_recipe_with_set_applied(tmp_path):
    """base: + set: (typed values, STAGE.KEY.SUB) give one source for a recipe that differs in a few keys; the child's
    name wins; --set still applies on top; the base file is left as it was."""
    write(tmp_path, "name: demo\nstages:\n  - {name: bpb, kind: eval.bpb, config: {max_chars: 4, sets: {a: x}}}\n",
          "base.yaml")
    child = write(tmp_path, "base: base.yaml\nname: child\nset:\n  bpb.max_chars: 9\n  bpb.sets.b: [1, 2]\n",
                  "child.yaml")
    r = load_recipe(child)
    assert r.name == "child" and r.stages[0].config == {"max_chars": 9, "sets": {"a": "x", "b": [1, 2]}}
    assert load_recipe(child, ["bpb.max_chars=3"]).stages[0].config["max_chars"] == 3
    assert load_recipe(tmp_path / "base.yaml").stages[0].config == {"max_chars": 4, "sets": {"a": "x"}}


@pytest.mark.parametrize("text,expected", [
    ("base: nope.yaml\nname: c\n", "base 'nope.yaml' not found"),
    ("base: base.yaml\nname: c\nset: {nostage.k: 1}\n",
     "set 'nostage.k': use STAGE.KEY with a stage of base.yaml (bpb)"),
    ("base: base.yaml\nname: c\nset: {bpb: 1}\n", "use STAGE.KEY"),
    ("base: base.yaml\nname: c\nstages: []\n", "changes its stages through set:"),
    ("name: c\nset: {bpb.k: 1}\nstages:\n  - {name: bpb, kind: eval.bpb}\n", "add base: OTHER.yaml"),
    ("base: child.yaml\nname: c\n", "leads back to itself"),
])
def test_bad_bases_get_one_line(tmp_path, text, expected):
    write(tmp_path, "name: demo\nstages:\n  - {name: bpb, kind: eval.bpb}\n", "base.yaml")
    with pytest.raises(ConfigError) as err:
        load_recipe(write(tmp_path, text, "child.yaml"))
    assert expected in str(err.value) and "\n" not in str(err.value)


BAD_RECIPES = [
    ("name: demo\nstages: []\n", "at least one stage"),
    ("stages:\n  - {name: a, kind: eval.bpb}\n", "'name' is required"),
    ("name: demo\nstagez: []\nstages:\n  - {name: a, kind: eval.bpb}\n", "unknown key 'stagez'"),
    ("name: demo\nstages:\n  - {name: a, kind: eval.nope}\n", "unknown stage kind"),
    ("name: demo\nstages:\n  - {name: a, kind: eval.bpb}\n  - {name: a, kind: eval.bpb}\n", "repeated: a"),
    ("name: 'bad name!'\nstages:\n  - {name: a, kind: eval.bpb}\n", "key 'name'"),
    ("name: demo\nstages: {a: 1}\n", "key 'stages'"),
    ("- just\n- a list\n", "expected a mapping"),
    ("name: demo\nstages: [\n", "invalid YAML"),
    ("name: demo\nstages:\n  - {name: a, kind: eval.bpb, extra: 1}\n", "unknown key 'stages.0.extra'"),
]


@pytest.mark.parametrize("text,expected", BAD_RECIPES)
def test_bad_recipes_get_one_line_naming_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert expected in msg
    assert str(path) in msg
    assert "\n" not in msg


BAD_STAGE_CONFIGS = [
    ({"batch_size": "four"}, "key 'batch_size'"),
    ({"batch_size": 0}, "key 'batch_size'"),
    ({"max_length": -3}, "key 'max_length'"),
    ({"sets": {}}, "at least one text set"),
    ({"modle": "smollm2"}, "unknown key 'modle'"),
    ({"autocast": "perhaps"}, "key 'autocast'"),
]


@pytest.mark.parametrize("data,expected", BAD_STAGE_CONFIGS)
def test_bad_stage_configs(tmp_path, data, expected):
    import yaml

    path = tmp_path / "bpb.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(BpbSetsConfig, path)
    assert expected in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(BpbSetsConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(BpbSetsConfig, None, ["batch_size"])
    with pytest.raises(ConfigError, match="not a mapping"):
        apply_overrides({"a": 1}, ["a.b=2"])


def test_stage_config_error_is_reported_before_anything_runs(tmp_path):
    path = write(tmp_path, GOOD.replace("max_chars: 1000", "max_chars: lots"))
    with pytest.raises(ConfigError) as err:
        from finemed.orchestrate.recipe import run_recipe
        run_recipe(path, runs_dir=tmp_path / "runs")
    assert "stages.bpb.config" in str(err.value) and "max_chars" in str(err.value)
    assert not (tmp_path / "runs" / "demo" / "bpb").exists()


def test_cli_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "name: demo\nstages:\n  - {name: a, kind: eval.nope}\n")
    proc = subprocess.run([sys.executable, "-m", "finemed.cli", "run", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "unknown stage kind" in lines[0]
