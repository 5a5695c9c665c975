"""The sparse motion representation shared by motion estimators, the dense motion
network, the generator and the pipelines.

Today: FOMM's K 2-D keypoints with a local linear map (Jacobian) each. The same type
holds 3-D keypoints (``D = 3``) with 3x3 maps for the 3-D face model later; every
consumer goes through :class:`Keypoints` and the functions below rather than through
raw dicts. Head motion (:class:`HeadMotion`: canonical points, rotation, scale,
translation, expression) is the other motion type; :func:`relative_head_motion`
transfers it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .geometry import (
    compose_jacobians,
    euler_to_rotation,
    from_canonical,
    local_affine_motion,
    movement_scale,
    relative_jacobians,
    relative_keypoints,
    relative_similarity,
    rigid_frame,
    rotation_to_euler,
    to_canonical,
    tracked_frame,
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
        if self.value.dim() != 3:
            raise ValueError(f"keypoints must be (B, K, D), got {tuple(self.value.shape)}")
        if self.jacobian is not None:
            b, k, d = self.value.shape
            if self.jacobian.shape[-3:] != (k, d, d):
                raise ValueError(
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

    def map(self, fn) -> Keypoints:
        """Apply ``fn`` to every tensor field."""
        return Keypoints(fn(self.value), None if self.jacobian is None else fn(self.jacobian))

    def to(self, *args, **kwargs) -> Keypoints:
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> Keypoints:
        return self.map(torch.Tensor.detach)

    def __getitem__(self, index) -> Keypoints:
        """Index the batch dimension (keeps it: ``kp[i]`` has batch size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[index])

    def expand(self, batch: int) -> Keypoints:
        """Broadcast a batch of one to ``batch`` samples (no copy)."""
        if self.batch_size not in (1, batch):
            raise ValueError(f"cannot expand batch {self.batch_size} to {batch}")
        return self.map(lambda t: t.expand(batch, *t.shape[1:]))

    @staticmethod
    def cat(items: list[Keypoints]) -> Keypoints:
        value = torch.cat([kp.value for kp in items])
        has_jac = [kp.jacobian is not None for kp in items]
        if not (all(has_jac) or not any(has_jac)):
            raise ValueError("cannot concatenate keypoints with and without Jacobians")
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


HEAD_ATTRIBUTES = ("rotation", "scale", "translation", "expression")


@dataclass(frozen=True, eq=False)
class HeadMotion:
    """A head as ``x = s R (canonical + expression) + t`` (the MMFA / LivePortrait
    decomposition; :func:`reanimate.geometry.relative_pose_motion` is its point form).

    Axes and angles are those of :mod:`reanimate.geometry.rotation` (x right, y down,
    z away from the camera; ``R = euler_to_rotation(yaw, pitch, roll)``, its columns the
    head's own axes in camera space). Built from face landmarks with
    :func:`reanimate.faces.head_rotation` as ``R``, the pitch is that of the raw head
    axes: :attr:`reanimate.faces.HeadPose.pitch` plus
    :data:`reanimate.faces.pose.NEUTRAL_PITCH`.

    Attributes:
        canonical: ``(B, N, 3)`` points in the head's own frame and size (unit: the RMS
            distance of the rigid points from their centre).
        rotation: ``(B, 3)`` yaw, pitch, roll in **degrees**.
        scale: ``(B,)`` the head's size in the points' unit (e.g. pixels).
        translation: ``(B, 3)`` (or ``(B, 2)``: z = 0) the head's centre.
        expression: ``(B, N, 3)`` offsets added to ``canonical``, in its frame and unit.
            Zero for a head read from points (:meth:`from_points`: its expression is in
            its canonical points); :func:`relative_head_motion` puts the driver's there.
    """

    canonical: torch.Tensor
    rotation: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor
    expression: torch.Tensor

    def __post_init__(self):
        b, n, d = self.canonical.shape
        if d != 3:
            raise ValueError(f"canonical points must be (B, N, 3), got {tuple(self.canonical.shape)}")
        shapes = {
            "rotation": (self.rotation.shape, (b, 3)),
            "scale": (self.scale.shape, (b,)),
            "expression": (self.expression.shape, (b, n, 3)),
        }
        for name, (shape, expected) in shapes.items():
            if tuple(shape) != expected:
                raise ValueError(f"{name} {tuple(shape)} does not match canonical {(b, n, d)}")
        if self.translation.shape not in ((b, 2), (b, 3)):
            raise ValueError(f"translation {tuple(self.translation.shape)} must be ({b}, 2) or ({b}, 3)")

    @classmethod
    def from_points(cls, points: torch.Tensor, rotation: torch.Tensor, rigid: torch.Tensor | None = None) -> HeadMotion:
        """Decompose posed points with a known head orientation.

        Args:
            points: ``(B, N, 3)``, e.g. face landmarks in pixels (z in the x unit).
            rotation: ``(B, 3, 3)`` head orientation (columns = the head's axes), e.g.
                :func:`reanimate.faces.head_rotation`.
            rigid: optional ``(R,)`` indices of the points that move with the skull;
                the centre and scale are measured on them (default: all).
        """
        centre, size = rigid_frame(points, rigid)
        return cls._posed(points, centre, size, rotation)

    @classmethod
    def tracked(
        cls, points: torch.Tensor, initial_points: torch.Tensor, initial: HeadMotion, rigid: torch.Tensor | None = None
    ) -> HeadMotion:
        """Decompose a later frame of the head ``initial`` was read from (at
        ``initial_points``): its rotation and scale are the similarity fitted on the
        rigid points since then (:func:`reanimate.geometry.tracked_frame`), so that what
        the similarity does not explain is expression."""
        b = points.shape[0]
        size = initial.scale.view(-1, 1, 1).expand(b, 1, 1)
        centre, size, rotation = tracked_frame(
            points, initial_points.expand(b, -1, -1), size, initial.rotation_matrix().expand(b, 3, 3), rigid
        )
        return cls._posed(points, centre, size, rotation)

    @classmethod
    def _posed(cls, points, centre, size, rotation) -> HeadMotion:
        canonical = to_canonical(points, centre, size, rotation)
        return cls(canonical, rotation_to_euler(rotation), size.view(-1), centre[:, 0], torch.zeros_like(canonical))

    @property
    def batch_size(self) -> int:
        return self.canonical.shape[0]

    def rotation_matrix(self) -> torch.Tensor:
        """``(B, 3, 3)``: :func:`reanimate.geometry.euler_to_rotation` of :attr:`rotation`."""
        yaw, pitch, roll = self.rotation.unbind(-1)
        return euler_to_rotation(yaw, pitch, roll)

    def centre(self) -> torch.Tensor:
        """``(B, 1, 3)`` the translation, z = 0 where it is 2-D."""
        t = self.translation
        if t.shape[-1] == 2:
            t = torch.cat([t, torch.zeros_like(t[:, :1])], dim=-1)
        return t[:, None]

    def points(self) -> torch.Tensor:
        """``(B, N, 3)`` posed points ``s R (canonical + expression) + t``
        (:func:`reanimate.geometry.from_canonical`)."""
        return from_canonical(
            self.canonical + self.expression, self.centre(), self.scale.view(-1, 1, 1), self.rotation_matrix()
        )

    def with_(self, **changes: torch.Tensor) -> HeadMotion:
        """A copy with some attributes replaced, e.g. ``head.with_(rotation=angles)``:
        edit (or take from another head) one attribute, keep the others."""
        return dataclasses.replace(self, **changes)


def relative_head_motion(
    source: HeadMotion, driving: HeadMotion, driving_initial: HeadMotion, attributes: Iterable[str] = HEAD_ATTRIBUTES
) -> HeadMotion:
    """Transfer the driver's head motion since its initial frame onto the source.

    The relative transfer of :func:`reanimate.geometry.relative_pose_motion`: the
    driver's turn ``R_D1^T R_D`` is made in the source's head frame, its scale change
    and (size-ratio scaled) translation are applied to the source's
    (:func:`reanimate.geometry.relative_similarity`), and the change of its canonical
    points (its expression) is added to the source's expression
    (:func:`reanimate.geometry.relative_keypoints`). The source keeps its canonical
    points (its shape). A still driver returns the source.

    Args:
        source: batch 1 or B; driving: batch B; driving_initial: batch 1 or B.
        attributes: which of ``rotation``, ``scale``, ``translation``, ``expression`` to
            transfer; the others stay the source's (e.g. ``("rotation",)`` to copy only
            the head's turn).

    Returns:
        a :class:`HeadMotion` of batch B.
    """
    attributes = tuple(attributes)
    unknown = set(attributes) - set(HEAD_ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown head attributes {sorted(unknown)}; choose from {HEAD_ATTRIBUTES}")

    def frame(head: HeadMotion):
        return head.centre(), head.scale.view(-1, 1, 1), head.rotation_matrix()

    centre, size, rotation = relative_similarity(frame(source), frame(driving), frame(driving_initial))
    b = driving.batch_size
    moved = {
        "rotation": rotation_to_euler(rotation),
        "scale": size.view(-1),
        # a 2-D translation (MMFA's, z = 0) stays 2-D
        "translation": centre[:, 0, : source.translation.shape[-1]],
        "expression": relative_keypoints(
            source.expression,
            driving.canonical + driving.expression,
            driving_initial.canonical + driving_initial.expression,
        ),
    }
    kept = {name: getattr(source, name) for name in HEAD_ATTRIBUTES if name not in attributes}
    kept = {name: value.expand(b, *value.shape[1:]) for name, value in kept.items()}
    canonical = source.canonical.expand(b, -1, -1)
    return HeadMotion(canonical, **{name: value for name, value in moved.items() if name in attributes}, **kept)


__all__ = ["HEAD_ATTRIBUTES", "HeadMotion", "Keypoints", "relative_head_motion", "relative_motion", "sparse_motion"]
