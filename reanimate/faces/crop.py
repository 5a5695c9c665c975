"""Square face crops and pasting them back, as plain functions on numpy arrays.

Boxes are ``(x0, y0, x1, y1)`` in pixels, x right, y down, ``x1``/``y1`` exclusive
(the box covers columns ``x0 .. x1 - 1``). Crop boxes are integers; face boxes
(:attr:`reanimate.faces.Face.box`) may be floats. Image sizes are ``(height, width)``,
as numpy shapes are.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def paste_back_into(
    out: np.ndarray, crop: np.ndarray, box: Sequence[float], mask: np.ndarray | None = None
) -> np.ndarray:
    """Blend ``crop`` into ``out`` at ``box``, in place (see :func:`paste_back`); returns ``out``.

    For a preallocated frame buffer: only the pixels inside the box are read or written.
    """
    assert out.dtype == np.uint8 and out.ndim == 3 and crop.ndim == 3 and crop.shape[2] == out.shape[2], (
        f"expected uint8 (H, W, C) image and (h, w, C) crop, got {out.dtype} {out.shape} and {crop.shape}"
    )
    x0, y0, x1, y1 = _box_ints(box)
    height, width = out.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx0 >= cx1 or cy0 >= cy1:
        return out
    box_h, box_w = y1 - y0, x1 - x0
    inner = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    patch = resize_area(np.ascontiguousarray(crop), box_h, box_w)[inner]
    if mask is None:
        weights = feather_mask((box_h, box_w))
    else:
        weights = cv2.resize(np.asarray(mask, dtype=np.float32), (box_w, box_h), interpolation=cv2.INTER_LINEAR)
    weights = np.ascontiguousarray(weights[inner])
    region = out[cy0:cy1, cx0:cx1]
    # Only the box region is touched, so the cost does not grow with the frame.
    region[...] = cv2.blendLinear(np.ascontiguousarray(patch), np.ascontiguousarray(region), weights, 1.0 - weights)
    return out


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
