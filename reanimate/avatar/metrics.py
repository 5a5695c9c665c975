"""Evaluation metrics of an avatar's renders: IMavatar's protocol (supplement Sec. 1,
Tabs. 1-4), as the authors' ``code/utils/calculate_metrics.py`` computes it.

Pure functions on one frame, numpy arrays or torch tensors alike, plus
:class:`MetricsTable`, which averages the per-frame dicts over named splits (the paper's
"interpolation" and "extrapolation" test sets) and renders them as a markdown table.

* :func:`image_metrics`: L1, PSNR, SSIM and (given an LPIPS network) LPIPS of a render
  against the ground-truth frame. The avatar renders a white background, so the target is
  composited on white outside the mask first (the authors' ``gt * mask + (1 - mask)``).
  The whole-image values and the ``*_mask`` values restricted to the mask are both
  returned; the authors' reported numbers (Tabs. 1 and 3) are the ``*_mask`` ones, with
  the mask of the face interior, :func:`face_interior_mask` of the tracked landmarks
  (their ``only_face_interior``).
* :func:`mask_iou` (Tabs. 2 and 4, "Mask IoU"), :func:`normal_consistency` (Tabs. 2 and 4,
  "Normal", the mean cosine of predicted and true normals, as Grassal et al. report it),
  :func:`normal_angular_error` (supp. Fig. 5, in degrees), :func:`keypoint_error`
  (Tabs. 1 and 3, "Expression": the mean pixel distance between face-mesh landmarks of the
  render and the tracked landmarks; the caller runs the landmark detector).
* :func:`mesh_normals_image`: the true normals of a synthetic head's mesh, rendered with
  the project's rasteriser, for the normal metrics.

Images are ``(H, W, 3)`` RGB, uint8 (divided by 255) or float in ``[0, 1]``; masks are
``(H, W)`` bool (uint8 masks: ``> 127``, float masks: ``> 0.5``); normals are camera-frame
vectors (:mod:`reanimate.render.camera`: x right, y down, z away from the camera), zero
where undefined. A metric with nothing to compare (empty mask, no landmark) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np
import torch

from ..evaluation.metrics import average_keypoint_distance, psnr, ssim
from ..render.camera import Camera, project
from ..render.raster import interpolate, rasterize, vertex_normals

__all__ = [
    "HIGHER_IS_BETTER",
    "MetricsTable",
    "composite_on_white",
    "face_interior_mask",
    "image_metrics",
    "keypoint_error",
    "mask_iou",
    "mesh_normals_image",
    "normal_angular_error",
    "normal_consistency",
]

#: The background value of the avatar's renders, given to the target outside the mask.
WHITE = 1.0
#: Normals shorter than this are "undefined" (the renders' and rasteriser's zero background).
_NORMAL_EPS = 1e-8
#: Direction of each metric for the table's arrows (keys of :func:`image_metrics` and the
#: names the evaluation uses for the others).
HIGHER_IS_BETTER = {
    "l1": False,
    "psnr": True,
    "ssim": True,
    "lpips": False,
    "iou": True,
    "normal": True,
    "normal_angle": False,
    "keypoint": False,
}


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def _image(x, name: str) -> np.ndarray:
    """``(H, W, 3)`` float64 in [0, 1]."""
    a = _numpy(x)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) RGB image, got shape {a.shape}")
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)


def _mask(x, shape: tuple[int, ...], name: str) -> np.ndarray:
    a = _numpy(x)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if a.dtype == np.bool_:
        return a
    return a > 127 if a.dtype == np.uint8 else a > 0.5


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def composite_on_white(image, mask) -> np.ndarray:
    """``image (H, W, 3)`` inside ``mask (H, W)`` and white (1.0) outside, float64 in [0, 1]."""
    image = _image(image, "image")
    mask = _mask(mask, image.shape[:2], "mask")
    return np.where(mask[..., None], image, WHITE)


def face_interior_mask(landmarks, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool: the filled convex hull of ``landmarks (L, 2)`` (pixels, x first;
    NaN rows are skipped), rounded to pixel centres.

    The authors evaluate inside this hull of the 68 tracked landmarks
    (``only_face_interior = True`` in ``calculate_metrics.py``: ``cv2.convexHull`` and
    ``cv2.fillPoly`` of the integer landmarks), not inside the foreground mask. Fewer than
    three landmarks give an empty mask.
    """
    points = _numpy(landmarks).astype(np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"landmarks must be (L, 2) pixel coordinates, got shape {points.shape}")
    points = points[np.isfinite(points).all(axis=1)]
    mask = np.zeros((height, width), dtype=np.uint8)
    if len(points) >= 3:
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillPoly(mask, [hull.reshape(-1, 2)], 1)
    return mask.astype(bool)


def _masked_mse_psnr(squared: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 1) of the mean of ``squared (H, W, 3)`` over the mask's pixels."""
    count = mask.sum() * squared.shape[-1]
    if count == 0:
        return math.nan
    mse = float(squared[mask].sum() / count)
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _lpips(network, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """LPIPS of ``(H, W, 3)`` image pairs in [0, 1] in one batch (no gradients)."""
    parameter = next(iter(network.parameters()), None) if hasattr(network, "parameters") else None
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else "cpu"

    def batch(images) -> torch.Tensor:
        stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        return stacked.to(device=device, dtype=dtype)

    with torch.no_grad():
        values = network(batch([p for p, _ in pairs]), batch([t for _, t in pairs]))
    return [float(v) for v in values.reshape(-1)]


def image_metrics(prediction, target, mask=None, lpips=None) -> dict[str, float]:
    """L1, PSNR, SSIM (and LPIPS) of a rendered frame against its ground truth.

    The target is composited on white outside ``mask`` (:func:`composite_on_white`), as
    the prediction has a white background (the authors' ``gt * mask + 1 - mask``); the
    prediction is used as it is. Then, with ``p`` the prediction and ``t`` that target:

    * ``l1``: ``mean |p - t|`` over all pixels and channels (in [0, 1] units);
      ``psnr``: ``10 log10(1 / MSE)`` dB of the whole image, ``+inf`` for identical
      images (:func:`reanimate.evaluation.metrics.psnr`); ``ssim``: the standard SSIM
      (11x11 Gaussian window, sigma 1.5, valid region; the project's
      :func:`~reanimate.evaluation.metrics.ssim`, which matches the authors' ``img_ssim``);
      ``lpips``: ``lpips(p, t)``.
    * with a mask, the authors' masked variants (``use_mask = True``): ``l1_mask`` the mean
      of ``|p - t|`` over the mask's pixels and channels; ``psnr_mask`` from the MSE over
      the mask's pixels (``+inf`` when it is 0; the authors add 1e-8 to the RMSE, a cap at
      160 dB, which changes nothing at real errors); ``ssim_mask`` and ``lpips_mask``: SSIM
      and LPIPS of both images set to black (0) outside the mask. NaN for an empty mask.

    Args:
        prediction, target: ``(H, W, 3)`` RGB, uint8 or float in [0, 1], numpy or torch
            (e.g. ``AvatarRender.rgb[i].reshape(H, W, 3)``), the same size (at least 3x3).
        mask: ``(H, W)`` bool, the ground-truth region (foreground or
            :func:`face_interior_mask`); ``None``: the whole image, no ``*_mask`` keys.
        lpips: an LPIPS network, ``(B, 3, H, W) x (B, 3, H, W) in [0, 1] -> (B,)``, such as
            :func:`reanimate.evaluation.lpips.load_lpips` with the user's AlexNet weights
            (the authors': ``lpips.LPIPS(net="alex")``); ``None``: no LPIPS keys.

    Returns:
        ``{"l1", "psnr", "ssim"[, "lpips"][, "l1_mask", "psnr_mask", "ssim_mask"
        [, "lpips_mask"]]}`` floats.
    """
    p = _image(prediction, "prediction")
    t = _image(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and target {t.shape} must have the same shape")
    m = np.ones(p.shape[:2], dtype=bool) if mask is None else _mask(mask, p.shape[:2], "mask")
    t = np.where(m[..., None], t, WHITE)
    out = {"l1": float(np.abs(p - t).mean()), "psnr": psnr(p, t), "ssim": ssim(p, t)}
    pairs = [(p, t)]
    if mask is not None:
        count = m.sum() * 3
        out["l1_mask"] = float(np.abs(p - t)[m].sum() / count) if count else math.nan
        out["psnr_mask"] = _masked_mse_psnr((p - t) ** 2, m)
        black_p, black_t = p * m[..., None], t * m[..., None]
        out["ssim_mask"] = ssim(black_p, black_t) if count else math.nan
        pairs.append((black_p, black_t))
    if lpips is not None:
        values = _lpips(lpips, pairs)
        out["lpips"] = values[0]
        if mask is not None:
            out["lpips_mask"] = values[1] if m.any() else math.nan
    return out


# --------------------------------------------------------------------------------------
# Masks, normals, landmarks
# --------------------------------------------------------------------------------------


def mask_iou(predicted, target) -> float:
    """Intersection over union of two ``(H, W)`` bool masks (e.g. the render's ``hit`` and
    the ground-truth foreground); NaN when both are empty."""
    a = _numpy(predicted)
    b = _mask(target, a.shape, "target")
    a = _mask(a, a.shape, "predicted")
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else math.nan


def _normal_cosines(predicted, target, mask) -> np.ndarray:
    """Cosines ``(P,)`` between the two normal maps at the pixels where both are defined."""
    a, b = _numpy(predicted).astype(np.float64), _numpy(target).astype(np.float64)
    if a.shape != b.shape or a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"normals must be (H, W, 3) maps of one shape, got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    keep = np.isfinite(na) & np.isfinite(nb) & (na > _NORMAL_EPS) & (nb > _NORMAL_EPS)
    if mask is not None:
        keep &= _mask(mask, a.shape[:-1], "mask")
    cos = (a[keep] * b[keep]).sum(axis=-1) / (na[keep] * nb[keep])
    return np.clip(cos, -1.0, 1.0)


def normal_consistency(predicted, target, mask=None) -> float:
    """Mean cosine similarity of predicted and true normals: 1 for equal directions, 0 for
    perpendicular, -1 for flipped ones (higher is better).

    The "Normal (Intersec)" of IMavatar's supplement (Tabs. 2 and 4, values about 0.95),
    taken from Grassal et al.'s (Neural Head Avatars) evaluation: the mean of
    ``n_pred . n_true / (|n_pred| |n_true|)`` (signed, no ``abs``) over the pixels where
    both normals are defined, i.e. the intersection of the predicted and the true masks.
    The authors' repository has no code for it.

    Args:
        predicted, target: ``(H, W, 3)`` camera-frame normals, zero (or NaN) where undefined;
            need not be unit length. The avatar's ``AvatarRender.normals`` point outward
            like :func:`mesh_normals_image`'s.
        mask: optional ``(H, W)`` bool further restricting the pixels.

    Returns:
        The mean cosine; NaN without a pixel where both are defined.
    """
    cos = _normal_cosines(predicted, target, mask)
    return float(cos.mean()) if cos.size else math.nan


def normal_angular_error(predicted, target, mask=None) -> float:
    """Mean angle in degrees between predicted and true normals (supp. Fig. 5, "angular
    error of the surface normals"; lower is better), over the same pixels as
    :func:`normal_consistency`: 0 for equal, 180 for flipped normals; NaN without pixels."""
    cos = _normal_cosines(predicted, target, mask)
    return float(np.degrees(np.arccos(cos)).mean()) if cos.size else math.nan


def keypoint_error(predicted, target, visible=None) -> float:
    """Mean Euclidean distance in pixels between corresponding landmarks (the "Expression"
    error of Tabs. 1 and 3).

    The authors detect the 68 landmarks on the rendered image and compare them with the
    tracked landmarks of the frame: ``mean sqrt(sum (pred - gt)^2)`` at the evaluation
    resolution (256 px). Landmarks missing in either (NaN, or ``visible`` False) are
    skipped (:func:`reanimate.evaluation.metrics.average_keypoint_distance`).

    Args:
        predicted: ``(L, 2)`` landmarks detected on the render, pixels, x first.
        target: ``(L, 2)`` tracked / ground-truth landmarks.
        visible: optional ``(L,)`` bool of the target's valid landmarks.

    Returns:
        Pixels; NaN when no landmark is present in both.
    """
    pred, true = _numpy(predicted).astype(np.float64), _numpy(target).astype(np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"landmarks must be (L, 2) of one shape, got {pred.shape} and {true.shape}")
    return average_keypoint_distance(pred, true, real_visible=visible)


def mesh_normals_image(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
    smooth: bool = True,
    face_camera: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The true normals of a mesh seen by ``camera``, for the normal metrics.

    Args:
        vertices: ``(V, 3)`` camera-frame positions (the synthetic head, posed and placed).
        faces: ``(F, 3)`` long, counter-clockwise seen from outside for outward normals.
        camera: the evaluation camera (perspective or scaled orthographic).
        smooth: interpolate the area-weighted vertex normals
            (:func:`reanimate.render.raster.vertex_normals`) perspective-correctly and
            renormalise; False: the visible triangle's flat normal.
        face_camera: flip a pixel's normal where its triangle faces away from the camera
            (the mesh's winding or a thin sheet seen from behind), so that every visible
            surface's normal points towards the camera side, as the outward normal of a
            surface seen from outside does; False keeps the winding's orientation.

    Returns:
        ``normals (H, W, 3)`` unit camera-frame vectors (zero on background) and
        ``mask (H, W)`` bool (pixel centres covered by the mesh), in ``vertices``' dtype.
    """
    if vertices.dim() != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
    vertices = vertices.detach()
    if not vertices.is_floating_point():
        vertices = vertices.float()
    faces = faces.long().to(vertices.device)
    points = vertices[None]
    fragments = rasterize(
        project(points, camera), faces, camera.height, camera.width, perspective=not camera.orthographic
    )
    mask = fragments.mask[0]
    covered, face, _ = fragments.pixels()
    a, b, c = (vertices[faces[face, k]] for k in range(3))
    flat = torch.linalg.cross(b - a, c - a)  # (P, 3), outward for the documented winding
    if smooth:
        normals = interpolate(vertex_normals(points, faces)[0], fragments, faces)[0].reshape(-1, 3)[covered]
    else:
        normals = flat
    if face_camera:
        # the viewing ray to the surface: from the centre of projection, or along +z
        view = torch.tensor([0.0, 0.0, 1.0], dtype=vertices.dtype, device=vertices.device) if camera.orthographic else a
        away = (flat * view).sum(-1) > 0
        normals = torch.where(away[:, None], -normals, normals)
    normals = normals / torch.linalg.vector_norm(normals, dim=-1, keepdim=True).clamp_min(1e-12)
    image = vertices.new_zeros(camera.height * camera.width, 3).index_copy_(0, covered, normals)
    return image.view(camera.height, camera.width, 3), mask


# --------------------------------------------------------------------------------------
# Averaging over frames and splits
# --------------------------------------------------------------------------------------


class MetricsTable:
    """Per-frame metric dicts averaged per named split (e.g. ``"interpolation"``,
    ``"extrapolation"``), rendered as a markdown table.

    Each metric's mean over a split is over the split's frames that have a finite-or-inf
    value for it (NaN values, a frame without landmarks say, are skipped; a ``+inf`` PSNR of
    an identical frame makes the mean ``+inf``). Frames are weighted equally, as in the
    authors' ``np.mean`` over the per-frame values.
    """

    def __init__(self) -> None:
        self._values: dict[str, dict[str, list[float]]] = {}
        self._frames: dict[str, int] = {}
        self._keys: dict[str, None] = {}  # metric names in first-seen order

    def add(self, metrics: Mapping[str, float], split: str = "all") -> None:
        """Record one frame's ``metrics`` in ``split``."""
        values = self._values.setdefault(split, {})
        self._frames[split] = self._frames.get(split, 0) + 1
        for key, value in metrics.items():
            self._keys.setdefault(key, None)
            values.setdefault(key, []).append(float(value))

    @property
    def splits(self) -> list[str]:
        """The split names in the order of their first frame."""
        return list(self._values)

    @property
    def keys(self) -> list[str]:
        """The metric names in the order they were first seen."""
        return list(self._keys)

    def frames(self, split: str) -> int:
        """The number of frames added to ``split``."""
        return self._frames.get(split, 0)

    def values(self, split: str, key: str) -> np.ndarray:
        """The per-frame values of ``key`` in ``split`` (NaN included), in the order added."""
        return np.asarray(self._values.get(split, {}).get(key, []), dtype=np.float64)

    def mean(self, split: str, key: str) -> float:
        """The mean of ``key`` over ``split``'s frames with a value; NaN when none."""
        v = self.values(split, key)
        v = v[~np.isnan(v)]
        return float(v.mean()) if v.size else math.nan

    def means(self) -> dict[str, dict[str, float]]:
        """``{split: {metric: mean}}`` (JSON-friendly apart from NaN/inf)."""
        return {split: {key: self.mean(split, key) for key in self.keys} for split in self.splits}

    def markdown(self, keys: Iterable[str] | None = None, digits: int = 4) -> str:
        """A markdown table, one row per split (and their frame count), one column per
        metric with an arrow for its better direction (:data:`HIGHER_IS_BETTER`, by the
        name before any ``_mask`` suffix); values to ``digits`` significant digits, ``-``
        where a split has none."""
        keys = self.keys if keys is None else list(keys)
        header = ["split", "frames"] + [_column(key) for key in keys]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        for split in self.splits:
            cells = [split, str(self.frames(split))]
            for key in keys:
                value = self.mean(split, key)
                cells.append("-" if math.isnan(value) else f"{value:.{digits}g}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _column(key: str) -> str:
    base = key.removesuffix("_mask")
    if base not in HIGHER_IS_BETTER:
        return key
    return f"{key} {'↑' if HIGHER_IS_BETTER[base] else '↓'}"
