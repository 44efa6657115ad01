"""One LLM client for OpenAI-compatible endpoints and local HF models (corpus labelling and judging).

``LLMClient(spec)`` where ``spec`` is
- ``http://HOST:PORT/v1#MODEL`` (or https): POST ``{base}/chat/completions``, OpenAI wire format, so vLLM,
  TGI, OpenAI and ``transformers serve`` all work;
- ``local:PATH_OR_NAME``: on ``engine`` vllm (see :func:`finemed.core.engine.choose_engine`; ``auto`` takes it where
  ``make vllm`` was run) a managed vLLM server is started for it (:func:`finemed.core.engine.serve`) and answered over
  HTTP like any endpoint (so ``logprobs`` work); on hf an HF causal LM loaded with
  :func:`finemed.models.loading.load_causal_lm` on the device/dtype of :func:`finemed.core.runtime.resolve`, answered by
  :func:`finemed.models.generate.generate`. ``client.engine`` says which ran (``http`` for a given URL).

What it adds over a plain HTTP call (hand-written over httpx: the cache/retry layer is shared by both
backends, and the ``openai`` package retries on its own, which would hide attempts from our counters):
- an SQLite response cache keyed by (model spec, messages, generation params, cache_tag); only successful
  replies are cached, each as soon as it arrives, so a rerun makes zero calls and an aborted run keeps
  what it had;
- bounded concurrency (a thread pool of ``concurrency`` workers);
- retries with exponential backoff and jitter on 429, 5xx, timeouts, connection errors and unparseable
  bodies (``Retry-After`` is honoured); other 4xx fail at once;
- fail fast: a preflight ``GET {base}/models`` before the first HTTP batch, and a circuit breaker that stops
  the batch after ``max_conn_failures`` consecutive connection failures; both raise one
  :class:`FinemedError` line naming the URL;
- ``logprobs=N`` asks for the first token's top-N alternatives (``LLMReply.top_logprobs``; None where the
  endpoint returns none);
- the API key comes from ``FINEMED_LLM_API_KEY`` or ``OPENAI_API_KEY`` and is never logged or cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.core.engine import VLLMServer, VLLMSettings, choose_engine, serve
from finemed.core.logs import get_logger
from finemed.core.runtime import resolve
from finemed.models.generate import generate
from finemed.models.loading import load_causal_lm

log = get_logger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
LOCAL_CHUNK = 64  # prompts per generate() call: one failing chunk must not lose a long job


class LLMReply(BaseModel):
    text: str | None
    cached: bool = False
    error: str | None = None
    attempts: int = 0
    finish_reason: str | None = None  # "stop" | "length" | None (unknown)
    top_logprobs: list[tuple[str, float]] | None = None  # first token's alternatives, when asked and returned


class _RetryableError(Exception):
    def __init__(self, msg: str, retry_after: float | None = None, connection: bool = False):
        super().__init__(msg)
        self.retry_after = retry_after
        self.connection = connection  # no connection was made (refused, unreachable, connect timeout)


class ResponseCache:
    """A thread-safe SQLite key → reply store (WAL mode; one connection guarded by a lock)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, created REAL,"
                         " finish TEXT)")
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(replies)")}
        if "finish" not in cols:  # caches written before finish_reason was stored
            self._db.execute("ALTER TABLE replies ADD COLUMN finish TEXT")
        if "extra" not in cols:  # caches written before logprobs were stored
            self._db.execute("ALTER TABLE replies ADD COLUMN extra TEXT")
        self._db.commit()

    def get_row(self, key: str) -> tuple[str, str | None, str | None] | None:
        """``(text, finish, extra_json)`` or None."""
        with self._lock:
            row = self._db.execute("SELECT text, finish, extra FROM replies WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def get_full(self, key: str) -> tuple[str, str | None] | None:
        hit = self.get_row(key)
        return (hit[0], hit[1]) if hit else None

    def get(self, key: str) -> str | None:
        hit = self.get_row(key)
        return hit[0] if hit else None

    def put(self, key: str, text: str, finish: str | None = None, extra: str | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies (key, text, created, finish, extra) "
                             "VALUES (?, ?, ?, ?, ?)", (key, text, time.time(), finish, extra))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def parse_spec(spec: str) -> tuple[str, str, str]:
    """``http://h:p/v1#model`` → ("http", base_url, model); ``local:PATH`` → ("local", PATH, PATH)."""
    if spec.startswith("local:"):
        path = spec[len("local:"):]
        if not path:
            raise FinemedError(f"LLM spec {spec!r}: empty path; use local:PATH_OR_NAME, e.g. local:smollm2")
        return "local", path, path
    if spec.startswith(("http://", "https://")):
        base, sep, model = spec.partition("#")
        if not sep or not model:
            raise FinemedError(f"LLM spec {spec!r}: no model name; use URL#MODEL, e.g. "
                               "http://127.0.0.1:8000/v1#my-model")
        return "http", base.rstrip("/"), model
    raise FinemedError(f"LLM spec {spec!r}: expected http(s)://HOST:PORT/v1#MODEL or local:PATH_OR_NAME")


def _api_key() -> str | None:
    return os.environ.get("FINEMED_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


def _top_logprobs(choice: dict) -> list[tuple[str, float]] | None:
    """The first generated token's top alternatives from an OpenAI ``choice`` (None if absent)."""
    try:
        first = choice["logprobs"]["content"][0]
        tops = first.get("top_logprobs") or [first]
        return [(str(t["token"]), float(t["logprob"])) for t in tops]
    except (KeyError, IndexError, TypeError, ValueError):
        return None


class LLMClient:
    """Chat completions with cache, bounded concurrency, retries and fail-fast. See the module docstring."""

    def __init__(self, spec: str, *, cache_path: Path | None = None, concurrency: int = 8, max_retries: int = 4,
                 timeout_s: float = 60.0, max_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
                 backoff_s: float = 0.5, batch_size: int = 8, dtype: str = "auto", device: str = "auto",
                 max_conn_failures: int = 3, preflight: bool = True, engine: str = "auto",
                 vllm: VLLMSettings | None = None):
        self.spec = spec
        self.kind, self.target, self.model = parse_spec(spec)
        self.engine = "http" if self.kind == "http" else choose_engine(engine, f"LLM {spec}")
        self.server: VLLMServer | None = None
        if self.engine == "vllm":  # a local model behind a managed server: from here on an HTTP endpoint
            self.server = serve(self.target, vllm)
            self.kind, self.target, self.model = "http", self.server.base_url, self.server.name
        if concurrency < 1:
            raise FinemedError(f"LLM concurrency {concurrency}: must be >= 1")
        self.concurrency, self.max_retries, self.timeout_s = concurrency, max_retries, timeout_s
        self.max_tokens, self.temperature, self.seed = max_tokens, temperature, seed
        self.backoff_s, self.batch_size, self.dtype, self.device = backoff_s, batch_size, dtype, device
        self.max_conn_failures, self.preflight = max(1, max_conn_failures), preflight
        self.cache = ResponseCache(cache_path) if cache_path else None
        self.stats: dict[str, int] = {"calls": 0, "cache_hits": 0, "retries": 0, "errors": 0}
        self._stats_lock = threading.Lock()
        self._http = None
        self._checked = False  # preflight done
        self._conn_failures = 0
        self._broken: str | None = None  # circuit breaker tripped: the one-line reason
        self._local = None  # (model, tokenizer, runtime)

    # ---- bookkeeping -------------------------------------------------------------------------
    def _bump(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def params(self, max_tokens: int | None = None, logprobs: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"max_tokens": self.max_tokens if max_tokens is None else max_tokens,
                               "temperature": self.temperature, "seed": self.seed}
        if logprobs:
            out.update(logprobs=True, top_logprobs=logprobs)
        return out

    def cache_key(self, messages: list[dict], cache_tag: str = "", *, max_tokens: int | None = None,
                  logprobs: int | None = None) -> str:
        model = self.spec + "@vllm" if self.engine == "vllm" else self.model if self.kind == "http" else self.spec
        payload = json.dumps({"model": model, "messages": messages,
                              "params": self.params(max_tokens, logprobs), "tag": cache_tag},
                             sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    # ---- public ------------------------------------------------------------------------------
    def chat(self, messages_list: list[list[dict]], *, cache_tag: str = "", max_tokens: int | None = None,
             logprobs: int | None = None) -> list[LLMReply]:
        """One reply per conversation, in order. Failed calls come back with ``text=None`` and ``error``.

        Raises :class:`FinemedError` (one line naming the URL) when the endpoint is unreachable; replies that
        arrived before are cached.
        """
        replies: list[LLMReply | None] = [None] * len(messages_list)
        todo: list[int] = []
        keys = [self.cache_key(m, cache_tag, max_tokens=max_tokens, logprobs=logprobs) for m in messages_list]
        for i, key in enumerate(keys):
            hit = self.cache.get_row(key) if self.cache is not None else None
            if hit is not None:
                self._bump("cache_hits")
                tops = [tuple(x) for x in json.loads(hit[2])] if hit[2] else None
                replies[i] = LLMReply(text=hit[0], cached=True, attempts=0, finish_reason=hit[1], top_logprobs=tops)
            else:
                todo.append(i)

        def done(j: int, reply: LLMReply) -> None:
            i = todo[j]
            if reply.text is not None and self.cache is not None:
                extra = json.dumps(reply.top_logprobs) if reply.top_logprobs is not None else None
                self.cache.put(keys[i], reply.text, reply.finish_reason, extra)
            replies[i] = reply

        if todo:
            batch = [messages_list[i] for i in todo]
            if self.kind == "local":
                self._local_chat(batch, done, max_tokens)
            else:
                self._http_chat(batch, done, max_tokens, logprobs)
        return [r for r in replies if r is not None]

    def local_model(self):
        """``(model, tokenizer, runtime)`` of a ``local:`` spec, loaded once (left padding, a pad token)."""
        if self.kind != "local":
            raise FinemedError(f"LLM {self.spec}: not a local: model")
        if self._local is None:

            rt = resolve(self.device, self.dtype)
            model, tok = load_causal_lm(self.target, runtime=rt)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._local = (model, tok, rt)
        return self._local

    def check(self) -> None:
        """Preflight: ``GET {base}/models``; raises one :class:`FinemedError` line if nothing answers there."""
        import httpx

        if self.kind != "http" or self._checked:
            return
        url = f"{self.target}/models"
        try:
            self._client().get(url, timeout=httpx.Timeout(min(self.timeout_s, 10.0)))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as err:
            raise FinemedError(f"LLM endpoint {self.target} unreachable ({type(err).__name__}); "
                               f"is the server running on that host and port?") from None
        except httpx.HTTPError:
            pass  # it answered something (or is slow): the chat calls will tell
        self._checked = True

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self.cache is not None:
            self.cache.close()

    # ---- HTTP backend ------------------------------------------------------------------------
    def _client(self):
        import httpx

        if self._http is None:
            headers = {"Content-Type": "application/json"}
            key = _api_key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._http = httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers, limits=limits)
        return self._http

    def _http_chat(self, batch: list[list[dict]], done: Callable[[int, LLMReply], None], max_tokens: int | None,
                   logprobs: int | None) -> None:
        self._client()
        if self.preflight:
            self.check()
        self._conn_failures, self._broken = 0, None
        params = self.params(max_tokens, logprobs)

        def one(j: int) -> None:
            reply = self._http_one(batch[j], params)
            if reply is not None:
                done(j, reply)

        if self.concurrency == 1 or len(batch) == 1:
            for j in range(len(batch)):
                one(j)
        else:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                list(pool.map(one, range(len(batch))))
        dead = self.server.died() if self.server is not None else None
        if dead:  # a managed server that died mid-run: its line, not the connection errors it caused
            raise FinemedError(f"{dead}; replies so far are cached")
        if self._broken:
            raise FinemedError(self._broken)

    def _conn_result(self, failed: bool) -> None:
        with self._stats_lock:
            self._conn_failures = self._conn_failures + 1 if failed else 0
            if self._conn_failures >= self.max_conn_failures and self._broken is None:
                self._broken = (f"LLM endpoint {self.target} unreachable: {self._conn_failures} consecutive "
                                f"connection failures; stopped (replies so far are cached)")

    def _http_one(self, messages: list[dict], params: dict) -> LLMReply | None:
        """One conversation with retries; None when the circuit breaker is open (the batch is aborted)."""
        body = {"model": self.model, "messages": messages, **params}
        last = ""
        for attempt in range(1, self.max_retries + 2):
            if self._broken:
                return None
            self._bump("calls")
            if attempt > 1:
                self._bump("retries")
            try:
                text, finish, tops = self._post(body)
                self._conn_result(False)
                return LLMReply(text=text, attempts=attempt, finish_reason=finish, top_logprobs=tops)
            except _RetryableError as err:
                self._conn_result(err.connection)
                last = str(err)
                if attempt <= self.max_retries and not self._broken:
                    delay = err.retry_after if err.retry_after is not None else \
                        self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
                    log.debug("LLM call failed (%s); retry %d in %.2fs", last, attempt, delay)
                    time.sleep(min(delay, 30.0))
            except FinemedError as err:  # a non-retryable 4xx
                self._conn_result(False)
                self._bump("errors")
                return LLMReply(text=None, error=str(err), attempts=attempt)
        if self._broken:
            return None
        self._bump("errors")
        return LLMReply(text=None, error=f"gave up after {self.max_retries + 1} attempts: {last}",
                        attempts=self.max_retries + 1)

    def _post(self, body: dict) -> tuple[str, str | None, list[tuple[str, float]] | None]:
        import httpx

        url = f"{self.target}/chat/completions"
        try:
            resp = self._http.post(url, json=body)
        except httpx.ConnectTimeout:
            raise _RetryableError(f"connect timeout after {self.timeout_s}s", connection=True) from None
        except httpx.TimeoutException:
            raise _RetryableError(f"timeout after {self.timeout_s}s") from None
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as err:
            raise _RetryableError(f"connection error: {type(err).__name__}", connection=True) from None
        except httpx.TransportError as err:
            raise _RetryableError(f"connection error: {type(err).__name__}") from None
        if resp.status_code in RETRY_STATUS or resp.status_code >= 500:
            ra = resp.headers.get("retry-after")
            try:
                retry_after = float(ra) if ra is not None else None
            except ValueError:
                retry_after = None
            raise _RetryableError(f"HTTP {resp.status_code}", retry_after)
        if resp.status_code >= 400:
            raise FinemedError(f"{url}: HTTP {resp.status_code} {resp.text[:200]!r}; check the model name and request")
        try:
            choice = resp.json()["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _RetryableError(f"unparseable response body {resp.text[:80]!r}") from None
        if not isinstance(content, str):
            raise _RetryableError("response content is not a string")
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        tops = _top_logprobs(choice) if body.get("logprobs") else None
        return content, finish if isinstance(finish, str) else None, tops

    # ---- local HF backend --------------------------------------------------------------------
    def _local_chat(self, batch: list[list[dict]], done: Callable[[int, LLMReply], None],
                    max_tokens: int | None) -> None:
        model, tok, rt = self.local_model()
        limit = self.max_tokens if max_tokens is None else max_tokens
        for start in range(0, len(batch), LOCAL_CHUNK):
            chunk = batch[start:start + LOCAL_CHUNK]
            self._bump("calls", len(chunk))
            try:
                gens = generate(model, tok, chunk, max_new_tokens=limit, batch_size=self.batch_size, chat=True,
                                temperature=self.temperature, seed=self.seed, runtime=rt,
                                progress=f"LLM {Path(self.target).name}" if len(batch) > self.batch_size else None)
                replies = [LLMReply(text=g.text, attempts=1, finish_reason=g.finish_reason) for g in gens]
            except Exception as err:  # noqa: BLE001 - one bad chunk must not kill a long job
                self._bump("errors", len(chunk))
                replies = [LLMReply(text=None, error=f"{type(err).__name__}: {err}", attempts=1) for _ in chunk]
            for j, reply in enumerate(replies):
                done(start + j, reply)
