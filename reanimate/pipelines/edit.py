"""Head edits: the source's head turned, scaled, moved, or given another face's
expression (MMFA paper Sec. 4.3, motion attribute editing), as a still image or a
video sweeping from the source's head to the edited one.

Any animator that also implements :class:`~reanimate.animators.base.HeadControl` can
edit: the pipeline reads the source's head (:meth:`HeadControl.source_head`), changes it
relative to itself (angles add, the scale multiplies, the translation moves by
:attr:`HeadControl.translation_unit` per crop width, the expression blends towards
:meth:`HeadControl.expression_from` another image) and renders it
(:meth:`HeadControl.render_heads`); cropping and paste-back are the animate pipeline's.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..animators.base import Animator, HeadControl, Source
from ..animators.registry import build_animator
from ..errors import InputError, OutputError, ReanimateError
from ..faces import feather_mask
from ..io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, open_writer, read_image, write_image
from ..motion import HeadMotion
from .animate import PASTE_FEATHER, AnimationOptions, AnimationPipeline, _Plan, batched, paste_crops

log = logging.getLogger(__name__)


#: PIL's keyword arguments per still-image suffix (JPEG: near-lossless quality)
@dataclass
class EditOptions:
    """A head edit, relative to the source's own head.

    Angles are changes in degrees, signed as :class:`reanimate.faces.HeadPose` (``yaw >
    0`` turns the face towards the image's right, ``pitch > 0`` looks up, ``roll > 0``
    tilts clockwise); ``scale`` multiplies the head's size; ``translate`` moves it by
    fractions of the face crop's width (x right, y down); ``expression_from`` takes the
    expression of another image's face, blended from the source's (``expression_scale``
    0) to the other's (1) and beyond. ``frames`` > 1 writes a video of that many frames
    sweeping linearly from the source's head to the edited one.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 1.0
    translate: tuple[float, float] = (0.0, 0.0)
    expression_from: str | os.PathLike | None = None
    expression_scale: float = 1.0
    frames: int = 1
    fps: float = 25.0
    increase: float | None = None  # crop margin around the face, per side (None: the model's default)
    face_index: int | None = None  # which source face (0 = largest)
    batch_size: int = 4


@dataclass
class EditResult:
    output: Path
    frames: int
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class FaceSource:
    """A source image as a head-rendering job holds it: the full ``image`` ``(H, W, 3)``,
    the animator's encoded ``source`` of its face crop, the crop ``box`` in the image
    (None without a crop) and the crop ``plan`` (other images are cropped the same way)."""

    image: np.ndarray
    source: Source
    box: np.ndarray | None
    plan: _Plan


class HeadPipeline:
    """The part every job rendering a source's heads shares (``edit`` here; canonical
    faces and expression interpolation in :mod:`reanimate.pipelines.expressions`): the
    animate pipeline's face crop, other images cropped like the source, rendering heads
    in batches, paste-back, and writing an image or a video atomically."""

    def __init__(self, animator: Animator):
        self.animator = animator
        self.frames = AnimationPipeline(animator)  # its face crop and paste-back
        self._paste_mask: np.ndarray | None = None

    def open_source(
        self,
        path: str | os.PathLike,
        increase: float | None = None,
        face_index: int | None = None,
        notes: list[str] | None = None,
    ) -> FaceSource:
        """Read ``path``, crop its face as ``animate`` would (``increase``: margin per
        side, None: the model's; ``face_index``: None, the largest) and encode it."""
        notes = [] if notes is None else notes
        crop_options = AnimationOptions(increase=increase, face_index=face_index)
        plan = self.frames.plan(crop_options)
        image = read_image(path)
        crop, box, landmarks = self.frames.face_crop(image, path, crop_options, plan, notes)
        return FaceSource(image, self.animator.encode_source(crop, landmarks), box, plan)

    def crop_like(
        self, face: FaceSource, path: str | os.PathLike, notes: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Another image's largest face cropped like ``face``'s source: ``(H, W, 3)`` at
        the animator's size and its landmarks in the crop's pixels (None when no face was
        looked for)."""
        options = AnimationOptions(increase=face.plan.increase)
        notes = [] if notes is None else notes
        crop, _, landmarks = self.frames.face_crop(read_image(path), path, options, face.plan, notes)
        return crop, landmarks

    def render(self, face: FaceSource, heads: HeadMotion, index: list[int]) -> np.ndarray:
        """The heads ``index`` of ``heads`` rendered (``render_heads``) and pasted back
        into the full source for face crops: ``(len(index), H, W, 3)`` uint8."""
        frames = self.animator.render_heads(face.source, _select(heads, index)).frames
        if not face.plan.paste:
            return frames
        if self._paste_mask is None:
            self._paste_mask = feather_mask(self.frames.size[0], PASTE_FEATHER)
        return paste_crops(face.image.copy(), face.image, frames, face.box, self._paste_mask)

    def write(
        self,
        output: Path,
        face: FaceSource,
        heads: HeadMotion,
        fps: float = 25.0,
        batch_size: int = 4,
        progress: bool = True,
        desc: str = "edit",
    ) -> int:
        """Render every head of ``heads`` (batch N) into ``output``: an image file for one
        head, else a video (or frames folder) at ``fps``, streamed in batches with a
        progress bar. Atomic: on any error nothing is left. Returns N."""
        from tqdm.auto import tqdm

        count = heads.scale.shape[0]
        if count == 1:
            write_image(output, self.render(face, heads, [0])[0])
            return 1
        bar = tqdm(total=count, unit="frame", disable=None if progress else True, desc=desc)
        with open_writer(output, fps) as writer, bar:
            for batch in batched(range(count), batch_size):
                writer.write(self.render(face, heads, batch))
                bar.update(len(batch))
        return count


class EditPipeline(HeadPipeline):
    """An animator with :class:`HeadControl`, ready to edit files.

    >>> EditPipeline(build_animator()).edit("photo.png", "turned.png", EditOptions(yaw=15))
    """

    def __init__(self, animator: Animator):
        if not isinstance(animator, HeadControl):
            raise ReanimateError(
                f"the {animator.family} model cannot pose a head (no head control); use the default animator "
                "(--model landmarks) or a face model that can: landmarks, mmfa"
            )
        super().__init__(animator)

    # -- heads -----------------------------------------------------------------------

    def target_head(self, head: HeadMotion, options: EditOptions, expression: torch.Tensor | None = None) -> HeadMotion:
        """``head`` (batch 1) edited by ``options``; ``expression``: another face's
        (:meth:`HeadControl.expression_from`), blended by ``options.expression_scale``."""
        turn = head.rotation.new_tensor([[options.yaw, options.pitch, options.roll]])
        shift = torch.zeros_like(head.translation)
        shift[:, :2] = shift.new_tensor(options.translate) * self.animator.translation_unit
        changed = {
            "rotation": head.rotation + turn,
            "scale": head.scale * options.scale,
            "translation": head.translation + shift,
        }
        if expression is not None:
            expression = expression.to(head.expression)
            changed["expression"] = head.expression + options.expression_scale * (expression - head.expression)
        return head.with_(**changed)

    def check_turn(self, options: EditOptions) -> str | None:
        """One line when the turn asked for goes beyond what the model renders
        plausibly (:attr:`HeadControl.plausible_turn`), else None."""
        limits = self.animator.plausible_turn
        if limits is None:
            return None
        asked = {"yaw": options.yaw, "pitch": options.pitch, "roll": options.roll}
        beyond = [f"--{name} {value:g}" for (name, value), limit in zip(asked.items(), limits) if abs(value) > limit]
        if not beyond:
            return None
        ranges = ", ".join(f"{name} ±{limit:g}°" for name, limit in zip(asked, limits))
        return (
            f"{' '.join(beyond)}: beyond what the {self.animator.family} model turns a head plausibly "
            f"({ranges}); expect stretched skin"
        )

    # -- whole job -------------------------------------------------------------------

    def edit(
        self,
        source_path: str | os.PathLike,
        output_path: str | os.PathLike,
        options: EditOptions | None = None,
        progress: bool = True,
    ) -> EditResult:
        """Edit ``source_path``'s head into ``output_path``: an image (.png, .jpg, …) for
        one frame, a video (.mp4, …) for ``options.frames`` > 1. Written atomically: on
        any error nothing is left."""
        options = options or EditOptions()
        output = Path(output_path)
        check_edit(options, output)
        start = time.perf_counter()
        notes: list[str] = list(self.animator.notes)
        if warning := self.check_turn(options):
            log.warning(warning)
        face = self.open_source(source_path, options.increase, options.face_index, notes)
        head = self.animator.source_head(face.source)
        expression = None
        if options.expression_from is not None:
            crop, landmarks = self.crop_like(face, options.expression_from, notes)
            expression = self.animator.expression_from(face.source, crop, landmarks)
        heads = sweep(head, self.target_head(head, options, expression), options.frames)
        frames = self.write(output, face, heads, options.fps, options.batch_size, progress, desc="edit")
        return EditResult(output, frames, time.perf_counter() - start, notes)


def sweep(start: HeadMotion, end: HeadMotion, count: int) -> HeadMotion:
    """``count`` heads from ``start`` to ``end`` (both batch 1), every attribute
    interpolated linearly (angles as angles); one head: ``end``."""
    like = start.scale
    t = torch.linspace(0.0, 1.0, count, dtype=like.dtype, device=like.device) if count > 1 else like.new_ones(1)

    def lerp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = t.view(-1, *([1] * (a.dim() - 1)))
        return a + w * (b - a)

    canonical = start.canonical.expand(count, -1, -1)
    moved = [f.name for f in fields(start) if f.name != "canonical"]
    return HeadMotion(canonical, **{name: lerp(getattr(start, name), getattr(end, name)) for name in moved})


def _select(heads: HeadMotion, index: list[int]) -> HeadMotion:
    return HeadMotion(*(getattr(heads, f.name)[index] for f in fields(heads)))


def check_edit(options: EditOptions, output: Path) -> None:
    """One-line errors for values and output paths an edit cannot use (before any work)."""
    numbers = {
        "--yaw": options.yaw,
        "--pitch": options.pitch,
        "--roll": options.roll,
        "--scale": options.scale,
        "--expression-scale": options.expression_scale,
        "--fps": options.fps,
    }
    for name, value in numbers.items():
        if not math.isfinite(value):
            raise ReanimateError(f"{name} must be a finite number, got {value}")
    if len(options.translate) != 2 or not all(math.isfinite(v) for v in options.translate):
        raise ReanimateError(f"--translate must be two finite numbers X,Y, got {options.translate}")
    if options.scale <= 0:
        raise ReanimateError(f"--scale must be greater than 0, got {options.scale:g}")
    if options.frames < 1:
        raise ReanimateError(f"--frames must be at least 1, got {options.frames}")
    if options.fps <= 0:
        raise ReanimateError(f"--fps must be greater than 0, got {options.fps:g}")
    if options.batch_size < 1:
        raise ReanimateError(f"--batch-size must be at least 1, got {options.batch_size}")
    if options.increase is not None and options.increase < 0:
        raise ReanimateError(f"--increase must be at least 0, got {options.increase}")
    suffix = output.suffix.lower()
    if output.is_dir():
        raise OutputError(output, "is a folder; the edit is written to an image or video file")
    if options.frames == 1 and suffix not in IMAGE_EXTENSIONS:
        kinds = "video" if suffix in VIDEO_EXTENSIONS else "output"
        raise OutputError(output, f"a {kinds} file needs --frames N (N > 1); one edited frame is an image (.png, .jpg)")
    if options.frames > 1 and suffix not in VIDEO_EXTENSIONS:
        raise OutputError(output, f"--frames {options.frames} writes a video: use .mp4 (or .mov, .mkv, .webm, .gif)")
    if not output.parent.is_dir():
        raise OutputError(output, f"output folder {output.parent} does not exist")
    if options.expression_from is not None and not Path(options.expression_from).is_file():
        raise InputError(options.expression_from, "--expression-from: no such image file")


def edit(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    model: str = "auto",
    config: str | os.PathLike | None = None,
    align_corners: bool | None = None,
    device: str = "auto",
    fp16: bool = False,
    progress: bool = True,
    **option_values,
) -> EditResult:
    """Edit the head of the face in ``source`` (see :class:`EditOptions` for the keyword
    arguments) with the model ``reanimate animate`` would use
    (:func:`reanimate.animators.registry.build_animator`); ``output`` is an image, or a
    video for ``frames`` > 1."""
    unknown = set(option_values) - {f.name for f in fields(EditOptions)}
    if unknown:
        raise TypeError(f"unknown edit options: {sorted(unknown)}")
    options = EditOptions(**option_values)
    check_edit(options, Path(output))
    pipeline = EditPipeline(build_animator(checkpoint, model, config, align_corners, device, fp16))
    return pipeline.edit(source, output, options, progress=progress)
