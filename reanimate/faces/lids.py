"""Closed eyelids drawn over a warped face.

A warp can only move pixels the source shows. Closing an open eye in a still photo
stretches the thin band of upper lid (margin, lashes, crease shadow) over the whole
opening, which reads as a dark, streaked eye that is still open. A closed lid is a
smooth stretch of skin ending in a lash line. So, once per source, each eye's opening
and the band of lid above it are painted over with skin interpolated from around them
(:func:`lid_layer`); when the driver closes its eyes, that layer is seen through the
same backward flow as the source and drawn over the lid, with a lash line along the
closed margin (:func:`draw_closed_lid`).

All arrays are in pixels of one square crop: x right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..io.image import LUMA_WEIGHTS


def smooth_fill(image: np.ndarray, known: np.ndarray, iterations: int = 0) -> np.ndarray:
    """Fill the unknown pixels of ``image`` smoothly from the known ones.

    First push-pull: each level halves the image, averaging known pixels weighted by
    ``known``; the coarsest levels reach across any hole, and on the way back up each
    pixel keeps its own value in proportion to its weight and takes the coarser level's
    otherwise. Then ``iterations`` Jacobi passes of Laplace's equation inside the hole
    (each unknown pixel becomes the mean of its 4 neighbours), which remove the seams
    push-pull leaves at the hole's rim.

    Args:
        image: ``(H, W, C)`` float32.
        known: ``(H, W)`` weights in [0, 1]: 1 known, 0 to be filled.

    Returns:
        ``(H, W, C)`` float32, equal to ``image`` where ``known`` is 1.
    """
    image = np.asarray(image, np.float32)
    known = np.clip(np.asarray(known, np.float32), 0.0, 1.0)
    filled = _push_pull(image, known)
    if iterations > 0:
        fixed = known[..., None]
        base = image * fixed
        kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)
        for _ in range(iterations):
            mean = cv2.filter2D(filled, -1, kernel, borderType=cv2.BORDER_REPLICATE).reshape(filled.shape)
            filled = base + (1.0 - fixed) * mean
    return filled


def _push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    h, w = known.shape
    if h <= 2 or w <= 2:
        total = float(known.sum())
        mean = (image * known[..., None]).sum((0, 1)) / total if total > 0 else image.mean((0, 1))
        return image * known[..., None] + mean * (1.0 - known[..., None])
    half = ((w + 1) // 2, (h + 1) // 2)
    weight = cv2.resize(known, half, interpolation=cv2.INTER_AREA)
    summed = cv2.resize(image * known[..., None], half, interpolation=cv2.INTER_AREA).reshape(half[1], half[0], -1)
    coarse = summed / np.maximum(weight, 1e-6)[..., None]
    # A coarse pixel with a quarter of its area known counts as known.
    coarse = _push_pull(coarse, np.minimum(4.0 * weight, 1.0))
    up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
    return image * known[..., None] + up * (1.0 - known[..., None])


@dataclass
class LidLayer:
    """What a closed lid shows, per source.

    Attributes:
        image: ``(S, S, 3)`` uint8, the source with the eye openings and the lid bands
            above them painted over with skin.
        weight: ``(S, S)`` float32 in [0, 1], where ``image`` differs from the source
            (feathered): only pixels sampled from there are drawn.
        lash: ``(3,)`` float32, colour of the lash line (the darkest lid-margin pixels).
    """

    image: np.ndarray
    weight: np.ndarray
    lash: np.ndarray


def lid_layer(
    image: np.ndarray,
    openings: list[np.ndarray],
    bands: list[np.ndarray],
    margins: list[np.ndarray],
    grow: float,
    feather: float,
    dark: float = 0.75,
    black: float = 0.5,
    iterations: int = 100,
    detail: float = 1.0,
) -> LidLayer:
    """Paint the eye openings and the lid bands above them over with skin from around
    them (:func:`smooth_fill`).

    Args:
        image: ``(S, S, 3)`` uint8 source crop.
        openings: ``(K, 2)`` polygons painted over whole (the eye openings).
        bands: ``(K, 2)`` polygons painted over except for black parts that do not
            reach into an opening (the lid above each eye: its crease shadow and skin
            go, glasses frames and dark hair stay).
        margins: per eye, ``(M, 2)`` points on the upper lid margin (for the lash colour).
        grow: the polygons are grown by this many pixels (landmark contours can sit a
            few pixels off the eye a photo or painting shows; the lashes around it).
        feather: blur of the layer's weight, pixels.
        dark: pixels darker than this times the median luminance around the painted
            area (lashes, brows, creases, frames, hair, background) are not skin: they
            are not used to fill.
        black: band pixels darker than this times that median are kept (see ``bands``).
        iterations: Laplace passes of :func:`smooth_fill`.
        detail: how much of the skin's fine texture (pores, a painting's cracks) is
            laid over the smooth fill (:func:`borrowed_detail`); 0 leaves it flat.
    """
    h, w = image.shape[:2]

    def fill(polygons: list[np.ndarray]) -> np.ndarray:
        mask = np.zeros((h, w), np.uint8)
        for polygon in polygons:
            cv2.fillPoly(mask, [np.round(np.asarray(polygon) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        return mask

    def grown(mask: np.ndarray) -> np.ndarray:
        if grow >= 0.5:
            k = 2 * int(round(grow)) + 1
            mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        return mask.astype(bool)

    inner = fill(openings)
    opening, band = grown(inner), grown(fill(bands))
    colours = image.astype(np.float32)
    luminance = colours @ LUMA_WEIGHTS
    around = cv2.dilate((opening | band).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~(opening | band)
    reference = float(np.median(luminance[around])) if around.any() else float(np.median(luminance))
    skin = luminance > dark * reference
    # Black parts of a band stay, unless they reach into an opening (the top of an iris
    # or lashes the contour cuts through): frames, dark hair and brows do not.
    black_parts = (luminance < black * reference) & (opening | band)
    _, labels = cv2.connectedComponents(black_parts.astype(np.uint8), connectivity=8)
    of_eye = np.unique(labels[black_parts & inner.astype(bool)])
    keep = black_parts & ~opening & ~np.isin(labels, of_eye)
    hole = (opening | band) & ~keep
    weight = hole.astype(np.float32)
    if feather > 0:
        weight = cv2.GaussianBlur(weight, (0, 0), feather)
    layer = image.copy()
    if hole.any():
        # Work in the hole's box, with room for the skin around it.
        ys, xs = np.nonzero(hole)
        pad = 16 + int(np.ceil(3 * feather))
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
        box, inside = colours[y0:y1, x0:x1], hole[y0:y1, x0:x1]
        known = (~inside & skin[y0:y1, x0:x1]).astype(np.float32)
        filled = smooth_fill(box, known, iterations)
        if detail > 0:
            filled = filled + detail * borrowed_detail(box, inside, known > 0)
        layer[y0:y1, x0:x1] = np.where(inside[..., None], np.clip(filled + 0.5, 0, 255), box).astype(np.uint8)
    points = np.round(np.concatenate([np.asarray(m, np.float64) for m in margins])).astype(int)
    samples = colours[np.clip(points[:, 1], 0, h - 1), np.clip(points[:, 0], 0, w - 1)]
    lum = samples @ LUMA_WEIGHTS
    lash = samples[lum <= np.quantile(lum, 0.3)].mean(0)
    return LidLayer(layer, weight, lash.astype(np.float32))


def borrowed_detail(image: np.ndarray, hole: np.ndarray, skin: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """``(H, W, 3)`` float32 fine texture for the pixels of ``hole`` (0 elsewhere): the
    skin's own detail (``image`` minus its blur at ``sigma``) from the same column just
    below the hole (the skin under the eye), or just above it where that is not skin,
    as if the lid's skin were stretched over the opening.

    Args:
        image: ``(H, W, 3)`` float32; hole, skin: ``(H, W)`` bool.
    """
    h, w = hole.shape
    fine = image - cv2.GaussianBlur(image, (0, 0), sigma)
    out = np.zeros_like(image)
    ys, xs = np.nonzero(hole)
    if len(ys) == 0:
        return out
    rows = np.arange(h)[:, None]
    # per column: the hole's top and bottom rows, and its height there
    top = np.where(hole, rows, h).min(0)
    bottom = np.where(hole, rows, -1).max(0)
    height = np.maximum(bottom - top + 1, 1)
    for shift in (height, -height):  # from below first, then from above
        y = ys + shift[xs]
        ok = (y >= 0) & (y < h)
        ok[ok] &= skin[y[ok], xs[ok]] & ~hole[y[ok], xs[ok]]
        todo = ok & ~(out[ys, xs] != 0).any(-1)
        out[ys[todo], xs[todo]] = fine[y[todo], xs[todo]]
    return out


def distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """``(N,)`` distance of each of ``points`` ``(N, 2)`` to the open ``polyline`` ``(M, 2)``
    (how far a lid's margin is from its brow, which bounds the lid band)."""
    a, b = polyline[:-1], polyline[1:]  # (S, 2) segments
    ab = b - a
    t = np.einsum("nsk,sk->ns", points[:, None, :] - a[None], ab) / np.maximum((ab * ab).sum(1), 1e-12)
    nearest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]  # (N, S, 2)
    return np.linalg.norm(points[:, None, :] - nearest, axis=2).min(1)


def draw_closed_lid(
    out: np.ndarray,
    layer: LidLayer,
    map_x: np.ndarray,
    map_y: np.ndarray,
    opening: np.ndarray,
    margin: np.ndarray,
    amount: float,
    lash_width: float,
    pad: int,
) -> None:
    """In place: draw the lid layer over one closing eye and a lash line along its margin.

    Args:
        out: ``(S, S, 3)`` uint8 warped frame.
        map_x, map_y: ``(S, S)`` float32 backward flow of ``out`` (source pixels).
        opening: ``(L, 2)`` target eye-opening polygon: pixels seen through it keep the
            eye (what the lids leave open).
        margin: ``(M, 2)`` target upper lid margin, corner to corner (the lash line).
        amount: in [0, 1], how much of the layer is drawn.
        lash_width: pixels.
        pad: the work box is the opening's box grown by this many pixels (the lid band).
    """
    if amount <= 0:
        return
    s = out.shape[0]
    x0, y0 = np.maximum(np.floor(opening.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(opening.max(0)).astype(int) + pad + 1, s)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    mx, my = map_x[y0:y1, x0:x1], map_y[y0:y1, x0:x1]
    lid = cv2.remap(layer.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    weight = cv2.remap(layer.weight, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    still_open = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(still_open, [np.round((opening - (x0, y0)) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    weight = amount * weight * (1.0 - still_open)
    region = out[y0:y1, x0:x1].astype(np.float32)
    region += weight[..., None] * (lid - region)
    if lash_width > 0:
        line = np.zeros_like(still_open)
        cv2.polylines(
            line,
            [np.round((margin - (x0, y0)) * 16).astype(np.int32)],
            False,
            1.0,
            max(1, int(round(lash_width))),
            cv2.LINE_AA,
            shift=4,
        )
        line = cv2.GaussianBlur(line, (0, 0), 0.8) * amount
        region += line[..., None] * (layer.lash - region)
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
