"""The rig behind an implicit morphable avatar: FLAME-style blendshapes and linear blend skinning.

A :class:`Rig` is a mesh model in the style of FLAME (Li et al. 2017), which IMavatar
(Zheng et al. 2022) deforms its canonical space with::

    shaped  = template + S shape + E expression                     (V, 3)
    joints  = joint_regressor @ shaped                              (J, 3)
    rest    = shaped + P pose_feature(pose)                         (V, 3)
    posed_v = sum_j w_vj A_j(pose, joints) rest_v                   linear blend skinning

with ``S``, ``E``, ``P`` the shape, expression and pose-corrective bases, ``w`` the skinning
weights and ``A_j`` the rigid transform of joint ``j`` relative to its rest position
(:func:`joint_transforms`). As in FLAME, the joints are regressed from the shaped mesh
*with* its expression.

Conventions:

* Points are batched ``(B, N, 3)`` in the rig's frame and units (``Rig.units`` metres per
  unit). The rigs built here (:mod:`reanimate.avatar.rigs`) are in the project's object
  frame: ``x`` right in the image (the person's left), ``y`` down, ``z`` away from the
  viewer, so the face looks along ``-z`` (see :mod:`reanimate.geometry.rotation`).
* Joint rotations are axis-angle vectors ``(..., 3)`` in radians (right-handed, in the
  rig's frame); a pose is ``(B, J, 3)``, joint 0 the root.
* The pose feature of the correctives is FLAME's: the entries of ``R_j - I`` of joints
  ``1 .. J-1``, joint by joint, each 3x3 matrix row by row (``P = 9 (J - 1)``).

**The canonical space** (IMavatar Sec. 3, and the authors' code): the avatar's occupancy
and texture live in a canonical space that is the rig posed by ``Rig.canonical_pose`` with
``Rig.canonical_expression`` (FLAME: the jaw opened by :data:`CANONICAL_JAW_OPENING` rad,
everything else zero, so the lips are apart and the mouth can be learnt).
:func:`canonical_vertices` is that mesh; the deformation network's pseudo ground truth
(skinning weights and blendshapes) is read at its nearest vertices. A canonical point
``x_c`` with skinning weights ``w``, expression blendshapes ``E_x`` and pose correctives
``P_x`` (per point, from the network) is deformed by :func:`deform_points`::

    x_d = T(pose, expr) [ T(pose_c, expr_c)^-1 x_c + E_x (expr - expr_c)
                          + P_x (pose_feature(pose) - pose_feature(pose_c)) ]

where ``T(pose, expr) = sum_j w_j A_j(pose, joints(shape, expr))`` is the *blended*
transform (one 4x4 per point; its inverse, not a blend of inverses, un-poses the point).
At ``pose = pose_c``, ``expr = expr_c`` this is the identity, and with the rig's own
weights and bases it maps :func:`canonical_vertices` exactly onto :func:`rig_vertices`.

**Ghost bone** (IMavatar's option for the shoulders): an extra bone that never moves. With
``ghost_bone=True`` the per-point weights have ``J + 1`` columns, the ghost's *first*
(column 0, identity transform in both the canonical and the deformed pose), then the rig's
joints in order: FLAME's ``[ghost, global, neck, jaw, eye_left, eye_right]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry.rotation import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "CANONICAL_JAW_OPENING",
    "Rig",
    "apply_transforms",
    "axis_angle_to_matrix",  # from reanimate.geometry.rotation
    "blend_transforms",
    "bone_transforms",
    "canonical_vertices",
    "deform_points",
    "fit_joint_regressor",
    "joint_transforms",
    "landmarks",
    "lbs",
    "matrix_to_axis_angle",
    "pose_feature",
    "rig_joints",
    "rig_vertices",
    "search_bones",
    "transform_rig",
]

#: IMavatar's canonical jaw opening, radians about the jaw's ``x`` axis (their FLAME
#: canonical pose has 0.2 in the jaw's first axis-angle component).
CANONICAL_JAW_OPENING = 0.2


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (tensors have no ==)
class Rig:
    """A FLAME-style mesh rig (float tensors share one dtype and device; see the module doc).

    Attributes:
        name: what it is (``"flame"``, ``"ict"``, ``"procedural"``).
        template: ``(V, 3)`` mean shape, rig units.
        faces: ``(F, 3)`` int64 triangles.
        shape_basis: ``(V, 3, S)`` identity blendshapes (``S`` may be 0).
        expression_basis: ``(V, 3, E)`` expression blendshapes.
        pose_basis: ``(V, 3, P)`` pose correctives on :func:`pose_feature`, ``P = 9 (J - 1)``
            (FLAME's ``posedirs`` as stored in its file).
        skinning_weights: ``(V, J)`` rows summing to 1.
        joint_regressor: ``(J, V)``, joints = ``joint_regressor @ shaped vertices``.
        parents: ``(J,)`` int64, ``parents[0] == -1`` and ``parents[j] < j``.
        joint_names: ``J`` names, e.g. ``("global", "neck", "jaw", "eye_left", "eye_right")``.
        landmark_faces: ``(L,)`` int64 face of each landmark (``L`` may be 0).
        landmark_barycentric: ``(L, 3)`` barycentric coordinates in that face.
        canonical_pose: ``(J, 3)`` axis-angle pose of the canonical space.
        units: metres per rig unit.
        canonical_expression: ``(E,)`` expression of the canonical space; ``None`` means 0
            (FLAME, as IMavatar); ICT-FaceKit's jaw opening needs its ``jawOpen`` shape too.
    """

    name: str
    template: Tensor
    faces: Tensor
    shape_basis: Tensor
    expression_basis: Tensor
    pose_basis: Tensor
    skinning_weights: Tensor
    joint_regressor: Tensor
    parents: Tensor
    joint_names: tuple[str, ...]
    landmark_faces: Tensor
    landmark_barycentric: Tensor
    canonical_pose: Tensor
    units: float
    canonical_expression: Tensor | None = None

    def __post_init__(self) -> None:
        v = self.template.shape[0]
        j = self.parents.shape[0]
        if self.canonical_expression is None:
            zeros = self.template.new_zeros(self.expression_basis.shape[-1])
            object.__setattr__(self, "canonical_expression", zeros)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        assert self.template.shape == (v, 3), f"template must be (V, 3), got {tuple(self.template.shape)}"
        assert self.faces.ndim == 2 and self.faces.shape[1] == 3, f"faces must be (F, 3), got {tuple(self.faces.shape)}"
        assert not self.faces.dtype.is_floating_point, f"faces must be integer, got {self.faces.dtype}"
        for field in ("shape_basis", "expression_basis", "pose_basis"):
            basis = getattr(self, field)
            assert basis.ndim == 3 and basis.shape[:2] == (v, 3), (
                f"{field} must be (V={v}, 3, K), got {tuple(basis.shape)}"
            )
        assert self.pose_basis.shape[2] == 9 * (j - 1), (
            f"pose_basis must be (V, 3, 9 (J - 1)) with J={j}, got {tuple(self.pose_basis.shape)}"
        )
        assert self.skinning_weights.shape == (v, j), (
            f"skinning_weights must be (V={v}, J={j}), got {tuple(self.skinning_weights.shape)}"
        )
        assert self.joint_regressor.shape == (j, v), (
            f"joint_regressor must be (J={j}, V={v}), got {tuple(self.joint_regressor.shape)}"
        )
        parents = self.parents.tolist()
        assert parents and parents[0] == -1 and all(-1 <= p < i for i, p in enumerate(parents)), (
            f"parents must start with -1 and list each joint after its parent, got {parents}"
        )
        assert len(self.joint_names) == j, f"{len(self.joint_names)} joint_names for {j} joints"
        lm = self.landmark_faces.shape[0]
        assert self.landmark_faces.shape == (lm,) and self.landmark_barycentric.shape == (lm, 3), (
            f"landmark_faces (L,) and landmark_barycentric (L, 3) disagree: "
            f"{tuple(self.landmark_faces.shape)}, {tuple(self.landmark_barycentric.shape)}"
        )
        assert self.canonical_pose.shape == (j, 3), (
            f"canonical_pose must be (J={j}, 3), got {tuple(self.canonical_pose.shape)}"
        )
        e = self.expression_basis.shape[2]
        assert self.canonical_expression.shape == (e,), (
            f"canonical_expression must be (E={e},), got {tuple(self.canonical_expression.shape)}"
        )
        assert self.units > 0, f"units must be positive metres per unit, got {self.units}"

    @property
    def num_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def num_shapes(self) -> int:
        return self.shape_basis.shape[2]

    @property
    def num_expressions(self) -> int:
        return self.expression_basis.shape[2]

    @property
    def num_joints(self) -> int:
        return self.parents.shape[0]

    @property
    def num_pose_features(self) -> int:
        return self.pose_basis.shape[2]

    @property
    def num_landmarks(self) -> int:
        return self.landmark_faces.shape[0]

    def joint_index(self, name: str) -> int:
        """Position of a joint by name (``"jaw"`` -> 2 for FLAME)."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"rig {self.name!r} has no joint {name!r}; joints: {', '.join(self.joint_names)}") from None

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Rig:
        """A copy on ``device`` with floating tensors in ``dtype`` (either may be ``None``)."""
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Tensor):
                changes[field.name] = value.to(device=device, dtype=dtype if value.dtype.is_floating_point else None)
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------------
# Rotations and the kinematic chain.


def pose_feature(pose: Tensor) -> Tensor:
    """FLAME's pose-corrective feature: ``(B, J, 3)`` -> ``(B, 9 (J - 1))``, the entries of
    ``R_j - I`` of joints ``1 .. J-1`` (row by row); zero at the zero pose."""
    assert pose.ndim == 3 and pose.shape[-1] == 3, f"pose must be (B, J, 3), got {tuple(pose.shape)}"
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    return (axis_angle_to_matrix(pose[:, 1:]) - eye).flatten(1)


def _homogeneous(rotation: Tensor, translation: Tensor) -> Tensor:
    """``(..., 3, 3)`` and ``(..., 3)`` -> ``(..., 4, 4)`` rigid transforms."""
    top = torch.cat([rotation, translation[..., None]], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def _rigid_inverse(transform: Tensor) -> Tensor:
    """Inverse of ``(..., 4, 4)`` rigid transforms: ``[R^T, -R^T t]``."""
    rotation_t = transform[..., :3, :3].transpose(-1, -2)
    return _homogeneous(rotation_t, -(rotation_t @ transform[..., :3, 3:])[..., 0])


def joint_transforms(joints: Tensor, pose: Tensor, parents: Tensor) -> tuple[Tensor, Tensor]:
    """Forward kinematics of a joint tree (SMPL/FLAME's ``batch_rigid_transform``).

    Each joint turns by its rotation about its rest position, in its parent's posed frame:
    the world transform is ``G_j = G_parent [R_j, joint_j - joint_parent]`` (the root:
    ``[R_0, joint_0]``).

    Args:
        joints: ``(B, J, 3)`` rest positions.
        pose: ``(B, J, 3)`` axis-angle rotations.
        parents: ``(J,)`` parent index of each joint (``-1`` for a root), parents first.

    Returns:
        ``(posed_joints (B, J, 3), A (B, J, 4, 4))`` with ``A_j = G_j`` moved so that it
        acts on rest-pose points: ``A_j x = R^world_j (x - joint_j) + posed_joint_j``
        (identity at the zero pose).
    """
    assert joints.shape == pose.shape and joints.ndim == 3 and joints.shape[-1] == 3, (
        f"joints and pose must both be (B, J, 3), got {tuple(joints.shape)} and {tuple(pose.shape)}"
    )
    assert parents.shape == (joints.shape[1],), f"parents must be (J={joints.shape[1]},), got {tuple(parents.shape)}"
    local = axis_angle_to_matrix(pose)
    rotations: list[Tensor] = []
    positions: list[Tensor] = []
    for j, parent in enumerate(parents.tolist()):
        if parent < 0:
            rotations.append(local[:, j])
            positions.append(joints[:, j])
        else:
            offset = joints[:, j] - joints[:, parent]
            rotations.append(rotations[parent] @ local[:, j])
            positions.append((rotations[parent] @ offset[..., None])[..., 0] + positions[parent])
    rotation = torch.stack(rotations, dim=1)
    posed = torch.stack(positions, dim=1)
    translation = posed - (rotation @ joints[..., None])[..., 0]
    return posed, _homogeneous(rotation, translation)


def blend_transforms(weights: Tensor, transforms: Tensor) -> Tensor:
    """Per-point skinning transforms ``sum_j w_j A_j``.

    Args:
        weights: ``(B or 1, N, J')``.
        transforms: ``(B, J', 4, 4)``.

    Returns:
        ``(B, N, 4, 4)`` (affine, generally not rigid).
    """
    batch, bones = transforms.shape[0], transforms.shape[1]
    assert weights.ndim == 3 and weights.shape[0] in (1, batch) and weights.shape[2] == bones, (
        f"weights must be (B={batch} or 1, N, J'={bones}), got {tuple(weights.shape)}"
    )
    return (weights @ transforms.flatten(2)).unflatten(-1, (4, 4))


def apply_transforms(transforms: Tensor, points: Tensor) -> Tensor:
    """``(B, N, 4, 4)`` affine transforms applied to ``(B, N, 3)`` points."""
    return (transforms[..., :3, :3] @ points[..., None])[..., 0] + transforms[..., :3, 3]


def lbs(points: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """Linear blend skinning: ``(B, N, 3)`` rest points, ``(B or 1, N, J')`` weights and
    ``(B, J', 4, 4)`` transforms -> ``(B, N, 3)`` posed points."""
    assert points.ndim == 3 and points.shape[-1] == 3, f"points must be (B, N, 3), got {tuple(points.shape)}"
    assert weights.shape[1] == points.shape[1], f"{weights.shape[1]} weight rows for {points.shape[1]} points"
    return apply_transforms(blend_transforms(weights, transforms), points)


# ---------------------------------------------------------------------------------------
# The rig's mesh.


def _coefficients(values: Tensor | None, batch: int, count: int, like: Tensor, what: str) -> Tensor:
    """``(B, count)`` coefficients, zeros when ``values`` is ``None``."""
    if values is None:
        return like.new_zeros(batch, count)
    assert values.shape == (batch, count), f"{what} must be (B={batch}, {count}), got {tuple(values.shape)}"
    return values


def _shaped(rig: Rig, shape: Tensor | None, expression: Tensor | None, batch: int) -> Tensor:
    """``template + S shape + E expression``: ``(B, V, 3)``."""
    shape = _coefficients(shape, batch, rig.num_shapes, rig.template, "shape")
    expression = _coefficients(expression, batch, rig.num_expressions, rig.template, "expression")
    return (
        rig.template
        + torch.einsum("vcs,bs->bvc", rig.shape_basis, shape)
        + torch.einsum("vce,be->bvc", rig.expression_basis, expression)
    )


def rig_joints(rig: Rig, shape: Tensor | None, expression: Tensor | None, batch: int = 1) -> Tensor:
    """Rest joints of a person with an expression: ``(B, S)``, ``(B, E)`` (or ``None`` = 0)
    -> ``(B, J, 3)`` (the regressor applied to the shaped mesh, as FLAME)."""
    if shape is not None:
        batch = shape.shape[0]
    elif expression is not None:
        batch = expression.shape[0]
    return rig.joint_regressor @ _shaped(rig, shape, expression, batch)


def _pose_offsets(basis: Tensor, feature: Tensor) -> Tensor:
    """``(V, 3, P)`` or ``(B, N, 3, P)`` correctives on ``(B, P)`` features -> ``(B, N, 3)``."""
    if basis.ndim == 3:
        return torch.einsum("vcp,bp->bvc", basis, feature)
    return (basis @ feature[:, None, :, None])[..., 0]


def rig_vertices(rig: Rig, shape: Tensor | None, expression: Tensor | None, pose: Tensor) -> tuple[Tensor, Tensor]:
    """The posed mesh: template + shape + expression blendshapes + pose correctives, then LBS.

    Args:
        shape: ``(B, S)`` or ``None`` (0).
        expression: ``(B, E)`` or ``None`` (0).
        pose: ``(B, J, 3)`` axis-angle, absolute (the zero pose is the rest pose, *not*
            the canonical pose).

    Returns:
        ``(vertices (B, V, 3), transforms (B, J, 4, 4))``, the latter from :func:`joint_transforms`.
    """
    batch = pose.shape[0]
    assert pose.shape == (batch, rig.num_joints, 3), f"pose must be (B, J={rig.num_joints}, 3), got {tuple(pose.shape)}"
    shaped = _shaped(rig, shape, expression, batch)
    joints = rig.joint_regressor @ shaped
    _, transforms = joint_transforms(joints, pose, rig.parents)
    rest = shaped + _pose_offsets(rig.pose_basis, pose_feature(pose))
    return lbs(rest, rig.skinning_weights[None], transforms), transforms


def canonical_vertices(rig: Rig, shape: Tensor | None = None) -> Tensor:
    """The mesh in the canonical space: ``rig_vertices`` at ``canonical_pose`` and
    ``canonical_expression``, ``(B, V, 3)`` (``B = 1`` when ``shape`` is ``None``).

    IMavatar's pseudo ground truth for the deformation network (skinning weights,
    expression and pose blendshapes) is taken at the nearest of these vertices."""
    batch = 1 if shape is None else shape.shape[0]
    pose = rig.canonical_pose.expand(batch, -1, -1)
    expression = rig.canonical_expression.expand(batch, -1)
    return rig_vertices(rig, shape, expression, pose)[0]


def _with_ghost(transforms: Tensor, ghost_bone: bool) -> Tensor:
    """Prepend the ghost bone's identity transform (column 0) when asked."""
    if not ghost_bone:
        return transforms
    eye = torch.eye(4, dtype=transforms.dtype, device=transforms.device)
    return torch.cat([eye.expand(transforms.shape[0], 1, 4, 4), transforms], dim=1)


def _canonical_state(rig: Rig, shape: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
    """Transforms ``(B, J, 4, 4)`` and pose feature ``(B, P)`` of the canonical space."""
    pose = rig.canonical_pose.expand(batch, -1, -1)
    joints = rig_joints(rig, shape, rig.canonical_expression.expand(batch, -1), batch)
    return joint_transforms(joints, pose, rig.parents)[1], pose_feature(pose)


def bone_transforms(
    rig: Rig,
    pose: Tensor,
    shape: Tensor | None = None,
    expression: Tensor | None = None,
    ghost_bone: bool = False,
) -> Tensor:
    """Each bone's rigid motion from the canonical space to ``pose``: ``(B, J (+1), 4, 4)``.

    ``A_j(pose, expression) A_j(canonical_pose, canonical_expression)^-1``, joints from
    ``shape`` (``None``: 0) and ``expression`` (``None``: the canonical expression); with
    ``ghost_bone`` the ghost's identity comes first. A point that moves with bone ``j``
    alone is found back in the canonical space by the inverse of its transform (the
    initial guesses of the correspondence search, see :func:`search_bones`).
    """
    batch = pose.shape[0]
    if expression is None:
        expression = rig.canonical_expression.expand(batch, -1)
    joints = rig_joints(rig, shape, expression, batch)
    posed = joint_transforms(joints, pose, rig.parents)[1]
    canonical = _canonical_state(rig, shape, batch)[0]
    return _with_ghost(posed @ _rigid_inverse(canonical), ghost_bone)


def search_bones(rig: Rig, ghost_bone: bool) -> tuple[int, ...]:
    """Columns (of the ``J (+1)`` weight layout) of the bones whose single inverse
    transforms start IMavatar's correspondence search (supp. Sec. 2.4): the shoulders (the
    ghost bone, or the rig's root without it), the head (``neck``) and the ``jaw``."""
    shift = 1 if ghost_bone else 0
    first = 0
    return (first, rig.joint_index("neck") + shift, rig.joint_index("jaw") + shift)


def deform_points(
    rig: Rig,
    canonical: Tensor,
    weights: Tensor,
    expression_dirs: Tensor | None,
    pose_dirs: Tensor | None,
    expression: Tensor,
    pose: Tensor,
    shape: Tensor | None = None,
    ghost_bone: bool = False,
) -> Tensor:
    """IMavatar's deformation of canonical points (see the module doc for the formula).

    Args:
        canonical: ``(B, N, 3)`` points in the canonical space.
        weights: ``(B, N, J + g)`` skinning weights, ``g = 1`` with ``ghost_bone`` (its
            column first).
        expression_dirs: ``(B, N, 3, E)`` expression blendshapes per point, or ``None`` (0).
        pose_dirs: ``(B, N, 3, P)`` pose correctives per point, or ``None`` (0).
        expression: ``(B, E)`` target expression.
        pose: ``(B, J, 3)`` target pose (absolute, like :func:`rig_vertices`).
        shape: ``(B, S)`` identity, which places the joints, or ``None`` (0). The canonical
            points already have the person's shape, so it is not added to them.
        ghost_bone: whether ``weights`` has the ghost bone's column.

    Returns:
        ``(B, N, 3)`` deformed points; the canonical points themselves at the canonical
        pose and expression.
    """
    batch, count = canonical.shape[:2]
    bones = rig.num_joints + (1 if ghost_bone else 0)
    assert canonical.shape == (batch, count, 3), f"canonical must be (B, N, 3), got {tuple(canonical.shape)}"
    assert weights.shape == (batch, count, bones), (
        f"weights must be (B={batch}, N={count}, {bones}) (ghost_bone={ghost_bone}), got {tuple(weights.shape)}"
    )
    assert pose.shape == (batch, rig.num_joints, 3), f"pose must be (B, J={rig.num_joints}, 3), got {tuple(pose.shape)}"
    transforms, feature = _canonical_state(rig, shape, batch)
    un_posed = blend_transforms(weights, _with_ghost(transforms, ghost_bone))
    # T_c^-1 x_c: the blended canonical transform's inverse (affine: solve the 3x3 part)
    rest = torch.linalg.solve(un_posed[..., :3, :3], (canonical - un_posed[..., :3, 3])[..., None])[..., 0]
    if expression_dirs is not None:
        assert expression_dirs.shape == (batch, count, 3, rig.num_expressions), (
            f"expression_dirs must be (B, N, 3, E={rig.num_expressions}), got {tuple(expression_dirs.shape)}"
        )
        change = expression - rig.canonical_expression
        rest = rest + (expression_dirs @ change[:, None, :, None])[..., 0]
    if pose_dirs is not None:
        assert pose_dirs.shape == (batch, count, 3, rig.num_pose_features), (
            f"pose_dirs must be (B, N, 3, P={rig.num_pose_features}), got {tuple(pose_dirs.shape)}"
        )
        rest = rest + _pose_offsets(pose_dirs, pose_feature(pose) - feature)
    joints = rig_joints(rig, shape, expression, batch)
    posed = _with_ghost(joint_transforms(joints, pose, rig.parents)[1], ghost_bone)
    return lbs(rest, weights, posed)


def landmarks(rig: Rig, vertices: Tensor) -> Tensor:
    """Landmarks as barycentric points of faces: ``(B, V, 3)`` -> ``(B, L, 3)``."""
    assert vertices.ndim == 3 and vertices.shape[1:] == (rig.num_vertices, 3), (
        f"vertices must be (B, V={rig.num_vertices}, 3), got {tuple(vertices.shape)}"
    )
    corners = vertices[:, rig.faces[rig.landmark_faces]]  # (B, L, 3 corners, 3)
    return (rig.landmark_barycentric[None, :, :, None] * corners).sum(2)


# ---------------------------------------------------------------------------------------
# Building rigs.


def transform_rig(rig: Rig, rotation: Tensor | None = None, scale: float = 1.0) -> Rig:
    """The same rig in another frame and unit: every point ``x`` becomes ``scale * rotation @ x``.

    ``rotation`` ``(3, 3)`` must be proper (det +1). Poses in the new frame are the old
    ones rotated as vectors (``pose @ rotation.T``), because ``M R(a) M^T = R(M a)``;
    the pose correctives are re-expressed on the new frame's feature
    (``R' - I = M (R - I) M^T``). IMavatar, for instance, uses FLAME scaled by 4.
    """
    m = torch.eye(3, dtype=rig.template.dtype) if rotation is None else rotation.to(rig.template)
    assert m.shape == (3, 3), f"rotation must be (3, 3), got {tuple(m.shape)}"
    assert torch.allclose(m @ m.T, torch.eye(3, dtype=m.dtype), atol=1e-5) and torch.det(m) > 0, (
        "rotation must be a proper rotation matrix"
    )
    assert scale > 0, f"scale must be positive, got {scale}"

    def turn(basis: Tensor) -> Tensor:
        return scale * torch.einsum("cd,vdk->vck", m, basis)

    # Row-major vec(M^T X M) = kron(M^T, M^T) vec(X): the old feature from the new one.
    per_joint = torch.kron(m.T, m.T)
    pose_basis = turn(rig.pose_basis).unflatten(2, (-1, 9)) @ per_joint
    return dataclasses.replace(
        rig,
        template=scale * rig.template @ m.T,
        shape_basis=turn(rig.shape_basis),
        expression_basis=turn(rig.expression_basis),
        pose_basis=pose_basis.flatten(2),
        canonical_pose=rig.canonical_pose @ m.T,
        units=rig.units / scale,
    )


def fit_joint_regressor(
    points: Tensor,
    joints: Tensor,
    offsets: Tensor | None = None,
    joint_offsets: Tensor | None = None,
) -> Tensor:
    """The smallest joint regressor that puts the joints where they belong.

    Row ``j`` is the minimum-norm ``w`` with ``sum(w) = 1`` (joints move with the mesh),
    ``w @ points = joints[j]`` and, for each linear mode ``k`` of the mesh,
    ``w @ offsets[k] = joint_offsets[j, k]`` (how the joint moves with that mode; 0 keeps
    it still).

    Args:
        points: ``(V, 3)`` the template mesh.
        joints: ``(J, 3)`` where its joints are.
        offsets: ``(K, V, 3)`` the mesh's blendshapes, or ``None``.
        joint_offsets: ``(J, K, 3)`` the joints' wanted motion per blendshape (``None``: 0).

    Returns:
        ``(J, V)`` in the dtype of ``points``.
    """
    v = points.shape[0]
    device, dtype = points.device, points.dtype
    points, joints = points.cpu().double(), joints.cpu().double()  # gelsd runs on the CPU
    rows = [points.T, points.new_ones(1, v)]
    targets = [joints.T, joints.new_ones(1, joints.shape[0])]
    if offsets is not None:
        k = offsets.shape[0]
        assert offsets.shape == (k, v, 3), f"offsets must be (K, V={v}, 3), got {tuple(offsets.shape)}"
        rows.append(offsets.cpu().double().permute(0, 2, 1).reshape(k * 3, v))
        wanted = joints.new_zeros(joints.shape[0], k, 3) if joint_offsets is None else joint_offsets
        assert wanted.shape == (joints.shape[0], k, 3), (
            f"joint_offsets must be (J, K={k}, 3), got {tuple(wanted.shape)}"
        )
        targets.append(wanted.cpu().double().reshape(joints.shape[0], k * 3).T)
    system, target = torch.cat(rows), torch.cat(targets)
    solution = torch.linalg.lstsq(system, target, driver="gelsd").solution
    residual = float((system @ solution - target).abs().max())
    assert residual < 1e-6 * (1 + float(target.abs().max())), (
        f"joint constraints are inconsistent (residual {residual})"
    )
    return solution.T.to(device=device, dtype=dtype)
