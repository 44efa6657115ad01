"""``finemed plan --simulate``: real model classes on fake tensors, a fake process group, FSDP memory tracking."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from finemed.core.config import FinemedError  # noqa: E402
from finemed.core.launch import LaunchConfig, accelerate_config  # noqa: E402
from finemed.orchestrate.simulate import phases as P  # noqa: E402
from finemed.orchestrate.simulate.fakes import fake_process_group  # noqa: E402

GIB = 2 ** 30


def tiny(kind: str):
    """A tiny model of a real transformers class (GPT-NeoX = Pythia, Qwen2), built on fake tensors."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if kind == "pythia":
        return GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                                num_attention_heads=4, vocab_size=512))
    return Qwen2ForCausalLM(Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=512))


def test_pythia_wraps_with_the_layer_class_the_launch_names():
    """Defect 2: the launch's FSDP unit for Pythia must be a class the model has (accelerate raises otherwise)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    layer_cls = accelerate_config(LaunchConfig(processes=2, strategy="fsdp"), "EleutherAI/pythia-1.4b",
                                  port=1)["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"]
    with FakeTensorMode():
        model = tiny("pythia")
        policy = P.wrap_policy(model, layer_cls, "kd")
        assert sum(bool(policy(m)) for m in model.modules()) == 2  # one unit per layer
        with pytest.raises(FinemedError, match="GPTNeoXDecoderLayer.*GPTNeoXLayer") as err:
            P.wrap_policy(model, "GPTNeoXDecoderLayer", "kd")
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("world", [2, 4])
def test_fsdp_step_shards_parameters_and_moments(world):
    """One FSDP step of a real Qwen2 class on fake tensors: each rank holds 1/world of the fp32 parameters, and
    the AdamW moments are twice its shard; no real memory is allocated."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with fake_process_group(world), FakeTensorMode(allow_non_fake_inputs=True):
        model = tiny("qwen2")
        full = P.model_bytes(model)
        policy = P.wrap_policy(model, "Qwen2DecoderLayer", "cpt")
        P.shard(model, policy, world, bf16=True)
        step = P.step_peak(model, batch=2, seq_len=32)
    params = sum(p.numel() for p in tiny("qwen2").parameters()) * 4
    assert abs(step["sharded_param"] - params / world) <= params * 0.02  # padding of uneven shards
    assert abs(step["opt"] - 2 * step["sharded_param"]) <= params * 0.02
    assert step["act"] > 0 and step["total"] >= step["sharded_param"] + step["opt"]
    assert full >= params


def test_eval_forward_counts_weights_and_activations():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        model = tiny("qwen2")
        small = P.eval_peak(model, batch=1, seq_len=16)
        big = P.eval_peak(model, batch=4, seq_len=64)
        weights = P.model_bytes(model)
    assert weights < small < big


TINY_RECIPE = """\
name: tiny-sim
stages:
  - name: cpt
    kind: train.cpt
    config:
      model: EleutherAI/pythia-160m
      seq_len: 64
      batch_size: 1
      eval_batch_size: 1
      eval_max_length: 64
      dtype: bfloat16
      launch: {processes: 2, strategy: fsdp, mixed_precision: bf16}
"""


def _finemed(*args: str, cwd):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-c", "from finemed.cli import main; main()", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_simulate_real_pythia_class_per_phase(tmp_path):
    """The stage's own load (train.cpt's run) of Pythia-160M's real config, 2 FSDP ranks: the table's figures."""
    from finemed.orchestrate.simulate.recipe import read_simulation, simulate_recipe

    (tmp_path / "r.yaml").write_text(TINY_RECIPE)
    sim = simulate_recipe(tmp_path / "r.yaml", gpu_gib=80, runs_dir=tmp_path / "runs")
    assert not sim.problems
    (stage,) = sim.stages
    phases = {p.phase: p for p in stage.phases}
    assert {"load", "wrap", "step", "eval", "gather", "save"} <= set(phases)
    params = 162_322_944  # Pythia-160M, untied embeddings
    assert phases["wrap"].gpu_bytes == pytest.approx(params * 4 / 2, rel=0.02)  # fp32 master shard per rank
    assert phases["step"].gpu_bytes > phases["wrap"].gpu_bytes * 3  # + grads + 2 AdamW moments + activations
    assert phases["gather"].host_bytes == pytest.approx(params * 4, rel=0.02)  # rank 0's full state, on the host
    root, now = tmp_path / "runs" / "tiny-sim", sim.config_hashes
    assert read_simulation(root, now) == {"cpt": round(stage.peak_gpu / GIB, 1)}
    assert read_simulation(root, {"cpt": "another config"}) == {}  # a changed stage shows no stale peak
    (root / "simulate.json").write_text("{not json")
    assert read_simulation(root, now) == {}  # unreadable: none, with a log line, no traceback


def test_simulate_refuses_one_process_over_the_device(tmp_path):
    """--set cpt.launch.processes=1: the unsharded step exceeds a 2 GiB device: exit 2, one line."""
    (tmp_path / "r.yaml").write_text(TINY_RECIPE)
    out = _finemed("plan", "r.yaml", "--simulate", "--gpu-gib", "2", "--set", "cpt.launch.processes=1",
                   "--runs-dir", "runs", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    err = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "over the device's 2 GiB" in err[0] and "cpt" in err[0]


@pytest.mark.slow
def test_simulate_refuses_24b_on_one_process(tmp_path):
    """The real Mistral-Small-24B config: one process cannot train it on an 80 GiB GPU."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "definemed-mistral-small-24b.yaml"
    out = _finemed("plan", str(recipe), "--simulate", "--set", "cpt.launch.processes=1", "--runs-dir",
                   str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    err = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "over the device's 80 GiB" in err[0]
