"""Real local servers for the evaluation tests (127.0.0.1 only).

- ``judge_server``: ``transformers serve`` on the cached SmolLM2 (a real OpenAI-compatible server), started
  once per session and stopped after (``eval_servers.py`` holds the helpers; the benchmark uses them too).
- ``fault_server``: a real ``http.server`` speaking the OpenAI chat wire format, whose behaviour per request is
  scripted by the test (500s, 429s, hangs, garbage bodies, verdict-free replies), counting every request.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from eval_servers import FaultServer, smollm2_dir, start_transformers_serve, stop_process  # noqa: E402

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def judge_server():
    """``(base_url, model_name)`` of a running ``transformers serve`` with SmolLM2; stopped at session end."""
    model_dir = smollm2_dir()
    if model_dir is None:
        pytest.skip("SmolLM2 cache missing (~/.cache/finemed/models/smollm2); run `finemed models fetch smollm2`")
    proc, base = start_transformers_serve(model_dir)
    try:
        yield base, str(model_dir)
    finally:
        stop_process(proc)


@pytest.fixture()
def fault_server():
    server = FaultServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vllm_server():
    """ONE managed vLLM server on the cached SmolLM2 for every vLLM test (the ~33 s start is paid once); the
    stages' own :func:`finemed.core.engine.serve` calls with default settings reuse it. Skipped, with the reason, only
    where ``make vllm`` has not been run."""
    from finemed.core import engine

    if engine.vllm_python() is None:
        pytest.skip(f"no vLLM venv at {engine.vllm_venv()}; run `make vllm`")
    model_dir = smollm2_dir()
    if model_dir is None:
        pytest.skip("SmolLM2 cache missing (~/.cache/finemed/models/smollm2); run `finemed models fetch smollm2`")
    server = engine.serve(model_dir)
    try:
        yield server
    finally:
        engine.stop_all()
