"""Bad input across every command: exit 2 with one ``error:`` line (no traceback) or a counted skip, and never a
result that looks complete.

Each case runs the real CLI (``python -m finemed.cli``) in a subprocess. The selected cases run concurrently (a
few at a time) in one session fixture, so the battery costs about as long as its slowest few cases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "FINEMED_PROGRESS": "0", "COLUMNS": "200"}
PARALLEL = 4
CASE_TIMEOUT_S = 240
# files a finished stage leaves; none may exist after a failure (datatrove's per-task logs/*/stats.json aside)
FINISHED = ("metrics.json", "stats.json", "summary.json", "report.html", "README.md", "answers.jsonl", "bpb.json",
            "qa_results.json", "failures.json", "tokenizer_metrics.json", "funnel.png", "*.safetensors")
MED = "Der Patient wurde mit akuter Dyspnoe und Fieber stationär aufgenommen; das CRP sank unter Antibiotika."


@dataclass(frozen=True)
class Case:
    """``args`` after ``finemed``; ``{M}`` tiny model, ``{in}`` inputs dir, ``{out}`` output dir, ``{port}`` a port
    nothing listens on. ``files`` are written under ``{in}``; ``prepare(in_dir, model)`` makes the rest.
    ``match``: a regex the error line must contain. ``skips``: a counted-skip case (exit 0): the reasons and counts
    ``{out}/stats.json`` must report. ``max_s``: the case must end within this many seconds. ``heavy``: it imports
    torch, mergekit or lm-eval (or runs datatrove), so it is started first. ``max_chars``: the error line must be
    shorter (paths relative to the case dir, as a user types them)."""

    args: list[str]
    match: str = ""
    files: dict[str, str | bytes] = field(default_factory=dict)
    prepare: Callable[[Path, Path], None] | None = None
    skips: dict[str, int] | None = None
    max_s: float | None = None
    heavy: bool = False
    max_chars: int | None = None


# ----------------------------------------------------------------------------------------------- inputs
def corrupt_parquets(d: Path, _m: Path) -> None:
    (d / "corpus").mkdir()
    (d / "corpus" / "a.parquet").write_bytes(b"PAR1 this is not parquet")
    (d / "corpus" / "b.parquet").write_bytes(b"PAR1 nor is this")


def parquet_without_text(d: Path, _m: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (d / "corpus").mkdir()
    pq.write_table(pa.Table.from_pylist([{"id": "1", "body": MED}, {"id": "2", "body": MED}]),
                   d / "corpus" / "a.parquet")


def model_copy(d: Path, model: Path, name: str = "variant") -> Path:
    return Path(shutil.copytree(model, d / name))


def truncated_weights(d: Path, model: Path) -> None:
    f = model_copy(d, model) / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def pickle_only(d: Path, model: Path) -> None:
    v = model_copy(d, model)
    (v / "model.safetensors").unlink()
    (v / "pytorch_model.bin").write_bytes(b"not read: refused before unpickling")


def wider_model(d: Path, model: Path) -> None:
    cfg = model_copy(d, model) / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_size": 64', '"hidden_size": 128'))


def swapped_tokenizer(d: Path, model: Path) -> None:
    tj = model_copy(d, model) / "tokenizer.json"
    data = json.loads(tj.read_text())
    vocab = data["model"]["vocab"]
    a, b = [k for k, i in vocab.items() if i in (100, 101)]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    tj.write_text(json.dumps(data))


def corrupt_config(d: Path, model: Path) -> None:
    (model_copy(d, model) / "config.json").write_text('{"model_type": "llama", ')


def corrupt_tokenizer(d: Path, model: Path) -> None:
    (model_copy(d, model) / "tokenizer.json").write_text('{"version": "1.0", "model": {')


MODEL_VARIANTS = (truncated_weights, pickle_only, wider_model, swapped_tokenizer, corrupt_config, corrupt_tokenizer)


def run_dir_without_merge(d: Path, _m: Path) -> None:
    (d / "run" / "bpb").mkdir(parents=True)


BINARY = bytes(range(128, 256)) * 8
GOOD_ROW = json.dumps({"id": "ok", "text": MED})
SHORT_MERGE = "base: {M}\ncpt: {cpt}\nmethod: {method}\nt: {t}\n"


def merge_yaml(cpt: str = "{M}", method: str = "slerp", t: str = "0.5", base: str = "{M}") -> dict[str, str]:
    return {"merge.yaml": SHORT_MERGE.format(M=base, cpt=cpt, method=method, t=t)}


UNUSED = "{in}/unused-model"  # for cases that must fail before a model is read: they start without the tiny model
CORPUS = ["corpus", "build", "--out", "{out}", "--set", "pipeline.steps=[length]", "--set", "tokenizer=null"]
BPB = ["eval", "bpb", "--model", "{M}", "--out", "{out}"]
BPB_CFG = ["eval", "bpb", "--model", UNUSED, "--out", "{out}"]
CPT = ["train", "cpt", "--model", UNUSED, "--out", "{out}", "--set", "seq_len=64", "--set", "general_eval={}",
       "--set", "max_steps=1"]
TOK_EVAL = ["tokenizer", "eval", "--out", "{out}"]
RECIPE_BPB = ("name: r\nstages:\n  - name: a\n    kind: eval.bpb\n"
              "    config: {{model: '{model}', sets: {{x: '{data}'}}}}\n")

# a port held open for the whole session: `finemed serve --port` on it must refuse in one line
HELD = socket.socket()
HELD.bind(("127.0.0.1", 0))
HELD.listen()
NOSUCH_MODEL = {"m/config.json": json.dumps({"architectures": ["NoSuchForCausalLM"], "model_type": "nosuch"})}

CASES: dict[str, Case] = {
    # config plumbing, shared by every stage command
    "config-unknown-key": Case([*BPB_CFG, "--set", "bogus=1"], r"unknown key 'bogus'"),
    "config-bad-yaml": Case(["eval", "bpb", "-c", "{in}/bad.yaml", "--out", "{out}"], r"bad\.yaml.*invalid YAML",
                            files={"bad.yaml": "model: [1,\n"}),
    "config-missing-file": Case([*TOK_EVAL, "-c", "{in}/nope.yaml"], r"nope\.yaml: config file not found"),
    "config-not-a-mapping": Case(["eval", "bpb", "-c", "{in}/list.yaml", "--out", "{out}"], r"expected a mapping",
                                 files={"list.yaml": "- a\n- b\n"}),
    "config-wrong-type": Case([*BPB_CFG, "--set", "batch_size=abc"], r"batch_size.*valid integer"),
    "set-without-equals": Case([*CORPUS, "--set", "noequals"], r"override 'noequals': expected KEY=VALUE"),
    # numeric options are validated before anything runs
    "corpus-workers-zero": Case([*CORPUS, "--input", "{in}/a.jsonl", "--workers", "0"],
                                r"executor\.workers.*greater than or equal to 1", files={"a.jsonl": GOOD_ROW}),
    "bpb-max-docs-zero": Case([*BPB_CFG, "--max-docs", "0"], r"max_docs.*greater than or equal to 1"),
    "bpb-batch-size-negative": Case([*BPB_CFG, "--set", "batch_size=-1"], r"batch_size"),
    "mcq-limit-zero": Case(["eval", "mcq", "--model", UNUSED, "--limit", "0", "--out", "{out}"], r"'limit'"),
    "pairwise-timeout-zero": Case(["eval", "pairwise", "--answers", "{in}/a.jsonl", "--judge", "scores:x",
                                   "--set", "timeout_s=0", "--out", "{out}"], r"timeout_s.*greater than 0",
                                  files={"a.jsonl": ""}),
    "tokenizer-vocab-size-zero": Case(["tokenizer", "train", "--source", "deu_Latn=builtin:fortunes_de",
                                       "--vocab-size", "0", "--out", "{out}"], r"vocab"),
    "cpt-lr-zero": Case([*CPT, "--set", "lr=0"], r"'lr'.*greater than 0"),
    "cpt-num-processes-zero": Case(["train", "cpt", "--model", UNUSED, "--emit-accelerate-config",
                                    "{out}/fsdp.yaml", "--num-processes", "0"], r"processes"),
    "distill-top-k-zero": Case(["train", "distill", "cache-logits", "--teacher", UNUSED, "--k", "0",
                                "--out", "{out}"], r"top_k"),
    "distill-beta-above-one": Case(["train", "distill", "--teacher", UNUSED, "--set", "beta=2", "--out", "{out}"],
                                   r"beta.*less than or equal to 1"),
    # corpus: a build that reads zero documents is an error naming the input and the skip counts
    "corpus-every-file-corrupt": Case([*CORPUS, "--input", "{in}/corpus", "--set", "executor.tasks=1"],
                                      r"read zero documents from \S+corpus \(skipped: corrupt_parquet=2\)",
                                      prepare=corrupt_parquets, heavy=True),
    "corpus-parquet-without-text": Case([*CORPUS, "--input", "{in}/corpus"],
                                        r"no 'text' column.*columns found: id, body", prepare=parquet_without_text),
    "corpus-jsonl-all-binary": Case([*CORPUS, "--input", "{in}/corpus"],
                                    r"read zero documents from \S+corpus \(skipped: invalid_utf8=\d+\)",
                                    files={"corpus/a.jsonl": BINARY + b"\n" + BINARY + b"\n"}, heavy=True),
    "corpus-jsonl-without-text": Case([*CORPUS, "--input", "{in}/corpus"],
                                      r"missing_text=2.*columns found: id, body",
                                      files={"corpus/a.jsonl": '{"id": "1", "body": "x"}\n{"id": "2", "body": "y"}\n'},
                                      heavy=True),
    "corpus-classifier-without-json": Case(
        ["corpus", "build", "--out", "{out}", "--input", "{in}/a.jsonl", "--classifier", "{in}/clf"],
        r"clf: no classifier\.json", files={"a.jsonl": GOOD_ROW, "clf/model.bin": b""}),
    "corpus-missing-input": Case([*CORPUS, "--input", "{in}/nothing"], r"nothing does not exist"),
    "corpus-csv-input": Case([*CORPUS, "--input", "{in}/csv"], r"no \.parquet or \.jsonl",
                             files={"csv/a.csv": "text\nhallo\n"}),
    "corpus-unknown-step": Case([*CORPUS, "--input", "{in}/a.jsonl", "--set", "pipeline.steps=[nosuch]"],
                                r"unknown corpus step 'nosuch'", files={"a.jsonl": GOOD_ROW}),
    "corpus-finalize-not-a-build": Case(["corpus", "finalize", "{in}"], r"no build\.json"),
    "corpus-some-bad-lines-are-counted": Case(
        [*CORPUS, "--input", "{in}/a.jsonl"], skips={"invalid_utf8": 1, "invalid_json": 1, "missing_text": 1},
        files={"a.jsonl": b"\n".join([GOOD_ROW.encode(), BINARY, b"not json", b'{"id": "x", "body": "y"}']) + b"\n"},
        heavy=True),
    # model files: every file the CLI reads is checked
    "bpb-truncated-safetensors": Case(["eval", "bpb", "--model", "{in}/variant", "--data", "{in}/t.txt",
                                       "--out", "{out}"], r"model\.safetensors: unreadable safetensors",
                                      files={"t.txt": MED}, prepare=truncated_weights),
    "merge-truncated-safetensors": Case(["merge", "{in}/merge.yaml", "--out", "{out}"], r"unreadable safetensors",
                                        files=merge_yaml(cpt="{in}/variant"), prepare=truncated_weights, heavy=True),
    "bpb-pickle-only": Case(["eval", "bpb", "--model", "{in}/variant", "--data", "{in}/t.txt", "--out", "{out}"],
                            r"pickle.*--allow-pickle", files={"t.txt": MED}, prepare=pickle_only),
    "bpb-corrupt-config-json": Case(["eval", "bpb", "--model", "{in}/variant", "--data", "{in}/t.txt",
                                     "--out", "{out}"], r"variant/config\.json: not valid JSON",
                                    files={"t.txt": MED}, prepare=corrupt_config),
    "student-corrupt-tokenizer-json": Case(["models", "student", "{in}/variant", "--out", "{out}/s"],
                                           r"variant/tokenizer\.json: not valid JSON", prepare=corrupt_tokenizer),
    "tokenizer-corrupt-file": Case([*TOK_EVAL, "--tokenizer", "{in}/tok", "--langs", "deu_Latn"],
                                   r"tok/tokenizer\.json: not a valid HF tokenizer\.json",
                                   files={"tok/tokenizer.json": '{"version": '}),
    "bpb-missing-model": Case(["eval", "bpb", "--model", "{in}/nomodel", "--out", "{out}"],
                              r"not a registered name"),
    "bpb-model-dir-without-config": Case(["eval", "bpb", "--model", "{in}/m", "--out", "{out}"], r"no config\.json",
                                         files={"m/model.safetensors": b""}),
    # text sets (finemed.core.texts)
    "bpb-unknown-builtin": Case([*BPB, "--data", "builtin:nosuch"], r"builtin:nosuch: unknown bundled text set"),
    "bpb-missing-text-file": Case([*BPB, "--data", "{in}/missing.txt"], r"missing\.txt': no such file"),
    "bpb-jsonl-without-text": Case([*BPB, "--data", "{in}/a.jsonl"], r"no 'text' field \(found: id, body\)",
                                   files={"a.jsonl": '{"id": "1", "body": "x"}\n'}),
    "bpb-binary-jsonl": Case([*BPB, "--data", "{in}/a.jsonl"], r"a\.jsonl: not UTF-8", files={"a.jsonl": BINARY}),
    "bpb-corrupt-parquet": Case([*BPB, "--data", "{in}/a.parquet"], r"unreadable parquet",
                                files={"a.parquet": b"PAR1 nope"}),
    "tokenizer-empty-text-set": Case(["tokenizer", "train", "--source", "deu_Latn={in}/empty.txt",
                                      "--vocab-size", "500", "--out", "{out}"], r"empty corpus.*got no text",
                                     files={"empty.txt": "\n\n"}),
    # eval
    "qa-unknown-task": Case(["eval", "qa", "--model", UNUSED, "--tasks", "nosuch_task", "--limit", "2",
                             "--out", "{out}"], r"nosuch_task unknown", heavy=True),
    "generate-prompts-without-prompt": Case(["eval", "generate", "--model", UNUSED, "--prompts", "{in}/p.jsonl",
                                             "--out", "{out}"], r"no 'prompt' field \(found: question\)",
                                            files={"p.jsonl": '{"question": "Was ist Fieber?"}\n'}),
    "generate-prompts-not-objects": Case(["eval", "generate", "--model", UNUSED, "--prompts", "{in}/p.jsonl",
                                          "--out", "{out}"], r"a JSON list, not an object",
                                         files={"p.jsonl": "[1, 2]\n"}),
    "pairwise-dead-endpoint": Case(["eval", "pairwise", "--answers", "{in}/a.jsonl", "--judge",
                                    "http://127.0.0.1:{port}/v1#judge", "--set", "timeout_s=5", "--out", "{out}"],
                                   r"127\.0\.0\.1:\d+/v1 unreachable", max_s=30, files={"a.jsonl": "\n".join(
                                       json.dumps({"model": m, "prompt_id": p, "prompt": f"Frage {p}?",
                                                   "answer": f"Antwort {m} {p}."})
                                       for p in ("p1", "p2") for m in ("A", "B")) + "\n"}),
    "pairwise-answers-missing-field": Case(["eval", "pairwise", "--answers", "{in}/a.jsonl", "--judge", "scores:x",
                                            "--out", "{out}"], r"missing field\(s\) answer \(found: model, prompt_id",
                                           files={"a.jsonl": '{"model": "A", "prompt_id": "p1"}\n'}),
    "failures-binary-answers": Case(["eval", "failures", "--answers", "{in}/a.jsonl", "--out", "{out}"],
                                    r"a\.jsonl:1: not UTF-8", files={"a.jsonl": BINARY}),
    # merge
    "merge-unknown-method": Case(["merge", "{in}/merge.yaml", "--out", "{out}"], r"merge method 'nosuch'",
                                 files=merge_yaml(UNUSED, method="nosuch", base=UNUSED), heavy=True),
    "merge-t-above-one": Case(["merge", "{in}/merge.yaml", "--out", "{out}"], r"t=1\.5 is outside \[0, 1\]",
                              files=merge_yaml(UNUSED, t="1.5", base=UNUSED)),
    "merge-t-negative": Case(["merge", "{in}/merge.yaml", "--out", "{out}", "--set", "t=-0.1"],
                             r"t=-0\.1 is outside \[0, 1\]", files=merge_yaml(UNUSED, base=UNUSED)),
    "merge-architecture-mismatch": Case(["merge", "{in}/merge.yaml", "--out", "{out}"],
                                        r"hidden_size differs.*128.*64|hidden_size differs.*64.*128",
                                        files=merge_yaml(cpt="{in}/variant"), prepare=wider_model, heavy=True),
    "merge-missing-config": Case(["merge", "{in}/nope.yaml", "--out", "{out}"], r"config file not found"),
    # tokenizer
    "tokenizer-unknown-name": Case([*TOK_EVAL, "--tokenizer", "nosuch_tok", "--langs", "deu_Latn"],
                                   r"tokenizer 'nosuch_tok'.*not a known name"),
    "tokenizer-bad-langs": Case([*TOK_EVAL, "--tokenizer", "gpt2", "--langs", "xx_Bad"],
                                r"unknown language code 'xx_Bad'"),
    "tokenizer-bad-mix": Case(["tokenizer", "cost", "--mix", "deu_Latn=abc", "--out", "{out}"],
                              r"weight 'abc' of deu_Latn is not a number"),
    "tokenizer-negative-mix": Case(["tokenizer", "cost", "--mix", "deu_Latn=-1", "--out", "{out}"],
                                   r"weights must be ≥ 0"),
    "tokenizer-cost-missing-metrics": Case(["tokenizer", "cost", "--metrics", "{in}/nope", "--mix", "deu_Latn=1",
                                            "--out", "{out}"],
                                           r"tokenizer_metrics\.json is missing"),
    "tokenizer-bad-source": Case(["tokenizer", "train", "--source", "deu_Latn", "--out", "{out}"],
                                 r"expected LANG=SOURCE"),
    "tokenizer-unknown-builtin": Case(["tokenizer", "train", "--source", "deu_Latn=builtin:nosuch",
                                       "--out", "{out}"], r"builtin:nosuch: unknown bundled text set"),
    # distillation
    "distill-tokenizer-mismatch": Case(["train", "distill", "--teacher", "{M}", "--student", "{in}/variant",
                                        "--set", "text=[{in}/kd.txt]", "--set", "seq_len=32", "--set", "steps=1",
                                        "--set", "qa=null", "--set", "eval_qa=0", "--out", "{out}"],
                                       r"teacher and student tokenizers differ", files={"kd.txt": MED},
                                       prepare=swapped_tokenizer, heavy=True),
    "distill-without-out": Case(["train", "distill", "--teacher", UNUSED], r"--out DIR is required"),
    # recipes, plan, report, card, models
    "run-unknown-stage-kind": Case(["run", "in/r.yaml", "--runs-dir", "{out}"],
                                   r"unknown stage kind; no registered kind is close; `finemed stages` lists",
                                   files={"r.yaml": "name: r\nstages:\n  - {name: a, kind: nosuch.kind}\n"},
                                   max_chars=200),
    "run-misspelt-stage-kind": Case(["run", "in/r.yaml", "--runs-dir", "{out}"],
                                    r"unknown stage kind; did you mean 'eval\.bpb'\? `finemed stages` lists",
                                    files={"r.yaml": "name: r\nstages:\n  - {name: a, kind: eval.bpbb}\n"},
                                    max_chars=200),
    "run-stage-ref-to-no-stage": Case(["run", "{in}/r.yaml", "--runs-dir", "{out}"],
                                      r"\$\{stage:nothere\} names no earlier stage",
                                      files={"r.yaml": RECIPE_BPB.format(model="${stage:nothere}/model",
                                                                         data="builtin:medical")}),
    "run-missing-recipe": Case(["run", "{in}/nope.yaml", "--runs-dir", "{out}"], r"nope\.yaml"),
    "plan-missing-input": Case(["plan", "{in}/r.yaml", "--runs-dir", "{out}"],
                               r"1 problem\(s\): a: input \S+missing\.txt does not exist",
                               files={"r.yaml": RECIPE_BPB.format(model="{M}", data="{in}/missing.txt")}),
    "report-missing-dir": Case(["report", "{out}/nodir"], r"nodir: no such run dir"),
    "card-without-merge-stage": Case(["card", "{in}/run"], r"no complete stage 'merge'",
                                     prepare=run_dir_without_merge),
    "models-fetch-unknown": Case(["models", "fetch", "nosuch"], r"unknown registered model 'nosuch'"),
    "models-student-missing-teacher": Case(["models", "student", "{in}/nomodel", "--out", "{out}/s"],
                                           r"not a registered name"),
}
CASES.update({
    "serve-port-in-use": Case(["serve", "{M}", "--port", str(HELD.getsockname()[1]), "--ready-only"],
                              rf"port {HELD.getsockname()[1]} on 127.0.0.1 is already in use; pick another --port"),
    # with .venv-vllm: vLLM's own ERROR line and the log path; without: the line saying how to build it
    "serve-model-it-cannot-load": Case(["serve", "{in}/m", "--ready-only"], r"vLLM server for .*/m failed to start "
                                       r"\(exit \d+\): .*nosuch.*log: |no vLLM venv at .*make vllm",
                                       files=NOSUCH_MODEL, heavy=True),
})
XFAIL: dict[str, str] = {}  # case -> why it still fails (none left)


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    out: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(value: str, subs: dict[str, str]) -> str:
    for key, sub in subs.items():
        value = value.replace("{" + key + "}", sub)
    return value


def run_case(name: str, root: Path, model: Path | None) -> Outcome:
    case = CASES[name]
    base = root / name
    in_dir, out = base / "in", base / "out"
    in_dir.mkdir(parents=True)
    subs = {"M": str(model or "MODEL-NOT-BUILT"), "in": str(in_dir), "out": str(out), "port": str(free_port())}
    for rel, content in case.files.items():
        f = in_dir / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content) if isinstance(content, bytes) else f.write_text(fill(content, subs))
    if case.prepare is not None:
        case.prepare(in_dir, model)
    args = [fill(a, subs) for a in case.args]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "finemed.cli", *args], cwd=base, capture_output=True, text=True,
                          env={**os.environ, **ENV}, timeout=CASE_TIMEOUT_S)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0, out)


def needs_model(case: Case) -> bool:
    return case.prepare in MODEL_VARIANTS or any("{M}" in a for a in case.args) or any(
        isinstance(c, str) and "{M}" in c for c in case.files.values())


class Scheduler:
    """Hands the cases to ``PARALLEL`` workers, heavy ones first; cases that need the tiny model wait for it."""

    def __init__(self, names: list[str]):
        self.pending = list(names)
        self.model: Path | None = None
        self.model_error: BaseException | None = None
        self.cv = threading.Condition()

    def set_model(self, model: Path | None, error: BaseException | None = None) -> None:
        with self.cv:
            self.model, self.model_error = model, error
            self.cv.notify_all()

    def next(self) -> str | None:
        with self.cv:
            while self.pending:
                ready = [n for n in self.pending if not needs_model(CASES[n]) or self.model or self.model_error]
                if ready:
                    name = min(ready, key=lambda n: not CASES[n].heavy)  # stable: keeps the order otherwise
                    self.pending.remove(name)
                    return name
                self.cv.wait()
            return None


@pytest.fixture(scope="session")
def battery(request, tmp_path_factory) -> dict[str, Outcome | BaseException]:
    """Run every selected case, ``PARALLEL`` at a time; ``{case: Outcome}``. The cases without a model run while
    the tiny model is built."""
    names = list(dict.fromkeys(item.callspec.params["name"] for item in request.session.items
                               if getattr(item, "originalname", "") == "test_bad_input" and hasattr(item, "callspec")))
    root = tmp_path_factory.mktemp("bad_input")
    sched, results = Scheduler(names), {}

    def work() -> None:
        while (name := sched.next()) is not None:
            try:
                if needs_model(CASES[name]) and sched.model_error is not None:
                    raise sched.model_error
                results[name] = run_case(name, root, sched.model)
            except BaseException as err:  # noqa: BLE001 - reported by the case's test
                results[name] = err

    workers = [threading.Thread(target=work, daemon=True) for _ in range(PARALLEL)]
    for w in workers:
        w.start()
    try:
        if any(needs_model(CASES[n]) for n in names):
            sched.set_model(Path(request.getfixturevalue("tiny_model_dir")))
    except BaseException as err:
        sched.set_model(None, err)
        raise
    finally:
        for w in workers:
            w.join()
    return results


def finished_files(out: Path) -> list[str]:
    """Files under ``out`` that make a run look complete."""
    if not out.exists():
        return []
    found = []
    for pattern in FINISHED:
        found += [str(p.relative_to(out)) for p in out.rglob(pattern) if "logs" not in p.relative_to(out).parts]
    for manifest in out.rglob("manifest.json"):
        if json.loads(manifest.read_text()).get("status") == "complete":
            found.append(f"{manifest.relative_to(out)} (status complete)")
    return found


def assert_clear_failure(res: Outcome, match: str) -> None:
    where = f"rc={res.rc}\nstderr tail:\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, where
    assert res.rc == 2, where
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, where
    assert lines[-1] == errors[0], f"the error line must end stderr\n{where}"
    assert len(errors[0]) > len("error: ") + 10, where
    assert re.search(match, errors[0]), f"{match!r} not in {errors[0]!r}"
    assert finished_files(res.out) == [], f"a failed run left finished-looking files: {finished_files(res.out)}"


def assert_counted_skip(res: Outcome, skips: dict[str, int]) -> None:
    assert res.rc == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    stats = json.loads((res.out / "stats.json").read_text())
    assert stats["input_skipped"] == skips
    assert stats["input_docs"] == stats["blocks"][0]["in"] + sum(skips.values())


PARAMS = [pytest.param(n, id=n, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[n])] if n in XFAIL else [])
          for n in CASES]


@pytest.mark.parametrize("name", PARAMS)
def test_bad_input(name, battery):
    case, res = CASES[name], battery[name]
    if isinstance(res, BaseException):
        raise res
    if case.skips is not None:
        assert_counted_skip(res, case.skips)
    else:
        assert_clear_failure(res, case.match)
    if case.max_chars is not None:
        line = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")][0]
        assert len(line) < case.max_chars, f"{len(line)} chars, limit {case.max_chars}: {line}"
    if case.max_s is not None:
        assert res.seconds < case.max_s, f"took {res.seconds:.1f} s"


def test_battery_is_broad():
    """At least 40 cases, and every command group of the CLI has some."""
    assert len(CASES) >= 40
    groups = {c.args[0] if c.args[0] not in ("train", "eval", "tokenizer") else " ".join(c.args[:2])
              for c in CASES.values()}
    for group in ("corpus", "tokenizer train", "tokenizer eval", "tokenizer cost", "train cpt", "train distill",
                  "merge", "eval bpb", "eval qa", "eval mcq", "eval generate", "eval pairwise", "run", "plan",
                  "report", "card", "models"):
        assert group in groups, group
