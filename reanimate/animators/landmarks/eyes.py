"""The eyes: how open they are, eye-corner coordinates, the eyeball layer (sclera and a
movable iris disc, drawn shifted by the gaze) and the glue to the closed-lid layer of
:mod:`reanimate.faces.lids` (the lid band above each eye, lifted lid margins, the lash
line along a closing lid).

The mesh carries each eye with its lids; inside the opening the iris disc is drawn over
the sclera (the source's, with the iris painted out), so a look aside slides the iris
instead of stretching it into the white. A closing lid is drawn from a second layer: the
opening and the lid band above it painted over with skin, plus a lash line along the
closed margin, so that a closed eye reads as closed instead of a stretched band of
lashes. All arrays are in pixels of the square crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...faces.lids import LidLayer, distance_to_polyline, draw_closed_lid, lid_layer
from ...io.image import LUMA_WEIGHTS
from .config import EYES, LandmarkAnimatorConfig

if TYPE_CHECKING:
    from .source import LandmarkSource

#: The sclera that the source's iris hid is painted in from the white around it and,
#: at the opening's rim, from this fraction of the white's brightness: towards the eye's
#: corners and under the lids the eyeball curves away and is shaded (at full brightness
#: a look aside bares a glaring white wedge beside the iris there).
RIM_SCLERA_SHADE = 0.7


# -- measurements ----------------------------------------------------------------------


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


def eye_width(points: np.ndarray, eye: dict) -> float:
    a, b = eye["corners"]
    return float(np.linalg.norm(points[a, :2] - points[b, :2]))


# -- eye-corner coordinates --------------------------------------------------------------


def eye_frame(outer: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin and 2x2 basis of eye coordinates: u from the outer to the inner corner
    (length 1 = eye width), v perpendicular."""
    u = inner - outer
    return outer, np.array([[u[0], -u[1]], [u[1], u[0]]])


def to_eye(frame, points: np.ndarray) -> np.ndarray:
    origin, basis = frame
    return (points - origin) @ np.linalg.inv(basis).T


def from_eye(frame, coords: np.ndarray) -> np.ndarray:
    origin, basis = frame
    return coords @ basis.T + origin


def lid_height(lid: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Height v of a lid polyline (eye coordinates) at positions ``u``."""
    order = np.argsort(lid[:, 0])
    return np.interp(u, lid[order, 0], lid[order, 1])


def lid_line(points: np.ndarray, eye: dict, lid: np.ndarray) -> np.ndarray:
    """``(M + 2, 2)``: the eye's outer corner, the ``(M, 2)`` lid points (one per lid
    pair, in ``eye["pairs"]`` order: inner to outer) from the outer corner to the inner,
    and the inner corner (a lash line, or a cover's top)."""
    a, b = eye["corners"]
    return np.concatenate([points[[a], :2], lid[::-1], points[[b], :2]])


# -- closed lids (faces.lids) ----------------------------------------------------------------


def source_lids(config: LandmarkAnimatorConfig, image: np.ndarray, landmarks: np.ndarray) -> LidLayer:
    """Each eye's opening and the ``lid_band`` above it, painted over with skin."""
    openings, bands, margins, widths = [], [], [], []
    for eye in EYES:
        upper, lower = eye["pairs"][:, 0], eye["pairs"][:, 1]
        gap = landmarks[upper, :2] - landmarks[lower, :2]
        length = np.maximum(np.linalg.norm(gap, axis=1), 1e-9)
        to_brow = distance_to_polyline(landmarks[upper, :2], landmarks[eye["brow"], :2])
        reach = np.minimum(config.lid_band * length, config.lid_brow * to_brow)
        top = landmarks[upper, :2] + (reach / length)[:, None] * gap
        openings.append(landmarks[list(eye["loop"]), :2])
        bands.append(lid_line(landmarks[:, :2], eye, top))
        margins.append(landmarks[upper, :2])
        widths.append(eye_width(landmarks, eye))
    width = float(np.mean(widths))
    return lid_layer(image, openings, bands, margins, config.lid_grow * width, config.lid_feather * width)


def lifted_lids(config: LandmarkAnimatorConfig, source: LandmarkSource, closing: np.ndarray) -> np.ndarray:
    """Source nodes with each upper lid margin lifted as the eye closes.

    The visible band of upper lid above the margin is thin and ends in lashes and
    the top of the iris; stretched over a closed eye it would read as an open dark
    eye. Sampling a closing lid from higher up (by ``lid_lift`` of the lid gap when
    fully closed) shows lid skin, and squeezes the lash line into the closing gap.
    """
    if not config.eyes or config.lid_lift <= 0:
        return source.nodes
    nodes = source.nodes.copy()
    for eye, amount in zip(EYES, closing):
        if amount <= 0:
            continue
        upper, lower = eye["pairs"][:, 0], eye["pairs"][:, 1]
        gap = nodes[upper] - nodes[lower]  # points up, one lid gap long
        nodes[upper] += amount * config.lid_lift * gap
    return nodes


def draw_lids(
    config: LandmarkAnimatorConfig,
    out: np.ndarray,
    lids: LidLayer,
    map_x: np.ndarray,
    map_y: np.ndarray,
    nodes: np.ndarray,
    closing: np.ndarray,
    lash: bool = True,
) -> None:
    """In place: each closing eye's lid layer and lash line (:func:`draw_closed_lid`),
    at the target ``nodes``; ``closing`` ``(2,)`` per eye (0 open, 1 closed).
    ``lash=False``: no lash line (a face that is not human, :mod:`reanimate.faces.kind`)."""
    for eye, amount in zip(EYES, closing):
        width = eye_width(nodes, eye)
        draw_closed_lid(
            out,
            lids,
            map_x,
            map_y,
            nodes[list(eye["loop"])],
            lid_line(nodes, eye, nodes[eye["pairs"][:, 0]]),
            float(np.clip(amount, 0.0, 1.0)),
            config.lash_width * width if lash else 0.0,
            int(np.ceil(width)),
        )


# -- the eyeball layer -------------------------------------------------------------------------


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


def eyeball(image: np.ndarray, landmarks: np.ndarray, eye: dict, iris_scale: float) -> Eyeball:
    """Split one source eye into sclera and iris layers (see :class:`Eyeball`)."""
    loop = landmarks[list(eye["loop"]), :2]
    centre = landmarks[eye["iris"][0], :2]
    radius = iris_scale * float(np.linalg.norm(landmarks[eye["iris"][1:], :2] - centre, axis=1).mean())
    pad = int(np.ceil(radius)) + 3
    lo = np.floor(np.minimum(loop.min(0), centre - radius)).astype(int) - pad
    hi = np.ceil(np.maximum(loop.max(0), centre + radius)).astype(int) + pad
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array(image.shape[1::-1]) - 1)
    patch = image[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
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
    sclera_colour = _bright_colour(
        patch[white] if white.sum() >= 8 else patch[is_open] if is_open.sum() >= 8 else patch.reshape(-1, 3)
    )
    # The iris: the landmarks' disc, plus the dark pixels of the opening next to it (the
    # iris landmarks can sit a few pixels off the iris seen in the image).
    luminance = patch.astype(np.float32) @ LUMA_WEIGHTS
    seen = in_disc & is_open
    iris_colour = np.median(patch[seen], axis=0) if seen.sum() >= 4 else sclera_colour * 0.4
    threshold = 0.5 * (float(sclera_colour @ LUMA_WEIGHTS) + float(iris_colour @ LUMA_WEIGHTS))
    near = cv2.dilate(
        in_disc.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(radius // 2) + 1,) * 2)
    ).astype(bool)
    inside = in_disc | (near & is_open & (luminance < threshold))
    alpha = np.maximum(disc, cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.7) * inside)
    # Sclera: pixels outside the opening take the sclera's colour, then the iris is
    # inpainted from what surrounds it (the white of the eye only).
    base = patch.copy()
    base[~is_open] = (RIM_SCLERA_SHADE * sclera_colour).astype(np.uint8)
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


def eye_white(layer: Eyeball) -> np.ndarray:
    """``(3,)`` the colour of the white of an eye layer's eye (its brightest pixels)."""
    seen = layer.opening > 0.5
    pixels = layer.sclera[seen] if seen.sum() >= 8 else layer.sclera.reshape(-1, 3)
    return _bright_colour(pixels)


def _bright_colour(pixels: np.ndarray, share: float = 0.3) -> np.ndarray:
    """Mean colour of the brightest ``share`` of ``(N, 3)`` pixels: the white of an eye
    without the lashes and shadows at its rim."""
    luminance = pixels.astype(np.float32) @ LUMA_WEIGHTS
    keep = luminance >= np.quantile(luminance, 1.0 - share)
    return pixels[keep].astype(np.float32).mean(0)


def draw_eyeball(
    out: np.ndarray, eyeball: Eyeball, loop: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, shift: np.ndarray
) -> None:
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
    alpha = cv2.remap(eyeball.iris_alpha, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[
        ..., None
    ]
    eye = sclera + alpha * (iris - sclera)
    interior = cv2.remap(eyeball.opening, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    weight = (mask * interior)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + weight * (eye - region) + 0.5, 0, 255).astype(np.uint8)
