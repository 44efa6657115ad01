"""The HTML report: every section present, stages not run marked as such, images decoded and no console errors in
headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it, elsewhere the browser test is skipped)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from finemed.artifacts import atomic_write_json, run_cached
from finemed.report.collect import SECTIONS
from finemed.report.html import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.title = 'IMAGES ' + imgs.length + ' BAD ' + bad;
});
</script>"""


def _png(path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [3, 1, 2])
    ax.set_title(title)
    fig.savefig(path, format="png")
    plt.close(fig)


@pytest.fixture
def run_dir(tmp_path):
    """A run with a corpus stage (funnel + PNG), a CPT stage (log history), a failed stage and a QA stage."""
    from finemed.config import StageConfig

    class Cfg(StageConfig):
        seed: int = 3

    root = tmp_path / "runs" / "demo"
    corpus = root / "corpus"
    run_cached("corpus", Cfg(), corpus, lambda: {"kept": 7}, kind="corpus.build")
    atomic_write_json(corpus / "stats.json", {"funnel": [{"block": "langid", "in": 10, "kept": 8, "dropped": 2,
                                                          "reasons": {"not_german": 2}}],
                                              "dropped_samples": {"not_german": [{"text": "Hello <b>world</b>"}]}})
    _png(corpus / "funnel.png", "funnel")
    cpt = root / "cpt"
    run_cached("cpt", Cfg(), cpt, lambda: {"domain_bpb_drop": 0.12}, kind="train.cpt")
    atomic_write_json(cpt / "log_history.json", [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5},
                                                 {"step": 2, "eval_domain_bpb": 1.4}])
    with pytest.raises(RuntimeError):
        run_cached("merge", Cfg(), root / "merge", lambda: (_ for _ in ()).throw(RuntimeError("boom")),
                   kind="merge.sweep")
    run_cached("qa", Cfg(), root / "qa", lambda: {"tasks": {"xquad_de_0shot": {"exact_match": 12.5}}}, kind="eval.qa")
    run_cached("findings", Cfg(), root / "findings", lambda: {"claims_hold": 1}, kind="papers.demo")
    (root / "findings" / "findings.md").write_text("| claim | holds |\n|---|---|\n| merge heals <b>x</b> | yes |\n",
                                                   encoding="utf-8")
    return root


def test_report_has_every_section_and_marks_what_did_not_run(run_dir):
    html = write_report(run_dir).read_text(encoding="utf-8")
    for sid, title, _, _ in SECTIONS:
        assert f'id="{sid}"' in html and title in html
    assert 'id="plan"' in html and 'id="manifest"' in html
    assert html.count('class="notrun"') >= 6  # tokenizer, distill, labels, generate, winrates, failures, plan
    assert "error: RuntimeError: boom" in html and "not_german: 2" in html
    assert "Hello &lt;b&gt;world&lt;/b&gt;" in html  # examples are escaped
    assert "cpt_curves.png" in html and "funnel.png" in html and "exact_match" in html
    assert html.count("data:image/png;base64,") == 2 and "<code>" in html
    assert "<td>merge heals &lt;b&gt;x&lt;/b&gt;</td>" in html  # a paper's findings.md, as a table, escaped


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed: `apt-get install chromium` (Debian)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    report = write_report(run_dir)
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    dom = subprocess.run([*args, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    title = re.search(r"<title>(.*?)</title>", dom.stdout).group(1)
    assert title == "IMAGES 2 BAD 0", title
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    for sid, _, _, _ in SECTIONS:
        assert f'id="{sid}"' in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([*args, f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
