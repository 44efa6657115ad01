"""Stage train.cache_logits: its typed result, the CLI, resume after lost shards and a too-large k."""

import json

from finemed.core import stages
from finemed.core.config import FinemedError
from finemed.distill.cache_logits import CacheLogitsConfig, CacheLogitsResult


def test_stage_writes_the_cache_into_the_run_dir(env, tmp_path):
    from finemed.distill.logit_cache import LogitCache

    root, teacher = env
    cfg = CacheLogitsConfig(teacher=str(teacher), qa=str(root / "qa.json"), text=[str(root / "text.jsonl")],
                            seq_len=48, max_train_sequences=6, top_k=8, shard_size=4, dtype="float32")
    res = CacheLogitsResult.model_validate(stages.run_stage("train.cache_logits", cfg, tmp_path / "c").result)
    assert (res.shards, res.computed_shards, res.tokens, res.k) == (2, 2, 6 * 48, 8)
    assert res.path == str(tmp_path / "c") and len(LogitCache(tmp_path / "c")) == 6
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["tokens"] == 6 * 48
    again = stages.run_stage("train.cache_logits", cfg, tmp_path / "c")
    assert again.status == "cached"


def test_cli_cache_logits_resumes_and_rejects_big_k(env, tmp_path):
    from typer.testing import CliRunner

    from finemed.cli import app

    root, teacher = env
    args = ["train", "distill", "cache-logits", "--teacher", str(teacher), "--set", f"qa={root / 'qa.json'}",
            "--set", f"text=[{root / 'text.jsonl'}]", "--set", "seq_len=48", "--set", "max_train_sequences=10",
            "--set", "dtype=float32", "--shard-size", "4"]
    res = CliRunner().invoke(app, args + ["--k", "8", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output[res.output.index("{"):])
    assert (rep["shards"], rep["computed_shards"]) == (3, 3)
    (tmp_path / "c" / "shard-00002.safetensors").unlink()
    (tmp_path / "c" / "shard-00002.json").unlink()
    res = CliRunner().invoke(app, args + ["--k", "8", "--out", str(tmp_path / "c"), "--force"])
    rep = json.loads(res.output[res.output.index("{"):])
    assert (rep["computed_shards"], rep["reused_shards"]) == (1, 2)
    res = CliRunner().invoke(app, args + ["--k", "5000", "--out", str(tmp_path / "d")])
    # finemed.cli.main turns a FinemedError into its one line and exit code 2
    assert isinstance(res.exception, FinemedError) and "k=5000 must be within 1..512" in str(res.exception)
