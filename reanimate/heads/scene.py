"""Rendering a synthetic talking head: the rig, the camera, the looks and the ground truth.

:func:`render_frames` takes one identity (shape coefficients and :class:`Appearance`), a
:class:`HeadTrajectory` slice, a :class:`Lighting`, a :class:`Backdrop` and a camera, and
returns the frames with everything known about them (:class:`RenderedFrames`): head mask,
depth, normals, the 68 landmarks in 2-D and 3-D, and the exact backward flow of every
pixel into a reference frame with its visibility. Head pixels move with the mesh (flow
from the rasteriser, :func:`reanimate.render.flow.backward_flow`); background pixels move
with the backdrop's pan.

Placement: the head's object frame (see :mod:`reanimate.heads.rig`) is put at
``HEAD_DISTANCE`` cm in front of the camera, ``HEAD_DROP`` cm below the optical axis (so
the face, not the skull, is centred), then the trajectory's translation is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from reanimate.data.synthetic.textures import background_texture
from reanimate.heads.appearance import Appearance, Lighting
from reanimate.heads.model import HeadModel
from reanimate.heads.rig import HeadPose, Rig, build_rig, pose_vertices, shape_vertices, to_camera
from reanimate.heads.trajectories import HeadTrajectory
from reanimate.render import Camera, Fragments, interpolate, project, rasterize, vertex_normals
from reanimate.render.flow import backward_flow
from reanimate.render.shading import composite, lambert

__all__ = ["HEAD_DISTANCE", "Backdrop", "Reference", "RenderedFrames", "default_camera", "head_pose", "render_frames"]

#: Distance of the head's object origin from the camera (cm) and the field of view that
#: frames it like a VoxCeleb crop (crown to chin, a little neck).
HEAD_DISTANCE = 95.0
FIELD_OF_VIEW = 14.0
#: The object origin sits this far above the optical axis (cm, camera y is down), which
#: centres the face between brows and chin.
HEAD_DROP = -1.5


def default_camera(size: int, orthographic: bool = False) -> Camera:
    """The dataset's camera for ``size`` x ``size`` frames (scaled orthographic: the same
    image scale at the head's distance)."""
    return Camera.from_fov(size, size, FIELD_OF_VIEW, orthographic=orthographic, z_ref=HEAD_DISTANCE)


def head_pose(identity: np.ndarray, trajectory: HeadTrajectory, frames: slice = slice(None)) -> HeadPose:
    """Rig parameters for ``frames`` of a trajectory, with the scene's placement."""
    count = len(trajectory.yaw[frames])
    translation = torch.from_numpy(trajectory.translation[frames].astype(np.float32))
    translation = translation + torch.tensor([0.0, -HEAD_DROP, HEAD_DISTANCE])
    return HeadPose(
        identity=torch.from_numpy(np.asarray(identity, np.float32)).expand(count, -1),
        expression=torch.from_numpy(trajectory.expression[frames]),
        rotation=torch.from_numpy(np.stack([trajectory.yaw, trajectory.pitch, trajectory.roll], 1)[frames]),
        scale=torch.from_numpy(trajectory.scale[frames]),
        translation=translation,
        gaze=torch.from_numpy(trajectory.gaze[frames]),
    )


@dataclass(frozen=True)
class Backdrop:
    """A textured background plane behind the head, panning by ``velocity`` texels per
    frame (0 for a still background); ``texels_per_frame`` texels span the image width."""

    texture: np.ndarray
    velocity: np.ndarray
    texels_per_frame: float = 128.0

    @classmethod
    def sample(cls, rng: np.random.Generator, moving: bool) -> Backdrop:
        speed = rng.uniform(0.3, 1.2) if moving else 0.0
        angle = rng.uniform(0, 2 * np.pi)
        return cls(background_texture(rng), np.array([np.cos(angle), np.sin(angle)]) * speed)

    def offset(self, frame: np.ndarray) -> np.ndarray:
        """Texel offset ``(N, 2)`` of frames ``(N,)``."""
        return np.asarray(frame, np.float64)[:, None] * self.velocity[None]

    def render(self, frames: np.ndarray, height: int, width: int) -> np.ndarray:
        """``(N, H, W, 3)`` float32 images of the backdrop at frame numbers ``frames``."""
        step = self.texels_per_frame / width
        u, v = np.meshgrid(np.arange(width, dtype=np.float32) * step, np.arange(height, dtype=np.float32) * step)
        images = []
        for offset in self.offset(frames):
            if images and not self.velocity.any():
                images.append(images[0])
                continue
            # cv2.remap is bilinear sampling; the texture is periodic, so the coordinates wrap.
            size = self.texture.shape[0]
            images.append(
                cv2.remap(
                    self.texture,
                    np.mod(u + np.float32(offset[0]), size).astype(np.float32),
                    np.mod(v + np.float32(offset[1]), size).astype(np.float32),
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_WRAP,
                )
            )
        return np.stack(images)

    def flow(self, frames: np.ndarray, reference: int, height: int, width: int) -> np.ndarray:
        """Backward map ``(N, H, W, 2)`` (normalised, align_corners) of the backdrop from
        frames into the reference frame: the texel at pixel ``p`` of frame ``t`` was at
        ``p + (offset_t - offset_ref) / step`` there."""
        step = self.texels_per_frame / width
        shift = (self.offset(frames) - self.offset(np.array([reference]))) / step  # pixels
        u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        x = (u[None] + shift[:, 0, None, None]) * 2 / (width - 1) - 1
        y = (v[None] + shift[:, 1, None, None]) * 2 / (height - 1) - 1
        return np.stack([x, y], -1).astype(np.float32)


@dataclass(frozen=True)
class Reference:
    """What the flow of later frames points into: the reference frame's projected
    vertices ``(V, 3)`` (u, v, depth), its depth buffer ``(H, W)``, its head mask and its
    frame number (for the backdrop)."""

    screen: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    frame: int


@dataclass
class RenderedFrames:
    """``N`` rendered frames and their ground truth (numpy).

    Attributes:
        rgb: ``(N, H, W, 3)`` uint8.
        mask: ``(N, H, W)`` bool, the head (everything of the mesh).
        depth: ``(N, H, W)`` float32 camera depth in cm, ``inf`` on the background.
        normals: ``(N, H, W, 3)`` float32 unit camera-frame normals (0 on the background).
        landmarks: ``(N, 68, 2)`` float32 pixels (x, y) of the 68 landmark vertices.
        landmarks3d: ``(N, 68, 3)`` float32 camera-frame positions, cm.
        flow: ``(N, H, W, 2)`` float32 backward map into the reference frame (normalised,
            align_corners=True), or None when no reference was given.
        visible: ``(N, H, W)`` bool, the pixel's surface point is seen in the reference frame.
        screen: ``(N, V, 3)`` projected vertices (to make this a later call's reference).
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    landmarks: np.ndarray
    landmarks3d: np.ndarray
    flow: np.ndarray | None
    visible: np.ndarray | None
    screen: torch.Tensor

    def reference(self, index: int, frame: int) -> Reference:
        return Reference(
            self.screen[index],
            torch.from_numpy(self.depth[index]),
            torch.from_numpy(self.mask[index]),
            frame,
        )


def _shade(
    model: HeadModel,
    appearance: Appearance,
    lighting: Lighting,
    vertices: torch.Tensor,
    fragments: Fragments,
) -> tuple[torch.Tensor, torch.Tensor]:
    faces = model.triangles
    # One interpolation for everything: albedo and shininess (shared) and the normals.
    count = vertices.shape[0]
    shared = torch.cat([appearance.albedo, appearance.shininess[:, None]], dim=1)
    attributes = torch.cat([shared.expand(count, -1, -1), vertex_normals(vertices, faces)], dim=2)
    values = interpolate(attributes, fragments, faces)
    albedo, normals = values[..., :3], values[..., 4:7]
    colour = lambert(
        albedo * torch.from_numpy(lighting.tint.astype(np.float32)),
        normals,
        torch.from_numpy(lighting.towards_light.astype(np.float32)).expand(count, 3),
        lighting.ambient,
        lighting.diffuse,
        specular=lighting.specular * values[..., 3],
    )
    return colour, normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-8)


@torch.no_grad()
def head_fragments(
    model: HeadModel, rig: Rig, identity: np.ndarray, camera: Camera, trajectory: HeadTrajectory, frames: slice
) -> tuple[torch.Tensor, Fragments]:
    """The head's camera-space vertices ``(N, V, 3)`` in ``frames`` of a trajectory and
    their rasterisation."""
    pose = head_pose(identity, trajectory, frames)
    shape = shape_vertices(model, rig, pose.identity[:1].expand_as(pose.identity), pose.expression)
    vertices = to_camera(pose_vertices(rig, shape, pose.rotation, pose.gaze), pose.scale, pose.translation)
    # The head is closed where seen from outside (the mouth and eye sockets face inwards),
    # so back faces never show: culling them halves the rasteriser's work (22 of 731k
    # pixels differ over 16 frames of strong turns, all on the silhouette).
    fragments = rasterize(
        project(vertices, camera),  # (projected again by render_frames: cheap next to rasterising)
        model.triangles,
        camera.height,
        camera.width,
        perspective=not camera.orthographic,
        cull_backfaces=True,
    )
    return vertices, fragments


def head_normals(
    model: HeadModel, rig: Rig, identity: np.ndarray, camera: Camera, trajectory: HeadTrajectory, frames: slice
) -> np.ndarray:
    """``(N, H, W, 3)`` float32 unit camera-frame normals of the head (0 where it is not
    seen): the exact normals of a rendered clip, e.g. to score a reconstruction."""
    vertices, fragments = head_fragments(model, rig, identity, camera, trajectory, frames)
    normals = interpolate(vertex_normals(vertices, model.triangles), fragments, model.triangles)
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    return torch.where(fragments.mask[..., None], normals, torch.zeros(())).numpy().astype(np.float32)


def render_frames(
    model: HeadModel,
    identity: np.ndarray,
    appearance: Appearance,
    lighting: Lighting,
    backdrop: Backdrop,
    camera: Camera,
    trajectory: HeadTrajectory,
    frames: slice,
    reference: Reference | None = None,
    rig: Rig | None = None,
    exact: bool = False,
) -> RenderedFrames:
    """Render ``frames`` of ``trajectory`` (see the module docstring).

    Args:
        identity: ``(I,)`` identity coefficients.
        frames: which frames (a slice with step 1) — also the backdrop's frame numbers.
        reference: the frame flows point into; None skips the flow.
        exact: return ``rgb`` as float32 in [0, 255] without rounding (for tests of the flow).
    """
    rig = rig or build_rig(model)
    numbers = np.arange(len(trajectory.yaw))[frames]
    vertices, fragments = head_fragments(model, rig, identity, camera, trajectory, frames)
    screen = project(vertices, camera)
    height, width = camera.height, camera.width
    colour, normals = _shade(model, appearance, lighting, vertices, fragments)
    background = torch.from_numpy(backdrop.render(numbers, height, width))
    mask = fragments.mask
    rgb = composite(colour, mask, background)

    flow = visible = None
    if reference is not None:
        head_flow, head_visible = backward_flow(fragments, model.triangles, reference.screen, reference.depth, camera)
        back_flow = torch.from_numpy(backdrop.flow(numbers, reference.frame, height, width))
        # A background point is seen in the reference frame when it lands inside the frame
        # and the head does not cover it there.
        inside = (back_flow.abs() <= 1).all(-1)
        covered = torch.nn.functional.grid_sample(
            reference.mask[None, None].float().expand(len(numbers), 1, height, width),
            back_flow,
            mode="nearest",
            align_corners=True,
        )[:, 0].bool()
        flow = torch.where(mask[..., None], head_flow, back_flow).numpy()
        visible = torch.where(mask, head_visible, inside & ~covered).numpy()

    landmarks3d = vertices[:, model.landmarks]
    return RenderedFrames(
        rgb=(rgb.clamp(0, 1) * 255).numpy() if exact else (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy(),
        mask=mask.numpy(),
        depth=fragments.depth.float().numpy(),
        normals=torch.where(mask[..., None], normals, torch.zeros(())).numpy(),
        landmarks=screen[:, model.landmarks, :2].numpy(),
        landmarks3d=landmarks3d.numpy(),
        flow=flow,
        visible=visible,
        screen=screen,
    )
