"""LLMClient against a real local HTTP server: cache, retries with backoff, limits, key handling."""

import time

import pytest

from finemed.core.config import FinemedError
from finemed.core.llm import LLMClient, parse_spec

MSG = [[{"role": "user", "content": f"Frage {i}"}] for i in range(6)]


def client(server, tmp_path, **kw):
    kw.setdefault("backoff_s", 0.01)
    return LLMClient(f"{server.base}#judge", cache_path=tmp_path / "c.sqlite", **kw)


def test_spec_parsing_errors():
    assert parse_spec("http://127.0.0.1:1/v1#m") == ("http", "http://127.0.0.1:1/v1", "m")
    assert parse_spec("local:smollm2")[0] == "local"
    for bad in ("http://127.0.0.1:1/v1", "gpt-4", "local:"):
        with pytest.raises(FinemedError):
            parse_spec(bad)


def test_cache_makes_second_run_call_free(fault_server, tmp_path):
    fault_server.plan = lambda msgs, n: ("ok", "Antwort: " + msgs[-1]["content"])
    c = client(fault_server, tmp_path)
    r1 = c.chat(MSG)
    assert [r.text for r in r1] == [f"Antwort: Frage {i}" for i in range(6)]
    assert c.stats["calls"] == 6 and fault_server.requests == 6
    c.close()
    c2 = client(fault_server, tmp_path)
    r2 = c2.chat(MSG)
    assert [r.text for r in r2] == [r.text for r in r1] and all(r.cached for r in r2)
    assert c2.stats == {"calls": 0, "cache_hits": 6, "retries": 0, "errors": 0}
    assert fault_server.requests == 6
    # the cache tag and the generation params are part of the key
    c2.chat(MSG[:1], cache_tag="other")
    assert fault_server.requests == 7


def test_retries_on_500_429_and_garbage_then_succeeds(fault_server, tmp_path):
    seq = {0: ("status", 500), 1: ("status", 429), 2: ("garbage", b"<html>oops"), 3: ("garbage", b'{"choices": []}')}
    fault_server.plan = lambda msgs, n: seq.get(n, ("ok", "fine"))
    c = client(fault_server, tmp_path, max_retries=4)
    r = c.chat(MSG[:3])
    assert [x.text for x in r] == ["fine"] * 3 and all(x.attempts == 5 for x in r)
    assert c.stats == {"calls": 15, "cache_hits": 0, "retries": 12, "errors": 0}
    assert fault_server.requests == 15


def test_gives_up_and_counts_error_without_caching(fault_server, tmp_path):
    fault_server.plan = lambda msgs, n: ("status", 503)
    c = client(fault_server, tmp_path, max_retries=2)
    r = c.chat(MSG[:2])
    assert all(x.text is None and "503" in x.error for x in r)
    assert c.stats["errors"] == 2 and c.stats["calls"] == 6
    fault_server.plan = lambda msgs, n: ("ok", "back")
    assert [x.text for x in c.chat(MSG[:2])] == ["back", "back"]  # failures were not cached


def test_client_errors_are_not_retried(fault_server, tmp_path):
    fault_server.plan = lambda msgs, n: ("status", 400)
    c = client(fault_server, tmp_path)
    r = c.chat(MSG[:1])
    assert r[0].text is None and "400" in r[0].error and fault_server.requests == 1


def test_hang_times_out_and_is_retried(fault_server, tmp_path):
    fault_server.plan = lambda msgs, n: ("hang", 5.0) if n == 0 else ("ok", "late but fine")
    c = client(fault_server, tmp_path, timeout_s=1.0)
    t0 = time.perf_counter()
    r = c.chat(MSG[:2])
    assert [x.text for x in r] == ["late but fine"] * 2
    assert c.stats["retries"] == 2 and time.perf_counter() - t0 < 5.0


def test_concurrency_is_bounded(fault_server, tmp_path):
    fault_server.delay_s = 0.2
    c = client(fault_server, tmp_path, concurrency=3)
    c.chat([[{"role": "user", "content": str(i)}] for i in range(12)])
    assert fault_server.peak == 3


def test_api_key_sent_but_never_stored(fault_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FINEMED_LLM_API_KEY", "sk-secret-123")
    c = client(fault_server, tmp_path)
    c.chat(MSG[:1])
    c.close()
    assert fault_server.auth_headers == ["Bearer sk-secret-123"]
    assert b"sk-secret-123" not in (tmp_path / "c.sqlite").read_bytes()
    assert "sk-secret-123" not in repr(c.__dict__)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_dead_endpoint_fails_fast_with_one_line_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    for preflight in (True, False):  # the preflight, then the circuit breaker on its own
        c = LLMClient(f"{url}#judge", cache_path=tmp_path / "c.sqlite", timeout_s=5, backoff_s=0.01,
                      preflight=preflight)
        t0 = time.perf_counter()
        with pytest.raises(FinemedError) as err:
            c.chat(MSG)
        assert time.perf_counter() - t0 < 5.0
        assert url in str(err.value) and "\n" not in str(err.value)
        assert c.stats["calls"] <= (0 if preflight else 3 + c.concurrency)  # stopped, not retried to the end
        c.close()


def test_replies_before_the_breaker_trips_stay_cached(fault_server, tmp_path):
    def plan(msgs, n):
        if fault_server.requests == 3:
            fault_server.stop()  # the server dies after answering this third request
        return ("ok", "Antwort: " + msgs[-1]["content"])

    fault_server.plan = plan
    c = client(fault_server, tmp_path, concurrency=1, preflight=False)
    with pytest.raises(FinemedError, match="unreachable"):
        c.chat(MSG)
    c.close()
    c2 = client(fault_server, tmp_path, concurrency=1)
    assert [r.text for r in c2.chat(MSG[:3])] == [f"Antwort: Frage {i}" for i in range(3)]
    assert c2.stats["cache_hits"] == 3 and c2.stats["calls"] == 0  # no network needed for cached replies


def test_logprobs_are_requested_and_absent_ones_are_none(fault_server, tmp_path):
    c = client(fault_server, tmp_path)
    r = c.chat(MSG[:1], max_tokens=1, logprobs=20)
    assert r[0].text is not None and r[0].top_logprobs is None  # this server returns no logprobs


def test_local_backend_answers_through_the_shared_generate_loop(tiny_model_dir, tmp_path):
    from finemed.models.generate import generate

    c = LLMClient(f"local:{tiny_model_dir}", cache_path=tmp_path / "l.sqlite", max_tokens=4, batch_size=2,
                  device="cpu", dtype="float32")
    replies = c.chat(MSG[:3])
    model, tok, rt = c.local_model()
    assert rt.device == "cpu" and rt.compute == "float32"
    want = generate(model, tok, MSG[:3], max_new_tokens=4, batch_size=2, runtime=rt)
    assert [r.text for r in replies] == [g.text for g in want]
    assert [r.finish_reason for r in replies] == [g.finish_reason for g in want]
    assert c.stats["calls"] == 3 and [r.cached for r in c.chat(MSG[:3])] == [True] * 3
    c.close()
