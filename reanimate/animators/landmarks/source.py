"""What the animator keeps per source crop (:class:`LandmarkSource`, made once by
:func:`encode_source`) and per driving frame (:class:`DrivingFace`), and the coordinate
helpers between crop pixels and keypoints in [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...faces.kind import HUMAN, face_kind
from ...faces.lids import LidLayer
from ...faces.pose import head_rotation
from ...faces.topology import CHIN, MIRROR, NOSE_BASE
from ...geometry import box_to_normalized, normalized_to_box
from ...geometry.mesh import nearest_neighbours, signed_areas
from ...geometry.relative import polygon_area
from ...motion import Keypoints
from .config import EYES, FACE_OVAL, LIPS_INNER, SKIN, SURROUNDING, LandmarkAnimatorConfig
from .eyes import Eyeball, eye_white, eyeball, source_lids
from .mouth import lip_colour, teeth_colour
from .warp import lid_skin, mesh_neighbours, triangulate


def to_normalized(points: np.ndarray, origin, side: float) -> torch.Tensor:
    """Pixels ``(..., 2+)`` -> ``(..., 2)`` float32 in [-1, 1] of a square of ``side``
    pixels at ``origin`` (:func:`reanimate.geometry.box_to_normalized`, in float64)."""
    points = torch.from_numpy(np.asarray(points[..., :2], np.float64))
    return box_to_normalized(points, origin, side).to(torch.float32)


def to_pixels(points: torch.Tensor, origin, side: float) -> np.ndarray:
    """Inverse of :func:`to_normalized`: ``(..., 2)`` float64 pixels
    (:func:`reanimate.geometry.normalized_to_box`)."""
    return normalized_to_box(points.detach().cpu().double(), origin, side).numpy()


def oval_ring(landmarks: np.ndarray, scale: float) -> np.ndarray:
    """The face oval scaled by ``scale`` about its centre: ``(len(FACE_OVAL), 2)`` pixels
    from ``(478, 2+)`` landmarks (the anchor rings of the animator)."""
    oval = landmarks[FACE_OVAL, :2]
    centre = oval.mean(0)
    return centre + scale * (oval - centre)


def neck_axis(landmarks: np.ndarray, side: float, collar: float, width: float = 1.0) -> tuple[np.ndarray, ...]:
    """The neck's frame in a crop (``side``: its last pixel): where it starts ``(2,)``
    (the collar: ``collar`` times the way from the face oval's centre to the chin, a
    little below the jaw, the lowest point that follows the head fully), the face's
    downward axis (oval centre -> chin) and the one across it (unit ``(2,)``), half the
    neck's width (``width`` times the jaw's) and how far the axis runs from the start to
    the crop's edge (pixels)."""
    oval = landmarks[FACE_OVAL, :2]
    centre = oval.mean(0)
    chin = landmarks[CHIN, :2]
    down = (chin - centre) / max(float(np.linalg.norm(chin - centre)), 1e-9)
    across = np.array([-down[1], down[0]])
    lower = oval[(oval - centre) @ down > 0]
    half = 0.5 * width * float(np.ptp((lower - centre) @ across))
    start = centre + collar * (chin - centre)
    exits = [(edge - start[k]) / down[k] for k in (0, 1) for edge in (0.0, side) if abs(down[k]) > 1e-9]
    length = max(min((e for e in exits if e > 0), default=0.0), 0.0)
    return start, down, across, half, length


def neck_follow(
    landmarks: np.ndarray, points: np.ndarray, follow: np.ndarray, side: float, collar: float, width: float = 1.0
) -> np.ndarray:
    """How much anchors at ``points`` ``(M, 2)`` (crop pixels) that follow the head by
    ``follow`` ``(M,)`` follow it once the neck does (:func:`neck_axis`): below the
    collar, along the neck, linearly from 1 there to 0 where its axis leaves the crop
    (the paste-back seam stays still); beside the neck, blended back to ``follow`` from
    half the neck's width to 1.5 times that. Above the collar: ``follow``."""
    start, down, across, half, length = neck_axis(landmarks, side, collar, width)
    along = (points - start) @ down / max(length, 1e-9)
    near = np.clip(1.5 - np.abs((points - start) @ across) / max(half, 1e-9), 0.0, 1.0)
    weight = near * near * (3 - 2 * near) * (along > 0)
    return (1 - weight) * follow + weight * np.clip(1.0 - along, 0.0, 1.0)


def under_collar(
    landmarks: np.ndarray, points: np.ndarray, side: float, collar: float, width: float = 1.0
) -> np.ndarray:
    """``(M,)`` bool: which ``points`` ``(M, 2)`` lie below the collar and within half the
    neck's width of its axis (:func:`neck_axis`), where :func:`neck_anchors` carry the
    motion (ring anchors there are dropped: next to a neck anchor they make slivers that
    tear when the two follow the head differently)."""
    start, down, across, half, _ = neck_axis(landmarks, side, collar, width)
    return ((points - start) @ down >= 0) & (np.abs((points - start) @ across) <= half)


def neck_anchors(
    landmarks: np.ndarray, side: float, rows: int, collar: float, width: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points under the jaw and down the neck ``(M, 2)`` and how much each
    follows the head ``(M,)``.

    The collar: the lower half of the face oval scaled by ``collar`` about its centre
    (:func:`oval_ring`), a band along the jaw a little below it that follows fully, so
    that the jaw's edge and the shadow under it move with the head instead of being
    stretched. Below it ``rows`` rows of five points across the neck's width, evenly
    between the collar's lowest point (:func:`neck_axis`'s start) and the crop's edge
    along the face's downward axis, following linearly less down to 0 at the edge (the
    gradient of :func:`neck_follow`, across the whole width: the neck moves as one, not
    sheared at its sides). Points outside the crop are dropped."""
    start, down, across, half, length = neck_axis(landmarks, side, collar, width)
    oval = landmarks[FACE_OVAL, :2]
    band = oval_ring(landmarks, collar)[(oval - oval.mean(0)) @ down > 0]
    steps = (np.arange(rows) + 1) / (rows + 1)
    spread = np.linspace(-1.0, 1.0, 5) * half
    grid = (start + length * steps[:, None, None] * down + spread[None, :, None] * across).reshape(-1, 2)
    points = np.concatenate([band, grid])
    follow = np.concatenate([np.ones(len(band)), np.repeat(1.0 - steps, len(spread))])
    inside = np.all((points > 2) & (points < side - 2), axis=1)
    return points[inside], follow[inside]


def frontal_view(landmarks: np.ndarray) -> np.ndarray:
    """``(478, 3)`` landmarks -> ``(478, 2)``: their x and y seen from straight in front
    of the head (turned by the inverse of :func:`~reanimate.faces.head_rotation`), where
    every skin triangle faces the camera."""
    points = np.asarray(landmarks, np.float64)
    head = (points - points.mean(0)) @ head_rotation(points)
    return head[:, :2]


def mirror_tables(
    config: LandmarkAnimatorConfig,
    landmarks: np.ndarray,
    nodes: np.ndarray,
    triangles: np.ndarray,
    areas: np.ndarray,
    front: np.ndarray,
    kinds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the fill of revealed regions needs (:func:`.warp.mirror_weights`).

    Returns:
        ``visibility (mesh_count,)``: each skin triangle's area in the source over its
        area seen from the front (about 1 facing the camera, small on the far cheek of
        a three-quarter face, negative turned away); ``texture (T, 3)``: where each
        triangle is read when revealed - skin triangles from their mirror landmarks
        (:data:`~reanimate.faces.topology.MIRROR`: the same piece of face on the other
        side), the surroundings from their landmark corners pushed out from the face's
        centre by ``silhouette_push`` (beyond the source's silhouette, not from the strip
        of cheek at it), other triangles from their own corners; node index ``N + i``
        is ``outer_landmarks[i]``; ``mirror_index (mesh_count,)``: the skin triangle
        that is each one's mirror image (-1: none); ``outer_landmarks (478, 2)``.
    """
    mesh_count = int((kinds == SKIN).sum())
    skin = triangles[:mesh_count]
    frontal = np.abs(signed_areas(frontal_view(landmarks), skin))
    visibility = areas[:mesh_count] * front / np.maximum(frontal, 1e-9)
    mirror = np.asarray(MIRROR)
    texture = triangles.copy()
    texture[:mesh_count] = mirror[skin]
    known = {tuple(sorted(t)): i for i, t in enumerate(skin.tolist())}
    index = np.array([known.get(tuple(sorted(t)), -1) for t in texture[:mesh_count].tolist()], np.int64)
    centre = landmarks[FACE_OVAL, :2].mean(0)
    outer = centre + config.silhouette_push * (landmarks[:, :2] - centre)
    n = len(landmarks)
    around = kinds == SURROUNDING
    replaced = np.where(triangles < n, len(nodes) + triangles, triangles)
    texture[around] = replaced[around]
    return visibility, texture, index, outer


def no_slivers(config: LandmarkAnimatorConfig, areas: np.ndarray) -> np.ndarray:
    """``(len(areas),)`` bool: the skin triangles larger than ``sliver_area`` times the
    median size (landmark noise alone turns slivers over, so neither the relaxation nor
    the untangling checks them)."""
    return np.abs(areas) > config.sliver_area * np.median(np.abs(areas))


def relaxed_skin(config: LandmarkAnimatorConfig, areas: np.ndarray, front: np.ndarray) -> np.ndarray:
    """``(len(areas),)`` bool: the skin triangles :func:`.warp.relax_flips` keeps from
    flipping: no slivers, and only those the source shows facing the camera. Skin the
    source shows turned away (behind the far cheek of a three-quarter face) turns towards
    the camera when the head turns back: no flip to undo. Pushed back to the source's
    orientation, it drove the silhouette out into a straight edge with a step at the eye."""
    return no_slivers(config, areas) & (areas * front > 0)


def untangled_skin(
    config: LandmarkAnimatorConfig, landmarks: np.ndarray, skin: np.ndarray, areas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(len(skin),)`` bool: the skin triangles :func:`.warp.untangle_skin` keeps from
    folding, and ``(len(skin),)`` float: the least share of its size each keeps.

    No slivers; around the mouth and the jaw (below the nose), where an expression the
    source's proportions do not fit folds the skin, ``min_area_ratio``; elsewhere the
    relaxation's result stands (unfolding there moved landmarks a three-quarter face
    folds for real, and the face tracker read the mouth less well from the output), but
    for the lids (:func:`.warp.lid_skin`, while ``lid_keep`` > 0), which keep
    ``lid_keep``."""
    sized = no_slivers(config, areas)
    frontal = frontal_view(landmarks)
    below_nose = (frontal[skin, 1] > frontal[list(NOSE_BASE), 1].mean()).all(1)
    lids = sized & lid_skin(landmarks, skin) & (config.lid_keep > 0)
    keep = np.where(lids, max(config.lid_keep, config.min_area_ratio), config.min_area_ratio)
    return (sized & below_nose) | lids, keep


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
    eyeballs: list[Eyeball]  # per eye (person's right, left): the gaze layer
    lids: LidLayer | None  # what closed lids show (config.lid_fill)
    teeth: np.ndarray  # (3,) the colour of the brightest teeth a filled mouth may show (mouth.teeth_colour)
    visibility: (
        np.ndarray
    )  # (mesh_count,) each skin triangle's area in the source over its frontal area (< 0: faces away)
    mirror_texture: (
        np.ndarray
    )  # (T, 3) nodes (+ outer_oval) each revealed triangle reads its texture from (warp.mirror_weights)
    mirror_index: np.ndarray  # (mesh_count,) the skin triangle that is each one's mirror image (-1: none)
    outer_landmarks: np.ndarray  # (478, 2) the landmarks pushed out from the face's centre (node N + i is landmark i)
    untangled: np.ndarray  # (mesh_count,) bool: the skin triangles warp.untangle_skin keeps from folding
    untangle_keep: np.ndarray  # (mesh_count,) float: the least share of its size each of them keeps
    relaxed: np.ndarray  # (mesh_count,) bool: the skin triangles warp.relax_flips keeps from flipping
    human: bool = True  # faces.kind: False draws no borrowed mouth interior and no lash lines

    @property
    def side(self) -> float:
        return float(self.image.shape[0] - 1)


def encode_source(config: LandmarkAnimatorConfig, image: np.ndarray, landmarks: np.ndarray) -> LandmarkSource:
    """``image`` ``(S, S, 3)`` uint8 face crop with ``config.size`` pixels a side and
    its ``(478, 3)`` landmarks in the crop's pixels."""
    cfg = config
    s = image.shape[0]
    assert image.shape[:2] == (s, s), f"the source crop must be square, got {image.shape}"
    landmarks = np.asarray(landmarks, np.float64)
    side = float(s - 1)
    value = to_normalized(landmarks[None], (0, 0), side)
    neighbours = nearest_neighbours(value[0], cfg.neighbours)
    keypoints = Keypoints(value, torch.eye(2).expand(1, len(landmarks), 2, 2).clone())

    # Anchors: a ring at the face's outline that follows the head, a second that follows
    # half-way, and fixed points on the crop border (identity flow there: no seam).
    rings, follows, owners = [], [], []
    for scale, follow in ((cfg.inner_ring, 1.0), (cfg.outer_ring, cfg.outer_follow)):
        ring = oval_ring(landmarks, scale)
        inside = np.all((ring > 2) & (ring < side - 2), axis=1)
        rings.append(ring[inside])
        follows.append(np.full(int(inside.sum()), follow))
        owners.append(FACE_OVAL[inside])
    if cfg.neck_rows:
        # ... and down the neck: a collar under the jaw, then a gradient to the crop's bottom edge
        neck, follow = neck_anchors(landmarks, side, cfg.neck_rows, cfg.neck_collar, cfg.neck_width)
        kept = [~under_collar(landmarks, r, side, cfg.neck_collar, cfg.neck_width) for r in rings]
        rings, follows, owners = ([a[k] for a, k in zip(group, kept)] for group in (rings, follows, owners))
        rings.append(neck)
        follows.append(follow)
        owners.append(FACE_OVAL[np.argmin(((neck[:, None] - landmarks[FACE_OVAL, :2]) ** 2).sum(-1), axis=1)])
        follows = [neck_follow(landmarks, r, f, side, cfg.neck_collar, cfg.neck_width) for f, r in zip(follows, rings)]
    ring = np.concatenate(rings)
    t = np.linspace(0, side, cfg.border_points)
    border = np.unique(
        np.concatenate(
            [
                np.stack([t, np.zeros_like(t)], 1),
                np.stack([t, np.full_like(t, side)], 1),
                np.stack([np.zeros_like(t), t], 1),
                np.stack([np.full_like(t, side), t], 1),
            ]
        ),
        axis=0,
    )
    nodes = np.concatenate([landmarks[:, :2], ring, border])
    far = landmarks[:, 2].max() + side
    depth = np.concatenate([landmarks[:, 2], np.full(len(ring) + len(border), far)])
    triangles, kinds = triangulate(nodes, len(landmarks))
    areas = signed_areas(nodes, triangles)
    # Degenerate surroundings are dropped; the face's own triangles all stay.
    keep = (np.abs(areas) > 1e-9) | (kinds != SURROUNDING)
    triangles, kinds, areas = triangles[keep], kinds[keep], areas[keep]
    mesh_count = int((kinds == SKIN).sum())

    front = np.sign(signed_areas(frontal_view(landmarks), triangles[:mesh_count]))
    lips = lip_colour(image, landmarks)
    mouth_area = polygon_area(landmarks[LIPS_INNER, :2])
    skin = mesh_neighbours(triangles[:mesh_count], len(landmarks))
    eyeballs = [eyeball(image, landmarks, eye, cfg.iris_scale) for eye in EYES]
    lids = source_lids(cfg, image, landmarks) if cfg.eyes and cfg.lid_fill else None
    return LandmarkSource(
        image,
        landmarks,
        keypoints,
        nodes,
        depth,
        triangles,
        areas,
        front,
        kinds,
        mesh_count,
        skin,
        ring,
        np.concatenate(follows),
        np.concatenate(owners),
        neighbours,
        lips,
        mouth_area,
        head_rotation(landmarks),
        eyeballs,
        lids,
        teeth_colour([eye_white(e) for e in eyeballs], lips[0]),
        *mirror_tables(cfg, landmarks, nodes, triangles, areas, front, kinds),
        *untangled_skin(cfg, landmarks, triangles[:mesh_count], areas[:mesh_count]),
        relaxed_skin(cfg, areas[:mesh_count], front),
        face_kind(image, landmarks, cfg.face_kind) == HUMAN,
    )
