"""The KD report: retention arithmetic and the held-out SQuAD file the lm-eval QA task reads."""

from finemed.data.loaders import QAExample, load_squad
from finemed.distill.report import retention, write_squad


def test_retention_percentages():
    qa = {"teacher": {"0shot": {"f1": 40.0, "exact_match": 0.0}}, "kd": {"0shot": {"f1": 30.0, "exact_match": 5.0}}}
    out = retention({"teacher": 1.0, "kd": 1.25, "ce": None}, qa, 33.3)
    assert out == {"parameter_reduction_pct": 33.3, "kd_bpb_retention_pct": 80.0, "kd_0shot_f1_retention_pct": 75.0}


def test_write_squad_round_trips_in_order(tmp_path):
    exs = [QAExample(id=f"q{i}", title=f"T{i % 2}", context=f"Kontext {i}.", question=f"Frage {i}?",
                     answers=[f"A{i}"], answer_starts=[0]) for i in range(3)]
    back = load_squad(write_squad(exs, tmp_path / "qa.json"))
    assert [e.model_dump() for e in back] == [e.model_dump() for e in exs]
