"""Training logs of rank 0: TensorBoard scalars and image grids, and ``log.jsonl``.

``RUN_DIR/tensorboard/``  event files (``tensorboard --logdir RUN_DIR``): every loss term
                          and the learning rates every ``log_freq`` steps; an image grid
                          every ``image_freq`` steps.
``RUN_DIR/log.jsonl``     one JSON line per logged step (step, epoch, losses, lrs), for
                          scripts and plots without TensorBoard.
``RUN_DIR/images/``       the image grids as PNG.

Image grid rows (FOMM's visualiser): source with its keypoints | driving with its
keypoints | source deformed by the dense motion | occlusion map | prediction.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..io import tensor_to_frames
from ..visualize import draw_keypoints, mask_to_image, side_by_side


def image_grid(
    source: torch.Tensor,
    driving: torch.Tensor,
    generated,
    max_items: int = 4,
) -> np.ndarray:
    """uint8 ``(rows * H, 5 * W, 3)``: one row per sample (see the module docstring)."""
    n = min(max_items, source.shape[0])
    size = tuple(source.shape[2:])
    out = generated.output
    sources = tensor_to_frames(source[:n].float())
    drivings = tensor_to_frames(driving[:n].float())
    predictions = tensor_to_frames(out.prediction[:n].detach().float())
    deformed = tensor_to_frames(out.deformed[:n].detach().float()) if out.deformed is not None else None
    kp_s = generated.kp_source.value[:n].detach().float().cpu()
    kp_d = generated.kp_driving.value[:n].detach().float().cpu()
    rows = []
    for i in range(n):
        panels = [draw_keypoints(sources[i], kp_s[i]), draw_keypoints(drivings[i], kp_d[i])]
        panels.append(deformed[i] if deformed is not None else np.zeros_like(sources[i]))
        if out.occlusion_map is not None:
            panels.append(mask_to_image(out.occlusion_map[i].detach().float().cpu(), size))
        else:
            panels.append(np.full_like(sources[i], 255))
        panels.append(predictions[i])
        rows.append(side_by_side(panels))
    return np.concatenate(rows, axis=0)


class TrainLogger:
    """No-op on ranks other than 0 (``enabled=False``)."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.writer = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.jsonl = open(self.run_dir / "log.jsonl", "a")

    def scalars(self, step: int, epoch: int, losses: dict[str, float], lrs: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for key, value in losses.items():
                self.writer.add_scalar(f"loss/{key}", value, step)
            for key, value in lrs.items():
                self.writer.add_scalar(f"lr/{key}", value, step)
        record = {"step": step, "epoch": epoch, "losses": losses, "lr": lrs}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()

    def images(self, step: int, grid: np.ndarray) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.add_image("samples", grid, step, dataformats="HWC")
        folder = self.run_dir / "images"
        folder.mkdir(exist_ok=True)
        Image.fromarray(grid).save(folder / f"step-{step:08d}.png")

    def close(self) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.close()
        self.jsonl.close()
