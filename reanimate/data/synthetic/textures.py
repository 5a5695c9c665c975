"""Textures of the synthetic videos: periodic (so a plane can be infinite), band-limited
rasters, and their bilinear sampling."""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["TEXELS_PER_FRAME", "background_texture", "part_texture", "sample_periodic"]

# Texture resolution: textures are rasters in their layer's local coordinates with
# TEXELS_PER_FRAME texels across one frame width, so a dataset looks the same at any
# `size` (only sharper). Sizes and periods below are in texels or fractions of the frame.
TEXELS_PER_FRAME = 128
_PART_TEXTURE_TEXELS = 64  # period of a part texture: half a frame, larger than any part
_BACKGROUND_TEXTURE_TEXELS = 256  # period of the background: two frames
# Gaussian low-pass applied to every texture (texels) so that bilinear sampling at one
# sample per pixel does not alias, and warping frame 0 reproduces the other frames.
_TEXTURE_BLUR_TEXELS = 1.5


# ---------------------------------------------------------------------------------------
# Textures: periodic rasters (so a plane can be infinite), band-limited.


def _frequency_radius(n: int) -> np.ndarray:
    f = np.fft.fftfreq(n)
    return np.hypot(f[:, None], f[None, :])  # cycles per texel


def _band_noise(rng: np.random.Generator, n: int, channels: int, min_period: float, max_period: float) -> np.ndarray:
    """``(n, n, channels)`` periodic Gaussian noise with unit std, features between
    ``min_period`` and ``max_period`` texels."""
    radius = _frequency_radius(n)
    band = np.exp(-((radius * min_period) ** 2)) * (1 - np.exp(-((radius * max_period) ** 2)))
    white = rng.standard_normal((channels, n, n))
    noise = np.fft.ifft2(np.fft.fft2(white) * band).real
    noise /= noise.std(axis=(1, 2), keepdims=True) + 1e-12
    return noise.transpose(1, 2, 0)


def _blur(texture: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian blur of ``(n, n, C)`` with ``sigma`` texels (in Fourier space)."""
    gain = np.exp(-2 * (np.pi * sigma * _frequency_radius(texture.shape[0])) ** 2)
    spectrum = np.fft.fft2(texture, axes=(0, 1)) * gain[..., None]
    return np.fft.ifft2(spectrum, axes=(0, 1)).real


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _stripes(rng: np.random.Generator, n: int, period: float) -> np.ndarray:
    """``(n, n)`` soft stripes in [0, 1], random direction, about ``period`` texels apart;
    the wave vector is rounded to whole cycles per texture so the texture stays periodic."""
    angle = rng.uniform(0, np.pi)
    cycles = n / period
    kx, ky = round(cycles * np.cos(angle)), round(cycles * np.sin(angle))
    if kx == 0 and ky == 0:
        kx = 1
    y, x = np.mgrid[0:n, 0:n]
    phase = 2 * np.pi * (kx * x + ky * y) / n + rng.uniform(0, 2 * np.pi)
    return 0.5 + 0.5 * np.tanh(2.5 * np.sin(phase))


def _spots(rng: np.random.Generator, n: int, min_period: float, max_period: float, threshold: float) -> np.ndarray:
    """``(n, n)`` soft blobs in [0, 1]: thresholded band-limited noise."""
    noise = _band_noise(rng, n, 1, min_period, max_period)[..., 0]
    return 1 / (1 + np.exp(-4 * (noise - threshold)))


# Part kinds of a puppet with palette "by_part": (base hue, contrast hue offset, stripes?).
# Every puppet then looks like a member of one class (as the faces or bodies of a real
# dataset do); textures still vary in saturation, brightness, noise and pattern phase.
_PART_LOOKS = {
    "torso": (0.62, 0.5, True),
    "head": (0.07, 0.45, False),
    "arm": (0.33, 0.55, True),
    "forearm": (0.45, 0.5, False),
    "leg": (0.15, 0.5, True),
    "shin": (0.85, 0.45, False),
}
# Hue jitter of a part kind's look.
_PART_HUE_JITTER = 0.03


def part_texture(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A bright, saturated colour with colour noise and stripes or spots of a contrasting
    colour; ``(n, n, 3)`` float32 in [0, 1]. ``kind`` (a key of ``_PART_LOOKS``) fixes
    the hues and the pattern type; None draws them at random."""
    n = _PART_TEXTURE_TEXELS
    if kind is None:
        hue = rng.random()
        contrast = rng.uniform(0.3, 0.7)
    else:
        hue, contrast, stripes = _PART_LOOKS[kind]
        hue += rng.uniform(-_PART_HUE_JITTER, _PART_HUE_JITTER)
    base = _hsv(hue, rng.uniform(0.45, 0.9), rng.uniform(0.55, 0.95))
    other = _hsv(hue + contrast, rng.uniform(0.3, 0.9), rng.uniform(0.15, 1.0))
    texture = base + 0.1 * _band_noise(rng, n, 3, 6, 24)
    if (rng.random() < 0.5) if kind is None else stripes:
        pattern = _stripes(rng, n, rng.uniform(10, 18))
    else:
        pattern = _spots(rng, n, 8, 20, threshold=0.6)
    texture += 0.8 * pattern[..., None] * (other - texture)
    return np.clip(_blur(texture, _TEXTURE_BLUR_TEXELS), 0, 1).astype(np.float32)


def background_texture(rng: np.random.Generator) -> np.ndarray:
    """A muted colour with colour noise and large blobs of a second muted colour, so camera
    motion is visible but the puppets stand out; ``(n, n, 3)`` float32 in [0, 1]."""
    n = _BACKGROUND_TEXTURE_TEXELS
    hue = rng.random()
    base = _hsv(hue, rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.7))
    other = _hsv(hue + rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.8))
    # mostly brightness noise: colour confetti would compete with the puppets' textures
    texture = base + 0.07 * _band_noise(rng, n, 1, 12, 96) + 0.025 * _band_noise(rng, n, 3, 12, 96)
    texture += 0.7 * _spots(rng, n, 24, 64, threshold=0.3)[..., None] * (other - texture)
    return np.clip(_blur(texture, _TEXTURE_BLUR_TEXELS), 0, 1).astype(np.float32)


def sample_periodic(texture: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of a periodic ``(n, n, C)`` texture at ``(M, 2)`` texel
    coordinates (x, y; texel centres at integers); returns ``(M, C)``."""
    n = texture.shape[0]
    floor = np.floor(points)
    frac = (points - floor).astype(np.float32)
    x0 = floor[:, 0].astype(np.int64) % n
    y0 = floor[:, 1].astype(np.int64) % n
    x1, y1 = (x0 + 1) % n, (y0 + 1) % n
    fx, fy = frac[:, :1], frac[:, 1:]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
