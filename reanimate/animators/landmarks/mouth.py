"""The mouth: how open it is, the lips' colour, and the interior a newly opened mouth
reveals.

When the driver opens a mouth that the source keeps closed, the revealed interior is
filled from the driver's mouth (warped into place between the inner lips, colour-matched
to the source's lips, its teeth toned to the source's and shaded towards the corners)
instead of stretching lip texture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...faces import topology as mesh
from ...geometry.mesh import fit_affine, triangle_backward_maps
from ...geometry.relative import polygon_area
from ...io.image import LUMA_WEIGHTS
from .config import LIPS_INNER, LIPS_OUTER, LandmarkAnimatorConfig

if TYPE_CHECKING:
    from .source import LandmarkSource


def mouth_openness(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over mouth width, ``(..., 478, 2+)`` -> ``(...)``."""
    up, low = mesh.INNER_LIP_MIDDLE
    a, b = mesh.MOUTH_CORNERS
    gap = np.linalg.norm(landmarks[..., up, :2] - landmarks[..., low, :2], axis=-1)
    return gap / np.maximum(np.linalg.norm(landmarks[..., a, :2] - landmarks[..., b, :2], axis=-1), 1e-6)


def lip_colour(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std RGB of the lips (between the outer and inner lip contours)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[LIPS_OUTER, :2]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(landmarks[LIPS_INNER, :2]).astype(np.int32)], 0)
    pixels = image[mask.astype(bool)].astype(np.float32)
    if len(pixels) < 4:
        pixels = image.reshape(-1, 3).astype(np.float32)
    return pixels.mean(0), pixels.std(0) + 1e-3


def inner_mask(polygon: np.ndarray, shape: tuple[int, int], feather: float) -> np.ndarray:
    """``(h, w)`` float32 coverage of a closed ``(M, 2)`` polygon, 0 on its contour and
    rising to 1 over ``feather`` pixels inside it: a layer drawn with it blends along
    the contour and never covers what lies outside (the source's lips)."""
    h, w = shape
    inside = np.zeros((h + 2, w + 2), np.uint8)  # a pixel of margin: the contour may touch the box
    cv2.fillPoly(inside, [np.round((polygon + 1) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    if feather <= 0:
        return inside[1:-1, 1:-1].astype(np.float32)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    return np.clip(distance / (feather + 0.5), 0.0, 1.0)[1:-1, 1:-1].astype(np.float32)


#: the hue of teeth (ivory: warmer than the white of the eyes, never bluer)
IVORY = np.array([1.0, 0.96, 0.88], np.float32)


def teeth_colour(eye_whites: list[np.ndarray], lips: np.ndarray) -> np.ndarray:
    """``(3,)`` the colour of the brightest teeth the mouth interior may show: a little
    below the white of the source's eyes (``(3,)`` colours), with a luma (0-255) no lower
    than its lips' plus a third and no higher than 235, and a hue half-way between the
    eyes' white (the picture's light and colour cast) and :data:`IVORY` (a painted or
    cold-lit bluish white would make blue teeth)."""
    white = np.mean(eye_whites, axis=0) if eye_whites else np.full(3, 235.0)
    white = 0.92 * np.asarray(white, np.float32)
    luma = float(white @ LUMA_WEIGHTS)
    target = float(np.clip(luma, 1.33 * float(lips @ LUMA_WEIGHTS), 235.0))
    hue = 0.5 * (white / max(luma, 1e-3) + IVORY / float(IVORY @ LUMA_WEIGHTS))
    return (hue * target).astype(np.float32)


def tone_teeth(fill: np.ndarray, mask: np.ndarray, teeth: np.ndarray, knee: float = 0.6) -> np.ndarray:
    """``fill (h, w, 3)`` float with its bright part (teeth) compressed so that its 98th
    percentile inside ``mask`` reaches ``teeth``'s luma, not beyond, and tinted half-way
    to its colour; what lies below ``knee`` of that luma is unchanged (the texture of
    the teeth stays, only their range shrinks)."""
    cap = float(teeth @ LUMA_WEIGHTS)
    luma = np.maximum(fill @ LUMA_WEIGHTS, 1e-3)
    seen = luma[mask > 0.5]
    top = float(np.percentile(seen, 98)) if seen.size else 0.0
    low = knee * cap
    if top <= cap or top <= low:
        return fill
    squeezed = np.where(luma > low, low + (luma - low) * (cap - low) / (top - low), luma)
    squeezed = np.minimum(squeezed, cap)
    out = fill * (squeezed / luma)[..., None]
    weight = 0.5 * np.clip((luma - low) / (top - low), 0.0, 1.0)[..., None]
    tint = teeth[None, None] * (squeezed / cap)[..., None]
    return out * (1 - weight) + tint * weight


def interior_maps(target: np.ndarray, driver: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps ``(h, w)`` float32 (x, y) from a box to the driver's frame that carry
    the driver's mouth interior onto the target's: piecewise affine over the strip of
    triangles between the inner lips (:func:`~reanimate.faces.topology.mouth_triangles`),
    so that each inner-lip landmark of the target (``(478, 2)``, the box's pixels) reads
    the driver's (``(478, 2)``, its frame's pixels); outside the strip, their
    least-squares affine map. (That one affine alone leaves the corners several pixels
    off: the target's narrowing corners read the driver's lips and skin, and its teeth
    end in points there.)"""
    h, w = shape
    triangles = mesh.mouth_triangles()
    maps = triangle_backward_maps(driver.astype(np.float64), target.astype(np.float64), triangles)
    maps = np.concatenate([fit_affine(target[LIPS_INNER], driver[LIPS_INNER])[None], maps])
    index = np.zeros((h, w), np.int32)  # 0: outside the strip, else triangle + 1
    for t, corners in enumerate(np.round(target[triangles] * 16).astype(np.int32)):
        cv2.fillConvexPoly(index, corners, t + 1, cv2.LINE_8, shift=4)
    m = maps[index]  # (h, w, 2, 3)
    xs, ys = np.arange(w, dtype=np.float64)[None, :], np.arange(h, dtype=np.float64)[:, None]
    map_x = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    map_y = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def match_lips(fill: np.ndarray, driver: tuple[np.ndarray, np.ndarray], source: tuple[np.ndarray, np.ndarray]):
    """``fill (h, w, 3)`` float, the driver's pixels, in the source's lip colour: shifted
    by the difference of the lips' mean colours (``(mean, std)`` of :func:`lip_colour`)
    and its luma spread about the driver's lips scaled by the ratio of the lips' luma
    spreads (0.5 to 2), one gain for all channels: a neutral white (teeth) stays neutral.
    (A gain per channel tints it: a painted source's lips, more contrasted in green and
    blue than a driver's, turned the driver's white teeth cyan.)"""
    (mean_d, std_d), (mean_s, std_s) = driver, source
    gain = float(np.clip((std_s @ LUMA_WEIGHTS) / max(float(std_d @ LUMA_WEIGHTS), 1e-3), 0.5, 2.0))
    luma = fill @ LUMA_WEIGHTS - float(mean_d @ LUMA_WEIGHTS)
    return fill + (mean_s - mean_d) + (gain - 1.0) * luma[..., None]


def corner_shade(polygon: np.ndarray, corners: np.ndarray, shape: tuple[int, int], reach: float) -> np.ndarray:
    """``(h, w)`` float32: how much of the mouth interior's own light each pixel keeps.

    Along the axis between the ``(2, 2)`` inner mouth corners it is 0 at (and beyond)
    either corner, rising smoothly to 1 at ``reach`` of the corner-to-corner distance in
    from it; but a pixel as deep inside the closed ``(M, 2)`` inner-lip ``polygon`` as
    ``reach / 2`` of that distance keeps its light too. Teeth end in the shadow of the
    cheeks where the lips narrow towards the corners (a borrowed band of teeth cut off
    there instead ends in bright points), while the sides of a wide-open mouth stay lit
    but for a rim along the lips."""
    h, w = shape
    a, b = np.asarray(corners, np.float64)
    width = max(float(np.linalg.norm(b - a)), 1e-6)
    axis = (b - a) / width**2
    along = (np.arange(w)[None, :] - a[0]) * axis[0] + (np.arange(h)[:, None] - a[1]) * axis[1]
    t = np.minimum(along, 1.0 - along) / max(reach, 1e-6)
    depth = inner_mask(polygon, shape, 0.5 * reach * width)
    t = np.clip(np.maximum(t, depth), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


#: the darkest inside of a mouth (where no light reaches: the corners), its lips' colour times this
MOUTH_SHADOW = 0.15


def fill_mouth(
    config: LandmarkAnimatorConfig,
    source: LandmarkSource,
    out: np.ndarray,
    points: np.ndarray,
    frame: np.ndarray | None = None,
    landmarks: np.ndarray | None = None,
    size: float = 1.0,
) -> None:
    """In place: paint the revealed mouth interior from the driver (or shadow).

    Args:
        out: ``(S, S, 3)`` uint8 warped crop.
        points: ``(478, 2+)`` target landmarks in the crop's pixels.
        frame: the driver's frame ``(H, W, 3)`` and ``landmarks`` ``(478, 2+)`` its
            landmarks in its pixels, to copy the interior from; None: shadow.
        size: the target head's size over the source's (a head brought nearer shows
            its mouth larger, not more open).
    """
    polygon = points[LIPS_INNER]
    area = polygon_area(polygon)
    # Only the part of the opening the source does not already show is filled.
    shown = 1.2 * source.mouth_area * size**2
    alpha_open = np.clip((area - shown) / max(0.5 * area, 1e-6), 0.0, 1.0)
    if alpha_open <= 0 or area < 4:
        return
    s = out.shape[0]
    x0, y0 = np.floor(polygon.min(0)).astype(int) - 4
    x1, y1 = np.ceil(polygon.max(0)).astype(int) + 5
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, s), min(y1, s)
    if x1 <= x0 or y1 <= y0:
        return
    w, h = x1 - x0, y1 - y0
    mask = inner_mask(polygon - (x0, y0), (h, w), config.mouth_feather) * alpha_open
    region = out[y0:y1, x0:x1].astype(np.float32)
    if frame is not None:
        map_x, map_y = interior_maps(points[:, :2] - (x0, y0), landmarks[:, :2], (h, w))
        fill = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        fill = match_lips(fill, lip_colour(frame, landmarks), source.lips)
        # The driver's teeth, brightened with its lips' contrast, would shine pure white
        # in a dim or painted face: they are toned to the source's (teeth_colour).
        fill = tone_teeth(fill, mask, source.teeth)
    else:
        # No driver pixels (scripted motion): a shadowed interior, darker at the centre.
        shade = cv2.GaussianBlur(np.ones((h, w), np.float32) - mask / max(mask.max(), 1e-6), (0, 0), 2.0)
        fill = source.lips[0] * (MOUTH_SHADOW + 0.35 * shade[..., None])
    # Both end in the shadow at the corners (and the teeth with them).
    corners = points[list(mesh.MOUTH_INNER_CORNERS), :2] - (x0, y0)
    light = corner_shade(polygon - (x0, y0), corners, (h, w), config.mouth_corner_reach)
    shadow = MOUTH_SHADOW * np.asarray(source.lips[0], np.float32)
    fill = shadow + light[..., None] * (fill - shadow)
    out[y0:y1, x0:x1] = np.clip(region + mask[..., None] * (fill - region), 0, 255).astype(np.uint8)
