"""README numbers that a file holds: the quickstart's CPT-setting table is docs/results/quickstart-cpt-setting.json
(written by benchmarks/quickstart_cpt_setting.py), row for row; the papers table's headlines (rows run in one
invocation) quote only numbers and verdicts that the recipe's findings stage wrote to docs/results."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setting_rows(results: dict) -> list[str]:
    """The README table rows, formatted from the results file."""
    rows = []
    for name, r in results["settings"].items():
        def three(key: str, fmt: str) -> str:
            return " / ".join(format(r[key][t], fmt) for t in ("t=0", "t=0.5", "t=1"))

        h, rest = r["hurts"], r["restores"]
        restores = "-" if "p" not in rest else f"{rest['only_second']} vs {rest['only_first']}, p {rest['p_holm']:.3f}"
        gain = "-" if r["gain_kept"] is None else f"{r['gain_kept']:.1%}"
        rows.append(f"| {name} | {three('probe_dev', '.3f')} | {three('qa_dev_f1', '.1f')} | "
                    f"{three('bpb_domain', '.3f')} | {h['only_first']} vs {h['only_second']}, p {h['p']:.3f} | "
                    f"{r['chosen']} | {restores} | {gain} |")
    return rows


def test_quickstart_cpt_setting_table_is_the_results_file():
    results = json.loads((ROOT / "docs" / "results" / "quickstart-cpt-setting.json").read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for row in setting_rows(results):
        assert row in readme, f"README lacks the row, as the results file has it:\n{row}"
    assert f"chosen: **{results['chosen']}**" in readme


def paper_rows(readme: str) -> list[tuple[str, str, str]]:
    """(recipe, wall, headline) of each row of the README's papers table that ran in one invocation."""
    rows = []
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and ".yaml`" in cells[0] and "one invocation" in cells[1]:
            rows.append((cells[0].split("`")[1], cells[1], cells[2]))
    return rows


def test_paper_headlines_quote_only_what_a_findings_stage_wrote():
    """Every decimal number in a (one-invocation) papers-table headline is in the results file the row names, which
    the recipe's findings stage wrote; every bold verdict is one of the four words and is in that file too."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = paper_rows(readme)
    assert {"definemed-mini.yaml", "targeted-sft-mini.yaml", "targeted-sft-instruct-mini.yaml", "kd-qa-mini.yaml",
            "tokenizer-choice-mini.yaml"} <= {r[0] for r in rows}
    for recipe, _, headline in rows:
        doc = re.search(r"`docs/results/([\w.-]+\.md)`", headline)
        assert doc, f"{recipe}: the headline names no docs/results file"
        text = (ROOT / "docs" / "results" / doc.group(1)).read_text(encoding="utf-8")
        written = set(re.findall(r"[-+]?\d+\.\d+", text))  # whole numbers, sign included
        for number in re.findall(r"[-+]?\d+\.\d+", headline):
            assert number in written, f"{recipe}: {number} is not in docs/results/{doc.group(1)}"
        for verdict in re.findall(r"\*\*([a-z ]+)\*\*", headline):
            assert verdict in ("holds", "does not hold", "no evidence either way", "not testable here")
            assert f"**{verdict}**" in text, f"{recipe}: verdict {verdict} is not in docs/results/{doc.group(1)}"
