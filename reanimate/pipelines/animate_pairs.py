"""Batch animation of (source, driving) pairs of a dataset's test split (the official
``run.py --mode animate``).

The pairs come from a CSV with ``source`` and ``driving`` columns (the config's
``dataset_params.pairs_list`` or ``--pairs``), or are drawn at random with a seed when
there is none (``animate_params.num_pairs`` of them). The source is the first frame of
the source video; motion is transferred from the driving video as the config's
``animate_params.normalization_params`` say (relative motion, relative Jacobians,
adapt-scale), relative to the driving video's first frame. One video per pair,
``<driving>-<source>.mp4``.

Any family with a checkpoint animates through the Animator interface (with the face
landmarks of every frame when it asks for them); FOMM keeps its float-tensor steps
(:class:`~reanimate.animators.base.KeypointTensorSteps`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..animators.base import Animator, Requirements, Transfer
from ..data.frames import FramesDataset, frames_to_batch, iter_frames, read_frames
from ..data.pairs import PairedDataset
from ..io import open_writer, tensor_to_frames
from .animate import batched
from .reconstruct import FramePredictor, as_animator, config_document, frame_faces, keypoint_steps

log = logging.getLogger(__name__)


@dataclass
class PairsResult:
    outputs: list[Path]
    frames: int


def _normalization(animate_params: dict, requirements: Requirements) -> Transfer:
    params = animate_params.get("normalization_params") or {}
    return Transfer(
        relative=bool(params.get("use_relative_movement", True)),
        relative_jacobian=bool(params.get("use_relative_jacobian", True)),
        adapt_scale=bool(params.get("adapt_movement_scale", requirements.adapt_scale)),
    )


def animate_pairs(
    model: Animator | Any,
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
    """Animate every pair into ``output_dir``; returns the written paths. ``model``: an
    :class:`Animator` of any family, or a bare FOMM network (then run on ``device``)."""
    animator = as_animator(model, device)
    animate_params = config_document(animator).get("animate_params") or {}
    if num_pairs is None:
        num_pairs = int(animate_params.get("num_pairs", 50))
    pairs = PairedDataset(dataset, num_pairs, seed=seed)
    options = _normalization(animate_params, animator.requirements)
    steps = keypoint_steps(animator)
    on = steps.device if steps is not None else torch.device("cpu")
    frame_shape = (*animator.requirements.size, 3)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs, frames = [], 0
    bar = tqdm(
        total=len(pairs), unit="pair", desc="animate pairs", disable=None if progress else True, dynamic_ncols=True
    )
    with bar, contextlib.ExitStack() as resources:
        faces = frame_faces(animator, resources)
        for i in range(len(pairs)):
            pair = pairs[i]
            source = frames_to_batch(read_frames(pair["source_path"], [0], frame_shape)).to(on)
            predictor = FramePredictor(
                animator, source, options, faces, pair["source_path"], pair["driving_path"], background=False
            )
            target = out / f"{Path(pair['driving_name']).stem}-{Path(pair['source_name']).stem}{extension}"
            with open_writer(target, fps) as writer:
                for batch in batched(iter_frames(pair["driving_path"], frame_shape), batch_size):
                    images = frames_to_batch(batch).to(on)
                    prediction, _ = predictor(images)
                    writer.write(tensor_to_frames(prediction))
                    frames += images.shape[0]
            outputs.append(target)
            bar.update(1)
    return PairsResult(outputs, frames)


__all__ = ["PairsResult", "animate_pairs"]
