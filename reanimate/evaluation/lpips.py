"""LPIPS, the learned perceptual image distance of Zhang et al. (CVPR 2018), metric v0.1.

This is the metric of the ``lpips`` package (``lpips.LPIPS(net=..., version="0.1")``)
re-written on the project's own modules, so that it runs without torchvision and loads
the two files a user already has:

* the **backbone**: torchvision's ImageNet checkpoint, ``alexnet-owt-7be5be79.pth``
  (``net="alex"``) or ``vgg16-397923af.pth`` (``net="vgg"``). :class:`LPIPS` keeps the
  trunk in ``self.features`` laid out module for module like torchvision's
  ``alexnet().features`` / ``vgg16().features`` (same indices), so the
  ``features.N.weight/bias`` entries load without renaming; the ``classifier.*`` entries
  of those files are ignored.
* the **linear heads**: the ``lpips`` package's ``weights/v0.1/alex.pth`` or ``vgg.pth``,
  five entries ``lin{k}.model.1.weight`` of shape ``(1, C_k, 1, 1)`` (index 1 because
  the package puts a dropout in front of each 1x1 convolution). A state dict of the whole
  ``lpips.LPIPS`` module, as its trainer saves it, is accepted too: its ``net.*`` and
  ``scaling_layer.*`` entries are ignored.

The computation, for images ``x, y`` in ``[-1, 1]``:

1. scale each image channel-wise, ``(x - shift) / scale`` with ``shift = (-0.030, -0.088,
   -0.188)`` and ``scale = (0.458, 0.448, 0.450)`` (the package's ``ScalingLayer``; v0.0
   skipped it);
2. take the five ReLU activations of the trunk (AlexNet: relu1..relu5 with
   64, 192, 384, 256, 256 channels; VGG-16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
   with 64, 128, 256, 512, 512 channels);
3. unit-normalise every activation along channels, ``f / (||f||_2 + 1e-10)``;
4. weight the squared differences of the normalised activations with the 1x1 head of
   that layer (no bias), average over the spatial positions and sum over the layers.

:meth:`LPIPS.forward` takes images in ``[0, 1]`` (the project's convention) and maps them
to ``[-1, 1]`` first, as the package's ``normalize=True`` does.

Weight files are read with ``torch.load(weights_only=True)`` and checked key by key;
every problem is a one-line :class:`~reanimate.errors.CheckpointError` naming the file.
The checking helpers :func:`read_state_dict_file` and :func:`select_state` are shared
with :mod:`.fid`. torchvision is never imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ReanimateError
from ..models.blocks import MeasuringNetwork
from ..weights import load_selected_state, read_state_dict_file, select_state

# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

#: Channel-wise input scaling of LPIPS v0.1 (``lpips.ScalingLayer``), for ``[-1, 1]`` RGB.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

#: Added to the channel norm before dividing (``lpips.normalize_tensor``).
NORM_EPS = 1e-10

#: Key of the head of layer ``k``: ``lin{k}.model.1.weight`` (index 0 is a dropout).
HEAD_KEY = "lin{k}.model.1.weight"

# A trunk layer: ("conv", out_channels, kernel, stride, padding), ("relu",) or ("maxpool", kernel, stride).
_Layer = tuple


def _vgg_layers(widths: Iterable[int | str]) -> tuple[_Layer, ...]:
    layers: list[_Layer] = []
    for item in widths:
        if item == "M":
            layers.append(("maxpool", 2, 2))
        else:
            layers += [("conv", item, 3, 1, 1), ("relu",)]
    return tuple(layers)


@dataclass(frozen=True)
class BackboneSpec:
    """One LPIPS trunk: torchvision's ``features`` up to the last tapped ReLU."""

    name: str
    #: torchvision's ImageNet checkpoint (as in its download URL).
    torchvision_file: str
    #: What that file is, for messages.
    description: str
    #: ``features[0..len-1]`` of torchvision's model, index for index.
    layers: tuple[_Layer, ...]
    #: Indices in ``layers`` of the five ReLUs whose outputs LPIPS compares.
    taps: tuple[int, ...]
    tap_names: tuple[str, ...]
    #: Channels of the tapped activations = input channels of the heads.
    channels: tuple[int, ...]
    #: The ``lpips`` package's head file for this trunk.
    heads_file: str


ALEX = BackboneSpec(
    name="alex",
    torchvision_file="alexnet-owt-7be5be79.pth",
    description="torchvision AlexNet state dict",
    layers=(
        ("conv", 64, 11, 4, 2),
        ("relu",),
        ("maxpool", 3, 2),  # 0-2
        ("conv", 192, 5, 1, 2),
        ("relu",),
        ("maxpool", 3, 2),  # 3-5
        ("conv", 384, 3, 1, 1),
        ("relu",),  # 6-7
        ("conv", 256, 3, 1, 1),
        ("relu",),  # 8-9
        ("conv", 256, 3, 1, 1),
        ("relu",),  # 10-11 (torchvision's final max-pool, 12, is not needed)
    ),
    taps=(1, 4, 7, 9, 11),
    tap_names=("relu1", "relu2", "relu3", "relu4", "relu5"),
    channels=(64, 192, 384, 256, 256),
    heads_file="alex.pth",
)

VGG = BackboneSpec(
    name="vgg",
    torchvision_file="vgg16-397923af.pth",
    description="torchvision VGG-16 state dict",
    # torchvision's configuration "D" without its final max-pool (index 30).
    layers=_vgg_layers([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]),
    taps=(3, 8, 15, 22, 29),
    tap_names=("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    channels=(64, 128, 256, 512, 512),
    heads_file="vgg.pth",
)

BACKBONES = {spec.name: spec for spec in (ALEX, VGG)}


def backbone_spec(net: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of ``"alex"`` or ``"vgg"``."""
    if net not in BACKBONES:
        raise ReanimateError(f"unknown LPIPS network {net!r}; choose one of {', '.join(map(repr, BACKBONES))}")
    return BACKBONES[net]


def trunk_shapes(spec: BackboneSpec) -> dict[str, tuple[int, ...]]:
    """``{features.N.weight/bias: shape}`` the trunk takes from torchvision's file, in order."""
    shapes: dict[str, tuple[int, ...]] = {}
    in_channels = 3
    for index, layer in enumerate(spec.layers):
        if layer[0] == "conv":
            _, out_channels, kernel, _, _ = layer
            shapes[f"features.{index}.weight"] = (out_channels, in_channels, kernel, kernel)
            shapes[f"features.{index}.bias"] = (out_channels,)
            in_channels = out_channels
    return shapes


def head_shapes(spec: BackboneSpec) -> dict[str, tuple[int, ...]]:
    """``{lin{k}.model.1.weight: (1, C_k, 1, 1)}`` of the ``lpips`` package's head file."""
    return {HEAD_KEY.format(k=k): (1, channels, 1, 1) for k, channels in enumerate(spec.channels)}


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------


def _build_trunk(spec: BackboneSpec) -> nn.Sequential:
    """torchvision's ``features[0..]`` of ``spec``, convolutions left uninitialised."""
    modules: list[nn.Module] = []
    in_channels = 3
    for layer in spec.layers:
        if layer[0] == "conv":
            _, out_channels, kernel, stride, padding = layer
            conv = nn.utils.skip_init(nn.Conv2d, in_channels, out_channels, kernel, stride=stride, padding=padding)
            modules.append(conv)
            in_channels = out_channels
        elif layer[0] == "relu":
            # Not in-place: the tapped activations must survive the next layer.
            modules.append(nn.ReLU(inplace=False))
        else:
            modules.append(nn.MaxPool2d(kernel_size=layer[1], stride=layer[2]))
    return nn.Sequential(*modules)


class LinearHead(nn.Module):
    """A layer's 1x1 weighting, ``(B, C, H, W) -> (B, 1, H, W)``, as ``lpips.NetLinLayer``.

    ``model[0]`` stands where the package has its (training-only) dropout, so the weight
    is ``model.1.weight`` as in the package's files.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.utils.skip_init(nn.Conv2d, channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(MeasuringNetwork):
    """The LPIPS v0.1 distance with an AlexNet or VGG-16 trunk.

    ``forward(x (B, 3, H, W) in [0, 1], y (B, 3, H, W) in [0, 1]) -> (B,)`` distances;
    ``x`` and ``y`` must have the same shape. ``LPIPS(x, x)`` is exactly 0. The trunks
    need ``H, W >= 31`` (AlexNet: stride-4 convolution and two 3x3 max-pools) or
    ``>= 16`` (VGG-16: four 2x2 max-pools).

    The state dict is exactly torchvision's ``features.N.weight/bias`` entries of the trunk
    plus the package's ``lin{k}.model.1.weight`` heads; ``shift``/``scale`` are
    non-persistent buffers. Parameters never require gradients (gradients still flow to
    the inputs) and the module stays in eval mode.

    Construct through :func:`load_lpips`; a bare ``LPIPS(net)`` is initialised randomly
    with ``seed`` (for tests), ``seed=None`` leaves it uninitialised.
    """

    def __init__(self, net: str = "alex", seed: int | None = 0):
        super().__init__()
        self.spec = backbone_spec(net)
        self.features = _build_trunk(self.spec)
        for k, channels in enumerate(self.spec.channels):
            self.add_module(f"lin{k}", LinearHead(channels))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.freeze(seed)

    @property
    def heads(self) -> list[LinearHead]:
        return [getattr(self, f"lin{k}") for k in range(len(self.spec.channels))]

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Random weights from a local generator (the global RNG is left alone): Kaiming
        normal trunk, zero biases, non-negative heads (the trained heads are >= 0)."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
        for head in self.heads:
            weight = head.model[1].weight
            weight.copy_(torch.rand(weight.shape, generator=generator) / weight.shape[1])

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five tapped ReLU outputs for ``x (B, 3, H, W)`` in ``[-1, 1]``, after the
        input scaling: ``[(B, C_k, H_k, W_k)]`` with ``C_k = spec.channels[k]``."""
        out = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        taps = set(self.spec.taps)
        feats = []
        for index, module in enumerate(self.features):
            out = module(out)
            if index in taps:
                feats.append(out)
        return feats

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-layer terms ``(B, 5)`` for ``x, y (B, 3, H, W)`` in ``[0, 1]``; they sum to
        :meth:`forward`."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape != y.shape:
            raise ValueError(
                f"LPIPS expects two (B, 3, H, W) images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        # Each image goes through the trunk on its own, as in the package: LPIPS(x, x) is 0.
        feats_x = self.activations(2 * x - 1)
        feats_y = self.activations(2 * y - 1)
        terms = []
        for head, fx, fy in zip(self.heads, feats_x, feats_y, strict=True):
            diff = (unit_normalise(fx) - unit_normalise(fy)) ** 2
            terms.append(head(diff).mean(dim=(1, 2, 3)))
        return torch.stack(terms, dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.layer_distances(x, y).sum(dim=1)


def unit_normalise(features: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """``(B, C, H, W)`` features divided by their L2 norm over ``C`` (plus ``eps``)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def read_backbone(path: str | os.PathLike, spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """The trunk entries of a torchvision checkpoint of ``spec``'s network, checked
    (``classifier.*`` entries are allowed and dropped)."""
    state = read_state_dict_file(path, spec.description, spec.torchvision_file)
    return select_state(path, state, trunk_shapes(spec), spec.description, ignore_prefixes=("classifier.",))


def read_heads(path: str | os.PathLike, spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """The five head weights of an ``lpips`` v0.1 file for ``spec``'s network, checked."""
    what = f"LPIPS v0.1 {spec.name} linear-head file (lpips weights/v0.1/{spec.heads_file})"
    state = read_state_dict_file(path, what, spec.heads_file)
    # A whole lpips.LPIPS state dict also carries its trunk and scaling constants.
    return select_state(path, state, head_shapes(spec), what, ignore_prefixes=("net.", "scaling_layer."))


def load_lpips(
    backbone_weights: str | os.PathLike,
    linear_weights: str | os.PathLike,
    net: str = "alex",
) -> LPIPS:
    """The LPIPS v0.1 metric with user-supplied weights.

    Args:
        backbone_weights: torchvision's ImageNet checkpoint of the trunk,
            ``alexnet-owt-7be5be79.pth`` for ``net="alex"``, ``vgg16-397923af.pth`` for
            ``net="vgg"`` (``classifier.*`` entries are ignored, a ``module.`` prefix is
            tolerated).
        linear_weights: the ``lpips`` package's ``weights/v0.1/alex.pth`` or ``vgg.pth``.
        net: ``"alex"`` (the package's default and the usual choice for evaluation) or
            ``"vgg"``.

    Raises:
        CheckpointError: a file is missing, unreadable, not a state dict, or lacks an
            entry / has a wrong shape or an unexpected entry (one line naming file and key).
        ReanimateError: ``net`` is not one of the two.
    """
    spec = backbone_spec(net)
    selected = read_backbone(backbone_weights, spec)
    selected.update(read_heads(linear_weights, spec))
    model = LPIPS(net, seed=None)
    load_selected_state(model, selected)
    return model


__all__ = [
    "ALEX",
    "BACKBONES",
    "LPIPS",
    "VGG",
    "BackboneSpec",
    "LinearHead",
    "backbone_spec",
    "head_shapes",
    "load_lpips",
    "load_selected_state",
    "read_backbone",
    "read_heads",
    "read_state_dict_file",
    "select_state",
    "trunk_shapes",
    "unit_normalise",
]
