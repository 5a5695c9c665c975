"""A tiny synthetic head rig for tests: an ellipsoid with FLAME's five joints.

Object frame (``x`` right in the image = the person's left, ``y`` down, ``z`` away from
the viewer; the face looks along ``-z``), units of IMavatar's scaled FLAME (a head about
one unit tall, :data:`UNITS` metres per unit). Everything is smooth in the position and
deterministic (the pose correctives come from a seeded generator).
"""

from __future__ import annotations

import math

import torch

from reanimate.avatar.rig import CANONICAL_JAW_OPENING, Rig, fit_joint_regressor

__all__ = ["JOINT_NAMES", "UNITS", "icosphere", "procedural_rig"]

JOINT_NAMES = ("global", "neck", "jaw", "eye_left", "eye_right")
PARENTS = (-1, 0, 1, 1, 1)
#: Metres per unit (IMavatar scales FLAME, in metres, by 4).
UNITS = 0.25

_RADII = (0.36, 0.46, 0.42)
_JOINTS = (
    (0.0, 0.40, 0.05),  # global: the bottom of the neck
    (0.0, 0.22, 0.05),  # neck: where the head turns
    (0.0, 0.05, -0.05),  # jaw hinge
    (0.13, -0.08, -0.30),  # the person's left eye (+x)
    (-0.13, -0.08, -0.30),
)
# Expression shapes: (centre, displacement at the centre, Gaussian radius).
_EXPRESSIONS = (
    ((0.0, 0.30, -0.30), (0.0, 0.05, -0.01), 0.10),  # chin down
    ((0.12, 0.15, -0.35), (0.03, -0.02, 0.0), 0.07),  # smile (the person's left corner)
    ((0.0, -0.25, -0.33), (0.0, -0.04, 0.0), 0.12),  # brows up
)
# Landmarks: surface points nearest to these (eye corners, nose tip, mouth corners, chin).
_LANDMARKS = (
    (0.20, -0.08, -0.4),
    (0.06, -0.08, -0.4),
    (-0.06, -0.08, -0.4),
    (-0.20, -0.08, -0.4),
    (0.0, 0.05, -0.5),
    (0.12, 0.18, -0.4),
    (-0.12, 0.18, -0.4),
    (0.0, 0.38, -0.3),
)
_BARYCENTRIC = (0.5, 0.3, 0.2)
_CORRECTIVE_SCALE = 0.005


def icosphere(subdivisions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit sphere from a subdivided icosahedron: ``(V, 3)`` float32, ``(F, 3)`` int64
    triangles wound counter-clockwise seen from outside (normals out); ``V = 10 * 4^s + 2``."""
    t = (1 + math.sqrt(5)) / 2
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t)]
    vertices += [(0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2)]
    faces += [(10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5)]
    faces += [(2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [torch.tensor(v, dtype=torch.float64) for v in vertices]
    for _ in range(subdivisions):
        midpoint: dict[tuple[int, int], int] = {}
        finer = []
        for corners in faces:
            middles = []
            for a, b in zip(corners, corners[1:] + corners[:1]):
                key = (min(a, b), max(a, b))
                if key not in midpoint:
                    midpoint[key] = len(points)
                    points.append((points[a] + points[b]) / 2)
                middles.append(midpoint[key])
            (a, b, c), (ab, bc, ca) = corners, middles
            finer += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = finer
    sphere = torch.stack(points)
    sphere = sphere / sphere.norm(dim=1, keepdim=True)
    triangles = torch.tensor(faces, dtype=torch.int64)
    a, b, c = sphere[triangles].unbind(1)
    inward = (torch.linalg.cross(b - a, c - a) * (a + b + c)).sum(1) < 0
    triangles[inward] = triangles[inward].flip(1)
    return sphere.float(), triangles


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


def _bump(points: torch.Tensor, centre, radius: float) -> torch.Tensor:
    """Gaussian of the distance to ``centre``: ``(V, 3)`` -> ``(V,)``."""
    return torch.exp(-((points - torch.tensor(centre)) ** 2).sum(1) / (2 * radius**2))


def _skinning(points: torch.Tensor) -> torch.Tensor:
    """Smooth weights ``(V, 5)``: the neck base follows ``global``, the chin the jaw, a patch
    around each eye its eye, the rest the head (``neck``)."""
    y, z = points[:, 1], points[:, 2]
    lower = _smoothstep((y - 0.25) / 0.15)
    chin = _smoothstep((y - 0.08) / 0.12) * _smoothstep(-z / 0.2)
    left, right = (0.9 * _bump(points, (jx, jy, -0.38), 0.05) for jx, jy, _ in _JOINTS[3:])
    rest = 1 - lower
    free = rest * (1 - chin)
    return torch.stack([lower, free * (1 - left - right), rest * chin, free * left, free * right], 1)


def procedural_rig(subdivisions: int = 3, seed: int = 0) -> Rig:
    """A small head rig (642 vertices at 3 subdivisions) with FLAME's joints and parents
    (``global -> neck -> jaw``, ``neck -> eyes``), two shape modes (width, height), three
    smooth expressions, small smooth pose correctives (seeded), eight landmarks and the
    jaw opened by :data:`~reanimate.avatar.rig.CANONICAL_JAW_OPENING` in the canonical pose."""
    sphere, faces = icosphere(subdivisions)
    template = sphere * torch.tensor(_RADII)
    x, y, z = template.unbind(1)
    zero = torch.zeros_like(x)
    shape_basis = torch.stack([torch.stack([0.1 * x, zero, zero], 1), torch.stack([zero, 0.1 * y, zero], 1)], 2)
    expression_basis = torch.stack(
        [_bump(template, centre, radius)[:, None] * torch.tensor(move) for centre, move, radius in _EXPRESSIONS], 2
    )
    # Correctives: per pose feature, a random affine function of the position.
    generator = torch.Generator().manual_seed(seed)
    features = 9 * (len(JOINT_NAMES) - 1)
    coefficients = torch.randn(features, 3, 4, generator=generator) * _CORRECTIVE_SCALE
    homogeneous = torch.cat([template, torch.ones(len(template), 1)], 1)
    pose_basis = torch.einsum("pck,vk->vcp", coefficients, homogeneous)
    joints = torch.tensor(_JOINTS)
    centroids = template[faces].mean(1)
    landmark_faces = torch.cdist(torch.tensor(_LANDMARKS), centroids).argmin(1)
    canonical_pose = torch.zeros(len(JOINT_NAMES), 3)
    canonical_pose[JOINT_NAMES.index("jaw"), 0] = CANONICAL_JAW_OPENING
    return Rig(
        name="procedural",
        template=template,
        faces=faces,
        shape_basis=shape_basis,
        expression_basis=expression_basis,
        pose_basis=pose_basis,
        skinning_weights=_skinning(template),
        joint_regressor=fit_joint_regressor(template, joints),
        parents=torch.tensor(PARENTS),
        joint_names=JOINT_NAMES,
        landmark_faces=landmark_faces,
        landmark_barycentric=torch.tensor(_BARYCENTRIC).expand(len(_LANDMARKS), 3).clone(),
        canonical_pose=canonical_pose,
        units=UNITS,
    )
