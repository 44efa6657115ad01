"""The engine policy and the managed vLLM server's faults (finemed/core/engine.py, its use in finemed/core/llm.py).

Fast: the policy, a port already taken and a server that dies mid-run run without vLLM (the dying server is a
real child process speaking the OpenAI wire format that exits after N replies). The "model it cannot load" case
starts the real vLLM server from .venv-vllm and is skipped, with the reason, only where `make vllm` was not run.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finemed.core import engine
from finemed.core.config import FinemedError
from finemed.core.engine import VLLMServer, VLLMSettings, choose_engine
from finemed.core.llm import LLMClient, ResponseCache
from finemed.core.procs import free_port

STUB = r'''
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
left = int(sys.argv[2])
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _send(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self._send({"data": [{"id": "m"}]})
    def do_POST(self):
        global left
        n = int(self.headers.get("Content-Length", 0)); req = json.loads(self.rfile.read(n))
        if left <= 0:
            print("RuntimeError: engine core died (stub)", flush=True); os._exit(3)
        left -= 1
        self._send({"choices": [{"message": {"content": "echo " + req["messages"][-1]["content"]},
                                 "finish_reason": "stop"}]})
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def test_auto_is_hf_without_the_venv_and_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(engine.VENV_ENV, str(tmp_path / "no-venv"))
    monkeypatch.delenv("FINEMED_ENGINE", raising=False)
    engine._said.clear()
    with caplog.at_level(logging.INFO, logger="finemed.core.engine"):
        assert choose_engine("auto") == "hf"
        assert choose_engine("auto") == "hf"
    lines = [r.getMessage() for r in caplog.records if "runs on HF" in r.getMessage()]
    assert len(lines) == 1 and "make vllm" in lines[0]
    with pytest.raises(FinemedError, match=r"engine vllm but there is no vLLM venv .*make vllm"):
        choose_engine("vllm", "eval generate")
    assert choose_engine("hf") == "hf"


def test_auto_is_vllm_with_a_built_venv_and_the_env_overrides_auto_only(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    monkeypatch.setenv(engine.VENV_ENV, str(venv))
    monkeypatch.delenv("FINEMED_ENGINE", raising=False)
    assert choose_engine("auto") == "hf"  # no stamp: `make vllm` did not finish
    (venv / engine.STAMP).write_text("x")
    assert choose_engine("auto") == "vllm"
    monkeypatch.setenv("FINEMED_ENGINE", "hf")
    assert choose_engine("auto") == "hf" and choose_engine("vllm") == "vllm"


def test_server_command_passes_parallelism_and_memory_settings(tmp_path):
    s = VLLMSettings(tensor_parallel_size=4, data_parallel_size=2, gpu_memory_utilization=0.8, max_model_len=8192)
    cmd = VLLMServer(tmp_path, s, port=1234).command(Path("/py"))
    flags = {cmd[i]: cmd[i + 1] for i in range(3, len(cmd) - 1)}
    assert cmd[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]
    assert flags["--tensor-parallel-size"] == "4" and flags["--data-parallel-size"] == "2"
    assert flags["--gpu-memory-utilization"] == "0.8" and flags["--max-model-len"] == "8192"
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "1234" and "--enforce-eager" in cmd


def _fake_venv(tmp_path, monkeypatch) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / engine.STAMP).write_text("x")
    monkeypatch.setenv(engine.VENV_ENV, str(venv))


def test_port_in_use_is_one_line(tiny_model_dir, tmp_path, monkeypatch):
    _fake_venv(tmp_path, monkeypatch)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(FinemedError, match=rf"port {port} on 127.0.0.1 is already in use; pick another --port"):
            VLLMServer(tiny_model_dir, port=port).start()


def test_parallelism_without_gpus_is_refused_in_one_line(tiny_model_dir, tmp_path, monkeypatch):
    _fake_venv(tmp_path, monkeypatch)
    monkeypatch.setattr(engine, "_cuda_visible", lambda: False)
    with pytest.raises(FinemedError, match="tensor_parallel_size=2 x data_parallel_size=1 needs GPUs"):
        VLLMServer(tiny_model_dir, VLLMSettings(tensor_parallel_size=2)).start()


@pytest.fixture()
def dying_server(tmp_path):
    """A real child process answering 3 chat requests, then exiting (exit 3) on the 4th, wrapped as a server."""
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", STUB, str(port), "3"], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = VLLMServer(tmp_path, port=port, log_path=log_path, name="m")
    server.proc = proc
    import httpx

    for _ in range(100):
        try:
            httpx.get(f"{server.base_url}/models", timeout=1.0)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield server
    server.stop()


def test_a_server_dying_mid_run_fails_the_stage_in_one_line_and_keeps_what_was_done(dying_server, tiny_model_dir,
                                                                                   tmp_path, monkeypatch):
    from finemed.core import llm
    from finemed.evaluation import generate

    monkeypatch.setattr(llm, "choose_engine", lambda *a, **k: "vllm")
    monkeypatch.setattr(generate, "choose_engine", lambda *a, **k: "vllm")
    monkeypatch.setattr(llm, "serve", lambda *a, **k: dying_server)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(6)))
    cfg = generate.GenerateConfig(models=[str(tiny_model_dir)], prompts=str(prompts), concurrency=1, engine="vllm")
    run_dir = tmp_path / "run"
    with pytest.raises(FinemedError) as err:
        generate.run(cfg, run_dir)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"vLLM server for {tmp_path} died (exit 3)")
    assert "engine core died (stub)" in msg and msg.endswith("replies so far are cached")
    cache = ResponseCache(run_dir / "responses.sqlite")
    assert len(cache) == 3  # the 3 answers before the death, each cached as it arrived
    cache.close()


def test_the_cache_key_separates_engines(tiny_model_dir, monkeypatch):
    monkeypatch.setattr("finemed.core.llm.choose_engine", lambda *a, **k: "hf")
    hf = LLMClient(f"local:{tiny_model_dir}", engine="hf")
    msgs = [{"role": "user", "content": "x"}]
    key_hf = hf.cache_key(msgs)
    hf.engine = "vllm"
    assert hf.cache_key(msgs) != key_hf


@pytest.mark.slow
@pytest.mark.smoke
def test_a_model_vllm_cannot_load_is_one_line(tmp_path):
    if engine.vllm_python() is None:
        pytest.skip(f"no vLLM venv at {engine.vllm_venv()}; run `make vllm`")
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"architectures": ["NoSuchForCausalLM"], "model_type": "nosuch"}))
    t0 = time.perf_counter()
    with pytest.raises(FinemedError) as err:
        VLLMServer(bad, VLLMSettings(start_timeout_s=300)).start()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"vLLM server for {bad} failed to start (exit ")
    assert "log: " in msg and time.perf_counter() - t0 < 300


def test_serve_reuses_a_server_and_keeps_at_most_two(tmp_path, monkeypatch):
    def fake_start(self):
        self.proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
        return self

    monkeypatch.setattr(VLLMServer, "start", fake_start)
    monkeypatch.delenv("FINEMED_VLLM_MAX_SERVERS", raising=False)
    dirs = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        dirs.append(tmp_path / name)
    try:
        first = engine.serve(dirs[0])
        assert engine.serve(dirs[0]) is first  # same model and settings: the same server
        second = engine.serve(dirs[1])
        engine.serve(dirs[0])  # a is now the most recently used
        engine.serve(dirs[2])  # the third stops the least recently used: b
        assert first.alive() and not second.alive() and len(engine._servers) == 2
    finally:
        engine.stop_all()


def test_the_vllm_venv_is_looked_up_beside_the_makefile_that_builds_it():
    from finemed.core.engine import repo_root, vllm_venv

    assert (repo_root() / "Makefile").is_file() and "vllm:" in (repo_root() / "Makefile").read_text()
    assert vllm_venv().parent == repo_root()
