"""Inference pipeline: animate a source image with a driving video, streaming.

Frames are decoded one by one, run through the animator in small batches and encoded
as they come, so memory does not grow with the video's length. The source is encoded
once and reused for every batch.

The pipeline reads, crops, batches, smooths, pastes back and writes; what it does for a
model depends only on the :class:`~reanimate.animators.base.Requirements` the model's
:class:`~reanimate.animators.base.Animator` declares, never on the model's type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..animators.base import Animator, DrivingBatch, Motion, Requirements, Source, Transfer
from ..animators.registry import build_animator
from ..errors import InputError, ReanimateError
from ..faces import Face, FaceMesh, best_frame_index, crop_face, feather_mask, paste_back_into, square_box
from ..geometry import normalized_shape
from ..io import fit_to_shape, open_frames, open_writer, read_image
from ..motion import HEAD_ATTRIBUTES
from ..smoothing import JitterMeter, make_smoother
from ..visualize import visualize_batch

log = logging.getLogger(__name__)

PASTE_FEATHER = 0.1  # fraction of the crop over which paste-back fades out
MAX_SOURCE_FACES = 5
#: what a user who asked for head control from a model without it can use instead
HEAD_CONTROL_HINT = "use the default or a face model that can: landmarks, mmfa"


@dataclass
class AnimationOptions:
    """How motion is transferred and the output made; names follow the reference demo's options."""

    relative: bool = True  # relative motion transfer (FOMM supp. A.3); False = absolute keypoints
    adapt_scale: bool | None = None  # scale relative motion by the keypoint hull-area ratio (None: model's default)
    relative_jacobian: bool = True  # with relative motion, also transfer the Jacobians relatively (FOMM Eq. 14)
    best_frame: int | None = None  # driving frame aligned with the source (relative reference)
    find_best_frame: bool = False  # search the driving frame whose keypoints best match the source's
    batch_size: int = 4
    pad: bool = False  # letterbox non-square inputs instead of centre-cropping
    visualize: bool = False  # source | driving+keypoints | result | occlusion side by side
    crop: str = "auto"  # "auto": crop the face for face models; "none": use the whole frames
    paste_back: bool | None = None  # blend the animated crop into the full source (default: when cropping)
    increase: float | None = None  # crop margin around the face, per side (None: model's default)
    face_index: int | None = None  # which source face (0 = largest); None: the largest, with a note
    smooth: str | None = None  # "one-euro" or "kalman" filtering of driving keypoints
    max_missing: float = 0.5  # error when more than this fraction of driving frames has no face
    overwrite: bool = False  # replace a non-empty frames folder at the output path
    # which head attributes to take from the driver (MMFA Sec. 4.3): any of
    # motion.HEAD_ATTRIBUTES; anything but all needs a model that separates them
    transfer: tuple[str, ...] = HEAD_ATTRIBUTES


@dataclass
class AnimationResult:
    output: Path
    frames: int
    seconds: float
    reference_frame: int
    notes: list[str] = field(default_factory=list)
    jitter: dict[str, float] = field(default_factory=dict)  # mean keypoint acceleration, raw / smoothed
    missing_faces: int = 0  # driving frames without a face (their landmarks were held)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def frames_per_second(self) -> float:
        """Processing speed (frames animated per second of wall time), not the video's rate."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    fps = frames_per_second  # older name of the same figure


@dataclass
class _Plan:
    """What one animation does, from the options and the animator's requirements."""

    crop: bool  # crop the face from the source and the driving frames
    paste: bool  # blend the animated crop back into the full source
    increase: float
    driving_box: bool  # the driving frames need the reference frame's face box
    transfer: Transfer


def batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class AnimationPipeline:
    """An :class:`~reanimate.animators.base.Animator`, ready to animate files.

    Faces are cropped from the source, animated and pasted back into the full-size
    source when the animator is a face model (``AnimationOptions.crop``).

    >>> pipe = AnimationPipeline.from_checkpoint("vox.safetensors")
    >>> pipe.animate("photo.png", "driving.mp4", "out.mp4")
    >>> AnimationPipeline(build_animator()).animate("photo.png", "driving.mp4", "out.mp4")
    """

    def __init__(self, animator: Animator):
        self.animator = animator

    @classmethod
    def from_checkpoint(
        cls, checkpoint, config=None, align_corners: bool | None = None, device: str = "auto", fp16: bool = False
    ) -> AnimationPipeline:
        """The family the checkpoint names, loaded; ``align_corners`` overrides the config's value."""
        return cls(build_animator(checkpoint, "auto", config, align_corners, device, fp16))

    @property
    def requirements(self) -> Requirements:
        return self.animator.requirements

    @property
    def size(self) -> tuple[int, int]:
        return self.requirements.size

    def plan(self, options: AnimationOptions) -> _Plan:
        req = self.requirements
        if req.relative_only and not options.relative:
            raise ReanimateError(f"the {self.animator.family} model only transfers relative motion (drop --absolute)")
        crop = options.crop == "auto" and req.face
        paste = crop and (options.paste_back is None or options.paste_back)
        increase = req.crop_increase if options.increase is None else options.increase
        adapt = req.adapt_scale if options.adapt_scale is None else options.adapt_scale
        attributes = head_attributes(options.transfer)
        if set(attributes) != set(HEAD_ATTRIBUTES) and not set(attributes) <= set(req.head_attributes):
            missing = (
                [a for a in attributes if a not in req.head_attributes] if req.head_attributes else HEAD_ATTRIBUTES
            )
            raise ReanimateError(
                f"--transfer: the {self.animator.family} model cannot separate {', '.join(missing)}; {HEAD_CONTROL_HINT}"
            )
        transfer = Transfer(options.relative, adapt, options.relative_jacobian, attributes)
        return _Plan(crop, paste, increase, crop or req.driving_landmarks, transfer)

    # -- source ----------------------------------------------------------------------

    def _source_face(self, image: np.ndarray, path, options: AnimationOptions, notes: list[str]) -> Face:
        with FaceMesh(max_faces=MAX_SOURCE_FACES) as mesh:
            faces = mesh.detect(image)
        if not faces:
            hint = (
                "the default animator needs a face; give --checkpoint for other objects"
                if self.requirements.driving_landmarks
                else "use --crop none for images without a face"
            )
            raise InputError(path, f"no face found ({hint})")
        index = options.face_index
        if index is not None and not 0 <= index < len(faces):
            raise InputError(path, f"--face-index {index}: found {len(faces)} face(s), indices 0..{len(faces) - 1}")
        if index is None and len(faces) > 1:
            notes.append(f"{Path(path).name}: {len(faces)} faces found; animating the largest (--face-index to choose)")
        return faces[index or 0]

    def _encode_source(
        self, image: np.ndarray, path, options: AnimationOptions, plan: _Plan, notes: list[str]
    ) -> tuple[Source, np.ndarray | None, np.ndarray | None]:
        """The source state, the crop box in the source image (None without a crop) and
        the face landmarks in the source crop's pixels (None when no face was looked for)."""
        crop, box, landmarks = self.face_crop(image, path, options, plan, notes)
        return self.animator.encode_source(crop, landmarks), box, landmarks

    def face_crop(
        self, image: np.ndarray, path, options: AnimationOptions, plan: _Plan, notes: list[str]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """What the animator sees of an image: ``(H, W, 3)`` at its size (the face's crop,
        or the whole image fitted), the crop box in the image (None without a crop) and
        the face landmarks in the crop's pixels (None when no face was looked for)."""
        size = self.size
        landmarks = None
        box = None
        if plan.crop:
            face = self._source_face(image, path, options, notes)
            box = square_box(face.box, image.shape[:2], plan.increase)
            crop = crop_face(image, box, size[0])
            landmarks = to_crop_pixels(face.landmarks, box, size[0])
        else:
            crop, note = fit_to_shape(image, size, mode="pad" if options.pad else "crop")
            if note:
                notes.append(f"{Path(path).name}: {note}")
            if self.requirements.driving_landmarks:
                landmarks = self._source_face(crop, path, options, notes).landmarks
        return crop, box, landmarks

    # -- reference frame -------------------------------------------------------------

    def find_best_frame(
        self, source: Source, driving_path, fps=None, pad: bool = False, batch_size: int = 8
    ) -> tuple[int, Motion]:
        """Driving frame whose normalised keypoint layout is closest to the source's
        (the animator's keypoints of whole frames; for faces :meth:`animate` matches face
        landmarks instead, as the reference demo). Returns its index and its motion."""
        target = normalized_shape(source.keypoints.value.cpu())
        best, best_dist, best_motion, index = 0, float("inf"), None, 0
        with open_frames(driving_path, fps=fps) as reader:
            for batch in batched(reader, batch_size):
                motion = self.animator.estimate(DrivingBatch(batch, self.size, pad=pad))
                dist = ((normalized_shape(motion.keypoints.value.cpu()) - target) ** 2).sum(dim=(1, 2))
                i = int(dist.argmin())
                if float(dist[i]) < best_dist:
                    best, best_dist, best_motion = index + i, float(dist[i]), motion[i]
                index += len(batch)
        return best, best_motion

    def _best_face_frame(self, source_landmarks: np.ndarray, driving_path, fps) -> int:
        """The reference demo's matcher: the driving frame whose normalised face
        landmarks are closest to the source's."""
        with open_frames(driving_path, fps=fps) as reader, FaceMesh() as mesh:
            sequence = (f[0].landmarks[:, :2] if (f := mesh.detect(frame)) else None for frame in reader)
            index, _ = best_frame_index(source_landmarks[:, :2], sequence)
        if index is None:
            raise InputError(driving_path, "no face in any frame")
        return index

    def _reference(
        self,
        source: Source,
        source_landmarks: np.ndarray | None,
        reader,
        driving_path,
        fps,
        options: AnimationOptions,
        plan: _Plan,
        tracker: _DrivingFaces | None,
    ) -> tuple[int, np.ndarray | None, Motion | None]:
        """The driving frame aligned with the source: its index, the driving crop box and
        its motion (None for absolute transfer)."""
        reference, motion = 0, None
        if options.find_best_frame:
            if plan.driving_box:
                reference = self._best_face_frame(source_landmarks, driving_path, fps)
            else:
                reference, motion = self.find_best_frame(source, driving_path, fps, options.pad, options.batch_size)
            log.info("best matching driving frame: %d", reference)
        elif options.best_frame is not None:
            reference = options.best_frame
        if not plan.driving_box and (motion is not None or not options.relative):
            return reference, None, motion
        frame = reader.read_frame(reference)
        box = landmarks = None
        if plan.driving_box:
            with FaceMesh(video=False) if tracker is None else contextlib.nullcontext(tracker.mesh) as mesh:
                found = mesh.detect(frame)
            if not found:
                raise InputError(driving_path, f"no face in frame {reference} (the reference frame)")
            box = square_box(found[0].box, frame.shape[:2], plan.increase)
            landmarks = found[0].landmarks
            if tracker is not None:
                tracker.last = landmarks
        if options.relative:
            batch = DrivingBatch(
                [frame],
                self.size,
                box if plan.driving_box else None,
                None if landmarks is None or tracker is None else landmarks[None],
                options.pad,
            )
            motion = self.animator.estimate(batch)
        return reference, box, motion

    # -- whole job -------------------------------------------------------------------

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
        from tqdm.auto import tqdm

        options = options or AnimationOptions()
        _check_options(options)
        plan = self.plan(options)
        start = time.perf_counter()
        timer = _StageTimer()
        notes: list[str] = list(self.animator.notes)
        source_image = read_image(source_path)
        source, box, source_landmarks = self._encode_source(source_image, source_path, options, plan, notes)
        mask = feather_mask(self.size[0], PASTE_FEATHER) if plan.paste else None
        per_frame_landmarks = self.requirements.driving_landmarks

        with open_frames(driving_path, fps=fps) as reader:
            # Fail on an unwritable output before decoding the whole video.
            with (
                open_writer(output_path, reader.fps, audio_from=driving_path, overwrite=options.overwrite) as writer,
                contextlib.ExitStack() as resources,
            ):
                tracker = resources.enter_context(_DrivingFaces()) if per_frame_landmarks else None
                reference, drive_box, initial = self._reference(
                    source, source_landmarks, reader, driving_path, fps, options, plan, tracker
                )
                smoother = make_smoother(options.smooth, reader.fps)
                raw_jitter, jitter = JitterMeter(), JitterMeter()
                canvas = source_image.copy() if plan.paste else None
                # With relative motion every frame only depends on itself and the
                # reference frame, so animating "forward and backward from the best
                # frame" (reference demo) equals one pass in display order.
                done = 0
                bar = tqdm(
                    total=reader.frame_count,
                    unit="frame",
                    disable=None if progress else True,
                    desc="animate",
                    dynamic_ncols=True,
                )
                with bar:
                    for frames in batched(timer.iterate("decode", reader), options.batch_size):
                        landmarks = None
                        if tracker is not None:
                            with timer("landmarks"):
                                landmarks = tracker.update(frames)
                        with timer("model"):
                            batch = DrivingBatch(
                                frames, self.size, drive_box if plan.driving_box else None, landmarks, options.pad
                            )
                            motion = self.animator.estimate(batch)
                            raw_jitter.update(motion.keypoints.value)
                            if smoother is not None:
                                motion = self.animator.with_keypoints(motion, smoother(motion.keypoints))
                            jitter.update(motion.keypoints.value)
                            rendered = self.animator.render(source, motion, initial, plan.transfer)
                            if done == 0 and batch.notes:
                                notes.append(f"{Path(driving_path).name}: {batch.notes[0]}")
                        with timer("paste"):
                            if plan.paste:
                                out = paste_crops(canvas, source_image, rendered.frames, box, mask)
                            else:
                                out = rendered.frames
                            if options.visualize:
                                out = visualize_batch(source, batch, motion, rendered, out, self.size)
                        with timer("encode"):
                            writer.write(out)
                        done += len(frames)
                        bar.update(len(frames))
                if done == 0:
                    raise ReanimateError(f"{driving_path}: no frames")
                missing = tracker.missing if tracker is not None else 0
                if tracker is not None and missing > options.max_missing * done:
                    raise InputError(
                        driving_path,
                        f"no face in {missing} of {done} frames (first at frame "
                        f"{tracker.first_missing}); at most {options.max_missing:.0%} may miss",
                    )
                if missing:
                    notes.append(
                        f"{Path(driving_path).name}: no face in {missing} of {done} frames "
                        f"(first at frame {tracker.first_missing}); the last landmarks were held"
                    )
        stats = (
            {"raw": raw_jitter.score, "smoothed": jitter.score} if smoother is not None else {"raw": raw_jitter.score}
        )
        return AnimationResult(
            Path(output_path), done, time.perf_counter() - start, reference, notes, stats, missing, timer.seconds
        )


def head_attributes(names) -> tuple[str, ...]:
    """``names`` (head attribute names, or one comma-separated string of them) in the
    order of :data:`~reanimate.motion.HEAD_ATTRIBUTES`, without repeats; unknown or no
    names are a one-line error."""
    if isinstance(names, str):
        names = names.split(",")
    names = tuple(n.strip() for n in names if n.strip())
    unknown = [n for n in names if n not in HEAD_ATTRIBUTES]
    if unknown or not names:
        given = ",".join(names)
        raise ReanimateError(f"--transfer {given!r}: expected a comma-separated subset of {','.join(HEAD_ATTRIBUTES)}")
    return tuple(a for a in HEAD_ATTRIBUTES if a in names)


def _check_options(options: AnimationOptions) -> None:
    head_attributes(options.transfer)
    if options.batch_size < 1:
        raise ReanimateError(f"--batch-size must be at least 1, got {options.batch_size}")
    if options.crop not in ("auto", "none"):
        raise ReanimateError(f"--crop {options.crop}: expected auto or none")
    if options.increase is not None and options.increase < 0:
        raise ReanimateError(f"--increase must be at least 0, got {options.increase}")
    if not 0 <= options.max_missing <= 1:
        raise ReanimateError(f"--max-missing must be between 0 and 1, got {options.max_missing}")


def paste_crops(canvas: np.ndarray, source: np.ndarray, crops: np.ndarray, box, mask) -> np.ndarray:
    """Full-size frames ``(N, H, W, 3)``: the source with each animated crop of ``crops``
    ``(N, S, S, 3)`` blended in at ``box`` (``mask``: :func:`~reanimate.faces.feather_mask`
    of :data:`PASTE_FEATHER`). ``canvas`` is a reused buffer, a copy of ``source``; only
    the box region is restored and blended."""
    x0, y0, x1, y1 = (int(v) for v in box)
    out = []
    for crop in crops:
        canvas[y0:y1, x0:x1] = source[y0:y1, x0:x1]
        out.append(paste_back_into(canvas, crop, box, mask).copy())
    return np.stack(out)


def to_crop_pixels(landmarks: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Landmarks in image pixels -> pixels of the ``size``-square crop of ``box``."""
    # crop_face resizes with pixel centres at +0.5 (OpenCV's convention).
    scale = size / float(box[2] - box[0])
    out = np.asarray(landmarks, np.float64).copy()
    out[:, :2] = (out[:, :2] - box[:2] + 0.5) * scale - 0.5
    out[:, 2] *= scale
    return out


class _DrivingFaces:
    """Face landmarks of consecutive driving frames; a frame without a face keeps the
    last landmarks seen (set :attr:`last` to the reference frame's first), and is
    counted. A context manager: it owns a MediaPipe graph."""

    def __init__(self):
        # Every frame is detected afresh (not MediaPipe's tracking mode), like the
        # reference frame: tracking gives slightly different landmarks for the same
        # image, which relative motion would turn into spurious movement.
        self.mesh = FaceMesh(video=False)
        self.last: np.ndarray | None = None
        self.missing = 0
        self.first_missing: int | None = None
        self.seen = 0

    def update(self, frames) -> np.ndarray:
        out = []
        for frame in frames:
            faces = self.mesh.detect(frame)
            if faces:
                self.last = faces[0].landmarks
            else:
                self.missing += 1
                if self.first_missing is None:
                    self.first_missing = self.seen
            self.seen += 1
            out.append(self.last)
        return np.stack(out)

    def __enter__(self) -> _DrivingFaces:
        return self

    def __exit__(self, *exc_info) -> None:
        self.mesh.close()


class _StageTimer:
    """Wall time per pipeline stage (for the speed benchmark and ``--stats``)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

    def iterate(self, stage: str, items):
        iterator = iter(items)
        while True:
            with self(stage):
                item = next(iterator, _END)
            if item is _END:
                return
            yield item


_END = object()


def animate(
    source: str | os.PathLike,
    driving: str | os.PathLike,
    output: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    model: str = "auto",
    config: str | os.PathLike | None = None,
    align_corners: bool | None = None,
    device: str = "auto",
    fp16: bool = False,
    progress: bool = True,
    fps: float | None = None,
    **option_values,
) -> AnimationResult:
    """Animate ``source`` (an image) with ``driving`` (a video file or frame folder).

    ``model``: ``"auto"`` (the family a checkpoint names, else the zero-shot landmark
    animator) or a family name (:func:`reanimate.animators.registry.families`). Further
    keyword arguments are :class:`AnimationOptions` fields. ``output`` is a video file
    (.mp4, .mov, .mkv, ...; H.264, the driving fps and audio kept) or a folder of PNG
    frames. Written atomically: on any error nothing is left.
    """
    unknown = set(option_values) - {f.name for f in dataclasses.fields(AnimationOptions)}
    if unknown:
        raise TypeError(f"unknown animation options: {sorted(unknown)}")
    pipeline = build_pipeline(checkpoint, model, config, align_corners, device, fp16)
    options = AnimationOptions(**option_values)
    return pipeline.animate(source, driving, output, options, progress=progress, fps=fps)


def build_pipeline(
    checkpoint: str | os.PathLike | None = None,
    model: str = "auto",
    config: str | os.PathLike | None = None,
    align_corners: bool | None = None,
    device: str = "auto",
    fp16: bool = False,
) -> AnimationPipeline:
    """The pipeline ``animate`` runs (see :func:`reanimate.animators.registry.build_animator`)."""
    return AnimationPipeline(build_animator(checkpoint, model, config, align_corners, device, fp16))
