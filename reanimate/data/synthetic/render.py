"""Rendering of the synthetic videos: affine layers (the background plane and the rigid
parts of the puppets) moved by smooth random motion, drawn back to front, with the exact
backward map of every pixel into frame 0 and its visibility there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reanimate.data.synthetic.config import (
    HEAD_RADIUS,
    LIMB_HALF_WIDTH,
    LIMB_LENGTH,
    LIMB_SLOTS,
    TORSO_HALF_HEIGHT,
    TORSO_HALF_WIDTH,
    SyntheticConfig,
)
from reanimate.data.synthetic.textures import (
    TEXELS_PER_FRAME,
    background_texture,
    part_texture,
    sample_periodic,
)

__all__ = ["RenderedVideo", "make_video", "render_video"]


# ---------------------------------------------------------------------------------------
# Affine transforms, (T, 3, 3) stacks acting on pixel coordinates (x, y, 1).


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
    return np.stack(
        [
            transforms[..., 0, 0] * x + transforms[..., 0, 1] * y + transforms[..., 0, 2],
            transforms[..., 1, 0] * x + transforms[..., 1, 1] * y + transforms[..., 1, 2],
        ],
        axis=-1,
    )


# ---------------------------------------------------------------------------------------
# Smooth motion.


def _smooth_signals(
    rng: np.random.Generator, count: int, num_frames: int, amplitude: float, periods: tuple[float, float]
) -> np.ndarray:
    """``(count, T)`` smooth signals with ``|s| <= amplitude``: sums of two sinusoids of
    random periods in ``periods`` (frames), random phases and weights."""
    t = np.arange(num_frames, dtype=float)
    period = rng.uniform(*periods, size=(count, 2, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(count, 2, 1))
    weight = rng.uniform(0.5, 1.0, size=(count, 2, 1))
    waves = weight * np.sin(2 * np.pi * t / period + phase)
    return amplitude * waves.sum(axis=1) / weight.sum(axis=1)


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
    colour = sample_periodic(background.texture, local / background.texel)  # (T*P, 3)
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
        texture = sample_periodic(layer.texture, local[hit] / layer.texel)
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
    return (
        _translation(centre + shift[0], centre + shift[1])
        @ _linear(angle, scale, shear)
        @ _translation(-centre, -centre)
    )


def _puppet_layers(
    config: SyntheticConfig, rng: np.random.Generator, camera: np.ndarray, centre: tuple[float, float], scale: float
) -> list[_Layer]:
    """Layers of one puppet, back to front: limbs behind the torso, torso, limbs in front.

    The torso is the root of the kinematic tree; each limb hangs on a joint on the torso
    outline, arms and legs possibly with a second segment on an elbow/knee joint. Local
    coordinates of a segment put its joint at the origin and the segment along +x.
    """
    size, frames, periods = config.size, config.num_frames, config.motion_periods
    unit = size * scale * config.puppet_size
    texel = size / TEXELS_PER_FRAME

    shift = _smooth_signals(rng, 2, frames, config.puppet_translation * size, periods)
    angle = _smooth_signals(rng, 1, frames, np.radians(config.puppet_rotation_deg), periods)[0]
    zoom = np.exp(_smooth_signals(rng, 1, frames, np.log1p(config.puppet_scale), periods)[0])
    root = camera @ _translation(centre[0] + shift[0], centre[1] + shift[1]) @ _linear(angle, zoom)

    half_w, half_h = rng.uniform(*TORSO_HALF_WIDTH) * unit, rng.uniform(*TORSO_HALF_HEIGHT) * unit
    look = (lambda kind: kind) if config.part_palette == "by_part" else (lambda kind: None)  # noqa: E731
    torso = _Layer(
        part_texture(rng, look("torso")),
        texel,
        root,
        (0.0, 0.0, half_w, half_h, rng.uniform(0.3, 0.8) * min(half_w, half_h)),
    )

    def joint(parent: np.ndarray, anchor: tuple[float, float], rest: float, amplitude: float) -> np.ndarray:
        swing = _smooth_signals(rng, 1, frames, np.radians(amplitude), periods)[0]
        return parent @ _translation(*anchor) @ _linear(np.radians(rest) + swing)

    behind, in_front = [], []
    low, high = config.limbs_per_puppet
    count = int(rng.integers(low, high + 1))
    for slot in sorted(rng.choice(len(LIMB_SLOTS), size=count, replace=False)):
        kind, (ax, ay), rest = LIMB_SLOTS[slot]
        anchor = (ax * half_w, ay * half_h)
        rest += rng.uniform(-20, 20)
        if kind == "head":
            radius = rng.uniform(*HEAD_RADIUS) * unit
            transforms = joint(root, anchor, rest, config.joint_angle_deg / 2)
            in_front.append(
                _Layer(part_texture(rng, look("head")), texel, transforms, (0.8 * radius, 0.0, radius, radius, radius))
            )
            continue
        length, width = rng.uniform(*LIMB_LENGTH) * unit, rng.uniform(*LIMB_HALF_WIDTH) * unit
        transforms = joint(root, anchor, rest, config.joint_angle_deg)
        # A capsule from the joint to (length, 0): its round ends turn about the joints,
        # so parts stay joined whatever the angles.
        segments = [
            _Layer(
                part_texture(rng, look(kind)), texel, transforms, (length / 2, 0.0, length / 2 + width, width, width)
            )
        ]
        if rng.random() < config.second_segment_probability:
            length2, width2 = length * rng.uniform(0.8, 1.0), width * rng.uniform(0.75, 0.95)
            transforms2 = joint(transforms, (length, 0.0), rng.uniform(-30, 30), config.joint_angle_deg)
            second = {"arm": "forearm", "leg": "shin"}[kind]
            segments.append(
                _Layer(
                    part_texture(rng, look(second)),
                    texel,
                    transforms2,
                    (length2 / 2, 0.0, length2 / 2 + width2, width2, width2),
                )
            )
        (behind if rng.random() < 0.5 else in_front).extend(segments)
    return behind + [torso] + in_front


@dataclass
class RenderedVideo:
    frames: np.ndarray  # uint8 (T, H, W, 3)
    flow: np.ndarray  # float32 (T, H, W, 2), normalised
    visible: np.ndarray  # bool (T, H, W)
    camera_motion: bool
    num_puppets: int
    num_parts: int


def make_video(config: SyntheticConfig, rng: np.random.Generator, camera_motion: bool | None) -> RenderedVideo:
    """:func:`render_video` plus what the dataset description lists about each video."""
    size, frames = config.size, config.num_frames
    if camera_motion is None:
        camera_motion = bool(rng.random() < config.camera_motion_fraction)
    if camera_motion:
        camera = _camera_transforms(config, rng)
    else:
        camera = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
    centre = (size - 1) / 2
    background = _Layer(background_texture(rng), size / TEXELS_PER_FRAME, camera @ _translation(centre, centre))
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
    return RenderedVideo(frames_u8, flow, visible, camera_motion, num_puppets, len(layers) - 1)


def render_video(
    config: SyntheticConfig, rng: np.random.Generator, camera_motion: bool | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    video = make_video(config, rng, camera_motion)
    return video.frames, video.flow, video.visible
