"""A real local judge: ``transformers serve`` with SmolLM2 on 127.0.0.1, a small pairwise job end to end."""

import json

import pytest

from finemed.evaluation.answers import AnswerRow, write_answers

pytestmark = [pytest.mark.slow]

ANSWERS = [
    ("p1", "Was hilft bei Kopfschmerzen?", {"gut": "Ruhe, ausreichend trinken und bei Bedarf Paracetamol.",
                                            "kurz": "Tabletten.", "falsch": "Viel Kaffee und wenig Schlaf."}),
]


def run_cli(*args):
    from typer.testing import CliRunner

    from finemed.cli import app

    return CliRunner().invoke(app, ["eval", *args])


@pytest.mark.smoke
def test_pairwise_with_transformers_serve_and_cache(judge_server, tmp_path):
    base, model = judge_server
    rows = [AnswerRow(model=m, prompt_id=pid, prompt=q, answer=a) for pid, q, ans in ANSWERS for m, a in ans.items()]
    src = write_answers(tmp_path / "answers.jsonl", rows)
    args = ["pairwise", "--answers", str(src), "--judge", f"{base}#{model}", "--out", str(tmp_path / "out"),
            "--set", "max_tokens=12", "--set", "concurrency=4", "--set", "bootstrap=10", "--set", "timeout_s=120"]
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    info1 = json.loads(first.stdout.strip().splitlines()[-1])
    stats1 = info1["judge_info"]["client"]
    assert info1["judge_info"]["pairs"] == 3
    assert stats1["calls"] >= 6 and stats1["errors"] == 0  # 2 orders x 3 pairs, + reminders for unparseable replies
    assert sum(info1["outcomes"].values()) == 3
    win1 = json.loads((tmp_path / "out" / "winrates.json").read_text())
    # second run (--force past the stage cache): everything from the SQLite cache, zero calls, the same outcomes
    second = run_cli(*args, "--force")
    info2 = json.loads(second.stdout.strip().splitlines()[-1])
    assert info2["judge_info"]["client"]["calls"] == 0
    # every first-run request that succeeded is a hit; retried attempts (timeouts under load) count as calls only
    assert info2["judge_info"]["client"]["cache_hits"] == stats1["calls"] - stats1["retries"]
    assert info2["outcomes"] == info1["outcomes"]
    win2 = json.loads((tmp_path / "out" / "winrates.json").read_text())
    assert win2["pairs"] == win1["pairs"]
