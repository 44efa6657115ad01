"""Safe loading (pickle refused), tiny models, student init parameter counts."""

from __future__ import annotations

import pytest
import torch

from finemed.core.config import FinemedError
from finemed.models.loading import UnsafeWeightsError, count_parameters, load_causal_lm
from finemed.models.student import init_student
from finemed.models.tiny import tiny_llama, tiny_tokenizer


def test_pickle_weights_are_refused_unless_allowed(tmp_path, tiny_model_dir):
    model, _ = load_causal_lm(tiny_model_dir)
    bad = tmp_path / "pickled"
    model.save_pretrained(bad, safe_serialization=False)
    for f in bad.glob("*.safetensors"):
        f.unlink()
    if not list(bad.glob("*.bin")):  # transformers 5 may always write safetensors: write the pickle ourselves
        torch.save(model.state_dict(), bad / "pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError, match="allow-pickle"):
        load_causal_lm(bad, with_tokenizer=False)
    loaded, _ = load_causal_lm(bad, allow_pickle=True, with_tokenizer=False)
    assert count_parameters(loaded) == count_parameters(model)


def test_bad_model_specs(tmp_path):
    with pytest.raises(FinemedError, match="not a registered name"):
        load_causal_lm(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinemedError, match="no config.json"):
        load_causal_lm(tmp_path / "empty")


def test_tiny_tokenizer_round_trips_and_has_chat_template():
    tok = tiny_tokenizer()
    text = "Der Patient erhielt 500 mg Ibuprofen."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text and len(tok) == 512
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False).startswith("<|im_start|>user")


def test_student_keeps_layers_and_counts_parameters():
    teacher = tiny_llama(num_layers=6, hidden_size=64)
    student, info = init_student(teacher, keep_every=2)
    assert info.kept_layers == [0, 2, 4] and student.config.num_hidden_layers == 3
    per_layer = sum(p.numel() for p in teacher.model.layers[0].parameters())
    assert info.teacher_parameters == count_parameters(teacher)
    assert info.teacher_parameters - info.student_parameters == 3 * per_layer
    assert info.reduction == pytest.approx(3 * per_layer / info.teacher_parameters, abs=1e-6)
    for si, ti in enumerate([0, 2, 4]):
        assert torch.equal(student.model.layers[si].mlp.up_proj.weight, teacher.model.layers[ti].mlp.up_proj.weight)
    assert torch.equal(student.model.embed_tokens.weight, teacher.model.embed_tokens.weight)
    ids = torch.randint(0, 512, (1, 8))
    assert student(ids).logits.shape == (1, 8, 512)
    s2, i2 = init_student(teacher, layers=[5, 0])
    assert i2.kept_layers == [0, 5]
    with pytest.raises(FinemedError):
        init_student(teacher, layers=[9])
    with pytest.raises(FinemedError):
        init_student(teacher, keep_every=2, layers=[0])


@pytest.mark.slow
def test_smollm2_student_half_layers(smollm2_dir):
    teacher, _ = load_causal_lm(smollm2_dir)
    _, info = init_student(teacher, keep_every=2)
    assert info.teacher_parameters == 134_515_008 and info.teacher_layers == 30
    assert len(info.kept_layers) == 15 and 0.3 < info.reduction < 0.5


def test_flash_attention_without_the_package_falls_back_to_sdpa_with_one_warning(tiny_model_dir, caplog):
    """Defect 3: attn_implementation goes to from_pretrained (CPT used to set it after loading, past transformers'
    check, so the first forward failed); without flash_attn (or CUDA) the load uses SDPA and warns once."""
    import logging

    import torch

    from finemed.models import loading

    loading._warn_sdpa_fallback.cache_clear()
    with caplog.at_level(logging.WARNING, logger="finemed.models.loading"):
        for _ in range(2):
            model, _tok = loading.load_causal_lm(tiny_model_dir, device="cpu",
                                                 attn_implementation="flash_attention_2")
    assert model.config._attn_implementation == "sdpa"
    assert sum("using sdpa instead" in r.getMessage() for r in caplog.records) == 1
    out = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(out).all()


def test_fsdp_training_load_stays_on_the_host_in_the_training_dtype(tiny_model_dir):
    """Defect 1: under FSDP rank 0 moved the whole fp32 model onto its GPU before sharding. A sharded training
    runtime on a GPU now loads bf16 weights and leaves them on the host (FSDP shards them onto the GPUs and upcasts
    each shard to fp32 master weights); no GPU is needed to check that nothing asks for one."""
    import torch

    from finemed.core.runtime import Runtime
    from finemed.models.loading import load_causal_lm

    rt = Runtime(device="cuda:0", compute="bfloat16", train=True, sharded=True)
    model, _ = load_causal_lm(tiny_model_dir, runtime=rt)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert Runtime(device="cuda:0", compute="bfloat16", train=True).weight_dtype == torch.float32  # DDP: autocast
    assert rt.save_dtype() == torch.bfloat16 and Runtime("cpu", "bfloat16", train=True).save_dtype() == torch.float32
