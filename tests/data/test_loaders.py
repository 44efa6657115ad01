"""Typed loaders on the bundled data, and one-line errors when data is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from finemed.core.config import FinemedError
from finemed.core.texts import read_texts
from finemed.data import loaders
from finemed.data.registry import DATASETS, DataMissingError, bundled_path


def test_bundled_counts_match_sources_md():
    de = loaders.load_squad(name="xquad.de")
    en = loaders.load_squad(name="xquad.en")
    assert len(de) == len(en) == 1190 and [e.id for e in de] == [e.id for e in en]
    assert len(loaders.load_squad(name="mlqa.de")) == 512
    deu, eng = loaders.load_sib200("deu_Latn"), loaders.load_sib200("eng_Latn")
    assert len(deu) == len(eng) == 1004 and [s.index_id for s in deu] == [s.index_id for s in eng]
    assert sum(s.category == "health" for s in deu) == 110
    assert len(loaders.load_germedbench("med_qa")) == 49
    assert len(loaders.load_germedbench_results("patient_text")) == 13
    assert len(loaders.load_germediq("human")) == 4524
    g = loaders.load_grascco()
    assert len(g) >= 42 and all(g[0].text[s.start:s.end] == s.text for s in g[0].phi)
    assert len(loaders.load_fortunes()) >= 14989


def test_hub_ids_recorded_for_real_datasets():
    assert DATASETS["fineweb2.deu_Latn"].hub_id.startswith("HuggingFaceFW/fineweb-2")
    assert DATASETS["squad_v1.1"].hub_id == "rajpurkar/squad"
    with pytest.raises(DataMissingError, match="not bundled"):
        bundled_path("fineweb2.deu_Latn")


def test_missing_bundled_file_names_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("FINEMED_DATA_DIR", str(tmp_path))
    with pytest.raises(DataMissingError) as err:
        loaders.load_squad(name="xquad.de")
    msg = str(err.value)
    assert "xquad.de" in msg and str(tmp_path) in msg and "deepmind/xquad" in msg and "\n" not in msg
    with pytest.raises(DataMissingError, match="SIB-200 language 'xxx_Latn'"):
        sib_root = bundled_path.__globals__["REPO_ROOT"].parent / "shared" / "data" / "sib200"
        loaders.load_sib200("xxx_Latn", root=sib_root)


def test_missing_data_dir_is_one_clear_line(tmp_path):
    env = {"FINEMED_DATA_DIR": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin"}
    code = "from finemed.data.loaders import load_grascco; load_grascco()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "grascco" in proc.stderr and "missing" in proc.stderr


def test_bad_user_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(FinemedError, match="not SQuAD-format JSON"):
        loaders.load_squad(bad)
    jl = tmp_path / "t.jsonl"
    jl.write_text('{"text": "a"}\n{"txt": "b"}\n')
    with pytest.raises(FinemedError, match=r"t.jsonl:2: no 'text' field"):
        read_texts(str(jl))
    with pytest.raises(FinemedError, match="no such file or folder"):
        read_texts(str(tmp_path / "none.jsonl"))
