"""Bundled architectures: parameter counts equal the published ones, tiny stand-ins keep class and vocabulary,
and the memory estimate adds up by hand."""

from __future__ import annotations

import pytest

from finemed.models import arch
from finemed.models.loading import load_causal_lm
from finemed.models.memory import GIB, OVERHEAD_BYTES, training_memory

# model cards: Qwen2.5-7B 7.61B, 3B 3.09B; Mistral-Small-24B 23.6B; Mistral-7B-v0.3 7.25B; Pythia-6.9b 6.86B
PUBLISHED = {"Qwen/Qwen2.5-7B-Instruct": 7_615_616_512, "Qwen/Qwen2.5-3B-Instruct": 3_085_938_688,
             "mistralai/Mistral-Small-24B-Instruct-2501": 23_572_403_200,
             "mistralai/Mistral-7B-Instruct-v0.3": 7_248_023_552, "EleutherAI/pythia-6.9b": 6_857_302_016}


@pytest.mark.parametrize("spec,count", sorted(PUBLISHED.items()))
def test_parameter_counts_match_published(spec, count):
    assert arch.parameter_counts(spec)["total"] == count


def test_padded_vocabularies_of_the_kd_pairs():
    widths = {s: arch.config_dict(s)["vocab_size"] for s in arch.bundled()}
    assert widths["Qwen/Qwen2.5-7B-Instruct"] == 152_064 and widths["Qwen/Qwen2.5-3B-Instruct"] == 151_936
    assert widths["EleutherAI/pythia-1.4b"] == 50_304 and widths["EleutherAI/pythia-6.9b"] == 50_432


@pytest.mark.parametrize("spec,cls", [("Qwen/Qwen2.5-7B-Instruct", "Qwen2ForCausalLM"),
                                      ("mistralai/Mistral-7B-Instruct-v0.3", "MistralForCausalLM"),
                                      ("EleutherAI/pythia-1.4b", "GPTNeoXForCausalLM")])
def test_tiny_standin_keeps_class_vocab_and_real_tokenizer(tmp_path, spec, cls):
    path = arch.tiny_standin(spec, tmp_path / "m", layers=2, hidden=32, heads=4)
    model, tok = load_causal_lm(path, device="cpu")
    assert type(model).__name__ == cls and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == arch.config_dict(spec)["vocab_size"]
    assert len(tok) > 30_000 and len(tok("Der Patient hat Fieber.")["input_ids"]) < 12  # a real BPE, not bytes


def test_unknown_model_is_one_line():
    from finemed.config import FinemedError

    with pytest.raises(FinemedError, match="not a bundled architecture"):
        arch.config_dict("org/unknown-model")


def test_training_memory_by_hand():
    p, layers, h, v, s, b = 1_000_000_000, 10, 1000, 50_000, 1000, 2
    ddp = training_memory(p, layers=layers, hidden=h, vocab=v, seq_len=s, micro_batch=b)
    acts = layers * 34 * s * b * h
    want = 16 * p + acts + 10 * s * b * v + OVERHEAD_BYTES
    assert ddp.total_gib == pytest.approx(want / GIB, abs=0.02)
    fsdp = training_memory(p, layers=layers, hidden=h, vocab=v, seq_len=s, micro_batch=b, processes=4,
                           strategy="fsdp", gradient_checkpointing=True)
    assert fsdp.weights_gib == pytest.approx((4 * p / 4 + 4 * p / layers) / GIB, abs=0.01)
    assert fsdp.optimizer_gib == pytest.approx(8 * p / 4 / GIB, abs=0.01) and fsdp.total_gib < ddp.total_gib / 2


def test_hub_id_offline_is_one_line_and_online_downloads_once(tmp_path, monkeypatch):
    import huggingface_hub

    from finemed.config import FinemedError
    from finemed.models import registry

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FinemedError, match="hub access is off.*hf download Qwen/Qwen2.5-7B-Instruct"):
        registry.resolve_model_path("Qwen/Qwen2.5-7B-Instruct")
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "config.json").write_text("{}")
    calls = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: calls.append((repo, kw)) or str(snap))
    assert registry.resolve_model_path("Qwen/Qwen2.5-7B-Instruct") == snap
    assert calls[0][0] == "Qwen/Qwen2.5-7B-Instruct" and "*.safetensors" in calls[0][1]["allow_patterns"]
