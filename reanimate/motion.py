"""The sparse motion representation shared by motion estimators, the dense motion
network, the generator and the pipelines.

Today: FOMM's K 2-D keypoints with a local linear map (Jacobian) each. The same type
holds 3-D keypoints (``D = 3``) with 3x3 maps for the 3-D face model later; every
consumer goes through :class:`Keypoints` and the functions below rather than through
raw dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import (
    compose_jacobians,
    local_affine_motion,
    movement_scale,
    relative_jacobians,
    relative_keypoints,
)


@dataclass
class Keypoints:
    """K keypoints per sample with optional local linear maps.

    Attributes:
        value: ``(B, K, D)`` coordinates in [-1, 1], x first.
        jacobian: ``(B, K, D, D)`` or None (zeroth-order model).
    """

    value: torch.Tensor
    jacobian: torch.Tensor | None = None

    def __post_init__(self):
        assert self.value.dim() == 3, f"keypoints must be (B, K, D), got {tuple(self.value.shape)}"
        if self.jacobian is not None:
            b, k, d = self.value.shape
            assert self.jacobian.shape[-3:] == (k, d, d), (
                f"jacobian {tuple(self.jacobian.shape)} does not match keypoints {tuple(self.value.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return self.value.shape[0]

    @property
    def num_kp(self) -> int:
        return self.value.shape[1]

    @property
    def dims(self) -> int:
        return self.value.shape[2]

    def map(self, fn) -> "Keypoints":
        """Apply ``fn`` to every tensor field."""
        return Keypoints(fn(self.value), None if self.jacobian is None else fn(self.jacobian))

    def to(self, *args, **kwargs) -> "Keypoints":
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "Keypoints":
        return self.map(torch.Tensor.detach)

    def __getitem__(self, index) -> "Keypoints":
        """Index the batch dimension (keeps it: ``kp[i]`` has batch size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[index])

    def expand(self, batch: int) -> "Keypoints":
        """Broadcast a batch of one to ``batch`` samples (no copy)."""
        assert self.batch_size in (1, batch), f"cannot expand batch {self.batch_size} to {batch}"
        return self.map(lambda t: t.expand(batch, *t.shape[1:]))

    @staticmethod
    def cat(items: list["Keypoints"]) -> "Keypoints":
        value = torch.cat([kp.value for kp in items])
        has_jac = [kp.jacobian is not None for kp in items]
        assert all(has_jac) or not any(has_jac), "cannot concatenate keypoints with and without Jacobians"
        jacobian = torch.cat([kp.jacobian for kp in items]) if all(has_jac) else None
        return Keypoints(value, jacobian)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The official FOMM ``{'value', 'jacobian'}`` dict."""
        out = {"value": self.value}
        if self.jacobian is not None:
            out["jacobian"] = self.jacobian
        return out


def relative_motion(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    adapt_movement_scale: bool | float | torch.Tensor = False,
    relative_jacobian: bool = True,
) -> Keypoints:
    """Transfer the driving motion relative to an initial driving frame onto the source.

    FOMM supplementary Eq. (13-14): value ``kp_S + s (kp_Dt - kp_D1)``, Jacobian
    ``J_Dt J_D1^{-1} J_S``. ``adapt_movement_scale=True`` computes ``s`` from the
    keypoint convex hulls (:func:`reanimate.geometry.movement_scale`); a number or
    ``(B,)`` tensor is used as ``s`` directly; False means ``s = 1``.

    ``kp_source`` and ``kp_driving_initial`` may have batch size 1 and are broadcast
    over the ``B`` driving frames.
    """
    if adapt_movement_scale is True:
        scale = movement_scale(kp_source.value, kp_driving_initial.value)
    elif adapt_movement_scale is False:
        scale = 1.0
    else:
        scale = adapt_movement_scale
    value = relative_keypoints(kp_source.value, kp_driving.value, kp_driving_initial.value, scale)
    jacobian = kp_driving.jacobian
    if relative_jacobian and kp_driving.jacobian is not None:
        jacobian = relative_jacobians(kp_source.jacobian, kp_driving.jacobian, kp_driving_initial.jacobian)
    return Keypoints(value, jacobian)


def sparse_motion(grid: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
    """Per-keypoint backward motions ``T_{S<-D}`` on a grid, with the identity
    (background) motion first.

    Args:
        grid: ``(*spatial, D)`` normalised coordinates.

    Returns:
        ``(B, K + 1, *spatial, D)``.
    """
    jacobian = None
    if kp_driving.jacobian is not None and kp_source.jacobian is not None:
        jacobian = compose_jacobians(kp_source.jacobian, kp_driving.jacobian)
    kp_source = kp_source.expand(kp_driving.batch_size)
    if jacobian is not None:
        jacobian = jacobian.expand(kp_driving.batch_size, *jacobian.shape[1:])
    local = local_affine_motion(grid, kp_source.value, kp_driving.value, jacobian)
    identity = grid.unsqueeze(0).unsqueeze(0).expand(local.shape[0], 1, *grid.shape)
    return torch.cat([identity, local], dim=1)


__all__ = ["Keypoints", "relative_motion", "sparse_motion"]
