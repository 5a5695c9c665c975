"""Pure image operations shared by the training losses and the evaluation metrics:
SSIM's Gaussian window and per-channel statistics, and multi-scale SSIM.

Tensors only, no state: ``(B, C, H, W)`` images in ``[0, data_range]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

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


def gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    """``(size,)`` normalised 1-D Gaussian (SSIM's separable window), centred."""
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' (no padding), per channel."""
    c = x.shape[1]
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_components(x, y, window, c1, c2) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per (B, C) of ``(B, C, H, W)`` images,
    over the 'valid' positions of the separable ``window`` (:func:`gaussian_window`);
    ``c1 = (k1 L)^2``, ``c2 = (k2 L)^2`` for data range ``L`` (Wang et al. 2004)."""
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
    window = gaussian_window(window_size, sigma, x.dtype, x.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    result = None
    for j in range(scales):
        if j > 0:
            x = F.avg_pool2d(x, 2, ceil_mode=True)
            y = F.avg_pool2d(y, 2, ceil_mode=True)
        ssim_j, cs_j = ssim_components(x, y, window, c1, c2)
        term = (ssim_j if j == scales - 1 else cs_j).clamp(min=_CS_EPS) ** w[j]
        result = term if result is None else result * term
    return result.mean(dim=1)


__all__ = [
    "MS_SSIM_WEIGHTS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "gaussian_window",
    "ms_ssim",
    "ms_ssim_plan",
    "ssim_components",
]
