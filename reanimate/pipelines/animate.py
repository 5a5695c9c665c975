"""Inference pipeline: animate a source image with a driving video, streaming.

Frames are decoded one by one, run through the animator in small batches and encoded
as they come, so memory does not grow with the video's length. The source is encoded
once and reused for every batch.

A still driving image gives one output frame: the driver's motion is taken relative to
the source itself (the source plays the reference frame), so the source takes the
driver's pose and expression. With ``faces="all"`` every face of the source is cropped,
animated by the same driver and pasted back, each owning the pixels nearest to it.

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

from ..animators.base import Animator, DrivingBatch, Motion, Rendered, Requirements, Retarget, Source, Transfer
from ..animators.registry import build_animator
from ..device import select_device
from ..errors import InputError, OutputError, ReanimateError
from ..faces import Face, FaceMesh, PasteCanvas, best_frame_index, crop_face, feather_mask, paste_back_into, square_box
from ..faces.steady import SteadyFaceMesh
from ..geometry import normalized_shape
from ..io import fit_to_shape, is_image_path, is_video_path, open_frames, open_writer, read_image, write_image
from ..io.prefetch import prefetched
from ..io.writing import DEFAULT_CRF, DEFAULT_PRESET, X264_PRESETS
from ..motion import HEAD_ATTRIBUTES
from ..precision import PRECISIONS
from ..smoothing import JitterMeter, make_smoother
from ..visualize import visualize_batch

log = logging.getLogger(__name__)

PASTE_FEATHER = 0.1  # fraction of the crop over which paste-back fades out
MAX_SOURCE_FACES = 5
#: the most faces ``faces="all"`` animates in one source (a group photo)
MAX_GROUP_FACES = 16
#: sharpness of the border between the faces of a group where their crops overlap: each
#: pixel goes to the face nearest to it in face radii, over about 1/OWNERSHIP of a radius
OWNERSHIP = 6.0
#: frame rate of the one-frame video a still driving image gives for a video output
STILL_FPS = 25.0
#: what a still driving image gives the source (where the family separates them): its
#: head's turn and its expression, not the scale and place of its face in its picture
STILL_ATTRIBUTES = ("rotation", "expression")
#: driving frames per model call by device type (``--batch-size``'s default; any other
#: device: :data:`DEFAULT_BATCH_SIZE`). On the CPU larger batches are slower per frame
#: (vox-256: the bottleneck and full-resolution up blocks get 15-30% dearer, and peak
#: memory grows), on a GPU batching is where the speed comes from.
DEFAULT_BATCH_SIZES = {"cpu": 1}
DEFAULT_BATCH_SIZE = 4
#: what a user who asked for head control from a model without it can use instead
HEAD_CONTROL_HINT = "use the default or a face model that can: landmarks, mmfa"
#: the same for a retargeting control
RETARGET_HINT = "the default animator (landmarks) retargets all of them, mmfa --head and --expression"


@dataclass
class AnimationOptions:
    """How motion is transferred and the output made; names follow the reference demo's options."""

    relative: bool = True  # relative motion transfer (FOMM supp. A.3); False = absolute keypoints
    adapt_scale: bool | None = None  # scale relative motion by the keypoint hull-area ratio (None: model's default)
    relative_jacobian: bool = True  # with relative motion, also transfer the Jacobians relatively (FOMM Eq. 14)
    best_frame: int | None = None  # driving frame aligned with the source (relative reference)
    find_best_frame: bool = False  # search the driving frame whose keypoints best match the source's
    batch_size: int | None = None  # driving frames per model call (None: default_batch_size of the device)
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
    # retargeting (animators.base.Retarget): how much of the driver's head pose,
    # expression, eyes and lips the source takes (0 keeps the source's, 1 follows, up to
    # 2 exaggerates; eyes and lips None: as expression); lips_only = head, expression and
    # eyes 0 (dubbing); blinks "keep" or "suppress" (the lids keep the source's opening)
    head: float = 1.0
    expression: float = 1.0
    eyes: float | None = None
    lips: float | None = None
    lips_only: bool = False
    blinks: str = "keep"
    # "one": the face face_index picks (default the largest); "all": every face of the
    # source (a group photo), each animated by the same driver and pasted back
    faces: str = "one"
    # video output quality (H.264 0..51, VP9 0..63; lower is better) and libx264's
    # speed/size trade-off (io.writing.X264_PRESETS)
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET


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
    precision: str = "fp32"  # what the networks ran at (animators.base.Animator.precision)
    batch_size: int = 1  # driving frames per model call

    @property
    def frames_per_second(self) -> float:
        """Processing speed (frames animated per second of wall time), not the video's rate."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    fps = frames_per_second  # older name of the same figure


@dataclass
class SourceFace:
    """One face of the source as the pipeline animates it: the animator's ``source``,
    the crop ``box`` in the source image (None without a crop), its face ``landmarks``
    in the crop's pixels (None when no face was looked for) and the paste-back ``mask``
    at the crop's size (None without paste-back)."""

    source: Source
    box: np.ndarray | None
    landmarks: np.ndarray | None
    mask: np.ndarray | None = None


@dataclass
class _Plan:
    """What one animation does, from the options and the animator's requirements."""

    crop: bool  # crop the face from the source and the driving frames
    paste: bool  # blend the animated crop back into the full source
    increase: float
    driving_box: bool  # the driving frames need the reference frame's face box
    transfer: Transfer
    batch_size: int = 1  # driving frames per model call


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
        cls,
        checkpoint,
        config=None,
        align_corners: bool | None = None,
        device: str = "auto",
        fp16: bool = False,
        precision: str | None = None,
    ) -> AnimationPipeline:
        """The family the checkpoint names, loaded; ``align_corners`` overrides the config's
        value; ``precision`` as :func:`build_pipeline`'s."""
        return cls(build_pipeline(checkpoint, "auto", config, align_corners, device, fp16, precision).animator)

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
        if options.faces == "all" and not paste:
            why = "drop --paste-back false" if crop else "it needs a face model with --crop auto"
            raise ReanimateError(f"--faces all pastes every animated face back into the source: {why}")
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
        retarget = retarget_of(options)
        given = "--lips-only" if options.lips_only else ""
        retarget.refuse_uncovered(self.animator.family, req.retarget, RETARGET_HINT, given)
        transfer = Transfer(options.relative, adapt, options.relative_jacobian, attributes, retarget)
        batch_size = options.batch_size or default_batch_size(req.device)
        return _Plan(crop, paste, increase, crop or req.driving_landmarks, transfer, batch_size)

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

    def encode_faces(
        self, image: np.ndarray, path, options: AnimationOptions, plan: _Plan, notes: list[str]
    ) -> list[SourceFace]:
        """The faces of the source to animate, largest first: one (``--face-index``), or
        with ``faces="all"`` every face found, each with a paste mask that gives it the
        pixels nearest to it (:func:`face_masks`)."""
        if options.faces != "all":
            source, box, landmarks = self._encode_source(image, path, options, plan, notes)
            mask = feather_mask(self.size[0], PASTE_FEATHER) if plan.paste else None
            return [SourceFace(source, box, landmarks, mask)]
        with FaceMesh(max_faces=MAX_GROUP_FACES) as mesh:
            found = mesh.detect(image)
        if not found:
            raise InputError(path, "no face found (--faces all animates the faces of a photo)")
        size = self.size[0]
        boxes = [square_box(face.box, image.shape[:2], plan.increase) for face in found]
        masks = face_masks([face.box for face in found], boxes, size)
        faces = []
        for face, box, mask in zip(found, boxes, masks):
            landmarks = to_crop_pixels(face.landmarks, box, size)
            source = self.animator.encode_source(crop_face(image, box, size), landmarks)
            faces.append(SourceFace(source, box, landmarks, mask))
        if len(found) == MAX_GROUP_FACES:
            notes.append(f"{Path(path).name}: animating the {MAX_GROUP_FACES} largest faces (the most at once)")
        return faces

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
                reference, motion = self.find_best_frame(source, driving_path, fps, options.pad, plan.batch_size)
            log.info("best matching driving frame: %d", reference)
        elif options.best_frame is not None:
            reference = options.best_frame
        if not plan.driving_box and (motion is not None or not options.relative):
            return reference, None, motion
        frame = reader.read_frame(reference)
        face = None
        if plan.driving_box:
            with FaceMesh(video=False) if tracker is None else contextlib.nullcontext(tracker.mesh) as mesh:
                found = mesh.detect(frame)
            if not found:
                raise InputError(driving_path, f"no face in frame {reference} (the reference frame)")
            face = found[0]
            if tracker is not None:
                tracker.last = face.landmarks
        box, motion = self.reference_at(frame, face, options, plan)
        return reference, box, motion

    def reference_at(
        self, frame: np.ndarray, face: Face | None, options: AnimationOptions, plan: _Plan
    ) -> tuple[np.ndarray | None, Motion | None]:
        """``frame`` ``(h, w, 3)`` as the reference frame, ``face`` its face (None when
        the plan crops no driving frames): the crop box of every driving frame (None
        without a crop) and the reference motion (None for absolute transfer)."""
        box = None if face is None else square_box(face.box, frame.shape[:2], plan.increase)
        landmarks = None if face is None else face.landmarks[None]
        motion = (
            self.animator.estimate(self.driving_batch([frame], box, landmarks, options)) if options.relative else None
        )
        return box, motion

    def driving_batch(
        self, frames: list[np.ndarray], box: np.ndarray | None, landmarks: np.ndarray | None, options: AnimationOptions
    ) -> DrivingBatch:
        """What :meth:`Animator.estimate` takes of driving ``frames`` cropped at ``box``
        (None: whole frames fitted) with their face ``landmarks`` ``(N, 478, 3)``, which
        are passed on only to an animator that asks for them."""
        wanted = landmarks if self.requirements.driving_landmarks else None
        return DrivingBatch(frames, self.size, box, wanted, options.pad)

    def drive(
        self,
        faces: list[SourceFace],
        batch: DrivingBatch,
        reference: Motion | None,
        transfer: Transfer,
        smoother=None,
    ) -> tuple[Motion, Motion, list[Rendered]]:
        """One batch of consecutive driving frames through the animator: their motion as
        estimated, the same smoothed by ``smoother`` (:func:`~reanimate.smoothing.make_smoother`,
        which carries its state from call to call; None: not smoothed) and each face
        rendered with it (frames ``(N, H, W, 3)`` at the animator's size)."""
        raw = self.animator.estimate(batch)
        motion = raw if smoother is None else self.animator.with_keypoints(raw, smoother(raw.keypoints))
        return raw, motion, [self.animator.render(f.source, motion, reference, transfer) for f in faces]

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
        """Animate ``source_path`` with ``driving_path`` (a video, a frame folder or a
        still image) into ``output_path`` (a video or PNG folder; an image file for a still
        driving image). A video ``source_path`` keeps its own head motion and takes the
        driver's expression (:mod:`~reanimate.pipelines.video_source`)."""
        from tqdm.auto import tqdm

        options = options or AnimationOptions()
        if is_video_path(source_path):
            from .video_source import animate_video_source  # a video as the source (dubbing)

            return animate_video_source(self, source_path, driving_path, output_path, options, progress, fps)
        check_options(options)
        still = is_still_image(driving_path)
        _check_output(output_path, still, options)
        plan = self.plan(options)
        start = time.perf_counter()
        timer = _StageTimer()
        notes: list[str] = list(self.animator.notes)
        source_image = read_image(source_path)
        faces = self.encode_faces(source_image, source_path, options, plan, notes)
        if still:
            done = self._animate_still(faces, source_image, driving_path, output_path, options, plan, timer)
            return AnimationResult(
                Path(output_path),
                done,
                time.perf_counter() - start,
                0,
                notes,
                {},
                0,
                timer.seconds,
                self.animator.precision,
                plan.batch_size,
            )
        first = faces[0]
        per_frame_landmarks = self.requirements.driving_landmarks

        with open_frames(driving_path, fps=fps) as reader:
            # Fail on an unwritable output before decoding the whole video.
            with (
                open_output(output_path, reader.fps, options, audio_from=driving_path) as writer,
                contextlib.ExitStack() as resources,
            ):
                tracker = resources.enter_context(_DrivingFaces()) if per_frame_landmarks else None
                reference, drive_box, initial = self._reference(
                    first.source, first.landmarks, reader, driving_path, fps, options, plan, tracker
                )
                smoother = make_smoother(options.smooth, reader.fps)
                raw_jitter, jitter = JitterMeter(), JitterMeter()
                # The source is the canvas: outside the face boxes no output frame changes.
                canvas = paste_canvas(source_image, faces) if plan.paste else None
                del source_image  # the canvas is all the frames need of it (4096x4096: 48 MB)
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

                def driving_batches():
                    for frames in batched(timer.iterate("decode", reader), plan.batch_size):
                        landmarks = None
                        if tracker is not None:
                            with timer("landmarks"):
                                landmarks = tracker.update(frames)
                        yield frames, landmarks

                with bar:
                    # Decoding and landmarks run a batch ahead in a worker thread (both
                    # release the GIL), beside the animator and the encoder.
                    for frames, landmarks in prefetched(driving_batches()):
                        with timer("model"):
                            batch = self.driving_batch(frames, drive_box, landmarks, options)
                            raw, motion, rendered = self.drive(faces, batch, initial, plan.transfer, smoother)
                            raw_jitter.update(raw.keypoints.value)
                            jitter.update(motion.keypoints.value)
                            if done == 0 and batch.notes:
                                notes.append(f"{Path(driving_path).name}: {batch.notes[0]}")
                        if plan.paste and not options.visualize:
                            # Frame by frame into the one canvas; the writer converts
                            # (copies) only the boxes and encodes in its own thread.
                            for n in range(len(frames)):
                                with timer("paste"):
                                    out = canvas.paste([r.frames[n] for r in rendered])
                                with timer("encode"):
                                    writer.write(out, changed=canvas.changed)
                        else:
                            with timer("paste"):
                                if plan.paste:
                                    out = np.stack(
                                        [
                                            canvas.paste([r.frames[n] for r in rendered]).copy()
                                            for n in range(len(frames))
                                        ]
                                    )
                                else:
                                    out = rendered[0].frames
                                if options.visualize:
                                    out = visualize_batch(first.source, batch, motion, rendered[0], out, self.size)
                            with timer("encode"):
                                writer.write(out)
                        done += len(frames)
                        bar.update(len(frames))
                if done == 0:
                    raise ReanimateError(f"{driving_path}: no frames")
                missing = 0
                if tracker is not None:
                    tracker.check_missing(driving_path, done, options.max_missing, notes)
                    missing = tracker.missing
        stats = (
            {"raw": raw_jitter.score, "smoothed": jitter.score} if smoother is not None else {"raw": raw_jitter.score}
        )
        return AnimationResult(
            Path(output_path),
            done,
            time.perf_counter() - start,
            reference,
            notes,
            stats,
            missing,
            timer.seconds,
            self.animator.precision,
            plan.batch_size,
        )

    def _animate_still(
        self,
        faces: list[SourceFace],
        source_image: np.ndarray,
        driving_path,
        output_path,
        options: AnimationOptions,
        plan: _Plan,
        timer: _StageTimer,
    ) -> int:
        """A still driving image: its motion relative to the source itself (the source's
        crop plays the reference frame), so each face takes the driver's pose and
        expression; one frame written to ``output_path``. Returns 1.

        Where the family separates head attributes, only the rotation and the expression
        are taken (of those ``--transfer`` names): the scale and place of another
        person's face in its picture say nothing about the source's, which keeps its own.
        """
        frame = read_image(driving_path)
        side = self.size[0]
        whole = np.array([0, 0, side, side])  # a crop's own box
        box = landmarks = None
        with timer("landmarks"):
            if plan.driving_box:
                with FaceMesh(video=False) as mesh:
                    found = mesh.detect(frame)
                if not found:
                    raise InputError(driving_path, "no face found in the driving image")
                # Cropped like the source (its face box with the same margin, at the
                # animator's size), so that both are measured in the same pixels.
                face_box = square_box(found[0].box, frame.shape[:2], plan.increase)
                frame = crop_face(frame, face_box, side)
                landmarks = to_crop_pixels(found[0].landmarks, face_box, side)[None]
                box = whole
        per_frame_landmarks = self.requirements.driving_landmarks
        transfer = plan.transfer
        pose = tuple(a for a in transfer.attributes if a in STILL_ATTRIBUTES)
        if pose and set(STILL_ATTRIBUTES) <= set(self.requirements.head_attributes):
            transfer = dataclasses.replace(transfer, attributes=pose)
        with timer("model"):
            batch = DrivingBatch([frame], self.size, box, landmarks if per_frame_landmarks else None, options.pad)
            motion = self.animator.estimate(batch)
            rendered = []
            for face in faces:
                reference = None
                if options.relative:
                    # the source's crop as the driver's reference frame: its own box and landmarks
                    own = DrivingBatch(
                        [face.source.image],
                        self.size,
                        whole if plan.driving_box else None,
                        face.landmarks[None] if per_frame_landmarks else None,
                        options.pad,
                    )
                    reference = self.animator.estimate(own)
                rendered.append(self.animator.render(face.source, motion, reference, transfer))
        with timer("paste"):
            if plan.paste:
                out = paste_canvas(source_image, faces).paste([r.frames[0] for r in rendered])[None]
            else:
                out = rendered[0].frames
            if options.visualize:
                out = visualize_batch(faces[0].source, batch, motion, rendered[0], out, self.size)
        with timer("encode"):
            if is_image_path(output_path):
                write_image(Path(output_path), out[0])
            else:
                with open_output(output_path, STILL_FPS, options) as writer:
                    writer.write(out)
        return 1


def open_output(output_path, fps: float, options: AnimationOptions, audio_from=None):
    """The atomic writer of an animation's output at ``fps``, with the options' overwrite
    permission and video quality, and ``audio_from``'s audio (None: none)."""
    return open_writer(
        output_path, fps, audio_from=audio_from, overwrite=options.overwrite, crf=options.crf, preset=options.preset
    )


def is_still_image(path: str | os.PathLike) -> bool:
    """A driving ``path`` that is one image file (not a video or a folder of frames)."""
    return is_image_path(path) and not Path(path).is_dir()


def _check_output(output_path, still: bool, options: AnimationOptions) -> None:
    """One-line errors for an output kind or options that do not fit the driver."""
    if is_image_path(output_path) and not Path(output_path).is_dir() and not still:
        raise OutputError(
            output_path,
            "an image is written only for a still driving image; give a video file or a folder for the frames",
        )
    top = 63 if Path(output_path).suffix.lower() == ".webm" else 51
    if isinstance(options.crf, bool) or int(options.crf) != options.crf or not 0 <= options.crf <= top:
        raise ReanimateError(
            f"--crf {options.crf}: expected an integer from 0 to {top} (lower is better; default {DEFAULT_CRF})"
        )
    if options.preset not in X264_PRESETS:
        raise ReanimateError(f"--preset {options.preset}: expected one of {', '.join(X264_PRESETS)}")
    if still and (options.find_best_frame or options.best_frame is not None):
        option = "--find-best-frame" if options.find_best_frame else "--best-frame"
        raise ReanimateError(f"{option}: a still driving image has one frame (its reference is the source itself)")


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


def retarget_of(options: AnimationOptions) -> Retarget:
    """The :class:`~reanimate.animators.base.Retarget` the options ask for (one-line
    errors for factors out of range and for ``--lips-only`` with the factors it sets)."""
    if not options.lips_only:
        return Retarget(options.head, options.expression, options.eyes, options.lips, options.blinks)
    given = [
        name
        for name, value, default in (("head", options.head, 1.0), ("expression", options.expression, 1.0))
        if value != default
    ] + (["eyes"] if options.eyes is not None else [])
    if given:
        raise ReanimateError(f"--lips-only keeps the source's head, expression and eyes: drop --{given[0]}")
    only = Retarget.lips_only(1.0 if options.lips is None else options.lips)
    return dataclasses.replace(only, blinks=options.blinks)


def check_options(options: AnimationOptions) -> None:
    """One-line errors for options out of range or in conflict with each other."""
    head_attributes(options.transfer)
    retarget_of(options)
    if options.faces not in ("one", "all"):
        raise ReanimateError(f"--faces {options.faces}: expected one or all")
    if options.faces == "all" and options.face_index is not None:
        raise ReanimateError("--faces all animates every face: drop --face-index")
    if options.batch_size is not None and options.batch_size < 1:
        raise ReanimateError(f"--batch-size must be at least 1, got {options.batch_size}")
    if options.crop not in ("auto", "none"):
        raise ReanimateError(f"--crop {options.crop}: expected auto or none")
    if options.increase is not None and options.increase < 0:
        raise ReanimateError(f"--increase must be at least 0, got {options.increase}")
    if not 0 <= options.max_missing <= 1:
        raise ReanimateError(f"--max-missing must be between 0 and 1, got {options.max_missing}")


def default_batch_size(device: str) -> int:
    """``--batch-size``'s default on a device type (``"cpu"``, ``"cuda"``…):
    :data:`DEFAULT_BATCH_SIZES`, else :data:`DEFAULT_BATCH_SIZE`."""
    return DEFAULT_BATCH_SIZES.get(device, DEFAULT_BATCH_SIZE)


def paste_canvas(source: np.ndarray, faces: list[SourceFace]) -> PasteCanvas:
    """A :class:`~reanimate.faces.PasteCanvas` for every face's box and paste mask, on
    ``source`` itself when it is writable (then written in place), else on a copy."""
    return PasteCanvas(source, [f.box for f in faces], [f.mask for f in faces], copy=not source.flags.writeable)


def face_masks(face_boxes, crop_boxes, size: int, feather: float = PASTE_FEATHER) -> list[np.ndarray]:
    """Paste masks ``(size, size)`` float32 for the crops of several faces of one image.

    Each is the crop's :func:`~reanimate.faces.feather_mask` times the share of each
    pixel that belongs to its face: the faces' crops overlap in a group photo (the
    margin around one face holds its neighbours), and each pixel goes to the face
    nearest to it in units of the face's radius, with a soft border (:data:`OWNERSHIP`),
    so that one face's crop does not paste its still neighbours over their animation.

    Args:
        face_boxes: ``(x0, y0, x1, y1)`` of each face in the image.
        crop_boxes: the square crop box of each face in the image.
    """
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in face_boxes], np.float64)
    radii = np.array([max(b[2] - b[0], b[3] - b[1]) / 2 for b in face_boxes], np.float64)
    feather = feather_mask(size, feather)
    masks = []
    for index, box in enumerate(crop_boxes):
        scale = (box[2] - box[0]) / size
        axis = (np.arange(size) + 0.5) * scale - 0.5
        xs, ys = np.meshgrid(box[0] + axis, box[1] + axis)
        distance = np.stack([np.hypot(xs - cx, ys - cy) / r for (cx, cy), r in zip(centres, radii)])
        closeness = np.exp(-OWNERSHIP * (distance - distance.min(0)))
        masks.append(feather * (closeness[index] / closeness.sum(0)).astype(np.float32))
    return masks


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
    """Face landmarks of consecutive driving frames (:class:`~reanimate.faces.steady.SteadyFaceMesh`:
    a fresh detection averaged with a tracked read); a frame without a face keeps the
    last landmarks seen (set :attr:`last` to the reference frame's first), and is
    counted. A context manager: it owns the MediaPipe graphs."""

    def __init__(self):
        self.mesh = SteadyFaceMesh()
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

    def check_missing(self, path, done: int, max_missing: float, notes: list[str]) -> None:
        """After ``done`` frames of the video at ``path``: a one-line error when more than
        ``max_missing`` of them had no face, else a note when any had none."""
        if self.missing > max_missing * done:
            raise InputError(
                path,
                f"no face in {self.missing} of {done} frames (first at frame {self.first_missing}); "
                f"at most {max_missing:.0%} may miss",
            )
        if self.missing:
            notes.append(
                f"{Path(path).name}: no face in {self.missing} of {done} frames "
                f"(first at frame {self.first_missing}); the last landmarks were held"
            )

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
    precision: str | None = None,
    progress: bool = True,
    fps: float | None = None,
    **option_values,
) -> AnimationResult:
    """Animate ``source`` (an image) with ``driving`` (a video file or frame folder).

    ``model``: ``"auto"`` (the family a checkpoint names, else the zero-shot landmark
    animator) or a family name (:func:`reanimate.animators.registry.families`). Further
    keyword arguments are :class:`AnimationOptions` fields. ``output`` is a video file
    (.mp4, .mov, .mkv, ...; H.264, the driving fps and audio kept) or a folder of PNG
    frames. Written atomically: on any error nothing is left. ``precision``: see
    :func:`build_pipeline`.
    """
    unknown = set(option_values) - {f.name for f in dataclasses.fields(AnimationOptions)}
    if unknown:
        raise TypeError(f"unknown animation options: {sorted(unknown)}")
    pipeline = build_pipeline(checkpoint, model, config, align_corners, device, fp16, precision)
    options = AnimationOptions(**option_values)
    return pipeline.animate(source, driving, output, options, progress=progress, fps=fps)


def build_pipeline(
    checkpoint: str | os.PathLike | None = None,
    model: str = "auto",
    config: str | os.PathLike | None = None,
    align_corners: bool | None = None,
    device: str = "auto",
    fp16: bool = False,
    precision: str | None = None,
) -> AnimationPipeline:
    """The pipeline ``animate`` runs (see :func:`reanimate.animators.registry.build_animator`).

    ``precision``: ``fp32``, ``bf16`` or ``fp16`` for the learned networks (None: ``fp16``
    with ``fp16``, else ``fp32``; :meth:`~reanimate.animators.base.Animator.set_precision`
    says what each family does with it). ``fp16`` is the older spelling of
    ``precision="fp16"``.
    """
    if precision is None:
        precision = "fp16" if fp16 else "fp32"
    elif fp16 and precision != "fp16":
        raise ReanimateError(f"--fp16 and --precision {precision} disagree: give --precision alone")
    if precision not in PRECISIONS:
        raise ReanimateError(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and select_device(device).type != "cuda":
        option = "--fp16" if fp16 else "--precision fp16"
        raise ReanimateError(f"{option} needs a CUDA device (on the CPU: fp32, or bf16 where it has bfloat16 units)")
    animator = build_animator(checkpoint, model, config, align_corners, device, precision == "fp16")
    animator.set_precision(precision)
    return AnimationPipeline(animator)
