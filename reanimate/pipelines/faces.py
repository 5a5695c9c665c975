"""Face landmarks and head pose of every frame of an image or video, as JSON records."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import OutputError
from ..faces import Face, FaceMesh
from ..io import atomic_path, is_image_path, open_frames, read_image

#: Decimal places kept for pixel coordinates and angles in the records.
DEFAULT_DECIMALS = 2


def face_record(face: Face, decimals: int = DEFAULT_DECIMALS) -> dict:
    """A JSON-ready description of one face: ``box`` ``[x0, y0, x1, y1]``, ``yaw``,
    ``pitch``, ``roll`` (degrees, see :class:`reanimate.faces.HeadPose`) and
    ``landmarks`` (478 ``[x, y, z]`` in pixels), rounded to ``decimals`` places."""
    pose = face.pose
    return {
        "box": [round(float(v), decimals) for v in face.box],
        "yaw": round(pose.yaw, decimals),
        "pitch": round(pose.pitch, decimals),
        "roll": round(pose.roll, decimals),
        "landmarks": face.landmarks.astype(float).round(decimals).tolist(),
    }


def describe_faces(
    input_path: str | os.PathLike, max_faces: int = 5, decimals: int = DEFAULT_DECIMALS, progress: bool = False
) -> Iterator[dict]:
    """One record per frame: ``{"frame": index, "faces": [face_record, ...]}``, largest face
    first. An image gives one record (frame 0); a video or frame folder one per frame,
    with MediaPipe in tracking mode."""
    path = Path(input_path)
    if is_image_path(path) and not path.is_dir():
        image = read_image(path)
        with FaceMesh(max_faces=max_faces) as mesh:
            yield {"frame": 0, "faces": [face_record(f, decimals) for f in mesh.detect(image)]}
        return
    with open_frames(path) as reader, FaceMesh(max_faces=max_faces, video=True) as mesh:
        frames = tqdm(
            reader,
            total=reader.frame_count,
            unit="frame",
            desc="faces",
            disable=None if progress else True,
            dynamic_ncols=True,
        )
        with frames:
            for index, frame in enumerate(frames):
                yield {"frame": index, "faces": [face_record(f, decimals) for f in mesh.detect(frame)]}


def save_face_records(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    max_faces: int = 5,
    decimals: int = DEFAULT_DECIMALS,
    progress: bool = True,
) -> int:
    """Write :func:`describe_faces` to ``output_path`` as JSON lines, atomically (nothing
    is left there on error). Returns the number of frames."""
    output = Path(output_path)
    if not output.parent.is_dir():
        raise OutputError(output, f"output folder {output.parent} does not exist")
    count = 0
    with atomic_path(output) as temp:
        try:
            stream = open(temp, "w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(output, f"cannot be written ({exc.strerror or exc})") from None
        with stream:
            for record in describe_faces(input_path, max_faces, decimals, progress):
                stream.write(json.dumps(record, separators=(",", ":")) + "\n")
                count += 1
    return count
