"""``reanimate attention``: where the motion transformer's motion tokens look (MoTrans
Fig. 3).

For one image and a checkpoint whose motion estimator is the transformer, every layer's
attention of every keypoint token over the image tokens (averaged over heads) is resized
onto the image and saved as a heat-map overlay, ``layerLL_tokenKK.png``, plus
``grid.png`` (rows: tokens; columns: the image with its keypoints, then layers 1..L) and
the raw maps in ``attention.npz`` (``attention``: ``(L, K, h, w)`` float32, each map a
token's attention weights over the ``h x w`` image tokens; ``keypoints``: ``(K, 2)`` in
[-1, 1]).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..animators.fomm import FommAnimator
from ..errors import ReanimateError
from ..io import atomic_path, read_image
from ..models.motion_transformer import MotionTransformer
from ..visualize import draw_keypoints


@dataclass
class AttentionResult:
    output: Path
    attention: np.ndarray  # (L, K, h, w)
    keypoints: np.ndarray  # (K, 2) in [-1, 1]


def heat_overlay(image: np.ndarray, heat: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """``image`` ``(H, W, 3)`` uint8 tinted by ``heat`` ``(H, W)`` in [0, 1] (dark blue ->
    red -> yellow), ``strength`` the weight of the colour where heat is 1."""
    h = np.clip(heat, 0.0, 1.0)[..., None]
    colour = np.concatenate([np.clip(3 * h, 0, 1), np.clip(3 * h - 1, 0, 1), np.clip(1 - 3 * h, 0, 1) * 0.6], -1)
    alpha = strength * np.sqrt(h)
    return (image * (1 - alpha) + 255 * colour * alpha).astype(np.uint8)


def attention_maps(
    pipeline: FommAnimator, image: np.ndarray, pad: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model-resolution image ``(H, W, 3)`` uint8, its attention maps ``(L, K, h, w)``
    and keypoints ``(K, 2)``."""
    estimator = pipeline.model.kp_detector
    if not isinstance(estimator, MotionTransformer):
        raise ReanimateError(
            "attention maps need a checkpoint whose motion estimator is the transformer "
            f"(model_params.motion_estimator: transformer), this one has {type(estimator).__name__}"
        )
    images, _ = pipeline.prepare([image], pad)
    with torch.inference_mode():
        keypoints, maps = estimator(images.float(), return_attention=True)
    fitted = (images[0].float().permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return fitted, maps[0].float().cpu().numpy(), keypoints.value[0].float().cpu().numpy()


def save_attention(
    pipeline: FommAnimator, source: str | os.PathLike, output_dir: str | os.PathLike, pad: bool = False
) -> AttentionResult:
    """Write the overlays, ``grid.png`` and ``attention.npz`` into ``output_dir``
    (created; written in a temporary folder first, so a failure leaves nothing)."""
    image = read_image(source)
    fitted, maps, keypoints = attention_maps(pipeline, image, pad)
    height, width = fitted.shape[:2]
    layers, tokens = maps.shape[:2]
    # Each map scaled by its own maximum: the maps of later layers are often flat.
    up = (
        F.interpolate(
            torch.from_numpy(maps).reshape(-1, 1, *maps.shape[2:]),
            size=(height, width),
            mode="bilinear",
            align_corners=False,
        )
        .reshape(layers, tokens, height, width)
        .numpy()
    )
    peak = up.max(axis=(2, 3), keepdims=True)
    up = up / np.where(peak > 0, peak, 1.0)
    out = Path(output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, directory=True) as staging:  # replaces an existing folder whole
        rows = []
        marked = draw_keypoints(fitted, keypoints)
        for k in range(tokens):
            row = [marked]
            for layer in range(layers):
                overlay = heat_overlay(fitted, up[layer, k])
                Image.fromarray(overlay).save(staging / f"layer{layer + 1:02d}_token{k:02d}.png")
                row.append(overlay)
            rows.append(np.concatenate(row, axis=1))
        Image.fromarray(np.concatenate(rows, axis=0)).save(staging / "grid.png")
        np.savez_compressed(
            staging / "attention.npz", attention=maps.astype(np.float32), keypoints=keypoints.astype(np.float32)
        )
    return AttentionResult(out, maps, keypoints)


__all__ = ["AttentionResult", "attention_maps", "heat_overlay", "save_attention"]
