"""KD training data: packed plain text and QA-format prompts with answer-only labels, and held-out sets.

Plain text reuses the CPT packing (:func:`finemed.data.packing.token_stream`, tokenised once). QA-format
sequences are ``prompt + " " + answer + EOS`` where the prompt is the evaluation's own 0-/1-shot template
(:mod:`finemed.core.qa_prompts`), so the student is distilled on exactly what it is scored on; prompt
and padding positions get label -100, so only answer tokens count in the loss. SQuAD-format data is split by
article title, so held-out evaluation never sees a training context.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from finemed.core.config import FinemedError
from finemed.core.qa_prompts import TARGET_DELIMITER, build_prompt
from finemed.core.texts import read_texts, split_heldout
from finemed.data.loaders import load_squad
from finemed.data.packing import PackedBlocks, token_stream

if TYPE_CHECKING:
    import torch


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
    import hashlib

    import torch

    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    info = token_stream(lambda: texts, tokenizer, workdir, name, {"texts_sha256": digest, "docs": len(texts)})
    blocks = PackedBlocks(info.array(), seq_len)
    if len(blocks) == 0:
        raise FinemedError(f"KD data: the text gives no full block of {seq_len} tokens; add text or lower seq_len")
    ids = torch.stack([torch.from_numpy(blocks[i]) for i in range(len(blocks))]).long()
    return ids, torch.ones_like(ids), ids.clone()


def qa_sequences(examples: list, pool: list, tokenizer, seq_len: int, shots: list[int], seed: int = 0):
    """One sequence per (example, shot count) → (input_ids, attention_mask, labels); labels cover the answer.

    A prompt too long for ``seq_len`` is cut from the left (the question and answer stay); examples without an
    answer are skipped.
    """
    import torch

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
    import torch

    parts = [p for p in parts if p is not None]
    return tuple(torch.cat([p[i] for p in parts]) for i in range(3))


class SequenceDataset:
    """(input_ids, attention_mask, labels) tensors as a map-style dataset of dicts for the HF Trainer."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        self.input_ids, self.attention_mask, self.labels = input_ids, attention_mask, labels

    def __len__(self) -> int:
        return self.input_ids.size(0)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


class KDData(NamedTuple):
    train: tuple  # (input_ids, attention_mask, labels), each (N, seq_len)
    held_texts: list[str]  # held-out texts for bpb
    held_qa: list  # held-out QA questions (their contexts are in held_texts)
    qa_pool: list  # all QA examples: the 1-shot exemplar pool, as in the evaluation
    prompts: list[str]  # on-policy prompts


def load_qa(qa: str) -> list:
    """SQuAD-format examples from a file path or a bundled name (``xquad.en``, ``mlqa.de``, ...)."""
    path = Path(qa).expanduser()
    return load_squad(path) if path.is_file() else load_squad(name=qa)


def build_data(cfg, tok, workdir: Path) -> KDData:
    """Train tensors (plain text + QA), held-out texts for bpb, held-out QA questions, on-policy prompts.

    ``cfg`` is a :class:`finemed.distill.cache_logits.KDDataConfig` (or a config extending it).
    """
    import torch

    train_qa, held_qa = [], []
    if cfg.qa:
        train_qa, held_qa = split_by_title(load_qa(cfg.qa), cfg.heldout_fraction, cfg.seed)
    held_ctx = set(unique_contexts(held_qa))
    texts: list[str] = list(dict.fromkeys(t for source in cfg.text for t in read_texts(source)))
    train_texts, held_texts = split_heldout([t for t in texts if t not in held_ctx], cfg.heldout_fraction, cfg.seed)
    held_texts = (held_texts + [t for t in texts if t in held_ctx])[: cfg.max_heldout_docs]
    if not held_texts:
        raise FinemedError("KD data: nothing held out for bpb; add text or raise heldout_fraction")
    # no training prompt may contain a held-out text: held-out bpb and QA stay unseen
    held_set = set(held_texts)
    train_qa = [e for e in train_qa if e.context not in held_set]
    gen = torch.Generator().manual_seed(cfg.seed)
    # one pass over what all steps consume: steps x the global batch (batch_size per process x processes)
    world = getattr(getattr(cfg, "launch", None), "world_size", 1)
    n_max = cfg.max_train_sequences or cfg.steps * cfg.batch_size * world
    n_qa = round(n_max * cfg.qa_fraction) if train_texts else n_max
    parts = []
    if train_qa and n_qa != 0:
        pick = torch.randperm(len(train_qa), generator=gen).tolist()
        qa_ex = [train_qa[i] for i in pick][: -(-n_qa // len(cfg.qa_shots))]
        parts.append(tuple(x[:n_qa] for x in qa_sequences(qa_ex, train_qa, tok, cfg.seq_len, cfg.qa_shots, cfg.seed)))
    if train_texts:
        text_part = packed_text(train_texts, tok, cfg.seq_len, workdir)
        n_text = n_max - (parts[0][0].size(0) if parts else 0)
        parts.append(tuple(x[:n_text] for x in text_part))
    if not parts:
        raise FinemedError("KD data: no training data; set text: and/or qa:")
    ids, att, labels = concat(*parts)
    order = torch.randperm(ids.size(0), generator=gen)
    prompts = [build_prompt(ex, train_qa, shot, cfg.seed) for ex in train_qa for shot in cfg.qa_shots if ex.answers]
    prompts = prompts or [t[:500] for t in train_texts]
    return KDData((ids[order], att[order], labels[order]), held_texts, held_qa, train_qa + held_qa, prompts)
