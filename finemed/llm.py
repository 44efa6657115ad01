"""One LLM client for OpenAI-compatible endpoints and local HF models (corpus labelling and judging).

``LLMClient(spec)`` where ``spec`` is
- ``http://HOST:PORT/v1#MODEL`` (or https): POST ``{base}/chat/completions``, OpenAI wire format, so vLLM,
  TGI, OpenAI and ``transformers serve`` all work;
- ``local:PATH_OR_NAME``: an HF causal LM loaded with :func:`finemed.models.loading.load_causal_lm`, chat
  template applied, batched greedy decoding (sampling with a seed when ``temperature > 0``).

What it adds over a plain HTTP call (hand-written over httpx: the cache/retry layer is shared by both
backends, and the ``openai`` package retries on its own, which would hide attempts from our counters):
- an SQLite response cache keyed by (model spec, messages, generation params, cache_tag); only successful
  replies are cached, so a rerun makes zero calls and a failed call is retried on the next run;
- bounded concurrency (a thread pool of ``concurrency`` workers);
- retries with exponential backoff and jitter on 429, 5xx, timeouts, connection errors and unparseable
  bodies (``Retry-After`` is honoured); other 4xx fail at once;
- the API key comes from ``FINEMED_LLM_API_KEY`` or ``OPENAI_API_KEY`` and is never logged or cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from finemed.config import FinemedError

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class LLMReply(BaseModel):
    text: str | None
    cached: bool = False
    error: str | None = None
    attempts: int = 0
    finish_reason: str | None = None  # "stop" | "length" | None (unknown)


class _RetryableError(Exception):
    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


class ResponseCache:
    """A thread-safe SQLite key → text store (WAL mode; one connection guarded by a lock)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, created REAL, finish TEXT)")
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(replies)")}
        if "finish" not in cols:  # caches written before finish_reason was stored
            self._db.execute("ALTER TABLE replies ADD COLUMN finish TEXT")
        self._db.commit()

    def get_full(self, key: str) -> tuple[str, str | None] | None:
        with self._lock:
            row = self._db.execute("SELECT text, finish FROM replies WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def get(self, key: str) -> str | None:
        hit = self.get_full(key)
        return hit[0] if hit else None

    def put(self, key: str, text: str, finish: str | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies (key, text, created, finish) VALUES (?, ?, ?, ?)",
                             (key, text, time.time(), finish))
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
            raise FinemedError(f"LLM spec {spec!r}: no model name; use URL#MODEL, e.g. http://127.0.0.1:8000/v1#my-model")
        return "http", base.rstrip("/"), model
    raise FinemedError(f"LLM spec {spec!r}: expected http(s)://HOST:PORT/v1#MODEL or local:PATH_OR_NAME")


def _api_key() -> str | None:
    return os.environ.get("FINEMED_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


class LLMClient:
    """Chat completions with cache, bounded concurrency and retries. See the module docstring."""

    def __init__(self, spec: str, *, cache_path: Path | None = None, concurrency: int = 8, max_retries: int = 4,
                 timeout_s: float = 60.0, max_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
                 backoff_s: float = 0.5, batch_size: int = 8, dtype: str = "float32"):
        self.spec = spec
        self.kind, self.target, self.model = parse_spec(spec)
        if concurrency < 1:
            raise FinemedError(f"LLM concurrency {concurrency}: must be >= 1")
        self.concurrency, self.max_retries, self.timeout_s = concurrency, max_retries, timeout_s
        self.max_tokens, self.temperature, self.seed = max_tokens, temperature, seed
        self.backoff_s, self.batch_size, self.dtype = backoff_s, batch_size, dtype
        self.cache = ResponseCache(cache_path) if cache_path else None
        self.stats: dict[str, int] = {"calls": 0, "cache_hits": 0, "retries": 0, "errors": 0}
        self._stats_lock = threading.Lock()
        self._http = None
        self._local = None  # (model, tokenizer)

    # ---- bookkeeping -------------------------------------------------------------------------
    def _bump(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed}

    def cache_key(self, messages: list[dict], cache_tag: str = "") -> str:
        payload = json.dumps({"model": self.model if self.kind == "http" else self.spec, "messages": messages,
                              "params": self.params(), "tag": cache_tag}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    # ---- public ------------------------------------------------------------------------------
    def chat(self, messages_list: list[list[dict]], *, cache_tag: str = "") -> list[LLMReply]:
        """One reply per conversation, in order. Failed calls come back with ``text=None`` and ``error``."""
        replies: list[LLMReply | None] = [None] * len(messages_list)
        todo: list[int] = []
        keys = [self.cache_key(m, cache_tag) for m in messages_list]
        for i, key in enumerate(keys):
            hit = self.cache.get_full(key) if self.cache is not None else None
            if hit is not None:
                self._bump("cache_hits")
                replies[i] = LLMReply(text=hit[0], cached=True, attempts=0, finish_reason=hit[1])
            else:
                todo.append(i)
        if todo:
            fresh = self._local_chat([messages_list[i] for i in todo]) if self.kind == "local" else \
                self._http_chat([messages_list[i] for i in todo])
            for i, reply in zip(todo, fresh):
                if reply.text is not None and self.cache is not None:
                    self.cache.put(keys[i], reply.text, reply.finish_reason)
                replies[i] = reply
        return [r for r in replies if r is not None]

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

    def _http_chat(self, batch: list[list[dict]]) -> list[LLMReply]:
        self._client()
        if self.concurrency == 1 or len(batch) == 1:
            return [self._http_one(m) for m in batch]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._http_one, batch))

    def _http_one(self, messages: list[dict]) -> LLMReply:
        body = {"model": self.model, "messages": messages, **self.params()}
        last = ""
        for attempt in range(1, self.max_retries + 2):
            self._bump("calls")
            if attempt > 1:
                self._bump("retries")
            try:
                text, finish = self._post(body)
                return LLMReply(text=text, attempts=attempt, finish_reason=finish)
            except _RetryableError as err:
                last = str(err)
                if attempt <= self.max_retries:
                    delay = err.retry_after if err.retry_after is not None else \
                        self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
                    log.debug("LLM call failed (%s); retry %d in %.2fs", last, attempt, delay)
                    time.sleep(min(delay, 30.0))
            except FinemedError as err:  # a non-retryable 4xx
                self._bump("errors")
                return LLMReply(text=None, error=str(err), attempts=attempt)
        self._bump("errors")
        return LLMReply(text=None, error=f"gave up after {self.max_retries + 1} attempts: {last}", attempts=self.max_retries + 1)

    def _post(self, body: dict) -> tuple[str, str | None]:
        import httpx

        url = f"{self.target}/chat/completions"
        try:
            resp = self._http.post(url, json=body)
        except httpx.TimeoutException:
            raise _RetryableError(f"timeout after {self.timeout_s}s") from None
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
        return content, finish if isinstance(finish, str) else None

    # ---- local HF backend --------------------------------------------------------------------
    def _load_local(self):
        if self._local is None:
            from finemed.models.loading import load_causal_lm

            model, tok = load_causal_lm(self.target, dtype=self.dtype)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._local = (model, tok)
        return self._local

    def _local_chat(self, batch: list[list[dict]]) -> list[LLMReply]:
        import torch

        model, tok = self._load_local()
        out: list[LLMReply] = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            self._bump("calls", len(chunk))
            try:
                prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in chunk]
                enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
                gen_kw: dict[str, Any] = {"max_new_tokens": self.max_tokens, "pad_token_id": tok.pad_token_id}
                if self.temperature > 0:
                    torch.manual_seed(self.seed)
                    gen_kw.update(do_sample=True, temperature=self.temperature)
                else:
                    gen_kw.update(do_sample=False)
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=model.device.type == "cpu"):
                    ids = model.generate(**enc, **gen_kw)
                new = ids[:, enc["input_ids"].shape[1]:]
                texts = tok.batch_decode(new, skip_special_tokens=True)
                ended = [(row == tok.eos_token_id).any().item() or (row == tok.pad_token_id).any().item() for row in new]
                out.extend(LLMReply(text=t.strip(), attempts=1,
                                    finish_reason="stop" if e or len(row) < self.max_tokens else "length")
                           for t, e, row in zip(texts, ended, new))
            except Exception as err:  # noqa: BLE001 - one bad batch must not kill a long job
                self._bump("errors", len(chunk))
                out.extend(LLMReply(text=None, error=f"{type(err).__name__}: {err}", attempts=1) for _ in chunk)
        return out
