"""Posing the ICT-FaceKit head: identity, expression, a jaw hinge, a neck, gaze, placement.

Pure functions on tensors. Frames: the model's ICT coordinates (cm, ``y`` up, ``z`` out
of the face) are turned into the project's *object frame* by :data:`ICT_TO_OBJECT`
(``x`` right in the image, ``y`` down, ``z`` away from the viewer; see
:mod:`reanimate.geometry.rotation`), in which the head is posed; the camera frame is then
``scale * posed + translation``.

Three things are added to the linear blendshapes because a linear blend cannot rotate:

* **Jaw hinge.** ICT-FaceKit's ``jawOpen`` moves the lower teeth, lower gums and tongue
  almost rigidly: a 25.3 degree rotation about an ``x`` axis through (0, -0.55, 1.82) cm
  (residual < 0.03 cm). :func:`fit_jaw_hinge` measures it on the model; the rig then
  replaces ``jawOpen``'s linear offsets of those vertices by the rotation through
  ``weight * angle``, so weight 1 reproduces ``jawOpen`` and halfway opens on the arc
  instead of the chord.
* **Neck.** The head rotation ``R(yaw, pitch, roll)`` turns the head about a pivot in the
  neck, blended per vertex (linear blend skinning) with weights that fall smoothly from 1
  above the jaw line to 0 at the neck base, so the cut at the bottom of the neck stays put.
* **Gaze.** The eyeballs (which no expression shape moves) turn rigidly about their
  centres (fitted spheres) by the gaze yaw and pitch, in the head's frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from reanimate.geometry.rotation import euler_to_rotation, fit_rotation
from reanimate.heads.model import HeadModel

__all__ = [
    "ICT_TO_OBJECT",
    "HeadPose",
    "Rig",
    "axis_angle_rotation",
    "build_rig",
    "fit_jaw_hinge",
    "fit_sphere",
    "mirror_vertex_map",
    "neck_weights",
    "pose_vertices",
    "shape_vertices",
    "to_camera",
]

#: ICT model coordinates -> object frame (a rotation by 180 degrees about x).
ICT_TO_OBJECT = torch.diag(torch.tensor([1.0, -1.0, -1.0]))

# Neck blend (ICT coordinates): the weight is a smoothstep of h = y + NECK_SLANT * z, a
# plane that rises from under the chin to the base of the skull; 0 below NECK_LOW (the
# cut at the neck base), 1 above NECK_HIGH (the jaw line and everything above).
NECK_SLANT = 0.3
NECK_LOW, NECK_HIGH = -16.0, -7.5
#: Where the head turns (ICT coordinates, cm): in the neck, behind the jaw.
NECK_PIVOT = (0.0, -9.0, -1.0)
# A gums/tongue vertex belongs to the jaw when jawOpen moves it > 0.5 cm and the fitted
# hinge explains its motion to within 0.05 cm.
_JAW_MOVING, _JAW_RIGID = 0.5, 0.05


@dataclass(frozen=True)
class Rig:
    """Constants derived once from a :class:`HeadModel` (see :func:`build_rig`).

    Attributes:
        jaw_vertices: ``(n,)`` vertices turned by the jaw hinge (lower teeth, lower gums, tongue).
        jaw_axis: ``(3,)`` unit hinge axis, ICT coordinates.
        jaw_point: ``(3,)`` a point on the hinge axis (template head), ICT coordinates.
        jaw_angle: hinge angle in degrees at ``jawOpen = 1``.
        jaw_index: position of ``jawOpen`` among the expressions.
        neck_weight: ``(V,)`` in [0, 1], how much each vertex follows the head rotation.
        neck_pivot: ``(3,)`` ICT coordinates.
        eye_vertices: two ``(n,)`` index tensors, left and right eyeball (sclera + iris).
        eye_centres: ``(2, 3)`` eyeball centres of the template, ICT coordinates.
    """

    jaw_vertices: torch.Tensor
    jaw_axis: torch.Tensor
    jaw_point: torch.Tensor
    jaw_angle: float
    jaw_index: int
    neck_weight: torch.Tensor
    neck_pivot: torch.Tensor
    eye_vertices: tuple[torch.Tensor, torch.Tensor]
    eye_centres: torch.Tensor


@dataclass
class HeadPose:
    """Per-frame rig parameters (batch ``B``), all float tensors.

    Attributes:
        identity: ``(B, I)`` identity coefficients (N(0, 1) is a plausible person); ``I``
            may be fewer than the model's modes (the rest are 0).
        expression: ``(B, E)`` expression weights in [0, 1].
        rotation: ``(B, 3)`` head yaw, pitch, roll in degrees (the project's convention).
        scale: ``(B,)`` object -> camera scale (1 = real size in cm).
        translation: ``(B, 3)`` camera-frame position of the object origin, cm.
        gaze: ``(B, 2)`` eyeball yaw and pitch in degrees, relative to the head.
    """

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor
    gaze: torch.Tensor

    def __len__(self) -> int:
        return self.expression.shape[0]


def axis_angle_rotation(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: unit ``axis (3,)`` and angles in degrees ``(B,)`` -> ``(B, 3, 3)``
    right-handed rotations."""
    theta = torch.deg2rad(angle)[:, None, None]
    k = axis / axis.norm()
    cross = torch.zeros(3, 3, dtype=axis.dtype)
    cross[0, 1], cross[0, 2], cross[1, 2] = -k[2], k[1], -k[0]
    cross = cross - cross.T
    eye = torch.eye(3, dtype=axis.dtype)
    return eye + torch.sin(theta) * cross + (1 - torch.cos(theta)) * (cross @ cross)


def fit_jaw_hinge(rest: torch.Tensor, opened: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """The rigid rotation taking ``rest`` ``(n, 3)`` to ``opened`` ``(n, 3)``, as a hinge.

    Returns:
        ``(axis (3,), point (3,), angle_degrees, residual_max)``: ``opened ~= R (rest -
        point) + point`` with ``R`` the rotation by ``angle`` about ``axis`` (sign chosen
        so the angle is positive); ``point`` is the axis point nearest the points' mean.
    """
    a, b = rest.double(), opened.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    rotation = fit_rotation(a[None], b[None])[0]
    shift = mean_b - rotation @ mean_a
    angle = torch.arccos(((rotation.trace() - 1) / 2).clamp(-1, 1))
    skew = (rotation - rotation.T) / 2
    axis = torch.stack([skew[2, 1], skew[0, 2], skew[1, 0]])
    axis = axis / axis.norm()
    # The axis point: solve (I - R) p = shift on the plane through mean_a normal to the axis.
    system = torch.cat([torch.eye(3, dtype=a.dtype) - rotation, axis[None]])
    target = torch.cat([shift, (axis @ mean_a)[None]])
    point = torch.linalg.lstsq(system, target[:, None]).solution[:, 0]
    residual = ((a - point) @ rotation.T + point - b).norm(dim=1).max()
    return axis.float(), point.float(), float(torch.rad2deg(angle)), float(residual)


def fit_sphere(points: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Least-squares sphere through ``(n, 3)`` points -> ``(centre (3,), radius)``."""
    p = points.double()
    system = torch.cat([2 * p, torch.ones(len(p), 1, dtype=p.dtype)], dim=1)
    solution = torch.linalg.lstsq(system, (p**2).sum(1, keepdim=True)).solution[:, 0]
    centre = solution[:3]
    return centre.float(), float(torch.sqrt(solution[3] + centre @ centre))


def neck_weights(vertices: torch.Tensor) -> torch.Tensor:
    """``(V, 3)`` ICT coordinates -> ``(V,)`` head-rotation weights (smoothstep, see module doc)."""
    h = vertices[:, 1] + NECK_SLANT * vertices[:, 2]
    x = ((h - NECK_LOW) / (NECK_HIGH - NECK_LOW)).clamp(0, 1)
    return x * x * (3 - 2 * x)


@functools.lru_cache(maxsize=4)
def _rig(model: HeadModel) -> Rig:
    template = model.template
    jaw_index = model.expression_index("jawOpen")
    jaw = model.expression[jaw_index]
    teeth = model.part_indices("teeth_lower")
    axis, point, angle, _ = fit_jaw_hinge(template[teeth], template[teeth] + jaw[teeth])
    gums = model.part_indices("gums_tongue")
    rotation = axis_angle_rotation(axis, torch.tensor([angle]))[0]
    predicted = (template[gums] - point) @ rotation.T + point
    follows = (jaw[gums].norm(dim=1) > _JAW_MOVING) & (
        (predicted - template[gums] - jaw[gums]).norm(dim=1) < _JAW_RIGID
    )
    eyes = (model.part_indices("sclera_left", "iris_left"), model.part_indices("sclera_right", "iris_right"))
    centres = torch.stack([fit_sphere(template[model.part_indices(f"sclera_{side}")])[0] for side in ("left", "right")])
    return Rig(
        jaw_vertices=torch.cat([teeth, gums[follows]]),
        jaw_axis=axis,
        jaw_point=point,
        jaw_angle=angle,
        jaw_index=jaw_index,
        neck_weight=neck_weights(template),
        neck_pivot=torch.tensor(NECK_PIVOT),
        eye_vertices=eyes,
        eye_centres=centres,
    )


def build_rig(model: HeadModel) -> Rig:
    """Measure the jaw hinge, neck weights and eyeball centres of ``model`` (cached)."""
    return _rig(model)


def shape_vertices(model: HeadModel, rig: Rig, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
    """Identity and expression, with the jaw hinge: ``(B, I)``, ``(B, E)`` -> ``(B, V, 3)`` ICT coordinates.

    ``identity`` may have fewer columns than the model has modes (the rest are 0).
    """
    count = identity.shape[1]
    vertices = model.template + torch.einsum("bi,ivc->bvc", identity, model.identity[:count])
    vertices = vertices + torch.einsum("be,evc->bvc", expression, model.expression)
    jaw = rig.jaw_vertices
    weight = expression[:, rig.jaw_index]
    linear = vertices[:, jaw] - weight[:, None, None] * model.expression[rig.jaw_index, jaw]
    # The hinge axis moves with the identity as the lower teeth do on average.
    point = rig.jaw_point + torch.einsum("bi,ic->bc", identity, model.identity[:count, jaw].mean(1))
    turn = axis_angle_rotation(rig.jaw_axis, weight * rig.jaw_angle)
    hinged = torch.einsum("bij,bnj->bni", turn, linear - point[:, None]) + point[:, None]
    return vertices.index_copy(1, jaw, hinged)


def _turn_about(points: torch.Tensor, rotation: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """``R (p - c) + c`` for ``(B, n, 3)`` points, ``(B, 3, 3)`` rotations, ``(B, 3)`` or ``(3,)`` centres."""
    centre = centre.expand(points.shape[0], 3)[:, None]
    return torch.einsum("bij,bnj->bni", rotation, points - centre) + centre


def pose_vertices(rig: Rig, shape: torch.Tensor, rotation: torch.Tensor, gaze: torch.Tensor) -> torch.Tensor:
    """Gaze and head rotation: ICT-coordinate shapes ``(B, V, 3)`` -> object frame ``(B, V, 3)``.

    Args:
        rotation: ``(B, 3)`` head yaw, pitch, roll in degrees.
        gaze: ``(B, 2)`` eyeball yaw and pitch in degrees (relative to the head).
    """
    flip = ICT_TO_OBJECT.to(shape.dtype)
    points = shape @ flip
    eyes = euler_to_rotation(gaze[:, 0], gaze[:, 1], torch.zeros_like(gaze[:, 0]))
    for side, index in enumerate(rig.eye_vertices):
        points = points.index_copy(1, index, _turn_about(points[:, index], eyes, rig.eye_centres[side] @ flip))
    head = euler_to_rotation(rotation[:, 0], rotation[:, 1], rotation[:, 2])
    turned = _turn_about(points, head, rig.neck_pivot @ flip)
    weight = rig.neck_weight[None, :, None]
    return weight * turned + (1 - weight) * points


def to_camera(posed: torch.Tensor, scale: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Object frame ``(B, V, 3)`` -> camera frame: ``scale (B,) * posed + translation (B, 3)``."""
    return scale[:, None, None] * posed + translation[:, None]


def head_vertices(model: HeadModel, pose: HeadPose, rig: Rig | None = None) -> torch.Tensor:
    """All of it: :class:`HeadPose` -> camera-frame vertices ``(B, V, 3)``, cm."""
    rig = rig or build_rig(model)
    shape = shape_vertices(model, rig, pose.identity, pose.expression)
    return to_camera(pose_vertices(rig, shape, pose.rotation, pose.gaze), pose.scale, pose.translation)


def mirror_vertex_map(vertices: torch.Tensor, tolerance: float = 0.05) -> torch.Tensor:
    """The vertex each vertex is the mirror image of (``x -> -x``): ``(V, 3)`` -> ``(V,)``.

    Raises:
        ValueError: when the mesh is not symmetric within ``tolerance`` (cm).
    """
    mirrored = vertices * torch.tensor([-1.0, 1.0, 1.0], dtype=vertices.dtype)
    match = torch.empty(len(vertices), dtype=torch.int64)
    worst = 0.0
    for start in range(0, len(vertices), 2048):
        distance = torch.cdist(mirrored[start : start + 2048], vertices)
        best, index = distance.min(dim=1)
        match[start : start + 2048] = index
        worst = max(worst, float(best.max()))
    if worst > tolerance:
        raise ValueError(f"mesh is not mirror-symmetric: a vertex is {worst:.4f} cm from its mirror image")
    return match
