"""annotate: verdicts by probability (local and logprobs), the text fallback, dev-set choice, agreement."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from finemed.core.config import FinemedError
from finemed.core.stages import run_stage
from finemed.core.verdicts import p_yes_from_top, verdict_token_ids
from finemed.corpus.annotate import AnnotateConfig, bootstrap_prf, build_prompt, parse_verdict, reservoir, run
from finemed.corpus.annotate_agreement import calibration, confusion
from finemed.corpus.readers import read_rows

sys.path.insert(0, str(Path(__file__).parents[1] / "evaluation"))
from eval_servers import FaultServer  # noqa: E402


def test_parse_and_bootstrap():
    assert [parse_verdict(t) for t in ("Ja.", "Nein", "yes, medical", "No", "vielleicht", None)] == [1, 0, 1, 0, None,
                                                                                                    None]
    r = bootstrap_prf(np.array([1, 1, 0, 0, 1, 0] * 5), np.array([1, 0, 0, 0, 1, 1] * 5))
    assert r["precision"]["value"] == round(2 / 3, 4)
    assert r["precision"]["ci95"][0] <= 2 / 3 <= r["precision"]["ci95"][1]


def test_reservoir_is_one_pass_seeded_and_uniform():
    rows = ({"id": i, "text": "" if i % 10 == 0 else f"t{i}"} for i in range(1000))  # a generator: one pass
    a = reservoir(rows, 50, seed=3)
    assert len(a) == 50 and len({r["id"] for r in a}) == 50 and all(r["id"] % 10 for r in a)
    assert [r["id"] for r in reservoir(({"id": i, "text": "x"} for i in range(1000)), 50, 3)] == \
        [r["id"] for r in reservoir(({"id": i, "text": "x"} for i in range(1000)), 50, 3)]
    hits = np.zeros(100)
    for seed in range(300):
        for r in reservoir(({"id": i, "text": "x"} for i in range(100)), 10, seed):
            hits[r["id"]] += 1
    assert hits.min() > 10 and hits.max() < 60  # expected 30 per item: no position bias
    assert len(reservoir(iter([{"id": 1, "text": "a"}]), 5)) == 1


def test_prompt_templates_and_shot_block():
    shots = [{"text": "Diagnose: Pneumonie", "gold": 1}, {"text": "Fußball am Sonntag", "gold": 0}]
    de = build_prompt("de", "Der Patient hustet.", shots, max_chars=100, shot_chars=10)
    assert "Beispiele" in de and "Antwort: Ja" in de and "Antwort: Nein" in de and "Diagnose: " in de
    assert "Pneumonie" not in de  # shot text cut at shot_chars
    assert de.rstrip().endswith('"Ja" oder "Nein".') and "Der Patient hustet." in de
    en = build_prompt("en", "x" * 50, [], max_chars=10, shot_chars=10)
    assert "Examples" not in en and "x" * 10 in en and "x" * 11 not in en and '"Yes" or "No"' in en
    assert build_prompt("Medizin? {text}", "abc", [], 100, 10) == "Medizin? abc"


def test_verdict_tokens_and_p_yes_from_top(tiny_model_dir):
    from finemed.models.loading import load_tokenizer

    yes, no = verdict_token_ids(load_tokenizer(tiny_model_dir))
    assert yes and no and not set(yes) & set(no)
    top = [("Ja", math.log(0.6)), (" Nein", math.log(0.2)), ("Hmm", math.log(0.1)), ("Ġyes", math.log(0.05))]
    p, mass = p_yes_from_top(top)
    assert p == pytest.approx(0.65 / 0.85) and mass == pytest.approx(0.85)
    assert p_yes_from_top([("Hmm", 0.0)]) == (0.5, 0.0)
    assert p_yes_from_top([("Ne", math.log(0.5))])[0] == 0.0  # a prefix of "nein" only


def test_agreement_confusion_and_calibration():
    rows = [{"id": str(i), "text": f"doc {i}", "gold": g, "label": lab, "p_yes": p}
            for i, (g, lab, p) in enumerate([(1, 1, .9), (1, 0, .2), (0, 1, .8), (0, 0, .1), (0, 1, .55)])]
    c = confusion(rows, per_type=1)
    assert (c["tp"], c["fn"], c["fp"], c["tn"]) == (1, 1, 2, 1)
    assert [e["id"] for e in c["examples"]["fp"]] == ["2"]  # the most confident false positive first
    cal = calibration(np.array([1, 1, 0, 0]), np.array([0.95, 0.85, 0.15, 0.05]), bins=10)
    assert cal["roc_auc"] == 1.0 and cal["ece"] == pytest.approx(0.1) and sum(b["n"] for b in cal["bins"]) == 4


def test_local_model_labels_every_doc_by_probability(small_dev, tiny_model_dir, tmp_path):
    cfg = AnnotateConfig(input=str(small_dev), llm=f"local:{tiny_model_dir}", sample=10, dev_size=8, k_shot=2,
                         label_field="medical", cache=str(tmp_path / "cache.sqlite"), n_boot=50)
    out = run_stage("corpus.annotate", cfg, tmp_path / "a").result
    assert out["sampled"] == 10 and out["labelled"] == 10 and out["share_labelled"] == 1.0
    assert out["methods"] == {"probs": 10} and out["unparseable"] == 0 and out["k_shot"] == 2
    assert out["template"] in ("de", "en") and set(out["dev"]["templates"]) == {"de", "en"}
    assert out["threshold_from"] == "dev" and 0 <= out["threshold"] <= 1
    assert out["agreement"]["n"] == sum(1 for r in read_rows(tmp_path / "a" / "labels.jsonl") if "gold" in r)
    assert (tmp_path / "a" / "calibration.png").stat().st_size > 1000
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["labelled"] == 10
    rows = list(read_rows(tmp_path / "a" / "labels.jsonl"))
    assert all({"id", "text", "label", "p_yes", "method"} <= set(r) and 0 <= r["p_yes"] <= 1 for r in rows)
    assert all(r["label"] == int(r["p_yes"] >= out["threshold"]) for r in rows)
    # a rerun (another run dir, same verdict cache) makes no forward pass
    again = run(cfg, tmp_path / "b")
    assert again.llm_stats["calls"] == 0 and again.llm_stats["cache_hits"] == 10 + 2 * 6
    assert [r["p_yes"] for r in read_rows(tmp_path / "b" / "labels.jsonl")] == [r["p_yes"] for r in rows]


def _logprob_body(msgs: list[dict]) -> bytes:
    """An OpenAI reply with top logprobs: 'Ja' likely when the doc mentions a patient."""
    p = 0.8 if "Patient" in msgs[-1]["content"].split("Text:")[-1] else 0.3
    tops = [{"token": "Ja", "logprob": math.log(p * 0.9)}, {"token": "Nein", "logprob": math.log((1 - p) * 0.9)},
            {"token": "Die", "logprob": math.log(0.1)}]
    choice = {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Ja"},
              "logprobs": {"content": [{"token": "Ja", "logprob": tops[0]["logprob"], "top_logprobs": tops}]}}
    return json.dumps({"choices": [choice]}).encode()


@pytest.fixture()
def server():
    s = FaultServer()
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_endpoint_logprobs_and_text_fallback(small_dev, server, tmp_path):
    server.plan = lambda msgs, n: ("garbage", _logprob_body(msgs))
    cfg = AnnotateConfig(input=str(small_dev), llm=f"{server.base}#m", sample=8, dev_size=0, label_field="medical",
                         threshold=0.5, n_boot=20)
    out = run(cfg, tmp_path / "lp")
    assert out.methods == {"logprobs": 8} and out.labelled == 8 and out.threshold_from == "config"
    rows = list(read_rows(tmp_path / "lp" / "labels.jsonl"))
    assert {round(r["p_yes"], 4) for r in rows} <= {0.8, 0.3}
    assert all(r["label"] == int(r["p_yes"] >= 0.5) for r in rows)
    # an endpoint without logprobs: text answers, parsed; the unparseable ones are counted
    server.plan = lambda msgs, n: ("ok", "Ja" if "Patient" in msgs[-1]["content"] else "Hmm, schwer zu sagen")
    out = run(cfg.model_copy(update={"cache": str(tmp_path / "t.sqlite")}), tmp_path / "txt")
    assert out.methods == {"text": 8} and out.labelled + out.unparseable == 8 and out.llm_errors == 0


def test_dead_endpoint_fails_in_seconds(small_dev, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = AnnotateConfig(input=str(small_dev), llm=f"http://127.0.0.1:{port}/v1#m", sample=4, dev_size=0)
    t0 = time.perf_counter()
    with pytest.raises(FinemedError, match=f"127.0.0.1:{port}"):
        run(cfg, tmp_path / "dead")
    assert time.perf_counter() - t0 < 10


@pytest.mark.slow
@pytest.mark.smoke
def test_smollm2_labels_every_doc(smollm2_dir, tmp_path):
    cfg = AnnotateConfig(llm=f"local:{smollm2_dir}", sample=8, dev_size=8, template="de", label_field="medical",
                         n_boot=100)
    out = run(cfg, tmp_path / "s")
    assert out.share_labelled == 1.0 and out.methods == {"probs": 8} and out.unparseable == 0
    assert out.agreement is not None and out.calibration is not None


def test_annotate_reads_only_its_columns_and_a_bounded_share_of_rows(tmp_path, tiny_model_dir, monkeypatch):
    """Issue 22 item 13: the sample comes from a few row groups, with id/text/source/label only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in"
    src.mkdir()
    for f in range(4):  # 4 files x 20 row groups x 25 rows = 2,000 rows, with a column annotate never needs
        ids = [f"{f}-{i}" for i in range(500)]
        pq.write_table(pa.table({"id": ids, "text": [f"Bericht {i} über Fieber." for i in ids],
                                 "medical": [i % 2 for i in range(500)], "source": ["web"] * 500,
                                 "payload": ["x" * 100] * 500}), src / f"{f}.parquet", row_group_size=25)
    seen = []
    real_group, real_batches = pq.ParquetFile.read_row_group, pq.ParquetFile.iter_batches

    def group(self, i, columns=None, **kw):
        table = real_group(self, i, columns=columns, **kw)
        seen.append((tuple(columns) if columns else None, table.num_rows))
        return table

    def batches(self, *a, columns=None, **kw):
        for b in real_batches(self, *a, columns=columns, **kw):
            seen.append((tuple(columns) if columns else None, b.num_rows))
            yield b

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", group)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", batches)
    cfg = AnnotateConfig(input=str(src), llm=f"local:{tiny_model_dir}", sample=10, dev_size=6, template="de",
                         label_field="medical", cache=str(tmp_path / "c.sqlite"), n_boot=10)
    out = run(cfg, tmp_path / "a")
    assert out.sampled == 10 and out.input_rows_read == sum(n for _, n in seen) == 75  # 3 groups for 16 x 4 rows
    assert {cols for cols, _ in seen} == {("id", "text", "source", "medical")}
