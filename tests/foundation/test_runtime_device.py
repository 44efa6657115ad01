"""With a fake CUDA device, every model-loading stage asks the runtime module for its device: the model is moved to
``cuda:0`` (intercepted here), never kept on a CPU that the stage chose on its own. Also the policy itself."""

from __future__ import annotations

import pytest
import torch

from finemed.core import runtime, stages, training_plan
from finemed.core.config import FinemedError


class MovedToCuda(Exception):
    pass


@pytest.fixture
def fake_cuda(monkeypatch):
    moves: list[str] = []
    real_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        dev = kwargs.get("device", args[0] if args else None)
        if dev is not None and "cuda" in str(dev):
            moves.append(str(dev))
            raise MovedToCuda(str(dev))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(training_plan, "device_memory_gib", lambda device: 1e6)  # no real GPU to size
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.nn.Module, "to", to)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return moves


def test_policy_auto_picks_cuda_bf16_weights_for_inference_fp32_for_training(fake_cuda):
    inference = runtime.resolve("auto", "auto")
    assert inference.device == "cuda:0" and inference.weight_dtype == torch.bfloat16
    assert inference.autocast_dtype is None
    training = runtime.resolve("auto", "auto", train=True)
    assert training.weight_dtype == torch.float32 and training.autocast_dtype == torch.bfloat16
    assert training.trainer_kwargs() == {"use_cpu": False, "bf16": True, "fp16": False}


def test_policy_on_this_cpu():
    rt = runtime.resolve("cpu", "auto")
    assert rt.device == "cpu" and rt.weight_dtype == torch.float32
    assert rt.compute == ("bfloat16" if runtime.cpu_bf16_supported() else "float32")
    if not torch.cuda.is_available():
        with pytest.raises(FinemedError, match="CUDA is not available"):
            runtime.resolve("cuda", "auto")


def _configs(tiny: str, tmp) -> dict[str, dict]:
    """A minimal config of every model-loading stage kind, all with device/dtype left at auto."""
    answers = tmp / "answers.jsonl"
    answers.write_text('{"model": "a", "prompt_id": "1", "prompt": "Was ist Fieber?", "answer": "Hohe Temperatur."}\n'
                       '{"model": "b", "prompt_id": "1", "prompt": "Was ist Fieber?", "answer": "Weiss nicht."}\n')
    return {
        "eval.bpb": {"model": tiny, "sets": {"m": "builtin:grascco"}, "max_docs": 1},
        "eval.qa": {"model": tiny, "tasks": ["xquad_de_0shot"], "limit": 1},
        "eval.mcq": {"model": tiny, "limit": 1},
        "eval.generate": {"models": [tiny], "prompts": "builtin:germediq", "limit": 1},
        "eval.pairwise": {"answers": str(answers), "judge": f"local:{tiny}"},
        "merge.sweep": {"base": tiny, "cpt": tiny, "t_values": [0.5], "domain": {"source": "builtin:grascco"},
                        "general_eval": {}},
        "corpus.annotate": {"llm": f"local:{tiny}", "sample": 4, "dev_size": 2, "label_field": "medical"},
        "train.cpt": {"model": tiny, "domain": {"source": "builtin:grascco"}, "max_steps": 1, "seq_len": 32},
        "train.distill": {"teacher": tiny, "steps": 1, "seq_len": 32},
        "train.cache_logits": {"teacher": tiny, "seq_len": 32},
    }


@pytest.mark.parametrize("kind", ["eval.bpb", "eval.qa", "eval.mcq", "eval.generate", "eval.pairwise", "merge.sweep",
                                  "corpus.annotate", "train.cpt", "train.distill", "train.cache_logits"])
def test_every_model_loading_stage_asks_the_runtime(kind, tiny_model_dir, tmp_path, fake_cuda):
    sdef = stages.get(kind)
    cfg = sdef.config.model_validate(_configs(str(tiny_model_dir), tmp_path)[kind])
    with pytest.raises(MovedToCuda):
        sdef.fn(cfg, tmp_path / "run")
    assert fake_cuda and fake_cuda[0].startswith("cuda")
