"""Why QA answers are empty: the greedy first token after the prompt, counted by kind (newline, EOS, ...)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from finemed.core.qa_empty import explain_empty, explain_empty_served, first_token_kind
from finemed.core.runtime import resolve

VOCAB = {0: "</s>", 1: "\n", 2: "  ", 3: " Berlin", 4: " \n\n", 5: "Ber\nlin"}


class Tok:
    eos_token_id = 0

    def decode(self, ids):
        return VOCAB[ids[0]]

    def __call__(self, text, add_special_tokens=True, return_tensors=None):
        assert not add_special_tokens  # like lm-eval's HFLM for these models: no BOS
        return {"input_ids": torch.tensor([[7, 8, 9]])}


class Model:
    """Emits the next token of ``script`` as the greedy choice, one per forward pass; records the prompts."""

    def __init__(self, script):
        self.script, self.calls = list(script), 0

    def parameters(self):
        yield torch.zeros(1)

    def __call__(self, input_ids):
        self.calls += 1
        logits = torch.zeros(1, input_ids.shape[1], len(VOCAB))
        logits[0, -1, self.script.pop(0)] = 1.0
        return SimpleNamespace(logits=logits)


def test_first_token_kinds():
    tok = Tok()
    assert [first_token_kind(i, tok) for i in range(6)] == ["eos", "newline", "whitespace", "other", "newline",
                                                           "other"]


def test_explain_empty_counts_only_empty_answers():
    samples = [
        {"doc_id": 0, "doc": {"id": "a", "prompt": "P"}, "arguments": [("Context: x\n\nAnswer:", {})],
         "filtered_resps": [""]},
        {"doc_id": 1, "doc": {"id": "b", "prompt": "P"}, "filtered_resps": ["  "]},
        {"doc_id": 2, "doc": {"id": "c", "prompt": "P"}, "filtered_resps": ["Berlin"]},  # answered: no forward
        {"doc_id": 3, "doc": {"id": "d", "prompt": "P"}, "filtered_resps": []},
    ]
    model = Model([1, 0, 4])
    counts, why = explain_empty(samples, model, Tok(), resolve("cpu", "float32"))
    assert model.calls == 3 and counts == {"newline": 2, "eos": 1}
    assert why == {"a": "newline", "b": "eos", "d": "newline"}
    assert explain_empty(samples[2:3], Model([]), Tok(), resolve("cpu", "float32")) == ({}, {})


def test_explain_empty_served_asks_the_server_for_one_greedy_token():
    """The vLLM backend's path: a real HTTP server on 127.0.0.1 answers /v1/completions like vLLM (one token, no stop
    string); an empty text with finish_reason "stop" is EOS."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    replies = {"Context: x\n\nAnswer:": ("\n", "length"), "P2": ("", "stop"), "P3": (" Berlin", "length")}
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            text, reason = replies[body["prompt"]]
            data = json.dumps({"choices": [{"text": text, "finish_reason": reason}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/completions"
        samples = [
            {"doc_id": 0, "doc": {"id": "a", "prompt": "P"}, "arguments": [("Context: x\n\nAnswer:", {})],
             "filtered_resps": [""]},
            {"doc_id": 1, "doc": {"id": "b", "prompt": "P2"}, "filtered_resps": [""]},
            {"doc_id": 2, "doc": {"id": "c", "prompt": "P3"}, "filtered_resps": [" "]},
            {"doc_id": 3, "doc": {"id": "d", "prompt": "P4"}, "filtered_resps": ["Berlin"]},  # answered: not asked
        ]
        counts, why = explain_empty_served(samples, url, "m")
    finally:
        server.shutdown()
    assert counts == {"newline": 1, "eos": 1, "other": 1} and why == {"a": "newline", "b": "eos", "c": "other"}
    assert len(seen) == 3 and all(b["max_tokens"] == 1 and b["temperature"] == 0.0 and "stop" not in b for b in seen)


def test_the_first_tokens_lm_eval_generated_are_recorded_and_spare_the_forward_pass(tiny_model_dir):
    """make_lm's HFLM keeps the first token of every generation, keyed by the prompt's last token ids; on a real
    (tiny) model, batched and left-padded, it equals a plain forward pass on each prompt, and explain_empty reads it
    instead of running one."""
    from lm_eval.api.instance import Instance

    from finemed.core.lmeval import make_lm, prompt_key
    from finemed.core.qa_empty import first_tokens
    from finemed.models.loading import load_causal_lm

    model, tok = load_causal_lm(str(tiny_model_dir), device="cpu", dtype=torch.float32)
    lm = make_lm(model, tok, batch_size=2)  # (HFLM ties the head to the embeddings again: untie after it)
    torch.manual_seed(0)  # an untied random head: the tied tiny model's greedy token repeats the prompt's last one
    model.lm_head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
    prompts = ["Context: Berlin ist die Hauptstadt.\n\nQuestion: Was ist die Hauptstadt?\n\nAnswer:",
               "Context: x y z\n\nQuestion: q?\n\nAnswer:",
               "Context: " + "ein viel laengerer Text " * 12 + "\n\nQuestion: Wer?\n\nAnswer:"]
    gen = {"until": ["\n"], "max_gen_toks": 3, "do_sample": False}
    lm.generate_until([Instance(request_type="generate_until", doc={}, arguments=(p, gen), idx=0) for p in prompts])
    recorded = [lm.first_tokens[prompt_key(tok(p, add_special_tokens=False)["input_ids"])] for p in prompts]
    assert recorded == [t for t, _ in first_tokens(model, tok, prompts)]
    assert recorded != [tok(p, add_special_tokens=False)["input_ids"][-1] for p in prompts]  # not the prompt's end

    samples = [{"doc_id": i, "doc": {"id": str(i), "prompt": p}, "filtered_resps": [""]} for i, p in enumerate(prompts)]
    never = Model([])  # a forward pass would pop from an empty script and fail
    counts, why = explain_empty(samples, never, tok, resolve("cpu", "float32"), lm.first_tokens)
    assert never.calls == 0 and sum(counts.values()) == 3
    assert why == {str(i): first_token_kind(t, tok) for i, t in enumerate(recorded)}
