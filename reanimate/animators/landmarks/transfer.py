"""Motion transfer: where the source's landmarks go for one driving frame.

* **Relative motion**, split into head pose and expression: the driver's
  :class:`~reanimate.motion.HeadMotion` since its initial frame (rotation, scale and
  translation of its rigid points, and the expression they leave) is transferred onto
  the source's own 3-D landmarks (:func:`~reanimate.motion.relative_head_motion`, the
  3-D form of FOMM supp. Eq. 13-14 with adapt-scale). With ``head_pose=False`` the plain
  2-D rule (:func:`reanimate.motion.relative_motion`: the driver's displacements, scaled
  by the face-size ratio) is used instead; it copies the driver's foreshortening and so
  under-turns a source that is not seen from the front.
* **Retargeting where displacements are not enough** (as zero-shot portrait animation
  does, Averbuch-Elor et al. 2017): eyelids follow the driver's eye *opening ratio* so
  that blinks close the source's eyes fully whatever their size; irises follow the
  driver's gaze in eye-corner coordinates (drawn by the eyeball layer, :mod:`.eyes`).
* A head that the driver would carry out of the crop (walking towards the camera,
  leaving its frame) is held inside it by :func:`keep_head_inside` instead of being cut
  off.
"""

from __future__ import annotations

import numpy as np
import torch

from ...faces.pose import head_rotation
from ...geometry import movement_scale
from ...geometry.mesh import fit_local_jacobians
from ...geometry.relative import polygon_area
from ...motion import HeadMotion, Keypoints, relative_head_motion, relative_motion
from .config import EYES, FACE_OVAL, RIGID, LandmarkAnimatorConfig
from .eyes import eye_frame, eye_opening_ratio, from_eye, lid_height, to_eye
from .source import DrivingFace, LandmarkSource, oval_ring, to_normalized, to_pixels


def transfer(
    config: LandmarkAnimatorConfig, source: LandmarkSource, driving: DrivingFace, initial: DrivingFace
) -> tuple[Keypoints, np.ndarray]:
    """Relative motion plus eye retargeting.

    Returns:
        target keypoints (batch 1, [-1, 1]) and ``(478, 3)`` target landmarks in
        the crop's pixels (z carried over relatively, for drawing order).
    """
    if config.head_pose:
        points = pose_transfer(source, driving, initial)
    else:
        points = displacement_transfer(config, source, driving, initial)
    if config.crop_margin is not None:
        points = keep_head_inside(
            points, source.landmarks, config.inner_ring, config.crop_margin * source.side, source.side
        )
    if config.eyes:
        retarget_eyes(config, source, points, driving.landmarks, initial.landmarks)
    value = to_normalized(points[None], (0, 0), source.side)
    # Jacobians against the source (the reference of every fitted Jacobian).
    return Keypoints(value, fit_local_jacobians(source.keypoints.value, value, source.neighbours)), points


def pose_transfer(source: LandmarkSource, driving: DrivingFace, initial: DrivingFace) -> np.ndarray:
    """The driver's :class:`HeadMotion` since ``initial`` on the source's 3-D landmarks
    (:func:`relative_head_motion`): ``(478, 3)`` crop pixels.

    The source and the initial frame are read with their head axes
    (:func:`~reanimate.faces.head_rotation`); the driving frame is tracked from the
    initial one (its turn and scale fitted on the rigid points), so that what moves
    apart from the skull is expression.
    """
    if initial.rotation is None:
        initial.rotation = head_rotation(initial.landmarks)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float64))[None]  # noqa: E731
    rigid = torch.from_numpy(RIGID)
    start = as_tensor(initial.landmarks)
    initial_head = HeadMotion.from_points(start, as_tensor(initial.rotation), rigid)
    driving_head = HeadMotion.tracked(as_tensor(driving.landmarks), start, initial_head, rigid)
    source_head = HeadMotion.from_points(as_tensor(source.landmarks), as_tensor(source.rotation), rigid)
    return relative_head_motion(source_head, driving_head, initial_head).points()[0].numpy()


def displacement_transfer(
    config: LandmarkAnimatorConfig, source: LandmarkSource, driving: DrivingFace, initial: DrivingFace
) -> np.ndarray:
    """FOMM's 2-D relative keypoints (adapt-scale), z by the same rule: ``(478, 3)``."""
    if initial.scale is None:  # once per (source, reference frame): hull areas are not free
        initial.scale = (
            movement_scale(source.keypoints.value, initial.keypoints.value) if config.adapt_scale else torch.ones(1)
        )
    target = relative_motion(source.keypoints, driving.keypoints, initial.keypoints, adapt_movement_scale=initial.scale)
    points = to_pixels(target.value[0], (0, 0), source.side)
    # Depth moves by the same relative rule, in the driver's face-size units.
    scale = np.sqrt(
        polygon_area(source.landmarks[FACE_OVAL, :2]) / max(polygon_area(initial.landmarks[FACE_OVAL, :2]), 1e-6)
    )
    z = source.landmarks[:, 2] + scale * (driving.landmarks[:, 2] - initial.landmarks[:, 2])
    return np.concatenate([points, z[:, None]], axis=1)


def keep_head_inside(points: np.ndarray, source: np.ndarray, ring: float, margin: float, side: float) -> np.ndarray:
    """Shift (and if need be shrink) moved landmarks so that their anchor ring stays in the crop.

    The ring is the face oval scaled by ``ring`` about its centre (the inner anchor ring
    of the animator). Its bounding box must lie within ``[margin, side - margin]`` on
    both axes, or within the source ring's own box where that already reaches further
    out (a face at the image's edge). A box that is too large is first scaled down about
    its centre, then the whole head is translated back inside: one similarity, so
    expressions and the head's rotation are untouched. Landmarks whose ring fits are
    returned unchanged.

    Args:
        points: ``(N, 2+)`` target landmarks in crop pixels (a third column, depth, is
            scaled with x and y).
        source: ``(N, 2+)`` the source's landmarks, same frame.

    Returns:
        ``(N, 2+)`` a new array.
    """

    def ring_box(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = oval_ring(p, ring)
        return r.min(0), r.max(0)

    src_lo, src_hi = ring_box(source)
    lo = np.minimum(margin, src_lo)
    hi = np.maximum(side - margin, src_hi)
    box_lo, box_hi = ring_box(points)
    out = np.array(points, dtype=np.float64, copy=True)
    shrink = float(min(1.0, *((hi - lo) / np.maximum(box_hi - box_lo, 1e-9))))
    if shrink < 1.0:
        centre = (box_lo + box_hi) / 2
        out[:, :2] = centre + shrink * (out[:, :2] - centre)
        out[:, 2:] *= shrink
        box_lo, box_hi = centre + shrink * (box_lo - centre), centre + shrink * (box_hi - centre)
    out[:, :2] += np.maximum(lo - box_lo, 0.0) - np.maximum(box_hi - hi, 0.0)
    return out


# -- the eyes --------------------------------------------------------------------------------


def opening(config: LandmarkAnimatorConfig, driving: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """``(2,)`` per eye the driver's opening since its ``initial`` landmarks, with
    ``config.closed_ratio`` counted as closed (:func:`eye_opening_ratio`)."""
    return eye_opening_ratio(driving, initial, config.closed_ratio)


def closing(config: LandmarkAnimatorConfig, driving: DrivingFace, initial: DrivingFace) -> np.ndarray:
    """``(2,)`` per eye how far the driver has closed it since ``initial`` (0 open, 1
    closed; 0 when ``config.eyes`` is off)."""
    if not config.eyes:
        return np.zeros(2)
    return 1.0 - np.clip(opening(config, driving.landmarks, initial.landmarks), 0.0, 1.0)


def gaze_shifts(
    config: LandmarkAnimatorConfig, source: LandmarkSource, driving: np.ndarray, initial: np.ndarray
) -> list[np.ndarray]:
    """Per eye, the driver's iris displacement since its initial frame, in the
    driver's eye-corner coordinates (clipped to ``max_gaze`` eye widths), as a shift
    of the source's iris in source pixels: ``[(2,), (2,)]``."""
    shifts = []
    for eye in EYES:
        a, b = eye["corners"]
        centre = eye["iris"][0]
        d_now = to_eye(eye_frame(driving[a, :2], driving[b, :2]), driving[centre, :2])
        d_ref = to_eye(eye_frame(initial[a, :2], initial[b, :2]), initial[centre, :2])
        _, basis = eye_frame(source.landmarks[a, :2], source.landmarks[b, :2])
        shifts.append(basis @ np.clip(d_now - d_ref, -config.max_gaze, config.max_gaze))
    return shifts


def retarget_eyes(
    config: LandmarkAnimatorConfig, source: LandmarkSource, points: np.ndarray, driving: np.ndarray, initial: np.ndarray
) -> None:
    """In place: lids at the driver's opening ratio; iris points kept between them."""
    for eye, ratio in zip(EYES, opening(config, driving, initial)):
        a, b = eye["corners"]
        # Similarity taking the source eye's corners to the target's (2 points fix it).
        src_frame = eye_frame(source.landmarks[a, :2], source.landmarks[b, :2])
        tgt_frame = eye_frame(points[a, :2], points[b, :2])
        ratio = float(np.clip(ratio, 0.0, config.max_eye_ratio))
        upper, lower = eye["pairs"][:, 0], eye["pairs"][:, 1]
        # Lid-gap vectors in eye coordinates, scaled by the driver's opening ratio.
        gaps = to_eye(src_frame, source.landmarks[upper, :2]) - to_eye(src_frame, source.landmarks[lower, :2])
        lower_eye = to_eye(tgt_frame, points[lower, :2])
        if config.eyes:
            points[upper, :2] = from_eye(tgt_frame, lower_eye + ratio * gaps)
        iris = eye["iris"]
        # The iris points ride with the eye (the gaze is drawn by the eyeball layer).
        q = to_eye(src_frame, source.landmarks[iris, :2])
        # Irises stay between the lids: their height above the lower lid scales with
        # the opening, so a closed eye hides them instead of folding the mesh.
        low_src = lid_height(to_eye(src_frame, source.landmarks[eye["lower"], :2]), q[:, 0])
        low_tgt = lid_height(to_eye(tgt_frame, points[eye["lower"], :2]), q[:, 0])
        q[:, 1] = low_tgt + ratio * (q[:, 1] - low_src) if config.eyes else q[:, 1]
        points[iris, :2] = from_eye(tgt_frame, q)
