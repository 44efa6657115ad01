"""Local test servers: ``transformers serve`` (real model) and a scripted OpenAI-compatible fault server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from finemed.core.procs import free_port

VENV_BIN = Path(sys.executable).parent


def smollm2_dir() -> Path | None:
    base = Path(os.environ.get("FINEMED_CACHE", Path.home() / ".cache" / "finemed")).expanduser()
    d = base / "models" / "smollm2"
    return d if (d / "config.json").is_file() else None


def start_transformers_serve(model_dir: Path, *, continuous_batching: bool = False, timeout_s: float = 180.0,
                             log_path: Path | None = None, dtype: str = "auto") -> tuple[subprocess.Popen, str]:
    """Start ``transformers serve MODEL`` on a free 127.0.0.1 port; wait for /health; return (proc, base URL)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [str(VENV_BIN / "transformers"), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
           "--device", "cpu", "--dtype", dtype, "--log-level", "warning"]
    if continuous_batching:
        cmd.append("--continuous-batching")
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {proc.returncode} before becoming healthy")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"{base}/v1"
        except OSError:
            time.sleep(1.0)
    stop_process(proc)
    raise RuntimeError(f"transformers serve not healthy after {timeout_s}s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


_ANSWERS = re.compile(r"\[(?:Antwort|Answer) A\]\n(.*?)\n\n\[(?:Antwort|Answer) B\]\n(.*?)\n\n", re.S)


def length_judge(messages: list[dict]) -> str:
    """A deterministic 'judge': the answer containing more 'gut' wins; equal → tie; answers from the prompt."""
    m = _ANSWERS.search(messages[1]["content"]) if len(messages) > 1 else None
    if not m:
        return "no idea"
    a, b = m.group(1).count("gut"), m.group(2).count("gut")
    return f"Begründung: kurz. [[{'A' if a > b else 'B' if b > a else 'C'}]]"


class FaultServer:
    """OpenAI-compatible ``/v1/chat/completions`` whose reply per request is chosen by ``plan``.

    ``plan(messages, n)`` gets the conversation and how many times this exact conversation was seen before
    (0 on the first request) and returns one of ``("ok", text)``, ``("status", code)``, ``("hang", seconds)``,
    ``("garbage", body)``. Counts requests in total and per conversation; tracks the peak of concurrent requests.
    """

    def __init__(self, plan: Callable[[list[dict], int], tuple] | None = None, delay_s: float = 0.0):
        self.plan = plan or (lambda msgs, n: ("ok", length_judge(msgs)))
        self.delay_s = delay_s
        self.requests = 0
        self.per_conv: Counter = Counter()
        self.in_flight = self.peak = 0
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                msgs = body.get("messages", [])
                key = json.dumps(msgs, sort_keys=True)
                with server._lock:
                    n = server.per_conv[key]
                    server.per_conv[key] += 1
                    server.requests += 1
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                    server.auth_headers.append(self.headers.get("Authorization"))
                try:
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    kind, arg = server.plan(msgs, n)
                    if kind == "hang":
                        time.sleep(arg)
                        kind, arg = "ok", length_judge(msgs)
                    if kind == "status":
                        self._send(arg, b'{"error": "scripted"}', {"Retry-After": "0"} if arg == 429 else {})
                    elif kind == "garbage":
                        self._send(200, arg if isinstance(arg, bytes) else str(arg).encode())
                    else:
                        payload = {"id": "x", "object": "chat.completion", "model": body.get("model"),
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": arg}}]}
                        self._send(200, json.dumps(payload).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, code: int, data: bytes, headers: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
