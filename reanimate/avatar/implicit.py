"""Gradients of ray-traced surface points through the implicit function theorem (IMavatar
Sec. 3.4, after IDR and SNARF).

Ray tracing and the deformed -> canonical correspondence search run without gradients: they
return a deformed surface point ``x_d = o + t d`` and its canonical correspondence ``x_c``.
Both are implicitly defined functions of every network parameter: of the geometry (the
surface moves) and of the deformation (``w(x_c) = x_d`` moves). The functions here return
the same values with the gradients the implicit function theorem gives. If ``F(u, p) = 0``
defines ``u(p)``, then ``du/dp = -(dF/du)^-1 dF/dp``, which autograd computes for

    u(p) = u0 - (dF/du)^-1 (F(u0, p) - F(u0, p).detach())

with ``dF/du`` a constant: the value is ``u0`` and its derivative is the theorem's.

The callables act point by point (a point's output depends on that point only):
``occupancy_fn(points (B, N, 3)) -> (B, N)`` and ``deform_fn(points (B, N, 3)) -> (B, N, 3)``,
canonical -> deformed. They may close over network parameters, rig parameters, camera
parameters: gradients flow to all of them. Jacobians must be invertible: a ray grazing the
surface, or a degenerate deformation, has no well-defined gradient (its solve fails or
explodes); mask such points before calling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .fields import SURFACE_LEVEL

OccupancyFn = Callable[[Tensor], Tensor]
DeformFn = Callable[[Tensor], Tensor]


def point_jacobian(outputs: Tensor, points: Tensor, create_graph: bool = False) -> Tensor:
    """Per-point Jacobian ``d outputs / d points``: ``outputs (B, N, K)`` computed point by
    point from ``points (B, N, D)`` (which requires grad) -> ``(B, N, K, D)``. One backward
    pass per output component; the graph is kept for further use."""
    assert outputs.shape[:-1] == points.shape[:-1], (
        f"outputs {tuple(outputs.shape)} and points {tuple(points.shape)} must share (B, N)"
    )
    rows = []
    for k in range(outputs.shape[-1]):
        (row,) = torch.autograd.grad(outputs[..., k].sum(), points, retain_graph=True, create_graph=create_graph)
        rows.append(row)
    return torch.stack(rows, dim=-2)


def _leaf(points: Tensor) -> Tensor:
    return points.detach().requires_grad_(True)


class SurfacePoints(NamedTuple):
    canonical: Tensor  # (B, N, 3) x_c
    deformed: Tensor  # (B, N, 3) x_d = o + t d
    depth: Tensor  # (B, N) t, in units of |d|


def surface_canonical_points(
    x_c: Tensor,
    ray_origin: Tensor,
    ray_dir: Tensor,
    occupancy_fn: OccupancyFn,
    deform_fn: DeformFn,
    level: float = SURFACE_LEVEL,
) -> SurfacePoints:
    """Differentiable surface points (IMavatar Sec. 3.4).

    ``x_c (B, N, 3)``: canonical correspondences of ray-traced surface points (treated as
    constants); ``ray_origin (B, 3)`` or ``(B, N, 3)``; ``ray_dir (B, N, 3)`` (any length).
    ``(x_c, t)`` are the 4 unknowns of the 4 equations ``w(x_c) - (o + t d) = 0`` and
    ``occupancy(x_c) - level = 0``; ``t`` starts as the projection of ``w(x_c)`` on the ray.

    Returns :class:`SurfacePoints` whose values are ``x_c``, ``o + t d`` and ``t`` and whose
    gradients w.r.t. the parameters of both callables and w.r.t. ``ray_origin`` and
    ``ray_dir`` (when they require grad) are the implicit ones."""
    assert x_c.dim() == 3 and x_c.shape[-1] == 3, f"x_c must be (B, N, 3), got {tuple(x_c.shape)}"
    assert ray_dir.shape == x_c.shape, f"ray_dir must be {tuple(x_c.shape)}, got {tuple(ray_dir.shape)}"
    if ray_origin.dim() == 2:
        ray_origin = ray_origin[:, None].expand_as(x_c)
    assert ray_origin.shape == x_c.shape, f"ray_origin must be (B, 3) or (B, N, 3), got {tuple(ray_origin.shape)}"
    with torch.enable_grad():
        x = _leaf(x_c)
        deformed = deform_fn(x)
        occupancy = occupancy_fn(x)
        assert deformed.shape == x.shape and occupancy.shape == x.shape[:-1], (
            f"deform_fn gave {tuple(deformed.shape)}, occupancy_fn {tuple(occupancy.shape)} for points {tuple(x.shape)}"
        )
        d = ray_dir.detach()
        t0 = ((deformed.detach() - ray_origin.detach()) * d).sum(-1) / (d * d).sum(-1)  # (B, N)
        # F(u) with u = (x_c, t); it depends on the parameters, on o and on d.
        residual = torch.cat([deformed - ray_origin - t0[..., None] * ray_dir, (occupancy - level)[..., None]], -1)
        jacobian_w = point_jacobian(deformed, x)  # (B, N, 3, 3)
        (grad_o,) = torch.autograd.grad(occupancy.sum(), x, retain_graph=True)  # (B, N, 3)
    # dF/du = [[J_w, -d], [grad o^T, 0]]
    top = torch.cat([jacobian_w, -d[..., None]], dim=-1)
    bottom = torch.cat([grad_o, torch.zeros_like(grad_o[..., :1])], dim=-1)[..., None, :]
    jacobian = torch.cat([top, bottom], dim=-2).detach()  # (B, N, 4, 4)
    step = torch.linalg.solve(jacobian, (residual - residual.detach())[..., None])[..., 0]
    canonical = x_c.detach() - step[..., :3]
    depth = t0.detach() - step[..., 3]
    return SurfacePoints(canonical, ray_origin + depth[..., None] * ray_dir, depth)


def nonsurface_canonical_points(x_c: Tensor, x_d: Tensor, deform_fn: DeformFn) -> Tensor:
    """Differentiable canonical correspondences of points that are not on the surface (the
    mask loss's points, IMavatar Sec. 3.4): ``x_c`` is defined by ``w(x_c) = x_d`` alone.

    ``x_c (B, N, 3)`` found by the correspondence search (treated as constants), ``x_d (B, N, 3)``
    (may carry gradients, e.g. to the camera) -> ``(B, N, 3)`` equal to ``x_c`` with gradient
    ``J_w^-1 (d x_d - dw/dp)`` w.r.t. the deformation's parameters and ``x_d``."""
    assert x_c.shape == x_d.shape and x_c.shape[-1] == 3, (
        f"x_c and x_d must be (B, N, 3) alike, got {tuple(x_c.shape)} and {tuple(x_d.shape)}"
    )
    with torch.enable_grad():
        x = _leaf(x_c)
        deformed = deform_fn(x)
        residual = deformed - x_d
        jacobian_w = point_jacobian(deformed, x).detach()
    step = torch.linalg.solve(jacobian_w, (residual - residual.detach())[..., None])[..., 0]
    return x_c.detach() - step


def deformed_normals(
    x_c: Tensor, occupancy_fn: OccupancyFn, deform_fn: DeformFn, create_graph: bool = True, eps: float = 1e-6
) -> Tensor:
    """Unit normals in deformed space at canonical points ``x_c (B, N, 3)`` -> ``(B, N, 3)``.

    The deformed occupancy is ``o(w^-1(x_d))``, so its gradient is ``J_w^-T grad o(x_c)``;
    it points outward (occupancy grows outward, :data:`~reanimate.avatar.fields.SURFACE_LEVEL`).
    ``x_c`` may itself carry gradients (e.g. from :func:`surface_canonical_points`); with
    ``create_graph`` the normals are differentiable w.r.t. it and the parameters (for losses
    on normals or a texture network that takes them)."""
    assert x_c.dim() == 3 and x_c.shape[-1] == 3, f"x_c must be (B, N, 3), got {tuple(x_c.shape)}"
    with torch.enable_grad():
        x = x_c if x_c.requires_grad else _leaf(x_c)
        deformed = deform_fn(x)
        occupancy = occupancy_fn(x)
        jacobian_w = point_jacobian(deformed, x, create_graph=create_graph)
        (grad_o,) = torch.autograd.grad(occupancy.sum(), x, create_graph=create_graph)
    normal = torch.linalg.solve(jacobian_w.transpose(-1, -2), grad_o[..., None])[..., 0]
    return F.normalize(normal, dim=-1, eps=eps)
