"""``train.sft`` on a tiny model: full and LoRA (adapter + merged model), completion-only loss, held-out loss."""

from __future__ import annotations

import json

import pytest

from finemed.core.stages import run_stage
from finemed.sft.train import SftConfig


@pytest.fixture(scope="module")
def qa_file(tmp_path_factory):
    from finemed.data.loaders import load_squad

    exs = load_squad(name="xquad.en")
    titles = list(dict.fromkeys(e.title for e in exs))[:4]
    data = {"data": []}
    for t in titles:
        paras: dict[str, list] = {}
        for e in exs:
            if e.title == t:
                paras.setdefault(e.context, []).append({"id": e.id, "question": e.question,
                                                        "answers": [{"text": e.answers[0], "answer_start": 0}]})
        data["data"].append({"title": t, "paragraphs": [{"context": c[:200], "qas": q[:2]}
                                                        for c, q in list(paras.items())[:2]]})
    path = tmp_path_factory.mktemp("sft") / "qa.json"
    path.write_text(json.dumps(data))
    return path


def _cfg(model, qa_file, **kw) -> SftConfig:
    base = {"model": str(model), "data": {"qa": [str(qa_file)], "format": "completion", "heldout_fraction": 0.3,
                                          "max_train": 8, "max_heldout": 4},
            "max_length": 96, "max_steps": 2, "batch_size": 2, "eval_batch_size": 2, "lr": 1e-3, "dtype": "float32",
            "logging_steps": 1}
    return SftConfig.model_validate({**base, **kw})


def test_full_finetune_writes_a_model(tiny_model_dir, qa_file, tmp_path):
    out = run_stage("train.sft", _cfg(tiny_model_dir, qa_file), tmp_path / "full")
    res = out.result
    assert res["steps"] == 2 and not res["lora"] and res["adapter_dir"] is None
    assert res["data"]["train"] == 8 and res["data"]["heldout"] >= 1
    assert res["eval_loss_before"] is not None and res["eval_loss_after"] is not None
    assert res["trainable_parameters"] == res["total_parameters"] or res["trainable_parameters"] > 0
    assert (tmp_path / "full" / "model" / "model.safetensors").is_file()


def test_lora_saves_adapter_and_merged_model(tiny_model_dir, qa_file, tmp_path):
    from finemed.models.loading import load_causal_lm

    cfg = _cfg(tiny_model_dir, qa_file, lora={"r": 4, "alpha": 8, "dropout": 0.0,
                                              "target_modules": ["q_proj", "v_proj"]},
               data={"qa": [str(qa_file)], "format": "chat", "heldout_fraction": 0.3, "max_train": 6})
    res = run_stage("train.sft", cfg, tmp_path / "lora").result
    assert res["lora"] and res["trainable_parameters"] < res["total_parameters"]
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    model, _ = load_causal_lm(tmp_path / "lora" / "model", device="cpu")
    assert not any("lora" in n for n, _ in model.named_parameters())  # merged into plain weights


def test_resume_from_a_complete_checkpoint(tiny_model_dir, qa_file, tmp_path):
    cfg = _cfg(tiny_model_dir, qa_file, save_steps=1)
    run_stage("train.sft", cfg, tmp_path / "r")
    ckpts = sorted((tmp_path / "r" / "checkpoints").glob("checkpoint-*"))
    assert ckpts and (ckpts[-1] / "finemed_complete").is_file()
    res = run_stage("train.sft", cfg.model_copy(update={"max_steps": 3}), tmp_path / "r").result
    assert res["resumed_from"] and res["resumed_from"].endswith("checkpoint-2") and res["steps"] == 3
    assert res["eval_loss_before"] is not None  # kept from the first run


def test_loss_is_on_the_completion_only(tiny_model_dir, tmp_path):
    import datasets
    from trl import SFTTrainer

    from finemed.core.runtime import resolve
    from finemed.models.loading import load_causal_lm
    from finemed.sft.train import _args

    model, tok = load_causal_lm(tiny_model_dir, device="cpu")
    cfg = SftConfig(model=str(tiny_model_dir), max_length=64)
    ds = datasets.Dataset.from_list([{"prompt": "Context: a b c\n\nQuestion: q?\n\nAnswer:", "completion": " Denver"}])
    trainer = SFTTrainer(model=model, args=_args(cfg, tmp_path, resolve("cpu", "float32", train=True)),
                         train_dataset=ds, processing_class=tok)
    row = trainer.train_dataset[0]
    trained = [i for i, lab in zip(row["input_ids"], row["labels"]) if lab != -100]
    assert tok.decode(trained) == " Denver" + tok.eos_token
