"""Packing: EOS placement, token files that stream, document masks, replay mixing in a deterministic order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finemed.core.config import FinemedError
from finemed.data.packing import (
    MixedBlocks,
    PackCollator,
    PackedBlocks,
    doc_attention_mask,
    doc_position_ids,
    pack_texts,
    segment_ids,
    write_token_file,
)
from finemed.models.tiny import tiny_tokenizer

TEXTS = ["Der Patient hat Fieber.", "Die Therapie wirkt.", "The patient is fine now.", "Kurz."]


def test_write_token_file_puts_one_eos_after_each_doc(tmp_path):
    tok = tiny_tokenizer()
    info = write_token_file(TEXTS, tok, tmp_path / "t.bin", batch_size=3)
    arr = info.array()
    expected = []
    for t in TEXTS:
        expected += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert arr.tolist() == expected
    assert info.docs == 4 and info.tokens == len(expected) and arr.dtype == np.uint16
    assert json.loads((tmp_path / "t.bin.json").read_text())["tokens"] == len(expected)


def test_packed_blocks_are_consecutive_and_drop_remainder():
    tokens = np.arange(23, dtype=np.uint16)
    blocks = PackedBlocks(tokens, 5)
    assert len(blocks) == 4
    assert blocks[1].tolist() == [5, 6, 7, 8, 9] and blocks[3].tolist() == [15, 16, 17, 18, 19]
    with pytest.raises(IndexError):
        blocks[4]


def test_doc_mask_and_positions_follow_eos():
    eos = 2
    ids = torch.tensor([[5, 6, eos, 7, eos, 8, 9, 9]])
    seg = segment_ids(ids, eos)
    assert seg.tolist() == [[0, 0, 0, 1, 1, 2, 2, 2]]
    assert doc_position_ids(seg).tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    mask = doc_attention_mask(seg)[0, 0]
    assert mask[3].tolist() == [False, False, False, True, False, False, False, False]
    assert mask[7].tolist() == [False] * 5 + [True] * 3
    assert mask[2].tolist() == [True, True, True] + [False] * 5


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_doc_mask_makes_each_doc_independent(tiny_model_dir, attn):
    """With doc_mask, a document's logits in a packed block equal those of the document alone, under SDPA (bool
    4-D mask) and eager (additive mask: it used to get the bool mask, which eager adds to its scores, so it masked
    nothing) with position ids; without it the block attends across documents. For flash-attention the collator
    emits the position ids alone (flash takes no 4-D mask and runs varlen over them); doc_mask false emits neither
    (classic packing, the same under every implementation)."""
    from finemed.models.loading import load_causal_lm

    model, tok = load_causal_lm(tiny_model_dir, device="cpu", attn_implementation=attn)
    model.train()  # as in training: a KV cache exists, so transformers does not infer packing by itself
    a = tok("Der Befund ist unauffällig.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    b = tok("Keine Allergien bekannt.", add_special_tokens=False)["input_ids"]
    packed = np.array(a + b)
    batch = PackCollator(tok.eos_token_id, doc_mask=True, attn=model.config._attn_implementation)([packed])
    flash = PackCollator(tok.eos_token_id, doc_mask=True, attn="flash_attention_2")([packed])
    plain = PackCollator(tok.eos_token_id, doc_mask=False)([packed])
    assert set(flash) == {"input_ids", "labels", "position_ids"} and set(plain) == {"input_ids", "labels"}
    assert torch.equal(flash["position_ids"], batch["position_ids"])
    with torch.no_grad():
        together = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         position_ids=batch["position_ids"]).logits[0, len(a):]
        alone = model(input_ids=torch.tensor([b])).logits[0]
        unmasked = model(input_ids=plain["input_ids"]).logits[0, len(a):]
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(unmasked, alone, atol=1e-3)


def test_mixing_reaches_the_replay_ratio_in_a_seeded_order():
    dom = PackedBlocks(np.zeros(300, dtype=np.uint16), 10)      # 30 blocks of zeros
    rep = PackedBlocks(np.ones(1000, dtype=np.uint16), 10)      # 100 blocks of ones
    mixed = MixedBlocks(dom, rep, replay_ratio=0.25, seed=7)
    assert len(mixed) == 40 and mixed.n_replay == 10 and mixed.replay_share == 0.25
    firsts = [int(mixed[i][0]) for i in range(len(mixed))]
    assert sum(firsts) == 10
    assert firsts == [int(MixedBlocks(dom, rep, 0.25, seed=7)[i][0]) for i in range(40)]
    assert firsts != [int(MixedBlocks(dom, rep, 0.25, seed=8)[i][0]) for i in range(40)]
    capped = MixedBlocks(dom, PackedBlocks(np.ones(50, dtype=np.uint16), 10), replay_ratio=0.5)
    assert capped.n_replay == 5
    with pytest.raises(FinemedError, match="replay"):
        MixedBlocks(dom, None, replay_ratio=0.2)


def test_token_file_streams_without_holding_the_corpus(tmp_path):
    tok = tiny_tokenizer()
    gen = (f"Satz {i} über Blutdruck." for i in range(5000))
    info = write_token_file(gen, tok, tmp_path / "big.bin")
    assert info.docs == 5000
    assert isinstance(info.array(), np.memmap)
    assert int((info.array() == tok.eos_token_id).sum()) == 5000


def test_pack_texts_gives_full_blocks_only(tmp_path):
    tok = tiny_tokenizer()
    blocks = pack_texts(TEXTS * 3, tok, 8, tmp_path, name="kd")
    n_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in TEXTS * 3)
    assert len(blocks) == n_tokens // 8 and (tmp_path / "kd.bin").is_file()
    assert all(len(blocks[i]) == 8 for i in range(len(blocks)))
