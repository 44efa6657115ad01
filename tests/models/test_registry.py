"""finemed.models.registry: hub downloads are pinned to a revision and never fetch Mistral's duplicate weights."""

from __future__ import annotations

import pytest

from finemed.core.config import FinemedError

MISTRAL_FILES = ["config.json", "model-00001-of-00003.safetensors", "model.safetensors.index.json",
                 "consolidated.safetensors", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                 "params.json", "pytorch_model.bin"]


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """``snapshot_download`` replaced by a recorder that returns a snapshot dir named after the commit."""
    import huggingface_hub

    calls = []

    def snapshot_download(repo_id, **kw):
        calls.append({"repo_id": repo_id, **kw})
        snap = tmp_path / repo_id.replace("/", "--") / "snapshots" / "0123abcd"
        snap.mkdir(parents=True, exist_ok=True)
        (snap / "config.json").write_text("{}")
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


def test_hub_download_pins_the_revision_and_skips_consolidated_weights(fake_hub):
    """Defect 8: snapshot_download had no revision (whatever main was that day) and its patterns also matched
    Mistral repos' consolidated.safetensors (the same 14-48 GB of weights a second time)."""
    from huggingface_hub.utils import filter_repo_objects

    from finemed.models.registry import resolve_model_path

    path = resolve_model_path("mistralai/Mistral-7B-Instruct-v0.3@0123abcd")
    call = fake_hub[-1]
    assert call["repo_id"] == "mistralai/Mistral-7B-Instruct-v0.3" and call["revision"] == "0123abcd"
    assert path.name == "0123abcd"
    kept = set(filter_repo_objects(MISTRAL_FILES, allow_patterns=call["allow_patterns"],
                                   ignore_patterns=call["ignore_patterns"]))
    assert "consolidated.safetensors" not in kept and "pytorch_model.bin" not in kept
    assert {"config.json", "model-00001-of-00003.safetensors", "tokenizer.json", "tokenizer.model"} <= kept
    resolve_model_path("Qwen/Qwen2.5-7B-Instruct", revision="feedbeef")  # the config field's way
    assert fake_hub[-1]["revision"] == "feedbeef"
    resolve_model_path("Qwen/Qwen2.5-7B-Instruct")
    assert fake_hub[-1]["revision"] == "main"
    with pytest.raises(FinemedError, match="revision given twice"):
        resolve_model_path("Qwen/Qwen2.5-7B-Instruct@aaaa", revision="bbbb")
