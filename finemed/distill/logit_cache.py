"""Offline teacher logits: top-k ids and logits per token, plus the remaining mass, in sharded safetensors.

The teacher runs once (stage ``train.cache_logits``: ``finemed train distill cache-logits``); every epoch and
every student that shares its tokenizer then reads the cache instead of running the teacher. Layout of a cache dir::

    plan.json                 what is being cached (k, temperature, dtype, teacher, data fingerprint)
    shard-00000.safetensors   input_ids, attention_mask, labels, topk_ids, topk_values, rest_mass
    shard-00000.json          the shard's sha256, written after the shard: a finished shard
    index.json                written last: the cache is complete

Why hand-written: neither TRL nor transformers stores sparse teacher logits (TRL's offline path keeps full
logits in memory or recomputes them). Resume: a rerun with the same plan skips every shard whose sidecar and
sha256 check out, so a crash midway never recomputes finished shards. Reads verify the sha256, so a truncated
or altered shard is an error that names the file, never silently wrong targets.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel

from finemed.core.artifacts import atomic_path, atomic_write_json, read_json
from finemed.core.config import FinemedError
from finemed.core.logs import Counter
from finemed.core.runtime import Runtime, for_model
from finemed.distill.losses import TopKTeacher

FORMAT = "finemed-topk-v1"
VALUE_DTYPES = ("float16", "bfloat16", "float32")  # torch dtype names for the cached top-k values

if TYPE_CHECKING:
    import torch


class CachePlan(BaseModel):
    format: str = FORMAT
    k: int
    temperature: float = 1.0
    value_dtype: str = "float16"
    vocab_size: int
    seq_len: int
    num_sequences: int
    shard_size: int
    teacher: str = ""
    data_sha256: str


class CacheReport(BaseModel):
    path: str
    shards: int
    computed_shards: int
    reused_shards: int
    tokens: int
    bytes: int
    bytes_per_token: float
    k: int
    value_dtype: str


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def data_fingerprint(input_ids: torch.Tensor, labels: torch.Tensor) -> str:
    import torch

    h = hashlib.sha256()
    h.update(input_ids.to(torch.int64).contiguous().numpy().tobytes())
    h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def _shard_done(out: Path, i: int) -> bool:
    side, shard = out / f"shard-{i:05d}.json", out / _shard_name(i)
    if not (side.is_file() and shard.is_file()):
        return False
    try:
        return read_json(side).get("sha256") == _sha256(shard)
    except Exception:
        return False


def teacher_topk(teacher, input_ids: torch.Tensor, attention_mask: torch.Tensor, k: int, temperature: float = 1.0,
                 runtime: Runtime | None = None, vocab: int | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                                                    torch.Tensor]:
    """One teacher forward (under ``runtime``'s autocast) → (top-k ids, top-k raw logits, remaining probability
    mass at ``temperature``), over the first ``vocab`` logits (the width shared with a student padded otherwise)."""
    import torch

    device = next(teacher.parameters()).device
    rt = runtime or for_model(teacher)
    with torch.no_grad(), rt.autocast():
        logits = teacher(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
    logits = logits.float() if vocab is None else logits[..., :vocab].float()
    if k > logits.size(-1):
        raise FinemedError(f"top-k cache: k={k} is larger than the teacher vocab ({logits.size(-1)}); "
                           f"choose k <= {logits.size(-1)}")
    values, ids = logits.topk(k, dim=-1)
    log_p = torch.log_softmax(logits / temperature, dim=-1)
    rest = log_p.scatter(-1, ids, float("-inf")).logsumexp(-1).exp()  # exact; 0 when k = vocab
    return ids, values, rest


def _write_shard(out: Path, s: int, teacher, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 labels: torch.Tensor, plan: CachePlan, id_dtype: torch.dtype, batch_size: int,
                 runtime: Runtime | None) -> None:
    """Run the teacher over shard ``s``'s rows and write the shard, then its sha256 sidecar."""
    import torch
    from safetensors.torch import save_file

    lo, hi = s * plan.shard_size, min((s + 1) * plan.shard_size, plan.num_sequences)
    parts = [teacher_topk(teacher, input_ids[b:min(b + batch_size, hi)], attention_mask[b:min(b + batch_size, hi)],
                          plan.k, plan.temperature, runtime, plan.vocab_size) for b in range(lo, hi, batch_size)]
    tensors = {
        "input_ids": input_ids[lo:hi].to(torch.int32).contiguous(),
        "attention_mask": attention_mask[lo:hi].to(torch.uint8).contiguous(),
        "labels": labels[lo:hi].to(torch.int32).contiguous(),
        "topk_ids": torch.cat([p[0] for p in parts]).to(id_dtype).contiguous(),
        "topk_values": torch.cat([p[1] for p in parts]).to(getattr(torch, plan.value_dtype)).contiguous(),
        "rest_mass": torch.cat([p[2] for p in parts]).to(torch.float32).contiguous(),
    }
    with atomic_path(out / _shard_name(s)) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "shard": str(s)})
    atomic_write_json(out / f"shard-{s:05d}.json", {"shard": s, "rows": [lo, hi],
                                                     "sha256": _sha256(out / _shard_name(s))})


def build_cache(teacher, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, out: Path | str,
                *, k: int = 32, temperature: float = 1.0, value_dtype: str = "float16", shard_size: int = 64,
                batch_size: int = 8, runtime: Runtime | None = None, teacher_name: str = "",
                on_shard: Callable[[int], None] | None = None, vocab: int | None = None) -> CacheReport:
    """Run the teacher over ``input_ids`` (N, L) once and write the top-k cache to ``out``; resumable.

    ``vocab``: keep only the first ``vocab`` logits (a student whose padded width is smaller). A cache already in
    ``out`` that differs only by a wider ``vocab_size`` (written for the teacher alone, e.g. 152,064 for a
    151,936-wide student) is reused at its width: the KD step slices it to ``vocab`` (:meth:`TopKTeacher.sliced`)."""
    import torch

    out = Path(out)
    width = int(teacher.get_output_embeddings().weight.shape[0])
    vocab = vocab or width
    if not 1 <= k <= width:
        raise FinemedError(f"top-k cache: k={k} must be within 1..{width} (the teacher vocab size)")
    if value_dtype not in VALUE_DTYPES:
        raise FinemedError(f"top-k cache: value_dtype {value_dtype!r} unknown; use one of {', '.join(VALUE_DTYPES)}")
    if input_ids.ndim != 2 or input_ids.shape != labels.shape or input_ids.shape != attention_mask.shape:
        raise FinemedError("top-k cache: input_ids, attention_mask and labels must all be (sequences, length)")
    plan = CachePlan(k=k, temperature=temperature, value_dtype=value_dtype, vocab_size=vocab,
                     seq_len=input_ids.size(1), num_sequences=input_ids.size(0), shard_size=shard_size,
                     teacher=teacher_name, data_sha256=data_fingerprint(input_ids, labels))
    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "plan.json"
    if plan_path.is_file():
        old = read_json(plan_path)
        diff = sorted(key for key in plan.model_dump() if old.get(key) != plan.model_dump()[key])
        if diff == ["vocab_size"] and int(old["vocab_size"]) > vocab:
            # the same teacher and data at the teacher's full (padded) width, asked for at a student's narrower one:
            # reuse it (and finish it at its own width); readers slice it (TopKTeacher.sliced, the KD trainer)
            plan = CachePlan.model_validate(old)
        elif diff:
            raise FinemedError(f"{out}: holds a cache for a different plan (differs in {', '.join(diff)}); "
                               f"use a new output dir or delete this one")
    elif k > vocab:
        raise FinemedError(f"top-k cache: k={k} must be within 1..{vocab} (the vocab shared with the student)")
    else:
        atomic_write_json(plan_path, plan.model_dump())
    id_dtype = torch.uint16 if plan.vocab_size <= 65536 else torch.int32
    n_shards = (plan.num_sequences + shard_size - 1) // shard_size
    computed = 0
    teacher.eval()
    todo = [s for s in range(n_shards) if not _shard_done(out, s)]
    reused = n_shards - len(todo)
    with Counter("teacher top-k shards", len(todo)) as bar:
        for s in todo:
            _write_shard(out, s, teacher, input_ids, attention_mask, labels, plan, id_dtype, batch_size, runtime)
            computed += 1
            bar.advance()
            if on_shard is not None:
                on_shard(s)
    shards = [{"file": _shard_name(s), "rows": [s * shard_size, min((s + 1) * shard_size, plan.num_sequences)],
               "sha256": read_json(out / f"shard-{s:05d}.json")["sha256"]} for s in range(n_shards)]
    size = sum((out / _shard_name(s)).stat().st_size for s in range(n_shards))
    tokens = plan.num_sequences * plan.seq_len
    report = CacheReport(path=str(out), shards=n_shards, computed_shards=computed, reused_shards=reused, tokens=tokens,
                         bytes=size, bytes_per_token=round(size / max(tokens, 1), 2), k=k, value_dtype=value_dtype)
    atomic_write_json(out / "index.json", {"plan": plan.model_dump(), "shards": shards, "report": report.model_dump()})
    return report


class LogitCache:
    """A finished cache as a map-style dataset (``len``, ``[i]``: what torch's DataLoader and the HF Trainer
    take); each item carries the sequence and its sparse teacher."""

    def __init__(self, path: Path | str, verify: bool = True):
        self.dir = Path(path)
        index = self.dir / "index.json"
        if not index.is_file():
            hint = ("its shards are unfinished; rerun cache-logits with the same inputs to resume"
                    if (self.dir / "plan.json").is_file() else "run `finemed train distill cache-logits` first")
            raise FinemedError(f"{self.dir}: not a complete logit cache (no index.json); {hint}")
        data = read_json(index)
        self.plan = CachePlan.model_validate(data["plan"])
        self.shards = data["shards"]
        self.report = data.get("report", {})
        self.verify = verify
        self._loaded: dict[int, dict[str, torch.Tensor]] = {}
        for s in self.shards:
            if not (self.dir / s["file"]).is_file():
                rows = f"{s['rows'][0]}..{s['rows'][1]}"
                raise FinemedError(f"{self.dir / s['file']}: missing logits shard (rows {rows}); "
                                   f"rerun cache-logits with the same inputs to rebuild it")

    def __len__(self) -> int:
        return self.plan.num_sequences

    def shard(self, i: int) -> dict[str, torch.Tensor]:
        if i not in self._loaded:
            from safetensors.torch import load_file

            entry = self.shards[i]
            path = self.dir / entry["file"]
            if not path.is_file():
                raise FinemedError(f"{path}: missing logits shard; rerun cache-logits with the same inputs")
            if self.verify and _sha256(path) != entry["sha256"]:
                raise FinemedError(f"{path}: corrupted logits shard (sha256 mismatch); delete it and rerun "
                                   f"cache-logits with the same inputs to recompute it")
            try:
                tensors = load_file(str(path))
            except Exception as err:
                raise FinemedError(f"{path}: corrupted logits shard ({type(err).__name__}); delete it and rerun "
                                   f"cache-logits to recompute it") from None
            expected = {"input_ids", "attention_mask", "labels", "topk_ids", "topk_values", "rest_mass"}
            if set(tensors) != expected or tensors["topk_ids"].shape[-1] != self.plan.k:
                raise FinemedError(f"{path}: corrupted logits shard (unexpected tensors or k); rerun cache-logits")
            self._loaded[i] = tensors
        return self._loaded[i]

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        import torch

        if not 0 <= idx < len(self):
            raise IndexError(idx)
        s = idx // self.plan.shard_size
        t = self.shard(s)
        j = idx - s * self.plan.shard_size
        return {"input_ids": t["input_ids"][j].long(), "attention_mask": t["attention_mask"][j].long(),
                "labels": t["labels"][j].long(), "teacher_ids": t["topk_ids"][j].to(torch.int64),
                "teacher_values": t["topk_values"][j].float(), "teacher_rest": t["rest_mass"][j]}

    def teacher(self, batch: dict[str, torch.Tensor]) -> TopKTeacher:
        return TopKTeacher(batch["teacher_ids"], batch["teacher_values"], batch["teacher_rest"], self.plan.temperature)
