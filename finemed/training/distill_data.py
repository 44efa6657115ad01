"""KD training sequences: packed plain text and QA-format prompts with answer-only labels.

Plain text reuses the CPT packing (:func:`finemed.training.data.pack_texts`). QA-format sequences are
``prompt + " " + answer + EOS`` where the prompt is the evaluation's own 0-/1-shot template
(:mod:`finemed.evaluation.qa_prompts`), so the student is distilled on exactly what it is scored on; prompt
and padding positions get label -100, so only answer tokens count in the loss. SQuAD-format data is split by
article title, so held-out evaluation never sees a training context.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from finemed.config import FinemedError


def split_by_title(examples: list, heldout_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, heldout) QA examples; whole articles go to one side."""
    titles = sorted({e.title for e in examples})
    if len(titles) < 2:
        raise FinemedError("KD data: SQuAD data needs at least two article titles to hold one out")
    random.Random(seed).shuffle(titles)
    n_held = max(1, round(len(titles) * heldout_fraction))
    held = set(titles[:n_held])
    return [e for e in examples if e.title not in held], [e for e in examples if e.title in held]


def unique_contexts(examples: list) -> list[str]:
    return list(dict.fromkeys(e.context for e in examples))


def packed_text(texts: list[str], tokenizer, seq_len: int, workdir: Path | str, name: str = "kd_text"):
    """Packed ``seq_len`` blocks of ``texts`` → (input_ids, attention_mask, labels), all (N, seq_len)."""
    from finemed.training.data import pack_texts

    blocks = pack_texts(texts, tokenizer, seq_len, workdir, name=name)
    if len(blocks) == 0:
        raise FinemedError(f"KD data: the text gives no full block of {seq_len} tokens; add text or lower seq_len")
    ids = torch.stack([torch.from_numpy(blocks[i]) for i in range(len(blocks))]).long()
    return ids, torch.ones_like(ids), ids.clone()


def qa_sequences(examples: list, pool: list, tokenizer, seq_len: int, shots: list[int], seed: int = 0):
    """One sequence per (example, shot count) → (input_ids, attention_mask, labels); labels cover the answer.

    A prompt too long for ``seq_len`` is cut from the left (the question and answer stay); examples without an
    answer are skipped.
    """
    from finemed.evaluation.qa_prompts import TARGET_DELIMITER, build_prompt

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if eos is None:
        raise FinemedError("KD data: the tokenizer has no EOS token; set eos_token in its tokenizer_config.json")
    rows_ids, rows_labels = [], []
    for ex in examples:
        if not ex.answers:
            continue
        for shot in shots:
            prompt = tokenizer(build_prompt(ex, pool, shot, seed), add_special_tokens=False)["input_ids"]
            answer = tokenizer(TARGET_DELIMITER + ex.answers[0], add_special_tokens=False)["input_ids"] + [eos]
            answer = answer[: seq_len // 2]
            prompt = prompt[-(seq_len - len(answer)):]
            rows_ids.append(prompt + answer)
            rows_labels.append([-100] * len(prompt) + answer)
    if not rows_ids:
        raise FinemedError("KD data: no answered QA examples; check the SQuAD-format file")
    n = len(rows_ids)
    input_ids = torch.full((n, seq_len), pad, dtype=torch.long)
    labels = torch.full((n, seq_len), -100, dtype=torch.long)
    attention = torch.zeros((n, seq_len), dtype=torch.long)
    for i, (ids, lab) in enumerate(zip(rows_ids, rows_labels)):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, :len(lab)] = torch.tensor(lab)
        attention[i, :len(ids)] = 1
    return input_ids, attention, labels


def concat(*parts):
    """Concatenate (input_ids, attention_mask, labels) triples of one sequence length."""
    parts = [p for p in parts if p is not None]
    return tuple(torch.cat([p[i] for p in parts]) for i in range(3))


class SequenceDataset(torch.utils.data.Dataset):
    """(input_ids, attention_mask, labels) tensors as a map-style dataset of dicts for the HF Trainer."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        self.input_ids, self.attention_mask, self.labels = input_ids, attention_mask, labels

    def __len__(self) -> int:
        return self.input_ids.size(0)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}
