"""finemed.core.launch: when a stage launches, the accelerate config it writes (DDP/FSDP, multi-node from the env), the
memory refusal, and the planner numbers of train.cpt / train.distill."""

from __future__ import annotations

import pytest

from finemed.core.config import FinemedError
from finemed.core.launch import (
    LaunchConfig,
    accelerate_config,
    in_launched_process,
    needs_launch,
    write_accelerate_config,
)


def test_needs_launch_only_outside_a_launched_job(monkeypatch):
    for var in ("FINEMED_LAUNCHED", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert not needs_launch(LaunchConfig()) and not needs_launch(None)
    assert needs_launch(LaunchConfig(processes=2)) and needs_launch(LaunchConfig(machines=2))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert in_launched_process() and not needs_launch(LaunchConfig(processes=2))
    with pytest.raises(ValueError):
        LaunchConfig(strategy="deepspeed")


def test_ddp_and_fsdp_configs_load_in_accelerate(tmp_path, monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file

    for var in ("MASTER_ADDR", "MASTER_PORT", "FINEMED_MACHINE_RANK", "SLURM_NODEID", "NODE_RANK"):
        monkeypatch.delenv(var, raising=False)
    ddp = write_accelerate_config(tmp_path / "ddp.yaml", LaunchConfig(processes=2))
    cfg = load_config_from_file(str(ddp))
    assert str(cfg.distributed_type).endswith("MULTI_GPU") and cfg.num_processes == 2 and cfg.machine_rank == 0
    assert 1024 <= cfg.main_process_port < 65536
    fsdp = accelerate_config(LaunchConfig(processes=4, strategy="fsdp", mixed_precision="bf16"), layer_cls_model())
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert fsdp["fsdp_config"]["fsdp_cpu_ram_efficient_loading"] is True
    assert fsdp["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    assert fsdp["mixed_precision"] == "bf16"


def layer_cls_model() -> str:
    return "Qwen/Qwen2.5-7B-Instruct"  # a bundled architecture: its decoder layer class without weights


def test_multi_node_takes_rank_address_and_port_from_the_environment(monkeypatch):
    monkeypatch.delenv("FINEMED_MACHINE_RANK", raising=False)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(FinemedError, match="MASTER_ADDR"):
        accelerate_config(LaunchConfig(processes=8, machines=2))
    monkeypatch.setenv("MASTER_ADDR", "node-a")
    monkeypatch.setenv("MASTER_PORT", "29555")
    monkeypatch.setenv("SLURM_NODEID", "1")
    acc = accelerate_config(LaunchConfig(processes=8, machines=2, strategy="fsdp"), layer_cls_model())
    assert (acc["num_machines"], acc["num_processes"], acc["machine_rank"]) == (2, 16, 1)
    assert (acc["main_process_ip"], acc["main_process_port"]) == ("node-a", 29555)
    monkeypatch.setenv("FINEMED_MACHINE_RANK", "0")  # wins over SLURM_NODEID
    assert accelerate_config(LaunchConfig(processes=8, machines=2))["machine_rank"] == 0


def test_memory_check_refuses_with_one_line(monkeypatch):
    from finemed.core import training_plan

    monkeypatch.setattr(training_plan, "device_memory_gib", lambda device: 16.0)
    training_plan.check_memory("train.cpt", 7.9, "cpu", LaunchConfig(processes=2))
    with pytest.raises(FinemedError, match=r"train.cpt: estimated 9.0 GiB per process x 2 exceeds the 16.0 GiB"):
        training_plan.check_memory("train.cpt", 9.0, "cpu", LaunchConfig(processes=2))
    training_plan.check_memory("train.cpt", 9.0, "cuda:0", LaunchConfig(processes=2))  # one GPU per process


def test_device_memory_gib_on_cpu_is_the_ram():
    import os

    from finemed.core.runtime import device_memory_gib

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    assert device_memory_gib("cpu") == pytest.approx(ram)


def test_cpt_and_distill_planners_give_tokens_flops_memory_and_disk():
    from finemed.core import stages
    from finemed.models.compute import training_estimate
    from finemed.orchestrate.plan import PlanContext

    cpt = stages.get("train.cpt").config(model="Qwen/Qwen2.5-7B-Instruct", domain={"source": "hf:x/y"},
                                         seq_len=4096, batch_size=2, grad_accum=4, max_steps=1000,
                                         save_total_limit=2, launch={"processes": 8, "strategy": "fsdp"})
    est = stages.get_planner("train.cpt")(cpt, PlanContext())
    assert est["tokens"] == 1000 * 2 * 4 * 8 * 4096
    ref = training_estimate("Qwen/Qwen2.5-7B-Instruct", tokens=est["tokens"], seq_len=4096, micro_batch=2,
                            processes=8, strategy="fsdp")
    assert est["flops"] == ref.flops and est["memory_gib_per_process"] == ref.memory.total_gib
    assert est["memory"]["optimizer_gib"] == ref.memory.optimizer_gib
    assert est["disk_gib"] == pytest.approx(2 * ref.checkpoint_gib + ref.final_model_gib, abs=0.01)
    unknown = cpt.model_copy(update={"max_steps": -1})
    hinted = stages.get_planner("train.cpt")(unknown, PlanContext(hints={"cpt": {"tokens": 1.5e10}}))
    assert hinted["tokens"] == 1.5e10
    kd = stages.get("train.distill").config(teacher="Qwen/Qwen2.5-7B-Instruct", student="Qwen/Qwen2.5-3B-Instruct",
                                            steps=100, batch_size=4, seq_len=512, launch={"processes": 2})
    kd_est = stages.get_planner("train.distill")(kd, PlanContext())
    assert kd_est["tokens"] == 100 * 4 * 2 * 512 and kd_est["teacher_flops"] > 0
    assert kd_est["memory_gib_per_process"] > 30  # a 3B student in full fine-tuning under DDP


def test_stage_config_files_resolve_cache_and_data(tmp_path, monkeypatch):
    from finemed.data.registry import cache_dir
    from finemed.orchestrate.stage_cli import build_config

    monkeypatch.setenv("FINEMED_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cpt.yaml").write_text("model: ${cache}/models/Qwen2.5-7B-Instruct\nlaunch: {processes: 2}\n")
    cfg = build_config("train.cpt", tmp_path / "cpt.yaml", None)
    assert cfg.model == f"{cache_dir()}/models/Qwen2.5-7B-Instruct" and cfg.launch.world_size == 2
    (tmp_path / "bad.yaml").write_text("model: ${stage:fetch}/model\n")
    with pytest.raises(FinemedError, match="names no earlier stage"):
        build_config("train.cpt", tmp_path / "bad.yaml", None)


@pytest.mark.parametrize("model, layer", [("EleutherAI/pythia-1.4b", "GPTNeoXLayer"),
                                          ("Qwen/Qwen2.5-7B-Instruct", "Qwen2DecoderLayer"),
                                          ("mistralai/Mistral-Small-24B-Instruct-2501", "MistralDecoderLayer")])
def test_fsdp_wrap_unit_is_the_model_classs_own_no_split_module(model, layer):
    """Defect 2: the wrap class came from the architecture name (GPTNeoXDecoderLayer for Pythia, a class that
    transformers 5.24 does not build, so accelerate raised at prepare); it is now the class's _no_split_modules,
    and a model built from that config contains a module of that class."""
    import torch
    from accelerate.utils.dataclasses import get_module_class_from_name

    from finemed.core.launch import decoder_layer_class
    from finemed.models.arch import hf_config

    assert decoder_layer_class(model) == layer
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        built = AutoModelForCausalLM.from_config(hf_config(model, num_hidden_layers=1))
    assert get_module_class_from_name(built, layer) is not None


def test_fsdp_does_the_activation_checkpointing_when_asked():
    """Defect 6: under FSDP the accelerate config turns on FSDP's own activation checkpointing (the Trainer flag
    is then off, tests/cpt/test_trainer.py); it stays off unless asked."""
    launch = LaunchConfig(processes=2, strategy="fsdp")
    assert accelerate_config(launch, layer_cls_model(), activation_checkpointing=True)[
        "fsdp_config"]["fsdp_activation_checkpointing"] is True
    assert accelerate_config(launch, layer_cls_model())["fsdp_config"]["fsdp_activation_checkpointing"] is False


def test_init_process_group_gets_the_launch_timeout(monkeypatch):
    """Defect 5: rank 0 builds the KD cache while the others wait; init_process_group got no timeout, so NCCL's
    10-minute default, not the Trainer's ddp_timeout, decided whether the job survived."""
    from datetime import timedelta

    import accelerate

    from finemed.core import launch as L

    seen = {}

    class FakeState:
        def __init__(self, cpu=False, **kw):
            seen.update(kw, cpu=cpu)

    monkeypatch.setattr(accelerate, "PartialState", FakeState)
    monkeypatch.setenv("WORLD_SIZE", "2")
    L.init_distributed(LaunchConfig(processes=2).timeout_s)
    assert seen["timeout"] == timedelta(seconds=7200)
    L.init_distributed(900)
    assert seen["timeout"] == timedelta(seconds=900)
