"""Procedural looks for the synthetic heads: skin, lips, brows, lash lines, eyes, teeth,
hair, clothing, lights and backgrounds.

Everything a surface shows is attached to the mesh, so the ground-truth flow carries it
exactly: per-vertex albedo, interpolated over the triangles, including a fine solid
noise sampled at each vertex's rest position (the face's vertices are 0.2-0.3 cm apart,
2-3 pixels at 256x256; a per-pixel lookup looked the same and cost ~5 ms a frame), so
blotches move with the skin. Regions (lips, brows, …) are
soft per-vertex weights measured once on the template head from its 68 landmarks, in the
frontal (x, y) plane of the model's coordinates.

An :class:`Appearance` is drawn per identity by :func:`sample_appearance`; a
:class:`Lighting` per video by :func:`sample_lighting`.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from reanimate.heads.model import HeadModel

__all__ = ["Appearance", "Lighting", "Regions", "face_regions", "sample_appearance", "sample_lighting"]

# Skin tones (linear-ish RGB in [0, 1]) from light to deep; an identity takes a random
# point between two neighbours.
_SKIN_TONES = np.array(
    [
        [0.93, 0.78, 0.68],
        [0.87, 0.69, 0.56],
        [0.78, 0.57, 0.44],
        [0.66, 0.46, 0.33],
        [0.52, 0.35, 0.24],
        [0.38, 0.25, 0.17],
    ]
)
_HAIR_COLOURS = np.array(
    [[0.06, 0.05, 0.04], [0.18, 0.11, 0.06], [0.35, 0.22, 0.12], [0.62, 0.48, 0.28], [0.55, 0.25, 0.1], [0.5, 0.5, 0.5]]
)
_IRIS_COLOURS = np.array(
    [[0.25, 0.14, 0.06], [0.4, 0.26, 0.12], [0.25, 0.4, 0.55], [0.3, 0.42, 0.25], [0.45, 0.35, 0.2]]
)
#: Side of the solid-noise grid (cells across the head's bounding box, ~0.3 cm each).
NOISE_GRID = 96


@dataclass(frozen=True)
class Regions:
    """Soft per-vertex region weights ``(V,)`` in [0, 1] on the model's topology."""

    lips: torch.Tensor
    brows: torch.Tensor
    lash_line: torch.Tensor
    hair: torch.Tensor
    clothing: torch.Tensor
    cheeks: torch.Tensor
    pupil: torch.Tensor
    iris: torch.Tensor
    sclera: torch.Tensor
    teeth: torch.Tensor
    gums: torch.Tensor
    mouth: torch.Tensor
    eye_socket: torch.Tensor


@dataclass(frozen=True)
class Appearance:
    """One identity's look.

    Attributes:
        albedo: ``(V, 3)`` per-vertex colour in [0, 1], detail noise included.
        shininess: ``(V,)`` per-vertex specular strength (skin low, eyes and lips high).
    """

    albedo: torch.Tensor
    shininess: torch.Tensor


@dataclass(frozen=True)
class Lighting:
    """One video's light: a directional light plus ambient; ``towards_light`` is the
    unit vector (camera frame) from the surface towards the light."""

    towards_light: np.ndarray
    ambient: float
    diffuse: float
    specular: float
    tint: np.ndarray


def _smooth_edge(distance: np.ndarray, width: float) -> np.ndarray:
    """1 inside (distance > width), 0 outside (distance < -width), smooth between."""
    x = np.clip((distance + width) / (2 * width), 0, 1)
    return x * x * (3 - 2 * x)


def _polygon_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Signed distance (> 0 inside) of ``(n, 2)`` points to a closed polygon ``(k, 2)``."""
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points])


def _polyline_distance(points: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of ``(n, 2)`` points to an open polyline ``(k, 2)`` and the arc-length
    position (0..1) of the nearest point on it."""
    best = np.full(len(points), np.inf)
    where = np.zeros(len(points))
    lengths = np.linalg.norm(np.diff(line, axis=0), axis=1)
    total = lengths.sum()
    start = 0.0
    for a, b, length in zip(line[:-1], line[1:], lengths):
        t = np.clip(((points - a) @ (b - a)) / max(length**2, 1e-12), 0, 1)
        distance = np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)
        closer = distance < best
        best[closer] = distance[closer]
        where[closer] = (start + t[closer] * length) / total
        start += length
    return best, where


@functools.lru_cache(maxsize=4)
def face_regions(model: HeadModel) -> Regions:
    """Region weights measured on the template head (cached per model)."""
    t = model.template.numpy().astype(np.float64)
    lm = t[model.landmarks.numpy()]
    count = len(t)
    part = model.part_of_vertex().numpy()
    names = [name for name in model.parts]
    on = {name: part == names.index(name) for name in names}
    face = on["face"]
    xy = t[:, :2]
    front = face & (t[:, 2] > 6.0)

    lips = np.zeros(count)
    near_mouth = front & (np.abs(xy[:, 0]) < 3.5) & (xy[:, 1] < -1.5) & (xy[:, 1] > -5.5)
    lips[near_mouth] = _smooth_edge(_polygon_distance(xy[near_mouth], lm[48:60, :2]), 0.12)

    brows = np.zeros(count)
    for a, b in ((17, 22), (22, 27)):
        line = lm[a:b, :2] + np.array([0.0, 0.25])  # the brow hair sits a little above the landmarks
        distance, where = _polyline_distance(xy[front], line)
        inner = where if a == 17 else 1 - where  # thicker towards the nose
        half = 0.22 + 0.25 * inner
        brows[front] = np.maximum(brows[front], _smooth_edge(half - distance, 0.12))

    lash = np.zeros(count)
    for upper in ((36, 37, 38, 39), (42, 43, 44, 45)):
        distance, _ = _polyline_distance(xy[front], lm[list(upper), :2] + np.array([0.0, 0.04]))
        lash[front] = np.maximum(lash[front], _smooth_edge(0.1 - distance, 0.06))

    cheeks = np.zeros(count)
    for side in (-1, 1):
        centre = np.array([3.6 * side, -0.6])
        cheeks[face] = np.maximum(cheeks[face], np.exp(-np.sum((xy[face] - centre) ** 2, axis=1) / (2 * 1.6**2)))

    # Hair: a cap over the skull whose edge (a height per depth) runs from the forehead
    # down over the temples to the nape; ears (|x| > 6.8 around y in [-2, 5]) stay bare.
    y, z = t[:, 1], t[:, 2]
    hairline = np.interp(z, [-10.0, -4.0, 3.0, 6.0, 8.5], [-5.0, -3.0, 4.5, 7.5, 8.6])
    scalp = on["head_neck"] | face
    hair = np.where(scalp, _smooth_edge(y - hairline, 0.35), 0.0)
    ears = (np.abs(t[:, 0]) > 6.6) & (y > -2.5) & (y < 5.5) & (z > -3.5) & (z < 4.5)
    hair[ears] = 0.0

    h = y + 0.3 * z  # the neck coordinate of the rig's neck blend
    clothing = np.where(scalp, _smooth_edge(-13.5 - h, 0.4), 0.0)

    pupil = np.zeros(count)
    iris = np.zeros(count)
    for side in ("left", "right"):
        # The front of the sclera mesh is the cornea, in front of the iris mesh: both
        # carry the iris and pupil colours by their angle from the eye's axis (+z).
        sclera = model.part_indices(f"sclera_{side}").numpy()
        index = np.concatenate([model.part_indices(f"iris_{side}").numpy(), sclera])
        centre = t[sclera].mean(0)
        direction = t[index] - centre
        cosine = direction[:, 2] / np.linalg.norm(direction, axis=1)
        angle = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
        pupil[index] = _smooth_edge(11.0 - angle, 1.0)
        iris[index] = _smooth_edge(32.0 - angle, 1.5)

    return Regions(
        **{
            key: torch.from_numpy(value.astype(np.float32))
            for key, value in dict(
                lips=lips,
                brows=brows,
                lash_line=lash,
                hair=hair,
                clothing=clothing,
                cheeks=cheeks,
                pupil=pupil,
                iris=iris,
                sclera=(on["sclera_left"] | on["sclera_right"] | on["iris_left"] | on["iris_right"]).astype(float),
                teeth=(on["teeth_upper"] | on["teeth_lower"]).astype(float),
                gums=on["gums_tongue"].astype(float),
                mouth=on["mouth_socket"].astype(float),
                eye_socket=(on["eye_socket_left"] | on["eye_socket_right"]).astype(float),
            ).items()
        }
    )


def _mix(base: np.ndarray, colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return base * (1 - weight[:, None]) + colour * weight[:, None]


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    h, s, v = colorsys.rgb_to_hsv(*np.clip(colour, 0, 1))
    return np.array(
        colorsys.hsv_to_rgb((h + rng.normal(0, amount * 0.1)) % 1, np.clip(s * (1 + rng.normal(0, amount)), 0, 1), v)
    )


def sample_appearance(model: HeadModel, rng: np.random.Generator) -> Appearance:
    """A random identity's look (see the module docstring)."""
    regions = {k: v.numpy().astype(np.float64) for k, v in face_regions(model).__dict__.items()}
    t = model.template.numpy().astype(np.float64)
    count = len(t)

    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    low = int(np.floor(tone))
    skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[min(low + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[low])
    skin = _jitter(rng, skin, 0.15)
    # Low-frequency variation: a few random solid sinusoids, a few per cent of the tone.
    variation = np.zeros((count, 3))
    for _ in range(4):
        frequency = rng.normal(0, 0.25, 3)
        phase = rng.uniform(0, 2 * np.pi)
        variation += np.sin(t @ frequency + phase)[:, None] * rng.normal(0, 0.025, 3)
    albedo = skin * (1 + variation)
    albedo = _mix(albedo, skin * np.array([1.05, 0.8, 0.78]), regions["cheeks"] * rng.uniform(0.2, 0.6))

    hair_colour = _jitter(rng, _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))], 0.2)
    lip_colour = skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.8, 1.0)
    albedo = _mix(albedo, lip_colour, regions["lips"])
    albedo = _mix(albedo, hair_colour * 0.9, regions["brows"] * rng.uniform(0.75, 1.0))
    albedo = _mix(albedo, np.array([0.05, 0.04, 0.04]), regions["lash_line"] * 0.9)
    bald = rng.random() < 0.1
    albedo = _mix(albedo, hair_colour, regions["hair"] * (0.0 if bald else 1.0))
    shirt = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.1, 0.7), rng.uniform(0.15, 0.85)))
    albedo = _mix(albedo, shirt, regions["clothing"])

    sclera = np.array([0.92, 0.89, 0.86])
    iris = _jitter(rng, _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))], 0.2)
    albedo = _mix(albedo, sclera, regions["sclera"])
    albedo = _mix(albedo, iris, regions["iris"])
    albedo = _mix(albedo, np.array([0.02, 0.02, 0.02]), regions["pupil"])
    albedo = _mix(albedo, np.array([0.9, 0.88, 0.8]) * rng.uniform(0.85, 1.0), regions["teeth"])
    albedo = _mix(albedo, np.array([0.5, 0.2, 0.2]), regions["gums"])
    albedo = _mix(albedo, np.array([0.22, 0.07, 0.07]), regions["mouth"])
    # Little light reaches inside the mouth: darken its parts with depth behind the lips
    # (template z from ~11 cm at the incisors to ~6 cm at the back).
    inside = regions["teeth"] + regions["gums"] + regions["mouth"]
    cavity = np.clip((t[:, 2] - 5.5) / 5.0, 0.0, 1.0)
    albedo = albedo * (1 - inside * (1 - (0.35 + 0.65 * cavity)))[:, None]
    albedo = _mix(albedo, skin * 0.6, regions["eye_socket"])

    shininess = 0.15 + 0.25 * regions["lips"] + 0.8 * regions["sclera"] + 0.3 * regions["teeth"]
    shininess = shininess * (1 - regions["hair"] * 0.7) * (1 - regions["clothing"])

    albedo = albedo * _solid_noise(rng, t, float(rng.uniform(0.03, 0.07)))[:, None]
    return Appearance(
        albedo=torch.from_numpy(np.clip(albedo, 0, 1).astype(np.float32)),
        shininess=torch.from_numpy(shininess.astype(np.float32)),
    )


def _solid_noise(rng: np.random.Generator, points: np.ndarray, amplitude: float) -> np.ndarray:
    """``1 + amplitude * n`` at ``(V, 3)`` points, ``n`` a trilinearly sampled unit
    Gaussian noise grid of :data:`NOISE_GRID` cells across the points' bounding box."""
    noise = torch.from_numpy(rng.standard_normal((NOISE_GRID,) * 3).astype(np.float32))[None, None]
    low, high = points.min(0) - 0.5, points.max(0) + 0.5
    grid = torch.from_numpy((2 * (points - low) / (high - low) - 1).astype(np.float32)).reshape(1, 1, 1, -1, 3)
    sampled = torch.nn.functional.grid_sample(noise, grid, mode="bilinear", align_corners=True).reshape(-1)
    return 1 + amplitude * sampled.numpy().astype(np.float64)


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """A random key light from the front hemisphere, and ambient."""
    azimuth = np.radians(rng.uniform(-60, 60))
    elevation = np.radians(rng.uniform(-20, 50))
    towards_light = np.array(
        [np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), -np.cos(azimuth) * np.cos(elevation)]
    )
    ambient = rng.uniform(0.35, 0.6)
    return Lighting(
        towards_light=towards_light,
        ambient=float(ambient),
        diffuse=float(rng.uniform(0.5, 0.8)),
        specular=float(rng.uniform(0.05, 0.25)),
        tint=np.clip(1 + rng.normal(0, 0.04, 3), 0.9, 1.1),
    )
