"""Inference pipeline: animate a source image with a driving video, streaming.

Frames are decoded one by one, run through the model in small batches and encoded as
they come, so memory does not grow with the video's length. The source is encoded
once (keypoints and generator features) and reused for every batch.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import checkpoint as ckpt
from ..errors import ReanimateError
from ..geometry import normalized_shape
from ..io import fit_to_shape, frames_to_tensor, open_frames, open_writer, read_image, tensor_to_frames
from ..models import FirstOrderModel, ModelConfig, SourceEncoding, load_config
from ..motion import Keypoints, relative_motion
from ..visualize import draw_keypoints, mask_to_image, side_by_side

log = logging.getLogger(__name__)


@dataclass
class AnimationOptions:
    """How motion is transferred; names follow the reference demo's options."""

    relative: bool = True  # relative motion transfer (FOMM supp. A.3); False = absolute keypoints
    adapt_scale: bool = False  # scale relative motion by the keypoint hull-area ratio
    best_frame: int | None = None  # driving frame aligned with the source (relative reference)
    find_best_frame: bool = False  # search the driving frame whose keypoints best match the source's
    batch_size: int = 4
    pad: bool = False  # letterbox non-square inputs instead of centre-cropping
    visualize: bool = False  # source | driving+keypoints | result | occlusion side by side


@dataclass
class AnimationResult:
    output: Path
    frames: int
    seconds: float
    reference_frame: int
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class SourceState:
    """Everything computed once per source image."""

    image: torch.Tensor  # (1, C, H, W) in [0, 1]
    keypoints: Keypoints  # batch 1
    encoding: SourceEncoding


def select_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ReanimateError("--device cuda: no CUDA device is available (use --device cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ReanimateError(f"--device {device}: expected auto, cpu or cuda")
    return torch.device(device)


def batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class AnimationPipeline:
    """A FOMM-style model on a device, ready to animate.

    >>> pipe = AnimationPipeline.from_checkpoint("vox.safetensors")
    >>> pipe.animate("photo.png", "driving.mp4", "out.mp4")
    """

    def __init__(
        self,
        model: FirstOrderModel,
        device: str | torch.device = "auto",
        fp16: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ):
        """``fp16`` runs the networks under float16 autocast (CUDA only);
        ``autocast_dtype`` picks another autocast type, e.g. bfloat16 on CPU. Keypoints
        and motion geometry always stay in float32."""
        self.device = select_device(device) if isinstance(device, str) else device
        if fp16 and self.device.type != "cuda":
            raise ReanimateError("--fp16 needs a CUDA device")
        self.autocast_dtype = torch.float16 if fp16 else autocast_dtype
        self.model = model.eval().to(self.device)
        self.config: ModelConfig = model.config

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike,
        config: str | os.PathLike | ModelConfig | None = None,
        align_corners: bool | None = None,
        device: str = "auto",
        fp16: bool = False,
    ) -> "AnimationPipeline":
        """Load either checkpoint format; ``align_corners`` overrides the config's value."""
        if config is not None and not isinstance(config, ModelConfig):
            config = load_config(config)
        if align_corners is not None:
            if config is None:  # own format: take its embedded config, then override
                config = ckpt.read_own_config(checkpoint)
            config = config.with_align_corners(align_corners)
        return cls(ckpt.load(checkpoint, config), device=device, fp16=fp16)

    # -- model steps -----------------------------------------------------------------

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def prepare(self, frames: np.ndarray | list[np.ndarray], pad: bool = False) -> tuple[torch.Tensor, list[str]]:
        """uint8 frames of any size -> ``(N, C, H, W)`` at the model's resolution."""
        notes = []
        fitted = []
        for frame in frames:
            image, note = fit_to_shape(frame, self.config.image_size, mode="pad" if pad else "crop")
            fitted.append(image)
            if note:
                notes.append(note)
        return frames_to_tensor(np.stack(fitted)).to(self.device), notes

    @torch.inference_mode()
    def detect(self, images: torch.Tensor) -> Keypoints:
        """``(N, C, H, W)`` -> keypoints (float32)."""
        with self._autocast():
            kp = self.model.kp_detector(images)
        return kp.map(torch.Tensor.float)

    @torch.inference_mode()
    def encode_source(self, image: torch.Tensor) -> SourceState:
        with self._autocast():
            encoding = self.model.generator.encode(image)
        return SourceState(image, self.detect(image), encoding)

    @torch.inference_mode()
    def generate(
        self,
        source: SourceState,
        kp_driving: Keypoints,
        kp_initial: Keypoints | None,
        options: AnimationOptions,
    ):
        """Move the source to the driving keypoints (relative to ``kp_initial`` if given)."""
        if options.relative:
            kp_target = relative_motion(source.keypoints, kp_driving, kp_initial, options.adapt_scale)
        else:
            kp_target = kp_driving
        with self._autocast():
            return self.model.generator.decode(source.encoding, kp_target, source.keypoints)

    # -- whole job -------------------------------------------------------------------

    def find_best_frame(
        self, source: SourceState, driving_path, fps=None, pad=False, batch_size=8
    ) -> tuple[int, Keypoints]:
        """Driving frame whose normalised keypoint layout is closest to the source's
        (the reference demo does this with face landmarks; model keypoints work for any
        object class). Returns its index and its keypoints."""
        target = normalized_shape(source.keypoints.value.cpu())
        best, best_dist, best_kp, index = 0, float("inf"), None, 0
        with open_frames(driving_path, fps=fps) as reader:
            for batch in batched(reader, batch_size):
                images, _ = self.prepare(batch, pad)
                kp = self.detect(images)
                dist = ((normalized_shape(kp.value.cpu()) - target) ** 2).sum(dim=(1, 2))
                i = int(dist.argmin())
                if float(dist[i]) < best_dist:
                    best, best_dist, best_kp = index + i, float(dist[i]), kp[i]
                index += len(batch)
        return best, best_kp

    def animate(
        self,
        source_path: str | os.PathLike,
        driving_path: str | os.PathLike,
        output_path: str | os.PathLike,
        options: AnimationOptions | None = None,
        progress: bool = True,
        fps: float | None = None,
    ) -> AnimationResult:
        """Animate ``source_path`` with ``driving_path`` into ``output_path`` (video or PNG folder)."""
        options = options or AnimationOptions()
        if options.batch_size < 1:
            raise ReanimateError(f"--batch-size must be at least 1, got {options.batch_size}")
        start = time.perf_counter()
        notes: list[str] = []
        source_image = read_image(source_path)
        source_tensor, source_notes = self.prepare([source_image], options.pad)
        notes += [f"{Path(source_path).name}: {n}" for n in source_notes]
        source = self.encode_source(source_tensor)

        with open_frames(driving_path, fps=fps) as reader:
            # Fail on an unwritable output before decoding the whole video.
            with open_writer(output_path, reader.fps, audio_from=driving_path) as writer:
                reference, kp_initial = 0, None
                if options.find_best_frame:
                    reference, kp_initial = self.find_best_frame(
                        source, driving_path, fps, options.pad, options.batch_size
                    )
                    log.info("best matching driving frame: %d", reference)
                elif options.best_frame is not None:
                    reference = options.best_frame
                if options.relative and kp_initial is None:
                    initial_image, _ = self.prepare([reader.read_frame(reference)], options.pad)
                    kp_initial = self.detect(initial_image)
                # With relative motion every frame only depends on itself and the
                # reference frame, so animating "forward and backward from the best
                # frame" (reference demo) equals one pass in display order.
                done = 0
                bar = tqdm(total=reader.frame_count, unit="frame", disable=None if progress else True,
                           desc="animate", dynamic_ncols=True)
                with bar:
                    for batch in batched(reader, options.batch_size):
                        images, frame_notes = self.prepare(batch, options.pad)
                        if done == 0 and frame_notes:
                            notes.append(f"{Path(driving_path).name}: {frame_notes[0]}")
                        kp_driving = self.detect(images)
                        out = self.generate(source, kp_driving, kp_initial, options)
                        frames = tensor_to_frames(out.prediction)
                        if options.visualize:
                            frames = self._visualize(source, images, kp_driving, out, frames)
                        writer.write(frames)
                        done += len(batch)
                        bar.update(len(batch))
                if done == 0:
                    raise ReanimateError(f"{driving_path}: no frames")
        return AnimationResult(Path(output_path), done, time.perf_counter() - start, reference, notes)

    def _visualize(self, source: SourceState, images, kp_driving: Keypoints, out, frames) -> np.ndarray:
        size = self.config.image_size
        src = draw_keypoints(tensor_to_frames(source.image)[0], source.keypoints.value[0].cpu())
        drv = tensor_to_frames(images)
        panels = []
        for i, result in enumerate(frames):
            row = [src, draw_keypoints(drv[i], kp_driving.value[i].cpu()), result]
            if out.occlusion_map is not None:
                row.append(mask_to_image(out.occlusion_map[i], size))
            panels.append(side_by_side(row))
        return np.stack(panels)


def animate(
    source: str | os.PathLike,
    driving: str | os.PathLike,
    output: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike,
    config: str | os.PathLike | None = None,
    align_corners: bool | None = None,
    relative: bool = True,
    adapt_scale: bool = False,
    best_frame: int | None = None,
    find_best_frame: bool = False,
    device: str = "auto",
    batch_size: int = 4,
    fp16: bool = False,
    pad: bool = False,
    visualize: bool = False,
    progress: bool = True,
    fps: float | None = None,
) -> AnimationResult:
    """Animate ``source`` (an image) with ``driving`` (a video file or frame folder).

    ``output`` is a video file (.mp4, .mov, .mkv, ...; H.264, the driving fps and audio
    kept) or a folder of PNG frames. Written atomically: on any error nothing is left.
    """
    pipeline = AnimationPipeline.from_checkpoint(checkpoint, config, align_corners, device, fp16)
    options = AnimationOptions(
        relative=relative,
        adapt_scale=adapt_scale,
        best_frame=best_frame,
        find_best_frame=find_best_frame,
        batch_size=batch_size,
        pad=pad,
        visualize=visualize,
    )
    return pipeline.animate(source, driving, output, options, progress=progress, fps=fps)
