"""Trainers: the vocab size asked for (± specials), HF-loadable output, SP ↔ tokenizer.json agreement, bad input."""

from __future__ import annotations

import json

import pytest

from finemed.core.config import FinemedError
from finemed.data.loaders import load_sib200
from finemed.data.tokenizers import load_any_tokenizer
from finemed.tokenizer.sources import LinesFile, language_texts, training_lines
from finemed.tokenizer.sweep import CorpusSpec, SweepConfig, run_sweep
from finemed.tokenizer.train import SPECIALS, tokenizer_name, train_one


@pytest.fixture(scope="module")
def lines():
    texts, used = language_texts(["builtin:sib200.eng_Latn", "builtin:sib200.deu_Latn"], 60_000)
    assert used <= 60_000 and used > 59_000
    return list(training_lines(texts))


@pytest.mark.parametrize("algorithm,library", [("bpe", "hf"), ("unigram", "hf"), ("bpe", "sp"), ("unigram", "sp")])
def test_vocab_size_as_asked_and_hf_loadable(lines, tmp_path, algorithm, library):
    from transformers import PreTrainedTokenizerFast

    info = train_one(lines, algorithm=algorithm, library=library, vocab_size=1000, out_dir=tmp_path / "tok",
                     corpus="T")
    assert info.name == f"T-{'BPE' if algorithm == 'bpe' else 'UNI'}-{library.upper()}-1"
    assert abs(info.vocab_size - 1000) <= len(SPECIALS)
    hf = PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "tok"))
    assert abs(len(hf) - 1000) <= len(SPECIALS)
    sentences = [s.text for s in load_sib200("deu_Latn", splits=("dev",))][:50]
    ours = load_any_tokenizer(tmp_path / "tok")
    assert [hf.encode(s, add_special_tokens=False) for s in sentences] == ours.encode_batch(sentences)
    if library == "sp":  # the .model is kept, and tokenizer.json encodes exactly like SentencePiece
        sp = load_any_tokenizer(tmp_path / "tok" / "tokenizer.model")
        assert sp.vocab_size == 1000
        assert sp.encode_batch(sentences) == ours.encode_batch(sentences)
    meta = json.loads((tmp_path / "tok" / "finemed_tokenizer.json").read_text())
    assert meta["vocab_size_asked"] == 1000 and meta["algorithm"] == algorithm


@pytest.mark.parametrize("library", ["hf", "sp"])
def test_vocab_larger_than_possible(lines, tmp_path, library):
    with pytest.raises(FinemedError, match="larger than possible"):
        train_one(lines[:20], algorithm="bpe", library=library, vocab_size=50_000, out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_empty_corpus(tmp_path):
    with pytest.raises(FinemedError, match="empty corpus"):
        train_one(["", "  "], algorithm="bpe", library="hf", vocab_size=500, out_dir=tmp_path / "x")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cfg = SweepConfig(vocab_sizes=[500], algorithms=["bpe"], libraries=["hf"],
                      corpora=[CorpusSpec(name="E", total_bytes=1000,
                                          languages={"deu_Latn": {"sources": [str(empty)]}})])
    with pytest.raises(FinemedError, match="empty corpus E: language deu_Latn got no text"):
        run_sweep(cfg, tmp_path / "out")


def test_sources_and_budget(tmp_path):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"Satz {i} über Ärzte."}) for i in range(100)), encoding="utf-8")
    texts, used = language_texts([str(jsonl), "builtin:fortunes_de"], 200)
    # round-robin: one text from each source in turn (each sampled across its stream); the last one is cut
    assert texts[0].startswith("Satz ") and not texts[1].startswith("Satz ") and texts[2].startswith("Satz ")
    assert used == sum(len(t.encode("utf-8")) for t in texts) and 195 <= used <= 200
    with pytest.raises(FinemedError, match="no 'body' field"):
        language_texts([f"{jsonl}#body"], 100)
    with pytest.raises(FinemedError, match="no such file or folder"):
        language_texts([str(tmp_path / "missing.txt")], 100)
    with pytest.raises(FinemedError, match="unknown bundled text set"):
        language_texts(["builtin:xquad_de"], 100)  # old names are gone
    # .txt: one text per blank-line-separated block, as everywhere in finemed
    txt = tmp_path / "notes.txt"
    txt.write_text("Erste Zeile\nzweite Zeile\n\nDritter Text\n", encoding="utf-8")
    texts, _ = language_texts([str(txt)], 1000)
    assert sorted(texts) == ["Dritter Text", "Erste Zeile\nzweite Zeile"]
    assert sorted(training_lines(texts)) == ["Dritter Text", "Erste Zeile", "zweite Zeile"]
    # the sources the recipes name: questions and contexts of XQuAD, SIB-200 splits
    q, _ = language_texts(["builtin:xquad.de#question"], 10_000)
    c, _ = language_texts(["builtin:xquad.de"], 10_000)
    assert q[0].endswith("?") and len(c[0]) > len(q[0])
    dev, _ = language_texts(["builtin:sib200.deu_Latn@dev"], 10**6)
    assert len(dev) == 99


def test_sweep_names_and_files(tmp_path):
    cfg = SweepConfig(vocab_sizes=[400, 600], algorithms=["bpe"], libraries=["hf", "sp"],
                      corpora=[CorpusSpec(name="DE", total_bytes=30_000,
                                          languages={"deu_Latn": {"sources": ["builtin:sib200.deu_Latn"]}})])
    result = run_sweep(cfg, tmp_path)
    assert [t.name for t in result.tokenizers] == ["DE-BPE-HF-0.4", "DE-BPE-HF-0.6", "DE-BPE-SP-0.4", "DE-BPE-SP-0.6"]
    assert 29_000 < result.corpora["DE"]["deu_Latn"] <= 30_000
    assert (tmp_path / "DE-BPE-SP-0.6" / "tokenizer.model").is_file()
    assert json.loads((tmp_path / "sweep.json").read_text())["tokenizers"][0]["vocab_size"] == 400
    assert tokenizer_name("unigram", "sp", 32768) == "UNI-SP-33"
    assert tokenizer_name("bpe", "hf", 100_000, "EN") == "EN-BPE-HF-100"


def test_sweep_skips_impossible_vocab_when_asked(tmp_path):
    corpus = CorpusSpec(name="S", total_bytes=3_000, languages={"deu_Latn": {"sources": ["builtin:sib200.deu_Latn"]}})
    cfg = SweepConfig(vocab_sizes=[400, 40_000], algorithms=["bpe"], libraries=["sp"], corpora=[corpus])
    with pytest.raises(FinemedError, match="vocab size 40000 is larger than possible"):
        run_sweep(cfg, tmp_path / "strict")
    cfg = cfg.model_copy(update={"skip_impossible": True})
    result = run_sweep(cfg, tmp_path / "lenient")
    assert [t.name for t in result.tokenizers] == ["S-BPE-SP-0.4"]
    assert [s["name"] for s in result.skipped] == ["S-BPE-SP-40"]
    assert "larger than possible" in result.skipped[0]["reason"]


def test_parquet_folder_source_like_the_corpus_stage(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "corpus" / "output"
    out.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["Der Patient hat Fieber.", "Die Ärztin misst den Blutdruck."],
                             "id": ["a", "b"]}), out / "00000.parquet")
    (tmp_path / "corpus" / "stats.json").write_text('{"kept": 2}')
    (tmp_path / "corpus" / "excluded.jsonl").write_text('{"text": "dropped spam"}\n')
    texts, used = language_texts([str(tmp_path / "corpus")], 10_000)
    # the order is a seeded shuffle keyed on the source path (tmp_path varies), so compare as a set;
    # excluded.jsonl (what the corpus dropped) must not be read
    assert sorted(texts) == ["Der Patient hat Fieber.", "Die Ärztin misst den Blutdruck."]
    assert language_texts([str(tmp_path / "corpus")], 10_000)[0] == texts  # same seed, same order
    assert used == sum(len(t.encode("utf-8")) for t in texts)


def test_lines_file_streams_the_same_lines(tmp_path):
    lines = LinesFile(tmp_path / "l.txt")
    lines.extend(["Der Patient.", "  ", "Zeile mit\nUmbruch"])
    assert len(lines) == 2 and lines.n_bytes == len("Der Patient.Zeile mit Umbruch".encode())
    assert list(lines) == list(lines) == ["Der Patient.", "Zeile mit Umbruch"]  # re-iterable
    lines.remove()
    assert list(lines) == [] and not (tmp_path / "l.txt").exists()


def test_train_one_streams_a_lines_file(lines, tmp_path):
    stream = LinesFile(tmp_path / "lines.txt")
    stream.extend(lines)
    from_file = train_one(stream, algorithm="bpe", library="hf", vocab_size=600, out_dir=tmp_path / "a")
    from_list = train_one(lines, algorithm="bpe", library="hf", vocab_size=600, out_dir=tmp_path / "b")
    assert from_file.train_bytes == from_list.train_bytes
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()


def test_budgets_default_per_language():
    corpus = CorpusSpec(languages={"deu_Latn": {"sources": ["x"]}, "eng_Latn": {"sources": ["y"], "weight": 3}},
                        bytes_per_language=1000)
    assert corpus.name == "CUSTOM" and corpus.budgets() == {"deu_Latn": 500, "eng_Latn": 1500}
    assert CorpusSpec(languages={"deu_Latn": {"sources": ["x"]}}, total_bytes=700).budgets() == {"deu_Latn": 700}
