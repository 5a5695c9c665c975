"""Batched Broyden root finding for many independent 3-D problems (IMavatar supp. Sec. 2.4).

IMavatar (following SNARF) finds the canonical point ``x_c`` of a deformed point ``x_d``
as a root of ``w(x_c) - x_d = 0``, where ``w`` is the learnt forward deformation, with
Broyden's method ("good" Broyden: rank-1 Sherman-Morrison updates of the *inverse*
Jacobian, no line search). Every point is its own 3-D problem; the solver runs them
all at once on ``(B, N, 3)`` tensors and freezes each point as soon as it has converged
or diverged.

The authors' settings (code ``model/broyden.py``, supp. Sec. 2.4): at most 10 update
steps, convergence when the residual norm drops below ``1e-5``, divergence when it
reaches ``1``, and ``1e-6`` keeps the update's denominator away from zero. Their
distances are in FLAME units scaled by 4 (metres x 4), so ``1e-5`` is 2.5 micrometres;
scale the thresholds to the units of your deformation.

The update arithmetic runs in float32 (float64 if the start point is float64) with
TF32 matmuls and autocast off: a tolerance of ``1e-5`` is far below the resolution of
TF32 (10-bit mantissa) and half precision, and the rank-1 updates accumulate rounding.
Each point returns its best iterate (smallest residual), which is what the authors'
solver intends (their copy of the best iterate aliases the current one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor

# IMavatar's settings (supp. Sec. 2.4 and the authors' model/broyden.py), in FLAME x 4 units.
MAX_STEPS = 10
CONVERGENCE_EPS = 1e-5
DIVERGENCE_THRESHOLD = 1.0
DENOMINATOR_EPS = 1e-6


class BroydenResult(NamedTuple):
    """Outcome of :func:`broyden` for ``B x N`` independent problems.

    Attributes:
        x: ``(B, N, 3)`` the iterate with the smallest residual seen for each point.
        converged: ``(B, N)`` bool, the residual norm of ``x`` is below ``eps``.
        diverged: ``(B, N)`` bool, the residual norm reached ``diverge_threshold`` (or
            became non-finite) before convergence; such points stop updating.
        residual_norm: ``(B, N)`` ``|fn(x)|`` at the returned ``x``.
        steps: number of update steps taken (the longest any point ran).
    """

    x: Tensor
    converged: Tensor
    diverged: Tensor
    residual_norm: Tensor
    steps: int


def _tf32_flags() -> tuple[str, tuple]:
    """Which TF32 API is in use and its current values.

    PyTorch >= 2.9 refuses to read the legacy ``allow_tf32`` flags once the newer
    ``fp32_precision`` settings disagree with them, so fall back to those."""
    try:
        return "legacy", (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    except RuntimeError:
        cudnn = torch.backends.cudnn
        return "precision", (
            torch.backends.cuda.matmul.fp32_precision,
            cudnn.conv.fp32_precision,
            cudnn.rnn.fp32_precision,
        )


def _set_tf32_flags(api: str, values: tuple) -> None:
    if api == "legacy":
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = values
    else:
        cudnn = torch.backends.cudnn
        (
            torch.backends.cuda.matmul.fp32_precision,
            cudnn.conv.fp32_precision,
            cudnn.rnn.fp32_precision,
        ) = values


@contextlib.contextmanager
def full_precision(device: torch.device | str | None = None) -> Iterator[None]:
    """Context with TF32 matmuls/convolutions off (and autocast off on ``device``);
    the previous flags are restored on exit, also after an exception."""
    api, saved = _tf32_flags()
    _set_tf32_flags(api, (False, False) if api == "legacy" else ("ieee", "ieee", "ieee"))
    device_type = torch.device(device).type if device is not None else None
    autocast_off = (
        torch.autocast(device_type=device_type, enabled=False)
        if device_type in ("cuda", "cpu")
        else contextlib.nullcontext()
    )
    try:
        with autocast_off:
            yield
    finally:
        _set_tf32_flags(api, saved)


def masked_apply(
    fn: Callable[[Tensor], Tensor],
    points: Tensor,
    mask: Tensor,
    tail: tuple[int, ...] = (),
    fill: float = 0.0,
    chunk: int | None = None,
) -> Tensor:
    """Apply a point-wise function to the selected rows of a batch only.

    The rows in ``mask`` are packed into ``(B, M', ...)`` (``M'`` the most selected rows
    of any batch element, padded with the point 0) so that batch element ``b`` keeps
    its own data (the frame's pose), evaluated ``chunk`` points per batch element at a
    time, and scattered back.

    Args:
        fn: ``(B, M, C)`` points to ``(B, M, *tail)``, each output depending on its own
            point (and batch element) only.
        points: ``(B, N, ..., C)``.
        mask: ``(B, N)`` bool, rows to evaluate.
        tail: trailing shape of ``fn``'s output per point.
        fill: value of the rows not evaluated.
        chunk: most points per call; ``None`` for one call.

    Returns:
        ``(B, N, ..., *tail)``.
    """
    batch, rows = mask.shape
    assert points.shape[:2] == (batch, rows), f"points {tuple(points.shape)} do not match mask {tuple(mask.shape)}"
    inner = points.shape[2:-1]
    out = points.new_full((batch, rows, *inner, *tail), fill)
    b_idx, r_idx = mask.nonzero(as_tuple=True)
    if b_idx.numel() == 0:
        return out
    counts = torch.bincount(b_idx, minlength=batch)
    slot = torch.arange(b_idx.numel(), device=b_idx.device) - (torch.cumsum(counts, 0) - counts)[b_idx]
    width = int(counts.max())
    packed = points.new_zeros(batch, width, *inner, points.shape[-1])
    packed[b_idx, slot] = points[b_idx, r_idx]
    flat = packed.reshape(batch, -1, points.shape[-1])
    parts = flat.split(flat.shape[1] if chunk is None else max(int(chunk), 1), dim=1)
    values = torch.cat([fn(part) for part in parts], dim=1)
    assert values.shape == (*flat.shape[:2], *tail), (
        f"fn must map {tuple(flat.shape)} points to {(*flat.shape[:2], *tail)}, got {tuple(values.shape)}"
    )
    out[b_idx, r_idx] = values.reshape(batch, width, *inner, *tail)[b_idx, slot].to(out.dtype)
    return out


def broyden(
    fn: Callable[[Tensor], Tensor],
    x0: Tensor,
    J_inv0: Tensor | None = None,
    max_steps: int = MAX_STEPS,
    eps: float = CONVERGENCE_EPS,
    diverge_threshold: float = DIVERGENCE_THRESHOLD,
    denominator_eps: float = DENOMINATOR_EPS,
    *,
    target: Tensor | None = None,
    pointwise: bool = False,
) -> BroydenResult:
    """Solve ``fn(x) = target`` (default 0) for every point of a batch with Broyden's method.

    Step ``x <- x - J_inv fn(x)``, then the "good" Broyden update of the inverse
    Jacobian with ``dx`` the step and ``dg`` the change of residual:
    ``J_inv <- J_inv + (dx - J_inv dg) (dx^T J_inv) / (dx^T J_inv dg)``; the
    denominator is pushed ``denominator_eps`` away from zero, keeping its sign.
    A point stops updating once its best residual norm is below ``eps`` (converged) or
    its residual after a step reaches ``diverge_threshold`` (diverged; NaN counts too).
    Runs without autograd.

    Args:
        fn: maps ``(B, N, 3)`` points to ``(B, N, 3)``; point ``n`` of batch ``b`` only
            depends on its own input. Called on the full ``(B, N, 3)`` tensor (frozen
            points keep their value) unless ``pointwise``.
        x0: ``(B, N, 3)`` start points.
        J_inv0: ``(B, N, 3, 3)`` (or broadcastable, e.g. ``(3, 3)``) initial inverse
            Jacobians of ``fn``; ``None`` for the identity.
        max_steps: most update steps.
        eps: convergence threshold on the residual norm.
        diverge_threshold: residual norm at which a point is given up.
        denominator_eps: keeps the rank-1 update's denominator off zero.
        target: ``(B, N, 3)`` right-hand side; ``None`` for zeros.
        pointwise: ``fn`` takes any number of points per batch element ``(B, M, 3)``
            (e.g. a deformation network): after the first call it only sees the points
            still updating (:func:`masked_apply`), as the authors' solver does.

    Returns:
        :class:`BroydenResult`, in float32 (float64 if ``x0`` is float64).
    """
    assert x0.dim() == 3 and x0.shape[-1] == 3, f"x0 must be (B, N, 3), got {tuple(x0.shape)}"
    dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
    shape = x0.shape
    with torch.no_grad(), full_precision(x0.device):
        x = x0.detach().to(dtype).clone()
        if J_inv0 is None:
            J_inv = torch.eye(3, dtype=dtype, device=x.device).expand(*shape[:2], 3, 3).clone()
        else:
            J_inv = J_inv0.detach().to(dtype).expand(*shape[:2], 3, 3).clone()

        rhs = None if target is None else target.detach().to(dtype)
        everything = torch.ones(shape[:2], dtype=torch.bool, device=x.device)
        g = _residual(fn, x, rhs, everything, pointwise=False)
        norm = torch.linalg.vector_norm(g, dim=-1)
        best_x, best_norm = x.clone(), norm.clone()
        # Divergence is judged after a step (as the authors do): a start far from the
        # root may still converge. Non-finite residuals count as diverged.
        diverged = ~torch.isfinite(norm)
        active = (norm > eps) & ~diverged
        steps = 0
        for _ in range(max_steps):
            if not bool(active.any()):
                break
            steps += 1
            mask = active.unsqueeze(-1)
            dx = torch.where(mask, -(J_inv @ g.unsqueeze(-1)).squeeze(-1), torch.zeros_like(x))
            x = x + dx
            g_new = torch.where(mask, _residual(fn, x, rhs, active, pointwise), g)
            dg = g_new - g
            g = g_new
            norm = torch.linalg.vector_norm(g, dim=-1)

            better = active & (norm < best_norm)
            best_x = torch.where(better.unsqueeze(-1), x, best_x)
            best_norm = torch.where(better, norm, best_norm)
            newly_diverged = active & ~(norm < diverge_threshold)
            diverged = diverged | newly_diverged
            active = active & (best_norm > eps) & ~newly_diverged

            # Sherman-Morrison form of Broyden's rank-1 Jacobian update, applied to J^-1.
            vT = (dx.unsqueeze(-2) @ J_inv).squeeze(-2)  # dx^T J_inv, (B, N, 3)
            denom = (vT * dg).sum(-1)
            denom = torch.where(denom >= 0, denom + denominator_eps, denom - denominator_eps)
            u = (dx - (J_inv @ dg.unsqueeze(-1)).squeeze(-1)) / denom.unsqueeze(-1)
            J_inv = torch.where(active[..., None, None], J_inv + u.unsqueeze(-1) * vT.unsqueeze(-2), J_inv)

        converged = best_norm < eps
        return BroydenResult(
            x=best_x,
            converged=converged,
            diverged=diverged & ~converged,
            residual_norm=best_norm,
            steps=steps,
        )


def _residual(fn: Callable[[Tensor], Tensor], x: Tensor, rhs: Tensor | None, active: Tensor, pointwise: bool) -> Tensor:
    """``fn(x) - rhs`` (in ``x``'s dtype), evaluated only at ``active`` points if ``pointwise``."""
    if pointwise:
        g = masked_apply(fn, x, active, tail=(3,))
    else:
        g = fn(x)
        assert g.shape == x.shape, f"fn must map {tuple(x.shape)} points to that shape, got {tuple(g.shape)}"
    g = g.to(x.dtype)
    return g if rhs is None else g - rhs
