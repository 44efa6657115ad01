"""eval.scoreboard on crafted eval-stage dirs: paired bootstrap verdicts (better, worse, unchanged: by the CI, not the
sign), a model with no scores, the sweep probe's roles, and the judge that is only plumbing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finemed.core.artifacts import atomic_write_json, run_cached
from finemed.core.config import FinemedError, StageConfig
from finemed.core.stages import run_stage
from finemed.evaluation.scoreboard import PLUMBING, ScoreboardConfig, build, length_bias, paired_delta, verdict_counts

BOOT = {"n_boot": 2000, "ci": 0.95, "seed": 0}


def test_paired_delta_better_worse_unchanged_by_ci():
    a = {str(i): float(i % 2) for i in range(40)}                      # 50% right
    better = {str(i): 1.0 for i in range(40)}                           # 100% right on the same items
    assert paired_delta(a, better, stat="mean", higher_is_better=True, **BOOT)["verdict"] == "better"
    assert paired_delta(better, a, stat="mean", higher_is_better=True, **BOOT)["verdict"] == "worse"
    # a positive delta (+1 of 40 items) whose CI includes 0 is "unchanged", not "better"
    plus_one = dict(a, **{"0": 1.0})
    d = paired_delta(a, plus_one, stat="mean", higher_is_better=True, **BOOT)
    assert d["delta"] == pytest.approx(0.025) and d["lo"] <= 0 <= d["hi"] and d["verdict"] == "unchanged"
    # lower is better (bpb: ratio of summed bits over summed bytes): fewer bits on every document is "better"
    bits_a = {str(i): (100.0 + i, 50) for i in range(12)}
    bits_b = {str(i): (90.0 + i, 50) for i in range(12)}
    d = paired_delta(bits_a, bits_b, stat="ratio", higher_is_better=False, **BOOT)
    assert d["delta"] == pytest.approx((sum(90 + i for i in range(12)) - sum(100 + i for i in range(12))) / 600,
                                       abs=1e-4)
    assert d["verdict"] == "better" and d["n"] == 12
    # no shared items: no CI, no verdict
    assert paired_delta(a, {"x": 1.0}, stat="mean", higher_is_better=True, **BOOT)["verdict"] == "no CI"


def test_paired_beats_unpaired_on_correlated_items():
    """Pairing is what lets a small, consistent gain show: each item's score moves by +0.05 across a wide spread."""
    a = {str(i): float(i) for i in range(30)}
    b = {str(i): float(i) + 0.05 for i in range(30)}
    assert paired_delta(a, b, stat="mean", higher_is_better=True, **BOOT)["verdict"] == "better"


class _Cfg(StageConfig):
    model: str = ""
    judge: str = ""


def _stage(root: Path, name: str, kind: str, files: dict[str, object], **cfg) -> str:
    d = root / name
    run_cached(name, _Cfg(**cfg), d, lambda: {"ok": 1}, kind=kind)
    for fname, obj in files.items():
        atomic_write_json(d / fname, obj)
    return str(d)


def _qa(root, name, model, em):
    items = {f"q{i}": {"exact_match": 100.0 * v, "f1": 100.0 * v} for i, v in enumerate(em)}
    mean = 100.0 * sum(em) / len(em)
    return _stage(root, name, "eval.qa", {"qa_results.json": {"model": model, "tasks": {"xquad_en_0shot": {
        "exact_match": mean, "f1": mean, "n": len(em)}}}, "items_xquad_en_0shot.json": items}, model=model)


def _mcq(root, name, model, right):
    items = {f"m{i}": {"acc": float(r), "acc_norm": float(r), "label": 0, "option_ll": [-1.0] * 5,
                       "option_chars": [5] * 5} for i, r in enumerate(right)}
    acc = sum(right) / len(right)
    return _stage(root, name, "eval.mcq", {"qa_results.json": {"model": model, "tasks": {"germedbench_medqa": {
        "acc": acc, "acc_norm": acc}}}, "items_germedbench_medqa.json": items}, model=model)


def _bpb(root, name, model, bits):
    sets = {"medical": {"bpb": sum(bits) / (100 * len(bits)), "doc_bits": bits, "doc_bytes": [100] * len(bits)}}
    return _stage(root, name, "eval.bpb", {"bpb.json": {"model": model, "sets": sets}}, model=model)


@pytest.fixture
def chain(tmp_path):
    """instruct/cpt/merge model dirs and eval stages: CPT loses QA, gains bpb; the merge is unchanged on QA."""
    models = {r: tmp_path / "models" / r for r in ("instruct", "cpt", "merge")}
    for p in models.values():
        p.mkdir(parents=True)
    root = tmp_path / "run"
    m = {r: str(p) for r, p in models.items()}
    evals = [
        _qa(root, "qa_instruct", m["instruct"], [1] * 20 + [0] * 20),
        _qa(root, "qa_cpt", m["cpt"], [0] * 40),
        _qa(root, "qa_merge", m["merge"], [1] * 19 + [0] * 21),
        _mcq(root, "mcq_instruct", m["instruct"], [0, 1] * 15),
        _mcq(root, "mcq_merge", m["merge"], [0, 1] * 15),
        _bpb(root, "bpb_instruct", m["instruct"], [120.0 + i for i in range(10)]),
        _bpb(root, "bpb_cpt", m["cpt"], [100.0 + i for i in range(10)]),
    ]
    probe = {lbl: {"pass_rate": rate, "items": [{"id": f"p{i}", "passed": i < k} for i in range(20)]}
             for lbl, rate, k in (("t0", 0.5, 10), ("t1", 0.0, 0), ("t0.5", 0.45, 9))}
    evals.append(_stage(root, "merge", "merge.sweep",
                        {"sweep.json": {"chosen": "t=0.5"}, **{f"probe/{k}.json": v for k, v in probe.items()}}))
    rows = [{"model": m[r], "prompt_id": f"g{i}", "off_lang_sentence_share": share, "length_ratio": 1.0}
            for r, share in (("instruct", 0.0), ("merge", 0.5)) for i in range(12)]
    table = {m[r]: {"off_lang_sentence_share": s, "median_length_ratio": 1.0} for r, s in (("instruct", 0.0),
                                                                                          ("merge", 0.5))}
    evals.append(_stage(root, "failures", "eval.failures", {"failures.json": table, "failures_items.json": rows}))
    return m, evals, root


def _board(m, evals, **kw) -> dict:
    return build(ScoreboardConfig(models={**m, **kw.pop("extra", {})}, evals=evals, **kw))


def test_board_marks_each_model_against_instruct(chain):
    m, evals, _ = chain
    board = _board(m, evals)
    assert set(board["models"]) == {"instruct", "cpt", "merge"} and board["not_in_recipe"] == ["student"]
    assert board["models"]["instruct"]["xquad_en_0shot.exact_match"] == 50.0
    d = board["deltas"]
    assert d["cpt"]["xquad_en_0shot.exact_match"]["verdict"] == "worse"
    assert d["cpt"]["xquad_en_0shot.exact_match"]["delta"] == -50.0
    assert d["merge"]["xquad_en_0shot.exact_match"]["verdict"] == "unchanged"  # -2.5 points, CI spans 0
    assert d["cpt"]["bpb.medical"]["verdict"] == "better" and d["cpt"]["bpb.medical"]["delta"] < 0
    assert d["cpt"]["probe.pass_rate"]["verdict"] == "worse"                    # t=1 is the CPT model
    assert board["models"]["merge"]["probe.pass_rate"] == 0.45                 # the chosen t is the merge
    assert d["merge"]["germedbench_medqa.acc"]["verdict"] == "unchanged"
    assert d["merge"]["off_language"]["verdict"] == "worse" and d["merge"]["length_ratio"]["verdict"] == "unchanged"
    assert board["measures"]["germedbench_medqa.acc"]["chance"] == 20.0        # five options
    assert board["mcq_length_bias"]["germedbench_medqa"]["instruct"]["n"] == 30
    assert board["measures"]["bpb.medical"]["higher_is_better"] is False
    # what a model was not scored on is listed, not invented
    assert "germedbench_medqa.acc" in board["missing"]["cpt"] and "bpb.medical" in board["missing"]["merge"]
    assert "germedbench_medqa.acc" not in board["models"]["cpt"]


def test_a_student_with_no_eval_is_missing_everywhere(chain, tmp_path):
    m, evals, _ = chain
    (tmp_path / "student").mkdir()
    board = _board(m, evals, extra={"student": str(tmp_path / "student")})
    assert board["models"]["student"] == {} and len(board["missing"]["student"]) == len(board["measures"])
    assert board["deltas"]["student"] == {}


def test_embedded_judge_is_plumbing_only_and_ranks_nothing(chain):
    m, evals, root = chain
    wins = {"overall_winrate": {m["instruct"]: 0.5, m["merge"]: 0.5}}
    own = _stage(root, "judge", "eval.pairwise", {"winrates.json": wins}, judge=f"local:{m['instruct']}")
    board = _board(m, [*evals, own])
    assert board["judge"]["status"] == PLUMBING and "judge.win_rate" not in board["measures"]
    real = _stage(root, "judge_real", "eval.pairwise", {"winrates.json": wins},
                  judge="http://gpu:8000/v1#Qwen/Qwen2.5-72B-Instruct")
    board = _board(m, [*evals, real])
    assert board["judge"]["status"] == "scored" and board["models"]["merge"]["judge.win_rate"] == 0.5


def test_stage_writes_scoreboard_json_and_bad_inputs_are_one_line(chain, tmp_path):
    m, evals, _ = chain
    out = tmp_path / "sb"
    outcome = run_stage("eval.scoreboard", ScoreboardConfig(models=m, evals=evals), out)
    data = json.loads((out / "scoreboard.json").read_text())
    assert data["models"]["cpt"]["bpb.medical"] == pytest.approx(1.045)
    assert outcome.result["verdicts"]["cpt"]["worse"] >= 2
    with pytest.raises(FinemedError, match="no manifest.json"):
        _board(m, [str(tmp_path / "nowhere")])
    with pytest.raises(FinemedError, match="baseline 'instruct' is not among models"):
        build(ScoreboardConfig(models={"cpt": m["cpt"]}, evals=evals))


def test_quickstart_scores_every_model_of_the_chain_on_the_same_items(tmp_path):
    """The quickstart's scoreboard reads an eval stage of each kind for each of the four models, with the same
    items per kind (English XQuAD included), and knows its SmolLM2 judge for what it is."""
    from finemed.evaluation.scoreboard import judge_is_plumbing
    from finemed.orchestrate.recipe import load_recipe, resolve_stages

    root = tmp_path / "quickstart"
    resolved = {e.name: (e.kind, c) for e, c in resolve_stages(load_recipe(Path(__file__).parents[2] / "recipes"
                                                                           / "quickstart.yaml"), root, "qs")}
    kind, board = resolved["scoreboard"]
    assert kind == "eval.scoreboard" and set(board.models) == {"instruct", "cpt", "merge", "student"}
    for k in ("eval.bpb", "eval.qa", "eval.mcq"):
        stages = {n: c for n, (kk, c) in resolved.items() if kk == k}
        assert sorted(c.model for c in stages.values()) == sorted(board.models.values()), k
        assert all(str(root / n) in board.evals for n in stages), k
        items = {c.model_dump_json(exclude={"model"}) for c in stages.values()}
        assert len(items) == 1, k  # same sets / tasks / limits for every model
    qa = next(c for n, (kk, c) in resolved.items() if kk == "eval.qa")
    assert {"xquad_en_0shot", "xquad_en_1shot", "xquad_de_0shot", "xquad_de_1shot"} <= set(qa.tasks)
    assert judge_is_plumbing(resolved["judge"][1].judge, board)
    answered = [m for n, (kk, c) in resolved.items() if kk == "eval.generate" for m in c.models]
    assert sorted(answered) == sorted(board.models.values())  # every model answers (failure modes)
    failures = [n for n, (kk, _) in resolved.items() if kk == "eval.failures" and str(root / n) in board.evals]
    assert len(failures) == 2


def test_report_shows_the_board_the_stage_wrote(chain):
    """End to end on crafted eval dirs: the stage's scoreboard.json is the table at the top of report.html."""
    from finemed.orchestrate.report.html import write_report

    m, evals, root = chain
    run_stage("eval.scoreboard", ScoreboardConfig(models=m, evals=evals), root / "scoreboard")
    html = write_report(root).read_text(encoding="utf-8")
    board = html[html.index('id="board"'):html.index("</table>", html.index('id="board"'))]
    assert board.count("<tr>") == 1 + len(json.loads((root / "scoreboard" / "scoreboard.json").read_text())
                                          ["measures"])
    assert "xquad en 0shot EM" in board and '<td class="worse"><b>0</b> <span class="delta">-50' in board
    assert "judge: not run" in html
    assert "germedbench_medqa instruct: acc picks the shortest option in 100% of 30 items" in html
    assert "acc picks by letter A:30, acc_norm A:30, gold A:30" in html


def test_length_bias_shows_acc_preferring_short_options():
    """Summed log-likelihood falls with length: acc picks the shortest option, acc_norm (per char) the long gold."""
    long_gold = {"label": 1, "option_ll": [-10.0, -30.0, -25.0], "option_chars": [10, 40, 20]}
    short_gold = {"label": 0, "option_ll": [-5.0, -20.0, -30.0], "option_chars": [10, 40, 20]}
    lb = length_bias({"a": long_gold, "b": dict(long_gold), "c": short_gold, "qa": {"f1": 1.0}})
    assert lb == {"n": 3, "acc_picks_shortest": 1.0, "acc_norm_picks_shortest": pytest.approx(1 / 3, abs=1e-4),
                  "gold_is_shortest": pytest.approx(1 / 3, abs=1e-4), "gold_is_longest": pytest.approx(2 / 3, abs=1e-4),
                  "acc_picks_by_position": {"A": 3}, "acc_norm_picks_by_position": {"A": 1, "B": 2},
                  "gold_by_position": {"A": 1, "B": 2}, "gold_chars": 30.0, "other_chars": 20.0}
    assert length_bias({"qa": {"f1": 1.0}}) is None


def test_real_bpb_stages_on_two_copies_of_a_model_are_unchanged(tmp_path, tiny_model_dir):
    """The files eval.bpb really writes (manifest config, per-document bits) feed the board: two copies of one model
    score the same documents identically, so the delta is 0 and the verdict "unchanged"."""
    import shutil

    from finemed.evaluation.perplexity import BpbSetsConfig

    models = {"instruct": str(tiny_model_dir), "cpt": str(shutil.copytree(tiny_model_dir, tmp_path / "copy"))}
    evals = []
    for role, path in models.items():
        cfg = BpbSetsConfig(model=path, sets={"english": "builtin:xquad.en"}, max_docs=3, max_chars=3000,
                            max_length=128, dtype="float32", device="cpu")
        run_stage("eval.bpb", cfg, tmp_path / f"bpb_{role}")
        evals.append(str(tmp_path / f"bpb_{role}"))
    board = build(ScoreboardConfig(models=models, evals=evals))
    d = board["deltas"]["cpt"]["bpb.english"]
    assert d["n"] == 3 and d["delta"] == pytest.approx(0, abs=1e-4) and d["verdict"] == "unchanged"
    assert board["models"]["cpt"]["bpb.english"] == board["models"]["instruct"]["bpb.english"] > 0


def test_a_sweep_that_chose_t1_scores_the_probe_for_cpt_and_merge_alike(chain):
    """The sweep may hand on the plain CPT model (t=1): its probe result then counts for both roles."""
    m, evals, root = chain
    atomic_write_json(root / "merge" / "sweep.json", {"chosen": "t=1"})
    board = _board(m, evals)
    assert board["models"]["cpt"]["probe.pass_rate"] == board["models"]["merge"]["probe.pass_rate"] == 0.0
    assert board["deltas"]["merge"]["probe.pass_rate"]["verdict"] == "worse"


def test_the_sweeps_choice_and_failed_qa_guard_reach_the_board(chain):
    """What the sweep handed on is in scoreboard.json's selection line; a failed QA guard is said there, verbatim."""
    m, evals, root = chain
    line = "QA guard failed: no candidate keeps QA dev F1 >= 80% of the instruct model's (20.0); chose t=1"
    atomic_write_json(root / "merge" / "sweep.json", {"chosen": "t=1", "qa_kept": 0.1, "probe_kept": 0.5,
                                                      "guard_failed": line})
    sel = _board(m, evals)["selection"]
    assert sel["guard_failed"] == line and sel["chosen"] == "t=1"
    assert sel["line"] == ("merge: chose t=1 (QA dev F1 10% of the instruct model's; probe dev pass rate 50% of the "
                           f"instruct model's). {line}")
    atomic_write_json(root / "merge" / "sweep.json", {"chosen": "t=0.5", "qa_kept": 0.95})
    sel = _board(m, evals)["selection"]
    assert sel["guard_failed"] is None and sel["line"] == "merge: chose t=0.5 (QA dev F1 95% of the instruct model's)"


def test_germedbench_answer_key_explains_acc_below_chance():
    """Why the quickstart's MCQ acc was 1 of 30 while acc_norm sat at 20%: the first 30 GerMedBench med_qa golds are
    all B or C, and SmolLM2's summed log-likelihood mostly favours option A's text (8 of 10 items measured by plain
    forwards; see the report). A picker that always takes A scores 0 here, not the 20% a uniform key would give."""
    from finemed.data.mcq import load_germedbench_mcq, mcq_rows

    rows = mcq_rows(load_germedbench_mcq()[:30])
    items = {r["id"]: {"label": r["label"], "option_ll": [-1.0] + [-2.0] * (len(r["choices"]) - 1),
                       "option_chars": [len(c) for c in r["choices"]]} for r in rows}
    lb = length_bias(items)
    assert lb["gold_by_position"] == {"A": 0, "B": 14, "C": 16}
    assert lb["acc_picks_by_position"] == {"A": 30}
    assert sum(r["label"] == 0 for r in rows) == 0  # an A-picker is right on none of them


def test_a_split_probe_is_read_on_its_test_half_only(chain):
    """The sweep selects t on the probe's dev half; the board scores the test half (items tagged split)."""
    m, evals, root = chain
    for label, dev_pass, test_pass in (("t0", True, True), ("t1", True, False), ("t0.5", False, True)):
        items = [{"id": f"d{i}", "split": "dev", "passed": dev_pass} for i in range(10)]
        items += [{"id": f"t{i}", "split": "test", "passed": test_pass} for i in range(10)]
        atomic_write_json(root / "merge" / "probe" / f"{label}.json",
                          {"pass_rate": 0.5, "splits": {"dev": {"pass_rate": float(dev_pass)},
                                                        "test": {"pass_rate": float(test_pass)}}, "items": items})
    board = _board(m, evals)
    assert [board["models"][r]["probe.pass_rate"] for r in ("instruct", "cpt", "merge")] == [1.0, 0.0, 1.0]
    assert board["deltas"]["cpt"]["probe.pass_rate"]["n"] == 10  # test items only
    assert board["deltas"]["cpt"]["probe.pass_rate"]["verdict"] == "worse"
    assert board["deltas"]["merge"]["probe.pass_rate"]["verdict"] == "unchanged"


def test_a_null_result_where_instruct_sits_at_the_floor_is_not_testable_here(tmp_path):
    """The quickstart's XQuAD-de: the instruct model answers none of the questions, so a CI spanning 0 cannot show a
    loss: "not testable here", never "unchanged". A model that climbs off the floor is still "better"; an MCQ
    baseline at chance is at its floor too, one above it is not."""
    models = {r: tmp_path / "models" / r for r in ("instruct", "cpt", "merge")}
    for p in models.values():
        p.mkdir(parents=True)
    m, root = {r: str(p) for r, p in models.items()}, tmp_path / "run"
    evals = [_qa(root, "qa_instruct", m["instruct"], [0] * 40), _qa(root, "qa_cpt", m["cpt"], [0] * 39 + [1]),
             _qa(root, "qa_merge", m["merge"], [1] * 20 + [0] * 20),
             _mcq(root, "mcq_instruct", m["instruct"], [1] * 4 + [0] * 16),   # 20% = chance with five options
             _mcq(root, "mcq_cpt", m["cpt"], [1] * 3 + [0] * 17),
             _mcq(root, "mcq_merge", m["merge"], [1] * 4 + [0] * 16)]
    board = _board(m, evals)
    d = board["deltas"]
    assert d["cpt"]["xquad_en_0shot.exact_match"]["verdict"] == "not testable here"
    assert d["merge"]["xquad_en_0shot.exact_match"]["verdict"] == "better"
    assert d["cpt"]["germedbench_medqa.acc"]["verdict"] == "not testable here"
    counts = verdict_counts(board)
    assert counts["cpt"]["not testable here"] == 4 and counts["cpt"]["unchanged"] == 0
    evals[3] = _mcq(root, "mcq_instruct", m["instruct"], [1] * 10 + [0] * 10)  # 50%: above chance
    assert _board(m, evals)["deltas"]["cpt"]["germedbench_medqa.acc"]["verdict"] == "worse"
