"""The bundled pretrained tokenizers load through ``load_any_tokenizer`` and reproduce their references.

- every ``testvectors/`` folder (llama.cpp's HF reference ids) is reproduced 46/46;
- German/English fertility and parity on SIB-200 (whitespace words, no BOS/EOS) match the table in
  ``shared/data/tokenizers/SOURCES.md``.
"""

from __future__ import annotations

import os

import pytest

from finemed.core.config import FinemedError
from finemed.data.registry import bundled_path
from finemed.data.tokenizers import BUNDLED, load_any_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TOKDIR = bundled_path("tokenizers")
VECTOR_DIRS = sorted(p.parent.parent.name for p in TOKDIR.glob("*/testvectors/*.inp"))
SEP = "\n__ggml_vocab_test__\n"

# SOURCES.md: fertility de, fertility en, parity de/en (ratio of token totals)
REFERENCE = {
    "gpt2": (2.645, 1.234, 2.132),
    "gpt-neox-20b": (2.275, 1.250, 1.810),
    "mistral-7b-v0.1": (2.170, 1.369, 1.576),
    "mistral-7b-v0.3": (2.170, 1.369, 1.576),
    "llama-2": (2.015, 1.418, 1.413),
    "qwen2.5": (1.966, 1.257, 1.556),
    "cl100k_base": (1.965, 1.236, 1.582),
    "falcon-7b": (1.928, 1.258, 1.524),
    "o200k_base": (1.608, 1.223, 1.308),
}


def read_vectors(name: str) -> tuple[list[str], list[list[int]]]:
    inp = next((TOKDIR / name / "testvectors").glob("*.inp"))
    texts = inp.read_text(encoding="utf-8").split(SEP)
    if texts and texts[-1] == "":  # the file ends with the separator
        texts = texts[:-1]
    lines = inp.with_suffix(".out").read_text(encoding="utf-8").split("\n")
    ids = [[int(x) for x in line.split()] for line in lines[: len(texts)]]
    return texts, ids


def test_vector_dirs_are_the_five_documented():
    assert VECTOR_DIRS == ["falcon-7b", "gpt-neox-20b", "gpt2", "llama-2", "qwen2.5"]


@pytest.mark.parametrize("name", VECTOR_DIRS)
def test_testvectors_46_of_46(name):
    texts, expected = read_vectors(name)
    assert len(texts) == len(expected) == 46
    tok = load_any_tokenizer(name)
    batch = tok.encode_batch(texts)
    single = [tok.encode(t) for t in texts]
    assert sum(a == b for a, b in zip(batch, expected)) == 46
    assert single == batch


@pytest.mark.parametrize("name,hello,vocab", [
    ("gpt2", [15496, 995], 50257), ("gpt-neox-20b", [12092, 1533], 50277), ("falcon-7b", [9856, 1079], 65024),
    ("qwen2.5", [9707, 1879], 151646), ("llama-2", [15043, 3186], 32000), ("mistral-7b-v0.1", [22557, 1526], 32000),
    ("mistral-7b-v0.3", [23325, 2294], 32768), ("cl100k_base", [9906, 1917], 100277),
    ("r50k_base", [15496, 995], 50257),
    ("o200k_base", [13225, 2375], 200019), ("p50k_base", [15496, 995], 50281),
])
def test_hello_world_and_vocab(name, hello, vocab):
    tok = load_any_tokenizer(name)
    assert tok.name == name
    assert tok.encode("Hello world") == hello
    assert tok.vocab_size == vocab


def test_every_bundled_name_loads_and_offsets_cover_text():
    text = "Der Patient klagt über Brustschmerzen – 3×/Tag ½ Tablette."
    for name in BUNDLED:
        tok = load_any_tokenizer(name)
        ids, offsets = tok.encode_batch_offsets([text])[0]
        assert ids == tok.encode(text), name
        assert len(offsets) == len(ids), name
        assert all(0 <= s <= e <= len(text) for s, e in offsets), name
        assert max(e for _, e in offsets) == len(text), name


def test_smollm2_tokenizer_by_name():
    from finemed.models.smollm2 import model_dir

    if not (model_dir("smollm2") / "tokenizer.json").is_file():
        pytest.skip("SmolLM2 cache not built (run `finemed models fetch smollm2`)")
    tok = load_any_tokenizer("smollm2")
    assert tok.vocab_size == 49152
    from transformers import PreTrainedTokenizerFast

    ref = PreTrainedTokenizerFast.from_pretrained(str(model_dir("smollm2")))
    text = "Hallo Welt! Der Patient klagt über Brustschmerzen."
    assert tok.encode(text) == ref.encode(text, add_special_tokens=False)


def test_paths_and_formats(tmp_path):
    gpt2_dir = TOKDIR / "gpt2"
    assert load_any_tokenizer(gpt2_dir).encode("Hello world") == [15496, 995]
    assert load_any_tokenizer(TOKDIR / "falcon-7b" / "tokenizer.json").name == "falcon-7b"
    assert load_any_tokenizer(TOKDIR / "llama-2" / "tokenizer.model").name == "llama-2"
    tk = load_any_tokenizer(TOKDIR / "tiktoken" / "cl100k_base.tiktoken")
    assert tk.name == "cl100k_base" and tk.encode("Hello world") == [9906, 1917]
    # a renamed tiktoken file of unknown encoding gets the cl100k pattern and still encodes
    other = tmp_path / "mine.tiktoken"
    other.write_bytes((TOKDIR / "tiktoken" / "cl100k_base.tiktoken").read_bytes())
    assert load_any_tokenizer(other).encode("Hello world") == [9906, 1917]


def test_bad_inputs(tmp_path):
    with pytest.raises(FinemedError, match="not a known name"):
        load_any_tokenizer("no-such-tokenizer")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(FinemedError, match="not a valid HF tokenizer.json"):
        load_any_tokenizer(bad)
    junk = tmp_path / "x.model"
    junk.write_bytes(b"garbage")
    with pytest.raises(FinemedError, match="not a SentencePiece model"):
        load_any_tokenizer(junk)
    fake = tmp_path / "cl100k_base.tiktoken"
    fake.write_text("SGVsbG8= 0\n")
    with pytest.raises(FinemedError, match="sha256"):
        load_any_tokenizer(fake)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinemedError, match="no tokenizer found"):
        load_any_tokenizer(tmp_path / "empty")


@pytest.mark.parametrize("name", list(REFERENCE))
def test_sib200_german_fertility_matches_sources_table(name):
    from finemed.data.loaders import load_sib200

    de = [s.text for s in load_sib200("deu_Latn")]
    en = [s.text for s in load_sib200("eng_Latn")]
    assert len(de) == len(en) == 1004
    tok = load_any_tokenizer(name)
    de_tokens = sum(map(len, tok.encode_batch(de)))
    en_tokens = sum(map(len, tok.encode_batch(en)))
    fert_de = de_tokens / sum(len(t.split()) for t in de)
    fert_en = en_tokens / sum(len(t.split()) for t in en)
    ref_de, ref_en, ref_parity = REFERENCE[name]
    assert round(fert_de, 3) == pytest.approx(ref_de, abs=1e-3)
    assert round(fert_en, 3) == pytest.approx(ref_en, abs=1e-3)
    assert round(de_tokens / en_tokens, 3) == pytest.approx(ref_parity, abs=1e-3)
