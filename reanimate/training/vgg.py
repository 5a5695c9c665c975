"""VGG-19 features for the perceptual loss (FOMM Sec. 3.3, after Johnson et al.).

:class:`Vgg19Features` is the convolutional trunk of VGG-19 up to ``relu5_1``, laid out
module for module like torchvision's ``vgg19().features`` (indices 0..29), so the
``features.N.weight/bias`` entries of torchvision's ImageNet checkpoint
(``vgg19-dcbb9e9d.pth``) load without renaming. torchvision itself is not needed.

:func:`load_vgg19` finds weights in this order: a file the user gives
(``--vgg-weights``), torch hub's checkpoint cache, and finally a seeded random
initialisation, with a warning: random VGG features still give a usable (if weaker)
training signal, which is why the training step pairs them with MS-SSIM.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..models.blocks import MeasuringNetwork
from ..weights import read_state_dict_file, select_state

logger = logging.getLogger(__name__)

#: File name of torchvision's ImageNet VGG-19 checkpoint (as in its download URL).
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"

#: torchvision's VGG-19 configuration "E": conv widths, "M" for a 2x2 max-pool.
_VGG19_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]

#: Index of the last module of each slice of the official FOMM ``Vgg19``: the outputs
#: after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (slices [0,2), [2,7), [7,12),
#: [12,21), [21,30)).
FEATURE_INDICES = (1, 6, 11, 20, 29)

#: ImageNet statistics torchvision's weights expect, for [0, 1] RGB input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_trunk() -> nn.Sequential:
    """Modules 0..29 of torchvision's ``vgg19().features``, convolutions left uninitialised."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            # skip_init: no draw from the global RNG; load_vgg19 always fills the weights.
            layers.append(nn.utils.skip_init(nn.Conv2d, in_channels, item, kernel_size=3, padding=1))
            # Not in-place: the activations are returned and must not be overwritten.
            layers.append(nn.ReLU(inplace=False))
            in_channels = item
    assert len(layers) == FEATURE_INDICES[-1] + 1, len(layers)
    return nn.Sequential(*layers)


class Vgg19Features(MeasuringNetwork):
    """Frozen VGG-19 trunk returning the five activations the perceptual loss compares.

    ``forward(x (B, 3, H, W) in [0, 1]) -> [relu1_1 (B, 64, H, W), relu2_1 (B, 128, H/2, W/2),
    relu3_1 (B, 256, H/4, W/4), relu4_1 (B, 512, H/8, W/8), relu5_1 (B, 512, H/16, W/16)]``
    (sizes floored by the max-pools). The ImageNet normalisation happens inside.

    The state dict holds exactly torchvision's ``features.N.weight/bias`` keys for
    N in 0..28; mean and std are non-persistent buffers. Parameters never require
    gradients (gradients still flow to the input) and the module stays in eval mode.

    Construct through :func:`load_vgg19`; a bare ``Vgg19Features()`` is initialised
    randomly with ``seed``.
    """

    def __init__(self, seed: int | None = 0):
        super().__init__()
        self.features = _build_trunk()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """torchvision's VGG init (Kaiming normal, fan_out, ReLU gain; zero bias) from a
        local generator seeded with ``seed``; the global RNG is left alone."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, num_layers: int = len(FEATURE_INDICES)) -> list[torch.Tensor]:
        """The first ``num_layers`` activations; the trunk stops after the last one
        (a perceptual loss whose deeper layer weights are zero need not run them)."""
        assert x.dim() == 4 and x.shape[1] == 3, f"expected (B, 3, H, W) RGB in [0, 1], got {tuple(x.shape)}"
        out = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        feats = []
        for index, module in enumerate(self.features):
            if len(feats) == num_layers:
                break
            out = module(out)
            if index in FEATURE_INDICES:
                feats.append(out)
        return feats


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the torchvision feature parameters the trunk uses, in order."""
    shapes = {}
    index, in_channels = 0, 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (item, in_channels, 3, 3)
        shapes[f"features.{index}.bias"] = (item,)
        index, in_channels = index + 2, item  # conv, relu
    return shapes


def _read_torchvision_state(path: Path) -> dict[str, torch.Tensor]:
    """The trunk's parameters from a torchvision-format VGG-19 file, checked key by key
    (the deeper layers and the classifier the file also holds are dropped)."""
    what = "torchvision VGG-19 state dict"
    state = read_state_dict_file(path, what, TORCHVISION_VGG19_FILE)
    return select_state(path, state, _expected_shapes(), what, ignore_prefixes=("features.", "classifier."))


def hub_cache_path() -> Path:
    """Where torch hub keeps torchvision's VGG-19 (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19_FILE


def load_vgg19(
    weights: str | os.PathLike | None = None,
    *,
    search_hub_cache: bool = True,
    seed: int = 0,
) -> tuple[Vgg19Features, str]:
    """The perceptual-loss network and a note on where its weights came from.

    Args:
        weights: a torchvision-format VGG-19 state dict file (``vgg19-dcbb9e9d.pth``;
            a ``module.`` prefix is tolerated, the classifier and unused deeper layers
            are ignored). Errors in it raise :class:`~reanimate.errors.CheckpointError`.
        search_hub_cache: without ``weights``, look for that file in torch hub's cache
            (``torch.hub.get_dir()/checkpoints``, which follows ``$TORCH_HOME``).
        seed: seed of the random initialisation used when no weights are found.

    Returns:
        ``(model, source)`` with ``source`` one of ``"file <path>"``,
        ``"torch hub cache <path>"`` or ``"random init (seed <seed>)"``.
    """
    if weights is not None:
        path = Path(weights)
        source = f"file {path}"
    elif search_hub_cache and hub_cache_path().is_file():
        path = hub_cache_path()
        source = f"torch hub cache {path}"
    else:
        model = Vgg19Features(seed=seed)
        logger.warning(
            "perceptual loss features come from a randomly initialised VGG-19 (seed %d), not ImageNet "
            "weights; pass --vgg-weights PATH to torchvision's %s or put that file in %s",
            seed,
            TORCHVISION_VGG19_FILE,
            hub_cache_path().parent,
        )
        return model, f"random init (seed {seed})"

    state = _read_torchvision_state(path)
    model = Vgg19Features(seed=None)
    with torch.no_grad():
        for name, param in model.features.named_parameters():
            param.copy_(state[f"features.{name}"])
    logger.info("VGG-19 weights for the perceptual loss: %s", source)
    return model, source


__all__ = ["FEATURE_INDICES", "TORCHVISION_VGG19_FILE", "Vgg19Features", "hub_cache_path", "load_vgg19"]
