"""Training frames of an avatar: a track folder (:mod:`reanimate.avatar.tracking`) as a
dataset, and IMavatar's ray sampling (half of the rays uniform over the image, half in
the face box, as the authors' ``real_dataset.py``).

Each sample is a whole (small) frame; the rays are drawn in the training step from the
step's seeded generator, so that a resumed run draws the same rays.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .tracking import TrackFolder


def face_boxes(track: TrackFolder, margin: float) -> np.ndarray:
    """``(T, 4)`` ``x0, y0, x1, y1`` crop pixels: each frame's fitted landmarks' box grown
    by ``margin`` of its size per side (frames without landmarks: the whole image)."""
    t = track.tracking
    points = t.landmarks_fit.numpy()
    size = t.image_size
    boxes = np.tile(np.array([0, 0, size - 1, size - 1], dtype=np.float32), (len(points), 1))
    for i, visible in enumerate(t.visible.numpy()):
        if not visible:
            continue
        lo, hi = points[i].min(0), points[i].max(0)
        grow = margin * (hi - lo)
        boxes[i] = np.concatenate([np.maximum(lo - grow, 0), np.minimum(hi + grow, size - 1)])
    return boxes


class TrackFrames(Dataset):
    """Sample ``i``: ``image (3, H, W)`` float in [0, 1], ``mask (H, W)`` bool, ``box (4,)``,
    ``expression (E,)``, ``pose (J, 3)``, ``translation (3,)``, ``index`` (the frame)."""

    def __init__(self, track: TrackFolder, margin: float = 0.1, frames: list[int] | None = None):
        self.track = track
        self.frames = list(range(len(track))) if frames is None else list(frames)
        self.boxes = face_boxes(track, margin)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        # the loop's sampler passes (i, seed); the rays are drawn in the step, not here
        i = item[0] if isinstance(item, tuple) else item
        index = self.frames[i]
        params = self.track.parameters(index)
        image = torch.from_numpy(np.array(self.track.frame(index))).permute(2, 0, 1).float() / 255
        return {
            "image": image,
            "mask": torch.from_numpy(self.track.mask(index) > 0.5),
            "box": torch.from_numpy(self.boxes[index]),
            "expression": params["expression"],
            "pose": params["pose"],
            "translation": params["translation"],
            "index": index,
        }


def sample_pixels(
    boxes: torch.Tensor, height: int, width: int, count: int, box_fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Integer pixel centres ``(B, count, 2)`` (x, y): ``count - round(box_fraction count)``
    uniform over the image, the rest uniform in each frame's box ``(B, 4)`` (x0, y0, x1, y1)."""
    b = boxes.shape[0]
    in_box = round(box_fraction * count)
    uniform = torch.stack(
        [
            torch.randint(0, width, (b, count - in_box), generator=generator),
            torch.randint(0, height, (b, count - in_box), generator=generator),
        ],
        dim=-1,
    ).float()
    u = torch.rand(b, in_box, 2, generator=generator)
    lo, hi = boxes[:, None, :2].floor(), boxes[:, None, 2:].floor()
    boxed = (lo + (u * (hi - lo + 1)).floor()).clamp(max=torch.tensor([width - 1, height - 1]))
    return torch.cat([uniform, boxed], dim=1)


def gather_pixels(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Values of ``image (B, C, H, W)`` at integer pixels ``(B, R, 2)`` -> ``(B, R, C)``."""
    b, c, h, w = image.shape
    flat = (pixels[..., 1].long() * w + pixels[..., 0].long()).to(image.device)
    return image.flatten(2).gather(2, flat[:, None].expand(b, c, -1)).transpose(1, 2)


__all__ = ["TrackFrames", "face_boxes", "gather_pixels", "sample_pixels"]
