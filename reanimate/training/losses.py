"""Training losses of FOMM (Sec. 3.3; supplementary A.2 and B.2) plus MS-SSIM.

Plain functions and one small module; the training step decides which to use and
multiplies each by its ``train_params.loss_weights`` entry (only per-layer weights are
applied here, as in the official code).

- Reconstruction: the multi-scale perceptual loss (:class:`ImagePyramid`,
  :func:`perceptual_loss`), and :func:`ms_ssim_loss` as the companion loss used when the
  VGG-19 is randomly initialised.
- Equivariance of the keypoint detector under a random thin-plate spline ``T``
  (:func:`transform_frame`, :func:`equivariance_value_loss`,
  :func:`equivariance_jacobian_loss`).
- Least-squares GAN and discriminator feature matching (:func:`generator_gan_loss`,
  :func:`discriminator_gan_loss`, :func:`feature_matching_loss`) on the
  ``{scale: (feature_maps, prediction_map)}`` dicts of
  :class:`~reanimate.models.discriminator.MultiScaleDiscriminator`.
- Background / foreground separation of the dense motion masks (Motion Transformer
  Sec. 3.3, Eq. 11-12): :func:`background_mask_loss`, :func:`mask_concentration_loss`.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import coordinate_grid
from ..geometry.tps import ThinPlateSpline
from ..models.blocks import AntiAliasDownsample
from ..models.discriminator import scale_key
from ..motion import Keypoints

DiscriminatorOutputs = Mapping[float, tuple[Sequence[torch.Tensor], torch.Tensor]]


def _zero(like: torch.Tensor | None = None) -> torch.Tensor:
    if like is None:
        return torch.zeros(())
    return torch.zeros((), dtype=like.dtype, device=like.device)


def full_precision(loss: Callable) -> Callable:
    """Run ``loss`` in float32 with autocast off: its tensor (and :class:`Keypoints`)
    arguments are cast up first. For the numerically delicate terms (MS-SSIM's ratios
    and powers, the Jacobian solve), which under bf16/fp16 autocast overflow or lose
    the small differences they measure."""

    def up(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.float()
        if isinstance(value, Keypoints):
            return value.map(lambda t: t.float())
        return value

    @functools.wraps(loss)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device, enabled=False):
            return loss(*(up(a) for a in args), **{k: up(v) for k, v in kwargs.items()})

    return wrapper


# --------------------------------------------------------------------------------------
# Perceptual loss (FOMM Sec. 3.3)
# --------------------------------------------------------------------------------------


class ImagePyramid(nn.Module):
    """Band-limited image pyramid for the multi-scale perceptual loss (FOMM Sec. 3.3).

    ``forward(x (B, C, H, W)) -> {scale: (B, C, ceil(H * scale), ceil(W * scale))}`` for
    every scale given (``1/integer``); scale 1 is ``x`` itself.
    """

    def __init__(self, scales: Sequence[float], num_channels: int):
        super().__init__()
        self.scales = list(scales)
        self.downs = nn.ModuleDict({scale_key(s): AntiAliasDownsample(num_channels, s) for s in self.scales})

    def forward(self, x: torch.Tensor) -> dict[float, torch.Tensor]:
        return {s: self.downs[scale_key(s)](x) for s in self.scales}


def perceptual_loss(
    features_fn: Callable[[torch.Tensor], Sequence[torch.Tensor]],
    generated: Mapping[float, torch.Tensor],
    real: Mapping[float, torch.Tensor],
    layer_weights: Sequence[float],
) -> torch.Tensor:
    """``sum_scales sum_i w_i mean|phi_i(generated) - phi_i(real)|`` (FOMM Sec. 3.3).

    Args:
        features_fn: image ``(B, 3, h, w)`` -> list of feature maps, e.g.
            :class:`~reanimate.training.vgg.Vgg19Features`.
        generated, real: pyramids ``{scale: (B, 3, h, w)}`` with the same scales.
        layer_weights: one weight per feature map used (the official
            ``loss_weights.perceptual``, e.g. ``[10, 10, 10, 10, 10]``); zero-weight
            layers are skipped.

    Returns:
        A scalar. No gradient reaches ``real`` (its features are computed without
        autograd, equivalent to the official ``.detach()``). When every weight is zero
        the feature network is not run and the result is 0.
    """
    assert set(generated) == set(real), f"pyramid scales differ: {sorted(generated)} vs {sorted(real)}"
    first = next(iter(generated.values()), None)
    total = _zero(first)
    if not any(w != 0 for w in layer_weights):
        return total
    for scale, image in generated.items():
        gen_feats = features_fn(image)
        with torch.no_grad():
            real_feats = features_fn(real[scale])
        assert len(layer_weights) <= len(gen_feats), (
            f"{len(layer_weights)} perceptual layer weights but the feature network gives {len(gen_feats)} maps"
        )
        for weight, g, r in zip(layer_weights, gen_feats, real_feats):
            if weight != 0:
                total = total + weight * (g - r).abs().mean()
    return total


# --------------------------------------------------------------------------------------
# MS-SSIM (Wang, Simoncelli & Bovik 2003)
# --------------------------------------------------------------------------------------

#: The five scale exponents of Wang et al. (2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11  # Gaussian window size, Wang et al. (2004)
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_CS_EPS = 1e-8  # floor of cs / ssim before the fractional power: finite values and gradients


def ms_ssim_plan(
    height: int,
    width: int,
    window_size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    max_scales: int = len(MS_SSIM_WEIGHTS),
) -> tuple[int, int, float]:
    """How MS-SSIM adapts to an image of ``height x width``: ``(scales, window, sigma)``.

    The rule: scale ``j`` (0 = full resolution) has side ``ceil(side / 2**j)`` (2x2
    average pooling, ceil mode), and a scale is used only if its shorter side is at
    least the window size, so every scale has at least one valid window position.
    Hence the number of scales is the largest ``n <= max_scales`` with
    ``ceil(min(H, W) / 2**(n-1)) >= window``, i.e. ``min(H, W) > (window - 1) 2**(n-1)``
    (at the default window 11: 5 scales from 161 px, as the usual implementations
    require, 4 from 81, 3 from 41, e.g. 64x64, 2 from 21, e.g. 32x32, 1 from 11). Only
    when even the full
    image is smaller than the window does the window shrink, to the largest odd size
    that fits (at least 3), with ``sigma`` scaled in proportion; a single scale is then
    used. The finest ``n`` scale weights are kept and renormalised to sum to 1 (see
    :func:`ms_ssim`).
    """
    side = min(height, width)
    assert side >= 3, f"MS-SSIM needs images of at least 3x3 pixels, got {height}x{width}"
    if side < window_size:
        small = side if side % 2 == 1 else side - 1
        return 1, small, sigma * small / window_size
    scales = 1
    while scales < max_scales and math.ceil(side / 2**scales) >= window_size:
        scales += 1
    return scales, window_size, sigma


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' (no padding), per channel."""
    c = x.shape[1]
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def _ssim_components(x, y, window, c1, c2) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per (B, C)."""
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_xx = _blur(x * x, window) - mu_xx
    sigma_yy = _blur(y * y, window) - mu_yy
    sigma_xy = _blur(x * y, window) - mu_xy
    cs_map = (2 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    luminance = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return (luminance * cs_map).mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    *,
    window_size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> torch.Tensor:
    """Multi-scale structural similarity (Wang et al. 2003) per sample.

    ``prod_{j<n-1} cs_j^{w_j} * ssim_{n-1}^{w_{n-1}}`` per channel (contrast-structure at
    every scale, luminance only at the coarsest), averaged over channels; scales are
    2x2 average-pooled. Small images use fewer scales or a smaller window, with the
    finest weights renormalised to sum 1: see :func:`ms_ssim_plan` for the rule. Each
    ``cs``/``ssim`` is clamped to a tiny positive floor before its fractional power, as
    common implementations clamp negatives, so values and gradients stay finite.

    Args:
        x, y: ``(B, C, H, W)`` with values in ``[0, data_range]``.

    Returns:
        ``(B,)``, 1 for identical images.
    """
    assert x.shape == y.shape and x.dim() == 4, f"ms_ssim needs equal (B, C, H, W) shapes, got {x.shape} vs {y.shape}"
    scales, window_size, sigma = ms_ssim_plan(x.shape[2], x.shape[3], window_size, sigma, len(weights))
    w = torch.tensor(list(weights[:scales]), dtype=x.dtype, device=x.device)
    w = w / w.sum()
    window = _gaussian_window(window_size, sigma, x.dtype, x.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    result = None
    for j in range(scales):
        if j > 0:
            x = F.avg_pool2d(x, 2, ceil_mode=True)
            y = F.avg_pool2d(y, 2, ceil_mode=True)
        ssim_j, cs_j = _ssim_components(x, y, window, c1, c2)
        term = (ssim_j if j == scales - 1 else cs_j).clamp(min=_CS_EPS) ** w[j]
        result = term if result is None else result * term
    return result.mean(dim=1)


@full_precision
def ms_ssim_loss(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, **kwargs) -> torch.Tensor:
    """``1 - mean ms_ssim(x, y)``: a scalar in [0, 1], 0 for identical images."""
    return 1 - ms_ssim(x, y, data_range, **kwargs).mean()


# --------------------------------------------------------------------------------------
# Equivariance (FOMM supplementary A.2, B.2)
# --------------------------------------------------------------------------------------


def transform_frame(frame: torch.Tensor, tps: ThinPlateSpline, align_corners: bool = True) -> torch.Tensor:
    """The frame ``Y`` with ``Y(p) = X(T(p))``, sampled with reflection padding.

    A keypoint at ``p`` in ``Y`` therefore sits at ``T(p)`` in ``X``: an equivariant
    detector gives ``kp_X = T(kp_Y)``.

    Args:
        frame: ``(B, C, H, W)``; ``tps`` has batch size B.
        align_corners: True matches the project's coordinate grid (and the grid_sample
            default of the PyTorch the official code was written for).
    """
    assert tps.affine.shape[0] == frame.shape[0], (
        f"TPS batch {tps.affine.shape[0]} does not match frame batch {frame.shape[0]}"
    )
    grid = tps.warp_grid(frame.shape[2:], dtype=frame.dtype, device=frame.device)
    return F.grid_sample(frame, grid, padding_mode="reflection", align_corners=align_corners)


@full_precision
def equivariance_value_loss(kp_driving: Keypoints, kp_transformed: Keypoints, tps: ThinPlateSpline) -> torch.Tensor:
    """``mean |kp_X - T(kp_Y)|`` (FOMM supp. Eq. 11 via the official code): ``kp_driving``
    detected in ``X``, ``kp_transformed`` in ``Y = transform_frame(X, T)``."""
    return (kp_driving.value - tps.warp_points(kp_transformed.value)).abs().mean()


@full_precision
def equivariance_jacobian_loss(
    kp_driving: Keypoints, kp_transformed: Keypoints, tps: ThinPlateSpline
) -> torch.Tensor:
    """``mean |I - J_X^{-1} (dT/dp|_{kp_Y} J_Y)|`` (FOMM supp. Eq. 12, official form),
    with the analytic TPS Jacobian."""
    assert kp_driving.jacobian is not None and kp_transformed.jacobian is not None, (
        "the Jacobian equivariance loss needs keypoints with Jacobians"
    )
    composed = tps.jacobian(kp_transformed.value) @ kp_transformed.jacobian
    # solve(J_X, M) = J_X^{-1} M, without forming the inverse.
    normed = torch.linalg.solve(kp_driving.jacobian, composed)
    eye = torch.eye(normed.shape[-1], dtype=normed.dtype, device=normed.device)
    return (eye - normed).abs().mean()


# --------------------------------------------------------------------------------------
# Least-squares GAN and feature matching (FOMM Sec. 3.3-3.4, official code)
# --------------------------------------------------------------------------------------


def generator_gan_loss(fake_outputs: DiscriminatorOutputs) -> torch.Tensor:
    """``sum_scales mean (1 - D(fake))^2``."""
    total = None
    for _, prediction in fake_outputs.values():
        value = ((1 - prediction) ** 2).mean()
        total = value if total is None else total + value
    return _zero() if total is None else total


def discriminator_gan_loss(real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs) -> torch.Tensor:
    """``sum_scales mean[(1 - D(real))^2 + D(fake)^2]``."""
    assert set(real_outputs) == set(fake_outputs), f"scales differ: {sorted(real_outputs)} vs {sorted(fake_outputs)}"
    total = None
    for scale, (_, real_prediction) in real_outputs.items():
        fake_prediction = fake_outputs[scale][1]
        value = ((1 - real_prediction) ** 2 + fake_prediction**2).mean()
        total = value if total is None else total + value
    return _zero() if total is None else total


def feature_matching_loss(
    real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs, weights: Sequence[float]
) -> torch.Tensor:
    """``sum_scales sum_{i: w_i != 0} w_i mean|f_i(real) - f_i(fake)|`` over the
    discriminator's feature maps (real features detached); ``weights`` has one entry
    per feature map (the official ``loss_weights.feature_matching``)."""
    assert set(real_outputs) == set(fake_outputs), f"scales differ: {sorted(real_outputs)} vs {sorted(fake_outputs)}"
    total = None
    for scale, (real_maps, _) in real_outputs.items():
        fake_maps = fake_outputs[scale][0]
        assert len(real_maps) == len(fake_maps) == len(weights), (
            f"{len(weights)} feature matching weights for {len(real_maps)} real and {len(fake_maps)} fake maps"
        )
        for weight, real_map, fake_map in zip(weights, real_maps, fake_maps):
            if weight == 0:
                continue
            value = weight * (real_map.detach() - fake_map).abs().mean()
            total = value if total is None else total + value
    return _zero() if total is None else total


# --------------------------------------------------------------------------------------
# Background losses on the dense motion masks (Motion Transformer Sec. 3.3)
# --------------------------------------------------------------------------------------


@full_precision
def background_mask_loss(masks: torch.Tensor) -> torch.Tensor:
    """Eq. 11 of the Motion Transformer: ``|M^0 - 1|_1 + sum_{k != 0} |M^k|_1``.

    Normalisation: the per-pixel sum ``|M^0(c) - 1| + sum_{k=1..K} |M^k(c)|`` averaged
    over the B x h x w pixels of the batch, so a mask that is all background gives 0 and
    one that is all foreground gives 2. For softmax masks (summing to 1 over k) this
    equals ``2 mean(1 - M^0)``. The authors' code (MTIA ``modules/model.py``) weighs the
    foreground term differently, ``mean|M^0 - 1| + (10 / K) mean_{b,k,c} |M^k|``, which
    for softmax masks is ``(1 + 10 / K^2) mean(1 - M^0)`` (1.1x instead of 2x at K = 10).

    Args:
        masks: ``(B, K + 1, h, w)`` soft masks, background first
            (:attr:`DenseMotionOutput.mask`).

    Returns:
        A scalar.
    """
    assert masks.dim() == 4 and masks.shape[1] >= 2, f"masks must be (B, K + 1, h, w), got {tuple(masks.shape)}"
    background = (masks[:, 0] - 1).abs()
    foreground = masks[:, 1:].abs().sum(dim=1)
    return (background + foreground).mean()


@full_precision
def mask_concentration_loss(masks: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 12 of the Motion Transformer: ``sum_{k != 0} sum_c M^k(c) |c - u^k|^2 / sum(M^k)``
    with ``u^k = sum_c M^k(c) c / sum(M^k)`` the mask's centroid.

    ``c`` runs over the pixel centres in the project's normalised grid (x, y in [-1, 1],
    :func:`~reanimate.geometry.coordinate_grid`) and ``|.|^2`` is the squared Euclidean
    distance, so each term is the spatial variance (trace of the covariance) of the
    mask read as a distribution. The K foreground terms are summed, the batch averaged,
    as the authors' code (MTIA ``modules/model.py``, with the same ``eps`` added to
    ``sum(M^k)``). A mask concentrated on one pixel gives 0.

    Args:
        masks: ``(B, K + 1, h, w)`` soft masks, background first.

    Returns:
        A scalar.
    """
    assert masks.dim() == 4 and masks.shape[1] >= 2, f"masks must be (B, K + 1, h, w), got {tuple(masks.shape)}"
    foreground = masks[:, 1:]
    weights = foreground / (foreground.sum(dim=(2, 3), keepdim=True) + eps)  # (B, K, h, w)
    grid = coordinate_grid(masks.shape[2:], dtype=masks.dtype, device=masks.device)  # (h, w, 2)
    centroid = torch.einsum("bkhw,hwd->bkd", weights, grid)
    distance = (grid[None, None] - centroid[:, :, None, None, :]).pow(2).sum(dim=-1)  # (B, K, h, w)
    return (weights * distance).sum(dim=(1, 2, 3)).mean()


__all__ = [
    "MS_SSIM_WEIGHTS",
    "ImagePyramid",
    "background_mask_loss",
    "discriminator_gan_loss",
    "equivariance_jacobian_loss",
    "equivariance_value_loss",
    "feature_matching_loss",
    "generator_gan_loss",
    "mask_concentration_loss",
    "ms_ssim",
    "ms_ssim_loss",
    "ms_ssim_plan",
    "perceptual_loss",
    "transform_frame",
]
