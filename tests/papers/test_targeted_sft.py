"""``papers.targeted_sft``: a tiny ``--rehearse`` of recipes/papers/targeted-sft-mini.yaml.

The recipe starts from definemed-mini's merged model (``runs/definemed-mini-rehearsal/merge/merged`` when
rehearsed); the test puts a tiny chat model there instead of rehearsing definemed-mini again (its rehearsal is
tests/papers/test_definemed.py), in a temporary working dir and cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from finemed.evaluation.answers import PromptRow
from finemed.evaluation.generate import split_prompts
from finemed.models.tiny import save_tiny
from finemed.recipe import load_recipe, run_recipe, run_root
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


def test_targeted_sft_mini_rehearsal(rehearsal_runs):
    runs = rehearsal_runs
    save_tiny(runs / "definemed-mini-rehearsal" / "merge" / "merged")  # what definemed-mini's rehearsal leaves
    outcomes = run_recipe(RECIPE, rehearse=True, runs_dir=runs)
    assert {o.status for o in outcomes} == {"complete"} and len(outcomes) == len(load_recipe(RECIPE).stages)
    root = run_root(load_recipe(RECIPE), runs, rehearse=True)
    assert (root / "sft" / "adapter").is_dir() and (root / "sft" / "model" / "config.json").is_file()
    found = json.loads((root / "findings" / "metrics.json").read_text())
    assert set(found["probe"]) == {"before", "after"} and len(found["off_lang_diff"]) == 3
    assert "SFT reduces language mixing" in (root / "findings" / "findings.md").read_text()
