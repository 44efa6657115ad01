"""``finemed run RECIPE --rehearse``: the same recipe, end to end, on CPU in seconds per stage.

A real-scale recipe names hub models, hub data and judge endpoints that these machines cannot reach and whose
size no CPU can train. A rehearsal keeps every key, the stage chain, the launches and the cache behaviour, and
swaps only what cannot run here:

- a model id with a bundled architecture (``Qwen/Qwen2.5-7B-Instruct``, ``mistralai/...``, ``EleutherAI/pythia-*``)
  → a tiny random stand-in of the same class and vocabulary, with the family's real tokenizer
  (:func:`finemed.models.arch.tiny_standin`), built once under ``$FINEMED_CACHE/rehearsal/``;
- an encoder hub id a classifier fine-tunes (``FacebookAI/xlm-roberta-base``) → a tiny random XLM-R of the same
  class (:func:`tiny_encoder`);
- an OpenAI-compatible endpoint (``http(s)://HOST/v1#MODEL``) → ``local:`` + a tiny chat model;
- hub or object-store data (``hf:``, ``hf://``, ``s3://``, ``gs://``) → a small FineWeb2-schema dev input (2 shards,
  :func:`rehearsal_input`) for a corpus ``input``, ``builtin:medical`` for any other text source;
- then each stage's own ``rehearse:`` mapping in the recipe (dotted keys, like ``--set``) shrinks steps and limits.

Every replacement is listed before the run starts, so a reader sees what was not exercised.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from finemed.core.config import apply_overrides
from finemed.corpus.sample_input import write_sample_input
from finemed.data.registry import cache_dir
from finemed.models import arch
from finemed.models.tiny import save_tiny, tiny_tokenizer

ENDPOINT = re.compile(r"^https?://[^\s#]+/v1(#.*)?$")
REMOTE_DATA = ("hf:", "hf://", "s3://", "gs://", "az://")
STANDIN = {"layers": 2, "hidden": 64, "heads": 4}
# encoders the corpus classifier fine-tunes; their stand-in is a tiny XLM-R sequence classifier
ENCODERS = ("FacebookAI/xlm-roberta-base", "FacebookAI/xlm-roberta-large", "xlm-roberta-base", "xlm-roberta-large")


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "--", spec)


def standin_dir(spec: str) -> Path:
    """The tiny stand-in of a bundled architecture, built once."""
    out = cache_dir() / "rehearsal" / _slug(spec)
    if not (out / "config.json").is_file():
        arch.tiny_standin(spec, out, **STANDIN)
    _ensure_eos(out)
    return out


def _ensure_eos(model_dir: Path) -> None:
    """A tokenizer built from a bare ``tokenizer.json`` (GPT-NeoX) names no EOS; take it from the model config."""
    tok_cfg = model_dir / "tokenizer_config.json"
    if not tok_cfg.is_file() or json.loads(tok_cfg.read_text(encoding="utf-8")).get("eos_token"):
        return
    eos_id = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("eos_token_id")
    if not isinstance(eos_id, int):
        return
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.eos_token = tok.convert_ids_to_tokens(eos_id)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.save_pretrained(str(model_dir))


def tiny_chat_model() -> Path:
    out = cache_dir() / "rehearsal" / "tiny-chat"
    if not (out / "config.json").is_file():
        save_tiny(out)
    return out


def tiny_encoder() -> Path:
    """A tiny random XLM-R sequence classifier with the tiny tokenizer, built once."""
    out = cache_dir() / "rehearsal" / "tiny-xlm-roberta"
    if not (out / "config.json").is_file():
        import torch
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

        torch.manual_seed(0)
        tok = tiny_tokenizer()
        cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=520, pad_token_id=tok.pad_token_id,
                               num_labels=2)
        XLMRobertaForSequenceClassification(cfg).save_pretrained(out)
        tok.save_pretrained(out)
    return out


def rehearsal_input() -> Path:
    """The dev input at a rehearsal's size (2 shards, few general-German and non-German docs), built once."""
    out = cache_dir() / "rehearsal" / "dev-input-small"
    if not out.is_dir():
        write_sample_input(out, shards=2, n_fortune_docs=120, non_german_per_lang=2)
    return out


def _swap(key: str, value: str) -> str | None:
    if value in arch.bundled():
        return str(standin_dir(value))
    if value in ENCODERS:
        return str(tiny_encoder())
    if ENDPOINT.match(value):
        return f"local:{tiny_chat_model()}"
    if value.startswith(REMOTE_DATA):
        return str(rehearsal_input()) if key.split(".")[-1] == "input" else "builtin:medical"
    return None


def substitute(config: Any, prefix: str = "") -> tuple[Any, list[tuple[str, str, str]]]:
    """The config with every unreachable model, endpoint and data source swapped; and the (key, old, new) list."""
    swaps: list[tuple[str, str, str]] = []
    if isinstance(config, str):
        new = _swap(prefix, config)
        if new is not None:
            swaps.append((prefix, config, new))
            return new, swaps
        return config, swaps
    if isinstance(config, dict):
        out = {}
        for k, v in config.items():
            out[k], more = substitute(v, f"{prefix}.{k}" if prefix else str(k))
            swaps += more
        return out, swaps
    if isinstance(config, list):
        items = []
        for i, v in enumerate(config):
            new, more = substitute(v, f"{prefix}[{i}]")
            items.append(new)
            swaps += more
        return items, swaps
    return config, swaps


def rehearse_config(stage: str, config: dict, overrides: dict[str, Any]) -> tuple[dict, list[tuple[str, str, str]]]:
    """One stage's rehearsal config: substitutions first, then the recipe's ``rehearse:`` overrides."""
    new, swaps = substitute(config)
    items = [f"{k}={_yaml(v)}" for k, v in overrides.items()]
    apply_overrides(new, items, source=f"stages.{stage}.rehearse")
    swaps += [(k, "(recipe value)", _yaml(v)) for k, v in overrides.items()]
    return new, swaps


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
