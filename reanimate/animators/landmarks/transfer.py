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
* **Head attributes** (MMFA Sec. 4.3): the transfer can take only some of the driver's
  rotation, scale, translation and expression (:func:`moved_points`; without the
  expression the eyes are not retargeted either), and head edits place the source's
  landmarks at any :class:`~reanimate.motion.HeadMotion` of its own (:func:`source_head`,
  :func:`expression_from`); both go through :func:`place` before drawing.
* **Retargeting controls** (:class:`~reanimate.animators.base.Retarget`: ``animate
  --head/--expression/--eyes/--lips/--blinks``): the head's turn, scale and translation
  are scaled towards the source's (:meth:`Retarget.head_motion`), and each landmark's
  expression offset by a blend of the expression, eye and lip factors weighted by how
  much it belongs to the eyes or the mouth and jaw (:func:`expression_weights`); the
  lids take the eye factor of the driver's change of opening (none with blinks
  suppressed), the gaze the eye factor of its shift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ...faces import topology as mesh
from ...faces.pose import head_rotation
from ...geometry import movement_scale
from ...geometry.mesh import fit_local_jacobians
from ...geometry.relative import polygon_area, rigid_frame
from ...motion import HEAD_ATTRIBUTES, HeadMotion, Keypoints, relative_head_motion, relative_motion
from ..base import Retarget
from .config import EYES, FACE_OVAL, LIPS_OUTER, RIGID, LandmarkAnimatorConfig
from .eyes import eye_frame, eye_opening_ratio, from_eye, lid_height, to_eye
from .source import DrivingFace, LandmarkSource, oval_ring, to_normalized, to_pixels


@dataclass
class FaceChange:
    """An expression change as the eyes and the mouth read it: a face's landmarks
    ``(478, 2+)`` now and in its reference frame, in one frame and unit (a driver's
    pixels, or a head's canonical frame, where x and y are a frontal view), and the
    driver's frame for the mouth interior (None: shadow). ``lids`` and ``gaze``: how much
    of the change of eye opening and of the iris shift to draw (:class:`Retarget`)."""

    landmarks: np.ndarray
    reference: np.ndarray
    frame: np.ndarray | None = None
    lids: float = 1.0
    gaze: float = 1.0

    @classmethod
    def retargeted(
        cls, landmarks: np.ndarray, reference: np.ndarray, frame: np.ndarray | None, retarget: Retarget | None
    ) -> FaceChange:
        retarget = retarget or Retarget()
        return cls(landmarks, reference, frame, retarget.lid_factor, retarget.eye_factor)


def transfer(
    config: LandmarkAnimatorConfig,
    source: LandmarkSource,
    driving: DrivingFace,
    initial: DrivingFace,
    attributes: Iterable[str] = HEAD_ATTRIBUTES,
    retarget: Retarget | None = None,
) -> tuple[Keypoints, np.ndarray]:
    """Relative motion plus eye retargeting (the eyes only when ``expression`` is
    among the ``attributes`` transferred), scaled by ``retarget``.

    Returns:
        target keypoints (batch 1, [-1, 1]) and ``(478, 3)`` target landmarks in
        the crop's pixels (z carried over relatively, for drawing order).
    """
    attributes = tuple(attributes)
    change = (
        FaceChange.retargeted(driving.landmarks, initial.landmarks, None, retarget)
        if "expression" in attributes
        else None
    )
    return place(config, source, moved_points(config, source, driving, initial, attributes, retarget), change)


def moved_points(
    config: LandmarkAnimatorConfig,
    source: LandmarkSource,
    driving: DrivingFace,
    initial: DrivingFace,
    attributes: Iterable[str] = HEAD_ATTRIBUTES,
    retarget: Retarget | None = None,
) -> np.ndarray:
    """The source's landmarks moved by the driver since ``initial`` (step 2 of the
    package docstring), ``(478, 3)`` crop pixels; only the head ``attributes`` named
    are taken from the driver, as much of each as ``retarget`` says."""
    attributes = tuple(attributes)
    if config.head_pose:
        return pose_transfer(source, driving, initial, attributes, retarget)
    if set(attributes) != set(HEAD_ATTRIBUTES):
        raise ValueError("the 2-D displacement transfer (head_pose=False) cannot separate head attributes")
    if retarget is not None and retarget.used():
        raise ValueError("the 2-D displacement transfer (head_pose=False) cannot retarget parts of the motion")
    return displacement_transfer(config, source, driving, initial)


def place(
    config: LandmarkAnimatorConfig, source: LandmarkSource, points: np.ndarray, change: FaceChange | None
) -> tuple[Keypoints, np.ndarray]:
    """Target landmarks ready to draw, shared by animation and head edits: held inside
    the crop (:func:`keep_head_inside`), lids and irises retargeted to ``change`` (None:
    the eyes ride with the head as they are), and their keypoints with Jacobians.

    Args:
        points: ``(478, 3)`` moved landmarks in crop pixels (not changed).

    Returns:
        target keypoints (batch 1, [-1, 1]) and the ``(478, 3)`` target landmarks.
    """
    points = np.array(points, dtype=np.float64, copy=True)
    if config.crop_margin is not None:
        points = keep_head_inside(
            points, source.landmarks, config.inner_ring, config.crop_margin * source.side, source.side
        )
    if config.eyes and change is not None:
        retarget_eyes(config, source, points, change.landmarks, change.reference, change.lids)
    value = to_normalized(points[None], (0, 0), source.side)
    # Jacobians against the source (the reference of every fitted Jacobian).
    return Keypoints(value, fit_local_jacobians(source.keypoints.value, value, source.neighbours)), points


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, np.float64))[None]


def head_of(landmarks: np.ndarray, rotation: np.ndarray | None = None) -> HeadMotion:
    """The :class:`HeadMotion` of ``(478, 3)`` landmarks (batch 1, float64): their head
    axes (:func:`~reanimate.faces.head_rotation`, unless given) and the centre and size
    of their :data:`RIGID` points; the expression is in the canonical points (zero
    ``expression`` field)."""
    rotation = head_rotation(landmarks) if rotation is None else rotation
    return HeadMotion.from_points(_as_tensor(landmarks), _as_tensor(rotation), torch.from_numpy(RIGID))


def source_head(source: LandmarkSource) -> HeadMotion:
    """The source's own head (:func:`head_of` its landmarks), in crop pixels."""
    return head_of(source.landmarks, source.rotation)


def expression_from(source: LandmarkSource, landmarks: np.ndarray) -> torch.Tensor:
    """Another face's expression for the source's head: ``(1, 478, 3)`` offsets to the
    source's canonical points (:attr:`HeadMotion.expression`).

    Zero-shot there is no neutral face to tell expression from face shape, so the
    offsets are the other face's canonical points minus the source's on the points that
    do not move with the skull (the :data:`RIGID` ones stay the source's): both are in
    their own head frame and size, so pose and head size do not leak, but the other
    face's shape (its mouth, brows, jaw) does, with its expression. The eyes, where that
    shows most (another person's eye size on the source's eye corners), are the
    source's own, opened by the other's opening ratio and with the other's gaze
    (:func:`_eyes_like`), which the eye retargeting then draws.

    Args:
        landmarks: ``(478, 3)`` the other face's landmarks in pixels of any image.
    """
    head = source_head(source)
    neutral = head.canonical[0].numpy()
    other = head_of(landmarks).canonical[0].numpy()
    shape = other.copy()
    shape[RIGID] = neutral[RIGID]
    _eyes_like(shape, neutral, other)
    return head.expression + torch.from_numpy(shape - neutral)[None]


def _eyes_like(shape: np.ndarray, neutral: np.ndarray, other: np.ndarray) -> None:
    """In place: each eye of ``shape`` ``(478, 3)`` is the one of ``neutral``, its upper
    lid opened by the ratio of the ``other`` face's opening to it and its iris moved by
    the other's gaze, both in eye-corner coordinates (all three in the canonical frame,
    whose x and y are a frontal view). Unclipped: :func:`retarget_eyes` and
    :func:`gaze_shifts` limit them when drawing."""
    ratios = eye_opening_ratio(other, neutral)
    for eye, ratio in zip(EYES, ratios):
        for index in (list(eye["loop"]), eye["iris"]):
            shape[index] = neutral[index]
        upper, lower = eye["pairs"][:, 0], eye["pairs"][:, 1]
        shape[upper, :2] = neutral[lower, :2] + ratio * (neutral[upper, :2] - neutral[lower, :2])
        a, b = eye["corners"]
        centre = eye["iris"][0]
        here = eye_frame(neutral[a, :2], neutral[b, :2])
        gaze = to_eye(eye_frame(other[a, :2], other[b, :2]), other[centre, :2]) - to_eye(here, neutral[centre, :2])
        shape[eye["iris"], :2] += here[1] @ gaze


def pose_transfer(
    source: LandmarkSource,
    driving: DrivingFace,
    initial: DrivingFace,
    attributes: Iterable[str] = HEAD_ATTRIBUTES,
    retarget: Retarget | None = None,
) -> np.ndarray:
    """The driver's :class:`HeadMotion` since ``initial`` on the source's 3-D landmarks
    (:func:`relative_head_motion`, the ``attributes`` named): ``(478, 3)`` crop pixels.

    The source and the initial frame are read with their head axes
    (:func:`~reanimate.faces.head_rotation`); the driving frame is tracked from the
    initial one (its turn and scale fitted on the rigid points), so that what moves
    apart from the skull is expression. ``retarget`` scales the head's motion and each
    point's expression offset (:func:`expression_weights`) towards the source's.
    """
    if initial.rotation is None:
        initial.rotation = head_rotation(initial.landmarks)
    start = _as_tensor(initial.landmarks)
    initial_head = head_of(initial.landmarks, initial.rotation)
    driving_head = HeadMotion.tracked(_as_tensor(driving.landmarks), start, initial_head, torch.from_numpy(RIGID))
    head = source_head(source)
    moved = relative_head_motion(head, driving_head, initial_head, attributes)
    if retarget is not None and retarget.used():
        weights = torch.from_numpy(expression_weights(head.canonical[0].numpy(), retarget))
        moved = retarget.head_motion(head, moved, weights)
    return moved.points()[0].numpy()


#: how far (eye widths, in the head's frontal view) the eye factor reaches beyond the eye
#: opening's contour: the lid skin, fading to the expression factor before the brows
EYE_REACH = 0.35
#: landmarks that belong to the eyes (their contours and irises)
EYE_POINTS = np.array(sorted({i for eye in EYES for i in (*eye["loop"], *eye["iris"])}))


def face_regions(canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much each landmark belongs to the eyes and to the mouth and jaw: two ``(N,)``
    arrays in [0, 1] that add up to at most 1, from points in the head's frame
    (``(N, 3)`` canonical, x and y a frontal view, y down).

    The eyes: 1 on the eye contours and irises, fading to 0 at :data:`EYE_REACH` eye
    widths from them. The mouth and jaw: what moves when a face speaks, everything below
    the top of the upper lip (lips, chin, the jaw line and lower cheeks), fading to 0 at
    the base of the nose.
    """
    xy = canonical[:, :2]
    width = float(np.mean([np.linalg.norm(xy[e["corners"][0]] - xy[e["corners"][1]]) for e in EYES]))
    distance = np.linalg.norm(xy[:, None] - xy[None, EYE_POINTS], axis=-1).min(1)
    eyes = np.clip(1.0 - distance / (EYE_REACH * width), 0.0, 1.0)
    nose = float(xy[list(mesh.NOSE_BASE), 1].mean())
    lip = float(xy[LIPS_OUTER, 1].min())
    t = np.clip((xy[:, 1] - nose) / max(lip - nose, 1e-9), 0.0, 1.0)
    mouth = t * t * (3.0 - 2.0 * t)  # smoothstep: no kink where the fade starts or ends
    return np.minimum(eyes, 1.0 - mouth), mouth


def expression_weights(canonical: np.ndarray, retarget: Retarget) -> np.ndarray:
    """``(N,)`` per landmark the share of its expression offset to take: the eye and lip
    factors where it belongs to the eyes or the mouth (:func:`face_regions`), the
    expression factor elsewhere, blended in between (so no seam where they meet)."""
    eyes, mouth = face_regions(canonical)
    rest = 1.0 - eyes - mouth
    return rest * retarget.expression + eyes * retarget.eye_factor + mouth * retarget.lip_factor


def head_size_ratio(source: LandmarkSource, points: np.ndarray) -> float:
    """How much larger the head of ``(478, 3)`` target landmarks is than the source's
    (the RMS size of the rigid points in 3-D, so a turn does not change it)."""
    _, size = rigid_frame(_as_tensor(points), torch.from_numpy(RIGID))
    _, size_source = rigid_frame(_as_tensor(source.landmarks), torch.from_numpy(RIGID))
    return float(size / size_source)


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


def opening(config: LandmarkAnimatorConfig, driving: np.ndarray, initial: np.ndarray, lids: float = 1.0) -> np.ndarray:
    """``(2,)`` per eye the driver's opening since its ``initial`` landmarks, with
    ``config.closed_ratio`` counted as closed (:func:`eye_opening_ratio`); ``lids`` of its
    change is taken (0: as open as in the reference, the source's own opening)."""
    ratio = eye_opening_ratio(driving, initial, config.closed_ratio)
    return ratio if lids == 1.0 else np.maximum(1.0 + lids * (ratio - 1.0), 0.0)


def closing(config: LandmarkAnimatorConfig, driving: np.ndarray, initial: np.ndarray, lids: float = 1.0) -> np.ndarray:
    """``(2,)`` per eye how far the driver has closed it since its ``initial`` landmarks
    (0 open, 1 closed; 0 when ``config.eyes`` is off), ``lids`` of the change taken."""
    if not config.eyes:
        return np.zeros(2)
    return 1.0 - np.clip(opening(config, driving, initial, lids), 0.0, 1.0)


def gaze_shifts(
    config: LandmarkAnimatorConfig,
    source: LandmarkSource,
    driving: np.ndarray,
    initial: np.ndarray,
    factor: float = 1.0,
) -> list[np.ndarray]:
    """Per eye, the driver's iris displacement since its initial frame, in the
    driver's eye-corner coordinates (times ``factor``, clipped to ``max_gaze`` eye
    widths), as a shift of the source's iris in source pixels: ``[(2,), (2,)]``."""
    shifts = []
    for eye in EYES:
        a, b = eye["corners"]
        centre = eye["iris"][0]
        d_now = to_eye(eye_frame(driving[a, :2], driving[b, :2]), driving[centre, :2])
        d_ref = to_eye(eye_frame(initial[a, :2], initial[b, :2]), initial[centre, :2])
        _, basis = eye_frame(source.landmarks[a, :2], source.landmarks[b, :2])
        shifts.append(basis @ np.clip(factor * (d_now - d_ref), -config.max_gaze, config.max_gaze))
    return shifts


def retarget_eyes(
    config: LandmarkAnimatorConfig,
    source: LandmarkSource,
    points: np.ndarray,
    driving: np.ndarray,
    initial: np.ndarray,
    lids: float = 1.0,
) -> None:
    """In place: lids at the driver's opening ratio (``lids`` of its change); iris
    points kept between them."""
    for eye, ratio in zip(EYES, opening(config, driving, initial, lids)):
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
