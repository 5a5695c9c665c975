"""Batch animation of (source, driving) pairs of a dataset's test split (the official
``run.py --mode animate``).

The pairs come from a CSV with ``source`` and ``driving`` columns (the config's
``dataset_params.pairs_list`` or ``--pairs``), or are drawn at random with a seed when
there is none (``animate_params.num_pairs`` of them). The source is the first frame of
the source video; motion is transferred from the driving video as the config's
``animate_params.normalization_params`` say (relative motion, relative Jacobians,
adapt-scale). One video per pair, ``<driving>-<source>.mp4``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..animators.base import Transfer
from ..animators.fomm import FommAnimator
from ..data.frames import FramesDataset, frames_to_batch, iter_frames, read_frames
from ..data.pairs import PairedDataset
from ..io import open_writer, tensor_to_frames
from ..models import FirstOrderModel
from .animate import batched

log = logging.getLogger(__name__)


@dataclass
class PairsResult:
    outputs: list[Path]
    frames: int


def _normalization(model: FirstOrderModel) -> Transfer:
    params = (model.config.raw.get("animate_params") or {}).get("normalization_params") or {}
    return Transfer(
        relative=bool(params.get("use_relative_movement", True)),
        relative_jacobian=bool(params.get("use_relative_jacobian", True)),
        adapt_scale=bool(params.get("adapt_movement_scale", False)),
    )


def animate_pairs(
    model: FirstOrderModel,
    dataset: FramesDataset,
    output_dir: str | os.PathLike,
    num_pairs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 8,
    fps: float = 25.0,
    extension: str = ".mp4",
    progress: bool = True,
) -> PairsResult:
    """Animate every pair into ``output_dir``; returns the written paths."""
    if num_pairs is None:
        num_pairs = int((model.config.raw.get("animate_params") or {}).get("num_pairs", 50))
    pairs = PairedDataset(dataset, num_pairs, seed=seed)
    pipeline = FommAnimator(model, device=device)
    options = _normalization(model)
    frame_shape = tuple(model.config.frame_shape)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs, frames = [], 0
    bar = tqdm(
        total=len(pairs), unit="pair", desc="animate pairs", disable=None if progress else True, dynamic_ncols=True
    )
    with bar:
        for i in range(len(pairs)):
            pair = pairs[i]
            source = frames_to_batch(read_frames(pair["source_path"], [0], frame_shape))
            state = pipeline.encode(source.to(pipeline.device))
            target = out / f"{Path(pair['driving_name']).stem}-{Path(pair['source_name']).stem}{extension}"
            kp_initial = None
            with open_writer(target, fps) as writer:
                for batch in batched(iter_frames(pair["driving_path"], frame_shape), batch_size):
                    images = frames_to_batch(batch).to(pipeline.device)
                    kp_driving = pipeline.detect(images)
                    if kp_initial is None:
                        kp_initial = kp_driving[:1]
                    result = pipeline.generate(state, kp_driving, kp_initial, options)
                    writer.write(tensor_to_frames(result.prediction.float()))
                    frames += images.shape[0]
            outputs.append(target)
            bar.update(1)
    return PairsResult(outputs, frames)


__all__ = ["PairsResult", "animate_pairs"]
