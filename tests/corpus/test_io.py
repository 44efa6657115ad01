"""Corpus inputs from fsspec URLs: ``s3://`` (a local moto server), ``memory://`` and ``file://`` folders and files
give the same output ids as the same files read from a local path."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from finemed.corpus.build import CorpusBuildConfig, run
from finemed.corpus.rows import count_input_files, input_format, read_rows


def _ids(run_dir: Path) -> set[str]:
    return {i for f in (run_dir / "output").glob("*.parquet")
            for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}


def _build(input_path: str, run_dir: Path, storage_options: dict | None = None) -> set[str]:
    cfg = CorpusBuildConfig(input=input_path, storage_options=storage_options or {}, tokenizer=None,
                            pipeline={"steps": ["length", "minhash"]}, executor={"workers": 1})
    res = run(cfg, run_dir)
    ids = _ids(run_dir)
    assert res.kept == len(ids) > 100
    return ids


@pytest.fixture(scope="module")
def local_ids(small_dev, tmp_path_factory) -> set[str]:
    return _build(str(small_dev), tmp_path_factory.mktemp("local") / "run")


@pytest.fixture()
def memory_folder(small_dev):
    import fsspec

    fs = fsspec.filesystem("memory")
    for f in sorted(small_dev.glob("*.parquet")):
        fs.pipe(f"/finemed-test/dev/{f.name}", f.read_bytes())
    yield "memory://finemed-test/dev"
    fs.rm("/finemed-test", recursive=True)


def test_memory_folder_and_file(memory_folder, small_dev, local_ids, tmp_path):
    assert input_format(memory_folder) == "parquet" and count_input_files(memory_folder) == 4
    assert _build(memory_folder, tmp_path / "folder") == local_ids
    first = sorted(small_dev.glob("*.parquet"))[0]
    one = {r["id"] for r in read_rows(first, columns=["id"])}
    assert {r["id"] for r in read_rows(f"{memory_folder}/{first.name}", columns=["id"])} == one


def test_file_url_folder_and_file(small_dev, local_ids, tmp_path):
    assert _build(f"file://{small_dev}", tmp_path / "folder") == local_ids
    first = sorted(small_dev.glob("*.parquet"))[0]
    ids = _build(f"file://{first}", tmp_path / "file")
    assert ids <= {r["id"] for r in read_rows(first, columns=["id"])}
    assert ids == _build(str(first), tmp_path / "plain")


@pytest.fixture()
def s3_server():
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "eu-central-1"}}
    finally:
        server.stop()


def test_s3_folder_matches_local(s3_server, small_dev, local_ids, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server)
    fs.mkdir("finemed-test")
    for f in sorted(small_dev.glob("*.parquet")):
        fs.pipe(f"finemed-test/fineweb2/deu_Latn/train/{f.name}", f.read_bytes())
    url = "s3://finemed-test/fineweb2/deu_Latn/train"
    assert input_format(url, s3_server) == "parquet" and count_input_files(url, s3_server) == 4
    assert _build(url, tmp_path / "s3", s3_server) == local_ids
