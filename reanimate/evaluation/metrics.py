"""Pure metric functions of the papers' evaluation protocols.

Video reconstruction (FOMM, MoTrans): :func:`l1`, :func:`average_keypoint_distance`
(AKD), :func:`missing_keypoint_rate` (MKR), :func:`identity_distance` (AED). Animation
quality (MMFA, LivePortrait and others): :func:`psnr`, :func:`ssim`,
:func:`ms_ssim_score`, :func:`cosine_similarity` (CSIM), :func:`pose_difference` (APD),
:func:`jitter`.

No networks and no I/O here: the keypoints, identity embeddings and head angles come from
whatever detector the caller runs; these functions only compare them.

Conventions:

* Images are HWC, as the project's frames (uint8 RGB numpy arrays), with any number of
  leading frame dimensions: ``(..., H, W, C)``. numpy arrays and torch tensors are both
  accepted. uint8 values are divided by 255; any other dtype is taken as float values in
  ``[0, data_range]`` (``[0, 1]`` by default).
* Image metrics are computed per frame; ``reduction="mean"`` averages the frames into one
  float, ``reduction="none"`` returns the ``(...)`` numpy array of per-frame values.
* Keypoints and landmarks are ``(..., K, 2)`` pixel coordinates at the evaluation
  resolution, x first. A keypoint is *missing* where its visibility mask is False or any
  of its coordinates is NaN (or infinite). Results with nothing to compare are NaN.
* Shape mismatches raise :class:`ValueError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from ..imageops import (
    SSIM_K1,
    SSIM_K2,
    SSIM_SIGMA,
    SSIM_WINDOW,
    gaussian_window,
    ms_ssim,
    ms_ssim_plan,
    ssim_components,
)
from ..smoothing import second_differences

__all__ = [
    "PoseDifference",
    "average_keypoint_distance",
    "cosine_similarity",
    "identity_distance",
    "jitter",
    "l1",
    "missing_keypoint_rate",
    "ms_ssim_score",
    "pose_difference",
    "psnr",
    "ssim",
]

_REDUCTIONS = ("mean", "none")
_DISTANCES = ("euclidean", "mean_abs")
_FRAMES_PER_CHUNK = 16  # frames converted to float64 at a time, bounding the memory of long videos


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _numpy(x) -> np.ndarray:
    """numpy view of an array or tensor; floating tensors become float64 (numpy has no bf16)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.to(torch.float64)
        return x.numpy()
    return np.asarray(x)


def _float(x) -> np.ndarray:
    return _numpy(x).astype(np.float64, copy=False)


def _unit_range(frames: np.ndarray) -> np.ndarray:
    """uint8 -> float64 / 255; anything else -> float64 unchanged."""
    if frames.dtype == np.uint8:
        return frames.astype(np.float64) / 255.0
    return frames.astype(np.float64, copy=False)


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _reduce_frames(per_frame: np.ndarray, reduction: str) -> float | np.ndarray:
    return float(per_frame.mean()) if reduction == "mean" else per_frame


def _paired_frames(generated, real, metric: str, data_range: float = 1.0) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Both videos as ``(N, H, W, C)`` arrays in their own dtype, and the leading shape ``(...)``."""
    gen, ref = _numpy(generated), _numpy(real)
    if gen.shape != ref.shape:
        raise ValueError(f"{metric}: generated {gen.shape} and real {ref.shape} images must have the same shape")
    if gen.ndim < 3:
        raise ValueError(f"{metric}: images must be (..., H, W, C), got shape {gen.shape}")
    if gen.size == 0:
        raise ValueError(f"{metric}: no pixels to compare in images of shape {gen.shape}")
    if data_range <= 0:
        raise ValueError(f"{metric}: data_range must be positive, got {data_range}")
    if np.uint8 in (gen.dtype, ref.dtype) and data_range != 1.0:
        raise ValueError(f"{metric}: uint8 images are scaled to [0, 1], so data_range must be 1.0, got {data_range}")
    lead = gen.shape[:-3]
    return gen.reshape(-1, *gen.shape[-3:]), ref.reshape(-1, *ref.shape[-3:]), lead


def _per_frame(
    generated, real, metric: str, frame_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], data_range: float = 1.0
) -> np.ndarray:
    """``frame_fn((n, H, W, C), (n, H, W, C)) -> (n,)`` float64 images, over the frames in
    chunks; returns the ``(...)`` per-frame values."""
    gen, ref, lead = _paired_frames(generated, real, metric, data_range)
    chunks = [
        frame_fn(_unit_range(gen[i : i + _FRAMES_PER_CHUNK]), _unit_range(ref[i : i + _FRAMES_PER_CHUNK]))
        for i in range(0, gen.shape[0], _FRAMES_PER_CHUNK)
    ]
    return np.concatenate(chunks).reshape(lead)


def _nchw(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def _check_ssim_size(gen: np.ndarray, metric: str) -> None:
    height, width = gen.shape[-3:-1]
    if min(height, width) < 3:
        raise ValueError(f"{metric}: images must be at least 3x3 pixels, got {height}x{width}")


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis=None) -> np.ndarray:
    """Mean of ``values`` where ``mask``; NaN where the mask selects nothing."""
    count = mask.sum(axis=axis)
    total = np.where(mask, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _as_result(values: np.ndarray) -> float | np.ndarray:
    return float(values) if values.ndim == 0 else values


# --------------------------------------------------------------------------------------
# Image reconstruction: L1, PSNR, SSIM, MS-SSIM
# --------------------------------------------------------------------------------------


def l1(generated, real, *, reduction: str = "mean") -> float | np.ndarray:
    """Mean absolute error between images with values in [0, 1] (FOMM's reconstruction L1).

    ``mean |generated - real|`` over pixels and channels of each frame, in units of the
    full intensity range (0.01 is 2.55 grey levels of a uint8 image).

    Args:
        generated, real: ``(..., H, W, C)`` numpy arrays or tensors of the same shape;
            uint8 is divided by 255, floats are taken as ``[0, 1]``.
        reduction: ``"mean"``: one float, the mean over all frames (equal to the mean over
            every value, as all frames have the same size); ``"none"``: the ``(...)``
            array of per-frame values.
    """
    _check_reduction(reduction)
    per_frame = _per_frame(generated, real, "l1", lambda g, r: np.abs(g - r).mean(axis=(1, 2, 3)))
    return _reduce_frames(per_frame, reduction)


def psnr(generated, real, data_range: float = 1.0, *, reduction: str = "mean") -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB, per frame, then averaged over frames.

    ``10 log10(data_range^2 / MSE)`` with ``MSE`` the mean squared error over the pixels and
    channels of one frame. A frame identical to its reference (``MSE = 0``) has PSNR
    ``+inf``, and so then does the ``"mean"`` over the frames: filter or report such frames
    separately (``reduction="none"``) where that matters.

    Args:
        generated, real: ``(..., H, W, C)`` of the same shape; uint8 is divided by 255
            (``data_range`` must then stay 1), floats are taken as ``[0, data_range]``.
        data_range: the peak value, ``max - min`` of the value range.
        reduction: ``"mean"`` (one float, the mean of the per-frame dB values) or
            ``"none"`` (the ``(...)`` array of per-frame dB values).
    """
    _check_reduction(reduction)

    def frame_psnr(g: np.ndarray, r: np.ndarray) -> np.ndarray:
        mse = ((g - r) ** 2).mean(axis=(1, 2, 3))
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(data_range**2 / mse)

    return _reduce_frames(_per_frame(generated, real, "psnr", frame_psnr, data_range), reduction)


def ssim(generated, real, data_range: float = 1.0, *, reduction: str = "mean") -> float | np.ndarray:
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004), per frame.

    The standard single-scale SSIM: an ``11 x 11`` Gaussian window with ``sigma = 1.5``,
    ``C1 = (0.01 data_range)^2``, ``C2 = (0.03 data_range)^2``, population (not sample)
    local statistics, computed per channel and averaged over channels and pixels.
    Dimensionless, at most 1 (identical images), symmetric.

    Border convention: the *valid* region only, i.e. the SSIM map is averaged over the
    window positions that lie entirely inside the image (``(H - 10) x (W - 10)`` values),
    no padding. This is the convention of the project's MS-SSIM
    (:func:`reanimate.imageops.ms_ssim`, whose building blocks are used here), and
    gives the same values as scikit-image's ``structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``. Images with a side
    under 11 px use the smaller window of :func:`~reanimate.imageops.ms_ssim_plan`
    (largest odd size that fits, sigma scaled in proportion); so for images under 21 px,
    where MS-SSIM has a single scale, :func:`ms_ssim_score` equals this SSIM (clamped to a
    tiny positive floor).

    Args:
        generated, real: ``(..., H, W, C)`` of the same shape, ``H, W >= 3``; uint8 is
            divided by 255 (``data_range`` must then stay 1), floats are taken as
            ``[0, data_range]``.
        data_range: ``max - min`` of the value range.
        reduction: ``"mean"`` (one float) or ``"none"`` (the ``(...)`` per-frame values).
    """
    _check_reduction(reduction)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2

    def frame_ssim(g: np.ndarray, r: np.ndarray) -> np.ndarray:
        _check_ssim_size(g, "ssim")
        _, window_size, sigma = ms_ssim_plan(g.shape[1], g.shape[2], SSIM_WINDOW, SSIM_SIGMA, max_scales=1)
        window = gaussian_window(window_size, sigma, torch.float64, "cpu")
        ssim_per_channel, _ = ssim_components(_nchw(g), _nchw(r), window, c1, c2)
        return ssim_per_channel.mean(dim=1).numpy()

    return _reduce_frames(_per_frame(generated, real, "ssim", frame_ssim, data_range), reduction)


def ms_ssim_score(generated, real, data_range: float = 1.0, *, reduction: str = "mean") -> float | np.ndarray:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) per frame, through the project's
    :func:`reanimate.imageops.ms_ssim` (the same function as the training loss).

    Five scales at 161 px and more; smaller images use fewer scales (see
    :func:`~reanimate.imageops.ms_ssim_plan`), so compare scores only between
    images of the same size. Dimensionless, 1 for identical images.

    Args:
        generated, real: ``(..., H, W, C)`` of the same shape, ``H, W >= 3``; uint8 is
            divided by 255 (``data_range`` must then stay 1), floats are taken as
            ``[0, data_range]``.
        data_range: ``max - min`` of the value range.
        reduction: ``"mean"`` (one float) or ``"none"`` (the ``(...)`` per-frame values).
    """
    _check_reduction(reduction)

    def frame_ms_ssim(g: np.ndarray, r: np.ndarray) -> np.ndarray:
        _check_ssim_size(g, "ms_ssim_score")
        return ms_ssim(_nchw(g), _nchw(r), data_range).numpy()

    return _reduce_frames(_per_frame(generated, real, "ms_ssim_score", frame_ms_ssim, data_range), reduction)


# --------------------------------------------------------------------------------------
# Keypoints: AKD, MKR
# --------------------------------------------------------------------------------------


def _present(kp: np.ndarray, visible, name: str) -> np.ndarray:
    """``(..., K)`` bool: the mask (if given) and finite coordinates."""
    present = np.isfinite(kp).all(axis=-1)
    if visible is None:
        return present
    visible = _numpy(visible)
    if visible.shape != present.shape:
        raise ValueError(f"{name} must be (..., K) = {present.shape} like the keypoints, got {visible.shape}")
    return present & visible.astype(bool)


def _vector_distance(difference: np.ndarray, distance: str) -> np.ndarray:
    """``(..., D) -> (...)``: Euclidean norm, or the mean of the absolute coordinates."""
    if distance == "euclidean":
        return np.linalg.norm(difference, axis=-1)
    if distance == "mean_abs":
        return np.abs(difference).mean(axis=-1)
    raise ValueError(f"distance must be one of {', '.join(_DISTANCES)}, got {distance!r}")


def average_keypoint_distance(
    generated_kp,
    real_kp,
    generated_visible=None,
    real_visible=None,
    *,
    distance: str = "euclidean",
    reduction: str = "mean",
) -> float | np.ndarray:
    """Average keypoint distance (AKD, FOMM Sec. 4), in pixels.

    For each frame, the mean distance between corresponding keypoints of the generated and
    the real frame over the keypoints present in *both*; then the mean over the frames
    that have at least one such keypoint (frames are weighted equally, as in FOMM's
    evaluation scripts, not keypoints).

    Args:
        generated_kp, real_kp: ``(..., K, 2)`` (e.g. ``(T, K, 2)`` or ``(K, 2)``) pixel
            coordinates at the evaluation resolution, the same shape. NaN (or infinite)
            coordinates mark a missing keypoint.
        generated_visible, real_visible: optional ``(..., K)`` bool masks, False = missing.
        distance: ``"euclidean"`` (the distance of the points, the paper's definition) or
            ``"mean_abs"`` (the mean of ``|dx|`` and ``|dy|``, which is what FOMM's
            published evaluation scripts compute: use it to compare with the papers'
            numbers).
        reduction: ``"mean"`` (one float) or ``"none"`` (the ``(...)`` per-frame values).

    Returns:
        A float, or the per-frame ``(...)`` array; NaN where no keypoint is present in both
        (a frame), or in no frame at all (the mean).
    """
    _check_reduction(reduction)
    gen, ref = _float(generated_kp), _float(real_kp)
    if gen.shape != ref.shape:
        raise ValueError(f"AKD: generated {gen.shape} and real {ref.shape} keypoints must have the same shape")
    if gen.ndim < 2:
        raise ValueError(f"AKD: keypoints must be (..., K, 2), got shape {gen.shape}")
    both = _present(gen, generated_visible, "generated_visible") & _present(ref, real_visible, "real_visible")
    with np.errstate(invalid="ignore"):
        distances = _vector_distance(gen - ref, distance)
    per_frame = _masked_mean(distances, both, axis=-1)
    if reduction == "none":
        return _as_result(per_frame)
    return float(_masked_mean(per_frame, np.isfinite(per_frame)))


def missing_keypoint_rate(generated_visible, real_visible, *, reduction: str = "mean") -> float | np.ndarray:
    """Missing keypoint rate (MKR, FOMM Sec. 4): the share of the keypoints visible in the
    real frame that are missing in the generated one, a fraction in [0, 1].

    Per frame, ``#(real visible and generated missing) / #(real visible)``; then the mean
    over the frames with at least one keypoint visible in the real frame (FOMM's
    evaluation scripts). Keypoints missing in the real frame do not count, whatever the
    generated frame has. For keypoints given as coordinates with NaN for missing ones,
    pass ``np.isfinite(kp).all(-1)``.

    Args:
        generated_visible, real_visible: ``(..., K)`` bool masks (e.g. ``(T, K)`` or
            ``(K,)``) of the same shape, True = detected.
        reduction: ``"mean"`` (one float) or ``"none"`` (the ``(...)`` per-frame values).

    Returns:
        A float, or the per-frame ``(...)`` array; NaN where the real frame has no visible
        keypoint (a frame), or no frame has one (the mean).
    """
    _check_reduction(reduction)
    gen, ref = _numpy(generated_visible).astype(bool), _numpy(real_visible).astype(bool)
    if gen.shape != ref.shape:
        raise ValueError(f"MKR: generated {gen.shape} and real {ref.shape} visibility masks must have the same shape")
    if gen.ndim < 1:
        raise ValueError(f"MKR: visibility masks must be (..., K), got shape {gen.shape}")
    per_frame = _masked_mean((~gen).astype(np.float64), ref, axis=-1)
    if reduction == "none":
        return _as_result(per_frame)
    return float(_masked_mean(per_frame, np.isfinite(per_frame)))


# --------------------------------------------------------------------------------------
# Identity: AED, CSIM
# --------------------------------------------------------------------------------------


def _embedding_pair(a, b, metric: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _float(a), _float(b)
    if a.ndim < 1 or b.ndim < 1 or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{metric}: embeddings must be (..., D) with the same D, got {a.shape} and {b.shape}")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{metric}: embedding shapes {a.shape} and {b.shape} do not broadcast") from None
    return a, b


def identity_distance(a, b, *, distance: str = "euclidean") -> float | np.ndarray:
    """Identity embedding distance (AED, FOMM Sec. 4): ``||a - b||`` per pair.

    In the embedding's own units (FOMM uses 128-D OpenFace embeddings, which the network
    already normalises to unit length, so values lie in [0, 2]); the embeddings are not
    normalised here. AED is the mean of this over the frames.

    Args:
        a, b: ``(..., D)`` embeddings; leading dimensions broadcast (e.g. ``(T, D)``
            against one ``(D,)`` source embedding).
        distance: ``"euclidean"`` (the paper's definition) or ``"mean_abs"`` (the mean of
            ``|a_i - b_i|`` over the D dimensions, which FOMM's published evaluation script
            ``cmp.py`` computes: use it to compare with the papers' numbers).

    Returns:
        ``(...)`` distances: a float for single vectors.
    """
    a, b = _embedding_pair(a, b, "identity_distance")
    return _as_result(_vector_distance(a - b, distance))


def cosine_similarity(a, b) -> float | np.ndarray:
    """Cosine similarity of identity embeddings (CSIM): ``a.b / (||a|| ||b||)`` per pair.

    Dimensionless in [-1, 1]: 1 for embeddings pointing the same way, 0 for orthogonal
    ones. CSIM is the mean of this over the frames (usually between the source image's
    embedding and each generated frame's).

    Args:
        a, b: ``(..., D)`` embeddings; leading dimensions broadcast.

    Returns:
        ``(...)`` similarities: a float for single vectors; NaN where an embedding is zero.
    """
    a, b = _embedding_pair(a, b, "cosine_similarity")
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = (a * b).sum(axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return _as_result(similarity)


# --------------------------------------------------------------------------------------
# Head pose: APD
# --------------------------------------------------------------------------------------


class PoseDifference(NamedTuple):
    """Mean absolute angle differences in degrees (see :func:`pose_difference`)."""

    yaw: float
    pitch: float
    roll: float
    mean: float  # over all three angles


def pose_difference(generated_angles, real_angles) -> PoseDifference:
    """Average pose distance (APD): mean absolute difference of head angles, in degrees.

    The difference of each angle is taken on the circle, ``|((g - r + 180) mod 360) - 180|``
    in [0, 180] (179 and -179 differ by 2 degrees). Frames where any of the six angles is
    NaN (no head detected) are skipped.

    Args:
        generated_angles, real_angles: ``(..., 3)`` (e.g. ``(T, 3)``) angles in degrees,
            ordered (yaw, pitch, roll), the same shape.

    Returns:
        ``PoseDifference(yaw, pitch, roll, mean)``: the per-angle means over the frames and
        their mean; all NaN when no frame has all six angles.
    """
    gen, ref = _float(generated_angles), _float(real_angles)
    if gen.shape != ref.shape:
        raise ValueError(f"APD: generated {gen.shape} and real {ref.shape} angles must have the same shape")
    if gen.ndim < 1 or gen.shape[-1] != 3:
        raise ValueError(f"APD: angles must be (..., 3) as (yaw, pitch, roll), got shape {gen.shape}")
    gen, ref = gen.reshape(-1, 3), ref.reshape(-1, 3)
    valid = np.isfinite(gen).all(axis=1) & np.isfinite(ref).all(axis=1)
    difference = np.abs(np.mod(gen[valid] - ref[valid] + 180.0, 360.0) - 180.0)
    if not valid.any():
        return PoseDifference(*(float("nan"),) * 4)
    yaw, pitch, roll = difference.mean(axis=0)
    return PoseDifference(float(yaw), float(pitch), float(roll), float(difference.mean()))


# --------------------------------------------------------------------------------------
# Temporal jitter
# --------------------------------------------------------------------------------------


def jitter(landmarks, visible=None) -> float:
    """Temporal jitter: the mean norm of the landmarks' discrete acceleration.

    The mean over frames ``t`` and landmarks ``k`` of ``||x[t+1] - 2 x[t] + x[t-1]||``, in
    pixels per frame^2 for pixel landmarks (0 for motion at constant velocity). A triple
    ``(t-1, t, t+1)`` of a landmark is skipped when the landmark is missing (NaN or not
    ``visible``) in any of the three frames; the others are averaged.

    This is :func:`reanimate.smoothing.jitter_score` (and :class:`~reanimate.smoothing.JitterMeter`),
    built on the same second difference, extended to missing landmarks: without missing
    ones the two are equal. They differ only in units: the smoothing module measures the
    model's keypoints in normalised [-1, 1] coordinates, here pixels are expected; a
    normalised score times ``(S - 1) / 2`` is pixels on an ``S``-px frame
    (:func:`reanimate.geometry.normalized_to_pixel`).

    Args:
        landmarks: ``(T, K, D)`` (usually ``D = 2``) positions over ``T`` consecutive frames.
        visible: optional ``(T, K)`` bool mask, False = missing.

    Returns:
        A float; NaN with fewer than three frames or no complete triple.
    """
    values = _float(landmarks)
    if values.ndim != 3:
        raise ValueError(f"jitter: landmarks must be (T, K, D), got shape {values.shape}")
    present = _present(values, visible, "visible")
    if values.shape[0] < 3:
        return float("nan")
    values = np.where(present[..., None], values, np.nan)
    acceleration = second_differences(torch.from_numpy(values)).numpy()  # NaN where a frame is missing
    return float(_masked_mean(acceleration, np.isfinite(acceleration)))
