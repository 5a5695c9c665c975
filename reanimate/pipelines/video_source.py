"""A video as the SOURCE (video-to-video, for dubbing): every source frame keeps its own
head motion and takes the driver's expression relative to the driver's reference frame.

``reanimate animate talking.mp4 speech.mp4 -o dubbed.mp4``. Frames are paired by time
(source frame at the driver frame's timestamp, so a 30 fps source and a 25 fps driver
stay in step), the output has the driver's frame rate and audio and ends with the
shorter of the two. Each source frame is cropped at the box of the first frame's face,
encoded, animated with the head retargeting factor 0 and pasted back into itself.
Only families that separate the head from the expression can do this
(``Requirements.retarget`` covers ``head``: the default animator, MMFA).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, ReanimateError
from ..faces import crop_face, feather_mask, square_box
from ..io import open_frames
from ..smoothing import make_smoother
from .animate import (
    PASTE_FEATHER,
    AnimationOptions,
    AnimationPipeline,
    AnimationResult,
    SourceFace,
    _DrivingFaces,
    check_options,
    is_still_image,
    open_output,
    paste_crops,
    to_crop_pixels,
)


def paired_by_time(source: Iterable[np.ndarray], fps: float, driver_fps: float) -> Iterator[np.ndarray]:
    """The frames of ``source`` (an iterator at ``fps``) at the times of a clip at
    ``driver_fps``: frame ``i`` of the result is the last source frame that starts at or
    before ``i / driver_fps`` (frames repeat or are skipped where the rates differ).
    Ends with the source."""
    current, index = None, -1
    iterator = iter(source)
    for i in itertools.count():
        wanted = int(np.floor(i * fps / driver_fps + 1e-9))
        while index < wanted:
            current = next(iterator, None)
            if current is None:
                return
            index += 1
        yield current


def check_video_source(pipeline: AnimationPipeline, source_path, driving_path, options: AnimationOptions) -> None:
    """One line for what a video source cannot do with these options or this model."""
    family = pipeline.animator.family
    if "head" not in pipeline.requirements.retarget:
        raise ReanimateError(
            f"{Path(source_path).name}: a video source keeps each frame's own head motion, which the {family} "
            "model cannot tell from the expression; use the default animator or mmfa"
        )
    if is_still_image(driving_path):
        raise InputError(driving_path, "a video source needs a driving video (a still driver only poses a still)")
    if options.faces == "all":
        raise ReanimateError("--faces all: a video source animates one face (--face-index chooses it)")
    if options.head != 1.0 or options.lips_only:
        raise ReanimateError("--head and --lips-only: a video source keeps its own head motion (head 0) already")
    if options.visualize or options.find_best_frame:
        raise ReanimateError("--visualize and --find-best-frame are not available with a video source")


def animate_video_source(
    pipeline: AnimationPipeline,
    source_path,
    driving_path,
    output_path,
    options: AnimationOptions,
    progress: bool = True,
    fps: float | None = None,
) -> AnimationResult:
    """:meth:`AnimationPipeline.animate` for a video ``source_path`` (see the module's
    docstring); streamed frame by frame, written atomically."""
    from tqdm.auto import tqdm

    check_options(options)
    check_video_source(pipeline, source_path, driving_path, options)
    options = dataclasses.replace(options, head=0.0)
    plan = pipeline.plan(options)
    if not plan.crop:
        raise ReanimateError("a video source is animated in the crop of its face: drop --crop none")
    start = time.perf_counter()
    notes: list[str] = list(pipeline.animator.notes)
    size = pipeline.size[0]
    mask = feather_mask(size, PASTE_FEATHER) if plan.paste else None
    with (
        open_frames(source_path) as source_reader,
        open_frames(driving_path, fps=fps) as reader,
        _DrivingFaces() as source_faces,
        _DrivingFaces() as driving_faces,
        open_output(output_path, reader.fps, options, audio_from=driving_path) as writer,
    ):
        if abs(source_reader.fps - reader.fps) > 1e-3:
            notes.append(
                f"{Path(source_path).name}: {source_reader.fps:g} frames/s paired by time with the driver's "
                f"{reader.fps:g} (the output's rate)"
            )
        sources = paired_by_time(source_reader, source_reader.fps, reader.fps)
        first = next(sources, None)
        if first is None:
            raise InputError(source_path, "no frames")
        # The crop box: the first frame's face, the one --face-index picks (as for a still).
        face = pipeline._source_face(first, source_path, options, notes)
        box = square_box(face.box, first.shape[:2], plan.increase)
        source_faces.last = face.landmarks
        first_crop = crop_face(first, box, size)
        first_source = pipeline.animator.encode_source(first_crop, to_crop_pixels(face.landmarks, box, size))
        _, drive_box, reference = pipeline._reference(
            first_source, None, reader, driving_path, fps, options, plan, driving_faces
        )
        smoother = make_smoother(options.smooth, reader.fps)
        done = 0
        bar = tqdm(total=reader.frame_count, unit="frame", disable=None if progress else True, desc="animate")
        with bar:
            for index, (frame, driving) in enumerate(zip(itertools.chain([first], sources), reader)):
                landmarks = source_faces.update([frame])[0]
                source = (
                    first_source
                    if index == 0
                    else pipeline.animator.encode_source(
                        crop_face(frame, box, size), to_crop_pixels(landmarks, box, size)
                    )
                )
                batch = pipeline.driving_batch([driving], drive_box, driving_faces.update([driving]), options)
                face = SourceFace(source, box, None, mask)
                crops = pipeline.drive([face], batch, reference, plan.transfer, smoother)[2][0].frames
                writer.write(paste_crops(frame.copy(), frame, crops, box, mask) if plan.paste else crops)
                done += 1
                bar.update(1)
        for what, faces in ((source_path, source_faces), (driving_path, driving_faces)):
            faces.check_missing(what, done, options.max_missing, notes)
        if reader.frame_count and done < reader.frame_count:
            notes.append(f"{Path(source_path).name}: ends after {done} of the driver's frames; so does the output")
    return AnimationResult(
        Path(output_path),
        done,
        time.perf_counter() - start,
        0,
        notes,
        precision=pipeline.animator.precision,
        batch_size=1,
    )
