"""Bits per byte (bpb) and per-token loss of any causal LM on a text set: the project's yardstick.

bpb = Σ token NLL (nats) / (ln 2 × UTF-8 bytes of the texts). It is tokenizer-independent, so models with
different vocabularies (and a model before/after CPT, merging or KD) compare fairly. lm-eval computes the
same quantity only inside its own task harness (``loglikelihood_rolling``) and without a per-set API, so the
windowing is written here: each document is prefixed with one BOS/EOS token (so its first token is scored
too), split into windows of ``max_length`` tokens that advance by ``stride``; each token is scored once,
with up to ``max_length - stride`` tokens of left context (the HF perplexity recipe). Windows of all
documents are sorted by length and batched.
"""

from __future__ import annotations

import math
import random

from pydantic import BaseModel

from finemed.core.config import FinemedError
from finemed.core.logs import Counter
from finemed.core.runtime import Runtime, for_model

LN2 = math.log(2.0)


class BpbResult(BaseModel):
    bpb: float
    loss_per_token: float
    tokens: int
    bytes: int
    docs: int = 0
    doc_bits: list[float] = []  # per document: its NLL in bits (paired comparisons across models, eval.scoreboard)
    doc_bytes: list[int] = []  # per document: its UTF-8 bytes


def _windows(ids: list[int], max_length: int, stride: int) -> list[tuple[list[int], int]]:
    """Split ``ids`` (prefix token first) into (window, n_context) pairs; tokens after n_context are scored."""
    out, prev_end, begin = [], 1, 0  # ids[0] is the prefix token: never scored
    n = len(ids)
    while prev_end < n:
        end = min(begin + max_length, n)
        out.append((ids[begin:end], prev_end - begin))
        prev_end = end
        if end == n:
            break
        begin += stride
    return out


def compute_bpb(model, tokenizer, texts: list[str], *, max_length: int | None = None, stride: int | None = None,
                batch_size: int = 8, progress: bool = True, runtime: Runtime | None = None) -> BpbResult:
    """Bits per byte and mean token NLL of ``model`` on ``texts`` (empty texts are skipped)."""
    import torch

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise FinemedError("bpb: the text set is empty; pass a file with at least one non-empty text")
    limit = getattr(model.config, "max_position_embeddings", None) or 2048
    max_length = min(max_length or 1024, limit)
    stride = stride or max_length // 2
    if not 0 < stride <= max_length - 1 and max_length > 1:
        raise FinemedError(f"bpb: stride {stride} must be within 1..{max_length - 1}")
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise FinemedError("bpb: the tokenizer has neither a BOS nor an EOS token to start documents with")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    windows = [(*w, doc) for doc, ids in enumerate(encoded) for w in _windows([prefix] + list(ids), max_length, stride)]
    windows.sort(key=lambda w: len(w[0]), reverse=True)
    doc_nll = [0.0] * len(texts)
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    was_training = model.training
    model.eval()
    rt = runtime or for_model(model)
    with Counter("bpb", sum(len(w) for w, _, _ in windows), enabled=progress) as bar:
        for start in range(0, len(windows), batch_size):
            batch = windows[start:start + batch_size]
            width = max(len(w) for w, _, _ in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, (w, ctx, _) in enumerate(batch):
                input_ids[row, :len(w)] = torch.tensor(w)
                attention[row, :len(w)] = 1
                labels[row, ctx:len(w)] = torch.tensor(w[ctx:])
            input_ids, attention, labels = input_ids.to(device), attention.to(device), labels.to(device)
            with torch.no_grad(), rt.autocast():
                logits = model(input_ids=input_ids, attention_mask=attention).logits
            shift_logits = logits[:, :-1].float()
            shift_labels = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                                    shift_labels.reshape(-1), ignore_index=-100, reduction="none")
            per_row = nll.view(len(batch), -1).sum(dim=1).tolist()
            for (_, _, doc), row_nll in zip(batch, per_row):
                doc_nll[doc] += row_nll
            total_nll += sum(per_row)
            total_tokens += int((shift_labels != -100).sum().item())
            bar.advance(sum(len(w) for w, _, _ in batch))
    model.train(was_training)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return BpbResult(bpb=total_nll / (LN2 * n_bytes), loss_per_token=total_nll / max(total_tokens, 1),
                     tokens=total_tokens, bytes=n_bytes, docs=len(texts),
                     doc_bits=[round(n / LN2, 3) for n in doc_nll],
                     doc_bytes=[len(t.encode("utf-8")) for t in texts])


def subsample(texts: list[str], max_docs: int | None, max_chars: int | None, seed: int = 0) -> list[str]:
    """A seeded sample of at most ``max_docs`` texts and ``max_chars`` characters (first text always kept)."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    out, chars = [], 0
    for i in order:
        if max_docs is not None and len(out) >= max_docs:
            break
        if max_chars is not None and out and chars + len(texts[i]) > max_chars:
            continue
        out.append(texts[i])
        chars += len(texts[i])
    return out
