"""Architectures of the models the papers use, known without their weights: the real ``config.json`` values of
Qwen2.5 (1.5B/3B/7B Instruct), Mistral-7B-Instruct-v0.3, Mistral-Small-24B-Instruct-2501 and Pythia, bundled
in ``arch_configs/`` (these machines reach no hub).

They serve three needs:

- ``finemed plan`` counts parameters (on the meta device: no memory) and sizes FLOPs and memory;
- rehearsals build tiny stand-ins of the same architecture class and vocabulary (:func:`tiny_standin`), with the
  real tokenizer from the bundled ``tokenizers/`` where there is one;
- KD tests build pairs whose logit widths differ by padding only (Qwen2.5-7B 152,064 vs 3B 151,936).

A local model dir always wins over the bundled config: ``config_dict(spec)`` reads its ``config.json``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from finemed.core.config import FinemedError
from finemed.data.registry import bundled_path
from finemed.models.loading import load_tokenizer, save_model
from finemed.models.registry import cached_path, is_registered
from finemed.models.tiny import CHAT_TEMPLATE

ARCH_DIR = Path(__file__).parent / "arch_configs"
# the bundled tokenizer that each family uses (``shared/data/tokenizers``)
FAMILY_TOKENIZER = {"qwen2": "qwen2.5", "mistral": "mistral-7b-v0.3/tokenizer.model", "gpt_neox": "gpt-neox-20b"}


@lru_cache(maxsize=1)
def bundled() -> dict[str, dict[str, Any]]:
    """Hub id → config dict, for every bundled architecture."""
    out = {}
    for path in sorted(ARCH_DIR.glob("*.json")):
        cfg = json.loads(path.read_text(encoding="utf-8"))
        out[cfg["_name_or_path"]] = cfg
    return out


def config_dict(spec: str) -> dict[str, Any]:
    """The config of a local model dir, a fetched registered model or a bundled hub id."""
    local = cached_path(spec) if is_registered(spec) else Path(spec).expanduser()
    if local is not None and (local / "config.json").is_file():
        return json.loads((local / "config.json").read_text(encoding="utf-8"))
    if spec in bundled():
        return dict(bundled()[spec])
    raise FinemedError(f"model {spec!r}: no local config.json and not a bundled architecture "
                       f"({', '.join(bundled())}); pass a local HF model dir")


def hf_config(spec: str, **overrides: Any):
    """A transformers config for ``spec``, with ``overrides`` applied before it is built (so derived fields
    such as ``layer_types`` follow them)."""
    from transformers import AutoConfig

    cfg = {k: v for k, v in config_dict(spec).items() if not k.startswith("_")}
    cfg.update(overrides)
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


def parameter_counts(spec: str) -> dict[str, int]:
    """Total, embedding (input + untied output) and non-embedding parameters, counted on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config(spec))
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    out = model.get_output_embeddings()
    if out is not None and out.weight is not model.get_input_embeddings().weight:
        emb += out.weight.numel()
    return {"total": total, "embedding": emb, "non_embedding": total - emb}


def _tokenizer(model_type: str):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    rel = FAMILY_TOKENIZER.get(model_type)
    if rel is None:
        return None
    path = bundled_path(f"tokenizers/{rel}")
    if path.name == "tokenizer.model":  # a SentencePiece model: transformers converts it from a dir
        import shutil
        import tempfile

        from transformers import LlamaTokenizerFast

        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(path, Path(tmp) / "tokenizer.model")
            return LlamaTokenizerFast.from_pretrained(tmp)
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    return AutoTokenizer.from_pretrained(str(path))


def tiny_standin(spec: str, out: Path | str, *, layers: int = 2, hidden: int = 64, heads: int = 4,
                 vocab_size: int | None = None, seed: int = 0) -> Path:
    """A randomly initialised model of ``spec``'s architecture class and vocabulary, a few layers deep and narrow,
    saved with the family's real tokenizer (where bundled) as an HF safetensors dir."""
    import torch
    from transformers import AutoModelForCausalLM


    real = config_dict(spec)
    shrink: dict[str, Any] = {"num_hidden_layers": layers, "hidden_size": hidden, "num_attention_heads": heads,
                              "intermediate_size": 2 * hidden, "max_position_embeddings": 512}
    if "num_key_value_heads" in real:
        shrink["num_key_value_heads"] = max(1, heads * real["num_key_value_heads"] // real["num_attention_heads"])
    if "head_dim" in real:
        shrink["head_dim"] = hidden // heads
    if "max_window_layers" in real:
        shrink["max_window_layers"] = layers
    if vocab_size is not None:
        shrink["vocab_size"] = vocab_size
    cfg = hf_config(spec, **shrink)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    tok = _tokenizer(cfg.model_type)
    if tok is not None:
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if not tok.chat_template:

            tok.chat_template = CHAT_TEMPLATE
    model.config.name_or_path = f"tiny-standin-of-{spec}"
    return save_model(model, tok, out)


def from_scratch(spec: str, tokenizer: str | None, overrides: dict[str, Any], seed: int, runtime):
    """``(model, tokenizer)``: a randomly initialised (``seed``) model of ``spec``'s architecture with ``overrides``,
    sized to ``tokenizer``'s vocabulary (a tokenizer dir; default ``spec``'s own), its special-token ids taken from
    that tokenizer. ``train.cpt`` uses it for ``init: from_config`` (from-scratch LMs, one per tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM

    tok_dir = Path(tokenizer).expanduser() if tokenizer else (cached_path(spec) if is_registered(spec)
                                                             else Path(spec).expanduser())
    if tok_dir is None or not tok_dir.is_dir():
        raise FinemedError(f"init: from_config needs a tokenizer dir; {tokenizer or spec!r} is not one. "
                           f"Set tokenizer: to a dir written by tokenizer.train or an HF model dir")
    tok = load_tokenizer(tok_dir)
    if tok.eos_token_id is None:
        raise FinemedError(f"tokenizer {tok_dir}: no EOS token; from-scratch training packs documents with one. "
                           f"Train it with an EOS special token")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    ids = {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
           "pad_token_id": tok.pad_token_id}
    cfg = hf_config(spec, **{**overrides, **ids})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=runtime.weight_dtype)
    model.config.name_or_path = f"from-scratch-{cfg.model_type}"
    return model.to(runtime.load_device).eval(), tok
