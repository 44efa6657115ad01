"""Fertility, parity, continued words and bytes/token on hand-counted examples."""

from __future__ import annotations

import pytest

from finemed.core.config import FinemedError
from finemed.data.tokenizers import load_any_tokenizer
from finemed.tokenizer.evaluate import evaluate
from finemed.tokenizer.metrics import (
    count_language,
    count_words,
    fertility,
    fertility_parity,
    language_metrics,
    parity,
    tokens_per_word,
    word_spans,
)
from finemed.tokenizer.parallel import ParallelSet

EN = ["the cat", "a dog runs"]  # chunk3: the|cat = 2 ; a|dog|run s = 4 → 6 tokens, 5 words
DE = ["die Katze", "ein Hund rennt"]  # die|Kat ze = 3 ; ein|Hun d|ren nt = 5 → 8 tokens, 5 words


def test_hand_counted_metrics(chunk3):
    en, de = count_language(chunk3, EN), count_language(chunk3, DE)
    assert en.tokens == [2, 4] and de.tokens == [3, 5]
    assert (en.words, de.words) == (5, 5)
    assert fertility(en) == pytest.approx(6 / 5)
    assert fertility(de) == pytest.approx(8 / 5)
    mean, ratio_of_sums, skipped = parity(de, en)
    assert mean == pytest.approx((3 / 2 + 5 / 4) / 2)  # 1.375
    assert ratio_of_sums == pytest.approx(8 / 6)
    assert skipped == 0
    m = language_metrics(de, en)
    assert m == pytest.approx({"fertility": 1.6, "parity": 1.375, "parity_sum": 4 / 3,
                               "continued_words": 3 / 5,  # Katze, Hund, rennt
                               "bytes_per_token": 23 / 8})
    assert language_metrics(en, en)["continued_words"] == pytest.approx(1 / 5)  # runs
    fast = fertility_parity(chunk3, {"eng_Latn": EN, "deu_Latn": DE})
    assert fast["deu_Latn"] == pytest.approx({"fertility": 1.6, "parity": 1.375, "parity_sum": 4 / 3})


def test_evaluate_schema_and_vocab_use(chunk3):
    data = ParallelSet("toy", {"eng_Latn": EN, "deu_Latn": DE}, ["0", "1"])
    metrics, details = evaluate([chunk3], data, ["eng_Latn", "deu_Latn"])
    assert list(metrics) == ["chunk3"]
    assert set(metrics["chunk3"]) == {"eng_Latn", "deu_Latn"}
    assert set(metrics["chunk3"]["deu_Latn"]) == {"fertility", "parity", "parity_sum", "continued_words",
                                                   "bytes_per_token"}
    assert metrics["chunk3"]["eng_Latn"]["parity"] == 1.0
    # distinct chunks: the cat a dog run s die Kat ze ein Hun d ren nt = 14 of a vocab of 100
    assert details["chunk3"]["vocab_use"] == pytest.approx(0.14)
    assert details["chunk3"]["langs"]["deu_Latn"]["tokens"] == 8


def test_parity_skips_empty_reference(chunk3):
    en, de = count_language(chunk3, ["x", ""]), count_language(chunk3, ["abcd", "ab"])
    mean, total, skipped = parity(de, en)
    assert (mean, skipped) == (2.0, 1)
    assert total == 3.0


def test_words_definitions():
    text = "Dr. Müller's Hund, 3×/Tag."
    assert count_words(text, "whitespace") == 4
    assert [text[s:e] for s, e in word_spans(text, "punct")] == ["Dr", ".", "Müller", "'", "s", "Hund", ",", "3",
                                                                 "×/", "Tag", "."]
    with pytest.raises(FinemedError, match="--words 'spacy' unknown"):
        count_words(text, "spacy")


def test_tokens_per_word_assignment():
    # SentencePiece-like: an empty dummy-prefix token and a lone "▁" (a space) belong to the next word
    assert tokens_per_word([(0, 0), (0, 2), (2, 3), (3, 5)], [(0, 2), (3, 5)]) == [2, 2]
    # byte-level BPE: " cd" carries the space and still belongs to "cd"; trailing whitespace is dropped
    assert tokens_per_word([(0, 2), (2, 5), (5, 6)], [(0, 2), (3, 5)]) == [1, 1]


@pytest.mark.parametrize("name", ["llama-2", "gpt2"])
def test_continued_words_in_context_match_word_by_word(name):
    """With single spaces, in-context assignment equals encoding every word alone (SentencePiece: the word;
    byte-level BPE: the word with its leading space)."""
    tok = load_any_tokenizer(name)
    text = "Der Patient klagt über Brustschmerzen und Atemnot seit gestern Abend."
    (ids, offsets), = tok.encode_batch_offsets([text])
    words = text.split()
    per_word = tokens_per_word(offsets, word_spans(text))
    alone = [len(tok.encode(w if (i == 0 or name == "llama-2") else " " + w)) for i, w in enumerate(words)]
    assert per_word == alone
    assert sum(per_word) == len(ids)
    counts = count_language(tok, [text])
    assert counts.continued == sum(1 for c in alone if c >= 2)


def test_fertility_of_no_words(chunk3):
    with pytest.raises(FinemedError, match="no words"):
        fertility(count_language(chunk3, ["   "]))


def test_chunked_counts_equal_one_shot():
    """Batches of 7 sentences give exactly the counts of one batch over all 300 (per-sentence tokens, words,
    bytes, continued words, ids), and so the same metrics; no batch exceeds the chunk."""
    from finemed.data.loaders import load_sib200

    tok = load_any_tokenizer("gpt2")
    texts = {lang: [s.text for s in load_sib200(lang, splits=("train",))[:300]] for lang in ("eng_Latn", "deu_Latn")}
    assert all(len(v) == 300 for v in texts.values())
    sizes = []
    encode = tok.encode_batch_offsets
    tok.encode_batch_offsets = lambda part: (sizes.append(len(part)), encode(part))[1]
    for lang, sents in texts.items():
        sizes.clear()
        one = count_language(tok, sents, chunk=len(sents))
        assert sizes == [300]
        chunked = count_language(tok, sents, chunk=7)
        assert sizes[1:] == [7] * 42 + [6]
        assert chunked.tokens == one.tokens and len(one.tokens) == 300
        assert (chunked.words, chunked.bytes, chunked.continued, chunked.ids) == (one.words, one.bytes,
                                                                                  one.continued, one.ids)
        assert one.continued > 0 and len(one.ids) > 100
        assert count_language(tok, sents, with_words=False, chunk=7).tokens == one.tokens
    assert fertility_parity(tok, texts, chunk=7) == fertility_parity(tok, texts, chunk=10**6)
    with pytest.raises(FinemedError, match="at least 1"):
        count_language(tok, texts["eng_Latn"], chunk=0)
