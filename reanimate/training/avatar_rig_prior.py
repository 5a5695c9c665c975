"""The rig as a prior on an avatar's deformation network, away from the traced surface:
a warm start before the fit (``train_params.deformation_warmup_steps``) and a term in every
step (``loss_weights.rig_prior``). Both are 0 in the paper's configuration.

Why: IMavatar supervises the deformation network only at traced surface points within
0.8 cm of a rig vertex (:data:`reanimate.training.avatar_losses.PSEUDO_GT_SQUARED_DISTANCE`).
At the start the surface is the initial sphere, so almost no point passes that gate, and
the RGB and mask gradients move the network freely. After a 17-minute fit on 2 CPU cores
(``mmfa/heads-64``'s avatar sibling, lr 5e-4) its skinning weights were as far from the
rig's as the uniform initialisation (L1 1.52 of at most 2), its blendshapes 7 times the
rig's size, and the correspondence search found the canonical point of only 10% of the
posed template's own vertices (100% at initialisation), so the mask loss, which uses only
rays with a correspondence, could not shape the head. The authors' long GPU schedule gets
past this; an hour on a CPU does not. Both remedies use nothing but the rig the fit
already has.

Samples are canonical template vertices (model space) moved by Gaussian offsets of a few
scales, each labelled with its own vertex's values (the offsets are small next to the
rig's variation, and this avoids a nearest-vertex search over the template per step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..avatar.model import ImplicitAvatar
from .avatar_losses import AvatarLossWeights

#: offsets' standard deviations (model units, 4 per metre: 0, 0.5 and 2 cm)
NOISE = (0.0, 0.02, 0.08)


def rig_prior_loss(
    model: ImplicitAvatar,
    weights: AvatarLossWeights,
    num_points: int,
    generator: torch.Generator | None = None,
    noise: Sequence[float] = NOISE,
) -> torch.Tensor:
    """The pseudo ground truth term (the fit's relative weights and ``dirs_scale``),
    averaged over ``num_points`` samples around the template; differentiable w.r.t.
    ``model.deformation`` only. The draws come from ``generator`` (CPU)."""
    vertices = model.canonical_vertices
    per_scale = max(num_points // len(noise), 1)
    sigmas = torch.tensor(noise, dtype=vertices.dtype).repeat_interleave(per_scale)[:, None]
    index = torch.randint(0, vertices.shape[0], (sigmas.shape[0],), generator=generator)
    offsets = torch.randn(sigmas.shape[0], 3, generator=generator, dtype=vertices.dtype) * sigmas
    index = index.to(vertices.device)
    points = vertices[index] + offsets.to(vertices.device)
    target = model.rig_targets(index)
    pred = model.deformation(points[None])
    scale = weights.dirs_scale

    def squared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a[0] - b).square().flatten(1).sum(-1).mean()

    return (
        weights.skinning * squared(pred.weights, target.weights)
        + weights.expression_dirs * scale**2 * squared(pred.expression_dirs, target.expression_dirs)
        + weights.pose_dirs * scale**2 * squared(pred.pose_dirs, target.pose_dirs)
    )


def warm_up_deformation(
    model: ImplicitAvatar,
    steps: int,
    weights: AvatarLossWeights,
    *,
    num_points: int = 4096,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Fit ``model.deformation`` to the rig for ``steps`` Adam steps of
    :func:`rig_prior_loss` (its own optimiser, discarded); the other fields are untouched.
    Returns every step's loss."""
    network = model.deformation
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    losses = []
    for _ in range(max(steps, 0)):
        loss = rig_prior_loss(model, weights, num_points, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


__all__ = ["NOISE", "rig_prior_loss", "warm_up_deformation"]
