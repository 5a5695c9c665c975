"""Background motion predictor (MRAA, Siarohin et al. CVPR 2021, Sec. 3.3; used by the
Motion Transformer for TaiChiHD): one global transform of the background between the
source and the driving frame, which replaces the identity motion of the background
component (k = 0) in the dense motion network.

Architecture (MRAA ``modules/bg_motion_predictor.py``, kept in the authors' MoTrans code
``JialeTao/MTIA``): the two frames concatenated on channels ``[source, driving]``
-> the hourglass encoder (``num_blocks`` conv3x3-BN-ReLU-avgpool blocks) -> global
average pool -> ``Linear`` to the transform's parameters. The linear layer starts with
zero weights and the identity as bias, so the predictor starts at the identity motion.

``bg_type``:

* ``zero``: no network, always the identity (FOMM's static background);
* ``shift``: a translation only (2 parameters);
* ``affine``: a full affine map (6 parameters), what MRAA and MTIA train with.

``coordinates: true`` (this project's key, default false) also feeds the encoder the
normalised x and y of every pixel (CoordConv, Liu et al. 2018). Average pooling of
translation-equivariant features cannot weight what it sees by position, which
rotation, scale and shear need (a turn moves the left and right edges in opposite
directions); with the coordinates it can form such moments, as Lucas-Kanade's
affine least squares does. It changes the first layer's shape, so MRAA / MTIA
checkpoints need it off.

``estimator: correlation`` (this project's key; default ``regression``, the network above)
replaces the regression by classical global-motion estimation, with no weights: both
frames are high-passed, averaged down to a ``correlation_size`` grid and described by
their normalised 3x3 neighbourhoods; a local cost volume
(:func:`~reanimate.geometry.correlation.local_correlation`, offsets up to
``max_displacement`` of the half-side) gives each driving cell its best source cell
(:func:`~reanimate.geometry.correlation.windowed_soft_argmax`), and a robust least-squares
fit (:func:`~reanimate.geometry.correlation.fit_affine_robust`, weighted by match
confidence, Cauchy re-weighting) keeps the motion most of the frame shares: the
background's, the figures moving otherwise lose their say. Why: the regression, trained by
the reconstruction loss, never learned on the synthetic set (it stayed at the identity,
``benchmarks/background_motion.py``); a learned version of this matcher (a residual
refinement of the image, a per-cell background score and the temperature, all trained
through the fit) drifted away from the background within 1,000 steps (scale 0.7 on videos
whose camera is still: the dense motion used the component as one more moving part) and
trained worse than the identity, so the matcher has no parameters.

MTIA adds ``translation_type: sigmoid`` (the affine's translation squashed to
``4 sigmoid(t) - 2``, i.e. (-2, 2)); its configs keep the default ``none``. MRAA's
``perspective`` type is not supported (the dense motion here takes affine maps).

Convention: the transform maps driving-frame coordinates to source-frame coordinates
(a backward motion like FOMM's sparse motions), in the normalised [-1, 1] grid, x first:
``p_source = A p_driving + t`` with ``[A | t]`` the ``(B, 2, 3)`` output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import affine_grid_points, coordinate_grid
from ..geometry.correlation import fit_affine_robust, local_correlation, windowed_soft_argmax
from .blocks import HourglassEncoder, feature_width

BACKGROUND_TYPES = ("zero", "shift", "affine")
TRANSLATION_TYPES = ("none", "sigmoid")
ESTIMATORS = ("regression", "correlation")


@dataclass
class BackgroundMotionConfig:
    """``model_params.bg_predictor_params`` (MRAA / MTIA keys) plus ``num_channels`` from
    ``common_params``; defaults are those of MRAA's and MTIA's configs."""

    num_channels: int = 3
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    bg_type: str = "affine"
    translation_type: str = "none"
    coordinates: bool = False  # append normalised x, y channels to the encoder input
    # This project's matching estimator (see the module doc); the keys below are its own.
    estimator: str = "regression"
    correlation_size: int = 32  # side of the matching grid, cells
    max_displacement: float = 0.45  # search range, fraction of the half-side (normalised units)
    temperature: float = 20.0  # softmax temperature of the matching (costs are cosines)
    robust_iterations: int = 6  # least-squares passes (Cauchy re-weighting after the first)
    robust_scale: float = 0.5  # residual, in cells, at which a match's weight halves

    def __post_init__(self):
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r} (known: {', '.join(ESTIMATORS)})")
        if self.estimator == "correlation" and (self.coordinates or self.translation_type != "none"):
            raise ValueError("coordinates and translation_type apply to estimator: regression only")
        if self.bg_type not in BACKGROUND_TYPES:
            raise ValueError(f"unknown bg_type {self.bg_type!r} (known: {', '.join(BACKGROUND_TYPES)})")
        if self.translation_type not in TRANSLATION_TYPES:
            raise ValueError(
                f"unknown translation_type {self.translation_type!r} (known: {', '.join(TRANSLATION_TYPES)})"
            )

    @property
    def num_parameters(self) -> int:
        """Numbers the linear head predicts: 0, 2 or 6."""
        return {"zero": 0, "shift": 2, "affine": 6}[self.bg_type]


def identity_affine(batch: int, dtype=None, device=None) -> torch.Tensor:
    """``(batch, 2, 3)`` identity maps ``[I | 0]``."""
    eye = torch.eye(2, 3, dtype=dtype or torch.float32, device=device)
    return eye.unsqueeze(0).expand(batch, 2, 3).clone()


def affine_motion(grid: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """A global affine motion on a grid.

    Args:
        grid: ``(h, w, 2)`` normalised driving-frame coordinates (:func:`coordinate_grid`).
        affine: ``(B, 2, 3)`` maps ``[A | t]`` from driving to source coordinates.

    Returns:
        ``(B, h, w, 2)``: ``A p + t`` for every grid point ``p``.
    """
    b = affine.shape[0]
    h, w, d = grid.shape
    points = grid.reshape(1, h * w, d).expand(b, h * w, d)
    return affine_grid_points(points, affine.to(grid.dtype)).view(b, h, w, d)


class CorrelationMotionEstimator(nn.Module):
    """``forward(source (B, C, H, W), driving (B, C, H, W)) -> (B, 2, 3)``: the matching
    estimator of the module doc (``estimator: correlation``); no parameters. Runs in
    float32 (the least-squares solve has no half-precision kernels) and passes gradients
    to its inputs only."""

    def __init__(self, config: BackgroundMotionConfig):
        super().__init__()
        self.config = config

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        return min(self.config.correlation_size, height), min(self.config.correlation_size, width)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, 9 C, h, w)`` unit descriptors on the matching grid."""
        h, w = self.grid_size(*image.shape[2:])
        stride = max(image.shape[2] // h, image.shape[3] // w, 1)
        kernel = 4 * stride + 1
        detail = image - F.avg_pool2d(image, kernel, 1, kernel // 2, count_include_pad=False)
        cells = F.adaptive_avg_pool2d(detail, (h, w))
        patches = F.unfold(F.pad(cells, (1, 1, 1, 1), mode="replicate"), 3).view(image.shape[0], -1, h, w)
        return F.normalize(patches - patches.mean(1, keepdim=True), dim=1)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        with torch.autocast(driving.device.type, enabled=False):
            source, driving = source.float(), driving.float()
            b = driving.shape[0]
            h, w = self.grid_size(*driving.shape[2:])
            radius = max(1, round(self.config.max_displacement * (max(h, w) - 1) / 2))
            cost = local_correlation(self.features(driving), self.features(source), radius)
            offset, confidence = windowed_soft_argmax(cost, radius, self.config.temperature)
            points = coordinate_grid((h, w), device=driving.device).view(1, h * w, 2).expand(b, h * w, 2)
            cell = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=driving.device)
            matched = points + (offset * cell).view(b, h * w, 2)
            return fit_affine_robust(
                points,
                matched,
                confidence.view(b, h * w),
                self.config.robust_iterations,
                self.config.robust_scale * float(cell.max()),
                translation_only=self.config.bg_type == "shift",
            )


class BackgroundMotionPredictor(nn.Module):
    """``forward(source (B, C, H, W), driving (B, C, H, W)) -> (B, 2, 3)`` affine maps
    from driving to source coordinates (see the module doc); the regression starts at
    the identity, the matching estimator (``self.matcher``) measures from the start.

    ``source`` may have batch size 1 and is broadcast. The deepest features are averaged
    over space, so any H, W of at least ``2 ** num_blocks`` works.
    """

    def __init__(self, config: BackgroundMotionConfig):
        super().__init__()
        self.config = config
        self.encoder = None
        self.fc = None
        self.matcher = None
        n = config.num_parameters
        if n == 0:
            return
        if config.estimator == "correlation":
            self.matcher = CorrelationMotionEstimator(config)
            return
        self.encoder = HourglassEncoder(
            config.block_expansion,
            2 * config.num_channels + 2 * config.coordinates,
            config.num_blocks,
            config.max_features,
        )
        self.fc = nn.Linear(feature_width(config.block_expansion, config.num_blocks, config.max_features), n)
        with torch.no_grad():
            self.fc.weight.zero_()
            identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0] if n == 6 else [0.0, 0.0]
            self.fc.bias.copy_(torch.tensor(identity))

    @property
    def predicts(self) -> bool:
        """False for ``bg_type: zero`` (always the identity, nothing to train)."""
        return self.matcher is not None or self.encoder is not None

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        if source.shape[0] != driving.shape[0]:
            source = source.expand(driving.shape[0], *source.shape[1:])
        if self.matcher is not None:
            return self.matcher(source, driving)
        b = driving.shape[0]
        out = identity_affine(b, dtype=driving.dtype, device=driving.device)
        if self.encoder is None:
            return out
        inputs = [source, driving]
        if self.config.coordinates:
            h, w = driving.shape[2:]
            grid = coordinate_grid((h, w), dtype=driving.dtype, device=driving.device)
            inputs.append(grid.permute(2, 0, 1).unsqueeze(0).expand(b, 2, h, w))
        features = self.encoder(torch.cat(inputs, dim=1))[-1]
        params = self.fc(features.mean(dim=(2, 3)))
        if self.config.bg_type == "shift":
            return torch.cat([out[:, :, :2].to(params.dtype), params.view(b, 2, 1)], dim=2)
        affine = params.view(b, 2, 3)
        if self.config.translation_type == "sigmoid":
            affine = torch.cat([affine[:, :, :2], 4 * torch.sigmoid(affine[:, :, 2:]) - 2], dim=2)
        return affine


__all__ = [
    "BACKGROUND_TYPES",
    "BackgroundMotionConfig",
    "BackgroundMotionPredictor",
    "CorrelationMotionEstimator",
    "affine_motion",
    "identity_affine",
]
