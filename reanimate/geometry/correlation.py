"""Local correlation (a cost volume, as FlowNetC / PWC-Net build it), sub-cell matching
and robust affine fitting: the pieces of a global-motion estimator that can be trained
end to end. Offsets and points are x first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["displacements", "fit_affine_robust", "local_correlation", "windowed_soft_argmax"]

_OUTSIDE = -1e4  # cost of a displacement that leaves the reference


def displacements(radius: int, dtype=None, device=None) -> torch.Tensor:
    """``((2 radius + 1) ** 2, 2)`` integer offsets ``(dx, dy)``, dy slowest: the channel
    order of :func:`local_correlation`."""
    r = torch.arange(-radius, radius + 1, dtype=dtype or torch.float32, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=1)


def local_correlation(target: torch.Tensor, reference: torch.Tensor, radius: int) -> torch.Tensor:
    """Dot products of each target feature with the reference features around it.

    Args:
        target, reference: ``(B, C, H, W)`` feature maps.
        radius: largest offset, in cells, on each axis.

    Returns:
        ``(B, (2 radius + 1) ** 2, H, W)``: channel ``i`` at ``(y, x)`` is
        ``<target[:, y, x], reference[:, y + dy_i, x + dx_i]>`` with ``(dx_i, dy_i)`` the
        ``i``-th row of :func:`displacements`; offsets that leave the reference get -1e4.
    """
    h, w = target.shape[2:]
    r = radius
    padded = F.pad(reference, (r, r, r, r))
    inside = F.pad(torch.ones(1, 1, h, w, dtype=target.dtype, device=target.device), (r, r, r, r))
    costs = []
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            window = padded[:, :, dy : dy + h, dx : dx + w]
            cost = (target * window).sum(1)
            costs.append(torch.where(inside[:, 0, dy : dy + h, dx : dx + w] > 0, cost, cost.new_tensor(_OUTSIDE)))
    return torch.stack(costs, dim=1)


def windowed_soft_argmax(
    cost: torch.Tensor, radius: int, temperature: torch.Tensor | float, window: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-cell offset of the best match: a softmax-weighted mean over the offsets within
    ``window`` cells of each cell's argmax (a global soft-argmax is pulled towards the
    centre of the search range by the many poor matches).

    Args:
        cost: ``(B, (2 radius + 1) ** 2, H, W)`` from :func:`local_correlation`.
        temperature: multiplies the costs before the softmax (scalar or 0-dim tensor).

    Returns:
        offset ``(B, H, W, 2)`` in cells, x first, and confidence ``(B, H, W)``: the share
        of the softmax over the whole range that falls in the window (1: one clear match).
    """
    offsets = displacements(radius, dtype=cost.dtype, device=cost.device)  # (n, 2)
    logits = cost * temperature
    best = offsets[cost.argmax(dim=1)]  # (B, H, W, 2)
    near = ((offsets.view(1, -1, 1, 1, 2) - best.unsqueeze(1)).abs() <= window).all(dim=-1)  # (B, n, H, W)
    probability = torch.softmax(logits, dim=1)
    confidence = (probability * near).sum(1)
    local = torch.softmax(logits.masked_fill(~near, float("-inf")), dim=1)
    offset = torch.einsum("bnhw,nd->bhwd", local, offsets)
    return offset, confidence


def fit_affine_robust(
    points: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    iterations: int = 3,
    scale: float = 1.0,
    ridge: float = 1e-3,
    translation_only: bool = False,
) -> torch.Tensor:
    """Weighted least-squares affine map ``targets ~= A points + t``, re-weighted
    ``iterations - 1`` times with Cauchy weights ``w / (1 + (residual / scale) ** 2)`` so
    that points moving otherwise (a figure on a moving background) lose their say.

    ``ridge`` pulls ``[A | t]`` towards the identity (well posed for few or collinear
    points; 1e-3 of the unit weights of the normal equations).

    Args:
        points, targets: ``(B, N, 2)``.
        weights: ``(B, N)`` non-negative.
        scale: residual, in the units of ``points``, at which a point's weight halves.
        translation_only: fit ``t`` only (``A = I``).

    Returns:
        ``(B, 2, 3)`` ``[A | t]``.
    """
    b = points.shape[0]
    eye = torch.eye(2, 3, dtype=points.dtype, device=points.device).expand(b, 2, 3)
    design = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)  # (B, N, 3)
    ridge_normal = ridge * torch.eye(3, dtype=points.dtype, device=points.device)
    ridge_rhs = ridge * eye.transpose(1, 2)
    current = weights
    for step in range(max(iterations, 1)):
        if translation_only:
            total = current.sum(1, keepdim=True) + ridge
            shift = ((targets - points) * current.unsqueeze(-1)).sum(1) / total
            matrix = torch.cat([eye[:, :, :2], shift.unsqueeze(-1)], dim=2)
        else:
            weighted = design * current.unsqueeze(-1)
            normal = design.transpose(1, 2) @ weighted + ridge_normal
            rhs = weighted.transpose(1, 2) @ targets + ridge_rhs
            matrix = torch.linalg.solve(normal, rhs).transpose(1, 2)
        if step + 1 < iterations:
            residual = (points @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2] - targets).norm(dim=-1)
            current = weights / (1 + (residual / scale) ** 2)
    return matrix
