"""Training losses of FOMM (Sec. 3.3; supplementary A.2 and B.2) plus MS-SSIM.

Plain functions and one small module; the training step decides which to use and
multiplies each by its ``train_params.loss_weights`` entry (only per-layer weights are
applied here, as in the official code).

- Reconstruction: the multi-scale perceptual loss (:func:`perceptual_loss` on the
  pyramids of :class:`~reanimate.models.blocks.ImagePyramid`), and :func:`ms_ssim_loss`
  as the companion loss used when the VGG-19 is randomly initialised (MS-SSIM itself,
  :func:`~reanimate.imageops.ms_ssim`, is an image operation).
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
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..geometry import coordinate_grid
from ..geometry.tps import ThinPlateSpline
from ..imageops import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_plan
from ..models.blocks import ImagePyramid
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
# MS-SSIM (Wang, Simoncelli & Bovik 2003; computed in reanimate.imageops)
# --------------------------------------------------------------------------------------


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
def equivariance_jacobian_loss(kp_driving: Keypoints, kp_transformed: Keypoints, tps: ThinPlateSpline) -> torch.Tensor:
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
