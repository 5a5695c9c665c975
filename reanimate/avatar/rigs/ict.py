"""The ICT-FaceKit head the project ships, as a :class:`~reanimate.avatar.rig.Rig`.

It is the synthetic heads' rig (:mod:`reanimate.heads.rig`) written as FLAME-style linear
blend skinning, so that it poses the heads exactly as :func:`reanimate.heads.rig.head_vertices`
does (before the camera's scale and translation):

* Frame and units: the object frame (``ICT_TO_OBJECT``: ``x`` right, ``y`` down, ``z``
  away from the viewer), centimetres (``units = 0.01``).
* Bases: ICT-FaceKit's 50 identity modes and 53 expression shapes, except that
  ``jawOpen`` no longer moves the jaw's rigid vertices (lower teeth, lower gums, tongue):
  those turn with the ``jaw`` joint about the fitted hinge. Opening the mouth as the heads
  do is therefore ``jawOpen = a`` *and* a jaw rotation of ``a`` times the hinge angle
  (:func:`ict_pose`). No pose correctives (``P = 36`` zeros).
* Joints, FLAME's ``global -> neck -> jaw``, ``neck -> eye_left, eye_right``: ``global``
  and ``neck`` at the heads' neck pivot; the skinning weights split each vertex between
  them by the heads' neck blend (``neck`` = the head rotation). ``jaw`` at the hinge, its
  vertices weighted 1. The eyes at the template's eyeball centres, their vertices weighted
  1. The joint regressor reproduces the heads exactly: the hinge moves with the identity
  as the mean of the jaw's vertices, the pivot and eye centres stay put, and no expression
  moves a joint.
* Landmarks: the 68 Multi-PIE vertices of the heads (``HeadModel.landmarks``), as a corner
  of one face each.
* Canonical space: the jaw opened by IMavatar's 0.2 rad, i.e. hinge angle 0.2 rad and
  ``jawOpen`` = 0.2 rad / the hinge angle (about 0.45).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import torch

from reanimate.avatar.rig import CANONICAL_JAW_OPENING, Rig, fit_joint_regressor, matrix_to_axis_angle
from reanimate.geometry.rotation import euler_to_rotation
from reanimate.heads.model import MODEL_PATH, HeadModel, load_head_model
from reanimate.heads.rig import ICT_TO_OBJECT, HeadPose, build_rig

__all__ = ["JOINT_NAMES", "UNITS", "head_pose_parameters", "ict_pose", "ict_rig"]

JOINT_NAMES = ("global", "neck", "jaw", "eye_left", "eye_right")
PARENTS = (-1, 0, 1, 1, 1)
#: Metres per unit (ICT-FaceKit is in centimetres).
UNITS = 0.01


def ict_rig(path: str | os.PathLike | None = None) -> Rig:
    """The rig of the converted ICT-FaceKit model (default: the shipped one).

    Cached per path; the returned tensors are shared, do not change them in place.

    Raises:
        InputError: naming the file, when it is missing or not a converted model.
    """
    return _ict_rig(Path(path) if path is not None else MODEL_PATH)


@functools.lru_cache(maxsize=2)
def _ict_rig(path: Path) -> Rig:
    model = load_head_model(path)
    heads = build_rig(model)
    flip = ICT_TO_OBJECT
    template = model.template @ flip
    identity = model.identity @ flip
    expression = model.expression.clone()
    expression[heads.jaw_index, heads.jaw_vertices] = 0
    expression = expression @ flip

    neck = heads.neck_weight
    weights = torch.zeros(model.num_vertices, len(JOINT_NAMES))
    weights[:, 0], weights[:, 1] = 1 - neck, neck
    for column, index in [(2, heads.jaw_vertices), (3, heads.eye_vertices[0]), (4, heads.eye_vertices[1])]:
        # the heads turn these with the head (all have neck weight 1) after the jaw or the eye
        weights[index, 1] = 0
        weights[index, column] = neck[index]

    pivot = heads.neck_pivot @ flip
    joints = torch.stack([pivot, pivot, heads.jaw_point @ flip, *(heads.eye_centres @ flip)])
    offsets = torch.cat([identity, expression])
    joint_offsets = torch.zeros(len(JOINT_NAMES), len(offsets), 3)
    joint_offsets[2, : model.num_identities] = identity[:, heads.jaw_vertices].mean(1)

    triangles = model.triangles
    landmark_faces, corners = [], []
    for vertex in model.landmarks.tolist():
        face, corner = (triangles == vertex).nonzero()[0].tolist()
        landmark_faces.append(face)
        corners.append(corner)
    barycentric = torch.nn.functional.one_hot(torch.tensor(corners), 3).float()

    opening = CANONICAL_JAW_OPENING / math.radians(heads.jaw_angle)
    canonical_pose = torch.zeros(len(JOINT_NAMES), 3)
    canonical_pose[2] = CANONICAL_JAW_OPENING * (flip @ heads.jaw_axis)
    canonical_expression = torch.zeros(len(model.expression_names))
    canonical_expression[heads.jaw_index] = opening
    return Rig(
        name="ict",
        template=template,
        faces=triangles,
        shape_basis=identity.permute(1, 2, 0).contiguous(),
        expression_basis=expression.permute(1, 2, 0).contiguous(),
        pose_basis=torch.zeros(model.num_vertices, 3, 9 * (len(JOINT_NAMES) - 1)),
        skinning_weights=weights,
        joint_regressor=fit_joint_regressor(template, joints, offsets, joint_offsets),
        parents=torch.tensor(PARENTS),
        joint_names=JOINT_NAMES,
        landmark_faces=torch.tensor(landmark_faces),
        landmark_barycentric=barycentric,
        canonical_pose=canonical_pose,
        units=UNITS,
        canonical_expression=canonical_expression,
    )


def ict_pose(
    rotation: torch.Tensor,
    gaze: torch.Tensor,
    jaw_open: torch.Tensor,
    model: HeadModel | None = None,
) -> torch.Tensor:
    """The rig pose of the heads' parameters: ``(B, 5, 3)`` axis-angle (object frame).

    Args:
        rotation: ``(B, 3)`` head yaw, pitch, roll in degrees (-> the ``neck`` joint).
        gaze: ``(B, 2)`` eyeball yaw and pitch in degrees (-> both eye joints).
        jaw_open: ``(B,)`` the ``jawOpen`` weight (-> the ``jaw`` joint, by the hinge angle).
        model: the head model (default: the shipped one).
    """
    heads = build_rig(model or load_head_model())
    pose = rotation.new_zeros(rotation.shape[0], len(JOINT_NAMES), 3)
    head = euler_to_rotation(rotation[:, 0], rotation[:, 1], rotation[:, 2]).to(rotation.dtype)
    eyes = euler_to_rotation(gaze[:, 0], gaze[:, 1], torch.zeros_like(gaze[:, 0])).to(rotation.dtype)
    axis = (ICT_TO_OBJECT @ heads.jaw_axis).to(rotation)
    pose[:, 1] = matrix_to_axis_angle(head)
    pose[:, 2] = torch.deg2rad(jaw_open * heads.jaw_angle)[:, None] * axis
    pose[:, 3] = pose[:, 4] = matrix_to_axis_angle(eyes)
    return pose


def head_pose_parameters(
    head_pose: HeadPose, model: HeadModel | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A :class:`~reanimate.heads.rig.HeadPose` as rig parameters ``(shape (B, 50),
    expression (B, 53), pose (B, 5, 3))``: :func:`~reanimate.avatar.rig.rig_vertices` of
    them, times ``head_pose.scale`` plus ``head_pose.translation``, is ``head_vertices``."""
    model = model or load_head_model()
    identity = head_pose.identity
    shape = identity.new_zeros(len(head_pose), model.num_identities)
    shape[:, : identity.shape[1]] = identity
    jaw = head_pose.expression[:, model.expression_index("jawOpen")]
    return shape, head_pose.expression, ict_pose(head_pose.rotation, head_pose.gaze, jaw, model)
