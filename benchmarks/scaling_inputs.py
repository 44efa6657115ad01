"""Synthetic inputs of any size for ``benchmarks/scaling.py``, and a stub OpenAI-compatible endpoint.

Corpus docs are FineWeb2-schema rows (the columns of :mod:`finemed.corpus.sample_input`): each mixes the
sentences of a dev-input doc with sentences of other docs of the same kind (medical, other German, junk,
non-German; the bundled ``builtin:medical``, ``builtin:fortunes_de`` and ``builtin:xquad.de`` texts join the
pools), and a seeded 10% are near-duplicates of an earlier doc (one word changed, a footer added), so the
filters and MinHash have real work.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
NEAR_DUP_RATE = 0.1


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.split(text) if len(s.strip()) > 3]


def _kind(row: dict) -> str:
    src = str(row.get("source", ""))
    return "junk" if src.startswith("junk") else str(row["medical"])


@lru_cache(maxsize=1)
def _pools() -> tuple[list[dict], dict[str, list[str]]]:
    from finemed.core.texts import read_texts
    from finemed.corpus.sample_input import build_rows

    rows = build_rows()
    pools: dict[str, list[str]] = {}
    for r in rows:
        pools.setdefault(_kind(r), []).extend(_sentences(r["text"]))
    for spec, kind in (("builtin:medical", "1"), ("builtin:fortunes_de", "0"), ("builtin:xquad.de", "0")):
        for t in read_texts(spec):
            pools[kind].extend(_sentences(t))
    return rows, pools


def _mutate(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    i = rng.randrange(len(words))
    words[i] = words[i][::-1] if len(words[i]) > 3 else words[i] + "e"
    return " ".join(words)


def synth_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` FineWeb2-schema docs (ids unique), ~10% seeded near-duplicates."""
    base, pools = _pools()
    rng = random.Random(seed)
    out: list[dict] = []
    for i in range(n):
        if out and rng.random() < NEAR_DUP_RATE:
            src = out[rng.randrange(len(out))]
            row = {**src, "text": _mutate(src["text"], rng) + f"\nQuelle: Archiv {i}", "source": src["source"]}
        else:
            tpl = base[rng.randrange(len(base))]
            own = _sentences(tpl["text"]) or [tpl["text"]]
            pool = pools[_kind(tpl)]
            k = max(4, len(own))
            sents = rng.sample(own, max(1, len(own) // 2)) + [pool[rng.randrange(len(pool))] for _ in range(k)]
            rng.shuffle(sents)
            row = {**tpl, "text": _mutate(" ".join(sents), rng)}
        row["id"] = f"<urn:finemed:scaling:{seed}:{i:07d}>"
        row["url"] = f"https://example.org/scaling/{seed}/{i}"
        out.append(row)
    return out


def corpus_input(out: Path, n: int, shards: int = 4, seed: int = 0) -> Path:
    """A dir of ``shards`` parquet files holding ``n`` synthetic docs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = synth_rows(n, seed)
    out.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        pq.write_table(pa.Table.from_pylist(rows[s::shards]), out / f"part-{s:05d}.parquet")
    return out


def text_file(path: Path, n_bytes: int, seed: int = 0, sentences_per_block: int = 5) -> Path:
    """A ``.txt`` of blank-line-separated blocks of German sentences, ~``n_bytes`` long."""
    _, pools = _pools()
    pool = pools["1"] + pools["0"]
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < n_bytes:
            block = _mutate(" ".join(pool[rng.randrange(len(pool))] for _ in range(sentences_per_block)), rng)
            f.write(block + "\n\n")
            written += len(block.encode()) + 2
    return path


def parallel_folder(out: Path, n: int, seed: int = 0) -> Path:
    """``eng_Latn.txt`` and ``deu_Latn.txt`` with ``n`` aligned lines each (English and German sentences)."""
    from finemed.core.texts import read_texts

    _, pools = _pools()
    de = pools["1"] + pools["0"]
    en = [s for t in read_texts("builtin:xquad.en") for s in _sentences(t)]
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, pool in (("eng_Latn", en), ("deu_Latn", de)):
        lines = [_mutate(pool[rng.randrange(len(pool))], rng).replace("\n", " ") for _ in range(n)]
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def answers_file(path: Path, prompts: int, seed: int = 0) -> Path:
    """Answers JSONL of two models to ``prompts`` prompts (``prompts`` pairs, 2 judge calls each)."""
    _, pools = _pools()
    pool = pools["1"]
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for p in range(prompts):
            prompt = f"Frage {p}: {pool[rng.randrange(len(pool))]}"
            for model in ("model-a", "model-b"):
                ans = " ".join(pool[rng.randrange(len(pool))] for _ in range(3))
                f.write(json.dumps({"model": model, "prompt_id": f"p{p}", "prompt": prompt, "answer": ans}) + "\n")
    return path


def tiny_model(out: Path, layers: int, hidden: int, seed: int = 0) -> Path:
    from finemed.models.tiny import save_tiny

    return save_tiny(out, seed=seed, num_layers=layers, hidden_size=hidden)


# ---------------------------------------------------------------------------------------------- stub server
def _h(text: str) -> float:
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class Stub:
    """A stdlib OpenAI-compatible endpoint on 127.0.0.1 that answers at once: ``Ja``/``Nein`` with first-token
    logprobs when asked (annotation), else a pairwise verdict ``[[A]]``/``[[B]]``; both seeded by the prompt."""

    def __enter__(self) -> "Stub":
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                self._send({"object": "list", "data": [{"id": "stub", "object": "model"}]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                text = json.dumps(body.get("messages", []))
                p = min(max(_h(text), 0.01), 0.99)
                choice = {"index": 0, "finish_reason": "stop"}
                if body.get("logprobs"):
                    word = "Ja" if p >= 0.5 else "Nein"
                    tops = [{"token": "Ja", "logprob": math.log(p)}, {"token": "Nein", "logprob": math.log(1 - p)}]
                    choice["logprobs"] = {"content": [{"token": word, "logprob": math.log(max(p, 1 - p)),
                                                       "top_logprobs": tops}]}
                else:
                    word = f"Kurz begründet. [[{'A' if p >= 0.5 else 'B'}]]"
                choice["message"] = {"role": "assistant", "content": word}
                self._send({"id": "x", "object": "chat.completion", "model": body.get("model"), "choices": [choice]})

            def _send(self, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
