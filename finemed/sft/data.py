"""SFT datasets: SQuAD-format QA in the evaluation's own 0/1-shot prompts, GerMedIQ question + human answer pairs,
and prompt/completion JSONL files, split so that no held-out article or question is trained on.

- **QA** (XQuAD, MLQA, any SQuAD-format file): one example per (question, shot count); the prompt is
  :func:`finemed.core.qa_prompts.build_prompt` (the 1-shot exemplar comes from another article of the same
  side of the split) and the completion ``" " + first gold answer``, exactly what ``eval.qa`` renders and scores.
  Articles are split whole (:func:`split_articles`): a title lies on one side only, which is asserted.
- **GerMedIQ**: each of the 116 questions with its human answers; a question is held out when its
  :func:`finemed.core.texts.heldout_score` is below the fraction (the split the DeFineMed recipes share).
- **Files**: JSONL rows ``{"prompt", "completion"}`` (held out by prompt hash).

``format: completion`` keeps the raw prompt (TRL's standard prompt-completion type, EOS appended); ``chat``
wraps it as a user turn and the completion as the assistant turn (TRL applies the model's chat template). Loss
is on the completion only either way. Over-long prompts are cut from the left by tokens (the question and
answer stay; TRL would cut from the right and drop the answer).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from finemed.core.config import FinemedError, StageConfig
from finemed.core.qa_prompts import TARGET_DELIMITER, build_prompt
from finemed.core.texts import heldout_score
from finemed.data.loaders import QAExample, load_germediq
from finemed.data.qa_splits import load_qa_source, split_articles

SFT_SALT = "train.sft:"  # the held-out articles' hash key (independent of data.qa_split's test split)
Row = dict[str, Any]  # {"prompt": str, "completion": str, "group": str, "source": str}


class SftData(StageConfig):
    """What ``train.sft`` trains on; every source is split into train and held-out before anything is sampled."""

    qa: list[str] = Field([], description="SQuAD-format files or bundled names (xquad.en, mlqa.de)")
    qa_shots: list[int] = [0, 1]
    germediq: bool = False  # GerMedIQ questions + human answers
    germediq_min_chars: int = Field(20, ge=0)  # shorter human answers ("Ja.", refusals) are dropped
    files: list[str] = Field([], description="JSONL files with prompt/completion fields")
    format: Literal["completion", "chat"] = "chat"
    system: str | None = None  # chat format: a system turn before each prompt
    heldout_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    max_train: int | None = Field(None, ge=1)  # a seeded sample of the training examples
    max_heldout: int | None = Field(64, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "SftData":
        if any(s not in (0, 1) for s in self.qa_shots) or not self.qa_shots:
            raise ValueError("qa_shots: give 0 and/or 1")
        if not (self.qa or self.germediq or self.files):
            raise ValueError("no SFT data: set qa, germediq or files")
        return self


def qa_rows(examples: list[QAExample], shots: list[int], seed: int = 0, source: str = "qa",
            pool: list[QAExample] | None = None) -> list[Row]:
    """Eval-format rows; the 1-shot exemplar comes from ``pool`` (default ``examples``: one side of the split)."""
    rows = []
    for ex in examples:
        if not ex.answers:
            continue
        for shot in shots:
            rows.append({"prompt": build_prompt(ex, pool or examples, shot, seed),
                         "completion": TARGET_DELIMITER + ex.answers[0], "group": ex.title, "source": source})
    return rows


def germediq_rows(min_chars: int = 20) -> list[Row]:
    """GerMedIQ's questions with each participant's human answer (answers under ``min_chars`` dropped)."""
    rows = []
    for r in load_germediq("human"):
        q, a = (r.get("question") or "").strip(), (r.get("response") or "").strip()
        if q and len(a) >= min_chars:
            rows.append({"prompt": q, "completion": a, "group": q, "source": "germediq"})
    return rows


def file_rows(path: str) -> list[Row]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FinemedError(f"SFT file {path}: not found; give a JSONL file of {{prompt, completion}} rows")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not {"prompt", "completion"} <= set(row):
            raise FinemedError(f"{path}:{n}: needs prompt and completion fields")
        rows.append({"prompt": str(row["prompt"]), "completion": str(row["completion"]),
                     "group": str(row["prompt"]), "source": p.name})
    return rows


def split_groups(rows: list[Row], fraction: float, seed: int = 0) -> tuple[list[Row], list[Row]]:
    """(train, held) by the hash of each row's group (question or prompt)."""
    held = [r for r in rows if heldout_score(r["group"], seed) < fraction]
    return [r for r in rows if heldout_score(r["group"], seed) >= fraction], held


def build_rows(cfg: SftData) -> tuple[list[Row], list[Row]]:
    """All (train, held) rows of ``cfg``, the train rows shuffled (seeded) and capped at ``max_train``."""
    train: list[Row] = []
    held: list[Row] = []
    for spec in cfg.qa:
        tr, he = split_articles(load_qa_source(spec), cfg.heldout_fraction, cfg.seed, salt=SFT_SALT)
        train += qa_rows(tr, cfg.qa_shots, cfg.seed, spec)
        held += qa_rows(he, cfg.qa_shots, cfg.seed, spec, pool=he + tr)  # a held exemplar may be a train one
    other = (germediq_rows(cfg.germediq_min_chars) if cfg.germediq else []) + [
        r for f in cfg.files for r in file_rows(f)]
    tr, he = split_groups(other, cfg.heldout_fraction, cfg.seed)
    train, held = train + tr, held + he
    if not train:
        raise FinemedError("SFT data: nothing left to train on after the held-out split; add data or lower "
                           "heldout_fraction")
    rng = random.Random(cfg.seed)
    rng.shuffle(train)
    rng.shuffle(held)
    return train[: cfg.max_train], held[: cfg.max_heldout]


def fit_length(rows: list[Row], tok, max_length: int, reserve: int = 0) -> list[Row]:
    """Cut each prompt from the left (by tokens) so prompt + completion fit ``max_length - reserve``; a
    completion longer than half of it is cut from the right."""
    budget = max_length - reserve
    out = []
    for r in rows:
        comp = tok(r["completion"], add_special_tokens=False)["input_ids"]
        if len(comp) > budget // 2:
            comp = comp[: budget // 2]
            r = {**r, "completion": tok.decode(comp)}
        prompt = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        room = budget - len(comp) - 1  # EOS
        if len(prompt) > room:
            r = {**r, "prompt": tok.decode(prompt[len(prompt) - room:])}
        out.append(r)
    return out


def to_trl(rows: list[Row], fmt: str, system: str | None = None) -> list[dict]:
    """TRL prompt-completion rows: standard (raw strings) or conversational (messages)."""
    if fmt == "completion":
        return [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    sys_turn = [{"role": "system", "content": system}] if system else []
    return [{"prompt": [*sys_turn, {"role": "user", "content": r["prompt"]}],
             "completion": [{"role": "assistant", "content": r["completion"].strip()}]} for r in rows]


def build_datasets(cfg: SftData, tok, max_length: int):
    """(train, held) ``datasets.Dataset``s for TRL and a summary of where the rows came from."""
    import datasets

    train, held = build_rows(cfg)
    reserve = 0 if cfg.format == "completion" else 48  # the chat template's turn markers (and a system turn)
    if cfg.format == "chat" and cfg.system:
        reserve += len(tok(cfg.system, add_special_tokens=False)["input_ids"])
    train, held = fit_length(train, tok, max_length, reserve), fit_length(held, tok, max_length, reserve)
    info = {"train": len(train), "heldout": len(held),
            "sources": {s: sum(r["source"] == s for r in train) for s in dict.fromkeys(r["source"] for r in train)},
            "train_groups": len({r["group"] for r in train}), "heldout_groups": len({r["group"] for r in held})}
    shared = {r["group"] for r in train} & {r["group"] for r in held}
    assert not shared, f"SFT data: groups on both sides of the split: {sorted(shared)[:3]}"
    to_ds = lambda rows: datasets.Dataset.from_list(to_trl(rows, cfg.format, cfg.system))  # noqa: E731
    return to_ds(train), (to_ds(held) if held else None), info
