"""VGG-Face features for the face term of MMFA's perceptual loss (paper 003, supp. A.2).

MMFA measures its output with VGG-19 *and* VGG-Face (Parkhi, Vedaldi & Zisserman,
"Deep Face Recognition", BMVC 2015), the latter only on the full-size output ``G``.
VGG-Face is a VGG-16 trained to tell 2622 identities apart; :class:`VggFaceFeatures` is
its convolutional trunk, frozen, returning five activations.

Weights: the usual PyTorch release is ``vgg_face_dag.pth``, Samuel Albanie's conversion
of the MatConvNet model (https://www.robots.ox.ac.uk/~albanie/pytorch-models.html,
made with his ``mcnPyTorch`` converter). It cannot be shipped or downloaded here; users
pass it with ``reanimate train --vgg-face-weights FILE``. The facts this module relies on
come from the model definition published beside that file (``vgg_face_dag.py``: class
``Vgg_face_dag``), as found in public copies of it, and from NVIDIA imaginaire's loader
of the same file (``imaginaire/losses/perceptual.py``, ``_vgg_face_dag``):

- a flat state dict with keys ``conv1_1.weight/bias`` ... ``conv5_3.weight/bias`` (3x3
  convolutions, padding 1, widths 64, 64 | 128, 128 | 256 x 3 | 512 x 3 | 512 x 3, a
  2x2 max-pool after each block) and ``fc6`` (4096 x 25088), ``fc7`` (4096 x 4096),
  ``fc8`` (2622 x 4096). The fc layers are not used here and are ignored on loading;
  a ``module.`` prefix (``nn.DataParallel``) is tolerated;
- ``meta = {mean: [129.186279296875, 104.76238250732422, 93.59396362304688],
  std: [1, 1, 1], imageSize: [224, 224, 3]}``: RGB input on the 0..255 pixel scale
  minus that per-channel mean, at 224x224.

:meth:`VggFaceFeatures.forward` therefore takes images in [0, 1] (the project's
convention), resizes them to 224x224, multiplies by 255 and subtracts the mean.

Layers: the first ReLU of each block, ``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1``
(indices 1, 6, 11, 18, 25 of the VGG-16 trunk). They are the layers the project's VGG-19
term uses (FOMM's pattern, :mod:`reanimate.training.vgg`), so the two terms compare
features of the same depths; the same VGG-Face layers are used by the VGG-Face
content loss of Zakharov et al. 2019 (few-shot talking heads) as publicly
re-implemented. No public code of face-vid2vid's own VGG-Face loss was found (the
re-implementation this project follows for MMFA's weights uses VGG-19 only), so its
layer choice could not be checked.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..models.blocks import MeasuringNetwork
from ..weights import read_state_dict_file, select_state

logger = logging.getLogger(__name__)

#: File name of Samuel Albanie's PyTorch conversion of VGG-Face.
VGG_FACE_FILE = "vgg_face_dag.pth"

#: ``meta["mean"]`` of ``vgg_face_dag``: RGB, on 0..255 pixel values (std 1).
VGG_FACE_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)
#: Pixel scale the network was trained on: images in [0, 1] are multiplied by this.
VGG_FACE_PIXEL_SCALE = 255.0
#: ``meta["imageSize"]`` of ``vgg_face_dag`` (H, W).
VGG_FACE_INPUT_SIZE = (224, 224)

#: VGG-16 ("configuration D"): conv widths per block; a 2x2 max-pool ends every block.
_VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

#: The activations returned (see the module docstring): the first ReLU of each block.
FEATURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

#: Keys of the classifier the file also holds; not used by the trunk.
_IGNORED_PREFIXES = ("fc6.", "fc7.", "fc8.")


def _layer_names() -> list[str]:
    """Names of the trunk's modules in order (``conv1_1, relu1_1, ..., pool4, conv5_1, relu5_1``),
    as in ``Vgg_face_dag``; the trunk ends at the last returned activation."""
    names: list[str] = []
    for block, widths in enumerate(_VGG16_BLOCKS, start=1):
        for layer in range(1, len(widths) + 1):
            names += [f"conv{block}_{layer}", f"relu{block}_{layer}"]
        names.append(f"pool{block}")
    return names[: names.index(FEATURE_LAYERS[-1]) + 1]


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the convolutions the trunk uses, in the file's key names."""
    shapes: dict[str, tuple[int, ...]] = {}
    in_channels = 3
    for block, widths in enumerate(_VGG16_BLOCKS, start=1):
        for layer, width in enumerate(widths, start=1):
            shapes[f"conv{block}_{layer}.weight"] = (width, in_channels, 3, 3)
            shapes[f"conv{block}_{layer}.bias"] = (width,)
            in_channels = width
    return shapes


class VggFaceFeatures(MeasuringNetwork):
    """Frozen VGG-Face (VGG-16) trunk returning the five activations of the face term.

    ``forward(x (B, 3, H, W) RGB in [0, 1]) -> [relu1_1 (B, 64, 224, 224),
    relu2_1 (B, 128, 112, 112), relu3_1 (B, 256, 56, 56), relu4_1 (B, 512, 28, 28),
    relu5_1 (B, 512, 14, 14)]``: the input is resized to 224x224 (bilinear) and brought
    to the network's 0..255 pixel scale minus its mean inside.

    Only the convolutions of ``vgg_face_dag`` up to ``conv5_1`` are kept (the state dict
    holds ``conv1_1.weight`` ... ``conv5_1.bias``, named as in the file); the mean is a
    non-persistent buffer. Parameters never require gradients (gradients still flow to
    the input) and the module stays in eval mode.

    Construct through :func:`load_vgg_face`; a bare ``VggFaceFeatures()`` is
    initialised randomly with ``seed`` (for tests: random VGG-Face features know
    nothing about faces).
    """

    def __init__(self, seed: int | None = 0):
        super().__init__()
        shapes = _expected_shapes()
        self.layers = nn.ModuleDict()
        for name in _layer_names():
            if name.startswith("conv"):
                out_channels, in_channels = shapes[f"{name}.weight"][:2]
                # skip_init: no draw from the global RNG; load_vgg_face always fills the weights.
                self.layers[name] = nn.utils.skip_init(nn.Conv2d, in_channels, out_channels, kernel_size=3, padding=1)
            elif name.startswith("relu"):
                # Not in-place: the activations are returned and must not be overwritten.
                self.layers[name] = nn.ReLU(inplace=False)
            else:
                self.layers[name] = nn.MaxPool2d(kernel_size=2, stride=2)
        self.register_buffer("mean", torch.tensor(VGG_FACE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.freeze(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Kaiming normal (fan_out, ReLU gain; zero bias) from a local generator seeded
        with ``seed``, scaled by 1/255 for the 0..255 input; the global RNG is left alone."""
        generator = torch.Generator().manual_seed(seed)
        first = True
        for module in self.layers.values():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if first:  # keep random activations of the same order as on [0, 1] input
                    module.weight.div_(VGG_FACE_PIXEL_SCALE)
                    first = False
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        assert x.dim() == 4 and x.shape[1] == 3, f"expected (B, 3, H, W) RGB in [0, 1], got {tuple(x.shape)}"
        if tuple(x.shape[2:]) != VGG_FACE_INPUT_SIZE:
            x = F.interpolate(x, size=VGG_FACE_INPUT_SIZE, mode="bilinear", align_corners=False)
        out = x * VGG_FACE_PIXEL_SCALE - self.mean.to(x.dtype)
        feats = []
        for name, module in self.layers.items():
            out = module(out)
            if name in FEATURE_LAYERS:
                feats.append(out)
        return feats


def load_vgg_face(weights: str | os.PathLike) -> tuple[VggFaceFeatures, str]:
    """The VGG-Face trunk with the weights of ``weights`` and a note on their source.

    Args:
        weights: ``vgg_face_dag.pth`` (Albanie's conversion; see the module docstring).
            The fc layers and the convolutions after ``conv5_1`` are dropped; a
            ``module.`` prefix is tolerated. The file is read with ``weights_only=True``.

    Returns:
        ``(model, "file <path>")``.

    Raises:
        CheckpointError: one line naming the file and the first missing key, wrong
            shape or unexpected entry, or saying that it is missing or not a state dict.
    """
    path = Path(weights)
    what = "VGG-Face state dict (vgg_face_dag)"
    state = read_state_dict_file(path, what, VGG_FACE_FILE)
    expected = _expected_shapes()
    selected = select_state(path, state, expected, what, ignore_prefixes=_IGNORED_PREFIXES)
    model = VggFaceFeatures(seed=None)
    with torch.no_grad():
        for name, param in model.layers.named_parameters():
            param.copy_(selected[name])
    source = f"file {path}"
    logger.info("VGG-Face weights for the perceptual loss: %s", source)
    return model, source


__all__ = ["FEATURE_LAYERS", "VGG_FACE_FILE", "VGG_FACE_MEAN", "VggFaceFeatures", "load_vgg_face"]
