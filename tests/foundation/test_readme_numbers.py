"""README numbers that a file holds: the quickstart's CPT-setting table is docs/results/quickstart-cpt-setting.json
(written by benchmarks/quickstart_cpt_setting.py), row for row."""

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
