"""Zero-shot face animator: the first-order motion model with face-mesh landmarks as
keypoints instead of learned ones. It needs no trained weights.

How a frame is made (FOMM Sec. 3 with hand-made parts in place of the networks):

1. **Keypoints.** The 478 MediaPipe landmarks of the source crop and of each driving
   frame, in [-1, 1], each with a local Jacobian fitted by least squares from its
   landmark neighbourhood (:func:`reanimate.geometry.fit_local_jacobians`).
2. **Relative motion**, split into head pose and expression
   (:func:`reanimate.geometry.relative_pose_motion`, the 3-D form of FOMM supp. Eq.
   13-14 with adapt-scale): the driver's head rotation, scale and translation since its
   initial frame turn the source's own 3-D landmarks, and the driver's expression (what
   that similarity leaves, in the head's frame and size) is added in the source's head
   frame. With ``head_pose=False`` the plain 2-D rule
   (:func:`reanimate.motion.relative_motion`: the driver's displacements, scaled by the
   face-size ratio) is used instead; it copies the driver's foreshortening and so
   under-turns a source that is not seen from the front.
3. **Retargeting where displacements are not enough** (as zero-shot portrait animation
   does, Averbuch-Elor et al. 2017): eyelids follow the driver's eye *opening ratio*
   so that blinks close the source's eyes fully whatever their size; irises follow the
   driver's gaze in eye-corner coordinates. The eyeball is its own layer: the mesh
   carries the eye with its lids, and inside the opening the iris disc is drawn
   shifted by the gaze over the sclera (the source's, with the iris painted out), so
   a look aside slides the iris instead of stretching it into the white. A closing
   lid is drawn from a second layer (:mod:`reanimate.faces.lids`): the opening and the
   lid band above it painted over with skin, plus a lash line along the closed margin,
   so that a closed eye reads as closed instead of a stretched band of lashes.
4. **Anchors.** A ring that follows the face's outline at a fixed (head-rotated and
   scaled) offset (hair, ears, neck move with it), a second ring that follows half-way, and fixed points on the crop
   border (so the flow is the identity there and paste-back has no seam). A head that
   the driver would carry out of the crop (walking towards the camera, leaving its
   frame) is held inside it by :func:`keep_head_inside` instead of being cut off.
5. **Dense backward flow.** A triangulation of the source nodes is moved to the
   target nodes; each triangle's exact first-order map
   (:func:`reanimate.geometry.triangle_backward_maps`) gives the flow inside it.
   Triangles that would flip (the far cheek in a large head turn) are relaxed towards
   the first-order prediction of their neighbours' Jacobians, and triangles are drawn
   far-to-near by landmark depth, skin facing away from the camera culled, so that
   what remains folded is hidden like in a renderer instead of tearing.
6. **Mouth interior.** When the driver opens a mouth that the source keeps closed, the
   revealed interior is filled from the driver's mouth (warped into place and
   colour-matched to the source's lips) instead of stretching lip texture.

All work happens on a square face crop of ``config.size`` pixels; the pipeline crops
and pastes back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.spatial import Delaunay

from ..faces import topology as mesh
from ..faces.lids import LidLayer, draw_closed_lid, lid_layer
from ..faces.pose import head_rotation
from ..geometry import fit_similarity
from ..geometry.relative import polygon_area
from ..geometry.mesh import (
    fit_affine,
    fit_local_jacobians,
    nearest_neighbours,
    signed_areas,
    triangle_backward_maps,
)
from ..geometry import movement_scale, relative_pose_motion
from ..io.image import LUMA_WEIGHTS
from ..motion import Keypoints, relative_motion


@dataclass
class LandmarkAnimatorConfig:
    """Settings of the zero-shot animator (no weights; every constant is here)."""

    size: int = 512  # working resolution of the square face crop, pixels
    flow_scale: float = 0.5  # the dense flow is rasterised at this fraction of `size`, then upsampled
    neighbours: int = 8  # landmarks per neighbourhood for each fitted Jacobian
    adapt_scale: bool = True  # 2-D path: scale driver displacements by the face-size ratio (the pose path always does)
    head_pose: bool = True  # transfer the 3-D head pose and the expression apart (else 2-D displacements)
    inner_ring: float = 1.25  # anchor ring: face oval scaled about its centre, follows the head
    outer_ring: float = 1.8  # second ring, follows the head by `outer_follow`
    outer_follow: float = 0.5
    border_points: int = 9  # fixed anchors per crop side (identity flow at the border)
    # The moved head's inner ring stays this far (fraction of the crop side) inside the
    # crop: a driver that walks towards the camera or out of its frame would otherwise
    # push the head against the fixed border, where it is cut off. None: no limit. (0.04
    # held back ordinary moves on the real clips: same-identity L1 on d18 0.0152 -> 0.0193.)
    crop_margin: float | None = 0.0
    relax_iterations: int = 8  # passes of flip relaxation
    eyes: bool = True  # eyelids follow the driver's opening ratio (full blinks)
    gaze: bool = True  # irises follow the driver's gaze
    max_gaze: float = 0.2  # largest iris shift, in eye widths
    iris_scale: float = 1.1  # iris layer: this times the iris landmarks' radius, plus the dark pixels next to it
    max_eye_ratio: float = 1.3  # eyes open at most this much wider than in the source
    lid_lift: float = 0.6  # a closed upper lid is sampled this many lid gaps above its margin
    # A driver's closed eye still measures about this fraction of its open lid gap (the
    # lashes' thickness): openings are rescaled so that it closes the source's eye fully.
    closed_ratio: float = 0.1
    # Closed lids (faces.lids): each eye's opening and this many lid gaps of lid above it
    # are painted over with skin, drawn in as the eye closes (in proportion), with a lash
    # line `lash_width` eye widths thick. The painted area is grown by `lid_grow` eye
    # widths, as landmark contours can sit off the eye a photo shows.
    lid_fill: bool = True
    lid_band: float = 1.2
    lid_brow: float = 0.5  # ... but at most this share of the way to the brow (brows stay)
    lid_grow: float = 0.15
    lid_feather: float = 0.05  # blur of the painted area's edge, eye widths
    lash_width: float = 0.045
    sliver_area: float = 0.05  # skin triangles smaller than this times the median are not checked for flips
    mouth_fill: bool = True  # fill a newly opened mouth from the driver's mouth
    mouth_feather: float = 1.5  # blur of the mouth mask, pixels


EYES = (
    dict(corners=mesh.RIGHT_EYE_CORNERS, pairs=np.array(mesh.RIGHT_EYE_LID_PAIRS), loop=mesh.RIGHT_EYE,
         brow=np.array(mesh.RIGHT_EYEBROW_LOWER),
         lower=np.array(mesh.RIGHT_EYE_LOWER_LID), iris=np.array((mesh.RIGHT_IRIS_CENTER, *mesh.RIGHT_IRIS))),
    dict(corners=mesh.LEFT_EYE_CORNERS, pairs=np.array(mesh.LEFT_EYE_LID_PAIRS), loop=mesh.LEFT_EYE,
         brow=np.array(mesh.LEFT_EYEBROW_LOWER),
         lower=np.array(mesh.LEFT_EYE_LOWER_LID), iris=np.array((mesh.LEFT_IRIS_CENTER, *mesh.LEFT_IRIS))),
)
SKIN, HOLE, SURROUNDING = 0, 1, 2  # triangle kinds, in reverse drawing order
LIPS_INNER = np.array(mesh.LIPS_INNER)
LIPS_OUTER = np.array(mesh.LIPS_OUTER)
FACE_OVAL = np.array(mesh.FACE_OVAL)
# Points that move rigidly with the skull (oval, brows, nose bridge), for the head's similarity.
RIGID = np.array(sorted(set(mesh.FACE_OVAL[:10] + mesh.FACE_OVAL[-9:] + mesh.MIDLINE[:10]
                            + mesh.RIGHT_EYE_CORNERS + mesh.LEFT_EYE_CORNERS)))


def oval_ring(landmarks: np.ndarray, scale: float) -> np.ndarray:
    """The face oval scaled by ``scale`` about its centre: ``(len(FACE_OVAL), 2)`` pixels
    from ``(478, 2+)`` landmarks (the anchor rings of :class:`LandmarkAnimator`)."""
    oval = landmarks[FACE_OVAL, :2]
    centre = oval.mean(0)
    return centre + scale * (oval - centre)


def keep_head_inside(points: np.ndarray, source: np.ndarray, ring: float, margin: float, side: float) -> np.ndarray:
    """Shift (and if need be shrink) moved landmarks so that their anchor ring stays in the crop.

    The ring is the face oval scaled by ``ring`` about its centre (the inner anchor ring
    of :class:`LandmarkAnimator`). Its bounding box must lie within ``[margin, side -
    margin]`` on both axes, or within the source ring's own box where that already
    reaches further out (a face at the image's edge). A box that is too large is first
    scaled down about its centre, then the whole head is translated back inside: one
    similarity, so expressions and the head's rotation are untouched. Landmarks whose
    ring fits are returned unchanged.

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


def frontal_view(landmarks: np.ndarray) -> np.ndarray:
    """``(478, 3)`` landmarks -> ``(478, 2)``: their x and y seen from straight in front
    of the head (turned by the inverse of :func:`~reanimate.faces.head_rotation`), where
    every skin triangle faces the camera."""
    points = np.asarray(landmarks, np.float64)
    head = (points - points.mean(0)) @ head_rotation(points)
    return head[:, :2]


def eye_openness(landmarks: np.ndarray) -> np.ndarray:
    """Mean lid gap over eye width for each eye.

    Args:
        landmarks: ``(..., 478, 2+)`` pixels.

    Returns:
        ``(..., 2)`` (person's right eye, left eye).
    """
    out = []
    for eye in EYES:
        pairs = eye["pairs"]
        gap = np.linalg.norm(landmarks[..., pairs[:, 0], :2] - landmarks[..., pairs[:, 1], :2], axis=-1).mean(-1)
        a, b = eye["corners"]
        width = np.linalg.norm(landmarks[..., a, :2] - landmarks[..., b, :2], axis=-1)
        out.append(gap / np.maximum(width, 1e-6))
    return np.stack(out, axis=-1)


def eye_opening_ratio(landmarks: np.ndarray, reference: np.ndarray, closed: float = 0.0) -> np.ndarray:
    """How open each eye is relative to a reference frame (1 = as open, 0 = closed): ``(2,)``.

    ``closed``: the ratio that counts as fully closed; ratios below 1 are rescaled
    linearly so that it maps to 0 (and 1 to 1), those above 1 are kept.
    """
    ratio = eye_openness(landmarks) / np.maximum(eye_openness(reference), 1e-3)
    if closed > 0:
        ratio = np.where(ratio < 1.0, np.maximum((ratio - closed) / (1.0 - closed), 0.0), ratio)
    return ratio


def mouth_openness(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over mouth width, ``(..., 478, 2+)`` -> ``(...)``."""
    up, low = mesh.INNER_LIP_MIDDLE
    a, b = mesh.MOUTH_CORNERS
    gap = np.linalg.norm(landmarks[..., up, :2] - landmarks[..., low, :2], axis=-1)
    return gap / np.maximum(np.linalg.norm(landmarks[..., a, :2] - landmarks[..., b, :2], axis=-1), 1e-6)


def to_normalized(points: np.ndarray, origin, side: float) -> torch.Tensor:
    """Pixels -> [-1, 1] in a square of ``side`` pixels at ``origin`` (``(..., 2)``)."""
    return torch.as_tensor((points[..., :2] - np.asarray(origin, np.float64)) * (2.0 / side) - 1.0, dtype=torch.float32)


def to_pixels(points: torch.Tensor, origin, side: float) -> np.ndarray:
    return (points.detach().cpu().double().numpy() + 1.0) * (side / 2.0) + np.asarray(origin, np.float64)


@dataclass
class DrivingFace:
    """One driving frame as the animator needs it.

    Attributes:
        keypoints: batch-1 :class:`Keypoints` of the landmarks (possibly smoothed).
        landmarks: ``(478, 3)`` landmarks in the driving frame's pixels.
        frame: the driving frame ``(H, W, 3)`` uint8, for the mouth interior; None
            to fill an opened mouth with shadow instead.
    """

    keypoints: Keypoints
    landmarks: np.ndarray
    frame: np.ndarray | None = None
    scale: torch.Tensor | None = None  # movement scale when used as the reference frame (cached)
    rotation: np.ndarray | None = None  # (3, 3) head orientation when used as the reference frame (cached)


@dataclass
class LandmarkSource:
    """Everything computed once per source crop."""

    image: np.ndarray  # (S, S, 3) uint8
    landmarks: np.ndarray  # (478, 3) pixels of the crop
    keypoints: Keypoints  # (1, 478, 2) in [-1, 1], Jacobians = identity (the reference)
    nodes: np.ndarray  # (N, 2) landmark + anchor positions, pixels
    depth: np.ndarray  # (N,) z of each node (anchors far behind)
    triangles: np.ndarray  # (T, 3): the face mesh (incl. mouth and eyes) first, then the surroundings
    areas: np.ndarray  # (T,) signed doubled areas in the source
    front: np.ndarray  # (mesh_count,) +-1: the sign of each skin triangle's area when it faces the camera
    kinds: np.ndarray  # (T,) SKIN, HOLE (mouth, eyes) or SURROUNDING
    mesh_count: int  # how many triangles are skin (they come first and must not flip)
    skin_neighbours: tuple[np.ndarray, np.ndarray]  # (478, D) mesh neighbours, padded; (478, D) 0/1 weights
    ring: np.ndarray  # (R, 2) anchors that follow the head
    ring_follow: np.ndarray  # (R,) how much each ring anchor follows
    ring_owner: np.ndarray  # (R,) the face-oval landmark each ring anchor is attached to
    neighbours: torch.Tensor  # (478, n)
    lips: tuple[np.ndarray, np.ndarray]  # mean and std colour of the source's lips
    mouth_area: float  # inner-lip polygon area in the source, pixels
    rotation: np.ndarray  # (3, 3) head orientation (faces.pose.head_rotation)
    eyeballs: list["Eyeball"]  # per eye (person's right, left): the gaze layer
    lids: LidLayer | None  # what closed lids show (config.lid_fill)

    @property
    def side(self) -> float:
        return float(self.image.shape[0] - 1)


class LandmarkAnimator:
    """Animate a face crop from driving landmarks (see the module docstring).

    >>> animator = LandmarkAnimator()
    >>> source = animator.encode_source(crop, crop_landmarks)
    >>> kp = animator.keypoints(driving_landmarks, origin, side)
    >>> frame = animator.animate(source, DrivingFace(kp[i], lm[i], frame_i), initial)
    """

    def __init__(self, config: LandmarkAnimatorConfig | None = None):
        self.config = config or LandmarkAnimatorConfig()

    @property
    def size(self) -> int:
        return self.config.size

    # -- keypoints -------------------------------------------------------------------

    def keypoints(self, landmarks: np.ndarray, origin, side: float) -> Keypoints:
        """Landmarks ``(B, 478, 2+)`` in pixels of a square box -> keypoints in [-1, 1].

        No Jacobians: :meth:`transfer` fits them once, on the target landmarks against
        the source (the shared reference frame), after the eyes are retargeted."""
        return Keypoints(to_normalized(np.asarray(landmarks), origin, side))

    def encode_source(self, image: np.ndarray, landmarks: np.ndarray) -> LandmarkSource:
        """``image`` ``(S, S, 3)`` uint8 face crop with ``config.size`` pixels a side and
        its ``(478, 3)`` landmarks in the crop's pixels."""
        cfg = self.config
        s = image.shape[0]
        assert image.shape[:2] == (s, s), f"the source crop must be square, got {image.shape}"
        landmarks = np.asarray(landmarks, np.float64)
        side = float(s - 1)
        value = to_normalized(landmarks[None], (0, 0), side)
        neighbours = nearest_neighbours(value[0], cfg.neighbours)
        keypoints = Keypoints(value, torch.eye(2).expand(1, len(landmarks), 2, 2).clone())

        rings, follows, owners = [], [], []
        for scale, follow in ((cfg.inner_ring, 1.0), (cfg.outer_ring, cfg.outer_follow)):
            ring = oval_ring(landmarks, scale)
            inside = np.all((ring > 2) & (ring < side - 2), axis=1)
            rings.append(ring[inside])
            follows.append(np.full(int(inside.sum()), follow))
            owners.append(FACE_OVAL[inside])
        ring = np.concatenate(rings)
        t = np.linspace(0, side, cfg.border_points)
        border = np.unique(np.concatenate([
            np.stack([t, np.zeros_like(t)], 1), np.stack([t, np.full_like(t, side)], 1),
            np.stack([np.zeros_like(t), t], 1), np.stack([np.full_like(t, side), t], 1),
        ]), axis=0)
        nodes = np.concatenate([landmarks[:, :2], ring, border])
        far = landmarks[:, 2].max() + side
        depth = np.concatenate([landmarks[:, 2], np.full(len(ring) + len(border), far)])
        triangles, kinds = _triangulate(nodes, len(landmarks))
        areas = signed_areas(nodes, triangles)
        # Degenerate surroundings are dropped; the face's own triangles all stay.
        keep = (np.abs(areas) > 1e-9) | (kinds != SURROUNDING)
        triangles, kinds, areas = triangles[keep], kinds[keep], areas[keep]
        mesh_count = int((kinds == SKIN).sum())

        front = np.sign(signed_areas(frontal_view(landmarks), triangles[:mesh_count]))
        lips = _lip_colour(image, landmarks)
        mouth_area = polygon_area(landmarks[LIPS_INNER, :2])
        skin = _mesh_neighbours(triangles[:mesh_count], len(landmarks))
        eyeballs = [_eyeball(image, landmarks, eye, cfg.iris_scale) for eye in EYES]
        lids = self._lid_layer(image, landmarks) if cfg.eyes and cfg.lid_fill else None
        return LandmarkSource(image, landmarks, keypoints, nodes, depth, triangles, areas, front, kinds, mesh_count, skin, ring,
                              np.concatenate(follows), np.concatenate(owners), neighbours, lips, mouth_area,
                              head_rotation(landmarks), eyeballs, lids)

    def _lid_layer(self, image: np.ndarray, landmarks: np.ndarray) -> LidLayer:
        """Each eye's opening and the ``lid_band`` above it, painted over with skin."""
        openings, bands, margins, widths = [], [], [], []
        for eye in EYES:
            upper, lower = eye["pairs"][:, 0], eye["pairs"][:, 1]
            gap = landmarks[upper, :2] - landmarks[lower, :2]
            length = np.maximum(np.linalg.norm(gap, axis=1), 1e-9)
            to_brow = _distance_to_polyline(landmarks[upper, :2], landmarks[eye["brow"], :2])
            reach = np.minimum(self.config.lid_band * length, self.config.lid_brow * to_brow)
            top = landmarks[upper, :2] + (reach / length)[:, None] * gap
            openings.append(landmarks[list(eye["loop"]), :2])
            bands.append(_lid_line(landmarks[:, :2], eye, top))
            margins.append(landmarks[upper, :2])
            widths.append(_eye_width(landmarks, eye))
        width = float(np.mean(widths))
        return lid_layer(image, openings, bands, margins, self.config.lid_grow * width, self.config.lid_feather * width)

    # -- motion transfer -------------------------------------------------------------

    def transfer(self, source: LandmarkSource, driving: DrivingFace, initial: DrivingFace) -> tuple[Keypoints, np.ndarray]:
        """Relative motion plus eye retargeting.

        Returns:
            target keypoints (batch 1, [-1, 1]) and ``(478, 3)`` target landmarks in
            the crop's pixels (z carried over relatively, for drawing order).
        """
        if self.config.head_pose:
            points = self._pose_transfer(source, driving, initial)
        else:
            points = self._displacement_transfer(source, driving, initial)
        if self.config.crop_margin is not None:
            points = keep_head_inside(points, source.landmarks, self.config.inner_ring,
                                      self.config.crop_margin * source.side, source.side)
        if self.config.eyes:
            self._retarget_eyes(source, points, driving.landmarks, initial.landmarks)
        value = to_normalized(points[None], (0, 0), source.side)
        # Jacobians against the source (the reference of every fitted Jacobian).
        return Keypoints(value, fit_local_jacobians(source.keypoints.value, value, source.neighbours)), points

    def _pose_transfer(self, source: LandmarkSource, driving: DrivingFace, initial: DrivingFace) -> np.ndarray:
        """:func:`relative_pose_motion` of the 3-D landmarks: ``(478, 3)`` crop pixels."""
        if initial.rotation is None:
            initial.rotation = head_rotation(initial.landmarks)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float64))[None]  # noqa: E731
        target = relative_pose_motion(as_tensor(source.landmarks), as_tensor(driving.landmarks),
                                      as_tensor(initial.landmarks), as_tensor(source.rotation),
                                      as_tensor(initial.rotation), rigid=torch.from_numpy(RIGID))
        return target[0].numpy()

    def _displacement_transfer(self, source: LandmarkSource, driving: DrivingFace, initial: DrivingFace) -> np.ndarray:
        """FOMM's 2-D relative keypoints (adapt-scale), z by the same rule: ``(478, 3)``."""
        if initial.scale is None:  # once per (source, reference frame): hull areas are not free
            initial.scale = (movement_scale(source.keypoints.value, initial.keypoints.value)
                             if self.config.adapt_scale else torch.ones(1))
        target = relative_motion(source.keypoints, driving.keypoints, initial.keypoints,
                                 adapt_movement_scale=initial.scale)
        points = to_pixels(target.value[0], (0, 0), source.side)
        # Depth moves by the same relative rule, in the driver's face-size units.
        scale = np.sqrt(polygon_area(source.landmarks[FACE_OVAL, :2])
                        / max(polygon_area(initial.landmarks[FACE_OVAL, :2]), 1e-6))
        z = source.landmarks[:, 2] + scale * (driving.landmarks[:, 2] - initial.landmarks[:, 2])
        return np.concatenate([points, z[:, None]], axis=1)

    def gaze_shifts(self, source: LandmarkSource, driving: np.ndarray, initial: np.ndarray) -> list[np.ndarray]:
        """Per eye, the driver's iris displacement since its initial frame, in the
        driver's eye-corner coordinates (clipped to ``max_gaze`` eye widths), as a shift
        of the source's iris in source pixels: ``[(2,), (2,)]``."""
        shifts = []
        for eye in EYES:
            a, b = eye["corners"]
            centre = eye["iris"][0]
            d_now = _to_eye(_eye_frame(driving[a, :2], driving[b, :2]), driving[centre, :2])
            d_ref = _to_eye(_eye_frame(initial[a, :2], initial[b, :2]), initial[centre, :2])
            _, basis = _eye_frame(source.landmarks[a, :2], source.landmarks[b, :2])
            shifts.append(basis @ np.clip(d_now - d_ref, -self.config.max_gaze, self.config.max_gaze))
        return shifts

    def _retarget_eyes(self, source: LandmarkSource, points: np.ndarray, driving: np.ndarray, initial: np.ndarray):
        """In place: lids at the driver's opening ratio; iris points kept between them."""
        cfg = self.config
        for eye, ratio in zip(EYES, self.opening(driving, initial)):
            a, b = eye["corners"]
            # Similarity taking the source eye's corners to the target's (2 points fix it).
            src_frame = _eye_frame(source.landmarks[a, :2], source.landmarks[b, :2])
            tgt_frame = _eye_frame(points[a, :2], points[b, :2])
            ratio = float(np.clip(ratio, 0.0, cfg.max_eye_ratio))
            upper, lower = eye["pairs"][:, 0], eye["pairs"][:, 1]
            # Lid-gap vectors in eye coordinates, scaled by the driver's opening ratio.
            gaps = _to_eye(src_frame, source.landmarks[upper, :2]) - _to_eye(src_frame, source.landmarks[lower, :2])
            lower_eye = _to_eye(tgt_frame, points[lower, :2])
            if cfg.eyes:
                points[upper, :2] = _from_eye(tgt_frame, lower_eye + ratio * gaps)
            iris = eye["iris"]
            # The iris points ride with the eye (the gaze is drawn by the eyeball layer).
            q = _to_eye(src_frame, source.landmarks[iris, :2])
            # Irises stay between the lids: their height above the lower lid scales with
            # the opening, so a closed eye hides them instead of folding the mesh.
            low_src = _lid_height(_to_eye(src_frame, source.landmarks[eye["lower"], :2]), q[:, 0])
            low_tgt = _lid_height(_to_eye(tgt_frame, points[eye["lower"], :2]), q[:, 0])
            q[:, 1] = low_tgt + ratio * (q[:, 1] - low_src) if cfg.eyes else q[:, 1]
            points[iris, :2] = _from_eye(tgt_frame, q)

    # -- rendering -------------------------------------------------------------------

    def target_nodes(self, source: LandmarkSource, points: np.ndarray, jacobian: torch.Tensor | None) -> np.ndarray:
        """Target positions of all nodes: landmarks, head-following rings, fixed border."""
        n = len(source.landmarks)
        scale, rotation, _ = fit_similarity(torch.from_numpy(source.landmarks[None, RIGID, :2]),
                                            torch.from_numpy(np.ascontiguousarray(points[None, RIGID, :2])))
        head = (scale[0] * rotation[0]).numpy()
        # Each anchor keeps its offset from its face-oval point, turned and scaled with the
        # head: the surroundings follow the face's silhouette, and never cross it.
        owner = source.ring_owner
        offset = source.ring - source.landmarks[owner, :2]
        moved = points[owner, :2] + offset @ head.T
        ring = source.ring + source.ring_follow[:, None] * (moved - source.ring)
        nodes = source.nodes.copy()
        nodes[:n] = points[:, :2]
        nodes[n:n + len(ring)] = ring
        if jacobian is not None:
            self._relax_flips(source, nodes, jacobian[0].detach().cpu().double().numpy())
        return nodes

    def _relax_flips(self, source: LandmarkSource, nodes: np.ndarray, jacobian: np.ndarray):
        """Move landmarks of flipped skin triangles half-way towards the first-order
        predictions of their mesh neighbours, ``p_k + J_k (s_i - s_k)`` (held inside the
        bounding box of those neighbours' positions), until no skin
        triangle flips (or ``relax_iterations`` passes). Slivers (tiny in the source)
        are not checked: landmark noise alone turns them over."""
        mesh = source.triangles[: source.mesh_count]
        src_areas = source.areas[: source.mesh_count]
        checked = np.abs(src_areas) > self.config.sliver_area * np.median(np.abs(src_areas))
        mesh, src_areas = mesh[checked], src_areas[checked]
        neighbours, weights = source.skin_neighbours
        src = source.nodes
        for _ in range(self.config.relax_iterations):
            flipped = signed_areas(nodes, mesh) * src_areas <= 0
            if not flipped.any():
                return
            idx = np.unique(mesh[flipped])
            nb, w = neighbours[idx], weights[idx]  # (M, D)
            offsets = src[idx][:, None, :] - src[nb]  # (M, D, 2)
            predicted = nodes[nb] + np.einsum("mdij,mdj->mdi", jacobian[nb], offsets)
            predicted = (predicted * w[..., None]).sum(1) / w.sum(1, keepdims=True)
            # Untangle, never extrapolate: where the face is stretched (the far cheek of a
            # turned source coming into view) the neighbours' Jacobians are large and their
            # predictions overshoot into spikes of skin. A vertex stays within the box of
            # its neighbours.
            around = nodes[nb]  # (M, D, 2); padding repeats the vertex itself
            predicted = np.clip(predicted, around.min(1), around.max(1))
            nodes[idx] = 0.5 * (nodes[idx] + predicted)

    def render(self, source: LandmarkSource, nodes: np.ndarray, depth: np.ndarray,
               source_nodes: np.ndarray | None = None, gaze: list[np.ndarray] | None = None,
               closing: np.ndarray | None = None) -> np.ndarray:
        """Backward-warp the source so that its nodes land on ``nodes``: ``(S, S, 3)``.

        The piecewise-affine flow (:meth:`grid_flow`) is rasterised at ``flow_scale`` of
        the crop and upsampled (it is linear inside triangles, so little is lost).
        ``gaze``: per eye the iris shift in source pixels (:meth:`gaze_shifts`), drawn
        inside each eye's opening by the eyeball layer. ``closing``: ``(2,)`` per eye how
        far it has closed (0 open, 1 closed), to draw the closed-lid layer.
        """
        s = source.image.shape[0]
        f = max(int(round(s * self.config.flow_scale)), 8)
        map_x, map_y, xs, ys, index = self.grid_flow(source, nodes, depth, f, source_nodes)
        outside = index == 0
        # Upsample the displacement, not the coordinates: the identity stays exact
        # (also at the border, where resizing clamps).
        dx = np.where(outside, 0.0, map_x - xs).astype(np.float32)
        dy = np.where(outside, 0.0, map_y - ys).astype(np.float32)
        if f != s:
            dx = cv2.resize(dx, (s, s), interpolation=cv2.INTER_LINEAR)
            dy = cv2.resize(dy, (s, s), interpolation=cv2.INTER_LINEAR)
        # The border nodes are fixed, so the true flow there is zero; upsampling from
        # cell centres half a cell inside would otherwise leak motion onto it.
        for d in (dx, dy):
            d[[0, -1], :] = 0.0
            d[:, [0, -1]] = 0.0
        grid = np.arange(s, dtype=np.float32)
        map_x, map_y = dx + grid[None, :], dy + grid[:, None]
        out = cv2.remap(source.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if gaze is not None:
            for eye, eyeball, shift in zip(EYES, source.eyeballs, gaze):
                _draw_eyeball(out, eyeball, nodes[list(eye["loop"])], map_x, map_y, shift)
        if closing is not None and source.lids is not None:
            for eye, amount in zip(EYES, closing):
                width = _eye_width(nodes, eye)
                draw_closed_lid(out, source.lids, map_x, map_y, nodes[list(eye["loop"])],
                                _lid_line(nodes, eye, nodes[eye["pairs"][:, 0]]),
                                float(np.clip(amount, 0.0, 1.0)),
                                self.config.lash_width * width, int(np.ceil(width)))
        return out

    def grid_flow(self, source: LandmarkSource, nodes: np.ndarray, depth: np.ndarray, size: int,
                  source_nodes: np.ndarray | None = None):
        """The backward flow on a ``size``-pixel grid over the crop.

        Returns:
            ``map_x, map_y``: ``(size, size)`` source coordinates (crop pixels) of each
            grid cell's centre; ``xs`` ``(1, size)`` and ``ys`` ``(size, 1)``: those
            centres; ``index``: ``(size, size)`` the triangle seen in each cell (index + 1;
            0: none, see :meth:`rasterize`).

        A cell is drawn by a triangle whose edge passes near its centre, not only through
        it; the affine map of a sliver (tiny in the target, not in the source) sends such
        a cell far outside its source triangle (dark specks from lashes or the
        background). So every sample is held within a pixel of its triangle's source
        bounding box.
        """
        k = size / source.image.shape[0]  # crop pixels -> grid pixels (pixel centres at +0.5)
        source_nodes = source.nodes if source_nodes is None else source_nodes
        maps = triangle_backward_maps(source_nodes, nodes, source.triangles).astype(np.float32)
        index = self.rasterize(source, nodes, depth, size)
        coords = (np.arange(size, dtype=np.float32) + 0.5) / k - 0.5  # grid centres in crop pixels
        xs, ys = coords[None, :], coords[:, None]
        corners = source_nodes[source.triangles].astype(np.float32)  # (T, 3, 2)
        # Per triangle: its map (6), then its source box less / plus a pixel (4).
        table = np.concatenate([maps.reshape(-1, 6), corners.min(1) - 1.0, corners.max(1) + 1.0], axis=1)
        m = np.take(table, np.maximum(index - 1, 0), axis=0)  # (size, size, 10)
        map_x = np.clip(m[..., 0] * xs + m[..., 1] * ys + m[..., 2], m[..., 6], m[..., 8])
        map_y = np.clip(m[..., 3] * xs + m[..., 4] * ys + m[..., 5], m[..., 7], m[..., 9])
        return map_x, map_y, xs, ys, index

    def rasterize(self, source: LandmarkSource, nodes: np.ndarray, depth: np.ndarray, size: int) -> np.ndarray:
        """``(size, size)`` int32 map of which triangle (index + 1; 0 = none) is seen at
        each pixel of a ``size``-pixel grid over the crop (painter's algorithm)."""
        k = size / source.image.shape[0]
        # Drawing order: surroundings, then the mouth and eye holes, then the skin far
        # to near (lids and lips cover what is behind them, even when collapsed). Skin
        # that faces away from the camera is not drawn (back-face culling): on a turned
        # head, the temple and far cheek fold behind the face in the projected mesh, and
        # drawn they would cover the eye or cheek in front with texture from elsewhere.
        key = np.where(source.kinds == SKIN, depth[source.triangles].mean(1), np.inf)
        order = np.lexsort((-key, -source.kinds))
        back = signed_areas(nodes, source.triangles[: source.mesh_count]) * source.front < 0
        order = order[(order >= source.mesh_count) | ~back[np.minimum(order, source.mesh_count - 1)]]
        index = np.zeros((size, size), np.int32)
        fixed = np.round(((nodes + 0.5) * k - 0.5) * 16).astype(np.int32)
        for t in order:
            cv2.fillConvexPoly(index, fixed[source.triangles[t]], int(t) + 1, lineType=cv2.LINE_8, shift=4)
        return index

    def animate(self, source: LandmarkSource, driving: DrivingFace, initial: DrivingFace) -> np.ndarray:
        """One output crop ``(S, S, 3)`` uint8 for one driving frame."""
        target, points = self.transfer(source, driving, initial)
        nodes = self.target_nodes(source, points, target.jacobian)
        depth = np.concatenate([points[:, 2], source.depth[len(points):]])
        gaze = self.gaze_shifts(source, driving.landmarks, initial.landmarks) if self.config.gaze else None
        closing = self.closing(driving, initial)
        out = self.render(source, nodes, depth, self.lifted_lids(source, closing), gaze, closing)
        if self.config.mouth_fill:
            self._fill_mouth(source, out, nodes[: len(points)], driving)
        return out

    def opening(self, driving: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """``(2,)`` per eye the driver's opening since its ``initial`` landmarks, with
        ``config.closed_ratio`` counted as closed (:func:`eye_opening_ratio`)."""
        return eye_opening_ratio(driving, initial, self.config.closed_ratio)

    def closing(self, driving: DrivingFace, initial: DrivingFace) -> np.ndarray:
        """``(2,)`` per eye how far the driver has closed it since ``initial`` (0 open, 1
        closed; 0 when ``config.eyes`` is off)."""
        if not self.config.eyes:
            return np.zeros(2)
        return 1.0 - np.clip(self.opening(driving.landmarks, initial.landmarks), 0.0, 1.0)

    def lifted_lids(self, source: LandmarkSource, closing: np.ndarray) -> np.ndarray:
        """Source nodes with each upper lid margin lifted as the eye closes.

        The visible band of upper lid above the margin is thin and ends in lashes and
        the top of the iris; stretched over a closed eye it would read as an open dark
        eye. Sampling a closing lid from higher up (by ``lid_lift`` of the lid gap when
        fully closed) shows lid skin, and squeezes the lash line into the closing gap.
        """
        if not self.config.eyes or self.config.lid_lift <= 0:
            return source.nodes
        nodes = source.nodes.copy()
        for eye, amount in zip(EYES, closing):
            if amount <= 0:
                continue
            upper, lower = eye["pairs"][:, 0], eye["pairs"][:, 1]
            gap = nodes[upper] - nodes[lower]  # points up, one lid gap long
            nodes[upper] += amount * self.config.lid_lift * gap
        return nodes

    def _fill_mouth(self, source: LandmarkSource, out: np.ndarray, points: np.ndarray, driving: DrivingFace):
        """In place: paint the revealed mouth interior from the driver (or shadow)."""
        polygon = points[LIPS_INNER]
        area = polygon_area(polygon)
        # Only the part of the opening the source does not already show is filled.
        alpha_open = np.clip((area - 1.2 * source.mouth_area) / max(0.5 * area, 1e-6), 0.0, 1.0)
        if alpha_open <= 0 or area < 4:
            return
        s = out.shape[0]
        x0, y0 = np.floor(polygon.min(0)).astype(int) - 4
        x1, y1 = np.ceil(polygon.max(0)).astype(int) + 5
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, s), min(y1, s)
        if x1 <= x0 or y1 <= y0:
            return
        w, h = x1 - x0, y1 - y0
        mask = np.zeros((h, w), np.float32)
        cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
        k = self.config.mouth_feather
        if k > 0:
            mask = cv2.GaussianBlur(mask, (0, 0), k)
        mask *= alpha_open
        region = out[y0:y1, x0:x1].astype(np.float32)
        if driving.frame is not None:
            drv = driving.landmarks
            # Affine from the crop's box coordinates to the driver's frame (backward).
            back = fit_affine(polygon - (x0, y0), drv[LIPS_INNER, :2])
            fill = cv2.warpAffine(driving.frame, back, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            mean_d, std_d = _lip_colour(driving.frame, drv)
            mean_s, std_s = source.lips
            gain = np.clip(std_s / np.maximum(std_d, 1e-3), 0.5, 2.0)
            fill = (fill - mean_d) * gain + mean_s
        else:
            # No driver pixels (scripted motion): a shadowed interior, darker at the centre.
            shade = cv2.GaussianBlur(np.ones((h, w), np.float32) - mask / max(mask.max(), 1e-6), (0, 0), 2.0)
            fill = source.lips[0] * (0.15 + 0.35 * shade[..., None])
        out[y0:y1, x0:x1] = np.clip(region + mask[..., None] * (fill - region), 0, 255).astype(np.uint8)


def _triangulate(nodes: np.ndarray, num_landmarks: int) -> np.ndarray:
    """Triangles over all nodes and their kinds: MediaPipe's face mesh (SKIN, first),
    a strip across the mouth and each eye's contour with its iris points (HOLE), then
    the SURROUNDING triangles (touching an anchor, or the oval's concave pockets)."""
    face = mesh.mesh_triangles()
    # The mouth and eyes open and close, so their triangles may legitimately turn over
    # (a closed mouth's inner lips even cross slightly); only the skin must not flip.
    holes = [mesh.mouth_triangles()]
    for loop, iris in ((mesh.RIGHT_EYE, EYES[0]["iris"]), (mesh.LEFT_EYE, EYES[1]["iris"])):
        index = np.array(loop + tuple(iris))
        local = Delaunay(nodes[index]).simplices
        centres = nodes[index][local].mean(1)
        holes.append(index[local[_inside(nodes[list(loop)], centres)]])
    holes = np.concatenate(holes)
    everything = Delaunay(nodes).simplices
    touches_anchor = (everything >= num_landmarks).any(1)
    on_oval = np.isin(everything, FACE_OVAL).all(1)
    pockets = on_oval & ~_inside(nodes[FACE_OVAL], nodes[everything].mean(1))
    around = everything[touches_anchor | pockets]
    kinds = np.concatenate([np.full(len(face), SKIN), np.full(len(holes), HOLE), np.full(len(around), SURROUNDING)])
    return np.concatenate([face, holes, around]).astype(np.int64), kinds


def _mesh_neighbours(triangles: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices sharing a triangle with each vertex, as a padded ``(count, D)`` index
    array (padding points at the vertex itself) and ``(count, D)`` 0/1 weights."""
    sets: list[set[int]] = [set() for _ in range(count)]
    for a, b, c in triangles:
        sets[a] |= {b, c}
        sets[b] |= {a, c}
        sets[c] |= {a, b}
    width = max(1, max(len(x) for x in sets))
    index = np.tile(np.arange(count)[:, None], (1, width))
    weights = np.zeros((count, width))
    for i, nb in enumerate(sets):
        index[i, : len(nb)] = sorted(nb)
        weights[i, : len(nb)] = 1.0
    weights[weights.sum(1) == 0, 0] = 1.0  # isolated (iris) points predict themselves
    return index, weights


def _inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd rule: which ``(N, 2)`` points lie inside the closed ``(M, 2)`` polygon."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-12, y1 - y0) + x0)
    return crosses.sum(1) % 2 == 1


def _lip_colour(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std RGB of the lips (between the outer and inner lip contours)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[LIPS_OUTER, :2]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(landmarks[LIPS_INNER, :2]).astype(np.int32)], 0)
    pixels = image[mask.astype(bool)].astype(np.float32)
    if len(pixels) < 4:
        pixels = image.reshape(-1, 3).astype(np.float32)
    return pixels.mean(0), pixels.std(0) + 1e-3


def _distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """``(N,)`` distance of each of ``points`` ``(N, 2)`` to the open ``polyline`` ``(M, 2)``."""
    a, b = polyline[:-1], polyline[1:]  # (S, 2) segments
    ab = b - a
    t = np.einsum("nsk,sk->ns", points[:, None, :] - a[None], ab) / np.maximum((ab * ab).sum(1), 1e-12)
    nearest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]  # (N, S, 2)
    return np.linalg.norm(points[:, None, :] - nearest, axis=2).min(1)


def _eye_width(points: np.ndarray, eye: dict) -> float:
    a, b = eye["corners"]
    return float(np.linalg.norm(points[a, :2] - points[b, :2]))


def _lid_line(points: np.ndarray, eye: dict, lid: np.ndarray) -> np.ndarray:
    """``(M + 2, 2)``: the eye's outer corner, the ``(M, 2)`` lid points (one per lid
    pair, in ``eye["pairs"]`` order: inner to outer) from the outer corner to the inner,
    and the inner corner (a lash line, or a cover's top)."""
    a, b = eye["corners"]
    return np.concatenate([points[[a], :2], lid[::-1], points[[b], :2]])


def _eye_frame(outer: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin and 2x2 basis of eye coordinates: u from the outer to the inner corner
    (length 1 = eye width), v perpendicular."""
    u = inner - outer
    return outer, np.array([[u[0], -u[1]], [u[1], u[0]]])


def _to_eye(frame, points: np.ndarray) -> np.ndarray:
    origin, basis = frame
    return (points - origin) @ np.linalg.inv(basis).T


def _from_eye(frame, coords: np.ndarray) -> np.ndarray:
    origin, basis = frame
    return coords @ basis.T + origin


def _lid_height(lid: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Height v of a lid polyline (eye coordinates) at positions ``u``."""
    order = np.argsort(lid[:, 0])
    return np.interp(u, lid[order, 0], lid[order, 1])


@dataclass
class Eyeball:
    """One source eye as a layer: what the eye shows with the iris painted out (sclera)
    and the iris disc on its own (the part hidden by the lids filled in), both in a box
    of the source crop.

    Attributes:
        origin: ``(x0, y0)`` of the box in the crop's pixels.
        sclera, iris: ``(h, w, 3)`` float32 colours.
        iris_alpha: ``(h, w)`` float32 coverage of the iris disc (antialiased).
        opening: ``(h, w)`` float32, 1 inside the eye opening away from its rim (the
            lids and lashes are not part of the layer).
    """

    origin: np.ndarray
    sclera: np.ndarray
    iris: np.ndarray
    iris_alpha: np.ndarray
    opening: np.ndarray


def _eyeball(image: np.ndarray, landmarks: np.ndarray, eye: dict, iris_scale: float) -> Eyeball:
    """Split one source eye into sclera and iris layers (see :class:`Eyeball`)."""
    loop = landmarks[list(eye["loop"]), :2]
    centre = landmarks[eye["iris"][0], :2]
    radius = iris_scale * float(np.linalg.norm(landmarks[eye["iris"][1:], :2] - centre, axis=1).mean())
    pad = int(np.ceil(radius)) + 3
    lo = np.floor(np.minimum(loop.min(0), centre - radius)).astype(int) - pad
    hi = np.ceil(np.maximum(loop.max(0), centre + radius)).astype(int) + pad
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array(image.shape[1::-1]) - 1)
    patch = image[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    h, w = patch.shape[:2]
    opening = np.zeros((h, w), np.uint8)
    cv2.fillPoly(opening, [np.round((loop - lo) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    opening = cv2.erode(opening, np.ones((3, 3), np.uint8))  # lashes at the rim are not sclera
    disc = np.zeros((h, w), np.float32)
    cx, cy = np.round((centre - lo) * 16).astype(int)
    cv2.circle(disc, (int(cx), int(cy)), int(round(radius * 16)), 1.0, -1, cv2.LINE_AA, shift=4)
    is_open = opening.astype(bool)
    in_disc = disc > 0.5
    white = is_open & ~cv2.dilate(in_disc.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    sclera_colour = _bright_colour(patch[white] if white.sum() >= 8 else patch[is_open]
                                   if is_open.sum() >= 8 else patch.reshape(-1, 3))
    # The iris: the landmarks' disc, plus the dark pixels of the opening next to it (the
    # iris landmarks can sit a few pixels off the iris seen in the image).
    luminance = patch.astype(np.float32) @ LUMA_WEIGHTS
    seen = in_disc & is_open
    iris_colour = np.median(patch[seen], axis=0) if seen.sum() >= 4 else sclera_colour * 0.4
    threshold = 0.5 * (float(sclera_colour @ LUMA_WEIGHTS) + float(iris_colour @ LUMA_WEIGHTS))
    near = cv2.dilate(in_disc.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * int(radius // 2) + 1,) * 2)).astype(bool)
    inside = in_disc | (near & is_open & (luminance < threshold))
    alpha = np.maximum(disc, cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.7) * inside)
    # Sclera: pixels outside the opening take the sclera's colour, then the iris is
    # inpainted from what surrounds it (the white of the eye only).
    base = patch.copy()
    base[~is_open] = sclera_colour.astype(np.uint8)
    painted = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)) & opening
    sclera = np.where(painted[..., None] > 0, cv2.inpaint(base, painted, 3, cv2.INPAINT_TELEA), patch)
    # Iris: lashes overhang the opening's rim, so iris pixels near it and under the lids
    # are filled in from the visible iris rather than moved.
    iris_seen = inside & cv2.erode(opening, np.ones((5, 5), np.uint8)).astype(bool)
    base = patch.copy()
    base[~iris_seen] = iris_colour.astype(np.uint8)
    hidden = inside & ~iris_seen
    iris = np.where(hidden[..., None], cv2.inpaint(base, hidden.astype(np.uint8), 3, cv2.INPAINT_TELEA), patch)
    disc = alpha.astype(np.float32)
    soft = cv2.GaussianBlur(opening.astype(np.float32), (0, 0), 0.7)
    return Eyeball(lo.astype(np.float32), sclera.astype(np.float32), iris.astype(np.float32), disc, soft)


def _bright_colour(pixels: np.ndarray, share: float = 0.3) -> np.ndarray:
    """Mean colour of the brightest ``share`` of ``(N, 3)`` pixels: the white of an eye
    without the lashes and shadows at its rim."""
    luminance = pixels.astype(np.float32) @ LUMA_WEIGHTS
    keep = luminance >= np.quantile(luminance, 1.0 - share)
    return pixels[keep].astype(np.float32).mean(0)


def _draw_eyeball(out: np.ndarray, eyeball: Eyeball, loop: np.ndarray, map_x: np.ndarray, map_y: np.ndarray,
                  shift: np.ndarray) -> None:
    """In place: inside the target eye opening ``loop`` ``(16, 2)``, move the iris by
    ``shift`` source pixels over the sclera, both seen through the backward maps.

    Only pixels that come from the source's eye opening are redrawn (not the lids and
    lashes the lid retargeting may stretch over it); a zero shift draws nothing.
    """
    if not np.any(shift):
        return
    s = out.shape[0]
    x0, y0 = np.maximum(np.floor(loop.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(loop.max(0)).astype(int) + 2, s)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [np.round((loop - (x0, y0)) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    if not mask.any():
        return
    mx = map_x[y0:y1, x0:x1] - eyeball.origin[0]
    my = map_y[y0:y1, x0:x1] - eyeball.origin[1]
    sclera = cv2.remap(eyeball.sclera, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    x, y = mx - np.float32(shift[0]), my - np.float32(shift[1])
    iris = cv2.remap(eyeball.iris, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.remap(eyeball.iris_alpha, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0.0)[..., None]
    eye = sclera + alpha * (iris - sclera)
    interior = cv2.remap(eyeball.opening, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    weight = (mask * interior)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + weight * (eye - region) + 0.5, 0, 255).astype(np.uint8)
