"""Stage ``train.distill``: teacher → student logit KD (online, offline top-k, on-policy), vs a CE-only student.

The stage: load the teacher; build the student (layer-dropped from the teacher by
:func:`finemed.models.student.init_student`, or any HF model sharing the tokenizer); build KD data
(:mod:`finemed.distill.data`: packed plain text and QA-format prompts with answer-only labels, split by
article); train the student with KD and, for comparison, a copy with CE only for the same steps and data
order; then report held-out bpb (teacher, KD, CE), QA EM/F1/ROUGE-L on held-out questions (the ``eval.qa``
lm-eval task), retention and the parameter reduction. Outputs: ``student/``, ``logits/``, ``report.md``.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from finemed.core.launch import (
    LaunchConfig,
    in_launched_process,
    launch_stage,
    main_process_first,
    needs_launch,
    rank,
    world_size,
)
from finemed.core.logs import get_logger
from finemed.core.plan_estimates import sized
from finemed.core.plateau import PlateauRule, plateau_callback
from finemed.core.runtime import Runtime, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.core.training import consolidated_model, for_eval, release_training_state
from finemed.core.training_plan import check_memory, estimate
from finemed.distill.cache_logits import CacheLogitsConfig, CacheLogitsResult, cache_logits
from finemed.distill.data import SequenceDataset, build_data
from finemed.distill.logit_cache import LogitCache
from finemed.distill.report import qa_scores, retention, write_report
from finemed.distill.trainer import check_teacher, check_vocab, kd_trainer_class, run_on_policy
from finemed.models.bpb import compute_bpb
from finemed.models.loading import count_parameters, load_causal_lm, resolve_dtype, save_model
from finemed.models.student import init_student

log = get_logger(__name__)
QA_LANGS = ("de", "en", "es")


class DistillConfig(CacheLogitsConfig):
    """Stage ``train.distill``: the KD data, teacher and cache keys of ``train.cache_logits``, plus these."""

    student: str | None = None  # an HF dir sharing the teacher's tokenizer; else layer-dropped from the teacher
    keep_every: int | None = 2
    layers: list[int] | None = None  # takes precedence over keep_every
    mode: Literal["online", "offline", "on_policy"] = "offline"
    divergence: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: float = Field(0.5, ge=0.0, le=1.0)
    alpha: float = Field(0.0, ge=0.0, le=1.0)  # weight of CE in the KD loss
    cache_dir: str | None = None  # reuse (or build) the top-k cache here; default RUN_DIR/logits
    # teacher weights (eval only: cache, online targets, bpb, QA); auto: the inference policy's, bf16 on a GPU
    teacher_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    save_dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # the student's saved weights; auto: as evaluated
    lr: float = Field(2e-4, gt=0.0)
    warmup_steps: int = 4
    compare_ce: bool = True
    eval_qa: int = Field(32, ge=0)  # held-out questions scored with EM/F1/ROUGE-L (0: bpb retention only)
    qa_lang: str | None = None  # QA metric language; default from the qa name (xquad.de → de), else en
    max_new_tokens: int = 16  # on-policy completion length
    save_student: bool = True
    logging_steps: int = Field(0, ge=0)  # 0: steps // 5
    # train until held-out bpb plateaus (steps is then the ceiling; the LR stays constant after warmup)
    plateau: PlateauRule | None = None
    launch: LaunchConfig = LaunchConfig()  # online/offline: `finemed run` launches the processes itself

    @model_validator(mode="after")
    def _launchable(self) -> "DistillConfig":
        if self.mode == "on_policy" and self.launch.world_size > 1:
            raise ValueError("launch with more than one process supports mode online or offline, not on_policy")
        if self.mode == "on_policy" and self.plateau is not None:
            raise ValueError("plateau works with mode online or offline (TRL's on-policy trainer runs its own loop)")
        return self

    @model_validator(mode="after")
    def _student_source(self) -> "DistillConfig":
        if self.student is None and self.keep_every is None and self.layers is None:
            raise ValueError("give keep_every or layers (layer-dropped student) or student (an HF dir)")
        return self


class StudentSummary(BaseModel):
    kept_layers: list[int] | None
    teacher_parameters: int
    student_parameters: int
    reduction: float  # 1 - P_student / P_teacher


class TrainSummary(BaseModel):
    seconds: float
    steps: int = 0  # optimizer steps taken (below the config's steps when the plateau rule stopped training)
    stopped_by: str = "steps"  # "steps" | "plateau"
    plateau: list[tuple[int, float]] = []  # (step, held-out bpb) the plateau rule scored
    tokens_per_second: float = 0.0  # every process's tokens
    train_loss: float | None = None
    log: list[dict[str, Any]] = []


class DistillResult(StageResult):
    key_metric: ClassVar[str] = "bpb_student"

    mode: str
    steps: int
    train_sequences: int
    train_tokens_per_step: int  # global: batch_size x seq_len x processes
    processes: int = 1
    student: StudentSummary
    parameter_reduction_pct: float
    heldout_docs: int
    bpb_teacher: float
    bpb_student_init: float
    bpb_student: float
    bpb_ce: float | None = None
    kd_beats_ce: bool | None = None
    cache: CacheLogitsResult | None = None
    kd_train: TrainSummary
    ce_train: TrainSummary | None = None
    qa: dict[str, dict[str, dict[str, float]]] | None = None  # {model: {"0shot": {metric: %}}}
    qa_questions: int = 0
    retention: dict[str, float]
    seconds: float
    runtime: dict[str, str] = {}


def qa_lang(cfg: DistillConfig) -> str:
    if cfg.qa_lang:
        return cfg.qa_lang
    suffix = (cfg.qa or "").rsplit(".", 1)[-1]
    return suffix if suffix in QA_LANGS else "en"


def build_student(cfg: DistillConfig, teacher, teacher_tok, rt: Runtime):
    """(student, tokenizer, summary, vocab): layer-dropped from the teacher, or loaded and vocab-checked;
    ``vocab`` is the logit width both share when their padding differs (else None)."""
    if cfg.student is None:
        student, info = init_student(teacher, keep_every=None if cfg.layers else cfg.keep_every, layers=cfg.layers)
        return student, teacher_tok, StudentSummary(**info.model_dump()), None
    student, tok = load_causal_lm(cfg.student, runtime=rt)
    vocab = check_vocab(teacher_tok, tok, teacher, student)
    pt, ps = count_parameters(teacher), count_parameters(student)
    return student, tok, StudentSummary(kept_layers=None, teacher_parameters=pt, student_parameters=ps,
                                        reduction=round(1 - ps / pt, 6)), vocab


def _train(cfg: DistillConfig, rt: Runtime, student, dataset, run_dir: Path, mode: str, teacher=None,
           cache_temperature: float = 1.0, vocab: int | None = None, eval_rt: Runtime | None = None,
           score: Callable[[Any], float] | None = None) -> tuple[TrainSummary, Any]:
    """Train ``student``; return the summary and the trained model to evaluate and save, placed by ``eval_rt``
    (on a GPU: there, in bf16): the student itself, or under FSDP a consolidated plain copy on rank 0 (every rank
    joins the gather) and None on the other ranks. With ``cfg.plateau``, ``score(model)`` (held-out bpb, every
    rank) drives :func:`finemed.core.plateau.plateaued`."""
    from transformers import TrainingArguments

    schedule = "constant_with_warmup" if cfg.plateau else "linear"  # no decay towards a ceiling never reached
    args = TrainingArguments(**rt.trainer_kwargs(), output_dir=str(run_dir / f".trainer-{mode}"),
                             max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
                             warmup_steps=cfg.warmup_steps, lr_scheduler_type=schedule, weight_decay=0.0,
                             logging_steps=cfg.logging_steps or max(1, cfg.steps // 5), save_strategy="no",
                             report_to=[], seed=cfg.seed, data_seed=cfg.seed, remove_unused_columns=False,
                             dataloader_num_workers=0, ddp_find_unused_parameters=False,
                             ddp_timeout=cfg.launch.timeout_s)
    student.train()
    trainer = kd_trainer_class()(model=student, args=args, train_dataset=dataset, kd_mode=mode, teacher=teacher,
                        divergence=cfg.divergence, beta=cfg.beta, temperature=cfg.temperature, alpha=cfg.alpha,
                        cache_temperature=cache_temperature, vocab=vocab)
    stopper = None
    if cfg.plateau is not None and score is not None:
        stopper = plateau_callback(score, cfg.plateau, initial=score(student))
        trainer.add_callback(stopper)
    t0 = time.perf_counter()
    out = trainer.train()
    release_training_state(trainer)
    student.eval()
    seconds = time.perf_counter() - t0
    tokens = trainer.state.global_step * cfg.batch_size * cfg.seq_len * trainer.args.world_size
    trained = consolidated_model(trainer) if getattr(trainer, "is_fsdp_enabled", False) else student
    if trained is not None and eval_rt is not None:
        trained = for_eval(trained, eval_rt)
    return TrainSummary(seconds=round(seconds, 2), tokens_per_second=round(tokens / max(seconds, 1e-9), 1),
                        train_loss=round(out.training_loss, 5), steps=trainer.state.global_step,
                        stopped_by="plateau" if stopper is not None and stopper.stopped_at else "steps",
                        plateau=[(s, round(v, 6)) for s, v in stopper.history] if stopper else [],
                        log=[h for h in trainer.state.log_history if "loss" in h]), trained


def teacher_dtype(cfg: DistillConfig, ert: Runtime):
    """The teacher's weight dtype: ``teacher_dtype``, or for ``auto`` the inference policy's (bf16 on a GPU)."""
    return ert.weight_dtype if cfg.teacher_dtype == "auto" else resolve_dtype(cfg.teacher_dtype)


def teacher_needed_here(cfg: DistillConfig) -> bool:
    """Whether this process keeps the teacher after building the student: online KD needs it on every rank;
    offline and on-policy only on rank 0 (the cache, the teacher's bpb and QA scores)."""
    return cfg.mode == "online" or rank() == 0


def _models(cfg: DistillConfig, rt: Runtime, ert: Runtime):
    """``(teacher, tok, student, info, vocab, ce_student)``. The teacher loads once per process on the host, in
    :func:`teacher_dtype`, for eval only; the student is built from it and cast to the training weight dtype;
    then the teacher moves to the device where this rank needs it (:func:`teacher_needed_here`), else is freed
    (None). The CE baseline's copy stays on the host until its training starts."""
    host = Runtime(device="cpu", compute=ert.compute)
    teacher, tok = load_causal_lm(cfg.teacher, runtime=host, dtype=teacher_dtype(cfg, ert))
    student, _, info, vocab = build_student(cfg, teacher, tok, host)
    student.to(dtype=rt.weight_dtype)
    ce_student = copy.deepcopy(student) if cfg.compare_ce else None
    student.to(rt.load_device)
    if teacher_needed_here(cfg):
        teacher.to(ert.device)
    else:
        log.info("rank %d: teacher released (rank 0 alone builds the cache and scores it)", rank())
        teacher = None
    return teacher, tok, student, info, vocab, ce_student


def distill_tokens(cfg: DistillConfig) -> float:
    return float(cfg.steps * cfg.batch_size * cfg.launch.world_size * cfg.seq_len)


@planner("train.distill")
def plan(cfg: DistillConfig, ctx) -> dict:
    """``finemed plan``: the student's training cost (tokens = steps x global batch x seq_len) plus the teacher's
    forward FLOPs (a third of a training step's, per token; run once for the cache or every step online)."""
    model = sized(cfg.student or cfg.teacher, ctx)
    est = estimate(model, distill_tokens(cfg), seq_len=cfg.seq_len, micro_batch=cfg.batch_size, launch=cfg.launch,
                   mixed_precision=cfg.dtype != "float32", mfu=ctx.mfu, gpu=ctx.gpu)
    teacher = estimate(sized(cfg.teacher, ctx), distill_tokens(cfg), seq_len=cfg.seq_len, micro_batch=cfg.batch_size,
                       launch=cfg.launch, mfu=ctx.mfu, gpu=ctx.gpu)
    est["teacher_flops"] = teacher["flops"] / 3
    est["flops"] += est["teacher_flops"]
    est["gpu_hours"] = round(est["gpu_hours"] + teacher["gpu_hours"] / 3, 3)
    return est


@stage("train.distill")
def run(cfg: DistillConfig, run_dir: Path) -> DistillResult:
    """Run KD (and the CE baseline), write ``report.md`` (and ``student/``), return the result.

    With ``launch.processes * launch.machines > 1`` the stage runs in that many processes (DDP or FSDP over the
    student). The teacher is eval-only, in ``teacher_dtype``: online KD keeps it on every GPU, offline KD on rank 0
    alone, which builds the cache while the others wait (``launch.timeout_s``) and writes the report and the student.
    Under FSDP every rank joins the gather of the trained student; rank 0 alone then evaluates (bpb, QA) that
    consolidated copy on its GPU in bf16 (:func:`finemed.core.training.for_eval`) and saves it; the other ranks
    report NaN (only rank 0's result is kept). The CE baseline's copy waits on the host until its turn.
    """
    import torch

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if needs_launch(cfg.launch):
        res = launch_stage("train.distill", cfg, run_dir, cfg.launch, cfg.student or cfg.teacher,
                           ram_efficient_loading=False)  # the teacher is not sharded: every rank loads it
        return DistillResult.model_validate(res)
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    launched = in_launched_process() and world_size() > 1
    rt = resolve(cfg.device, cfg.dtype, train=True, sharded=launched and cfg.launch.strategy == "fsdp")
    ert = resolve(cfg.device, cfg.dtype)  # evaluation and the teacher: inference weights (bf16 on a GPU)
    if cfg.student and not in_launched_process():
        est = estimate(cfg.student, 1.0, seq_len=cfg.seq_len, micro_batch=cfg.batch_size, launch=cfg.launch,
                       mixed_precision=rt.compute != "float32")
        check_memory("train.distill", est["memory_gib_per_process"], rt.device, cfg.launch)
    log.info("train.distill (%s) on %s", cfg.mode, rt.describe())
    main = rank() == 0
    teacher, tok, student, info, vocab, ce_student = _models(cfg, rt, ert)
    with main_process_first():
        data = build_data(cfg, tok, run_dir / ".data")
    (ids, att, labels), held_texts = data.train, data.held_texts

    def bpb(model) -> float:
        if model is None or not main:  # rank 0 evaluates; only its result is kept
            return float("nan")
        return held_bpb(model, ert)

    def held_bpb(model, runtime: Runtime = rt) -> float:  # the plateau rule's score (every rank, training runtime)
        return compute_bpb(model, tok, held_texts, max_length=cfg.seq_len * 2, progress=False, runtime=runtime).bpb

    bpb_teacher = bpb(teacher)
    param = next(student.parameters())  # score the untrained student as the trained one will be: for_eval's placement
    as_trained = str(param.device) == ert.device and param.dtype == ert.weight_dtype
    bpb_init = bpb(student if as_trained or not main else for_eval(copy.deepcopy(student), ert))
    cache = None
    if cfg.mode == "offline":
        cache_path = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else run_dir / "logits"
        with main_process_first():  # rank 0 computes the cache while the others wait (launch.timeout_s)
            if main:
                cache = cache_logits(cfg, cache_path, rt=ert, teacher=teacher, tok=tok, data=(ids, att, labels),
                                     vocab=vocab)
        kd_train, student = _train(cfg, rt, student, LogitCache(cache_path), run_dir, "offline",
                                   cache_temperature=cfg.temperature, vocab=vocab, eval_rt=ert, score=held_bpb)
    elif cfg.mode == "online":
        if not rt.sharded:
            check_teacher(teacher, student, teacher_dtype(cfg, ert))
        kd_train, student = _train(cfg, rt, student, SequenceDataset(ids, att, labels), run_dir, "online", teacher,
                                   vocab=vocab, eval_rt=ert, score=held_bpb)
    else:
        t0 = time.perf_counter()
        student, _ = run_on_policy(student, teacher, tok, data.prompts[: cfg.steps * cfg.batch_size],
                                   run_dir / ".trainer-on_policy", steps=cfg.steps, batch_size=cfg.batch_size,
                                   lr=cfg.lr, max_new_tokens=cfg.max_new_tokens, divergence=cfg.divergence,
                                   beta=cfg.beta, temperature=cfg.temperature, rt=rt, seed=cfg.seed)
        student = for_eval(student.eval(), ert)
        kd_train = TrainSummary(seconds=round(time.perf_counter() - t0, 2))
    bpb_student = bpb(student)  # None: an FSDP rank > 0
    ce_train = bpb_ce = None
    if ce_student is not None:
        ce_student.to(rt.load_device)  # held on the host until its turn
        ce_train, ce_student = _train(cfg, rt, ce_student, SequenceDataset(ids, att, labels), run_dir, "ce",
                                      eval_rt=ert, score=held_bpb)
        bpb_ce = bpb(ce_student)
    qa, n_questions = None, 0
    if cfg.eval_qa and data.held_qa and main:
        models = {"teacher": teacher, "kd": student} | ({"ce": ce_student} if ce_student is not None else {})
        qa, n_questions = qa_scores(models, tok, data.held_qa, cfg.eval_qa, run_dir, pool=data.qa_pool,
                                    lang=qa_lang(cfg), batch_size=cfg.batch_size * 2, runtime=ert)
    reduction_pct = round(100 * info.reduction, 2)
    if cfg.save_student and main:
        save_model(student.to(ert.save_dtype(cfg.save_dtype)), tok, run_dir / "student")
    result = DistillResult(
        mode=cfg.mode, steps=kd_train.steps or cfg.steps, train_sequences=int(ids.size(0)),
        train_tokens_per_step=cfg.batch_size * cfg.seq_len * cfg.launch.world_size,
        processes=cfg.launch.world_size, student=info, parameter_reduction_pct=reduction_pct,
        heldout_docs=len(held_texts), bpb_teacher=bpb_teacher, bpb_student_init=bpb_init, bpb_student=bpb_student,
        bpb_ce=bpb_ce, kd_beats_ce=None if bpb_ce is None else bpb_student < bpb_ce, cache=cache,
        kd_train=kd_train, ce_train=ce_train, qa=qa, qa_questions=n_questions,
        retention=retention({"teacher": bpb_teacher, "kd": bpb_student, "ce": bpb_ce}, qa, reduction_pct),
        seconds=round(time.perf_counter() - t_start, 1), runtime=rt.describe())
    if main:
        write_report(result, run_dir / "report.md")
    return result
