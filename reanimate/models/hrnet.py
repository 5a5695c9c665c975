"""HRNet CNN backbones of the Motion Transformer (MoTrans, Tao et al. ECCV 2022, Sec. 4).

MoTrans feeds "the first three stages of HRNet-W32" (Sun et al., CVPR 2019) to its
transformer: the highest-resolution branch at 1/4 of the input. The layout follows the
official HRNet / MTIA code (``modules/transformer/hr_base.py``):

* stem: two 3x3 stride-2 convs to 64 channels (each conv -> BN -> ReLU);
* stage 1 (``layer1``): 4 Bottleneck blocks, 64 -> 256 channels, 1/4 resolution;
* stage s >= 2: ``transition{s-1}`` adapts the previous branches and opens one more
  (3x3 stride-2 conv from the lowest-resolution branch), then ``stage{s}`` stacks
  modules of ``s`` parallel branches (widths ``W * 2**b``) of 4 BasicBlocks each, fused
  by summation (1x1 conv + BN + nearest upsampling from lower resolutions, chains of
  3x3 stride-2 conv + BN from higher ones);
* the last module of the last stage only fuses into the highest-resolution branch
  (``multi_scale_output=False`` in the reference), the one the backbone returns.

HRNet-W32 stages 2-3 are ``stage_modules=(1, 4)``; the full 4-stage classification
trunk would be ``(1, 4, 3)``. Parameter names match the official checkpoints
(``conv1``, ``bn1``, ``layer1``, ``transition1``, ``stage2.0.branches.1.3.conv2``,
``stage3.3.fuse_layers.0.2.0`` ...), so ImageNet-pretrained HRNet weights (e.g.
``hrnet_w32-36af842e.pth``) load with :meth:`StemBackbone.load_pretrained`.

``StemBackbone`` is the light "Stem net" of the paper's Table 5: the stem and stage 1
(as MTIA's ``TokenPose_S``: 256 channels at 1/4 resolution).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class HRNetConfig:
    """Which HRNet to build.

    ``stage_modules[i]`` is the number of multi-resolution modules of stage ``i + 2``
    (which has ``i + 2`` branches); ``()`` builds only the stem and stage 1.
    """

    width: int = 32  # W: channels of the highest-resolution branch (HRNet-W32 / W48)
    stage_modules: tuple[int, ...] = (1, 4)  # stages 2 and 3 of HRNet (MoTrans)
    blocks_per_branch: int = 4  # BasicBlocks per branch and module
    in_channels: int = 3
    stem_channels: int = 64
    stage1_blocks: int = 4  # Bottleneck blocks of stage 1 (0: stem convs only)
    stage1_planes: int = 64  # Bottleneck width of stage 1 (output: 4x)

    def __post_init__(self):
        self.stage_modules = tuple(self.stage_modules)
        assert all(m >= 1 for m in self.stage_modules), f"every stage needs a module: {self.stage_modules}"


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """``conv (no bias) -> BN [-> ReLU]`` as ``Sequential`` (keys ``0.weight``, ``1.*``)."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """HRNet's residual blocks, ``relu(f(x) + shortcut(x))``.

    ``bottleneck=False``: BasicBlock, ``f`` = 3x3 -> 3x3 at ``planes`` channels.
    ``bottleneck=True``: Bottleneck, ``f`` = 1x1 -> 3x3 -> 1x1 to ``4 * planes`` channels.
    The shortcut is a 1x1 conv + BN (``downsample``) where the channel count changes.
    """

    def __init__(self, in_channels: int, planes: int, bottleneck: bool = False):
        super().__init__()
        self.out_channels = planes * (4 if bottleneck else 1)
        if bottleneck:
            convs = [(in_channels, planes, 1), (planes, planes, 3), (planes, self.out_channels, 1)]
        else:
            convs = [(in_channels, planes, 3), (planes, planes, 3)]
        for i, (cin, cout, k) in enumerate(convs, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(cin, cout, k, padding=k // 2, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(cout))
        self.num_convs = len(convs)
        self.downsample = (
            conv_bn(in_channels, self.out_channels, 1, relu=False) if in_channels != self.out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i in range(1, self.num_convs + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.num_convs:
                out = F.relu(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def residual_stack(in_channels: int, planes: int, num_blocks: int, bottleneck: bool) -> nn.Sequential:
    blocks = []
    for _ in range(num_blocks):
        blocks.append(ResidualBlock(in_channels, planes, bottleneck))
        in_channels = blocks[-1].out_channels
    return nn.Sequential(*blocks)


class HRModule(nn.Module):
    """One multi-resolution module: parallel BasicBlock branches, then exchange units.

    ``forward(list of (B, C_b, H / 2**b, W / 2**b)) -> list`` of the first
    ``num_outputs`` fused branches. ``fuse_layers[i][j]`` brings branch ``j`` to branch
    ``i`` (None for ``i == j``).
    """

    def __init__(self, channels: list[int], num_blocks: int, num_outputs: int | None = None):
        super().__init__()
        n = len(channels)
        num_outputs = n if num_outputs is None else num_outputs
        self.branches = nn.ModuleList(residual_stack(c, c, num_blocks, bottleneck=False) for c in channels)
        self.fuse_layers = None
        if n > 1:
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(self._exchange(channels, j, i) for j in range(n)) for i in range(num_outputs)
            )
        self.num_outputs = num_outputs

    @staticmethod
    def _exchange(channels: list[int], src: int, dst: int) -> nn.Module | None:
        if src == dst:
            return None
        if src > dst:  # lower resolution: 1x1 conv + BN, upsampled in forward
            return conv_bn(channels[src], channels[dst], 1, relu=False)
        # higher resolution: (dst - src) stride-2 3x3 convs, the last one without ReLU
        steps = dst - src
        return nn.Sequential(
            *(
                conv_bn(channels[src], channels[dst] if k == steps - 1 else channels[src], 3, 2, relu=k < steps - 1)
                for k in range(steps)
            )
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:
                    z = F.interpolate(z, size=y.shape[-2:], mode="nearest")
                y = y + z
            fused.append(F.relu(y))
        return fused


class StemBackbone(nn.Module):
    """HRNet stem + stage 1: ``forward(image (B, C_in, H, W)) -> (B, out_channels, H/4, W/4)``.

    Alone it is the "Stem" backbone of MoTrans Table 5 (256 channels with the default
    stage 1); :class:`HRNetBackbone` continues from it.
    """

    def __init__(self, config: HRNetConfig | None = None):
        super().__init__()
        config = HRNetConfig() if config is None else config
        self.config = config
        c = config.stem_channels
        self.conv1 = nn.Conv2d(config.in_channels, c, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        if config.stage1_blocks > 0:
            self.layer1 = residual_stack(c, config.stage1_planes, config.stage1_blocks, bottleneck=True)
            c = self.layer1[-1].out_channels
        else:
            self.layer1 = None
        self.out_channels = c
        self.stride = 4

    def stem(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(image)))
        x = F.relu(self.bn2(self.conv2(x)))
        return x if self.layer1 is None else self.layer1(x)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.stem(image)

    def load_pretrained(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """Copy the entries of an HRNet checkpoint whose name and shape match (the
        classifier head and later stages are skipped); returns the names loaded."""
        own = self.state_dict()
        matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
        self.load_state_dict(matching, strict=False)
        return sorted(matching)


class HRNetBackbone(StemBackbone):
    """First stages of HRNet: ``forward(image (B, C_in, H, W)) -> (B, W, H/4, W/4)``,
    the fused highest-resolution branch (``out_channels == config.width``).

    H and W should be divisible by ``2 ** (len(stage_modules) + 2)`` (16 for MoTrans) so
    that every branch halves exactly; other sizes work, with nearest resizing in the
    fusion.
    """

    def __init__(self, config: HRNetConfig | None = None):
        config = HRNetConfig() if config is None else config
        super().__init__(config)
        channels = [self.out_channels]
        num_stages = len(config.stage_modules)
        for s, num_modules in enumerate(config.stage_modules, start=2):
            new_channels = [config.width * 2**b for b in range(s)]
            self.add_module(f"transition{s - 1}", self._transition(channels, new_channels))
            last_stage = s == num_stages + 1
            modules = [
                HRModule(new_channels, config.blocks_per_branch, 1 if last_stage and m == num_modules - 1 else None)
                for m in range(num_modules)
            ]
            self.add_module(f"stage{s}", nn.Sequential(*modules))
            channels = new_channels
        self.num_stages = num_stages + 1
        self.out_channels = channels[0]

    @staticmethod
    def _transition(old: list[int], new: list[int]) -> nn.ModuleList:
        layers = []
        for i, c in enumerate(new):
            if i < len(old):
                layers.append(conv_bn(old[i], c, 3) if old[i] != c else None)
            else:  # a new, lower-resolution branch from the last existing one
                steps = i + 1 - len(old)
                layers.append(
                    nn.Sequential(*(conv_bn(old[-1], c if k == steps - 1 else old[-1], 3, 2) for k in range(steps)))
                )
        return nn.ModuleList(layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        xs = [self.stem(image)]
        for s in range(2, self.num_stages + 1):
            transition = getattr(self, f"transition{s - 1}")
            # existing branches adapt in place, a new one grows from the lowest resolution
            sources = [xs[i] if i < len(xs) else xs[-1] for i in range(len(transition))]
            xs = [x if layer is None else layer(x) for x, layer in zip(sources, transition)]
            xs = getattr(self, f"stage{s}")(xs)
        return xs[0]


BACKBONES = {
    "stem": (StemBackbone, HRNetConfig(stage_modules=())),
    "hrnet_w32": (HRNetBackbone, HRNetConfig(width=32)),
    "hrnet_w48": (HRNetBackbone, HRNetConfig(width=48)),
}


def build_backbone(name: str, in_channels: int = 3) -> StemBackbone:
    """``"stem" | "hrnet_w32" | "hrnet_w48"`` -> a backbone at 1/4 resolution with ``.out_channels``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    cls, config = BACKBONES[name]
    return cls(replace(config, in_channels=in_channels))


#: File names of the official ImageNet HRNet classification checkpoints (HRNet-Image-Classification).
IMAGENET_FILES = {
    "hrnet_w32": "hrnetv2_w32_imagenet_pretrained.pth",
    "hrnet_w48": "hrnetv2_w48_imagenet_pretrained.pth",
}


def load_imagenet_backbone(backbone: StemBackbone, path, name: str = "hrnet_w32") -> int:
    """Load an official ImageNet HRNet classification checkpoint (``conv1``, ``layer1``,
    ``transition1``, ``stage2`` … keys; the later stage, the classification head and the
    fusions into lower-resolution branches that the backbone drops are ignored) into
    ``backbone``. Every entry the backbone has must be in the file with its shape, else
    a one-line :class:`~reanimate.errors.CheckpointError` names the first that is not.
    Returns the number of tensors loaded."""
    from ..weights import load_selected_state, read_state_dict_file, select_state

    expected, optional = {}, {}
    for key, value in backbone.state_dict().items():
        (expected if value.is_floating_point() else optional)[key] = tuple(value.shape)
    what = f"ImageNet HRNet checkpoint ({name})"
    state = read_state_dict_file(path, what, IMAGENET_FILES.get(name, "the HRNet ImageNet checkpoint"))
    selected = select_state(path, state, expected, what, optional=optional, ignore_prefixes=("",))
    load_selected_state(backbone, selected)
    return len(selected)
