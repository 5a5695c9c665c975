"""The implicit morphable avatar (IMavatar, Zheng et al. 2022) as one module: canonical
geometry and texture fields, a learnt rig-driven deformation, ray tracing through the
deformation, and the points and values the losses need.

Spaces. The fields live in a *model space*: the rig's frame, shifted so that the canonical
mesh's bounding-box centre ``c`` is the origin and scaled by ``k = units_per_metre *
rig.units`` (the authors' FLAME is scaled by 4 per metre, so that a head fits the ray
tracer's bounding sphere of radius 1.2 and their Broyden thresholds and geometric
initialisation radius hold; ``units_per_metre: 4`` keeps those numbers for any rig).
A camera-frame point ``p`` (see :mod:`reanimate.render.camera`) of a frame whose head is
placed by translation ``t`` is the model-space point ``k (p - t - c)``; the head's
rotation is the rig's root joint, part of the frame's ``pose``.

Per frame: ``expression (E,)``, ``pose (J, 3)`` axis-angle (the rig's joints, root =
global rotation), ``translation (3,)`` (rig units, camera frame). The identity ``shape``
is one per avatar (a buffer, from the tracking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..render.camera import Camera
from .correspondence import bone_jacobian_inverse, find_canonical, inverse_bone_inits
from .fields import (
    SURFACE_LEVEL,
    AvatarFieldsConfig,
    DeformationField,
    DeformationOutput,
    GeometryField,
    TextureField,
)
from .implicit import deformed_normals, nonsurface_canonical_points, surface_canonical_points
from .raytrace import camera_rays, trace
from .rig import Rig, bone_transforms, canonical_vertices, deform_points, search_bones

#: the occupancy given to points whose correspondence search did not converge (the
#: authors': "outside")
OUTSIDE_VALUE = 1.0


@dataclass
class TracingConfig:
    """Ray tracing and correspondence (the authors' ``ray_tracer`` section and supp. 2.4)."""

    bounding_radius: float = 1.2
    num_samples: int = 100
    secant_steps: int = 8
    chunk: int = 65536
    max_steps: int = 10  # Broyden
    eps: float = 1e-5
    units_per_metre: float = 4.0


class FrameBatch(NamedTuple):
    """B frames' rig parameters: ``expression (B, E)``, ``pose (B, J, 3)``,
    ``translation (B, 3)`` (camera frame, rig units)."""

    expression: Tensor
    pose: Tensor
    translation: Tensor


class AvatarRender(NamedTuple):
    """What :meth:`ImplicitAvatar.forward` computes for ``B`` frames x ``R`` rays.

    rgb ``(B, R, 3)`` (background 1 where no hit); hit ``(B, R)`` bool; value ``(B, R)``
    the geometry at each ray's point (surface or minimum; :data:`OUTSIDE_VALUE` where no
    correspondence), differentiable; valid ``(B, R)``; normals ``(B, R, 3)`` (0 where not
    computed); surface ``(B, R)`` bool the rays whose colour and pseudo ground truth were
    computed; canonical ``(B, R, 3)`` the canonical points (detached); deformation: the
    deformation network at the surface points' canonical positions (flat over the
    surface rays), for the rig losses."""

    rgb: Tensor
    hit: Tensor
    value: Tensor
    valid: Tensor
    normals: Tensor
    surface: Tensor
    canonical: Tensor
    deformation: DeformationOutput | None


class Subject(nn.Module):
    """The person's rig identity ``shape (S,)`` (a buffer, saved with the fields)."""

    def __init__(self, shape: Tensor):
        super().__init__()
        self.register_buffer("shape", shape.float().clone())


class FrameRefinement(nn.Module):
    """Per-frame corrections of the tracked parameters, learnt with the fields (the
    authors' option to optimise each training frame's expression and pose): ``expression
    (T, E)`` and ``pose (T, J, 3)`` offsets, zero at the start.

    ``forward(index (B,) long, frames) -> FrameBatch`` with the offsets of those frames added."""

    def __init__(self, num_frames: int, num_expressions: int, num_joints: int):
        super().__init__()
        self.expression = nn.Parameter(torch.zeros(num_frames, num_expressions))
        self.pose = nn.Parameter(torch.zeros(num_frames, num_joints, 3))

    def forward(self, index: Tensor, frames: FrameBatch) -> FrameBatch:
        index = index.to(self.pose.device)
        return FrameBatch(
            frames.expression + self.expression[index], frames.pose + self.pose[index], frames.translation
        )


#: the modules a checkpoint stores, in construction order (and ``refinement`` when a fit
#: refines its frames)
PART_NAMES = ("geometry", "texture", "deformation", "subject")


class ImplicitAvatar(nn.Module):
    """``forward(pixels (B, R, 2), frames, camera, foreground (B, R) | None) -> AvatarRender``.

    ``geometry``, ``texture`` and ``deformation`` are the fields of
    :mod:`reanimate.avatar.fields` (sized by ``fields``); ``rig`` gives the deformation's
    bones, the canonical space and the pseudo ground truth; ``shape`` ``(S,)`` the person;
    ``config`` (an :class:`~reanimate.avatar.config.AvatarConfig`, for checkpoints) or None.
    """

    def __init__(
        self,
        rig: Rig,
        fields: AvatarFieldsConfig,
        tracing: TracingConfig | None = None,
        shape: Tensor | None = None,
        config=None,
    ):
        super().__init__()
        self.config = config
        d = fields.deformation
        assert d.num_joints == rig.num_joints and d.num_expressions == rig.num_expressions, (
            f"deformation config (J={d.num_joints}, E={d.num_expressions}) does not fit rig {rig.name} "
            f"(J={rig.num_joints}, E={rig.num_expressions})"
        )
        assert d.num_pose_dirs == rig.num_pose_features, (
            f"deformation num_pose_dirs {d.num_pose_dirs} != rig pose features {rig.num_pose_features}"
        )
        self.rig = rig
        self.fields_config = fields
        self.tracing = tracing or TracingConfig()
        self.ghost_bone = d.ghost_bone
        self.geometry = GeometryField(fields.geometry)
        self.texture = TextureField(fields.texture)
        self.deformation = DeformationField(fields.deformation)
        if shape is None:
            shape = torch.zeros(rig.num_shapes)
        self.subject = Subject(shape.reshape(rig.num_shapes))
        canonical = canonical_vertices(rig, self.shape[None])[0]
        centre = (canonical.amin(0) + canonical.amax(0)) / 2
        self.register_buffer("centre", centre, persistent=False)
        self.scale = float(self.tracing.units_per_metre * rig.units)
        self.register_buffer("canonical_vertices", (canonical - centre) * self.scale, persistent=False)
        self._bones = search_bones(rig, self.ghost_bone)

    @property
    def shape(self) -> Tensor:
        return self.subject.shape

    def parts(self) -> dict[str, nn.Module]:
        parts = {name: getattr(self, name) for name in PART_NAMES}
        if getattr(self, "refinement", None) is not None:
            parts["refinement"] = self.refinement
        return parts

    # -- spaces -----------------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        probe = self.shape
        self.rig = self.rig.to(device=probe.device)
        return module

    def to_model(self, points: Tensor, translation: Tensor) -> Tensor:
        """Camera-frame points ``(B, N, 3)`` of frames placed at ``translation (B, 3)`` ->
        model space."""
        return (points - translation[:, None] - self.centre) * self.scale

    def from_model(self, points: Tensor, translation: Tensor) -> Tensor:
        return points / self.scale + self.centre + translation[:, None]

    # -- the deformation ----------------------------------------------------------------
    def deform_with(self, canonical: Tensor, out: DeformationOutput, frames: FrameBatch) -> Tensor:
        """Model-space canonical points ``(B, N, 3)`` with their deformation-network
        outputs -> model-space deformed points ``(B, N, 3)`` (:func:`rig.deform_points`
        in the rig's units: blendshapes are predicted in model units, so divided by k)."""
        b = canonical.shape[0]
        rig_points = canonical / self.scale + self.centre
        deformed = deform_points(
            self.rig,
            rig_points,
            out.weights,
            out.expression_dirs / self.scale,
            out.pose_dirs / self.scale,
            frames.expression,
            frames.pose,
            self.shape.expand(b, -1),
            ghost_bone=self.ghost_bone,
        )
        return (deformed - self.centre) * self.scale

    def deformer(self, frames: FrameBatch):
        """``x_c (B, M, 3) -> x_d (B, M, 3)`` for these frames (model space)."""

        def deform(x: Tensor) -> Tensor:
            return self.deform_with(x, self.deformation(x), frames)

        return deform

    def occupancy(self, x: Tensor) -> Tensor:
        """The canonical geometry value ``(B, M)`` of model-space points ``(B, M, 3)``."""
        return self.geometry(x)[0]

    def model_bones(self, frames: FrameBatch) -> Tensor:
        """The search bones' rigid motions in model space, ``(B, G, 4, 4)``."""
        b = frames.pose.shape[0]
        bones = bone_transforms(
            self.rig, frames.pose, self.shape.expand(b, -1), frames.expression, ghost_bone=self.ghost_bone
        )[:, list(self._bones)]
        rotation, shift = bones[..., :3, :3], bones[..., :3, 3]
        # k (R (x / k + c) + s - c) = R x + k (R c + s - c)
        shift = self.scale * ((rotation @ self.centre[:, None])[..., 0] + shift - self.centre)
        out = bones.clone()
        out[..., :3, 3] = shift
        return out

    def correspond(self, x_d: Tensor, frames: FrameBatch):
        """Canonical correspondences of model-space deformed points ``(B, N, 3)``
        (:func:`find_canonical` from the head, jaw and shoulder bones, the most-inside
        converged candidate)."""
        bones = self.model_bones(frames)
        inits = inverse_bone_inits(x_d, bones)
        jacobians = bone_jacobian_inverse(bones, x_d.shape[1])
        return find_canonical(
            x_d,
            self.deformer(frames),
            inits,
            jacobians,
            self.occupancy,
            outside_value=OUTSIDE_VALUE,
            max_steps=self.tracing.max_steps,
            eps=self.tracing.eps,
        )

    def deformed_occupancy(self, frames: FrameBatch):
        """``x_d (B, M, 3) -> (B, M)``: the geometry at each point's canonical
        correspondence (no gradients; for ray tracing)."""

        def value(x_d: Tensor) -> Tensor:
            return self.correspond(x_d, frames).occupancy

        return value

    # -- rendering ------------------------------------------------------------------------
    def rays(self, pixels: Tensor, frames: FrameBatch, camera: Camera) -> tuple[Tensor, Tensor]:
        """Model-space rays ``(origins (B, R, 3), unit dirs (B, R, 3))`` through pixels ``(B, R, 2)``."""
        origins, dirs = camera_rays(camera, None, None, pixels)
        origins = self.to_model(origins, frames.translation)
        return origins, dirs / dirs.norm(dim=-1, keepdim=True)

    def forward(
        self,
        pixels: Tensor,
        frames: FrameBatch,
        camera: Camera,
        foreground: Tensor | None = None,
        with_rig_outputs: bool | None = None,
    ) -> AvatarRender:
        """Trace ``pixels (B, R, 2)`` of B frames. ``foreground (B, R)`` (training): colour
        and pseudo ground truth only for hits inside the mask, as the authors; ``None``:
        for every hit. Differentiable w.r.t. every field (the implicit gradients)."""
        b, r = pixels.shape[:2]
        origins, dirs = self.rays(pixels, frames, camera)
        t = self.tracing
        with torch.no_grad():
            traced = trace(
                self.deformed_occupancy(frames),
                origins,
                dirs,
                level=SURFACE_LEVEL,
                radius=t.bounding_radius,
                num_samples=t.num_samples,
                secant_steps=t.secant_steps,
                chunk=t.chunk,
                entry_inside_hits=True,
            )
            found = self.correspond(traced.points, frames)
        hit = traced.hit & found.valid
        surface = hit if foreground is None else hit & foreground
        value = torch.full((b, r), OUTSIDE_VALUE, dtype=dirs.dtype, device=dirs.device)
        rgb = torch.ones(b, r, 3, dtype=dirs.dtype, device=dirs.device)
        normals = torch.zeros(b, r, 3, dtype=dirs.dtype, device=dirs.device)
        outputs = []
        for i in range(b):  # the rays with a correspondence differ per frame: one frame at a time
            frame = FrameBatch(*(x[i : i + 1] for x in frames))
            frame_deform = self.deformer(frame)
            rows = found.valid[i].nonzero()[:, 0]
            if rows.numel():
                # the mask loss's values at the rays' points, differentiable through w^-1 (Sec. 3.4)
                moved = nonsurface_canonical_points(
                    found.x_c[i : i + 1, rows], traced.points[i : i + 1, rows], frame_deform
                )
                value = value.index_put((torch.full_like(rows, i), rows), self.occupancy(moved)[0])
            rows = surface[i].nonzero()[:, 0]
            if rows.numel() == 0:
                continue
            x_c = found.x_c[i : i + 1, rows]
            points = surface_canonical_points(
                x_c, origins[i : i + 1, rows], dirs[i : i + 1, rows], self.occupancy, frame_deform, SURFACE_LEVEL
            ).canonical
            n = deformed_normals(points, self.occupancy, frame_deform, create_graph=self.training)
            feature = self.geometry(points)[1]
            jaw = frame.pose[:, self.rig.joint_index("jaw")]
            colour = self.texture(points, n, feature, frame.expression, jaw)
            rgb = rgb.index_put((torch.full_like(rows, i), rows), colour[0])
            normals = normals.index_put((torch.full_like(rows, i), rows), n[0])
            if with_rig_outputs if with_rig_outputs is not None else self.training:
                outputs.append(self.deformation(found.x_c[i : i + 1, rows]))
        deformation = None
        if outputs:
            deformation = DeformationOutput(*(torch.cat([o[k][0] for o in outputs]) for k in range(3)))
        return AvatarRender(rgb, hit, value, found.valid, normals, surface, found.x_c, deformation)

    def render_image(self, frames: FrameBatch, camera: Camera, rays_per_chunk: int = 4096) -> AvatarRender:
        """Every pixel of ``camera``'s image for B frames (eval mode, chunked): an
        :class:`AvatarRender` of ``(B, H * W)`` rays in row-major order (``rgb`` white
        where no surface is hit; ``deformation`` None). Normals need autograd, so this
        runs with gradients enabled but keeps no graph."""
        b = frames.pose.shape[0]
        ys, xs = torch.meshgrid(
            torch.arange(camera.height, dtype=torch.float32),
            torch.arange(camera.width, dtype=torch.float32),
            indexing="ij",
        )
        pixels = torch.stack([xs, ys], -1).reshape(1, -1, 2).expand(b, -1, -1).to(self.shape.device)
        was_training = self.training
        self.eval()
        parts = []
        try:
            for start in range(0, pixels.shape[1], rays_per_chunk):
                out = self(pixels[:, start : start + rays_per_chunk], frames, camera, with_rig_outputs=False)
                parts.append(AvatarRender(*(x.detach() if isinstance(x, Tensor) else x for x in out)))
        finally:
            self.train(was_training)
        return AvatarRender(*(torch.cat([p[k] for p in parts], dim=1) for k in range(7)), None)

    # -- the rig's pseudo ground truth ------------------------------------------------------
    def rig_targets(self, indices: Tensor) -> DeformationOutput:
        """The rig's skinning weights ``(M, J + g)`` (ghost column 0, zero), expression
        blendshapes ``(M, 3, E)`` and pose correctives ``(M, 3, P)`` of canonical vertices
        ``indices (M,)``, blendshapes in model units."""
        rig = self.rig
        weights = rig.skinning_weights[indices]
        if self.ghost_bone:
            weights = torch.cat([torch.zeros_like(weights[:, :1]), weights], dim=1)
        return DeformationOutput(
            weights,
            rig.expression_basis[indices] * self.scale,
            rig.pose_basis[indices] * self.scale,
        )


__all__ = [
    "OUTSIDE_VALUE",
    "PART_NAMES",
    "AvatarRender",
    "FrameBatch",
    "FrameRefinement",
    "ImplicitAvatar",
    "Subject",
    "TracingConfig",
]
