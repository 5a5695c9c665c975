"""A tiny avatar data set for tests: the procedural rig rendered (z-buffer, Lambert
shading, white background) in a few frames with known parameters, saved as a track
folder (:mod:`reanimate.avatar.tracking`), and a tiny avatar config document.

Import from tests as ``from avatar_tiny import tiny_track, tiny_document``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from reanimate.avatar.rig import landmarks as rig_landmarks
from reanimate.avatar.rig import rig_vertices
from reanimate.avatar.rigs.procedural import procedural_rig
from reanimate.avatar.tracking import TrackConfig, Tracking, save_tracking
from reanimate.render.camera import Camera, project
from reanimate.render.raster import interpolate, rasterize, vertex_normals
from reanimate.render.shading import lambert

DOCUMENT = {
    "model_params": {
        "family": "avatar",
        "rig": "procedural",
        "fields": {
            "geometry": {"hidden_dims": [32, 32, 32, 32], "skip_layers": [2], "feature_dim": 8, "num_frequencies": 2},
            "texture": {"hidden_dims": [16, 16], "feature_dim": 8, "bottleneck_dim": 4, "point_frequencies": 2},
            "deformation": {"hidden_dims": [16, 16]},
        },
        "tracing": {"num_samples": 16, "secant_steps": 4},
    },
    "train_params": {
        "num_epochs": 4,
        "epoch_milestones": [3],
        "lr": 1.0e-3,
        "batch_size": 1,
        "num_pixels": 128,
        "checkpoint_freq": 2,
        "log_freq": 1,
        "image_freq": 0,
    },
}


def tiny_document() -> dict:
    return copy.deepcopy(DOCUMENT)


def frame_parameters(rig, frames: int, seed: int = 0):
    """Expressions ``(T, E)``, poses ``(T, J, 3)`` (head turns up to ~15 degrees, the
    jaw about its canonical opening) and translations ``(T, 3)``."""
    gen = torch.Generator().manual_seed(seed)
    expression = 0.5 * torch.rand(frames, rig.num_expressions, generator=gen)
    pose = rig.canonical_pose.expand(frames, -1, -1).clone()
    pose[:, 0] = 0.25 * (torch.rand(frames, 3, generator=gen) - 0.5)
    pose[:, rig.joint_index("jaw"), 0] += 0.15 * torch.rand(frames, generator=gen)
    extent = float((rig.template.amax(0) - rig.template.amin(0)).max())
    translation = torch.tensor([0.0, 0.0, 3.0 * extent]).expand(frames, 3).clone()
    return expression, pose, translation


def render(rig, expression, pose, translation, camera: Camera):
    """``(T, H, W, 3)`` uint8 frames and ``(T, H, W)`` uint8 masks of the rig's mesh."""
    vertices = rig_vertices(rig, None, expression, pose)[0] + translation[:, None]
    fragments = rasterize(project(vertices, camera), rig.faces, camera.height, camera.width)
    normals = interpolate(vertex_normals(vertices, rig.faces), fragments, rig.faces)
    # a smooth colour pattern fixed on the skin (template coordinates)
    t = rig.template
    albedo = 0.5 + 0.35 * torch.stack([torch.sin(6 * t[:, 0]), torch.cos(5 * t[:, 1]), torch.sin(4 * t[:, 2] + 1)], -1)
    colour = interpolate(albedo.expand(len(expression), -1, -1), fragments, rig.faces)
    shaded = lambert(colour, normals, torch.tensor([0.3, -0.4, -1.0]), ambient=0.4, diffuse=0.7)
    mask = fragments.face_index >= 0
    shaded = torch.where(mask[..., None], shaded, torch.ones_like(shaded))
    return (shaded * 255).round().byte().numpy(), (mask.numpy() * 255).astype(np.uint8), vertices


def tiny_track(path: str | Path, frames: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A track folder of the procedural rig rendered at ``size`` px with exact parameters."""
    rig = procedural_rig()
    camera = Camera(size, size, focal=1.6 * size)
    expression, pose, translation = frame_parameters(rig, frames, seed)
    images, masks, vertices = render(rig, expression, pose, translation, camera)
    points = project(rig_landmarks(rig, vertices), camera)[..., :2]
    tracking = Tracking(
        shape=torch.zeros(rig.num_shapes),
        expression=expression,
        pose=pose,
        translation=translation,
        focal=camera.focal,
        image_size=size,
        landmarks=points,
        landmarks_fit=points,
        landmarks_fit_px=torch.zeros(frames),
        visible=torch.ones(frames, dtype=torch.bool),
        rig_name=rig.name,
        joint_names=rig.joint_names,
        units=rig.units,
    )
    box = np.array([0, 0, size, size], dtype=np.float32)
    return save_tracking(path, tracking, list(images), list(masks), box, (size, size), 25.0, TrackConfig(size=size))
