"""Image and video input/output.

Frames are ``uint8`` numpy arrays ``(H, W, 3)`` in RGB order; model batches are float32
tensors ``(N, 3, H, W)`` in ``[0, 1]``. Bad input raises :class:`reanimate.errors.InputError`,
an output that cannot be written :class:`reanimate.errors.OutputError`.

Modules: :mod:`~reanimate.io.files` (paths, frame-folder listing, atomic writes),
:mod:`~reanimate.io.image` (still images), :mod:`~reanimate.io.reading` (streaming video
and frame-folder input), :mod:`~reanimate.io.writing` (streaming, atomic video output),
:mod:`~reanimate.io.audio` (the audio track of outputs), :mod:`~reanimate.io.clips`
(frames by index, for datasets).
"""

from reanimate.io.files import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    atomic_path,
    is_image_path,
    is_video_path,
    list_frame_files,
    natural_sort_key,
    remove_path,
    replace_path,
    temp_sibling,
    write_bytes_atomic,
    write_text_atomic,
)
from reanimate.io.image import fit_to_shape, frames_to_tensor, read_image, tensor_to_frames, write_image
from reanimate.io.reading import FrameReader, open_frames
from reanimate.io.writing import FrameWriter, open_writer

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameReader",
    "FrameWriter",
    "atomic_path",
    "fit_to_shape",
    "frames_to_tensor",
    "is_image_path",
    "is_video_path",
    "list_frame_files",
    "natural_sort_key",
    "open_frames",
    "open_writer",
    "read_image",
    "write_image",
    "remove_path",
    "replace_path",
    "temp_sibling",
    "tensor_to_frames",
    "write_bytes_atomic",
    "write_text_atomic",
]
