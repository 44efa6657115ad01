"""The paper's classifier kind: a transformer sequence classifier (xlm-roberta-base for real runs).

Trained with HF ``Trainer`` on (text, 0/1) pairs; scoring returns softmax P(label 1). Device and dtype come
from :func:`finemed.core.runtime.resolve` (training: fp32 weights with mixed precision via ``trainer_kwargs``;
scoring: the runtime's weight dtype and autocast). Tests use :func:`save_tiny_base`, a 2-layer
XLM-R-shaped model with the tiny bundled-text BPE. Tokenizers load through
:func:`finemed.models.loading.load_tokenizer` (``PreTrainedTokenizerFast`` when a tokenizer.json exists),
which avoids transformers 5's AutoTokenizer class swaps. This module imports torch: the stage modules
reach it through :func:`finemed.corpus.registry.heavy`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from finemed.core.artifacts import atomic_path
from finemed.core.logs import Counter, get_logger
from finemed.core.runtime import resolve
from finemed.models.loading import load_tokenizer
from finemed.models.tiny import tiny_tokenizer

log = get_logger(__name__)


def save_tiny_base(out: Path | str, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> Path:
    """A tiny random XLM-R-shaped sequence classifier + tokenizer dir (for tests)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=hidden_size, num_hidden_layers=num_layers,
                           num_attention_heads=2, intermediate_size=hidden_size * 2, max_position_embeddings=520,
                           pad_token_id=tok.pad_token_id, num_labels=2)
    model = XLMRobertaForSequenceClassification(cfg)
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _tokenizer(base: str):
    if Path(base).is_dir():
        return load_tokenizer(base)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def train_transformer(texts: list[str], labels: list[int], out: Path, cfg) -> Path:
    """Fine-tune ``cfg.base_model`` (an HF dir or hub id) as a 2-label classifier on ``cfg.device``; save to ``out``."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    rt = resolve(cfg.device, cfg.dtype, train=True)
    log.info("transformer classifier: %s on %s", cfg.base_model, rt.describe())
    tok = _tokenizer(cfg.base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(cfg.base_model, num_labels=2, use_safetensors=True)
    model.config.pad_token_id = tok.pad_token_id
    ds = Dataset.from_dict({"text": texts, "label": [int(y) for y in labels]})
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=cfg.max_length), batched=True,
                remove_columns=["text"])
    with atomic_path(out) as tmp:
        args = TrainingArguments(**rt.trainer_kwargs(), output_dir=str(tmp / "_trainer"),
                                 num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
                                 learning_rate=cfg.learning_rate, warmup_steps=0, weight_decay=0.01,
                                 logging_steps=50, save_strategy="no", report_to=[], seed=cfg.seed)
        Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok)).train()
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out)


class TransformerScorer:
    """P(label 1) from a saved sequence classifier, batched, under no_grad, on the runtime's device."""

    def __init__(self, model_dir: Path | str, max_length: int = 256, batch_size: int = 32,
                 device: str = "auto", dtype: str = "auto"):
        self.model_dir = str(model_dir)
        self.max_length = max_length
        self.batch_size = batch_size
        self.device, self.dtype = device, dtype
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from transformers import AutoModelForSequenceClassification

            rt = resolve(self.device, self.dtype)
            tok = load_tokenizer(self.model_dir)
            model = AutoModelForSequenceClassification.from_pretrained(self.model_dir, use_safetensors=True)
            model = model.to(device=rt.device, dtype=rt.weight_dtype).eval()
            self._loaded = (model, tok, rt)
        return self._loaded

    @property
    def runtime(self):
        return self._load()[2]

    def score(self, texts: list[str], progress: str | None = None) -> np.ndarray:
        """P(label 1) per text; ``progress`` names a bar (off for the small batches a datatrove step sends)."""
        import torch

        if not texts:
            return np.zeros(0)
        model, tok, rt = self._load()
        out = []
        with torch.no_grad(), rt.autocast(), Counter(progress or "", len(texts), enabled=bool(progress)) as bar:
            for i in range(0, len(texts), self.batch_size):
                enc = tok(texts[i:i + self.batch_size], truncation=True, max_length=self.max_length,
                          padding=True, return_tensors="pt").to(rt.device)
                logits = model(**enc).logits.float()
                out.append(torch.softmax(logits, dim=-1)[:, 1].cpu().numpy())
                bar.advance(len(texts[i:i + self.batch_size]))
        return np.concatenate(out)

    def __getstate__(self):
        return {**self.__dict__, "_loaded": None}
