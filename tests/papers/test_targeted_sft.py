"""``papers.targeted_sft``: a tiny ``--rehearse`` of recipes/papers/targeted-sft-mini.yaml.

The recipe starts from definemed-mini's merged model (``${run:definemed-mini/merge}/merged``: the same runs dir,
``definemed-mini-rehearsal`` when rehearsed); the test puts a tiny chat model and a finished manifest there instead of
rehearsing definemed-mini again (its rehearsal is tests/papers/test_definemed.py), in a runs dir that is not the
working dir's ``runs/``, so the reference must follow ``--runs-dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from finemed.core.artifacts import run_cached
from finemed.core.config import ConfigError
from finemed.evaluation.answers import PromptRow
from finemed.evaluation.generate import split_prompts
from finemed.models.tiny import save_tiny
from finemed.orchestrate.recipe import load_recipe, run_recipe, run_root
from finemed.papers.claims import WORDS, ClaimSpec, claims_hash
from finemed.sft.data import SftData, build_rows

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "targeted-sft-mini.yaml"


def test_heldout_prompts_are_never_trained_on():
    """eval.generate's held-out GerMedIQ prompts and train.sft's held-out questions are the same split."""
    from finemed.evaluation.answers import load_prompts

    prompts = load_prompts("builtin:germediq")
    held = {p.prompt for p in split_prompts(prompts, "heldout", 0.3)}
    train_rows, _ = build_rows(SftData(germediq=True, heldout_fraction=0.3, max_heldout=None))
    assert held and not held & {r["prompt"] for r in train_rows}
    assert len(held) + len({p.prompt for p in split_prompts(prompts, "train", 0.3)}) == len(prompts)
    assert split_prompts([PromptRow(prompt_id="1", prompt="x")], "all", 0.3)[0].prompt == "x"


class _Sweep(BaseModel):
    t: float = 0.5


def _finished_merge(runs: Path) -> Path:
    """What definemed-mini's rehearsal leaves: merge/merged and a complete manifest."""
    merge = runs / "definemed-mini-rehearsal" / "merge"
    run_cached("merge", _Sweep(), merge, lambda: save_tiny(merge / "merged") and {"chosen_t": 0.5}, kind="merge.sweep")
    return merge


def test_a_missing_run_is_one_line_naming_the_recipe(rehearsal_runs):
    runs = rehearsal_runs.parent / "elsewhere"
    with pytest.raises(ConfigError) as err:
        run_recipe(RECIPE, rehearse=True, runs_dir=runs)
    msg = str(err.value)
    assert "\n" not in msg and "run recipe definemed-mini first" in msg and "--rehearse" in msg
    assert str(runs / "definemed-mini-rehearsal" / "merge") in msg
    assert not (runs / "targeted-sft-mini-rehearsal").exists()  # nothing ran


def test_run_references_follow_runs_dir_and_rehearse(tmp_path):
    from finemed.orchestrate.recipe import resolve_stages

    recipe = load_recipe(RECIPE)
    real = {e.name: c for e, c in resolve_stages(recipe, tmp_path / "r1" / "targeted-sft-mini", "t")}
    rehearsed = {e.name: c for e, c in resolve_stages(recipe, tmp_path / "r2" / "targeted-sft-mini-rehearsal", "t",
                                                       rehearse=True)}
    pick, picked = real["sft"].model, rehearsed["sft"].model
    assert pick == str(tmp_path / "r1" / "definemed-mini" / "merge" / "merged")
    assert picked == str(tmp_path / "r2" / "definemed-mini-rehearsal" / "merge" / "merged")


def test_targeted_sft_mini_rehearsal(rehearsal_runs):
    runs = rehearsal_runs.parent / "elsewhere"  # not ./runs: the reference follows --runs-dir
    _finished_merge(runs)
    outcomes = run_recipe(RECIPE, rehearse=True, runs_dir=runs)
    assert {o.status for o in outcomes} == {"complete"} and len(outcomes) == len(load_recipe(RECIPE).stages)
    root = run_root(load_recipe(RECIPE), runs, rehearse=True)
    assert (root / "sft" / "adapter").is_dir() and (root / "sft" / "model" / "config.json").is_file()
    found = json.loads((root / "findings" / "metrics.json").read_text())
    assert set(found["probe"]) == {"before", "after"} and len(found["off_lang_diff"]) == 3
    assert "SFT reduces language mixing" in (root / "findings" / "findings.md").read_text()
    manifest = json.loads((root / "findings" / "manifest.json").read_text())
    specs = {k: ClaimSpec(**v) for k, v in load_recipe(RECIPE).stages[-1].config["claims"].items()}
    assert manifest["result"]["claims_hash"] == claims_hash(specs)  # the registered claims, hashed in the manifest
    assert set(found["claims"]) == {"reduces_mixing", "length_towards_human", "keeps_instruction_following"}
    assert all(v.split(":")[0] in WORDS for v in found["claims"].values())


def test_targeted_sft_instruct_mini_rehearsal(rehearsal_runs):
    """The same SFT, data and claims applied to the instruct model itself (it mixes; definemed-mini's merge did not):
    no other recipe's run is needed, and the registered claims are those of targeted-sft-mini."""
    recipe = REPO / "recipes" / "papers" / "targeted-sft-instruct-mini.yaml"
    outcomes = run_recipe(recipe, rehearse=True, runs_dir=rehearsal_runs)
    assert {o.status for o in outcomes} == {"complete"}
    found = json.loads((run_root(load_recipe(recipe), rehearsal_runs, rehearse=True) / "findings" / "metrics.json")
                       .read_text())
    assert all(v.split(":")[0] in WORDS for v in found["claims"].values())
    same = [load_recipe(r).stages[-1].config["claims"] for r in (RECIPE, recipe)]
    assert same[0] == same[1]
