"""The mouth: how open it is, the lips' colour, and the interior a newly opened mouth
reveals.

When the driver opens a mouth that the source keeps closed, the revealed interior is
filled from the driver's mouth (warped into place and colour-matched to the source's
lips) instead of stretching lip texture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...faces import topology as mesh
from ...geometry.mesh import fit_affine
from ...geometry.relative import polygon_area
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
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    k = config.mouth_feather
    if k > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), k)
    mask *= alpha_open
    region = out[y0:y1, x0:x1].astype(np.float32)
    if frame is not None:
        # Affine from the crop's box coordinates to the driver's frame (backward).
        back = fit_affine(polygon - (x0, y0), landmarks[LIPS_INNER, :2])
        fill = cv2.warpAffine(
            frame, back, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float32)
        mean_d, std_d = lip_colour(frame, landmarks)
        mean_s, std_s = source.lips
        gain = np.clip(std_s / np.maximum(std_d, 1e-3), 0.5, 2.0)
        fill = (fill - mean_d) * gain + mean_s
    else:
        # No driver pixels (scripted motion): a shadowed interior, darker at the centre.
        shade = cv2.GaussianBlur(np.ones((h, w), np.float32) - mask / max(mask.max(), 1e-6), (0, 0), 2.0)
        fill = source.lips[0] * (0.15 + 0.35 * shade[..., None])
    out[y0:y1, x0:x1] = np.clip(region + mask[..., None] * (fill - region), 0, 255).astype(np.uint8)
