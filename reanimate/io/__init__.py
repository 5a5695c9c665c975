"""Image and video input/output.

Frames are ``uint8`` numpy arrays ``(H, W, 3)`` in RGB order; model batches are float32
tensors ``(N, 3, H, W)`` in ``[0, 1]``. Bad input raises :class:`reanimate.errors.InputError`.
"""

from reanimate.io.files import write_text_atomic
from reanimate.io.image import fit_to_shape, frames_to_tensor, read_image, tensor_to_frames
from reanimate.io.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FrameReader,
    FrameWriter,
    is_image_path,
    is_video_path,
    natural_sort_key,
    open_frames,
    open_writer,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameReader",
    "FrameWriter",
    "fit_to_shape",
    "frames_to_tensor",
    "is_image_path",
    "is_video_path",
    "natural_sort_key",
    "open_frames",
    "open_writer",
    "read_image",
    "tensor_to_frames",
    "write_text_atomic",
]
