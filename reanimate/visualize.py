"""Drawing helpers for ``--visualize`` (FOMM supplementary Figs. 5-6): keypoints over
frames and the occlusion map as an image. Arrays are uint8 ``(H, W, 3)``."""

from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F

from .geometry import normalized_to_pixel
from .io import tensor_to_frames


def keypoint_colors(num_kp: int) -> np.ndarray:
    """``(K, 3)`` uint8 colours spread over the hue circle (like a rainbow colormap)."""
    hues = np.arange(num_kp) / max(num_kp, 1)
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(h, 1.0, 1.0)] for h in hues], dtype=np.uint8)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray | torch.Tensor, radius: int = 3) -> np.ndarray:
    """Filled discs at keypoints ``(K, 2)`` given in [-1, 1] (x first); returns a copy."""
    out = image.copy()
    h, w = image.shape[:2]
    pts = normalized_to_pixel(torch.as_tensor(keypoints, dtype=torch.float32), (h, w)).numpy()
    colors = keypoint_colors(len(pts))
    yy, xx = np.mgrid[0:h, 0:w]
    for (x, y), color in zip(pts, colors):
        out[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = color
    return out


def mask_to_image(mask: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A ``(1, h, w)`` map in [0, 1] resized to ``size = (H, W)`` as a grey uint8 image."""
    up = F.interpolate(mask[None].float(), size=size, mode="bilinear", align_corners=False)
    return tensor_to_frames(up.expand(1, 3, *size))[0]


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """Concatenate equally tall uint8 panels horizontally."""
    return np.concatenate(panels, axis=1)


def visualize_batch(source, batch, motion, rendered, frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``--visualize`` panels for N frames, each ``size = (H, W)``: the source with its
    keypoints | the driving crop with its keypoints | the result (the output frame fitted
    to ``size``) | the occlusion map where the model has one.

    ``source``, ``batch``, ``motion`` and ``rendered`` are the pipeline's
    :class:`~reanimate.animators.base.Source`, ``DrivingBatch``, ``Motion`` and ``Rendered``;
    ``frames`` the output frames (pasted back or not). Returns ``(N, H, 3W or 4W, 3)``."""
    from .io import fit_to_shape

    def radius(num_kp: int) -> int:
        return 3 if num_kp <= 50 else 1  # dense landmarks would cover the face

    src = draw_keypoints(source.image, source.keypoints.value[0].cpu(), radius(source.keypoints.num_kp))
    crops = batch.crops()
    panels = []
    for i, result in enumerate(frames):
        kp = motion.keypoints.value[i].cpu()
        row = [src, draw_keypoints(crops[i], kp, radius(len(kp))), fit_to_shape(result, size, mode="pad")[0]]
        if rendered.occlusion is not None:
            row.append(mask_to_image(rendered.occlusion[i], size))
        panels.append(side_by_side(row))
    return np.stack(panels)
