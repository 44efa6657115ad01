"""SFT data: the eval's own QA prompts, whole articles on one side of the split, GerMedIQ pairs by question."""

from __future__ import annotations

import json

import pytest

from finemed.core.config import FinemedError
from finemed.core.qa_prompts import build_prompt
from finemed.core.texts import heldout_score
from finemed.data.loaders import load_squad
from finemed.data.qa_splits import split_articles
from finemed.sft.data import SFT_SALT, SftData, build_rows, fit_length, germediq_rows, to_trl


def test_split_articles_keeps_articles_whole():
    exs = load_squad(name="xquad.en")
    train, test = split_articles(exs, 0.3, seed=0)
    assert train and test and len(train) + len(test) == len(exs)
    assert not {e.title for e in train} & {e.title for e in test}


def test_split_articles_needs_two_titles():
    exs = [e for e in load_squad(name="xquad.en") if e.title == "Super_Bowl_50"]
    with pytest.raises(FinemedError, match="at least two"):
        split_articles(exs, 0.5)


def test_qa_rows_are_the_eval_prompts():
    cfg = SftData(qa=["xquad.en"], qa_shots=[0, 1], format="completion", heldout_fraction=0.2, max_heldout=None)
    train, held = build_rows(cfg)
    exs = load_squad(name="xquad.en")
    tr, _ = split_articles(exs, 0.2, 0, salt=SFT_SALT)
    gold: dict[str, set] = {}
    for e in tr:
        if e.answers:
            gold.setdefault(build_prompt(e, tr, 0), set()).add(" " + e.answers[0])
    zero = [r for r in train if r["prompt"] in gold]
    assert len(zero) == sum(1 for e in tr if e.answers)  # one 0-shot row per answered question
    assert all(r["completion"] in gold[r["prompt"]] for r in zero)
    assert len(train) == 2 * len(zero)
    assert not {r["group"] for r in train} & {r["group"] for r in held}


def test_germediq_split_by_question_hash():
    cfg = SftData(germediq=True, heldout_fraction=0.3, max_heldout=None)
    train, held = build_rows(cfg)
    assert train and held
    assert all(heldout_score(r["group"], 0) < 0.3 for r in held)
    assert all(heldout_score(r["group"], 0) >= 0.3 for r in train)
    assert len({r["group"] for r in germediq_rows()}) <= 116


def test_fit_length_cuts_the_prompt_from_the_left(tiny_model_dir):
    from finemed.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    rows = [{"prompt": "word " * 300 + "Question: who?\n\nAnswer:", "completion": " Denver Broncos", "group": "g",
             "source": "s"}]
    out = fit_length(rows, tok, 64)
    assert out[0]["completion"] == " Denver Broncos"
    assert out[0]["prompt"].endswith("Answer:")
    n = len(tok(out[0]["prompt"] + out[0]["completion"], add_special_tokens=False)["input_ids"])
    assert n <= 64


def test_chat_rows_are_conversational():
    rows = [{"prompt": "Q?", "completion": " A", "group": "g", "source": "s"}]
    chat = to_trl(rows, "chat", system="Be brief.")
    assert chat[0]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert chat[0]["completion"] == [{"role": "assistant", "content": "A"}]
    assert to_trl(rows, "completion") == [{"prompt": "Q?", "completion": " A"}]


def test_files_and_bad_config(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) for i in range(40)))
    train, held = build_rows(SftData(files=[str(f)], heldout_fraction=0.25))
    assert len(train) + len(held) == 40 and held
    with pytest.raises(ValueError, match="no SFT data"):
        SftData()


def test_sft_heldout_is_independent_of_the_test_split():
    """After data.qa_split took the low-hash titles as test, the SFT's own held-out split still finds several."""
    exs = load_squad(name="xquad.en")
    train, _ = split_articles(exs, 0.25, 0)
    _, held = split_articles(train, 0.2, 0, salt=SFT_SALT)
    assert len({e.title for e in held}) >= 2  # (bare-title hashing would leave only the fallback title)
