"""Cut face videos out of a longer video: the official FOMM ``crop-video.py``, end to end.

Pass 1 decodes the video once and runs MediaPipe's face mesh on every frame, keeping only
the face boxes, which are linked into tracks (:mod:`reanimate.faces.tracking`). Tracks
shorter than ``min_frames`` are dropped. Pass 2 decodes the video again and writes one
square video per track, following the face with a smoothed crop box, at the input's frame
rate and with the audio of the track's time span. Memory does not grow with the video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError, ReanimateError
from ..faces import FaceMesh, FaceTrack, FaceTracker, crop_face, track_crop_boxes
from ..io import FrameReader, FrameWriter, open_frames, open_writer

log = logging.getLogger(__name__)

#: Defaults of the official crop-video.py: --increase, --iou_with_initial, --min_frames,
#: --image_shape.
DEFAULT_INCREASE = 0.1
DEFAULT_IOU = 0.25
DEFAULT_MIN_FRAMES = 150
DEFAULT_IMAGE_SHAPE = (256, 256)
#: Gaussian smoothing of the crop box over time, in frames (0: none).
DEFAULT_SMOOTH = 2.0


@dataclass
class _PlannedClip:
    """One output: a track's frame span and its crop box for each frame."""

    path: Path
    start: int
    end: int
    boxes: np.ndarray  # (end - start, 4) int64


def _check_options(
    increase: float,
    image_shape: Sequence[int],
    min_frames: int,
    iou_threshold: float,
    smooth: float,
    max_faces: int,
    max_gap: int,
) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ReanimateError(f"--image-shape must be two integers (height, width), got {image_shape!r}") from None
    checks = [  # named as the command-line options
        (height >= 16 and width >= 16, f"--image-shape must be at least 16,16, got {height},{width}"),
        (increase >= 0, f"--increase must be >= 0, got {increase}"),
        (min_frames >= 1, f"--min-frames must be at least 1, got {min_frames}"),
        (0 <= iou_threshold < 1, f"--iou must be in [0, 1), got {iou_threshold}"),
        (smooth >= 0, f"--smooth must be >= 0 frames, got {smooth}"),
        (max_faces >= 1, f"--max-faces must be at least 1, got {max_faces}"),
        (max_gap >= 0, f"--max-gap must be >= 0 frames, got {max_gap}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ReanimateError(message)
    return height, width


def find_face_tracks(
    video_path: str | os.PathLike,
    iou_threshold: float = DEFAULT_IOU,
    max_gap: int = 0,
    max_faces: int = 5,
    against_initial: bool = False,
    progress: bool = True,
) -> tuple[list[FaceTrack], int]:
    """Pass 1: face tracks of a video (boxes only). Returns ``(tracks, frame count)``."""
    with open_frames(video_path) as reader, FaceMesh(max_faces=max_faces, video=True) as mesh:
        bar = tqdm(
            reader,
            total=reader.frame_count,
            unit="frame",
            desc="find faces",
            disable=None if progress else True,
            dynamic_ncols=True,
        )
        tracker = FaceTracker(iou_threshold, max_gap, against_initial)
        with bar:
            for frame in bar:
                tracker.update(mesh.detect(frame))
    return tracker.finish(), tracker.frames


def crop_video(
    video_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    increase: float = DEFAULT_INCREASE,
    image_shape: Sequence[int] = DEFAULT_IMAGE_SHAPE,
    min_frames: int = DEFAULT_MIN_FRAMES,
    iou_threshold: float = DEFAULT_IOU,
    smooth: float = DEFAULT_SMOOTH,
    max_gap: int = 0,
    max_faces: int = 5,
    fixed: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Write one square face video per face track of ``video_path`` into ``out_dir``.

    Args:
        video_path: a video file (or a folder of frames).
        out_dir: output folder (created if missing); outputs are
            ``<stem>_track<i>.mp4`` (H.264), ``i`` counting kept tracks from 0 in order of
            their first frame. Existing files of those names are replaced.
        increase: margin around the face box on each side, as a fraction of its longer
            side (the official ``--increase``).
        image_shape: ``(height, width)`` of the output frames (official ``--image_shape``).
        min_frames: tracks with fewer frames are not written (official ``--min_frames``).
        iou_threshold: IoU linking a detection to a track (official ``--iou_with_initial``).
        smooth: Gaussian smoothing of the crop box over time, in frames (0: none).
        max_gap: frames a face may be missed before its track ends (0: as the official).
        max_faces: faces looked for per frame.
        fixed: one crop box per track (the union of its face boxes), compared with the
            track's first box, as the official script does; otherwise the crop follows the face.
        progress: show progress bars.

    Returns:
        The written videos, in track order.

    Raises:
        InputError: the video cannot be read, or no face track is ``min_frames`` long
            (then nothing is written).
    """
    height, width = _check_options(increase, image_shape, min_frames, iou_threshold, smooth, max_faces, max_gap)
    video_path, out_dir = Path(video_path), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder")
    tracks, frame_count = find_face_tracks(
        video_path, iou_threshold, max_gap, max_faces, against_initial=fixed, progress=progress
    )
    kept = [track for track in tracks if len(track) >= min_frames]
    log.info(
        "%s: %d frames, %d face tracks, %d of at least %d frames",
        video_path,
        frame_count,
        len(tracks),
        len(kept),
        min_frames,
    )
    if not kept:
        if not tracks:
            raise InputError(video_path, f"no face found in its {frame_count} frames; nothing written")
        longest = max(len(track) for track in tracks)
        raise InputError(
            video_path,
            f"no face track is {min_frames} frames long (the longest has "
            f"{longest} of {frame_count} frames); nothing written. Lower --min-frames "
            f"or allow gaps (--max-gap)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_frames(video_path) as reader:
        frame_size = (reader.size[1], reader.size[0])
        clips = [
            _PlannedClip(
                out_dir / f"{video_path.stem}_track{index}.mp4",
                track.start,
                track.end,
                track_crop_boxes(track.boxes, frame_size, increase, smooth, fixed),
            )
            for index, track in enumerate(kept)
        ]
        _write_clips(reader, clips, (height, width), video_path if reader.has_audio else None, progress)
    return [clip.path for clip in clips]


def _write_clips(
    reader: FrameReader, clips: list[_PlannedClip], shape: tuple[int, int], audio_from: Path | None, progress: bool
) -> None:
    """Pass 2: decode once more and feed each frame to the clips that include it.

    A writer is opened at its clip's first frame and closed (published) after its last.
    On any error the open writers are discarded and the clips already published by this
    call are removed, so a failed run leaves no outputs.
    """
    fps = reader.fps
    last = max(clip.end for clip in clips)
    writers: dict[int, FrameWriter] = {}
    published: list[Path] = []
    bar = tqdm(total=last, unit="frame", desc="crop", disable=None if progress else True, dynamic_ncols=True)
    index = -1
    try:
        with bar:
            for index, frame in enumerate(reader):
                if index >= last:
                    break
                for number, clip in enumerate(clips):
                    if index == clip.start:
                        writers[number] = open_writer(
                            clip.path, fps, audio_from=audio_from, audio_range=(clip.start / fps, clip.end / fps)
                        )
                    if clip.start <= index < clip.end:
                        writers[number].write(crop_face(frame, clip.boxes[index - clip.start], shape))
                    if index == clip.end - 1:
                        writers.pop(number).close()
                        published.append(clip.path)
                bar.update(1)
        if writers:
            raise InputError(
                reader.path, f"the video ended at frame {index + 1} on the second read, earlier than on the first"
            )
    except BaseException:
        for writer in writers.values():
            writer.abort()
        for path in published:
            path.unlink(missing_ok=True)
        raise
