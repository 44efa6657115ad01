"""Stage train.cpt on a tiny model: training lowers held-out bpb, replay share, bpb evals + TensorBoard, bad input."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import TrainerCallback

from finemed.core.config import FinemedError
from finemed.core.training import COMPLETE_MARK
from finemed.cpt.train import CptConfig, run


def _cfg(tiny_dir, med_jsonl, **kw) -> CptConfig:
    base = dict(model=str(tiny_dir), domain={"source": str(med_jsonl)}, general_eval={}, heldout_fraction=0.2,
                eval_max_docs=2, seq_len=32, batch_size=4, max_steps=8, warmup_steps=1, lr=5e-3, save_steps=4,
                logging_steps=1, report_to=[], dtype="float32")
    base.update(kw)
    return CptConfig(**base)


def test_cpt_lowers_heldout_bpb_with_replay_evals_and_tensorboard(tiny_dir, med_jsonl, tmp_path):
    cfg = _cfg(tiny_dir, med_jsonl, replay={"source": "builtin:fortunes_de", "max_docs": 300}, replay_ratio=0.25,
               general_eval={"general_de": {"source": "builtin:fortunes_de", "max_docs": 4}}, eval_steps=4,
               report_to=["tensorboard"], doc_mask=True, max_steps=12)
    res = run(cfg, tmp_path / "run")
    assert res.steps == 12
    assert res.bpb_after["domain"] < res.bpb_before["domain"]
    assert res.domain_bpb_drop == pytest.approx((res.bpb_before["domain"] - res.bpb_after["domain"])
                                                / res.bpb_before["domain"], abs=1e-5)
    assert set(res.bpb_before) == {"domain", "general_de"}
    assert abs(res.replay_share - 0.25) < 0.02
    hist = json.loads((tmp_path / "run" / "log_history.json").read_text())
    assert [h["step"] for h in hist if "bpb_domain" in h] == [4, 8]
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "model" / "tokenizer.json").is_file()


def test_heldout_docs_are_never_trained_on(tiny_dir, med_jsonl, tmp_path):
    from finemed.core.texts import iter_texts, train_texts
    from finemed.cpt.train import eval_texts

    cfg = _cfg(tiny_dir, med_jsonl, eval_max_docs=100)
    held = set(eval_texts(cfg)["domain"])
    train = set(train_texts(str(med_jsonl), cfg.heldout_fraction, cfg.seed))
    assert held and train and held.isdisjoint(train)
    assert held | train == set(iter_texts(str(med_jsonl)))


def test_empty_dataset(tiny_dir, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(FinemedError, match="held-out set 'domain' .* is empty"):
        run(_cfg(tiny_dir, tmp_path / "empty.jsonl"), tmp_path / "r1")
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(json.dumps({"text": f"Kurzer Befund Nummer {i}."}) for i in range(12)), "utf-8")
    with pytest.raises(FinemedError, match=r"fewer than one block of seq_len=512"):
        run(_cfg(tiny_dir, short, heldout_fraction=0.5, seq_len=512), tmp_path / "r2")
    assert not (tmp_path / "r2" / "model").exists()


def test_seq_len_above_model_maximum(tiny_dir, med_jsonl, tmp_path):
    with pytest.raises(FinemedError, match=r"seq_len=1024 exceeds .*max_position_embeddings=512"):
        run(_cfg(tiny_dir, med_jsonl, seq_len=1024), tmp_path / "r")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_dir, med_jsonl, tmp_path):
    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step == 5:
                with torch.no_grad():
                    next(model.parameters()).fill_(float("nan"))

    with pytest.raises(FinemedError, match=r"non-finite loss \(nan\) at step 6; last good checkpoint kept: "
                                           r".*checkpoint-4"):
        run(_cfg(tiny_dir, med_jsonl, save_steps=2), tmp_path / "r", callbacks=[Poison()])
    ckpts = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-2", "checkpoint-4"]
    assert (tmp_path / "r" / "checkpoints" / "checkpoint-4" / COMPLETE_MARK).is_file()
    assert not (tmp_path / "r" / "model").exists() and not (tmp_path / "r" / "log_history.json").exists()


def test_cli_emits_a_loadable_accelerate_fsdp_config(tiny_dir, tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file
    from typer.testing import CliRunner

    from finemed.cli import app

    out = tmp_path / "fsdp.yaml"
    res = CliRunner().invoke(app, ["train", "cpt", "--model", str(tiny_dir), "--emit-accelerate-config", str(out),
                                   "--num-processes", "4"])
    assert res.exit_code == 0, res.output
    raw = yaml.safe_load(out.read_text())
    assert raw["distributed_type"] == "FSDP" and raw["num_processes"] == 4
    assert raw["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    cfg = load_config_from_file(str(out))
    assert str(cfg.distributed_type).endswith("FSDP") and cfg.mixed_precision == "bf16"


def test_cli_train_cpt_runs_and_prints_the_result(tiny_dir, med_jsonl, tmp_path):
    from typer.testing import CliRunner

    from finemed.cli import app

    cfg = tmp_path / "cpt.yaml"
    cfg.write_text(yaml.safe_dump({"general_eval": {}, "heldout_fraction": 0.2, "eval_max_docs": 2, "seq_len": 32,
                                   "batch_size": 2, "warmup_steps": 0, "save_steps": 2, "report_to": []}))
    res = CliRunner().invoke(app, ["train", "cpt", "-c", str(cfg), "--model", str(tiny_dir), "--data", str(med_jsonl),
                                   "--set", "max_steps=3", "--set", "lr=1e-3", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{\n"):])
    assert out["steps"] == 3 and set(out["bpb_before"]) == {"domain"}
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())  # written by the stage runner
    assert metrics["steps"] == 3 and metrics["bpb_after"] == out["bpb_after"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["kind"] == "train.cpt"
    assert (tmp_path / "out" / "model" / "config.json").is_file()
    assert not (tmp_path / "out" / "model" / "training_args.bin").exists()


def test_from_config_trains_a_fresh_model_of_the_given_size(tiny_dir, med_jsonl, tmp_path):
    """init: from_config builds random weights of `model`'s architecture with `architecture` overrides, sized to
    the tokenizer; two seeds give different weights, the same seed the same loss."""
    arch = {"num_hidden_layers": 1, "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 8}
    a = run(_cfg(tiny_dir, med_jsonl, init="from_config", architecture=arch, tokenizer=str(tiny_dir), max_steps=3),
            tmp_path / "a")
    b = run(_cfg(tiny_dir, med_jsonl, init="from_config", architecture=arch, tokenizer=str(tiny_dir), max_steps=3),
            tmp_path / "b")
    cfg = json.loads((tmp_path / "a" / "model" / "config.json").read_text())
    assert cfg["hidden_size"] == 16 and cfg["num_hidden_layers"] == 1
    assert a.final_loss == pytest.approx(b.final_loss, abs=1e-6)
    with pytest.raises(FinemedError, match="needs a tokenizer dir"):
        run(_cfg(tiny_dir, med_jsonl, init="from_config", tokenizer=str(tmp_path / "missing")), tmp_path / "c")


def test_flash_attention_recipe_trains_on_sdpa_and_saves_in_the_training_dtype(tiny_dir, med_jsonl, tmp_path):
    """Defects 3 and 7: a recipe's ``attn_implementation: flash_attention_2`` without flash-attn (here: no CUDA
    either) used to be set after loading and fail at the first forward; it now trains on SDPA. ``save_dtype``
    bfloat16 writes bf16 safetensors (half of fp32's bytes), the default on a bf16 GPU run."""
    from safetensors import safe_open

    res = run(_cfg(tiny_dir, med_jsonl, max_steps=2, save_steps=100, attn_implementation="flash_attention_2",
                   save_dtype="bfloat16"), tmp_path / "run")
    assert res.steps == 2 and res.final_loss is not None
    with safe_open(str(tmp_path / "run" / "model" / "model.safetensors"), framework="pt") as fh:
        dtypes = {fh.get_slice(k).get_dtype() for k in fh.keys()}
    assert dtypes == {"BF16"}
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
