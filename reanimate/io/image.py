"""Still images: reading any common image file as RGB, fitting to a shape, tensor conversion.

Conventions used throughout :mod:`reanimate.io`:

* an *image* or *frame* is a ``numpy.ndarray`` of dtype ``uint8`` and shape
  ``(H, W, 3)``, channels in RGB order, values 0..255;
* a *batch tensor* is a ``torch.float32`` tensor of shape ``(N, 3, H, W)`` with values
  in ``[0, 1]``;
* a size given as ``(width, height)`` is called ``size``; a ``(height, width)`` pair, as
  used by numpy and torch, is called ``shape``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from reanimate.errors import InputError, OutputError

logger = logging.getLogger(__name__)

__all__ = [
    "read_image",
    "write_image",
    "fit_to_shape",
    "frames_to_tensor",
    "tensor_to_frames",
    "LUMA_WEIGHTS",
    "MAX_IMAGE_PIXELS",
]

#: Luma weights of ITU-R BT.601 for RGB, as torchvision and PIL use for greyscale.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: Modes that carry an alpha channel (or a transparency key) and are composited over white.
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
#: Integer modes holding more than 8 bits per sample; taken as 16-bit data (0..65535).
_WIDE_INT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_FIT_MODES = ("crop", "pad")
#: Images with more pixels are refused: 1e9 RGB pixels are 3 GB decoded. Pillow's own
#: decompression-bomb guard (a warning above ~89 Mpx, an error above ~179 Mpx) would also
#: catch ordinary photos of large sensors and scans, which read_image accepts.
MAX_IMAGE_PIXELS = 1_000_000_000
#: Serialises the rare reads that need Pillow's limit raised (it is a module global).
_LIMIT_LOCK = threading.Lock()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an RGB ``uint8`` array of shape ``(H, W, 3)``.

    The EXIF orientation tag is applied, so the array is upright as a viewer shows it.
    Multi-frame files (animated GIF/WebP, multi-page TIFF) give their first frame.
    Pixel formats are converted as follows:

    * RGBA / LA / palette or grey or RGB images with a transparency key: composited over
      white (a fully transparent pixel becomes ``(255, 255, 255)``);
    * grey (``L``), 1-bit (``1``), palette (``P``), CMYK, YCbCr, ...: converted by Pillow;
    * 16-bit grey (``I;16``, ``I;16B``, ...) and 32-bit integer ``I`` images: taken as
      0..65535 and scaled with rounding, so 65535 -> 255 and 0 -> 0 (``I`` values outside
      that range are clipped);
    * float ``F`` images: taken as 0..1 when every finite value lies in that range, else as
      0..255; clipped, NaN -> 0.

    Images of up to :data:`MAX_IMAGE_PIXELS` pixels are read without Pillow's
    ``DecompressionBombWarning``.

    Raises:
        InputError: the file is missing, is a folder, is not an image, is truncated or
            corrupt, or has more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
    path = Path(path)
    _check_is_file(path)
    try:
        try:
            return _read_rgb(path)
        except Image.DecompressionBombError:
            # Over Pillow's limit (~179 Mpx) but maybe not over ours: read again with it raised.
            with _pixel_limit(MAX_IMAGE_PIXELS):
                return _read_rgb(path)
    except PermissionError:
        raise InputError(path, "cannot be read (permission denied)") from None
    except UnidentifiedImageError:
        raise InputError(path, "not an image file (or an image format Pillow cannot read)") from None
    except Image.DecompressionBombError:
        raise InputError(
            path, f"image has more than {MAX_IMAGE_PIXELS:,} pixels, too many to read; downscale it first"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or damaged data as OSError / SyntaxError / ValueError.
        raise InputError(path, f"truncated or corrupt image data ({exc})") from None


#: Pillow save options by suffix (JPEG at quality 95; PNG and the rest lossless as given).
_IMAGE_SAVE = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}}


def write_image(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """A uint8 ``(H, W, 3)`` RGB frame to the image file ``path`` (the format from its
    suffix), atomically: nothing is left at ``path`` if writing fails."""
    from .files import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as temp:
        try:
            Image.fromarray(frame).save(temp, **_IMAGE_SAVE.get(path.suffix.lower(), {}))
        except OSError as exc:
            raise OutputError(path, f"cannot be written ({exc.strerror or exc})") from None
    return path


def _read_rgb(path: Path) -> np.ndarray:
    """Decode ``path`` to RGB, without Pillow's warning for big (not absurd) images."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.load()
            img = _exif_upright(img, path)
            return _to_rgb_array(img, path)


@contextlib.contextmanager
def _pixel_limit(pixels: int) -> Iterator[None]:
    """Let Pillow open images of up to ``pixels`` pixels for the duration of the block
    (Pillow raises its error above twice ``MAX_IMAGE_PIXELS``); a limit an application
    set higher, or switched off (``None``), is kept."""
    with _LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        if saved is not None and 2 * saved < pixels:
            Image.MAX_IMAGE_PIXELS = pixels // 2
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_is_file(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` is an existing regular file."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected an image file")
    if not path.is_file():
        raise InputError(path, "is not a regular file")


def _exif_upright(img: Image.Image, path: Path) -> Image.Image:
    """Apply the EXIF orientation tag; a broken EXIF block is ignored with a warning."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # damaged EXIF must not make a readable image unreadable
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", path, exc)
        return img


def _to_rgb_array(img: Image.Image, path: Path) -> np.ndarray:
    """Convert a loaded PIL image of any mode to a contiguous ``(H, W, 3)`` uint8 array."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        rgb = np.asarray(img, dtype=np.uint8)
    elif mode in _ALPHA_MODES or "transparency" in img.info:
        rgb = _composite_over_white(np.asarray(img.convert("RGBA"), dtype=np.uint8))
    elif mode in _WIDE_INT_MODES:
        rgb = _grey_to_rgb(_scale_16bit(np.asarray(img)))
    elif mode == "F":
        rgb = _grey_to_rgb(_scale_float(np.asarray(img, dtype=np.float32)))
    else:
        try:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (ValueError, OSError) as exc:
            raise InputError(path, f"unsupported image mode {mode!r} ({exc})") from None
    return np.ascontiguousarray(rgb)


def _composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA -> ``(H, W, 3)`` uint8 RGB over a white background, rounded."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Integer samples in 0..65535 (clipped) -> uint8 with rounding (65535 -> 255)."""
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Float samples (0..1 if they all fit, else 0..255) -> uint8, clipped, NaN -> 0."""
    values = np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf)
    finite = values[np.isfinite(values)]
    unit_range = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
    scaled = values * 255.0 if unit_range else values
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` -> ``(H, W, 3)`` by repeating the channel."""
    return np.repeat(grey[..., None], 3, axis=2)


def fit_to_shape(image: np.ndarray, shape: tuple[int, int], mode: str = "crop") -> tuple[np.ndarray, str | None]:
    """Resize an ``(H, W, 3)`` uint8 image to ``shape = (height, width)``.

    When the aspect ratios differ, ``mode="crop"`` first centre-crops the image to the
    target aspect ratio, and ``mode="pad"`` instead scales the whole image to fit inside
    the target and fills the rest with black bars (letterbox / pillarbox), the image
    centred. Resampling is Lanczos (antialiased when shrinking). An image already of the
    target shape is returned as is (the same object, no resampling).

    Returns:
        ``(resized, note)``: ``resized`` is a new ``(height, width, 3)`` uint8 array (or
        ``image`` itself), ``note`` a one-line description when the image was cropped or
        padded, else ``None``.
    """
    _check_frame(image, "image")
    target_h, target_w = _check_shape(shape)
    if mode not in _FIT_MODES:
        raise ValueError(f"mode must be one of {_FIT_MODES}, got {mode!r}")
    height, width = image.shape[:2]
    if (height, width) == (target_h, target_w):
        return image, None
    if mode == "pad":
        return _fit_pad(image, target_h, target_w)
    return _fit_crop(image, target_h, target_w)


def _fit_crop(image: np.ndarray, target_h: int, target_w: int) -> tuple[np.ndarray, str | None]:
    """Centre-crop to the target aspect ratio, then resize."""
    height, width = image.shape[:2]
    crop_w = min(width, max(1, round(height * target_w / target_h)))
    crop_h = min(height, max(1, round(width * target_h / target_w)))
    note = None
    if (crop_h, crop_w) != (height, width):
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        image = image[top : top + crop_h, left : left + crop_w]
        note = (
            f"{width}x{height} input centre-cropped to {crop_w}x{crop_h} before resizing "
            f"to {target_w}x{target_h} (use --pad to letterbox instead)"
        )
    return _resize(image, target_h, target_w), note


def _fit_pad(image: np.ndarray, target_h: int, target_w: int) -> tuple[np.ndarray, str | None]:
    """Scale to fit inside the target, then centre on a black canvas."""
    height, width = image.shape[:2]
    scale = min(target_w / width, target_h / height)
    inner_w = min(target_w, max(1, round(width * scale)))
    inner_h = min(target_h, max(1, round(height * scale)))
    resized = _resize(image, inner_h, inner_w)
    if (inner_h, inner_w) == (target_h, target_w):
        return resized, None
    canvas = np.zeros((target_h, target_w, 3), dtype=np.uint8)
    top, left = (target_h - inner_h) // 2, (target_w - inner_w) // 2
    canvas[top : top + inner_h, left : left + inner_w] = resized
    bars = "top and bottom" if inner_h < target_h else "left and right"
    note = (
        f"{width}x{height} input scaled to {inner_w}x{inner_h} and padded with black bars "
        f"({bars}) to {target_w}x{target_h}"
    )
    return canvas, note


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(H, W, C)`` (uint8 or float) with area averaging when shrinking (no
    aliasing) and bilinear interpolation when enlarging; returned as is when the size
    already matches."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height <= image.shape[0] and width <= image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """High-quality (Lanczos, antialiased) resize of an ``(H, W, 3)`` uint8 array."""
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8)


def _check_frame(frame: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless ``frame`` is a uint8 ``(H, W, 3)`` array."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a uint8 numpy array, got {type(frame).__name__} {getattr(frame, 'dtype', '')}"
        )
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"{name} must have shape (H, W, 3), got {frame.shape}")


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    """Validate a ``(height, width)`` pair of positive integers."""
    if len(shape) != 2 or any(int(v) != v or v < 1 for v in shape):
        raise ValueError(f"shape must be (height, width) with positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1])


def frames_to_tensor(frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 frames -> float32 tensor ``(N, 3, H, W)`` in ``[0, 1]`` (value / 255).

    Args:
        frames: a uint8 array ``(N, H, W, 3)`` or a non-empty sequence of uint8
            ``(H, W, 3)`` arrays of equal shape.
    """
    if isinstance(frames, np.ndarray):
        batch = frames
    else:
        frames = list(frames)
        if not frames:
            raise ValueError("frames_to_tensor needs at least one frame")
        for frame in frames:
            _check_frame(frame, "frame")
        batch = np.stack(frames)
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3:
        raise ValueError(f"frames must be uint8 with shape (N, H, W, 3), got {batch.dtype} {batch.shape}")
    # np.require copies only what is not C-contiguous or not writable (decoded frames may be read-only).
    tensor = torch.from_numpy(np.require(batch, requirements=("C", "W"))).to(torch.float32).div_(255.0)
    return tensor.permute(0, 3, 1, 2).contiguous()


def tensor_to_frames(t: torch.Tensor) -> np.ndarray:
    """Float tensor ``(N, 3, H, W)`` in ``[0, 1]`` -> uint8 array ``(N, H, W, 3)``.

    Values are clamped to ``[0, 1]`` (NaN -> 0), scaled by 255 and rounded to nearest.
    The tensor may live on any device; the result is a new CPU array.
    """
    if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"expected a tensor of shape (N, 3, H, W), got {getattr(t, 'shape', t)!r}")
    if not t.is_floating_point():
        raise ValueError(f"expected a floating point tensor, got {t.dtype}")
    values = t.detach().to(torch.float32)  # fp16/bf16 cannot hold x * 255 precisely
    scaled = torch.nan_to_num(values, nan=0.0).clamp(0.0, 1.0).mul(255.0).round_()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
