"""Motion Transformer (MoTrans, Tao et al. ECCV 2022): a transformer motion estimator,
a drop-in alternative to the FOMM :class:`~reanimate.models.KeypointDetector`.

``image -> HRNet (1/4 res.) -> 4x4 patches -> linear to d -> + sine position encoding
-> [motion tokens; image tokens] -> L pre-norm transformer layers -> heads on the motion
tokens -> keypoints in [-1, 1] and 2x2 Jacobians`` (paper Sec. 3.2, Eq. 7-8; Sec. 4).

Where the paper is silent the authors' code (github.com/JialeTao/MTIA,
``modules/transformer/tokenpose_base.py: TokenPose_TB_base`` with ``pose_tokenpose_b``
and ``config/*.yaml``) decides:

* 8 heads, scale ``(d / heads) ** -0.5``, qkv without bias, FFN ``d -> 3d -> d`` with
  GELU, no dropout, pre-norm residual layers (``x + Attn(LN(x))``, ``x + FFN(LN(x))``),
  no final norm;
* patches are flattened ``(p1 p2 c)`` from the 32-channel HRNet-W32 output directly
  (no 1x1 reduction) and projected by one Linear (512 -> 192);
* the fixed 2-D sine encoding (DETR-style, normalised to 2*pi, temperature 10000,
  ``[y-half, x-half]``, sin/cos interleaved) is added to the image tokens at the input
  and, in the released configs (``POS_EMBEDDING_TYPE: sine-full``), again before every
  later layer (added to the residual stream: ``position_encoding_every_layer``);
* every keypoint has two learnable tokens, one read by the keypoint head and one by the
  Jacobian head (``jacobian_token=True``); the paper's ``[A, t] = P W_h`` with one
  token per part is ``jacobian_tokens=False``;
* heads: ``LayerNorm -> Linear(d, 2)`` squashed by ``2 * sigmoid - 1`` and
  ``LayerNorm -> Linear(d, 4)`` initialised to the identity (zero weight, bias
  ``[1, 0, 0, 1]``); Linear weights truncated-normal(0.02), tokens truncated-normal(0.02);
* images enter in [0, 1] without ImageNet normalisation (``DATA_PREPROCESS: False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..motion import Keypoints
from .hrnet import build_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class MotionTransformerConfig:
    """Defaults: the MoTrans estimator of the paper (HRNet-W32, d = 192, 12 layers)."""

    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    backbone: str = "hrnet_w32"  # "stem" | "hrnet_w32" | "hrnet_w48" (Table 5)
    patch_size: int = 4  # on the 1/4-resolution features: 256 tokens at 256x256
    dim: int = 192
    depth: int = 12  # Table 6: 4 / 8 / 12
    heads: int = 8
    mlp_ratio: float = 3.0
    dropout: float = 0.0
    position_encoding: str = "sine"  # "sine" | "none" (Table 4)
    position_encoding_every_layer: bool = True  # MTIA "sine-full"; False: input only
    jacobian_tokens: bool = True  # separate Jacobian tokens (MTIA); False: one token per part
    imagenet_normalize: bool = False

    def __post_init__(self):
        if self.position_encoding not in ("sine", "none"):
            raise ValueError(f"position_encoding must be sine or none, got {self.position_encoding!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.dim % 4:
            raise ValueError(f"the 2-D sine encoding needs dim divisible by 4, got {self.dim}")

    @property
    def num_motion_tokens(self) -> int:
        return self.num_kp * (2 if self.estimate_jacobian and self.jacobian_tokens else 1)


def sine_position_encoding(
    h: int, w: int, dim: int, temperature: float = 10000.0, scale: float = 2 * math.pi
) -> torch.Tensor:
    """Fixed 2-D sine encoding of an ``h x w`` grid, row-major: ``(h * w, dim)``.

    Channels ``[0, dim/2)`` encode the row, ``[dim/2, dim)`` the column; within a half,
    channel ``2m`` is ``sin(p / T**(2m / (dim/2)))`` and ``2m + 1`` the cosine of the
    same, with ``p = (index + 1) / size * scale`` (DETR's normalised variant, as MTIA).
    """
    half = dim // 2
    eps = 1e-6
    y = torch.arange(1, h + 1, dtype=torch.float32) / (h + eps) * scale
    x = torch.arange(1, w + 1, dtype=torch.float32) / (w + eps) * scale
    freq = temperature ** (2 * (torch.arange(half) // 2) / half)

    def encode(p: torch.Tensor) -> torch.Tensor:  # (n,) -> (n, half)
        angles = p[:, None] / freq
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=-1).flatten(1)

    pos_y = encode(y)[:, None, :].expand(h, w, half)
    pos_x = encode(x)[None, :, :].expand(h, w, half)
    return torch.cat((pos_y, pos_x), dim=-1).reshape(h * w, dim)


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (Eq. 3-4, 7).

    ``forward(x (B, T, d), need_weights) -> (out (B, T, d), weights (B, heads, T, T) | None)``.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if need_weights:
            weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            out = weights @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        out = out.transpose(1, 2).reshape(b, t, d)
        return self.dropout(self.proj(out)), weights


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        out, weights = self.attn(self.norm1(x), need_weights)
        x = x + out
        return x + self.mlp(self.norm2(x)), weights


class MotionTransformer(nn.Module):
    """``forward(image (B, C, H, W) in [0, 1]) -> Keypoints`` with ``value (B, K, 2)`` in
    [-1, 1] (x first) and, if ``estimate_jacobian``, ``jacobian (B, K, 2, 2)``.

    ``forward(image, return_attention=True) -> (Keypoints, attention (B, depth, K, h, w))``:
    per layer, the head-averaged attention of each keypoint's motion token over the
    ``h x w = H/16 x W/16`` image tokens (Fig. 3). :meth:`attention` gives the full rows
    over all tokens. H and W must be divisible by ``4 * patch_size``.
    """

    def __init__(self, config: MotionTransformerConfig | None = None):
        super().__init__()
        config = MotionTransformerConfig() if config is None else config
        self.config = config
        d = config.dim
        self.backbone = build_backbone(config.backbone, config.num_channels)
        self.stride = self.backbone.stride * config.patch_size
        self.patch_embed = nn.Linear(self.backbone.out_channels * config.patch_size**2, d)
        self.motion_tokens = nn.Parameter(torch.zeros(1, config.num_motion_tokens, d))
        self.dropout = nn.Dropout(config.dropout)
        mlp_dim = int(round(d * config.mlp_ratio))
        self.layers = nn.ModuleList(EncoderLayer(d, config.heads, mlp_dim, config.dropout) for _ in range(config.depth))
        self.kp_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2))
        self.jacobian_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4)) if config.estimate_jacobian else None
        if config.imagenet_normalize:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.reset_transformer_parameters()

    def reset_transformer_parameters(self) -> None:
        """MTIA's init of everything but the backbone (which keeps PyTorch's default or
        gets ImageNet weights through ``backbone.load_pretrained``)."""
        for module in [self.patch_embed, *self.layers, self.kp_head, self.jacobian_head]:
            if module is None:
                continue
            for m in module.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.motion_tokens, std=0.02)
        if self.jacobian_head is not None:  # start from identity Jacobians
            nn.init.zeros_(self.jacobian_head[-1].weight)
            with torch.no_grad():
                self.jacobian_head[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]))

    def tokenize(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``image (B, C, H, W) -> image tokens (B, N, d)`` (before position encoding)
        and the token grid ``(h, w) = (H / 16, W / 16)``; ``N = h * w``."""
        b, _, height, width = image.shape
        s = self.stride
        assert height % s == 0 and width % s == 0, f"image size {height}x{width} must be divisible by {s}"
        if self.config.imagenet_normalize:
            image = (image - self.mean) / self.std
        features = self.backbone(image)  # (B, C, H/4, W/4)
        p = self.config.patch_size
        c, h, w = features.shape[1], features.shape[2] // p, features.shape[3] // p
        # (B, C, h p1, w p2) -> (B, h w, p1 p2 C): MTIA's flattening order
        patches = features.view(b, c, h, p, w, p).permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, p * p * c)
        return self.patch_embed(patches), (h, w)

    def encode(self, image: torch.Tensor, need_weights: bool = False):
        """Run the transformer: ``(motion tokens (B, M, d), attention rows of the motion
        tokens (B, depth, M, M + N) averaged over heads | None, (h, w))``."""
        x, (h, w) = self.tokenize(image)
        pos = None
        if self.config.position_encoding == "sine":
            pos = sine_position_encoding(h, w, self.config.dim).to(x)
            x = x + pos
        m = self.motion_tokens.shape[1]
        x = self.dropout(torch.cat((self.motion_tokens.expand(x.shape[0], -1, -1), x), dim=1))
        rows = []
        for i, layer in enumerate(self.layers):
            if i > 0 and pos is not None and self.config.position_encoding_every_layer:
                x = torch.cat((x[:, :m], x[:, m:] + pos), dim=1)
            x, weights = layer(x, need_weights)
            if need_weights:
                rows.append(weights[:, :, :m].mean(dim=1))
        attention = torch.stack(rows, dim=1) if need_weights else None
        return x[:, :m], attention, (h, w)

    def attention(self, image: torch.Tensor) -> torch.Tensor:
        """Head-averaged attention rows of all motion tokens over all tokens
        ``[motion tokens; image tokens]``: ``(B, depth, M, M + N)``, rows sum to 1."""
        return self.encode(image, need_weights=True)[1]

    def forward(self, image: torch.Tensor, return_attention: bool = False):
        tokens, rows, (h, w) = self.encode(image, need_weights=return_attention)
        k = self.config.num_kp
        value = 2 * torch.sigmoid(self.kp_head(tokens[:, :k])) - 1
        jacobian = None
        if self.jacobian_head is not None:
            jacobian_tokens = tokens[:, k:] if self.config.jacobian_tokens else tokens[:, :k]
            jacobian = self.jacobian_head(jacobian_tokens).view(-1, k, 2, 2)
        kp = Keypoints(value, jacobian)
        if not return_attention:
            return kp
        m = tokens.shape[1]
        maps = rows[:, :, :k, m:].reshape(rows.shape[0], rows.shape[1], k, h, w)
        return kp, maps


def convert_mtia_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an MTIA ``kp_detector`` state dict (``pose_tokenpose_b``) to this module's
    names. The fixed ``pos_embedding`` is dropped (recomputed for any input size)."""
    fixed = {
        "transformer.keypoint_token": "motion_tokens",
        "transformer.patch_to_embedding.weight": "patch_embed.weight",
        "transformer.patch_to_embedding.bias": "patch_embed.bias",
    }
    layer_parts = {
        "0.fn.norm": "norm1",
        "0.fn.fn.to_qkv": "attn.qkv",
        "0.fn.fn.to_out.0": "attn.proj",
        "1.fn.norm": "norm2",
        "1.fn.fn.net.0": "mlp.0",
        "1.fn.fn.net.3": "mlp.3",
    }
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith("pre_feature."):
            out["backbone." + key.removeprefix("pre_feature.")] = value
        elif key in fixed:
            out[fixed[key]] = value
        elif key.startswith("transformer.transformer.layers."):
            index, rest = key.removeprefix("transformer.transformer.layers.").split(".", 1)
            part, param = rest.rsplit(".", 1)
            out[f"layers.{index}.{layer_parts[part]}.{param}"] = value
        elif key.startswith("transformer.mlp_head_jacobian."):
            out["jacobian_head." + key.removeprefix("transformer.mlp_head_jacobian.")] = value
        elif key.startswith("transformer.mlp_head."):
            out["kp_head." + key.removeprefix("transformer.mlp_head.")] = value
        elif key != "transformer.pos_embedding":
            raise KeyError(f"unexpected MTIA key {key!r}")
    return out
