"""Square face crops and pasting them back, as plain functions on numpy arrays.

Boxes are ``(x0, y0, x1, y1)`` in pixels, x right, y down, ``x1``/``y1`` exclusive
(the box covers columns ``x0 .. x1 - 1``). Crop boxes are integers; face boxes
(:attr:`reanimate.faces.Face.box`) may be floats. Image sizes are ``(height, width)``,
as numpy shapes are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from reanimate.faces.tracking import gaussian_smooth, smooth_boxes
from reanimate.io.image import resize_area

#: Fraction of the crop's size over which the paste-back mask falls from 1 to 0.
DEFAULT_FEATHER = 0.1
#: Square-side smoothing relative to the centre's: the zoom changes more slowly than the
#: crop follows the face, since a changing zoom is what makes a crop look unsteady.
SIDE_SIGMA_FACTOR = 4.0


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` or ``(height, width)`` -> ``(height, width)`` positive ints."""
    height, width = (size, size) if np.isscalar(size) else tuple(size)
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return height, width


def square_around(center: Sequence[float], side: float, image_size: Sequence[int]) -> np.ndarray:
    """Integer square of side ``side`` centred on ``center``, moved to lie inside the image.

    If the square does not fit (``side`` larger than the image's height or width), it
    shrinks to the smaller dimension.

    Args:
        center: ``(x, y)``.
        side: in pixels (rounded; at least 1).
        image_size: ``(height, width)``.

    Returns:
        ``(4,)`` int64 ``(x0, y0, x1, y1)`` with ``x1 - x0 == y1 - y0``,
        ``0 <= x0``, ``x1 <= width``, ``0 <= y0``, ``y1 <= height``.
    """
    height, width = _hw(image_size)
    side = int(min(max(1, round(float(side))), height, width))
    x0 = int(np.clip(round(float(center[0]) - side / 2), 0, width - side))
    y0 = int(np.clip(round(float(center[1]) - side / 2), 0, height - side))
    return np.array([x0, y0, x0 + side, y0 + side], dtype=np.int64)


def square_box(box: Sequence[float], image_size: Sequence[int], increase: float = 0.1) -> np.ndarray:
    """Square crop box around a face box, as the official ``crop-video.py --increase``.

    The square's side is the face box's longer side enlarged by ``increase`` of it on each
    side (``(1 + 2 * increase) * max(w, h)``), centred on the face box; it is then moved
    to lie fully inside the image, and shrunk if it cannot fit (see :func:`square_around`).
    (The official script clips the box at the image border instead, so its crops there are
    not square and get stretched.)

    Args:
        box: face box ``(x0, y0, x1, y1)``, floats allowed.
        image_size: ``(height, width)``.
        increase: margin on each side, as a fraction of the face box's longer side.

    Returns:
        ``(4,)`` int64 square ``(x0, y0, x1, y1)`` inside the image.
    """
    if increase < 0:
        raise ValueError(f"increase must be >= 0, got {increase}")
    x0, y0, x1, y1 = (float(v) for v in box)
    side = (1 + 2 * increase) * max(x1 - x0, y1 - y0)
    return square_around(((x0 + x1) / 2, (y0 + y1) / 2), side, image_size)


def track_crop_boxes(
    boxes: np.ndarray, image_size: Sequence[int], increase: float = 0.1, sigma: float = 2.0, fixed: bool = False
) -> np.ndarray:
    """Steady square crop boxes for a face track, one per frame.

    The face boxes are smoothed over time (:func:`~reanimate.faces.tracking.smooth_boxes`,
    ``sigma`` frames); the square follows their centre while its side (``1 + 2 * increase``
    times the longer box side) is smoothed :data:`SIDE_SIGMA_FACTOR` times more strongly.
    With ``fixed=True`` one square holds the union of all the boxes for the whole track,
    as the official ``crop-video.py`` does (the camera does not move in the crop).

    Args:
        boxes: ``(N, 4)`` face boxes of consecutive frames.
        image_size: ``(height, width)`` of the frames.

    Returns:
        ``(N, 4)`` int64 squares inside the frame.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes), f"expected (N, 4) boxes, got {boxes.shape}"
    if fixed:
        union = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
        return np.repeat(square_box(union, image_size, increase)[None], len(boxes), axis=0)
    smoothed = smooth_boxes(boxes, sigma)
    centres = (smoothed[:, :2] + smoothed[:, 2:]) / 2
    sides = (1 + 2 * increase) * (smoothed[:, 2:] - smoothed[:, :2]).max(axis=1)
    sides = gaussian_smooth(sides, SIDE_SIGMA_FACTOR * sigma)
    return np.stack([square_around(c, s, image_size) for c, s in zip(centres, sides)])


def _box_ints(box: Sequence[float]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty box {tuple(box)}")
    return x0, y0, x1, y1


def crop_face(image: np.ndarray, box: Sequence[float], size: int | Sequence[int]) -> np.ndarray:
    """Cut ``box`` out of ``image`` and resize it.

    Args:
        image: ``uint8 (H, W, 3)``.
        box: ``(x0, y0, x1, y1)`` (rounded to ints); parts outside the image are black.
        size: output side, or ``(height, width)``.

    Returns:
        ``uint8 (size, size, 3)`` (or ``(height, width, 3)``), a new array.
    """
    out_h, out_w = _hw(size)
    x0, y0, x1, y1 = _box_ints(box)
    height, width = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx0 >= cx1 or cy0 >= cy1:
        region = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], dtype=image.dtype)
    else:
        region = image[cy0:cy1, cx0:cx1]
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            pad = ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1)) + ((0, 0),) * (image.ndim - 2)
            region = np.pad(region, pad)
    return np.array(resize_area(np.ascontiguousarray(region), out_h, out_w), copy=True)


def feather_mask(size: int | Sequence[int], feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """Blending mask: 1 inside, falling smoothly to 0 at the border.

    The fall-off is a smoothstep over ``feather`` of the size from each edge (measured
    from pixel centres, so the outermost pixels are near 0, never exactly 1).

    Args:
        size: side, or ``(height, width)``.
        feather: width of the fall-off as a fraction of the size (0: all ones; up to 0.5).

    Returns:
        ``float32 (size, size)`` (or ``(height, width)``) in ``[0, 1]``.
    """
    if not 0 <= feather <= 0.5:
        raise ValueError(f"feather must be in [0, 0.5], got {feather}")
    height, width = _hw(size)

    def ramp(n: int) -> np.ndarray:
        if feather == 0:
            return np.ones(n, dtype=np.float32)
        index = np.arange(n, dtype=np.float64)
        distance = np.minimum(index + 0.5, n - index - 0.5) / (feather * n)
        t = np.clip(distance, 0.0, 1.0)
        return (t * t * (3 - 2 * t)).astype(np.float32)

    return np.outer(ramp(height), ramp(width))


def _clip_box(box: Sequence[float], image_shape: Sequence[int]):
    """``box`` (rounded) and its part inside an image of ``image_shape``: the box's
    ints, the clipped ``(cx0, cy0, cx1, cy1)`` and the slices of the box's own pixels
    that lie inside the image; None for the last two when nothing lies inside."""
    x0, y0, x1, y1 = _box_ints(box)
    height, width = image_shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx0 >= cx1 or cy0 >= cy1:
        return (x0, y0, x1, y1), None, None
    inner = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    return (x0, y0, x1, y1), (cx0, cy0, cx1, cy1), inner


def _box_weights(mask: np.ndarray | None, box_h: int, box_w: int) -> np.ndarray:
    """Blending weights ``float32 (box_h, box_w)``: ``mask`` resized to the box, or the
    default :func:`feather_mask` of the box."""
    if mask is None:
        return feather_mask((box_h, box_w))
    return cv2.resize(np.asarray(mask, dtype=np.float32), (box_w, box_h), interpolation=cv2.INTER_LINEAR)


def paste_back_into(
    out: np.ndarray, crop: np.ndarray, box: Sequence[float], mask: np.ndarray | None = None
) -> np.ndarray:
    """Blend ``crop`` into ``out`` at ``box``, in place (see :func:`paste_back`); returns ``out``.

    For a preallocated frame buffer: only the pixels inside the box are read or written.
    """
    assert out.dtype == np.uint8 and out.ndim == 3 and crop.ndim == 3 and crop.shape[2] == out.shape[2], (
        f"expected uint8 (H, W, C) image and (h, w, C) crop, got {out.dtype} {out.shape} and {crop.shape}"
    )
    (x0, y0, x1, y1), clipped, inner = _clip_box(box, out.shape)
    if clipped is None:
        return out
    cx0, cy0, cx1, cy1 = clipped
    box_h, box_w = y1 - y0, x1 - x0
    patch = resize_area(np.ascontiguousarray(crop), box_h, box_w)[inner]
    weights = np.ascontiguousarray(_box_weights(mask, box_h, box_w)[inner])
    region = out[cy0:cy1, cx0:cx1]
    # Only the box region is touched, so the cost does not grow with the frame.
    region[...] = cv2.blendLinear(np.ascontiguousarray(patch), np.ascontiguousarray(region), weights, 1.0 - weights)
    return out


class PasteCanvas:
    """An image with animated crops blended in at fixed boxes, frame after frame.

    What :func:`paste_back_into` gives for every frame, at a fraction of its cost for a
    large image: the image outside the boxes never changes, so it is kept (one buffer,
    :attr:`image`, never copied), and each :meth:`paste` only rewrites the boxes. The
    weights of each box are resized once; where a weight is exactly 1 (the inside of a
    :func:`feather_mask`) the crop is copied, not blended, which gives the same pixels
    (``cv2.blendLinear`` with weights 1 and 0 returns the first image).

    Args:
        image: ``uint8 (H, W, 3)``; becomes :attr:`image` (written in place) unless ``copy``.
        boxes: one crop box ``(x0, y0, x1, y1)`` per face (may reach outside the image).
        masks: blending weights of each crop (any size, resized to its box) or None
            (:func:`feather_mask` of the box).
        copy: work on a copy of ``image`` (True) or on ``image`` itself.

    Where boxes overlap, later ones are blended over earlier ones, as successive
    :func:`paste_back_into` calls on the untouched image would.
    """

    def __init__(self, image: np.ndarray, boxes, masks, copy: bool = True):
        assert image.dtype == np.uint8 and image.ndim == 3, f"expected uint8 (H, W, C), got {image.dtype} {image.shape}"
        boxes, masks = list(boxes), list(masks)
        assert len(boxes) == len(masks), f"{len(boxes)} boxes but {len(masks)} masks"
        self.image = np.array(image, copy=True) if copy else image
        self._regions = [
            region for box, mask in zip(boxes, masks) if (region := _PasteRegion.make(self.image, box, mask))
        ]

    @property
    def changed(self) -> list[tuple[int, int, int, int]]:
        """The ``(x0, y0, x1, y1)`` parts of :attr:`image` that :meth:`paste` rewrites
        (each box clipped to the image); every other pixel stays the image's."""
        return [region.clipped for region in self._regions]

    def paste(self, crops) -> np.ndarray:
        """Blend ``crops[i]`` (``uint8 (h, w, 3)``, any size) into box ``i``; returns :attr:`image`."""
        crops = list(crops)
        assert len(crops) == len(self._regions) or not self._regions, (
            f"{len(crops)} crops for {len(self._regions)} boxes"
        )
        alone = len(self._regions) == 1  # blend straight over the saved pixels
        if not alone:
            for region in self._regions:
                region.restore(self.image)
        for region, crop in zip(self._regions, crops):
            region.paste(self.image, crop, alone)
        return self.image


@dataclass
class _PasteRegion:
    """One box of a :class:`PasteCanvas`: where it lies, the image's own pixels there,
    and its weights split into a part copied (weight 1) and strips blended."""

    box: tuple[int, int, int, int]  # the whole box (may reach outside the image)
    clipped: tuple[int, int, int, int]  # its part inside the image
    inner: tuple[slice, slice]  # that part in the box's own pixels
    background: np.ndarray  # the image's pixels in ``clipped``
    copied: tuple[slice, slice] | None  # rows, columns (of ``clipped``) where every weight is 1
    strips: list[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]  # (rows, columns), weights, 1 - weights

    @classmethod
    def make(cls, image: np.ndarray, box, mask) -> _PasteRegion | None:
        box, clipped, inner = _clip_box(box, image.shape)
        if clipped is None:
            return None
        x0, y0, x1, y1 = box
        cx0, cy0, cx1, cy1 = clipped
        weights = _box_weights(mask, y1 - y0, x1 - x0)[inner]
        copied = _ones_rectangle(weights)
        height, width = weights.shape
        if copied is None:
            parts = [(slice(0, height), slice(0, width))]
        else:
            (r0, r1), (c0, c1) = copied
            parts = [
                (slice(0, r0), slice(0, width)),
                (slice(r1, height), slice(0, width)),
                (slice(r0, r1), slice(0, c0)),
                (slice(r0, r1), slice(c1, width)),
            ]
            copied = (slice(r0, r1), slice(c0, c1))
        strips = []
        for rows, columns in parts:
            w = np.ascontiguousarray(weights[rows, columns])
            if w.size:
                strips.append(((rows, columns), w, 1.0 - w))
        background = image[cy0:cy1, cx0:cx1].copy()
        return cls(box, clipped, inner, background, copied, strips)

    def restore(self, image: np.ndarray) -> None:
        cx0, cy0, cx1, cy1 = self.clipped
        image[cy0:cy1, cx0:cx1] = self.background

    def paste(self, image: np.ndarray, crop: np.ndarray, alone: bool) -> None:
        """Blend ``crop`` over the background (``alone``) or over what ``image`` holds."""
        x0, y0, x1, y1 = self.box
        cx0, cy0, cx1, cy1 = self.clipped
        patch = resize_area(np.ascontiguousarray(crop), y1 - y0, x1 - x0)[self.inner]
        region = image[cy0:cy1, cx0:cx1]
        under = self.background if alone else region
        for (rows, columns), w, rest in self.strips:
            region[rows, columns] = cv2.blendLinear(
                np.ascontiguousarray(patch[rows, columns]), np.ascontiguousarray(under[rows, columns]), w, rest
            )
        if self.copied is not None:
            region[self.copied] = patch[self.copied]


def _ones_rectangle(weights: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``((r0, r1), (c0, c1))``: the bounding rectangle of the weights that are exactly 1,
    when every weight inside it is 1 (a :func:`feather_mask`'s inside); else None."""
    ones = weights == 1.0
    rows, columns = np.flatnonzero(ones.any(axis=1)), np.flatnonzero(ones.any(axis=0))
    if not len(rows):
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    if not ones[r0:r1, c0:c1].all():
        return None
    return (int(r0), int(r1)), (int(c0), int(c1))


def paste_back(image: np.ndarray, crop: np.ndarray, box: Sequence[float], mask: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``image`` with ``crop`` blended in at ``box``.

    Args:
        image: ``uint8 (H, W, 3)``, left unchanged.
        crop: ``uint8 (h, w, 3)`` of any size; resized to the box (area averaging when
            shrinking, bilinear when enlarging).
        box: ``(x0, y0, x1, y1)`` where the crop came from; may reach outside the image
            (that part of the crop is dropped).
        mask: blending weights of the crop, ``float (h', w')`` in [0, 1] of any size,
            resized to the box; default :func:`feather_mask` of the box.

    Returns:
        ``uint8 (H, W, 3)``; pixels outside the box are exactly ``image``'s.
    """
    return paste_back_into(np.array(image, dtype=np.uint8, copy=True), crop, box, mask)
