"""Inference pipeline: animate a source image with a driving video, streaming.

Frames are decoded one by one, run through the model in small batches and encoded as
they come, so memory does not grow with the video's length. The source is encoded
once (keypoints and generator features) and reused for every batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from ..errors import InputError, ReanimateError
from ..faces import Face, FaceMesh, best_frame_index, crop_face, feather_mask, paste_back_into, square_box
from ..geometry import normalized_shape
from ..io import fit_to_shape, frames_to_tensor, open_frames, open_writer, read_image, tensor_to_frames
from ..models import FirstOrderModel, ModelConfig, SourceEncoding, load_config
from ..models.landmark_animator import DrivingFace, LandmarkAnimator, to_pixels
from ..motion import Keypoints, relative_motion
from ..smoothing import JitterMeter, make_smoother
from ..visualize import draw_keypoints, mask_to_image, side_by_side

log = logging.getLogger(__name__)


@dataclass
class AnimationOptions:
    """How motion is transferred; names follow the reference demo's options."""

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
    """A motion model on a device, ready to animate: a FOMM-style network, or the
    zero-shot :class:`LandmarkAnimator` (no weights, CPU).

    Faces are cropped from the source, animated and pasted back into the full-size
    source when the model is a face model (``AnimationOptions.crop``).

    >>> pipe = AnimationPipeline.from_checkpoint("vox.safetensors")
    >>> pipe.animate("photo.png", "driving.mp4", "out.mp4")
    >>> AnimationPipeline(LandmarkAnimator()).animate("photo.png", "driving.mp4", "out.mp4")
    """

    def __init__(
        self,
        model: FirstOrderModel | LandmarkAnimator,
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
        if isinstance(model, LandmarkAnimator):
            self.model = model
        else:
            self.model = model.eval().to(self.device)
        self.config = model.config

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
        return cls(ckpt.load(checkpoint, config, align_corners=align_corners), device=device, fp16=fp16)

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
        driving: torch.Tensor | None = None,
    ):
        """Move the source to the driving keypoints (relative to ``kp_initial`` if given).

        ``driving`` ``(N, C, H, W)``: the driving frames themselves, for a generator with a
        background motion predictor (the reconstruction protocol, as the MoTrans/MRAA
        code; animation of another image keeps the background still, as theirs does).
        """
        if options.relative:
            kp_target = relative_motion(source.keypoints, kp_driving, kp_initial, options.adapt_scale,
                                        relative_jacobian=options.relative_jacobian)
        else:
            kp_target = kp_driving
        generator = self.model.generator
        with self._autocast():
            background = generator.predict_background(source.image, driving) if driving is not None else None
            return generator.decode(source.encoding, kp_target, source.keypoints, background=background)

    # -- faces -----------------------------------------------------------------------

    @property
    def uses_landmarks(self) -> bool:
        return isinstance(self.model, LandmarkAnimator)

    @property
    def is_face_model(self) -> bool:
        """Face models crop faces by default (the official vox models were trained on crops)."""
        return self.uses_landmarks or self.config.name.lower().startswith("vox")

    @property
    def size(self) -> tuple[int, int]:
        return (self.model.size, self.model.size) if self.uses_landmarks else self.config.image_size

    def default_increase(self) -> float:
        # The landmark animator needs room around the face for its anchor rings.
        return LANDMARK_CROP_INCREASE if self.uses_landmarks else FOMM_CROP_INCREASE

    def _source_face(self, image: np.ndarray, path, options: AnimationOptions, notes: list[str]) -> Face:
        with FaceMesh(max_faces=MAX_SOURCE_FACES) as mesh:
            faces = mesh.detect(image)
        if not faces:
            hint = ("the default animator needs a face; give --checkpoint for other objects"
                    if self.uses_landmarks else "use --crop none for images without a face")
            raise InputError(path, f"no face found ({hint})")
        index = options.face_index
        if index is not None and not 0 <= index < len(faces):
            raise InputError(path, f"--face-index {index}: found {len(faces)} face(s), indices 0..{len(faces) - 1}")
        if index is None and len(faces) > 1:
            notes.append(f"{Path(path).name}: {len(faces)} faces found; animating the largest (--face-index to choose)")
        return faces[index or 0]

    # -- whole job -------------------------------------------------------------------

    def find_best_frame(
        self, source: SourceState, driving_path, fps=None, pad=False, batch_size=8
    ) -> tuple[int, Keypoints]:
        """Driving frame whose normalised keypoint layout is closest to the source's
        (model keypoints; for faces :meth:`animate` matches face landmarks instead, as
        the reference demo). Returns its index and its keypoints."""
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
        _check_options(options)
        start = time.perf_counter()
        timer = _StageTimer()
        notes: list[str] = []
        source_image = read_image(source_path)
        crop = options.crop == "auto" and self.is_face_model
        faces = crop or self.uses_landmarks
        paste = crop and (options.paste_back is None or options.paste_back)
        increase = self.default_increase() if options.increase is None else options.increase
        adapt = self.uses_landmarks if options.adapt_scale is None else options.adapt_scale
        if self.uses_landmarks and not options.relative:
            raise ReanimateError("the landmark animator only transfers relative motion (drop --absolute)")

        # Source: the face crop (or the whole image fitted to the model's size).
        box = None
        source_landmarks = None
        if crop:
            face = self._source_face(source_image, source_path, options, notes)
            box = square_box(face.box, source_image.shape[:2], increase)
            source_crop = crop_face(source_image, box, self.size[0])
            source_landmarks = _to_crop(face.landmarks, box, self.size[0])
        else:
            source_crop, note = fit_to_shape(source_image, self.size, mode="pad" if options.pad else "crop")
            if note:
                notes.append(f"{Path(source_path).name}: {note}")
            if self.uses_landmarks:
                source_landmarks = self._source_face(source_crop, source_path, options, notes).landmarks
        if self.uses_landmarks:
            source = self.model.encode_source(source_crop, source_landmarks)
        else:
            source = self.encode_source(frames_to_tensor(source_crop[None]).to(self.device))
        mask = feather_mask(self.size[0], PASTE_FEATHER) if paste else None

        with open_frames(driving_path, fps=fps) as reader:
            # Fail on an unwritable output before decoding the whole video.
            with open_writer(output_path, reader.fps, audio_from=driving_path) as writer, \
                    contextlib.ExitStack() as resources:
                reference, kp_initial = 0, None
                if options.find_best_frame:
                    if faces:
                        reference = self._best_face_frame(source_landmarks, driving_path, fps)
                    else:
                        reference, kp_initial = self.find_best_frame(
                            source, driving_path, fps, options.pad, options.batch_size)
                    log.info("best matching driving frame: %d", reference)
                elif options.best_frame is not None:
                    reference = options.best_frame
                needs_reference = faces or (options.relative and kp_initial is None)
                reference_frame = reader.read_frame(reference) if needs_reference else None

                tracker = None
                drive_box = None
                initial = None
                if faces:
                    # The reference frame goes through the same detector as the stream.
                    tracker = resources.enter_context(_DrivingFaces())
                    found = tracker.mesh.detect(reference_frame)
                    if not found:
                        raise InputError(driving_path, f"no face in frame {reference} (the reference frame)")
                    initial_landmarks = tracker.last = found[0].landmarks
                    drive_box = square_box(found[0].box, reference_frame.shape[:2], increase)
                if self.uses_landmarks:
                    initial = self._landmark_driving(initial_landmarks[None], [reference_frame], drive_box)[0]
                elif options.relative and kp_initial is None:
                    images = self._model_input([reference_frame], drive_box if crop else None, options.pad)[0]
                    kp_initial = self.detect(images)

                smoother = make_smoother(options.smooth, reader.fps)
                transfer = AnimationOptions(relative=options.relative, adapt_scale=adapt,
                                            relative_jacobian=options.relative_jacobian)
                raw_jitter, jitter = JitterMeter(), JitterMeter()
                canvas = source_image.copy() if paste else None
                # With relative motion every frame only depends on itself and the
                # reference frame, so animating "forward and backward from the best
                # frame" (reference demo) equals one pass in display order.
                done = 0
                bar = tqdm(total=reader.frame_count, unit="frame", disable=None if progress else True,
                           desc="animate", dynamic_ncols=True)
                with bar:
                    frames_iter = timer.iterate("decode", reader)
                    for batch in batched(frames_iter, options.batch_size):
                        landmarks = None
                        if tracker is not None:
                            with timer("landmarks"):
                                landmarks = tracker.update(batch)
                        with timer("model"):
                            if self.uses_landmarks:
                                driving = self._landmark_driving(landmarks, batch, drive_box)
                                kp_driving = Keypoints.cat([d.keypoints for d in driving])
                                raw_jitter.update(kp_driving.value)
                                if smoother is not None:
                                    kp_driving = smoother(kp_driving)
                                    # The eyes and mouth read landmarks: give them the smoothed ones.
                                    xy = to_pixels(kp_driving.value, drive_box[:2], float(drive_box[2] - drive_box[0]))
                                    for i, d in enumerate(driving):
                                        d.keypoints = kp_driving[i]
                                        d.landmarks = np.concatenate([xy[i], d.landmarks[:, 2:]], axis=1)
                                jitter.update(kp_driving.value)
                                crops = np.stack([self.model.animate(source, d, initial) for d in driving])
                                images = out = None
                            else:
                                images, frame_notes = self._model_input(batch, drive_box if crop else None, options.pad)
                                if done == 0 and frame_notes:
                                    notes.append(f"{Path(driving_path).name}: {frame_notes[0]}")
                                kp_driving = self.detect(images)
                                raw_jitter.update(kp_driving.value)
                                if smoother is not None:
                                    kp_driving = smoother(kp_driving)
                                jitter.update(kp_driving.value)
                                out = self.generate(source, kp_driving, kp_initial, transfer)
                                crops = tensor_to_frames(out.prediction)
                        with timer("paste"):
                            if paste:
                                frames = np.stack([_paste(canvas, source_image, c, box, mask) for c in crops])
                            else:
                                frames = crops
                            if options.visualize:
                                frames = self._visualize(source, batch, images, kp_driving, out, frames)
                        with timer("encode"):
                            writer.write(frames)
                        done += len(batch)
                        bar.update(len(batch))
                if done == 0:
                    raise ReanimateError(f"{driving_path}: no frames")
                missing = tracker.missing if tracker is not None else 0
                if tracker is not None and missing > options.max_missing * done:
                    raise InputError(driving_path, f"no face in {missing} of {done} frames (first at frame "
                                                   f"{tracker.first_missing}); at most {options.max_missing:.0%} may miss")
                if missing:
                    notes.append(f"{Path(driving_path).name}: no face in {missing} of {done} frames "
                                 f"(first at frame {tracker.first_missing}); the last landmarks were held")
        stats = {"raw": raw_jitter.score, "smoothed": jitter.score} if smoother is not None else {"raw": raw_jitter.score}
        return AnimationResult(Path(output_path), done, time.perf_counter() - start, reference, notes,
                               stats, missing, timer.seconds)

    def _best_face_frame(self, source_landmarks: np.ndarray, driving_path, fps) -> int:
        """The reference demo's matcher: the driving frame whose normalised face
        landmarks are closest to the source's."""
        with open_frames(driving_path, fps=fps) as reader, FaceMesh() as mesh:
            sequence = (f[0].landmarks[:, :2] if (f := mesh.detect(frame)) else None for frame in reader)
            index, _ = best_frame_index(source_landmarks[:, :2], sequence)
        if index is None:
            raise InputError(driving_path, "no face in any frame")
        return index

    def _model_input(self, frames, box, pad: bool) -> tuple[torch.Tensor, list[str]]:
        if box is None:
            return self.prepare(frames, pad)
        crops = np.stack([crop_face(f, box, self.size[0]) for f in frames])
        return frames_to_tensor(crops).to(self.device), []

    def _landmark_driving(self, landmarks: np.ndarray, frames, box) -> list[DrivingFace]:
        side = float(box[2] - box[0])
        kp = self.model.keypoints(landmarks, box[:2], side)
        return [DrivingFace(kp[i], landmarks[i], frames[i]) for i in range(len(frames))]

    def _visualize(self, source, batch, images, kp_driving: Keypoints, out, frames) -> np.ndarray:
        if self.uses_landmarks:
            src = source.image
            drv = [fit_to_shape(f, self.size, mode="pad")[0] for f in batch]
            return np.stack([side_by_side([src, d, r]) for d, r in zip(drv, frames)])
        size = self.config.image_size
        src = draw_keypoints(tensor_to_frames(source.image)[0], source.keypoints.value[0].cpu())
        drv = tensor_to_frames(images)
        panels = []
        for i, result in enumerate(frames):
            row = [src, draw_keypoints(drv[i], kp_driving.value[i].cpu()), fit_to_shape(result, size, mode="pad")[0]]
            if out.occlusion_map is not None:
                row.append(mask_to_image(out.occlusion_map[i], size))
            panels.append(side_by_side(row))
        return np.stack(panels)


# The official crop-video.py's default margin; the landmark animator wants more room.
FOMM_CROP_INCREASE = 0.1
LANDMARK_CROP_INCREASE = 0.45
PASTE_FEATHER = 0.1  # fraction of the crop over which paste-back fades out
MAX_SOURCE_FACES = 5


def _check_options(options: AnimationOptions) -> None:
    if options.batch_size < 1:
        raise ReanimateError(f"--batch-size must be at least 1, got {options.batch_size}")
    if options.crop not in ("auto", "none"):
        raise ReanimateError(f"--crop {options.crop}: expected auto or none")
    if options.increase is not None and options.increase < 0:
        raise ReanimateError(f"--increase must be at least 0, got {options.increase}")
    if not 0 <= options.max_missing <= 1:
        raise ReanimateError(f"--max-missing must be between 0 and 1, got {options.max_missing}")


def _paste(canvas: np.ndarray, source: np.ndarray, crop: np.ndarray, box, mask) -> np.ndarray:
    """One full-size frame: the source with the animated crop blended in at ``box``.
    ``canvas`` is a reused buffer; only the box region is restored and blended."""
    x0, y0, x1, y1 = (int(v) for v in box)
    canvas[y0:y1, x0:x1] = source[y0:y1, x0:x1]
    return paste_back_into(canvas, crop, box, mask).copy()


def _to_crop(landmarks: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
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

    def __enter__(self) -> "_DrivingFaces":
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

    ``model``: ``"auto"`` (a given checkpoint, else the zero-shot landmark animator),
    ``"landmarks"`` or ``"fomm"`` (needs ``checkpoint``). Further keyword arguments are
    :class:`AnimationOptions` fields. ``output`` is a video file (.mp4, .mov, .mkv,
    ...; H.264, the driving fps and audio kept) or a folder of PNG frames. Written
    atomically: on any error nothing is left.
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
    """The pipeline ``animate`` runs: ``model`` ``"auto"`` (a given checkpoint, else the
    zero-shot landmark animator), ``"landmarks"`` or ``"fomm"`` (needs ``checkpoint``)."""
    if model not in ("auto", "landmarks", "fomm"):
        raise ReanimateError(f"--model {model}: expected auto, landmarks or fomm")
    if model == "fomm" and checkpoint is None:
        raise ReanimateError("--model fomm needs --checkpoint")
    if model == "landmarks" or (model == "auto" and checkpoint is None):
        if checkpoint is not None:
            raise ReanimateError("--model landmarks uses no checkpoint (drop --checkpoint)")
        return AnimationPipeline(LandmarkAnimator(), device="cpu")
    return AnimationPipeline.from_checkpoint(checkpoint, config, align_corners, device, fp16)
