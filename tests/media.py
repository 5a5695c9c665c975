"""Synthetic, deterministic test media: frames, videos (with optional audio), images.

Import from tests as ``from media import make_video, make_image``. Sizes are
``(width, height)``; frames are ``uint8 (H, W, 3)`` RGB. Videos are written directly with
PyAV so that reader tests do not depend on :mod:`reanimate.io`'s writer.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

AUDIO_RATE = 44100
_SEED = 1234

# extension -> (muxer, video codec, audio codec or None)
_CONTAINERS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".avi": ("avi", "libx264", "aac"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
    ".gif": ("gif", "gif", None),
}


def synthetic_frames(num_frames: int = 16, size: tuple[int, int] = (64, 48), pattern: str = "moving") -> np.ndarray:
    """Deterministic frames, uint8 ``(N, H, W, 3)``.

    ``"moving"``: a smooth colour gradient with a soft-edged disc moving across it (every
    frame differs, little high-frequency content, so lossy codecs reproduce it well);
    ``"static"``: the first "moving" frame repeated; ``"noise"``: seeded uniform noise.
    """
    width, height = size
    if pattern == "noise":
        rng = np.random.default_rng(_SEED)
        return rng.integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)
    if pattern == "static":
        return np.repeat(synthetic_frames(1, size)[:1], num_frames, axis=0)
    if pattern != "moving":
        raise ValueError(f"unknown pattern {pattern!r}")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    radius = max(2.0, min(width, height) / 5)
    for index in range(num_frames):
        phase = index / max(1, num_frames)
        background = np.stack(
            [
                40 + 160 * xx / max(1, width - 1),
                40 + 160 * yy / max(1, height - 1),
                np.full_like(xx, 60 + 120 * phase),
            ],
            axis=-1,
        )
        cx = radius + (width - 2 * radius) * phase
        cy = height / 2 + (height / 4) * math.sin(2 * math.pi * phase)
        distance = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        disc = np.clip(radius - distance + 1.5, 0.0, 3.0)[..., None] / 3.0  # soft edge
        colour = np.array([230.0, 60.0, 40.0], dtype=np.float32)
        frames[index] = np.rint(background * (1 - disc) + colour * disc).astype(np.uint8)
    return frames


def sine_wave(seconds: float, rate: int = AUDIO_RATE, frequency: float = 440.0) -> np.ndarray:
    """Mono float32 samples, shape ``(1, n)``, amplitude 0.3."""
    n = max(1, round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)[None, :]


def make_video(
    path: str | Path,
    num_frames: int = 16,
    size: tuple[int, int] = (64, 48),
    fps: float | Fraction = 25,
    audio: bool = False,
    pattern: str = "moving",
) -> Path:
    """Write a synthetic video (format by extension: mp4, mov, mkv, avi, webm, gif).

    The frames are ``synthetic_frames(num_frames, size, pattern)``. With ``audio=True`` a
    440 Hz sine track (AAC; Opus for WebM) of the video's duration is added. Returns the path.
    """
    path = Path(path)
    muxer, video_codec, audio_codec = _CONTAINERS[path.suffix.lower()]
    if audio and audio_codec is None:
        raise ValueError(f"{path.suffix} cannot carry audio")
    rate = Fraction(fps).limit_denominator(100000)
    frames = synthetic_frames(num_frames, size, pattern)
    with av.open(str(path), mode="w", format=muxer) as container:
        video = _add_video_stream(container, video_codec, rate, size)
        sound = _add_audio_stream(container, audio_codec) if audio else None
        samples = sine_wave(num_frames / rate, sound.rate) if sound else None
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if video_codec == "gif":
                video_frame = video_frame.reformat(format="rgb8")
            video_frame.pts = index
            container.mux(video.encode(video_frame))
            if sound is not None:
                _encode_audio_span(container, sound, samples, index, rate)
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))
    return path


def _add_video_stream(container, codec: str, rate: Fraction, size: tuple[int, int]):
    width, height = size
    stream = container.add_stream(codec, rate=rate, time_base=1 / rate)
    stream.width, stream.height = width, height
    if codec == "gif":
        stream.pix_fmt = "rgb8"
    elif codec == "libx264" and (width % 2 or height % 2):
        stream.pix_fmt = "yuv444p"  # 4:2:0 needs even sizes
    else:
        stream.pix_fmt = "yuv420p"
    if codec == "libx264":
        stream.options = {"crf": "18", "preset": "veryfast"}
    elif codec == "libvpx-vp9":
        stream.options = {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}
    return stream


def _add_audio_stream(container, codec: str):
    rate = 48000 if codec == "libopus" else AUDIO_RATE
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono"
    return stream


def _encode_audio_span(container, stream, samples: np.ndarray, index: int, rate: Fraction) -> None:
    """Encode the audio samples that belong to video frame ``index``."""
    start = round(index / rate * stream.rate)
    stop = min(samples.shape[1], round((index + 1) / rate * stream.rate))
    if stop <= start:
        return
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:stop]), format="fltp", layout="mono")
    frame.sample_rate = stream.rate
    frame.pts = start
    frame.time_base = Fraction(1, stream.rate)
    container.mux(stream.encode(frame))


def make_empty_video(path: str | Path, size: tuple[int, int] = (64, 48)) -> Path:
    """An .mp4/.mkv with a video stream but no frames."""
    path = Path(path)
    muxer, codec, _ = _CONTAINERS[path.suffix.lower()]
    with av.open(str(path), mode="w", format=muxer) as container:
        stream = _add_video_stream(container, codec, Fraction(25), size)
        container.start_encoding()  # write the header even though no packet follows
        container.mux(stream.encode(None))
    return path


def make_audio_file(path: str | Path, seconds: float = 0.5) -> Path:
    """An audio-only file (e.g. ``.m4a`` or ``.mp4``): AAC sine wave, no video stream."""
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = _add_audio_stream(container, "aac")
        samples = sine_wave(seconds, stream.rate)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = stream.rate, 0
        frame.time_base = Fraction(1, stream.rate)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_frames_folder(
    path: str | Path,
    num_frames: int = 16,
    size: tuple[int, int] = (64, 48),
    name_format: str = "{:06d}.png",
    pattern: str = "moving",
) -> Path:
    """Write ``synthetic_frames(...)`` as image files named ``name_format.format(i)``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(synthetic_frames(num_frames, size, pattern)):
        Image.fromarray(frame).save(path / name_format.format(index))
    return path


def make_image(
    path: str | Path, size: tuple[int, int] = (64, 48), mode: str = "RGB", array: np.ndarray | None = None
) -> Path:
    """Write an image in PIL ``mode``; the format follows the extension.

    Content: ``array`` when given (must suit the mode: uint8 (H, W[, C]); uint16 for I;16
    and I;16B; int32 for I; float32 for F), else a smooth synthetic picture derived from
    ``synthetic_frames(1, size)[0]``. Use .png for RGB/RGBA/L/LA/P/1/I;16, .tif for
    I;16B/I/F/CMYK, .jpg for RGB/L/CMYK.
    """
    path = Path(path)
    img = _image_from_array(array, mode) if array is not None else _synthetic_image(size, mode)
    img.save(path)
    return path


def _image_from_array(array: np.ndarray, mode: str) -> Image.Image:
    height, width = array.shape[:2]
    if mode == "I;16B":
        return Image.frombytes(mode, (width, height), array.astype(">u2").tobytes())
    if mode == "I;16":
        return Image.frombytes(mode, (width, height), array.astype("<u2").tobytes())
    img = Image.fromarray(np.ascontiguousarray(array))
    if img.mode != mode:
        img = img.convert(mode)
    return img


def _synthetic_image(size: tuple[int, int], mode: str) -> Image.Image:
    rgb = synthetic_frames(1, size)[0]
    grey = rgb.mean(axis=2)
    if mode in ("I;16", "I;16B"):
        return _image_from_array(np.rint(grey * 257).astype(np.uint16), mode)
    if mode == "I":
        return Image.fromarray(np.rint(grey * 257).astype(np.int32))
    if mode == "F":
        return Image.fromarray((grey / 255).astype(np.float32))
    if mode in ("RGBA", "LA"):
        alpha = np.linspace(0, 255, size[0], dtype=np.float32)[None, :].repeat(size[1], 0)
        rgba = np.dstack([rgb, np.rint(alpha).astype(np.uint8)])
        return Image.fromarray(rgba).convert(mode)
    if mode == "P":
        return Image.fromarray(rgb).quantize(64)
    return Image.fromarray(rgb).convert(mode)
