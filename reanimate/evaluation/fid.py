"""FID: the Fréchet Inception Distance (Heusel et al., NeurIPS 2017) of two image sets.

:class:`FIDInceptionV3` is the Inception-v3 of TensorFlow's original FID code
(``inception-2015-12-05``) as pytorch-fid ports it (``pytorch_fid.inception``:
torchvision's ``Inception3(num_classes=1008, aux_logits=False)`` with the blocks swapped
for ``FIDInceptionA/C/E_1/E_2``), written here on the project's own modules with
torchvision's attribute names, so the user's weight file loads without renaming:

* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, and
* torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (same keys; torch-fidelity
  and torchmetrics use it).

Their layout: ``<block>.conv.weight`` (convolutions have no bias) and
``<block>.bn.{weight,bias,running_mean,running_var}`` for the 94 ``BasicConv2d`` blocks
(``Conv2d_1a_3x3`` ... ``Conv2d_4a_3x3``, ``Mixed_5b.branch1x1`` ... ``Mixed_7c.branch_pool``),
optional ``<block>.bn.num_batches_tracked`` counters, and ``fc.weight (1008, 2048)``,
``fc.bias (1008,)``; no ``AuxLogits.*``. The classifier is loaded but FID does not use it.

What makes it the FID network rather than torchvision's Inception-v3:

* BatchNorm ``eps = 0.001`` (as torchvision's ``BasicConv2d``);
* the pool branches of the A, C and E_1 blocks (``Mixed_5b-d``, ``Mixed_6b-e``,
  ``Mixed_7b``) average 3x3 windows with ``count_include_pad=False`` (TensorFlow ignores
  the padding), and ``Mixed_7c`` (E_2) max-pools there instead;
* the input, ``(B, 3, H, W)`` RGB in ``[0, 1]``, is resized to 299x299 (bilinear,
  ``align_corners=False``) and mapped to ``[-1, 1]``;
* the features are the 2048-D output of the final global average pool ("pool3").

:func:`feature_statistics`, :func:`frechet_distance` and :func:`fid_from_features` are pure
numpy/scipy functions on those features.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from ..errors import CheckpointError
from ..models.blocks import MeasuringNetwork
from ..weights import load_selected_state, read_state_dict_file, select_state

#: pytorch-fid's weight file (the name in its release URL).
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: torch-fidelity's conversion of the same TensorFlow graph, with the same keys.
TORCH_FIDELITY_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"

#: Side of the square the input is resized to.
INPUT_SIZE = 299
#: Dimension of the pool3 features.
FEATURE_DIM = 2048
#: Classes of the TensorFlow graph's softmax layer (1000 ImageNet classes + 8 unused).
NUM_CLASSES = 1008
#: BatchNorm epsilon of every ``BasicConv2d``.
BN_EPS = 1e-3

_WHAT = "FID Inception-v3 state dict (pytorch-fid layout)"


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU: ``(B, C_in, H, W) -> (B, C_out, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose border windows average only the real pixels."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """``Mixed_5b/5c/5d`` (FIDInceptionA): ``(B, C, 35, 35) -> (B, 224 + pool_features, 35, 35)``."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """``Mixed_6a`` (grid reduction): ``(B, C, 35, 35) -> (B, 480 + C, 17, 17)``."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), branch3x3dbl, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """``Mixed_6b..6e`` (FIDInceptionC, factorised 7x7): ``(B, 768, 17, 17) -> (B, 768, 17, 17)``."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = conv(branch7x7dbl)
        branch_pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """``Mixed_7a`` (grid reduction): ``(B, 768, 17, 17) -> (B, 1280, 8, 8)``."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([branch3x3, branch7x7x3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """``Mixed_7b`` (FIDInceptionE_1, ``pool="avg"``) and ``Mixed_7c`` (FIDInceptionE_2,
    ``pool="max"``): ``(B, C, 8, 8) -> (B, 2048, 8, 8)``."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        if self.pool == "avg":
            pooled = _tf_avg_pool(x)
        else:
            # The TensorFlow graph max-pools here (pytorch-fid keeps this quirk).
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)], 1)


#: The stem: (name, in, out, kernel, stride, padding); max-pools 3/2 after Conv2d_2b and Conv2d_4a.
STEM = (
    ("Conv2d_1a_3x3", 3, 32, 3, 2, 0),
    ("Conv2d_2a_3x3", 32, 32, 3, 1, 0),
    ("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
    ("Conv2d_3b_1x1", 64, 80, 1, 1, 0),
    ("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
)

#: The mixed blocks, in order: (name, block class, constructor arguments).
MIXED = (
    ("Mixed_5b", InceptionA, (192, 32)),
    ("Mixed_5c", InceptionA, (256, 64)),
    ("Mixed_5d", InceptionA, (288, 64)),
    ("Mixed_6a", InceptionB, (288,)),
    ("Mixed_6b", InceptionC, (768, 128)),
    ("Mixed_6c", InceptionC, (768, 160)),
    ("Mixed_6d", InceptionC, (768, 160)),
    ("Mixed_6e", InceptionC, (768, 192)),
    ("Mixed_7a", InceptionD, (768,)),
    ("Mixed_7b", InceptionE, (1280, "avg")),
    ("Mixed_7c", InceptionE, (2048, "max")),
)


class FIDInceptionV3(MeasuringNetwork):
    """The FID feature extractor: ``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, 2048)`` pool3 features.

    With ``resize_input`` (the default, as pytorch-fid) any ``H, W`` works since the input
    is resized to 299x299; without it the input must be at least 75x75 and is used as is.

    The state dict is exactly the pytorch-fid layout (see the module docstring), including
    ``num_batches_tracked`` counters. Parameters never require gradients and the module
    stays in eval mode (BatchNorm uses the stored statistics).

    Construct through :func:`load_fid_inception`; a bare ``FIDInceptionV3()`` is
    initialised randomly with ``seed`` (for tests), ``seed=None`` keeps torch's default
    initialisation.
    """

    def __init__(self, resize_input: bool = True, seed: int | None = 0):
        super().__init__()
        self.resize_input = resize_input
        for name, in_channels, out_channels, kernel, stride, padding in STEM:
            self.add_module(name, BasicConv2d(in_channels, out_channels, kernel, stride=stride, padding=padding))
        for name, block, args in MIXED:
            self.add_module(name, block(*args))
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.freeze(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Random weights from a local generator (the global RNG is left alone):
        Kaiming-normal convolutions (fan in), slightly perturbed BatchNorm statistics,
        a small random classifier."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(1 + 0.1 * torch.randn(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(1 + 0.1 * torch.rand(n, generator=generator))
        self.fc.weight.copy_(0.01 * torch.randn(self.fc.weight.shape, generator=generator))
        self.fc.bias.zero_()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, 299, 299)`` in ``[-1, 1]`` (size kept
        without ``resize_input``)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"FID Inception expects (B, 3, H, W) RGB in [0, 1], got {tuple(x.shape)}")
        if self.resize_input:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper: ``(B, 3, H, W)`` already in ``[-1, 1]`` -> ``(B, 2048)``."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name, _, _ in MIXED:
            x = getattr(self, name)(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_features(self.preprocess(x))


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def expected_layout() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """``(required, optional)`` ``{key: shape}`` of a pytorch-fid Inception file; the
    optional entries are the BatchNorm ``num_batches_tracked`` counters."""
    with torch.device("meta"):  # shapes only, nothing allocated
        shapes = {key: tuple(value.shape) for key, value in FIDInceptionV3(seed=None).state_dict().items()}
    required = {k: s for k, s in shapes.items() if not k.endswith(".num_batches_tracked")}
    optional = {k: s for k, s in shapes.items() if k.endswith(".num_batches_tracked")}
    return required, optional


def load_fid_inception(path: str | os.PathLike, resize_input: bool = True) -> FIDInceptionV3:
    """The FID feature extractor with the user's weights.

    Args:
        path: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (or torch-fidelity's
            ``weights-inception-2015-12-05-6726825d.pth``, same layout). A ``module.``
            prefix is tolerated.
        resize_input: resize inputs to 299x299 first (pytorch-fid's default).

    Raises:
        CheckpointError: the file is missing, unreadable, not a state dict, is
            torchvision's ImageNet Inception-v3 (different weights, 1000 classes), or
            lacks an entry / has a wrong shape or an unexpected entry.
    """
    state = read_state_dict_file(path, _WHAT, FID_WEIGHTS_FILE)
    fc = state.get("fc.weight")
    if any(isinstance(k, str) and k.startswith("AuxLogits.") for k in state) or (
        isinstance(fc, torch.Tensor) and tuple(fc.shape) == (1000, FEATURE_DIM)
    ):
        raise CheckpointError(
            path,
            "this is torchvision's ImageNet Inception-v3 (AuxLogits / 1000 classes), whose weights differ "
            f"from the TensorFlow FID network; give pytorch-fid's {FID_WEIGHTS_FILE}",
        )
    required, optional = expected_layout()
    selected = select_state(path, state, required, _WHAT, optional=optional)
    with torch.device("meta"):  # every entry is overwritten below: skip the default init
        model = FIDInceptionV3(resize_input=resize_input, seed=None)
    model = model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.num_batches_tracked.zero_()  # files may lack these counters
    load_selected_state(model, selected)
    return model


# --------------------------------------------------------------------------------------
# Statistics and distance
# --------------------------------------------------------------------------------------


def _as_float64(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """``(mu (D,), sigma (D, D))`` of ``features (N, D)`` (numpy or torch), in float64.

    ``sigma`` is the unbiased sample covariance (``np.cov(rowvar=False)``, divisor
    ``N - 1``), as pytorch-fid and the original TensorFlow code compute it; ``N >= 2``.
    """
    features = _as_float64(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"feature_statistics expects (N, D) features with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Squared Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``:
    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2))``.

    Args:
        mu1, mu2: ``(D,)`` means; sigma1, sigma2: ``(D, D)`` covariances (numpy or torch;
            computed in float64). Scalars count as ``D = 1``.
        eps: the diagonal offset used when the product is singular (below).

    Numerical handling, as pytorch-fid's ``calculate_frechet_distance`` (after the
    TensorFlow original):

    * when ``scipy.linalg.sqrtm(sigma1 @ sigma2)`` is not finite (a singular product,
      e.g. fewer samples than dimensions), ``eps * I`` is added to both covariances and
      the root is taken again, with a warning;
    * ``sqrtm`` of a real matrix may come back complex with tiny imaginary parts from
      rounding: the real part is kept when every diagonal imaginary part is within
      ``1e-3`` of 0, otherwise :class:`ValueError` is raised.
    """
    mu1, mu2 = np.atleast_1d(_as_float64(mu1)), np.atleast_1d(_as_float64(mu2))
    sigma1, sigma2 = np.atleast_2d(_as_float64(sigma1)), np.atleast_2d(_as_float64(sigma2))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be two (D,) vectors of one length, got {mu1.shape} and {mu2.shape}")
    dim = mu1.shape[0]
    if sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"covariances must be ({dim}, {dim}), got {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"FID: the covariance product is singular; adding {eps} to the diagonal of both covariances",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(dim) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: sqrtm has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(real, generated) -> float:
    """FID between two sets of pool3 features, ``real (N1, D)`` and ``generated (N2, D)``."""
    mu1, sigma1 = feature_statistics(real)
    mu2, sigma2 = feature_statistics(generated)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


__all__ = [
    "FEATURE_DIM",
    "FID_WEIGHTS_FILE",
    "INPUT_SIZE",
    "NUM_CLASSES",
    "TORCH_FIDELITY_WEIGHTS_FILE",
    "FIDInceptionV3",
    "expected_layout",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "load_fid_inception",
]
