"""``train.distill``: teacher → student logit KD (online, offline top-k, on-policy), vs a CE-only student.

The stage: load the teacher; build the student (layer-dropped from the teacher by
:func:`finemed.models.student.init_student`, or any HF model sharing the tokenizer); build KD data (packed
plain text and QA-format prompts with answer-only labels, split by article); train the student with KD and,
for comparison, a copy with CE only for the same steps and data order; then report held-out bpb (teacher,
KD, CE), QA EM/F1/ROUGE-L on held-out XQuAD-style questions, retention and the parameter reduction.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from pydantic import Field, model_validator

from finemed.artifacts import atomic_write_json
from finemed.config import FinemedError, StageConfig


class DistillConfig(StageConfig):
    teacher: str = "smollm2"
    student: str | None = None  # an HF dir sharing the teacher's tokenizer; else layer-dropped from the teacher
    keep_every: int | None = 2
    layers: list[int] | None = None  # takes precedence over keep_every
    mode: Literal["online", "offline", "on_policy"] = "offline"
    divergence: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: float = Field(0.5, ge=0.0, le=1.0)
    temperature: float = Field(1.0, gt=0.0)
    alpha: float = Field(0.0, ge=0.0, le=1.0)  # weight of CE in the KD loss
    top_k: int = Field(64, ge=1)
    cache_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    cache_dir: str | None = None  # reuse (or build) the top-k cache here; default RUN_DIR/logits
    teacher_dtype: Literal["float32", "bfloat16"] = "float32"  # online teacher precision
    text: list[str] = ["builtin:xquad_en"]  # plain-text KD sources (builtin:NAME or files), held out by hash
    qa: str | None = "xquad.en"  # SQuAD-format file or bundled name for QA-format KD; split by title
    qa_shots: list[int] = [0, 1]
    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_train_sequences: int | None = None  # default steps × batch_size: one epoch, all the cache needs
    qa_fraction: float = Field(0.25, ge=0.0, le=1.0)  # share of QA-format sequences under that cap
    seq_len: int = Field(256, ge=8)
    batch_size: int = Field(4, ge=1)
    steps: int = Field(40, ge=1)
    lr: float = Field(2e-4, gt=0.0)
    warmup_steps: int = 4
    compare_ce: bool = True
    eval_qa: int = Field(32, ge=0)  # held-out questions scored with EM/F1/ROUGE-L (0: bpb retention only)
    max_new_tokens: int = 16
    max_heldout_docs: int = 40
    autocast: bool = True  # bf16 autocast where the CPU/GPU supports it
    device: str = "cpu"
    save_student: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _student_source(self) -> "DistillConfig":
        if self.student is None and self.keep_every is None and self.layers is None:
            raise ValueError("give keep_every or layers (layer-dropped student) or student (an HF dir)")
        if any(s not in (0, 1) for s in self.qa_shots):
            raise ValueError("qa_shots entries must be 0 or 1")
        return self


def _bf16(cfg: DistillConfig) -> bool:
    from finemed.evaluation.perplexity import bf16_supported

    return cfg.autocast and (bf16_supported() if cfg.device == "cpu" else torch.cuda.is_available())


def build_student(cfg: DistillConfig, teacher, teacher_tok):
    """(student, tokenizer, info dict): layer-dropped from the teacher, or loaded and vocab-checked."""
    from finemed.models.loading import count_parameters, load_causal_lm
    from finemed.training.distill_trainer import check_vocab

    if cfg.student is None:
        from finemed.models.student import init_student

        student, info = init_student(teacher, keep_every=None if cfg.layers else cfg.keep_every, layers=cfg.layers)
        return student, teacher_tok, info.model_dump()
    student, tok = load_causal_lm(cfg.student, device=cfg.device)
    check_vocab(teacher_tok, tok, teacher, student)
    pt, ps = count_parameters(teacher), count_parameters(student)
    return student, tok, {"kept_layers": None, "teacher_parameters": pt, "student_parameters": ps,
                          "reduction": round(1 - ps / pt, 6)}


class KDData(NamedTuple):
    train: tuple  # (input_ids, attention_mask, labels), each (N, seq_len)
    held_texts: list[str]  # held-out texts for bpb
    held_qa: list  # held-out QA questions (their contexts are in held_texts)
    qa_pool: list  # all QA examples: the 1-shot exemplar pool, as in the evaluation
    prompts: list[str]  # on-policy prompts


def build_data(cfg: DistillConfig, tok, workdir: Path):
    """Train tensors (plain text + QA), held-out texts for bpb, held-out QA questions, on-policy prompts."""
    from finemed.evaluation.perplexity import load_texts
    from finemed.evaluation.qa_prompts import build_prompt
    from finemed.training.data import split_heldout
    from finemed.training.distill_data import concat, packed_text, qa_sequences, split_by_title, unique_contexts

    train_qa, held_qa = [], []
    if cfg.qa:
        from finemed.data.loaders import load_squad

        path = Path(cfg.qa).expanduser()
        examples = load_squad(path) if path.is_file() else load_squad(name=cfg.qa)
        train_qa, held_qa = split_by_title(examples, cfg.heldout_fraction, cfg.seed)
    held_ctx = set(unique_contexts(held_qa))
    texts: list[str] = list(dict.fromkeys(t for source in cfg.text for t in load_texts(source)))
    train_texts, held_texts = split_heldout([t for t in texts if t not in held_ctx], cfg.heldout_fraction, cfg.seed)
    held_texts = (held_texts + [t for t in texts if t in held_ctx])[: cfg.max_heldout_docs]
    if not held_texts:
        raise FinemedError("KD data: nothing held out for bpb; add text or raise heldout_fraction")
    # no training prompt may contain a held-out text: held-out bpb and QA stay unseen
    held_set = set(held_texts)
    train_qa = [e for e in train_qa if e.context not in held_set]
    gen = torch.Generator().manual_seed(cfg.seed)
    n_max = cfg.max_train_sequences or cfg.steps * cfg.batch_size
    n_qa = None if n_max is None else round(n_max * cfg.qa_fraction) if train_texts else n_max
    parts = []
    if train_qa and n_qa != 0:
        pick = torch.randperm(len(train_qa), generator=gen).tolist()
        qa_ex = [train_qa[i] for i in pick][: None if n_qa is None else -(-n_qa // len(cfg.qa_shots))]
        parts.append(tuple(x[:n_qa] for x in qa_sequences(qa_ex, train_qa, tok, cfg.seq_len, cfg.qa_shots, cfg.seed)))
    if train_texts:
        text_part = packed_text(train_texts, tok, cfg.seq_len, workdir)
        n_text = None if n_max is None else n_max - (parts[0][0].size(0) if parts else 0)
        parts.append(tuple(x[:n_text] for x in text_part))
    if not parts:
        raise FinemedError("KD data: no training data; set text: and/or qa:")
    ids, att, labels = concat(*parts)
    order = torch.randperm(ids.size(0), generator=gen)
    prompts = [build_prompt(ex, train_qa, shot, cfg.seed) for ex in train_qa for shot in cfg.qa_shots if ex.answers]
    prompts = prompts or [t[:500] for t in train_texts]
    return KDData((ids[order], att[order], labels[order]), held_texts, held_qa, train_qa + held_qa, prompts)


def cache_logits(cfg: DistillConfig, out: Path | str, *, teacher=None, tok=None, data=None, shard_size: int = 64):
    """Run the teacher once over the config's KD training data and write the top-k cache to ``out``."""
    from finemed.models.loading import load_causal_lm
    from finemed.training.logit_cache import build_cache

    if teacher is None:
        teacher, tok = load_causal_lm(cfg.teacher, device=cfg.device)
    vocab = int(teacher.get_output_embeddings().weight.shape[0])
    if cfg.top_k > vocab:  # fail before tokenising the data
        raise FinemedError(f"top-k cache: k={cfg.top_k} must be within 1..{vocab} (the teacher vocab size)")
    ids, att, labels = data if data is not None else build_data(cfg, tok, Path(out).parent / ".data-cache").train
    return build_cache(teacher, ids, att, labels, out, k=cfg.top_k, temperature=cfg.temperature,
                       value_dtype=cfg.cache_dtype, autocast=_bf16(cfg), teacher_name=str(cfg.teacher),
                       batch_size=cfg.batch_size * 2, shard_size=shard_size)


def _train(cfg: DistillConfig, student, dataset, run_dir: Path, mode: str, teacher=None, cache_temperature=1.0):
    from transformers import TrainingArguments

    from finemed.training.distill_trainer import KDTrainer

    args = TrainingArguments(output_dir=str(run_dir / f".trainer-{mode}"), max_steps=cfg.steps,
                             per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
                             warmup_steps=cfg.warmup_steps, lr_scheduler_type="linear", weight_decay=0.0,
                             logging_steps=max(1, cfg.steps // 5), save_strategy="no", report_to=[],
                             use_cpu=cfg.device == "cpu", bf16=_bf16(cfg), seed=cfg.seed, data_seed=cfg.seed,
                             remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True)
    student.train()
    trainer = KDTrainer(model=student, args=args, train_dataset=dataset, kd_mode=mode, teacher=teacher,
                        divergence=cfg.divergence, beta=cfg.beta, temperature=cfg.temperature, alpha=cfg.alpha,
                        cache_temperature=cache_temperature)
    t0 = time.perf_counter()
    out = trainer.train()
    student.eval()
    return {"seconds": round(time.perf_counter() - t0, 2), "train_loss": round(out.training_loss, 5),
            "log": [h for h in trainer.state.log_history if "loss" in h]}


def run(config: DistillConfig, run_dir: Path) -> dict:
    """Run KD (and the CE baseline), write ``metrics.json`` and ``report.md``, return the result."""
    from finemed.evaluation.perplexity import compute_bpb
    from finemed.models.loading import load_causal_lm, resolve_dtype, save_model
    from finemed.training.distill_data import SequenceDataset
    from finemed.training.distill_report import qa_scores, retention, write_report
    from finemed.training.distill_trainer import check_teacher, run_on_policy
    from finemed.training.logit_cache import LogitCache

    cfg, run_dir = config, Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    teacher, tok = load_causal_lm(cfg.teacher, device=cfg.device)
    student, _, info = build_student(cfg, teacher, tok)
    student.to(cfg.device)
    ce_student = copy.deepcopy(student) if cfg.compare_ce else None
    data = build_data(cfg, tok, run_dir / ".data")
    (ids, att, labels), held_texts, held_qa, prompts = data.train, data.held_texts, data.held_qa, data.prompts
    bpb = lambda m: compute_bpb(m, tok, held_texts, max_length=cfg.seq_len * 2, progress=False,  # noqa: E731
                                autocast=cfg.autocast).bpb
    result: dict = {"mode": cfg.mode, "steps": cfg.steps, "train_sequences": int(ids.size(0)),
                    "train_tokens_per_step": cfg.batch_size * cfg.seq_len, "student": info,
                    "parameter_reduction_pct": round(100 * info["reduction"], 2), "heldout_docs": len(held_texts)}
    result["bpb_teacher"] = bpb(teacher)
    result["bpb_student_init"] = bpb(student)
    if cfg.mode == "offline":
        cache_path = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else run_dir / "logits"
        t0 = time.perf_counter()
        report = cache_logits(cfg, cache_path, teacher=teacher, tok=tok, data=(ids, att, labels))
        result["cache"] = report.model_dump() | {"seconds": round(time.perf_counter() - t0, 2)}
        result["kd_train"] = _train(cfg, student, LogitCache(cache_path), run_dir, "offline",
                                    cache_temperature=cfg.temperature)
    elif cfg.mode == "online":
        teacher.to(resolve_dtype(cfg.teacher_dtype))
        check_teacher(teacher, student, resolve_dtype(cfg.teacher_dtype))
        result["kd_train"] = _train(cfg, student, SequenceDataset(ids, att, labels), run_dir, "online", teacher)
        teacher.float()
    else:
        t0 = time.perf_counter()
        student, _ = run_on_policy(student, teacher, tok, prompts[: cfg.steps * cfg.batch_size],
                                   run_dir / ".trainer-on_policy", steps=cfg.steps, batch_size=cfg.batch_size,
                                   lr=cfg.lr, max_new_tokens=cfg.max_new_tokens, divergence=cfg.divergence,
                                   beta=cfg.beta, temperature=cfg.temperature, bf16=_bf16(cfg), seed=cfg.seed)
        student.eval()
        result["kd_train"] = {"seconds": round(time.perf_counter() - t0, 2)}
    result["bpb_student"] = bpb(student)
    if ce_student is not None:
        result["ce_train"] = _train(cfg, ce_student, SequenceDataset(ids, att, labels), run_dir, "ce")
        result["bpb_ce"] = bpb(ce_student)
        result["kd_beats_ce"] = result["bpb_student"] < result["bpb_ce"]
    if cfg.eval_qa and held_qa:
        models = {"teacher": teacher, "kd": student} | ({"ce": ce_student} if ce_student is not None else {})
        result["qa"] = qa_scores(models, tok, held_qa, cfg.eval_qa, cfg.max_new_tokens, cfg.seed, _bf16(cfg),
                                 pool=data.qa_pool)
    result["retention"] = retention(result)
    if cfg.save_student:
        save_model(student, tok, run_dir / "student")
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    atomic_write_json(run_dir / "metrics.json", result)
    write_report(result, run_dir / "report.md")
    return result
