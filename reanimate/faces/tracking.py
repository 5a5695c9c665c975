"""Linking per-frame face boxes into tracks over a video, and smoothing them over time.

Boxes are ``(x0, y0, x1, y1)`` float pixels (x right, y down), as :attr:`Face.box`.
As in the official FOMM ``crop-video.py``, a detection joins a track when its
intersection-over-union with the track's box is above a threshold, and a track ends when
its face is lost (here optionally after a few missed frames, ``max_gap``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FaceTrack:
    """One face followed over consecutive frames.

    Attributes:
        start: index of the first frame.
        boxes: ``(N, 4)`` float64 ``(x0, y0, x1, y1)``, one per frame ``start .. end - 1``.
        detected: ``(N,)`` bool, False where the box was interpolated over a missed frame.
    """

    start: int
    boxes: np.ndarray
    detected: np.ndarray = field(default=None)

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if self.detected is None:
            self.detected = np.ones(len(self.boxes), dtype=bool)
        self.detected = np.asarray(self.detected, dtype=bool)
        assert self.detected.shape == (len(self.boxes),), (
            f"detected {self.detected.shape} does not match boxes {self.boxes.shape}"
        )

    @property
    def end(self) -> int:
        """Index one past the last frame (exclusive)."""
        return self.start + len(self.boxes)

    def __len__(self) -> int:
        return len(self.boxes)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair: ``(N, 4)`` x ``(M, 4)`` -> ``(N, M)``."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(1, -1, 4)
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _as_box(item) -> np.ndarray:
    """A :class:`~reanimate.faces.Face` (its ``.box``) or 4 numbers -> ``(4,)`` float64."""
    box = np.asarray(getattr(item, "box", item), dtype=np.float64)
    assert box.shape == (4,), f"expected a box (x0, y0, x1, y1) or a Face, got shape {box.shape}"
    return box


class _Track:
    """A track being built: its boxes so far and how many frames it has missed."""

    def __init__(self, start: int, box: np.ndarray, serial: int):
        self.start = start
        self.serial = serial  # creation order, to sort tracks that start together
        self.boxes = [box]
        self.detected = [True]
        self.missed = 0

    def extend(self, box: np.ndarray) -> None:
        """Add this frame's box, interpolating linearly over the frames just missed."""
        last = self.boxes[-1]
        for step in range(1, self.missed + 1):
            self.boxes.append(last + (box - last) * step / (self.missed + 1))
            self.detected.append(False)
        self.boxes.append(box)
        self.detected.append(True)
        self.missed = 0

    def done(self) -> tuple[int, FaceTrack]:
        return self.serial, FaceTrack(self.start, np.stack(self.boxes), np.array(self.detected))


class FaceTracker:
    """Builds :class:`FaceTrack` s from the face boxes of consecutive frames, one frame at a time.

    Args:
        iou_threshold: a detection continues a track when their IoU is above this
            (the official ``crop-video.py``'s ``--iou_with_initial``, 0.25).
        max_gap: frames a track may miss and still continue (the gap is filled by
            linear interpolation); 0 ends a track at the first frame without its face.
        against_initial: compare detections with the track's *first* box instead of its
            latest one, as the official script does: a track also ends when the face moves
            away from where it started, so that one fixed crop can hold it.

    Each frame's detections are matched greedily, highest IoU first, one per track.
    """

    def __init__(self, iou_threshold: float = 0.25, max_gap: int = 0, against_initial: bool = False):
        if not 0 <= iou_threshold < 1:
            raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.iou_threshold = iou_threshold
        self.max_gap = int(max_gap)
        self.against_initial = against_initial
        self.frames = 0
        self._active: list[_Track] = []
        self._finished: list[tuple[int, FaceTrack]] = []
        self._serial = 0

    def update(self, detections: Iterable) -> None:
        """Add the next frame's faces: :class:`~reanimate.faces.Face` s or ``(x0, y0, x1, y1)`` boxes."""
        boxes = [_as_box(item) for item in detections]
        matched_tracks: set[int] = set()
        matched_boxes: set[int] = set()
        if self._active and boxes:
            reference = np.stack([t.boxes[0] if self.against_initial else t.boxes[-1] for t in self._active])
            iou = box_iou(reference, np.stack(boxes))
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                track, box = np.unravel_index(flat, iou.shape)
                if iou[track, box] <= self.iou_threshold:
                    break
                if track in matched_tracks or box in matched_boxes:
                    continue
                self._active[track].extend(boxes[box])
                matched_tracks.add(track)
                matched_boxes.add(box)
        still_active = []
        for index, track in enumerate(self._active):
            if index not in matched_tracks:
                track.missed += 1
                if track.missed > self.max_gap:
                    self._finished.append(track.done())
                    continue
            still_active.append(track)
        for index, box in enumerate(boxes):
            if index not in matched_boxes:
                still_active.append(_Track(self.frames, box, self._serial))
                self._serial += 1
        self._active = still_active
        self.frames += 1

    def finish(self) -> list[FaceTrack]:
        """All tracks, ended and still running, ordered by first frame (then by the order
        of their first detections)."""
        tracks = self._finished + [track.done() for track in self._active]
        self._active, self._finished = [], []
        return [track for _, track in sorted(tracks, key=lambda item: (item[1].start, item[0]))]


def link_boxes(
    boxes_per_frame: Iterable[Sequence], iou_threshold: float = 0.25, max_gap: int = 0, against_initial: bool = False
) -> list[FaceTrack]:
    """Tracks from the face boxes of consecutive frames (see :class:`FaceTracker`).

    Args:
        boxes_per_frame: for each frame, its faces' ``(x0, y0, x1, y1)`` boxes or
            :class:`~reanimate.faces.Face` s (possibly none).
    """
    tracker = FaceTracker(iou_threshold, max_gap, against_initial)
    for boxes in boxes_per_frame:
        tracker.update(boxes)
    return tracker.finish()


def track_faces(
    frames: Iterable[np.ndarray],
    detector: Callable[[np.ndarray], Sequence],
    iou_threshold: float = 0.25,
    max_gap: int = 0,
    against_initial: bool = False,
) -> list[FaceTrack]:
    """Detect faces in every frame and link them into tracks, streaming.

    Args:
        frames: ``uint8 (H, W, 3)`` frames in order (e.g. a :class:`~reanimate.io.FrameReader`).
        detector: image -> faces or boxes, e.g. ``FaceMesh(max_faces=5, video=True).detect``.
        iou_threshold, max_gap, against_initial: see :class:`FaceTracker`.

    Only the boxes are kept, never the frames.
    """
    return link_boxes((detector(frame) for frame in frames), iou_threshold, max_gap, against_initial)


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0, renormalised at the ends.

    Near the first and last samples the kernel is cut off and the remaining weights are
    rescaled to sum to 1 (normalised convolution), so the ends are not pulled towards
    zero or towards a copied edge value.

    Args:
        values: ``(N, ...)``.
        sigma: standard deviation in samples; ``<= 0`` returns a copy.

    Returns:
        ``(N, ...)`` float64.
    """
    values = np.asarray(values, dtype=np.float64)
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    flat = values.reshape(len(values), -1)
    n = len(flat)
    total = np.zeros_like(flat)
    weight = np.zeros((n, 1))
    for offset, k in zip(offsets, kernel):
        lo, hi = max(0, -offset), min(n, n - offset)  # rows t with t + offset inside
        if lo >= hi:
            continue
        total[lo:hi] += k * flat[lo + offset : hi + offset]
        weight[lo:hi] += k
    return (total / weight).reshape(values.shape)


def smooth_boxes(boxes: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Smooth a track's boxes over time so that crops following them do not jitter.

    The centre and the size are filtered separately (:func:`gaussian_smooth`), so a
    steady face keeps a steady size while it moves.

    Args:
        boxes: ``(N, 4)`` ``(x0, y0, x1, y1)``, one per consecutive frame.
        sigma: Gaussian standard deviation in frames (``<= 0``: unchanged).

    Returns:
        ``(N, 4)`` float64 boxes.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    assert boxes.ndim == 2 and boxes.shape[1] == 4, f"expected (N, 4) boxes, got {boxes.shape}"
    centre = gaussian_smooth((boxes[:, :2] + boxes[:, 2:]) / 2, sigma)
    half = gaussian_smooth(boxes[:, 2:] - boxes[:, :2], sigma) / 2
    return np.concatenate([centre - half, centre + half], axis=1)
