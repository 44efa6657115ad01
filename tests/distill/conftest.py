"""Shared fixtures for the KD tests: a tiny 4-layer teacher and a small SQuAD file + text corpus from XQuAD-en."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    from finemed.data.loaders import load_squad
    from finemed.models.tiny import save_tiny

    root = tmp_path_factory.mktemp("kd")
    teacher = save_tiny(root / "teacher", num_layers=4)
    exs = load_squad(name="xquad.en")
    titles = list(dict.fromkeys(e.title for e in exs))[:3]
    data = {"data": []}
    for t in titles:
        paras = {}
        for e in exs:
            if e.title == t:
                paras.setdefault(e.context, []).append({"id": e.id, "question": e.question,
                                                        "answers": [{"text": e.answers[0], "answer_start": 0}]})
        data["data"].append({"title": t, "paragraphs": [{"context": c, "qas": q[:2]}
                                                        for c, q in list(paras.items())[:2]]})
    (root / "qa.json").write_text(json.dumps(data))
    texts = [e.context for e in exs][::7][:24]
    (root / "text.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
    return root, teacher


@pytest.fixture
def kd_cfg(env):
    """A DistillConfig factory over the tiny setup (fp32, seconds per run)."""
    from finemed.distill.train import DistillConfig

    root, teacher = env

    def make(**kw):
        base = dict(teacher=str(teacher), text=[str(root / "text.jsonl")], qa=str(root / "qa.json"), seq_len=48,
                    batch_size=4, steps=3, max_train_sequences=12, qa_fraction=0.5, eval_qa=2, max_new_tokens=3,
                    max_heldout_docs=4, top_k=16, lr=1e-3, heldout_fraction=0.34, dtype="float32",
                    save_student=True)
        base.update(kw)
        return DistillConfig(**base)

    return make
