"""Deformed-to-canonical correspondence search (IMavatar supp. Sec. 2.4, after SNARF).

The avatar only knows the *forward* deformation ``x_d = w(x_c)`` (canonical to deformed
space); a deformed point's canonical correspondence is a root of ``w(x_c) - x_d``.
Several canonical points may map to the same deformed point (a closed mouth: lips,
teeth, chin), so the search starts from several initial guesses, each the deformed
point moved back by one bone's inverse rigid transform, and runs Broyden's method
(:mod:`reanimate.avatar.broyden`) from each.

Facts from the authors' code (``model/deformer_network.py``, ``implicit_morphable_model.py``):

* Initial guesses: inverse skinning with a single bone, bones ``[0, 1, 2]`` of FLAME
  (global, neck, jaw: "shoulder, head and jaw"), or with the ghost bone ``[0, 2, 3]``
  (the ghost bone's identity, neck, jaw) - the eyes are never used. The transform is the
  full canonical-to-deformed one, ``T(pose) T(canonical_pose)^-1``.
* Initial inverse Jacobian: the inverse of the rotation part of the LBS-blended
  transform ``sum_j w_j(x_init) T_j``, with the skinning weights of the deformation
  network at each initial point (:func:`lbs_jacobian_inverse`); the blend-shape terms of
  the Jacobian are ignored.
* Several converged candidates: the paper says the deformed point's occupancy is "the
  minimum of all occupancy values". In the code the minimum is taken over the geometry
  network's raw output, which is *negative inside* (their mask loss uses
  ``sigmoid(-50 * s)`` as the probability of being inside, and ray hits are ``s < 0``;
  :mod:`reanimate.avatar.fields` keeps that convention).
  The minimum of ``s`` is therefore the *most inside* candidate, i.e. the maximum
  occupancy probability - SNARF's union rule: a deformed point is inside if any of its
  canonical correspondences is. Non-converged candidates are treated as outside
  (their ``s`` is set to 1 before the minimum). :func:`find_canonical` implements
  that rule for either sign convention (``inside_above``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from reanimate.avatar.broyden import (
    CONVERGENCE_EPS,
    DENOMINATOR_EPS,
    DIVERGENCE_THRESHOLD,
    MAX_STEPS,
    broyden,
    masked_apply,
)


class Correspondence(NamedTuple):
    """Canonical correspondences of ``B x N`` deformed points from ``I`` initial guesses.

    Attributes:
        x_c: ``(B, N, 3)`` the chosen canonical point (detached). Where no candidate
            converged it is the candidate with the smallest residual, and ``valid`` is False.
        valid: ``(B, N)`` bool, some candidate converged.
        candidates: ``(B, N, I, 3)`` Broyden's result from every initial guess.
        candidate_valid: ``(B, N, I)`` bool, that candidate converged.
        index: ``(B, N)`` long, which candidate ``x_c`` is.
        residual_norm: ``(B, N, I)`` ``|deform_fn(candidate) - x_d|``.
        occupancy: ``(B, N)`` the chosen candidate's occupancy (``outside_value`` where
            not ``valid``), or ``None`` without ``occupancy_fn``.
        candidate_occupancy: ``(B, N, I)`` occupancy of every candidate (``outside_value``
            where not converged), or ``None``.
    """

    x_c: Tensor
    valid: Tensor
    candidates: Tensor
    candidate_valid: Tensor
    index: Tensor
    residual_norm: Tensor
    occupancy: Tensor | None
    candidate_occupancy: Tensor | None


def inverse_bone_inits(x_d: Tensor, bone_transforms: Tensor) -> Tensor:
    """Move deformed points back by each bone's inverse transform (one initial guess per bone).

    Args:
        x_d: ``(B, N, 3)`` deformed points.
        bone_transforms: ``(B, G, 4, 4)`` canonical-to-deformed transforms of the ``G``
            bones to start from (IMavatar: ghost/global, neck and jaw).

    Returns:
        ``(B, N, G, 3)``: ``T_g^-1 x_d`` for every bone ``g``.
    """
    assert x_d.dim() == 3 and x_d.shape[-1] == 3, f"x_d must be (B, N, 3), got {tuple(x_d.shape)}"
    assert bone_transforms.dim() == 4 and bone_transforms.shape[-2:] == (4, 4), (
        f"bone_transforms must be (B, G, 4, 4), got {tuple(bone_transforms.shape)}"
    )
    inverse = torch.linalg.inv(bone_transforms.to(x_d.dtype))  # (B, G, 4, 4)
    rotation, translation = inverse[..., :3, :3], inverse[..., :3, 3]
    return torch.einsum("bgij,bnj->bngi", rotation, x_d) + translation.unsqueeze(1)


def bone_jacobian_inverse(bone_transforms: Tensor, num_points: int) -> Tensor:
    """Inverse Jacobians of single-bone deformations: the inverse of each bone's linear part.

    Args:
        bone_transforms: ``(B, G, 4, 4)``, the bones used by :func:`inverse_bone_inits`.
        num_points: ``N``.

    Returns:
        ``(B, N, G, 3, 3)`` (an expanded view), matching ``inverse_bone_inits``' guesses.
    """
    inverse = torch.linalg.inv(bone_transforms[..., :3, :3])
    batch, bones = bone_transforms.shape[:2]
    return inverse.unsqueeze(1).expand(batch, num_points, bones, 3, 3)


def lbs_jacobian_inverse(weights: Tensor, transforms: Tensor) -> Tensor:
    """IMavatar's initial inverse Jacobian: the inverse linear part of the blended LBS transform.

    Args:
        weights: ``(B, ..., J)`` skinning weights at the initial points (e.g. ``(B, N, I, J)``).
        transforms: ``(B, J, 4, 4)`` canonical-to-deformed bone transforms.

    Returns:
        ``(B, ..., 3, 3)``: ``(sum_j w_j A_j[:3, :3])^-1``.
    """
    batch, joints = transforms.shape[:2]
    assert weights.shape[0] in (1, batch) and weights.shape[-1] == joints, (
        f"weights {tuple(weights.shape)} do not match transforms {tuple(transforms.shape)}"
    )
    flat = weights.reshape(weights.shape[0], -1, joints)
    blended = torch.einsum("bmj,bjkl->bmkl", flat, transforms[..., :3, :3].to(weights.dtype))
    return torch.linalg.inv(blended).reshape(*weights.shape[:-1], 3, 3)


def jacobian_inverse(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Inverse Jacobian of a point-wise map by autograd, the identity where it is singular.

    Args:
        fn: ``(B, M, 3) -> (B, M, 3)``, each output point depending on its own input only.
        x: ``(B, M, 3)``.

    Returns:
        ``(B, M, 3, 3)`` detached.
    """
    with torch.enable_grad():
        point = x.detach().requires_grad_(True)
        out = fn(point)
        if not out.requires_grad:
            return torch.eye(3, dtype=x.dtype, device=x.device).expand(*x.shape[:2], 3, 3).clone()
        rows = [
            torch.autograd.grad(out[..., i].sum(), point, retain_graph=i < 2, allow_unused=True)[0] for i in range(3)
        ]
    rows = [torch.zeros_like(x) if r is None else r for r in rows]
    jacobian = torch.stack(rows, dim=-2).detach()  # (B, M, 3, 3), row i = d out_i / d x
    inverse, info = torch.linalg.inv_ex(jacobian)
    identity = torch.eye(3, dtype=inverse.dtype, device=inverse.device)
    ok = (info == 0) & torch.isfinite(inverse).flatten(-2).all(-1)
    return torch.where(ok[..., None, None], inverse, identity)


def find_canonical(
    x_d: Tensor,
    deform_fn: Callable[[Tensor], Tensor],
    inits: Tensor,
    J_inv_inits: Tensor | None = None,
    occupancy_fn: Callable[[Tensor], Tensor] | None = None,
    *,
    inside_above: bool = False,
    outside_value: float | None = None,
    max_steps: int = MAX_STEPS,
    eps: float = CONVERGENCE_EPS,
    diverge_threshold: float = DIVERGENCE_THRESHOLD,
    denominator_eps: float = DENOMINATOR_EPS,
) -> Correspondence:
    """Canonical correspondences of deformed points: roots of ``deform_fn(x_c) - x_d``.

    Broyden's method runs from each of the ``I`` initial guesses (no autograd; the
    result is detached - differentiate through it with the implicit function theorem).
    Among the converged candidates the one that is *most inside* the canonical shape is
    chosen (the authors' rule, see the module docstring); without ``occupancy_fn`` the
    first converged one in ``inits`` order.

    Args:
        x_d: ``(B, N, 3)`` deformed points.
        deform_fn: ``(B, M, 3)`` canonical points to ``(B, M, 3)`` deformed points (the
            avatar's forward deformation of frame ``b``), point-wise, for any ``M``
            (each Broyden step only evaluates the points still being solved).
        inits: ``(B, N, I, 3)`` initial guesses, e.g. :func:`inverse_bone_inits`.
        J_inv_inits: ``(B, N, I, 3, 3)`` initial inverse Jacobians of ``deform_fn``
            (e.g. :func:`lbs_jacobian_inverse`); ``None``: computed by autograd at the
            initial guesses (:func:`jacobian_inverse`).
        occupancy_fn: ``(B, M, 3)`` canonical points to ``(B, M)`` occupancy, point-wise
            for any ``M``, to choose among several converged candidates (only those are
            evaluated).
        inside_above: occupancy above the surface level is inside (probabilities,
            logits of being inside); ``False`` (default) for the authors' raw output,
            negative inside (:mod:`reanimate.avatar.fields`' convention): the minimum is chosen.
        outside_value: occupancy reported for non-converged candidates and points;
            ``None``: ``-inf`` if ``inside_above`` else ``+inf`` (surely outside).
        max_steps, eps, diverge_threshold, denominator_eps: see :func:`reanimate.avatar.broyden.broyden`.

    Returns:
        :class:`Correspondence`.
    """
    assert x_d.dim() == 3 and x_d.shape[-1] == 3, f"x_d must be (B, N, 3), got {tuple(x_d.shape)}"
    batch, points = x_d.shape[:2]
    assert inits.dim() == 4 and inits.shape[:2] == (batch, points) and inits.shape[-1] == 3, (
        f"inits must be (B, N, I, 3) = ({batch}, {points}, I, 3), got {tuple(inits.shape)}"
    )
    num_inits = inits.shape[2]
    x0 = inits.reshape(batch, points * num_inits, 3)
    target = x_d.detach().unsqueeze(2).expand(batch, points, num_inits, 3).reshape(batch, points * num_inits, 3)

    if J_inv_inits is None:
        J_inv0 = jacobian_inverse(deform_fn, x0)
    else:
        assert J_inv_inits.shape[-2:] == (3, 3), f"J_inv_inits must be (B, N, I, 3, 3), got {tuple(J_inv_inits.shape)}"
        J_inv0 = J_inv_inits.expand(batch, points, num_inits, 3, 3).reshape(batch, points * num_inits, 3, 3)

    result = broyden(
        lambda x_c: deform_fn(x_c.to(x_d.dtype)),
        x0,
        J_inv0,
        max_steps=max_steps,
        eps=eps,
        diverge_threshold=diverge_threshold,
        denominator_eps=denominator_eps,
        target=target,
        pointwise=True,
    )
    candidates = result.x.reshape(batch, points, num_inits, 3)
    candidate_valid = result.converged.reshape(batch, points, num_inits)
    residual_norm = result.residual_norm.reshape(batch, points, num_inits)
    valid = candidate_valid.any(-1)

    occupancy = candidate_occupancy = None
    if occupancy_fn is not None:
        if outside_value is None:
            outside_value = -float("inf") if inside_above else float("inf")
        # Only converged candidates are evaluated; the others can never be chosen.
        excluded = -float("inf") if inside_above else float("inf")
        with torch.no_grad():
            ranked = masked_apply(occupancy_fn, result.x.to(x_d.dtype), result.converged, fill=excluded)
        values = ranked.reshape(batch, points, num_inits)
        index = values.argmax(-1) if inside_above else values.argmin(-1)
        candidate_occupancy = torch.where(candidate_valid, values, torch.full_like(values, outside_value))
        occupancy = candidate_occupancy.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    else:
        index = candidate_valid.to(torch.uint8).argmax(-1)  # first converged candidate
    # Without any converged candidate, report the closest miss.
    index = torch.where(valid, index, residual_norm.argmin(-1))
    x_c = candidates.gather(2, index[..., None, None].expand(batch, points, 1, 3)).squeeze(2)
    return Correspondence(
        x_c=x_c,
        valid=valid,
        candidates=candidates,
        candidate_valid=candidate_valid,
        index=index,
        residual_norm=residual_norm,
        occupancy=occupancy,
        candidate_occupancy=candidate_occupancy,
    )
