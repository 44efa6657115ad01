"""Logit knowledge-distillation loss, dense or from a sparse top-k teacher.

``kd_loss = α·CE(labels) + (1−α)·T²·D(p_T ‖ p_S)`` at temperature T, averaged over unmasked tokens, with D one
of forward KL, reverse KL or the generalised JSD of GKD (β-mixture, as TRL defines it).

Why hand-written: TRL's ``generalized_jsd_loss`` (``trl.experimental.gkd.GKDTrainer``) takes dense teacher
logits only, has no CE mixing and no T² factor, and TRL 1.16's ``DistillationTrainer`` is on-policy only and
fuses the divergence into a chunked lm-head kernel. Offline KD needs a teacher rebuilt from a top-k cache:
the k cached tokens keep their probabilities and the rest of the vocabulary becomes one "other" bucket holding
the remaining mass, so the divergence is taken over k+1 buckets. The student's "other" bucket is the exact
log-sum-exp of its non-top-k logits. With k = vocab the rest bucket is empty and the loss equals the dense one.

Alignment: ``student_logits[..., t, :]`` is scored against ``labels[..., t]`` (already shifted, as TRL's
function expects); use :func:`shift_for_lm` on HF-style (unshifted) labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from finemed.core.config import FinemedError

if TYPE_CHECKING:
    import torch

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]
DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
_NEG = -1e4  # finite "minus infinity": keeps 0·log 0 terms and their gradients finite


@dataclass
class TopKTeacher:
    """A sparse teacher: top-k ids and logits per position, plus the probability mass outside them.

    ``rest_mass`` was computed at ``temperature`` when the cache was built; a loss at another temperature
    cannot rebuild the tail, so it is refused.
    """

    ids: torch.Tensor  # (..., k) int
    values: torch.Tensor  # (..., k) raw logits
    rest_mass: torch.Tensor  # (...) in [0, 1]
    temperature: float = 1.0

    def to(self, device) -> "TopKTeacher":
        return TopKTeacher(self.ids.to(device), self.values.to(device), self.rest_mass.to(device), self.temperature)

    def sliced(self, vocab: int) -> "TopKTeacher":
        """This teacher over its first ``vocab`` ids: a cache written at the teacher's padded width (Qwen2.5-7B,
        152,064) read for a student that shares the tokenizer but is padded narrower (3B, 151,936).

        Cached ids ``>= vocab`` (padding rows, never a label) are dropped and the distribution is renormalised over
        the shared ids. Every row keeps ``k' = k - (most ids dropped in any row)`` entries, so the batch stays
        rectangular; a row's kept entries beyond ``k'`` go into its "other" bucket with their known mass. The mass
        of padding ids outside the top-k is not in the cache and is taken as 0 (it is part of ``rest_mass``, so the
        error is at most that share of it; a trained model scores its padding rows far below real tokens). With
        ``k`` = the full width (``rest_mass`` 0) this is exactly the softmax of the sliced logits.
        Hand-written: no library reads a sparse top-k teacher, let alone slices one.
        """
        import torch

        if not self.ids.numel() or int(self.ids.max()) < vocab:
            return self
        keep = self.ids < vocab
        k2 = int(keep.sum(-1).min())
        if k2 == 0:
            raise FinemedError(f"kd_loss: every cached top-{self.ids.size(-1)} id of some position is padding "
                               f"(>= the shared vocab {vocab}); rebuild the cache with a larger top_k")
        order = torch.sort((~keep).to(torch.int8), dim=-1, stable=True).indices  # kept first, in cached order
        ids, values, kept = self.ids.gather(-1, order), self.values.gather(-1, order), keep.gather(-1, order)
        rest = self.rest_mass.float()
        p = torch.softmax(values.float() / self.temperature, -1) * (1.0 - rest).unsqueeze(-1)  # full-width probs
        dropped = (p * ~kept).sum(-1)
        trimmed = (p[..., k2:] * kept[..., k2:]).sum(-1)
        new_rest = ((rest + trimmed) / (1.0 - dropped).clamp_min(1e-12)).clamp(0.0, 1.0)
        return TopKTeacher(ids[..., :k2], values[..., :k2], new_rest.to(self.rest_mass.dtype), self.temperature)


def shift_for_lm(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HF convention → aligned: logits at t predict labels at t+1."""
    return logits[..., :-1, :], labels[..., 1:]


def _up_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half precision computes in float32; float32/float64 stay as they are."""
    import torch

    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _up(x: torch.Tensor) -> torch.Tensor:
    """Half-precision inputs are upcast to float32; float64 stays float64."""
    return x.to(_up_dtype(x.dtype))


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Upcast logits divided by T (``logits`` itself when it is already full precision and T = 1)."""
    x = _up(logits)
    return x if temperature == 1.0 else x / temperature


def _divergence(log_t: torch.Tensor, log_s: torch.Tensor, divergence: str, beta: float) -> torch.Tensor:
    """Per-position divergence over the last dim, from log-probabilities (TRL's formulas)."""
    import torch
    import torch.nn.functional as F

    if divergence == "forward_kl":
        return F.kl_div(log_s, log_t, reduction="none", log_target=True).sum(-1)
    if divergence == "reverse_kl":
        return F.kl_div(log_t, log_s, reduction="none", log_target=True).sum(-1)
    if not 0.0 < beta < 1.0:
        if beta == 0.0:
            return _divergence(log_t, log_s, "forward_kl", beta)
        if beta == 1.0:
            return _divergence(log_t, log_s, "reverse_kl", beta)
        raise FinemedError(f"kd_loss: beta={beta} must lie in [0, 1]")
    b = torch.tensor(beta, dtype=log_s.dtype, device=log_s.device)
    log_m = torch.logsumexp(torch.stack([log_s + torch.log1p(-b), log_t + torch.log(b)]), dim=0)
    kl_t = F.kl_div(log_m, log_t, reduction="none", log_target=True).sum(-1)
    kl_s = F.kl_div(log_m, log_s, reduction="none", log_target=True).sum(-1)
    return beta * kl_t + (1 - beta) * kl_s


@lru_cache(maxsize=1)
def _dense_forward_kl():
    """The :class:`_DenseForwardKL` autograd function (built on first use: torch is imported lazily)."""
    import torch
    import torch.nn.functional as F

    class _DenseForwardKL(torch.autograd.Function):
        """Per-position KL(p_T ‖ p_S) over the vocab, in cache-sized row chunks of a few in-place passes.

        The gradient w.r.t. the student logits, (softmax(s/T) − p_T)/T, falls out of the forward's own buffers, so
        it is kept (in the logits' dtype) instead of an autograd graph of vocab-sized temporaries. Working on
        ``_ROWS`` positions at a time keeps each chunk's float32 buffers in L2: about 3x faster on CPU than the
        composed ops over the whole batch, which is what made the online KD step slower than CE plus a teacher
        forward.
        """

        @staticmethod
        def forward(ctx, student_logits, teacher_logits, temperature: float):
            shape = student_logits.shape[:-1]
            s_rows = student_logits.reshape(-1, student_logits.size(-1))
            t_rows = teacher_logits.reshape(-1, teacher_logits.size(-1))
            per_pos = torch.empty(s_rows.size(0), dtype=_up_dtype(student_logits.dtype), device=student_logits.device)
            grad = torch.empty_like(s_rows)
            for i in range(0, s_rows.size(0), _ROWS):
                chunk = s_rows[i:i + _ROWS]
                s = _scaled(chunk, temperature)
                s = s.clone() if s is chunk else s  # worked on in place below
                log_t = F.log_softmax(_scaled(t_rows[i:i + _ROWS], temperature), -1)
                p_t = log_t.exp()
                log_s = s.sub_(torch.logsumexp(s, dim=-1, keepdim=True))
                per_pos[i:i + _ROWS] = log_t.sub_(log_s).mul_(p_t).sum(-1)  # Σ p_T (log p_T − log p_S)
                grad[i:i + _ROWS] = log_s.exp_().sub_(p_t).div_(temperature)  # (softmax(s) − p_T) / T
            ctx.save_for_backward(grad)
            return per_pos.view(shape)

        @staticmethod
        def backward(ctx, grad_out):
            (grad,) = ctx.saved_tensors
            return (grad * grad_out.reshape(-1, 1).to(grad.dtype)).view(*grad_out.shape, -1), None, None

    return _DenseForwardKL


_ROWS = 16  # positions per chunk: 16 x 49k-vocab float32 rows ≈ 3 MB, about one L2


def _fast_forward(divergence: str, beta: float) -> bool:
    return divergence == "forward_kl" or (divergence == "jsd" and beta == 0.0)


def _sparse_log_probs(student_logits: torch.Tensor, teacher: TopKTeacher,
                      temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher and student log-probs over k+1 buckets (the k cached ids, then "everything else")."""
    import torch
    import torch.nn.functional as F

    if abs(teacher.temperature - temperature) > 1e-9:
        raise FinemedError(f"kd_loss: the top-k cache was built at temperature {teacher.temperature}, the loss asks "
                           f"for {temperature}; rebuild the cache at that temperature or set temperature to match")
    vocab = student_logits.size(-1)
    ids = teacher.ids.long()
    if ids.numel() and int(ids.max()) >= vocab:
        raise FinemedError(f"kd_loss: cached teacher id {int(ids.max())} is outside the student vocab ({vocab}); "
                           f"teacher and student must share one tokenizer")
    scaled = _scaled(student_logits, temperature)
    log_s_top = scaled.gather(-1, ids) - torch.logsumexp(scaled, dim=-1, keepdim=True)
    log_t_top = F.log_softmax(_scaled(teacher.values, temperature), dim=-1)
    if ids.size(-1) == vocab:  # the cache holds every token: no rest bucket, exactly the dense loss
        return log_t_top, log_s_top
    # student mass outside the k ids: log(1 - Σ q_i), from the k gathered values (no vocab-sized pass)
    log_in = torch.logsumexp(log_s_top, dim=-1, keepdim=True).clamp(max=-1e-9)
    log_s_rest = torch.log(-torch.expm1(log_in))
    rest = teacher.rest_mass.to(log_s_top.dtype).clamp(0.0, 1.0).unsqueeze(-1)
    log_t_top = log_t_top + torch.log1p(-rest).clamp_min(_NEG)
    log_t_rest = torch.log(rest).clamp_min(_NEG)
    return torch.cat([log_t_top, log_t_rest], -1), torch.cat([log_s_top, log_s_rest], -1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | TopKTeacher,
            labels: torch.Tensor | None = None, *, divergence: Divergence = "forward_kl", beta: float = 0.5,
            temperature: float = 1.0, alpha: float = 0.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """α·CE(labels) + (1−α)·T²·D(p_T ‖ p_S), averaged over unmasked positions.

    ``teacher_logits`` is a dense ``(B, L, V)`` tensor or a :class:`TopKTeacher`. Positions count where
    ``labels != -100`` (when labels are given) and ``mask`` is true (padding, QA prompt tokens).
    ``divergence="jsd"`` uses ``beta`` as TRL does (β=0 → forward KL, β=1 → reverse KL).
    """
    import torch
    import torch.nn.functional as F

    if divergence not in DIVERGENCES:
        raise FinemedError(f"kd_loss: divergence {divergence!r} unknown; use one of {', '.join(DIVERGENCES)}")
    if temperature <= 0:
        raise FinemedError(f"kd_loss: temperature={temperature} must be > 0")
    if not 0.0 <= alpha <= 1.0:
        raise FinemedError(f"kd_loss: alpha={alpha} must lie in [0, 1]")
    if alpha > 0 and labels is None:
        raise FinemedError("kd_loss: alpha > 0 mixes in cross-entropy, which needs labels")
    valid = torch.ones(student_logits.shape[:-1], dtype=torch.bool, device=student_logits.device)
    if labels is not None:
        valid &= labels != -100
    if mask is not None:
        valid &= mask.bool()
    n = valid.sum().clamp_min(1)
    loss = torch.zeros((), dtype=_up_dtype(student_logits.dtype), device=student_logits.device)
    if alpha < 1.0:
        if isinstance(teacher_logits, TopKTeacher):
            log_t, log_s = _sparse_log_probs(student_logits, teacher_logits, temperature)
        else:
            if teacher_logits.shape != student_logits.shape:
                raise FinemedError(f"kd_loss: teacher logits {tuple(teacher_logits.shape)} and student logits "
                                   f"{tuple(student_logits.shape)} differ; both need the same vocab and positions")
            log_s = None if _fast_forward(divergence, beta) else F.log_softmax(_scaled(student_logits, temperature), -1)
            log_t = None if log_s is None else F.log_softmax(_scaled(teacher_logits.detach(), temperature), -1)
        if log_s is None:  # dense forward KL: one fused pass, gradient computed alongside the value
            per_pos = _dense_forward_kl().apply(student_logits, teacher_logits.detach(), temperature)
        else:
            per_pos = _divergence(log_t, log_s, divergence, beta)
        loss = loss + (1 - alpha) * temperature ** 2 * (per_pos * valid).sum() / n
    if alpha > 0:
        safe = labels.masked_fill(~valid, 0).long()
        ce = F.cross_entropy(_up(student_logits).flatten(0, -2), safe.flatten(), reduction="none")
        loss = loss + alpha * (ce.view_as(safe) * valid).sum() / n
    return loss
