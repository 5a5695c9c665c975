"""Synthetic benchmark with exact ground-truth motion.

Videos of textured 2-D puppets (a torso with a head, arms and legs made of rigid parts in a
kinematic tree) moving smoothly over a textured background, some with a moving camera.
Every frame is rendered by backward mapping through the layers' affine transforms, so the
true motion is known at every pixel: for frame ``t`` the *ground-truth map* gives, for
each pixel, where the surface seen there was in frame 0 (the source frame of the
reconstruction protocol). Training on this data can then be checked against true motion
rather than only against reconstruction error.

Scene model. A video is a stack of layers, back to front: the background plane (infinite,
periodic texture), then the puppet parts in a fixed depth order. Each layer ``L`` has a
texture and a shape (a rounded box; a capsule for limbs, a disc for heads) in its own
local coordinates, and per frame an affine transform ``A_t`` (3x3, local -> image pixel
coordinates). A pixel centre ``p`` of frame ``t`` shows the front-most layer whose shape
contains ``A_t^-1 p``; its ground-truth map is ``A_0 A_t^-1 p``, and it is *visible* in
frame 0 when that layer is also the front-most one at ``A_0 A_t^-1 p`` in frame 0 and that
point lies within the frame (between the centres of the border pixels).

Images are anti-aliased: layer edges have a one-pixel-wide smooth coverage ramp (from the
signed distance to the shape) and textures are band-limited before bilinear sampling.
The ground truth is defined by the hard layer membership at pixel centres, so on the one
ring of edge pixels where colours are mixed, warping frame 0 reproduces the frame only
approximately.

On disk (the official FOMM frame-folder layout, so training reads it unchanged)::

    OUT/synthetic.json                       config, format description, video list
    OUT/train/video_00000/00000.png ...      frames, RGB PNG
    OUT/train/video_00000.flow.npz           ground truth: flow, visible
    OUT/test/...

``flow`` is ``(T, H, W, 2)`` (float16 by default), normalised coordinates x first in
[-1, 1] with -1 and 1 the centres of the corner pixels (``grid_sample(...,
align_corners=True)``), exactly FOMM's dense ``deformation`` from a driving frame ``t``
into the source frame 0; ``visible`` is ``(T, H, W)`` bool. Frame 0's map is the identity.
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import json
import logging
import os
import secrets
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from reanimate.errors import InputError, ReanimateError
from reanimate.io.video import is_video_path

logger = logging.getLogger(__name__)

__all__ = [
    "PRESETS",
    "SyntheticConfig",
    "flow_path",
    "load_flow",
    "make_synthetic",
    "render_video",
    "FLOW_SUFFIX",
    "METADATA_NAME",
]

FORMAT_NAME = "reanimate-synthetic"
FORMAT_VERSION = 1
#: Suffix of the ground-truth file written beside each video folder.
FLOW_SUFFIX = ".flow.npz"
#: Name of the dataset description at the top of the output folder.
METADATA_NAME = "synthetic.json"
SPLITS = ("train", "test")

# Texture resolution: textures are rasters in their layer's local coordinates with
# _TEXELS_PER_FRAME texels across one frame width, so a dataset looks the same at any
# `size` (only sharper). Sizes and periods below are in texels or fractions of the frame.
_TEXELS_PER_FRAME = 128
_PART_TEXTURE_TEXELS = 64  # period of a part texture: half a frame, larger than any part
_BACKGROUND_TEXTURE_TEXELS = 256  # period of the background: two frames
# Gaussian low-pass applied to every texture (texels) so that bilinear sampling at one
# sample per pixel does not alias, and warping frame 0 reproduces the other frames.
_TEXTURE_BLUR_TEXELS = 1.5
# Puppet proportions, ranges (min, max) in fractions of the frame for one puppet alone:
# large enough that every part spans several pixels at 64x64.
_TORSO_HALF_WIDTH = (0.08, 0.11)
_TORSO_HALF_HEIGHT = (0.11, 0.15)
_HEAD_RADIUS = (0.065, 0.085)
_LIMB_LENGTH = (0.13, 0.19)  # per segment, joint to joint
_LIMB_HALF_WIDTH = (0.04, 0.055)
# Slots where limbs attach to the torso: (kind, anchor on the torso as fractions of its
# half extents (x, y), rest angle in degrees; image y points down, so 90 deg is down).
_LIMB_SLOTS = (
    ("head", (0.0, -1.0), -90.0),
    ("arm", (-1.0, -0.6), 180.0),
    ("arm", (1.0, -0.6), 0.0),
    ("leg", (-0.5, 1.0), 100.0),
    ("leg", (0.5, 1.0), 80.0),
)


@dataclass
class SyntheticConfig:
    """Parameters of a synthetic dataset. Lengths are fractions of the frame size.

    Attributes:
        size: frames are ``size x size`` pixels.
        num_frames: frames per video.
        num_train, num_test: number of videos in each split.
        seed: everything is a deterministic function of the seed (and of the other
            fields); a video depends only on the seed, its split and its index.
        camera_motion_fraction: share of the videos of each split (rounded) where the
            camera moves: a smooth global affine motion of the whole image.
        puppets_per_video: inclusive range of the number of puppets in a video.
        limbs_per_puppet: inclusive range of the number of limbs (head, arms, legs; at
            most 5) attached to a puppet's torso.
        second_segment_probability: chance that an arm or leg has a second segment
            (forearm, shin) on an elbow/knee joint.
        puppet_size: overall scale of a puppet (torso height about ``0.24 * puppet_size``
            of the frame); with several puppets each is shrunk by ``1/sqrt(n)``.
        puppet_translation: largest displacement of a puppet along each axis.
        puppet_rotation_deg: largest rotation of a whole puppet.
        puppet_scale: a puppet's scale varies within ``[1/(1+s), 1+s]``.
        joint_angle_deg: largest swing of a joint around its rest angle (heads: half).
        camera_translation, camera_rotation_deg, camera_scale, camera_shear: largest
            camera motion (translation per axis, rotation, log-scale as for puppets,
            shear factor) in camera-motion videos.
        motion_periods: range of the periods (frames) of the sinusoids that drive every
            motion parameter; each parameter is a sum of two of them with random phases,
            so motion is smooth and frame 0 is not a rest pose.
        flow_dtype: ``"float16"`` (about 0.02 px precision at 64 px) or ``"float32"``.
        part_palette: ``"random"`` (every part its own random hues and pattern) or
            ``"by_part"`` (torso, head, arms, forearms, legs and shins each keep one
            look across videos, so that puppets form one object class like the faces
            of a real dataset).
    """

    size: int = 64
    num_frames: int = 32
    num_train: int = 200
    num_test: int = 20
    seed: int = 0
    camera_motion_fraction: float = 0.3
    puppets_per_video: tuple[int, int] = (1, 2)
    limbs_per_puppet: tuple[int, int] = (2, 4)
    second_segment_probability: float = 0.5
    puppet_size: float = 1.0
    puppet_translation: float = 0.15
    puppet_rotation_deg: float = 25.0
    puppet_scale: float = 0.15
    joint_angle_deg: float = 45.0
    camera_translation: float = 0.08
    camera_rotation_deg: float = 8.0
    camera_scale: float = 0.08
    camera_shear: float = 0.05
    motion_periods: tuple[float, float] = (24.0, 64.0)
    flow_dtype: str = "float16"
    part_palette: str = "random"

    def __post_init__(self) -> None:
        self.puppets_per_video = tuple(self.puppets_per_video)
        self.limbs_per_puppet = tuple(self.limbs_per_puppet)
        self.motion_periods = tuple(self.motion_periods)

    def validate(self) -> None:
        """Raise :class:`ReanimateError` (one line naming the field) on a bad value."""
        def bad(name: str, problem: str) -> ReanimateError:
            return ReanimateError(f"synthetic dataset: {name}={getattr(self, name)!r} {problem}")

        if self.size < 8:
            raise bad("size", "is too small (use at least 8)")
        if self.num_frames < 1:
            raise bad("num_frames", "must be at least 1")
        for name in ("num_train", "num_test"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if not 0.0 <= self.camera_motion_fraction <= 1.0:
            raise bad("camera_motion_fraction", "must be between 0 and 1")
        lo, hi = self.puppets_per_video
        if not 1 <= lo <= hi:
            raise bad("puppets_per_video", "must be a range (min, max) with 1 <= min <= max")
        lo, hi = self.limbs_per_puppet
        if not 0 <= lo <= hi <= len(_LIMB_SLOTS):
            raise bad("limbs_per_puppet", f"must be a range (min, max) within 0..{len(_LIMB_SLOTS)}")
        lo, hi = self.motion_periods
        if not 0 < lo <= hi:
            raise bad("motion_periods", "must be a range (min, max) of positive periods")
        if self.part_palette not in ("random", "by_part"):
            raise bad("part_palette", "must be 'random' or 'by_part'")
        if self.flow_dtype not in ("float16", "float32"):
            raise bad("flow_dtype", "must be 'float16' or 'float32'")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def preset(cls, name: str, **overrides) -> "SyntheticConfig":
        """The named dataset of :data:`PRESETS`, with ``overrides`` of any field."""
        if name not in PRESETS:
            raise ReanimateError(f"synthetic dataset: unknown preset {name!r} (choose from {', '.join(PRESETS)})")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict) -> "SyntheticConfig":
        """Inverse of :meth:`to_dict`; unknown keys are ignored (newer files)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# ---------------------------------------------------------------------------------------
# Affine transforms, (T, 3, 3) stacks acting on pixel coordinates (x, y, 1).


#: Named datasets (``reanimate make-synthetic --preset``), as overrides of the
#: :class:`SyntheticConfig` defaults:
#:
#: * ``one-class``: one puppet per video, always a torso, head, two arms and two legs of
#:   two segments each, every part kind with its own look (``part_palette="by_part"``),
#:   1.4x larger. The puppets form one object class, as the faces or bodies of a real
#:   dataset do, so an unsupervised keypoint model can give its keypoints meanings
#:   (this head, that forearm). The training benchmark's set.
#: * ``mixed``: the defaults: one or two puppets with 2-4 limbs each and random looks
#:   for every part; a harder set, where no two videos share a structure.
PRESETS: dict[str, dict] = {
    "one-class": dict(puppets_per_video=(1, 1), limbs_per_puppet=(5, 5), second_segment_probability=1.0,
                      puppet_size=1.4, part_palette="by_part"),
    "mixed": {},
}


def _translation(tx, ty) -> np.ndarray:
    tx, ty = np.broadcast_arrays(np.asarray(tx, float), np.asarray(ty, float))
    m = np.zeros(tx.shape + (3, 3))
    m[..., 0, 0] = m[..., 1, 1] = m[..., 2, 2] = 1.0
    m[..., 0, 2], m[..., 1, 2] = tx, ty
    return m


def _linear(angle, scale=1.0, shear=0.0) -> np.ndarray:
    """Rotation @ shear @ isotropic scale, broadcast over arrays of parameters."""
    angle, scale, shear = np.broadcast_arrays(*(np.asarray(v, float) for v in (angle, scale, shear)))
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    # [[c, -s], [s, c]] @ [[1, k], [0, 1]] * scale
    m[..., 0, 0], m[..., 0, 1] = c * scale, (c * shear - s) * scale
    m[..., 1, 0], m[..., 1, 1] = s * scale, (s * shear + c) * scale
    m[..., 2, 2] = 1.0
    return m


def _apply(transforms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(K, 3, 3)`` or ``(3, 3)`` transforms on ``(K, 2)`` points, pairwise: ``(K, 2)``."""
    x, y = points[:, 0], points[:, 1]
    return np.stack([transforms[..., 0, 0] * x + transforms[..., 0, 1] * y + transforms[..., 0, 2],
                     transforms[..., 1, 0] * x + transforms[..., 1, 1] * y + transforms[..., 1, 2]],
                    axis=-1)


# ---------------------------------------------------------------------------------------
# Smooth motion.


def _smooth_signals(rng: np.random.Generator, count: int, num_frames: int, amplitude: float,
                    periods: tuple[float, float]) -> np.ndarray:
    """``(count, T)`` smooth signals with ``|s| <= amplitude``: sums of two sinusoids of
    random periods in ``periods`` (frames), random phases and weights."""
    t = np.arange(num_frames, dtype=float)
    period = rng.uniform(*periods, size=(count, 2, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(count, 2, 1))
    weight = rng.uniform(0.5, 1.0, size=(count, 2, 1))
    waves = weight * np.sin(2 * np.pi * t / period + phase)
    return amplitude * waves.sum(axis=1) / weight.sum(axis=1)


# ---------------------------------------------------------------------------------------
# Textures: periodic rasters (so a plane can be infinite), band-limited.


def _frequency_radius(n: int) -> np.ndarray:
    f = np.fft.fftfreq(n)
    return np.hypot(f[:, None], f[None, :])  # cycles per texel


def _band_noise(rng: np.random.Generator, n: int, channels: int, min_period: float,
                max_period: float) -> np.ndarray:
    """``(n, n, channels)`` periodic Gaussian noise with unit std, features between
    ``min_period`` and ``max_period`` texels."""
    radius = _frequency_radius(n)
    band = np.exp(-(radius * min_period) ** 2) * (1 - np.exp(-(radius * max_period) ** 2))
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


def _spots(rng: np.random.Generator, n: int, min_period: float, max_period: float,
           threshold: float) -> np.ndarray:
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


def _part_texture(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
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


def _background_texture(rng: np.random.Generator) -> np.ndarray:
    """A muted colour with colour noise and large blobs of a second muted colour, so camera
    motion is visible but the puppets stand out; ``(n, n, 3)`` float32 in [0, 1]."""
    n = _BACKGROUND_TEXTURE_TEXELS
    hue = rng.random()
    base = _hsv(hue, rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.7))
    other = _hsv(hue + rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.8))
    # mostly brightness noise: colour confetti would compete with the puppets' textures
    texture = (base + 0.07 * _band_noise(rng, n, 1, 12, 96)
               + 0.025 * _band_noise(rng, n, 3, 12, 96))
    texture += 0.7 * _spots(rng, n, 24, 64, threshold=0.3)[..., None] * (other - texture)
    return np.clip(_blur(texture, _TEXTURE_BLUR_TEXELS), 0, 1).astype(np.float32)


def _sample_periodic(texture: np.ndarray, points: np.ndarray) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------
# Layers and rendering.


@dataclass
class _Layer:
    """One rigid layer: texture and shape in local coordinates, one transform per frame.

    ``shape`` is a rounded box ``(cx, cy, half_width, half_height, radius)`` in local
    units, ``None`` for the infinite background plane. ``texel`` is the size of a texel
    in local units.
    """

    texture: np.ndarray  # (n, n, 3) float32, periodic
    texel: float
    transforms: np.ndarray  # (T, 3, 3) local -> image pixel coordinates
    shape: tuple[float, float, float, float, float] | None = None


def _box_distance(points: np.ndarray, shape: tuple[float, float, float, float, float]) -> np.ndarray:
    """Signed distance (local units, negative inside) from ``(..., 2)`` points to a
    rounded box; exact (the standard rounded-rectangle distance)."""
    cx, cy, half_w, half_h, radius = shape
    qx = np.abs(points[..., 0] - cx) - (half_w - radius)
    qy = np.abs(points[..., 1] - cy) - (half_h - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    return outside + inside - radius


def _near(points: np.ndarray, centre: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """``(T, P)`` mask of the ``(P, 2)`` or ``(T, P, 2)`` points within ``radius[t]`` of
    ``centre[t]`` (``(T, 2)``, ``(T,)``)."""
    dx = points[..., 0] - centre[:, None, 0]
    dy = points[..., 1] - centre[:, None, 1]
    return dx * dx + dy * dy <= (radius * radius)[:, None]


def _bounding_circle(layer: _Layer, transforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-space centre ``(T, 2)`` and radius ``(T,)`` of circles containing the layer's
    shape with a margin of 1.5 pixels (covers the anti-aliasing ramp)."""
    cx, cy, half_w, half_h, _ = layer.shape
    centre = transforms[:, :2, :2] @ np.array([cx, cy]) + transforms[:, :2, 2]
    stretch = np.linalg.norm(transforms[:, :2, :2], ord=2, axis=(1, 2))  # largest singular value
    return centre, stretch * np.hypot(half_w, half_h) + 1.5


def _render_layers(layers: list[_Layer], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render layers (back to front, ``layers[0]`` the background plane).

    Each part is evaluated only at the pixels within its bounding circle; everything is
    flattened over ``(T, P)`` with ``P = size * size`` pixels.

    Returns:
        ``frames`` float32 ``(T, H, W, 3)`` in [0, 1], ``flow`` float64 ``(T, H, W, 2)``
        backward map into frame 0 in *pixel* coordinates, ``visible`` bool ``(T, H, W)``.
    """
    assert layers and layers[0].shape is None, "the first layer must be the background plane"
    num_frames = layers[0].transforms.shape[0]
    ys, xs = np.mgrid[0:size, 0:size]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(float)  # (P, 2) centres
    num_pixels = len(pixels)
    frame_of = np.repeat(np.arange(num_frames), num_pixels)  # flat index -> t
    all_pixels = np.tile(pixels, (num_frames, 1))  # flat index -> p

    background = layers[0]
    inverse = np.linalg.inv(background.transforms)
    local = _apply(inverse[frame_of], all_pixels)
    colour = _sample_periodic(background.texture, local / background.texel)  # (T*P, 3)
    source = _apply(background.transforms[0], local)  # A_0 A_t^-1 p of the front-most layer
    front = np.zeros(len(local), np.int32)  # index of the front-most layer at the centre

    for index, layer in enumerate(layers[1:], start=1):
        centre, radius = _bounding_circle(layer, layer.transforms)
        flat = np.flatnonzero(_near(pixels, centre, radius))
        inverse = np.linalg.inv(layer.transforms)
        local = _apply(inverse[frame_of[flat]], all_pixels[flat])
        distance = _box_distance(local, layer.shape)
        # Anti-aliasing: coverage ramps over one pixel across the edge; the distance is
        # converted to pixels with the transform's isotropic scale.
        scale = np.sqrt(np.abs(np.linalg.det(layer.transforms[:, :2, :2])))
        coverage = np.clip(0.5 - distance * scale[frame_of[flat]], 0, 1).astype(np.float32)
        hit = coverage > 0
        texture = _sample_periodic(layer.texture, local[hit] / layer.texel)
        colour[flat[hit]] += coverage[hit, None] * (texture - colour[flat[hit]])
        inside = distance <= 0
        front[flat[inside]] = index
        source[flat[inside]] = _apply(layer.transforms[0], local[inside])

    # Visibility: the same layer must be the front-most one at the source point in frame 0.
    front0 = np.zeros_like(front)
    for index, layer in enumerate(layers[1:], start=1):
        centre, radius = _bounding_circle(layer, layer.transforms[:1])
        flat = np.flatnonzero(_near(source[None], centre, radius))
        local0 = _apply(np.linalg.inv(layer.transforms[0]), source[flat])
        front0[flat[_box_distance(local0, layer.shape) <= 0]] = index
    tolerance = 1e-6 * size
    in_frame = np.all((source >= -tolerance) & (source <= size - 1 + tolerance), axis=-1)
    visible = (front0 == front) & in_frame

    shape = (num_frames, size, size)
    frames = colour.reshape(shape + (3,))
    source = source.reshape(shape + (2,))
    visible = visible.reshape(shape)
    # Frame 0 maps to itself; set it exactly rather than up to rounding.
    source[0] = pixels.reshape(size, size, 2)
    visible[0] = True
    return frames, source, visible


def _camera_transforms(config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """``(T, 3, 3)`` smooth global affine motion about the frame centre."""
    size, frames, periods = config.size, config.num_frames, config.motion_periods
    centre = (size - 1) / 2
    shift = _smooth_signals(rng, 2, frames, config.camera_translation * size, periods)
    angle = _smooth_signals(rng, 1, frames, np.radians(config.camera_rotation_deg), periods)[0]
    scale = np.exp(_smooth_signals(rng, 1, frames, np.log1p(config.camera_scale), periods)[0])
    shear = _smooth_signals(rng, 1, frames, config.camera_shear, periods)[0]
    return (_translation(centre + shift[0], centre + shift[1]) @ _linear(angle, scale, shear)
            @ _translation(-centre, -centre))


def _puppet_layers(config: SyntheticConfig, rng: np.random.Generator, camera: np.ndarray,
                   centre: tuple[float, float], scale: float) -> list[_Layer]:
    """Layers of one puppet, back to front: limbs behind the torso, torso, limbs in front.

    The torso is the root of the kinematic tree; each limb hangs on a joint on the torso
    outline, arms and legs possibly with a second segment on an elbow/knee joint. Local
    coordinates of a segment put its joint at the origin and the segment along +x.
    """
    size, frames, periods = config.size, config.num_frames, config.motion_periods
    unit = size * scale * config.puppet_size
    texel = size / _TEXELS_PER_FRAME

    shift = _smooth_signals(rng, 2, frames, config.puppet_translation * size, periods)
    angle = _smooth_signals(rng, 1, frames, np.radians(config.puppet_rotation_deg), periods)[0]
    zoom = np.exp(_smooth_signals(rng, 1, frames, np.log1p(config.puppet_scale), periods)[0])
    root = camera @ _translation(centre[0] + shift[0], centre[1] + shift[1]) @ _linear(angle, zoom)

    half_w, half_h = rng.uniform(*_TORSO_HALF_WIDTH) * unit, rng.uniform(*_TORSO_HALF_HEIGHT) * unit
    look = (lambda kind: kind) if config.part_palette == "by_part" else (lambda kind: None)  # noqa: E731
    torso = _Layer(_part_texture(rng, look("torso")), texel, root,
                   (0.0, 0.0, half_w, half_h, rng.uniform(0.3, 0.8) * min(half_w, half_h)))

    def joint(parent: np.ndarray, anchor: tuple[float, float], rest: float, amplitude: float) -> np.ndarray:
        swing = _smooth_signals(rng, 1, frames, np.radians(amplitude), periods)[0]
        return parent @ _translation(*anchor) @ _linear(np.radians(rest) + swing)

    behind, in_front = [], []
    low, high = config.limbs_per_puppet
    count = int(rng.integers(low, high + 1))
    for slot in sorted(rng.choice(len(_LIMB_SLOTS), size=count, replace=False)):
        kind, (ax, ay), rest = _LIMB_SLOTS[slot]
        anchor = (ax * half_w, ay * half_h)
        rest += rng.uniform(-20, 20)
        if kind == "head":
            radius = rng.uniform(*_HEAD_RADIUS) * unit
            transforms = joint(root, anchor, rest, config.joint_angle_deg / 2)
            in_front.append(_Layer(_part_texture(rng, look("head")), texel, transforms,
                                   (0.8 * radius, 0.0, radius, radius, radius)))
            continue
        length, width = rng.uniform(*_LIMB_LENGTH) * unit, rng.uniform(*_LIMB_HALF_WIDTH) * unit
        transforms = joint(root, anchor, rest, config.joint_angle_deg)
        # A capsule from the joint to (length, 0): its round ends turn about the joints,
        # so parts stay joined whatever the angles.
        segments = [_Layer(_part_texture(rng, look(kind)), texel, transforms,
                           (length / 2, 0.0, length / 2 + width, width, width))]
        if rng.random() < config.second_segment_probability:
            length2, width2 = length * rng.uniform(0.8, 1.0), width * rng.uniform(0.75, 0.95)
            transforms2 = joint(transforms, (length, 0.0), rng.uniform(-30, 30), config.joint_angle_deg)
            second = {"arm": "forearm", "leg": "shin"}[kind]
            segments.append(_Layer(_part_texture(rng, look(second)), texel, transforms2,
                                   (length2 / 2, 0.0, length2 / 2 + width2, width2, width2)))
        (behind if rng.random() < 0.5 else in_front).extend(segments)
    return behind + [torso] + in_front


@dataclass
class _Video:
    frames: np.ndarray  # uint8 (T, H, W, 3)
    flow: np.ndarray  # float32 (T, H, W, 2), normalised
    visible: np.ndarray  # bool (T, H, W)
    camera_motion: bool
    num_puppets: int
    num_parts: int


def _render(config: SyntheticConfig, rng: np.random.Generator, camera_motion: bool | None) -> _Video:
    """:func:`render_video` plus what the dataset description lists about each video."""
    size, frames = config.size, config.num_frames
    if camera_motion is None:
        camera_motion = bool(rng.random() < config.camera_motion_fraction)
    if camera_motion:
        camera = _camera_transforms(config, rng)
    else:
        camera = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
    centre = (size - 1) / 2
    background = _Layer(_background_texture(rng), size / _TEXELS_PER_FRAME,
                        camera @ _translation(centre, centre))
    low, high = config.puppets_per_video
    num_puppets = int(rng.integers(low, high + 1))
    # Puppets side by side, each in its own horizontal slice, in random depth order.
    slots = rng.permutation(num_puppets)
    scale = 1 / np.sqrt(num_puppets)
    layers = [background]
    for slot in slots:
        cx = size * ((slot + 0.5) / num_puppets + rng.uniform(-0.08, 0.08) * scale)
        cy = size * (0.45 + rng.uniform(-0.08, 0.08))
        layers += _puppet_layers(config, rng, camera, (cx, cy), scale)
    image, source, visible = _render_layers(layers, size)
    frames_u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    # pixel -> normalised coordinates (align_corners=True: -1, 1 at the corner centres)
    flow = (2 * source / (size - 1) - 1).astype(np.float32)
    return _Video(frames_u8, flow, visible, camera_motion, num_puppets, len(layers) - 1)


def render_video(config: SyntheticConfig, rng: np.random.Generator,
                 camera_motion: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one random video with its ground truth, in memory.

    Args:
        config: dataset parameters (``size``, ``num_frames``, motion amplitudes...).
        rng: source of all randomness; the same generator state gives the same video.
        camera_motion: force the camera to move (``True``) or stay still (``False``);
            ``None`` draws it with probability ``config.camera_motion_fraction``.

    Returns:
        ``frames`` uint8 ``(T, H, W, 3)`` RGB; ``flow`` float32 ``(T, H, W, 2)``, the
        backward map of each frame into frame 0 (normalised, x first, align_corners=True:
        ``warp(frame0, flow[t])`` reproduces frame ``t``); ``visible`` bool ``(T, H, W)``,
        whether the point is seen (not occluded, inside the frame) in frame 0 as well.
    """
    config.validate()
    video = _render(config, rng, camera_motion)
    return video.frames, video.flow, video.visible


# ---------------------------------------------------------------------------------------
# Files.


def flow_path(video_path: str | os.PathLike) -> Path:
    """Where the ground truth of a video lives: beside it, ``<name>.flow.npz``.

    ``train/video_00000`` (a frame folder) -> ``train/video_00000.flow.npz``; a video file
    ``clip.mp4`` -> ``clip.flow.npz``.
    """
    path = Path(video_path)
    name = path.stem if is_video_path(path) else path.name
    return path.with_name(name + FLOW_SUFFIX)


def load_flow(video_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the ground truth of a video written by :func:`make_synthetic`.

    Returns:
        ``flow`` float32 ``(T, H, W, 2)`` and ``visible`` bool ``(T, H, W)`` (see
        :func:`render_video`).

    Raises:
        InputError: naming the ``.flow.npz`` file, when it is missing or corrupt.
    """
    path = flow_path(video_path)
    if not path.is_file():
        raise InputError(path, "ground-truth flow not found (it is written beside each video "
                               "by `reanimate make-synthetic`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "flow" not in data or "visible" not in data:
                raise InputError(path, "not a ground-truth flow file (needs arrays 'flow' and "
                                       "'visible'; regenerate with `reanimate make-synthetic`)")
            flow = data["flow"].astype(np.float32)
            visible = data["visible"].astype(bool)
    except InputError:
        raise
    except Exception as exc:  # zipfile / numpy report damage in many ways
        raise InputError(path, f"corrupt ground-truth flow file ({type(exc).__name__}: {exc})") from None
    if flow.ndim != 4 or flow.shape[-1] != 2 or visible.shape != flow.shape[:3]:
        raise InputError(path, f"ground-truth arrays have wrong shapes: flow {flow.shape} (expected "
                               f"(T, H, W, 2)), visible {visible.shape} (expected (T, H, W))")
    return flow, visible


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed``, but with fixed zip timestamps, so the same arrays give
    the same bytes (``np.savez`` stamps the current time)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def _write_video(folder: Path, video: _Video, flow_dtype: str) -> None:
    folder.mkdir()
    for index, frame in enumerate(video.frames):
        file = folder / f"{index:05d}.png"
        if not cv2.imwrite(str(file), np.ascontiguousarray(frame[..., ::-1])):
            raise InputError(file, "cannot write frame (is the disk full or read-only?)")
    _write_npz(flow_path(folder), {"flow": video.flow.astype(flow_dtype), "visible": video.visible})


def _no_motion_epe(video: _Video, size: int) -> float:
    """Mean distance (pixels) between the ground truth and the identity map, all frames."""
    identity = np.stack(np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size)), axis=-1)
    return float(np.linalg.norm(video.flow - identity, axis=-1).mean() * (size - 1) / 2)


def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(out, "folder exists and is not empty; choose another one or pass "
                              "--overwrite to replace it")


def _replace_folder(built: Path, out: Path) -> None:
    """Move the finished ``built`` folder to ``out``, replacing what is there."""
    if out.is_dir() and any(out.iterdir()):
        old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
        os.rename(out, old)
        os.rename(built, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if out.is_dir():
            out.rmdir()
        os.rename(built, out)


def _camera_flags(config: SyntheticConfig, split: int, count: int) -> np.ndarray:
    """Exactly ``round(fraction * count)`` camera-motion videos per split, at random."""
    flags = np.zeros(count, bool)
    rng = np.random.default_rng([config.seed, split, 2**31])
    flags[rng.permutation(count)[: round(config.camera_motion_fraction * count)]] = True
    return flags


def make_synthetic(out: str | os.PathLike, config: SyntheticConfig | None = None,
                   progress: bool = True, overwrite: bool = False) -> Path:
    """Generate the synthetic benchmark into ``out`` (layout in the module docstring).

    The dataset is built in a hidden sibling folder and renamed to ``out`` at the end, so
    an interrupted run leaves nothing behind. The same config (seed included) gives
    byte-identical files.

    Args:
        out: output folder; must not exist or be empty, unless ``overwrite``.
        config: dataset parameters (defaults: 200 + 20 videos of 32 frames at 64x64).
        progress: show a progress bar on stderr.
        overwrite: replace a non-empty ``out``.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: ``out`` is a file, or a non-empty folder without ``overwrite``, or
            cannot be written.
        ReanimateError: a config value is out of range.
    """
    config = config or SyntheticConfig()
    config.validate()
    out = Path(out)
    _check_output(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        build = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
        build.mkdir()
    except OSError as exc:
        raise InputError(out, f"cannot create the output folder ({exc.strerror or exc})") from None

    started = time.perf_counter()
    counts = {"train": config.num_train, "test": config.num_test}
    listing: dict[str, list[dict]] = {}
    try:
        with tqdm(total=sum(counts.values()), unit="video", desc="make-synthetic",
                  disable=not progress) as bar:
            for split_index, split in enumerate(SPLITS):
                (build / split).mkdir()
                cameras = _camera_flags(config, split_index, counts[split])
                listing[split] = []
                for index in range(counts[split]):
                    # A video depends only on (seed, split, index): growing one split does
                    # not change the videos of the other.
                    rng = np.random.default_rng([config.seed, split_index, index])
                    video = _render(config, rng, bool(cameras[index]))
                    name = f"video_{index:05d}"
                    _write_video(build / split / name, video, config.flow_dtype)
                    listing[split].append({
                        "name": name,
                        "camera_motion": video.camera_motion,
                        "puppets": video.num_puppets,
                        "parts": video.num_parts,
                        "no_motion_epe_px": round(_no_motion_epe(video, config.size), 4),
                        "visible_fraction": round(float(video.visible.mean()), 4),
                    })
                    bar.update(1)
        metadata = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "description": _FORMAT_DESCRIPTION,
            "config": config.to_dict(),
            "videos": listing,
        }
        (build / METADATA_NAME).write_text(json.dumps(metadata, indent=1) + "\n")
        _replace_folder(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    logger.info("wrote %d synthetic videos to %s in %.1f s", sum(counts.values()), out,
                time.perf_counter() - started)
    return out


_FORMAT_DESCRIPTION = {
    "frames": "<split>/<name>/<frame:05d>.png: RGB frames, the official FOMM frame-folder layout",
    "ground_truth": "<split>/<name>.flow.npz beside each video folder (numpy .npz, deflate)",
    "flow": ("(T, H, W, 2) float16/float32: for each pixel centre of frame t, the point of frame 0 "
             "showing the same surface point (backward map into frame 0), normalised coordinates, "
             "x first, -1 and 1 the centres of the corner pixels (grid_sample align_corners=True), "
             "i.e. FOMM's dense 'deformation' with frame 0 as source; frame 0 is the identity"),
    "visible": ("(T, H, W) bool: the surface point is also the front-most one at its position in "
                "frame 0 and that position lies within the frame (between the border pixel centres)"),
    "scene": ("textured background plane and articulated puppets of rigid parts (rounded boxes) in a "
              "fixed depth order; each layer moves by its own affine transform; camera-motion videos "
              "add one global affine motion"),
}
