"""Tracking (IMavatar's pre-processing): rig parameters of every frame of a video.

For one video of one person this finds, by fitting the rig's landmarks to face-mesh
landmarks, per frame the rig's expression, jaw pose, head rotation (the rig's global
joint) and translation, and once for the whole video the person's identity shape and the
camera's focal length. IMavatar (supplement Sec. 2.6) refines DECA's regressed FLAME
parameters with the objective

    E = E_kp + E_reg + E_temp
    E_kp   = || K(theta, psi, beta, t) - K_target ||_2
    E_reg  = lambda_beta ||beta||^2 + lambda_psi / T sum_tau ||psi_tau||^2
    E_temp = 1 / (T - 1) sum_tau (lambda_psi^temp ||psi_tau+1 - psi_tau||^2
                                  + lambda_theta^temp ||theta_tau+1 - theta_tau||^2
                                  + lambda_t^temp ||t_tau+1 - t_tau||^2)

with lambda_beta = 1e-4, lambda_psi = 2e-4, lambda_psi^temp = 1e-3, lambda_theta^temp =
2/3, lambda_t^temp = 10/3. The authors' pre-processing code (zhengyuf/IMavatar,
``preprocess/DECA/optimize.py``) fixes what the paper leaves open, and
:class:`TrackConfig` follows it: keypoints in crop coordinates scaled to [-1, 1]
(``pixel / size * 2 - 1``); E_kp the mean over frames and keypoints of the Euclidean
distance (not squared); translations in the units of FLAME scaled by 4 (the head fits
the unit sphere: 1 unit = 0.25 m, :data:`TRANSLATION_UNIT_M`); theta every fitted joint's
axis-angle (radians); Adam at learning rate 1e-2. (The code writes the terms as means
over vector components, with weights 1e-2, 1e-2, 1e-1, 10 and 10; over its 100 shape,
50 expression, 15 pose and 3 translation components those are the paper's per-vector
weights, except the temporal expression weight, 1e-1 / 50 = 2e-3 where the paper says
1e-3: the paper's values are used here.)

What differs, and why:

* **No regressor to start from.** IMavatar starts from DECA's per-frame estimates; here
  every frame starts at the neutral face, no rotation, and a translation that puts the
  rig's landmarks where the detected ones are (their centre and spread), and the fit runs
  coarse to fine: first the head rotation, translation and focal on the rigid landmarks
  (:data:`reanimate.faces.multipie.RIGID_68` for a 68-landmark rig), then everything.
  All frames are fitted at once (one batch), so a video of a few hundred frames takes
  seconds on a CPU.
* **The focal length is fitted** (one for the video), unless :attr:`TrackConfig.focal`
  is given; IMavatar uses the calibrated intrinsics of its camera. The principal point is
  the crop's centre.
* **Which joints move.** One joint carries the head rotation (``TrackConfig.head_joint``,
  default the global joint 0, as the authors' code) and the ``"jaw"`` joint the jaw; the
  others (neck, eyes) stay at zero. From 2-D landmarks alone the neck's rotation cannot
  be told from the global one, and IMavatar does not track the eyes either ("the eye
  poses are not tracked", Sec. 2.6). A rig whose jaw opening is an expression as well
  as a joint (ICT-FaceKit: ``jawOpen`` moves the skin, the ``jaw`` joint only the teeth,
  which no landmark sees) has its jaw follow that expression as its canonical state
  pairs them (:class:`_Joints`), and ICT-FaceKit's expressions, blendshape weights, are
  kept in [0, 1] (:data:`EXPRESSION_BOUNDS`).
* **One translation per frame**, as in the paper (the released code, with its global
  pose on, shares one translation over the video).
* Frames without a face (``visible`` False) have no E_kp term; the temporal terms carry
  their parameters over from their neighbours.

Coordinates: the project's camera frame (x right, y down, z away from the camera); the
rig's vertices, posed by :func:`reanimate.avatar.rig.rig_vertices`, plus the frame's
translation are camera-space points (rig units), projected by a pinhole camera
(:class:`reanimate.render.camera.Camera`) onto the square crop.

A track folder (:func:`save_tracking`, :func:`load_tracking`)::

    DIR/track.npz         the fit: shape (S,), expression (T, E), pose (T, J, 3),
                          translation (T, 3), focal, image_size, landmarks (T, L, 2) the
                          targets, landmarks_fit (T, L, 2), landmarks_fit_px (T,),
                          visible (T,), box (4,) the crop in the source frames, source_size
                          (height, width), fps, rig, joint_names, units, config (JSON)
    DIR/frames/00000.png  the crops, uint8 RGB (image_size x image_size)
    DIR/masks/00000.png   foreground masks, 8-bit grey (255 = person)

written to a hidden temporary folder and renamed at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from reanimate.avatar import rig as rigs
from reanimate.errors import InputError
from reanimate.faces.crop import crop_face, track_crop_boxes
from reanimate.faces.mesh import FaceMesh
from reanimate.faces.multipie import NUM_MULTIPIE, RIGID_68, to_multipie
from reanimate.io.files import atomic_path, check_output_folder, list_frame_files, write_npz
from reanimate.io.image import read_image
from reanimate.io.reading import open_frames
from reanimate.render.camera import Camera, project

logger = logging.getLogger(__name__)

#: Metres per translation unit of IMavatar's tracking (FLAME, metres, scaled by 4 so
#: that the head fits the unit sphere): the unit of its temporal translation weight.
TRANSLATION_UNIT_M = 0.25
#: Natural ranges of rigs' expression coefficients, used unless the config gives some:
#: ICT-FaceKit's are blendshape weights in [0, 1].
EXPRESSION_BOUNDS: dict[str, tuple[float, float]] = {"ict": (0.0, 1.0)}
#: Name of the jaw joint among ``Rig.joint_names``.
JAW_JOINT = "jaw"
TRACK_NAME = "track.npz"
FRAMES_DIR = "frames"
MASKS_DIR = "masks"
FORMAT_NAME = "reanimate-track"
FORMAT_VERSION = 1
#: Guard of the Euclidean distance's square root at zero (normalised crop units, i.e.
#: 1e-3 px at 256 px): keeps E_kp's gradient finite for a landmark fitted exactly.
_DISTANCE_EPS = 1e-5


@dataclass(frozen=True)
class TrackConfig:
    """The tracking objective, its optimisation and the crop.

    Weights (IMavatar supplement Sec. 2.6; see the module docstring for the units):

    Attributes:
        shape_weight: lambda_beta on ``||beta||^2``.
        expression_weight: lambda_psi on the frames' mean ``||psi||^2``.
        temporal_expression: lambda_psi^temp on ``||psi_t+1 - psi_t||^2``.
        temporal_pose: lambda_theta^temp on ``||theta_t+1 - theta_t||^2`` (radians, every
            fitted joint).
        temporal_translation: lambda_t^temp on ``||t_t+1 - t_t||^2`` in units of
            :data:`TRANSLATION_UNIT_M`.
        rigid_steps: Adam steps of the first stage (head rotation, translation, focal on
            the rigid landmarks).
        steps: Adam steps of the second stage (everything, all landmarks).
        lr: Adam's learning rate (the authors' 1e-2); the second stage's decays along a
            cosine to ``lr * final_lr_fraction``.
        rigid_lr: the first stage's learning rate (constant).
        final_lr_fraction: see ``lr``.
        focal: the camera's focal length in crop pixels; ``None`` fits it, starting from
            ``initial_fov_degrees``.
        initial_fov_degrees: horizontal field of view across the crop that the fitted
            focal starts from (a face crop of a webcam video sees about 15-25 degrees).
        size: side of the square crops in pixels. IMavatar's videos are cropped to 512 x
            512; 256 here (the avatar is fitted at this size).
        crop_increase: margin of the crop box around the union of the video's face boxes,
            on each side, as a fraction of its longer side (one fixed box for the whole
            video: the camera does not move in the crop).
        rigid_landmarks: landmark indices of the first stage; ``None``: RIGID_68 for a
            68-landmark rig, all otherwise.
        head_joint: the joint that carries the head rotation (``"global"``, as the
            authors' code; ``"neck"`` keeps a rig's neck base, e.g. the shoulders'
            seam, still).
        expression_bounds: ``(low, high)`` kept by every expression coefficient; ``None``:
            the rig's range from :data:`EXPRESSION_BOUNDS`, or none.
    """

    shape_weight: float = 1e-4
    expression_weight: float = 2e-4
    temporal_expression: float = 1e-3
    temporal_pose: float = 2.0 / 3.0
    temporal_translation: float = 10.0 / 3.0
    rigid_steps: int = 200
    steps: int = 600
    lr: float = 1e-2
    rigid_lr: float = 2e-2
    final_lr_fraction: float = 0.02
    focal: float | None = None
    initial_fov_degrees: float = 20.0
    size: int = 256
    crop_increase: float = 0.25
    rigid_landmarks: tuple[int, ...] | None = None
    head_joint: str = "global"
    expression_bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("shape_weight", "expression_weight", "temporal_expression", "temporal_pose"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrackConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.temporal_translation < 0:
            raise ValueError(f"TrackConfig.temporal_translation must be >= 0, got {self.temporal_translation}")
        if self.rigid_steps < 0 or self.steps < 0:
            raise ValueError(f"TrackConfig steps must be >= 0, got {self.rigid_steps} and {self.steps}")
        if not (self.lr > 0 and self.rigid_lr > 0 and 0 < self.final_lr_fraction <= 1):
            raise ValueError("TrackConfig.lr and rigid_lr must be positive and final_lr_fraction in (0, 1]")
        if self.focal is not None and not self.focal > 0:
            raise ValueError(f"TrackConfig.focal must be positive (pixels) or None, got {self.focal}")
        if not 0 < self.initial_fov_degrees < 180:
            raise ValueError(f"TrackConfig.initial_fov_degrees must be in (0, 180), got {self.initial_fov_degrees}")
        if self.size < 16:
            raise ValueError(f"TrackConfig.size must be at least 16 pixels, got {self.size}")
        if self.crop_increase < 0:
            raise ValueError(f"TrackConfig.crop_increase must be >= 0, got {self.crop_increase}")
        if self.expression_bounds is not None:
            low, high = (float(v) for v in self.expression_bounds)
            if not low < high:
                raise ValueError(
                    f"TrackConfig.expression_bounds must be (low, high) with low < high, got {self.expression_bounds}"
                )
            object.__setattr__(self, "expression_bounds", (low, high))
        if self.rigid_landmarks is not None:
            object.__setattr__(self, "rigid_landmarks", tuple(int(i) for i in self.rigid_landmarks))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrackConfig:
        data = dict(data)
        if data.get("rigid_landmarks") is not None:
            data["rigid_landmarks"] = tuple(data["rigid_landmarks"])
        return cls(**data)


@dataclass
class Tracking:
    """Fitted rig parameters of a video (float32 CPU tensors).

    Attributes:
        shape: ``(S,)`` identity shape, one for the video.
        expression: ``(T, E)``.
        pose: ``(T, J, 3)`` axis-angle per joint of the rig: the head rotation at the
            global joint 0, the jaw at the ``"jaw"`` joint, zero elsewhere.
        translation: ``(T, 3)`` camera-space translation added to the posed vertices (rig
            units).
        focal: focal length in crop pixels; principal point at the crop's centre.
        image_size: side of the square crop in pixels.
        landmarks: ``(T, L, 2)`` target landmarks, crop pixels (NaN where not visible).
        landmarks_fit: ``(T, L, 2)`` the fitted rig's projected landmarks, crop pixels.
        landmarks_fit_px: ``(T,)`` mean distance between the two in pixels (NaN where not
            visible).
        visible: ``(T,)`` bool, frames with landmarks.
        rig_name, joint_names, units: of the rig fitted (metres per rig unit).
        objective: the final value of each term of the objective (see the module docstring).
        seconds: time of the fit.
    """

    shape: torch.Tensor
    expression: torch.Tensor
    pose: torch.Tensor
    translation: torch.Tensor
    focal: float
    image_size: int
    landmarks: torch.Tensor
    landmarks_fit: torch.Tensor
    landmarks_fit_px: torch.Tensor
    visible: torch.Tensor
    rig_name: str
    joint_names: tuple[str, ...]
    units: float
    objective: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.expression)

    @property
    def camera(self) -> Camera:
        """The pinhole camera of the crops."""
        return Camera(width=self.image_size, height=self.image_size, focal=self.focal)

    @property
    def mean_error_px(self) -> float:
        """Mean landmark error in pixels over the visible frames."""
        return float(self.landmarks_fit_px[self.visible].mean()) if bool(self.visible.any()) else math.nan


# ---------------------------------------------------------------------------------------
# The landmarks' part of a rig.


def landmark_rig(rig: rigs.Rig) -> rigs.Rig:
    """The part of ``rig`` that its landmarks need: the vertices of the landmark faces plus
    one extra vertex per joint that carries the joint regressor's output.

    Joints are regressed linearly from the blended vertices (template and shape,
    expression and pose blendshapes), so an extra vertex whose template and bases are the
    regressor applied to the full ones gives the same joint, and the new regressor just
    reads those vertices. ``rig_vertices`` on the result gives the landmark vertices of
    the full rig exactly, for a few hundred vertices instead of thousands.
    """
    faces = rig.faces[rig.landmark_faces]  # (L, 3)
    used, remapped = torch.unique(faces.reshape(-1), return_inverse=True)
    regressor = rig.joint_regressor.to(rig.template.dtype)
    joints = regressor.shape[0]

    def take(values: torch.Tensor) -> torch.Tensor:  # (V, ...) -> (n + J, ...)
        regressed = torch.einsum("jv,v...->j...", regressor, values)
        return torch.cat([values[used], regressed.to(values.dtype)])

    weights = torch.zeros(joints, rig.skinning_weights.shape[1], dtype=rig.skinning_weights.dtype)
    weights[:, 0] = 1  # the extra vertices are never skinned into the landmarks
    new_regressor = torch.cat([torch.zeros(joints, len(used)), torch.eye(joints)], dim=1).to(rig.joint_regressor.dtype)
    return dataclasses.replace(
        rig,
        template=take(rig.template),
        shape_basis=take(rig.shape_basis),
        expression_basis=take(rig.expression_basis),
        pose_basis=take(rig.pose_basis),
        skinning_weights=torch.cat([rig.skinning_weights[used], weights]),
        joint_regressor=new_regressor,
        faces=remapped.reshape(-1, 3),
        landmark_faces=torch.arange(len(faces)),
    )


def rig_landmarks(
    rig: rigs.Rig, shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """Camera-space landmarks ``(B, L, 3)`` of the rig posed with ``shape (B, S)``,
    ``expression (B, E)``, ``pose (B, J, 3)`` and moved by ``translation (B, 3)``."""
    vertices, _ = rigs.rig_vertices(rig, shape, expression, pose)
    return rigs.landmarks(rig, vertices) + translation[:, None]


def project_landmarks(points: torch.Tensor, focal: torch.Tensor, image_size: int) -> torch.Tensor:
    """Pinhole projection of camera-space ``(..., L, 3)`` points onto a square crop of side
    ``image_size`` with its principal point at the centre -> ``(..., L, 2)`` pixels.
    ``focal`` (pixels) may be a tensor that is optimised."""
    unit = Camera(width=image_size, height=image_size, focal=1.0, cx=0.0, cy=0.0)
    centre = (image_size - 1) / 2
    return project(points, unit)[..., :2] * focal + centre


# ---------------------------------------------------------------------------------------
# The fit.


class _Parameters(torch.nn.Module):
    """The unknowns of a video. The translation is held as the image-plane direction of
    the rig's origin, ``(t_x / t_z, t_y / t_z)``, and ``log t_z``, and the focal as its
    log: all of the same magnitude, so one Adam learning rate suits them."""

    def __init__(self, rig: rigs.Rig, frames: int, direction: torch.Tensor, log_depth: torch.Tensor, log_focal: float):
        super().__init__()
        self.shape = torch.nn.Parameter(torch.zeros(rig.num_shapes))
        self.expression = torch.nn.Parameter(torch.zeros(frames, rig.num_expressions))
        self.rotation = torch.nn.Parameter(torch.zeros(frames, 3))
        self.jaw = torch.nn.Parameter(torch.zeros(frames, 3))
        self.direction = torch.nn.Parameter(direction.clone())
        self.log_depth = torch.nn.Parameter(log_depth.clone())
        self.log_focal = torch.nn.Parameter(torch.tensor(float(log_focal)))

    def translation(self) -> torch.Tensor:
        depth = self.log_depth.exp()
        return torch.cat([self.direction * depth[:, None], depth[:, None]], dim=1)


@dataclass(frozen=True)
class _Joints:
    """Where the fitted rotations go in the rig's pose.

    ``jaw_follows`` is ``(direction (E,), rotation (3,))`` for a rig whose jaw opening is
    an expression coefficient as well as a joint (ICT-FaceKit: ``jawOpen`` moves the
    skin, the ``jaw`` joint the teeth, which no landmark sees): its canonical state says
    how the two go together, and the jaw then turns by ``rotation`` times the expression's
    component along ``direction`` instead of being fitted.
    """

    count: int
    head: int
    jaw: int | None
    jaw_follows: tuple[torch.Tensor, torch.Tensor] | None

    @classmethod
    def of(cls, rig: rigs.Rig, head_joint: str) -> _Joints:
        head = rig.joint_index(head_joint)
        jaw = rig.joint_index(JAW_JOINT) if JAW_JOINT in rig.joint_names else None
        jaw = None if jaw == head else jaw
        follows = None
        opening = rig.canonical_expression
        if jaw is not None and bool(opening.abs().sum() > 0):
            follows = (opening / opening.square().sum(), rig.canonical_pose[jaw])
        return cls(rig.num_joints, head, jaw, follows)

    @property
    def jaw_fitted(self) -> bool:
        return self.jaw is not None and self.jaw_follows is None

    def pose(self, params: _Parameters) -> torch.Tensor:
        """``(T, J, 3)``: the head rotation, the jaw, zeros elsewhere."""
        zero = torch.zeros_like(params.rotation)
        pose = [zero] * self.count
        pose[self.head] = params.rotation
        if self.jaw_follows is not None:
            direction, rotation = self.jaw_follows
            pose[self.jaw] = (params.expression @ direction)[:, None] * rotation
        elif self.jaw is not None:
            pose[self.jaw] = params.jaw
        return torch.stack(pose, dim=1)


def _spread(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``(..., 2)`` and RMS distance to it ``(...)`` of ``(..., L, 2)`` points."""
    centre = points.mean(dim=-2)
    return centre, (points - centre[..., None, :]).square().sum(-1).mean(-1).sqrt()


def _initial_translation(
    rig: rigs.Rig, targets: torch.Tensor, visible: torch.Tensor, rigid: list[int], focal: float, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame ``(direction (T, 2), log depth (T,))`` that put the neutral rig's rigid
    landmarks on the targets' centre at their size (a weak-perspective guess); frames
    without landmarks take their nearest visible frame's."""
    neutral = rig_landmarks(
        rig,
        torch.zeros(1, rig.num_shapes),
        torch.zeros(1, rig.num_expressions),
        torch.zeros(1, rig.num_joints, 3),
        torch.zeros(1, 3),
    )[0, rigid]
    model_centre, model_spread = _spread(neutral[:, :2])
    model_depth = neutral[:, 2].mean()
    index = torch.arange(len(targets))
    shown = index[visible]
    centre, spread = _spread(targets[shown][:, rigid])
    depth = focal * model_spread / spread.clamp_min(1e-3)  # of the landmarks' centre
    t_xy = (centre - (image_size - 1) / 2) * depth[:, None] / focal - model_centre
    t_z = (depth - model_depth).clamp_min(1e-3 * float(depth.max()))  # in front of the camera
    nearest = (index[:, None] - shown[None]).abs().argmin(dim=1)
    t_xy, t_z = t_xy[nearest], t_z[nearest]
    return t_xy / t_z[:, None], t_z.log()


def _distances(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return ((predicted - targets).square().sum(-1) + _DISTANCE_EPS**2).sqrt()


def fit_tracking(
    rig: rigs.Rig,
    landmarks: torch.Tensor | np.ndarray,
    image_size: int,
    config: TrackConfig | None = None,
    visible: torch.Tensor | np.ndarray | None = None,
) -> Tracking:
    """Fit the rig to a video's landmarks (see the module docstring for the objective).

    Args:
        rig: the rig; its ``L`` landmarks correspond to the targets' (68 Multi-PIE points
            for ICT-FaceKit and FLAME, :func:`reanimate.faces.multipie.to_multipie`).
        landmarks: ``(T, L, 2)`` target landmarks in pixels of the square crop (x right,
            y down); values of frames that are not visible are ignored.
        image_size: side of the crop in pixels.
        config: weights and schedule (default :class:`TrackConfig`).
        visible: ``(T,)`` bool, frames whose landmarks count (default all).

    Returns:
        The :class:`Tracking`. Deterministic for the same inputs (float32, CPU).
    """
    config = config or TrackConfig()
    started = time.perf_counter()
    targets = torch.as_tensor(np.asarray(landmarks, dtype=np.float32) if not torch.is_tensor(landmarks) else landmarks)
    targets = targets.detach().to(torch.float32).cpu()
    frames, count = targets.shape[0], targets.shape[1]
    assert targets.ndim == 3 and targets.shape[2] == 2, f"expected (T, L, 2) landmarks, got {tuple(targets.shape)}"
    assert count == len(rig.landmark_faces), (
        f"{count} target landmarks for a rig with {len(rig.landmark_faces)} landmarks"
    )
    if visible is None:
        visible = torch.ones(frames, dtype=torch.bool)
    visible = torch.as_tensor(np.asarray(visible, dtype=bool)).clone() & torch.isfinite(targets).all(dim=(1, 2))
    assert visible.shape == (frames,), f"visible {tuple(visible.shape)} does not match {frames} frames"
    if frames == 0 or not bool(visible.any()):
        raise InputError(None, "no frame has face landmarks to track")
    targets = torch.where(visible[:, None, None], targets, torch.zeros(()))
    rigid = list(config.rigid_landmarks or (RIGID_68 if count == NUM_MULTIPIE else range(count)))
    assert all(0 <= i < count for i in rigid), f"rigid landmarks {rigid} out of range for {count} landmarks"

    bounds = config.expression_bounds or EXPRESSION_BOUNDS.get(rig.name)
    small = landmark_rig(rig.to("cpu", torch.float32))
    joints = _Joints.of(small, config.head_joint)
    focal0 = config.focal or image_size / (2 * math.tan(math.radians(config.initial_fov_degrees) / 2))
    direction, log_depth = _initial_translation(small, targets, visible, rigid, focal0, image_size)
    params = _Parameters(small, frames, direction, log_depth, math.log(focal0))
    # Normalised crop coordinates ([-1, 1] over the crop): E_kp in the authors' units.
    to_unit = 2.0 / image_size
    translation_scale = small.units / TRANSLATION_UNIT_M
    weight = visible.to(torch.float32)

    def terms(landmark_ids: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        pose = joints.pose(params)
        translation = params.translation()
        points = rig_landmarks(small, params.shape.expand(frames, -1), params.expression, pose, translation)
        predicted = project_landmarks(points, params.log_focal.exp(), image_size)
        distance = _distances(predicted[:, landmark_ids] * to_unit, targets[:, landmark_ids] * to_unit)
        out = {
            "keypoints": (distance.mean(dim=1) * weight).sum() / weight.sum(),
            "shape": config.shape_weight * params.shape.square().sum(),
            "expression": config.expression_weight * params.expression.square().sum(dim=1).mean(),
        }
        if frames > 1:
            steps = lambda x: (x[1:] - x[:-1]).flatten(1).square().sum(dim=1).mean()  # noqa: E731
            out["temporal_expression"] = config.temporal_expression * steps(params.expression)
            out["temporal_pose"] = config.temporal_pose * steps(pose)
            out["temporal_translation"] = config.temporal_translation * steps(translation * translation_scale)
        return out, predicted

    def run(steps: int, names: list[str], landmark_ids: list[int], lr: float, decay: bool) -> None:
        chosen = [getattr(params, name) for name in names]
        if steps == 0 or not chosen:
            return
        optimizer = torch.optim.Adam(chosen, lr=lr)
        for step in range(steps):
            if decay:
                fraction = config.final_lr_fraction
                scale = fraction + (1 - fraction) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps - 1)))
                for group in optimizer.param_groups:
                    group["lr"] = lr * scale
            optimizer.zero_grad(set_to_none=True)
            values, _ = terms(landmark_ids)
            sum(values.values()).backward()
            optimizer.step()
            if bounds is not None and params.expression.requires_grad:
                with torch.no_grad():
                    params.expression.clamp_(*bounds)

    rigid_names = ["rotation", "direction", "log_depth"] + ([] if config.focal else ["log_focal"])
    run(config.rigid_steps, rigid_names, rigid, config.rigid_lr, decay=False)
    every = rigid_names + ["shape", "expression"] + (["jaw"] if joints.jaw_fitted else [])
    run(config.steps, every, list(range(count)), config.lr, decay=True)

    with torch.no_grad():
        values, predicted = terms(list(range(count)))
        error = (predicted - targets).norm(dim=-1).mean(dim=1)
        nan = torch.full_like(error, math.nan)
        result = Tracking(
            shape=params.shape.detach().clone(),
            expression=params.expression.detach().clone(),
            pose=joints.pose(params).detach().clone(),
            translation=params.translation().detach().clone(),
            focal=float(params.log_focal.exp()),
            image_size=int(image_size),
            landmarks=torch.where(visible[:, None, None], targets, torch.full_like(targets, math.nan)),
            landmarks_fit=predicted.detach().clone(),
            landmarks_fit_px=torch.where(visible, error, nan),
            visible=visible,
            rig_name=rig.name,
            joint_names=tuple(rig.joint_names),
            units=float(rig.units),
            objective={name: float(value) for name, value in values.items()},
        )
    result.seconds = time.perf_counter() - started
    logger.info(
        "tracked %d frames in %.1f s: landmark error %.2f px, focal %.0f px",
        frames,
        result.seconds,
        result.mean_error_px,
        result.focal,
    )
    return result


# ---------------------------------------------------------------------------------------
# Videos.


@dataclass(frozen=True)
class VideoLandmarks:
    """The first pass over a video.

    Attributes:
        landmarks: ``(T, 68, 2)`` float32 Multi-PIE points in the source frames' pixels,
            NaN where no face was found.
        boxes: ``(T, 4)`` float64 face boxes (NaN where none).
        source_size: ``(height, width)``.
        fps: frame rate.
    """

    landmarks: np.ndarray
    boxes: np.ndarray
    source_size: tuple[int, int]
    fps: float

    @property
    def visible(self) -> np.ndarray:
        return np.isfinite(self.landmarks).all(axis=(1, 2))


def video_landmarks(path: str | os.PathLike, progress: bool = True) -> VideoLandmarks:
    """Face-mesh landmarks of every frame of a video (or frame folder), streamed: the
    largest face of each frame, mapped to the 68 Multi-PIE points."""
    landmarks, boxes = [], []
    with open_frames(path) as reader, FaceMesh(max_faces=1, video=True) as mesh:
        bar = tqdm(reader, total=reader.frame_count, unit="frame", desc="face mesh", disable=None if progress else True)
        with bar:
            for frame in bar:
                faces = mesh.detect(frame)
                if faces:
                    landmarks.append(to_multipie(faces[0].landmarks)[:, :2])
                    boxes.append(faces[0].box)
                else:
                    landmarks.append(np.full((NUM_MULTIPIE, 2), np.nan, dtype=np.float32))
                    boxes.append(np.full(4, np.nan))
        width, height = reader.size
        fps = reader.fps
    if not landmarks:
        raise InputError(path, "has no frames")
    return VideoLandmarks(np.stack(landmarks).astype(np.float32), np.stack(boxes), (height, width), float(fps))


def crop_box(found: VideoLandmarks, increase: float, path: str | os.PathLike | None = None) -> np.ndarray:
    """One square crop box ``(x0, y0, x1, y1)`` int64 for the whole video: the union of its
    face boxes with a margin of ``increase`` (inside the frame where it fits)."""
    shown = found.boxes[np.isfinite(found.boxes).all(axis=1)]
    if not len(shown):
        raise InputError(path, f"no face found in its {len(found.boxes)} frames; nothing to track")
    return track_crop_boxes(shown, found.source_size, increase=increase, fixed=True)[0]


def to_crop(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Source-frame pixels ``(..., 2)`` -> pixels of the ``size`` crop of the square
    ``box`` (pixel centres map to pixel centres, as :func:`crop_face`'s resize)."""
    scale = size / float(box[2] - box[0])
    return ((points - np.asarray(box[:2], dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)


def crop_frames(path: str | os.PathLike, box: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """The video's frames cut to ``box`` and resized to ``size`` (streamed)."""
    with open_frames(path) as reader:
        for frame in reader:
            yield crop_face(frame, box, size)


def video_masks(path: str | os.PathLike, box: np.ndarray, size: int, progress: bool = True) -> np.ndarray:
    """Foreground masks of the video's crops: ``(T, size, size)`` uint8, 255 = person."""
    from reanimate.avatar.segmentation import SelfieSegmenter

    masks = []
    with SelfieSegmenter() as segment:
        crops = tqdm(crop_frames(path, box, size), unit="frame", desc="segment", disable=None if progress else True)
        with crops:
            for crop in crops:
                masks.append(np.round(segment(crop) * 255).astype(np.uint8))
    return np.stack(masks)


def track_video(
    path: str | os.PathLike, rig: rigs.Rig, config: TrackConfig | None = None, progress: bool = True
) -> tuple[Tracking, np.ndarray, np.ndarray, VideoLandmarks]:
    """Track a video: face mesh on every frame, one fixed square crop, foreground masks of
    the crops, and the fit (:func:`fit_tracking`) in the crop's pixels.

    Returns:
        ``(tracking, box, masks, found)``: the fit; the crop box ``(x0, y0, x1, y1)`` in
        the source frames; ``(T, size, size)`` uint8 masks; the face-mesh pass (source
        size, fps, raw landmarks). The video is read three times (landmarks, masks, and
        :func:`save_tracking`'s crops), never held whole.
    """
    config = config or TrackConfig()
    found = video_landmarks(path, progress)
    box = crop_box(found, config.crop_increase, path)
    masks = video_masks(path, box, config.size, progress)
    if len(masks) != len(found.landmarks):
        raise InputError(path, f"gave {len(found.landmarks)} frames, then {len(masks)}; is it being written?")
    landmarks = to_crop(found.landmarks, box, config.size)
    tracking = fit_tracking(rig, landmarks, config.size, config, found.visible)
    return tracking, box, masks, found


# ---------------------------------------------------------------------------------------
# Track folders.


@dataclass
class TrackFolder:
    """A loaded track folder (see the module docstring).

    Attributes:
        path: the folder.
        tracking: the fit.
        config: the :class:`TrackConfig` it was made with.
        box: ``(4,)`` crop box in the source frames; source_size ``(height, width)``; fps.
        frames, masks: the crop and mask files, one per frame, in order.
    """

    path: Path
    tracking: Tracking
    config: TrackConfig
    box: np.ndarray
    source_size: tuple[int, int]
    fps: float
    frames: list[Path]
    masks: list[Path]

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        """Crop ``index``: uint8 ``(size, size, 3)`` RGB."""
        return read_image(self.frames[index])

    def mask(self, index: int) -> np.ndarray:
        """Mask ``index``: float32 ``(size, size)`` in [0, 1]."""
        mask = cv2.imread(str(self.masks[index]), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise InputError(self.masks[index], "cannot be read as a mask image")
        return mask.astype(np.float32) / 255.0

    def parameters(self, index: int) -> dict[str, torch.Tensor]:
        """The rig parameters of frame ``index``: shape, expression, pose, translation."""
        t = self.tracking
        return {
            "shape": t.shape,
            "expression": t.expression[index],
            "pose": t.pose[index],
            "translation": t.translation[index],
        }


def _frame_name(index: int) -> str:
    return f"{index:05d}.png"


def save_tracking(
    directory: str | os.PathLike,
    tracking: Tracking,
    frames: Iterable[np.ndarray],
    masks: Iterable[np.ndarray],
    box: np.ndarray,
    source_size: tuple[int, int],
    fps: float,
    config: TrackConfig,
    overwrite: bool = False,
) -> Path:
    """Write a track folder (layout in the module docstring) atomically.

    Args:
        directory: the folder to create (an existing non-empty one only with ``overwrite``).
        tracking: the fit.
        frames: the ``T`` crops, uint8 ``(size, size, 3)`` RGB (an iterator is fine,
            e.g. :func:`crop_frames`).
        masks: the ``T`` masks, uint8 ``(size, size)`` (255 = person) or float in [0, 1].
        box, source_size, fps: where the crops come from.
        config: the tracking's config.

    Returns:
        The folder.
    """
    directory = Path(directory)
    check_output_folder(directory, overwrite)
    count = len(tracking)
    size = tracking.image_size
    with atomic_path(directory, directory=True) as temp:
        (temp / FRAMES_DIR).mkdir()
        (temp / MASKS_DIR).mkdir()
        written = 0
        for index, (frame, mask) in enumerate(zip(frames, masks, strict=False)):
            if index >= count:
                break
            frame, mask = np.asarray(frame), np.asarray(mask)
            assert frame.shape == (size, size, 3) and frame.dtype == np.uint8, (
                f"frame {index}: expected uint8 ({size}, {size}, 3), got {frame.dtype} {frame.shape}"
            )
            assert mask.shape == (size, size), f"mask {index}: expected ({size}, {size}), got {mask.shape}"
            if mask.dtype != np.uint8:
                mask = np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8)
            name = _frame_name(index)
            if not cv2.imwrite(str(temp / FRAMES_DIR / name), np.ascontiguousarray(frame[..., ::-1])):
                raise InputError(temp / FRAMES_DIR / name, "could not be written")
            if not cv2.imwrite(str(temp / MASKS_DIR / name), np.ascontiguousarray(mask)):
                raise InputError(temp / MASKS_DIR / name, "could not be written")
            written += 1
        if written != count:
            raise InputError(directory, f"{count} tracked frames but {written} frames and masks to write")
        arrays = {
            "format": np.array(FORMAT_NAME),
            "version": np.array(FORMAT_VERSION),
            "shape": tracking.shape.numpy(),
            "expression": tracking.expression.numpy(),
            "pose": tracking.pose.numpy(),
            "translation": tracking.translation.numpy(),
            "focal": np.array(tracking.focal, dtype=np.float64),
            "image_size": np.array(size),
            "landmarks": tracking.landmarks.numpy(),
            "landmarks_fit": tracking.landmarks_fit.numpy(),
            "landmarks_fit_px": tracking.landmarks_fit_px.numpy(),
            "visible": tracking.visible.numpy(),
            "box": np.asarray(box, dtype=np.int64),
            "source_size": np.asarray(source_size, dtype=np.int64),
            "fps": np.array(float(fps)),
            "rig": np.array(tracking.rig_name),
            "joint_names": np.array(tracking.joint_names),
            "units": np.array(tracking.units),
            "objective": np.array(json.dumps(tracking.objective)),
            "seconds": np.array(tracking.seconds),
            "config": np.array(json.dumps(config.to_dict())),
        }
        write_npz(temp / TRACK_NAME, arrays)
    return directory


def load_tracking(directory: str | os.PathLike) -> TrackFolder:
    """Read a track folder written by :func:`save_tracking`.

    Raises:
        InputError: the folder is missing, not a track folder, or incomplete.
    """
    directory = Path(directory)
    file = directory / TRACK_NAME
    if not file.is_file():
        raise InputError(directory, f"is not a track folder (no {TRACK_NAME})")
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(file, f"cannot be read ({exc})") from None
    if str(arrays.get("format", "")) != FORMAT_NAME or int(arrays.get("version", -1)) != FORMAT_VERSION:
        raise InputError(file, f"is not a {FORMAT_NAME} version {FORMAT_VERSION} file")
    tensor = lambda name: torch.from_numpy(np.array(arrays[name]))  # noqa: E731
    tracking = Tracking(
        shape=tensor("shape"),
        expression=tensor("expression"),
        pose=tensor("pose"),
        translation=tensor("translation"),
        focal=float(arrays["focal"]),
        image_size=int(arrays["image_size"]),
        landmarks=tensor("landmarks"),
        landmarks_fit=tensor("landmarks_fit"),
        landmarks_fit_px=tensor("landmarks_fit_px"),
        visible=tensor("visible"),
        rig_name=str(arrays["rig"]),
        joint_names=tuple(str(n) for n in arrays["joint_names"]),
        units=float(arrays["units"]),
        objective=json.loads(str(arrays["objective"])),
        seconds=float(arrays["seconds"]),
    )
    frames = list_frame_files(directory / FRAMES_DIR) if (directory / FRAMES_DIR).is_dir() else []
    masks = list_frame_files(directory / MASKS_DIR) if (directory / MASKS_DIR).is_dir() else []
    if len(frames) != len(tracking) or len(masks) != len(tracking):
        raise InputError(
            directory, f"has {len(frames)} frames and {len(masks)} masks for {len(tracking)} tracked frames"
        )
    return TrackFolder(
        path=directory,
        tracking=tracking,
        config=TrackConfig.from_dict(json.loads(str(arrays["config"]))),
        box=arrays["box"],
        source_size=tuple(int(v) for v in arrays["source_size"]),
        fps=float(arrays["fps"]),
        frames=frames,
        masks=masks,
    )


def track_to_folder(
    path: str | os.PathLike,
    directory: str | os.PathLike,
    rig: rigs.Rig,
    config: TrackConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TrackFolder:
    """:func:`track_video` then :func:`save_tracking`: a video to a track folder."""
    config = config or TrackConfig()
    check_output_folder(Path(directory), overwrite)
    tracking, box, masks, found = track_video(path, rig, config, progress)
    save_tracking(
        directory,
        tracking,
        crop_frames(path, box, config.size),
        masks,
        box,
        found.source_size,
        found.fps,
        config,
        overwrite,
    )
    return load_tracking(directory)


__all__ = [
    "TRANSLATION_UNIT_M",
    "TrackConfig",
    "TrackFolder",
    "Tracking",
    "VideoLandmarks",
    "crop_box",
    "crop_frames",
    "fit_tracking",
    "landmark_rig",
    "load_tracking",
    "project_landmarks",
    "rig_landmarks",
    "save_tracking",
    "to_crop",
    "track_to_folder",
    "track_video",
    "video_landmarks",
    "video_masks",
]
