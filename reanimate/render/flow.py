"""Ground-truth backward optical flow between two renders of the same mesh.

The format is the one of :mod:`reanimate.data.synthetic`: FOMM's dense "deformation" from
a driving frame ``t`` into the source frame, ``(N, H, W, 2)`` normalised coordinates x
first in ``[-1, 1]``, -1 and 1 the centres of the corner pixels (``grid_sample(...,
align_corners=True)``), so ``grid_sample(source, flow, align_corners=True)`` rebuilds
frame ``t`` wherever ``visible``.

Correspondence is by surface point: the point seen at a pixel of frame ``t`` is the one
with that pixel's barycentrics in its triangle, and it sits in the source frame at the
same barycentrics of the same triangle, with the source vertex positions. Barycentrics
are affine in camera space, not in screen space, so under perspective the source
camera-space point is ``sum b_i X_i`` with ``X_i = ((u_i - cx) z_i / f, (v_i - cy) z_i /
f, z_i)``; projecting it gives ``u = sum b_i z_i u_i / sum b_i z_i`` (and the same for
``v``), with depth ``sum b_i z_i``: the intrinsics cancel.
"""

from __future__ import annotations

import torch

from .camera import Camera
from .raster import Fragments

# Relative depth tolerance of the visibility test. A head about 50 cm from the camera
# has occluders (nose over cheek, lids over eyes, lips over teeth) a few millimetres or
# more in front of what they hide; 0.2 % of 50 cm is 1 mm. The source depth at each
# pixel centre is compared with the plane of the point's own triangle there, so the
# tolerance only has to absorb the surface's curvature over a pixel, not its slope.
DEPTH_TOLERANCE = 2e-3
# Rounding allowance (pixels) of the "within the frame" test, so that a pixel mapped onto
# a border pixel centre of the source is not lost to a float error.
_FRAME_SLACK = 1e-3
# A footprint pixel shows the point's own surface when its depth is within the tolerance
# in front of the surface's plane there and within _BEHIND times it behind: extrapolating
# a triangle's plane by a pixel over a convex surface seen at a grazing angle puts it in
# front of the surface by more than the tolerance (about 0.5 % for a sphere 18 pixels
# in radius, seen 72 degrees off its normal).
_BEHIND = 4.0
# Bilinear weight (per axis) below which a neighbouring pixel centre is not part of a
# sample's footprint: a location on a pixel centre, up to rounding, uses that pixel only.
_FOOTPRINT = 1e-3


def _seen(depth, corner, u, v, frame, perspective, tolerance):
    """Whether the source depth buffer shows the point's surface at some pixel centre of
    its bilinear footprint (up to four) and nothing in front of it at any of them.

    Args:
        depth: ``(N, H, W)`` source depth buffer, ``inf`` on background.
        corner: ``(P, 3, 3)`` source ``(u, v, z)`` of each point's triangle.
        u, v: ``(P,)`` the points' source pixel coordinates; frame: ``(P,)`` their frames.

    Returns:
        ``(P,)`` bool. The surface's depth at a footprint pixel is that of the plane of
        the point's triangle extended there (its inverse depth is affine in screen space
        under perspective, the depth itself otherwise); something is in front where the
        buffer is nearer than ``1 - tolerance`` times that, and the buffer shows the
        surface where it is neither in front nor more than ``1 + _BEHIND * tolerance``
        times that (background never does). Edge-on triangles are not seen.
    """
    n_frames, height, width = depth.shape
    x0 = u.floor().clamp_(0, max(width - 2, 0))
    y0 = v.floor().clamp_(0, max(height - 2, 0))
    fx, fy = u - x0, v - y0
    # The four footprint corners at once, (4, P) in the order (0, 0), (1, 0), (0, 1),
    # (1, 1); an image one pixel wide (high) repeats its only column (row).
    sx, sy = int(width > 1), int(height > 1)
    wx, wy = (1 - fx > _FOOTPRINT, fx > _FOOTPRINT), (1 - fy > _FOOTPRINT, fy > _FOOTPRINT)
    first = (frame * height + y0.long()) * width + x0.long()
    offset = torch.tensor([0, sx, sy * width, sx + sy * width], device=first.device)
    buffer = depth.reshape(-1).index_select(0, (first + offset[:, None]).view(-1)).view(4, -1)
    # The surface's inverse depth (perspective) or depth (orthographic) is affine in the
    # pixel position: q0 + qx (x - u0) + qy (y - v0), from corner 0 of the triangle.
    cu, cv, cz = corner.permute(2, 1, 0).contiguous()  # (3 corners, P) each
    q = cz.reciprocal() if perspective else cz
    du1, du2 = cu[1] - cu[0], cu[2] - cu[0]
    dv1, dv2 = cv[1] - cv[0], cv[2] - cv[0]
    dq1, dq2 = q[1] - q[0], q[2] - q[0]
    area = du1 * dv2 - dv1 * du2
    qx = (dq1 * dv2 - dq2 * dv1).div_(area).mul_(sx)
    qy = (dq2 * du1 - dq1 * du2).div_(area).mul_(sy)
    at_first = (x0 - cu[0]).mul_(qx).add_((y0 - cv[0]).mul_(qy)).add_(q[0])
    at_down = at_first + qy
    surface = torch.stack([at_first, at_first + qx, at_down, at_down + qx])
    used = torch.stack([wy[0] & wx[0], wy[0] & wx[1], wy[1] & wx[0], wy[1] & wx[1]])
    if perspective:
        # buffer / surface depth = buffer * inverse depth; a plane that does not reach
        # the pixel in front of the camera (inverse depth <= 0) is edge-on: not seen.
        used &= surface > 0
        ratio = buffer.mul_(surface)
        front, behind = ratio < 1 - tolerance, ratio <= 1 + _BEHIND * tolerance
    else:
        front, behind = buffer < surface * (1 - tolerance), buffer <= surface * (1 + _BEHIND * tolerance)
    front &= used
    behind &= used
    occluded = front[0] | front[1] | front[2] | front[3]
    shown = behind[0] | behind[1] | behind[2] | behind[3]
    return shown & ~occluded & (area != 0)  # edge-on triangles are not seen


def backward_flow(
    fragments: Fragments,
    faces: torch.Tensor,
    screen_source: torch.Tensor,
    source_depth: torch.Tensor,
    camera: Camera,
    depth_tolerance: float = DEPTH_TOLERANCE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel's surface point of frame ``t`` is in the source frame.

    Args:
        fragments: :func:`~reanimate.render.raster.rasterize` output of the frames ``t``,
            ``(N, H, W)`` maps.
        faces: ``(F, 3)`` int64, the ones rasterised.
        screen_source: ``(V, 3)`` or ``(N, V, 3)`` ``(u, v, z)`` of the same mesh's vertices
            in the source frame (:func:`~reanimate.render.camera.project` with ``camera``).
        source_depth: ``(H, W)`` or ``(N, H, W)``, ``Fragments.depth`` of the source
            render (``inf`` on background).
        camera: the camera of both renders (its size and projection model are used).
        depth_tolerance: relative depth difference up to which the source depth buffer
            is taken to show the point itself (see ``DEPTH_TOLERANCE``).

    Returns:
        ``flow`` ``(N, H, W, 2)``: normalised source coordinates, x first, align_corners
        convention; the pixel's own position on background. ``visible`` ``(N, H, W)``
        bool: covered in frame ``t``, the source location lies within the frame
        (between the border pixel centres, up to 1e-3 pixel), and at the pixel centres
        that bilinear sampling there uses, the source depth buffer shows the surface at
        least once and nothing in front of it anywhere (nearer than ``1 -
        depth_tolerance`` times the depth of the plane of the point's triangle at that
        centre; "shows" allows ``4 * depth_tolerance`` behind it, for curvature). So a point
        within a pixel of an occluder's outline is not visible, and ``grid_sample`` of
        the source by ``flow`` mixes in no occluder where ``visible``; next to the
        source's silhouette it may mix in background.
        Differentiable w.r.t. ``screen_source`` and the barycentrics.
    """
    n_frames, height, width = fragments.face_index.shape
    if (height, width) != (camera.height, camera.width):
        raise ValueError(
            f"backward_flow: fragments are {height}x{width} but the camera is {camera.height}x{camera.width}"
        )
    if screen_source.dim() == 2:
        screen_source = screen_source[None].expand(n_frames, -1, -1)
    if source_depth.dim() == 2:
        source_depth = source_depth[None].expand(n_frames, -1, -1)
    if screen_source.shape[0] != n_frames or screen_source.shape[-1] != 3:
        raise ValueError(
            f"backward_flow expects screen_source (V, 3) or ({n_frames}, V, 3), got {tuple(screen_source.shape)}"
        )
    if source_depth.shape != (n_frames, height, width):
        raise ValueError(
            f"backward_flow expects source_depth ({height}, {width}) or ({n_frames}, {height}, {width}), got {tuple(source_depth.shape)}"
        )
    n_verts = screen_source.shape[1]
    dtype = fragments.bary.dtype
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, height, dtype=dtype, device=fragments.bary.device),
        torch.linspace(-1, 1, width, dtype=dtype, device=fragments.bary.device),
        indexing="ij",
    )
    identity = torch.stack([xs, ys], dim=-1).expand(n_frames, height, width, 2)

    covered, face, bary = fragments.pixels()
    frame = torch.div(covered, height * width, rounding_mode="floor")
    vertex = faces.long().to(covered.device).index_select(0, face)
    if screen_source.stride(0) == 0:  # one source for all frames
        corner = screen_source[0].index_select(0, vertex.view(-1)).view(-1, 3, 3).to(dtype)
    else:
        vertex = vertex + (frame * n_verts)[:, None]
        corner = screen_source.reshape(-1, 3).index_select(0, vertex.view(-1)).view(-1, 3, 3).to(dtype)
    u, v, z = corner.permute(2, 1, 0).contiguous()  # (3 corners, P) each
    b0, b1, b2 = bary.unbind(-1)
    depth = b0 * z[0] + b1 * z[1] + b2 * z[2]
    w0, w1, w2 = (b0, b1, b2) if camera.orthographic else (b0 * z[0], b1 * z[1], b2 * z[2])
    su, sv = w0 * u[0] + w1 * u[1] + w2 * u[2], w0 * v[0] + w1 * v[1] + w2 * v[2]
    if not camera.orthographic:
        su, sv = su / depth, sv / depth
    slack = _FRAME_SLACK
    inside = (su >= -slack) & (su <= width - 1 + slack) & (sv >= -slack) & (sv <= height - 1 + slack)
    seen = _seen(
        source_depth.detach().to(dtype),
        corner.detach(),
        su.detach(),
        sv.detach(),
        frame,
        not camera.orthographic,
        depth_tolerance,
    )

    normalised = torch.stack([2 * su / max(width - 1, 1) - 1, 2 * sv / max(height - 1, 1) - 1], dim=-1)
    flow = identity.reshape(-1, 2).index_copy(0, covered, normalised).view(n_frames, height, width, 2)
    visible = torch.zeros(n_frames * height * width, dtype=torch.bool, device=covered.device)
    visible.index_copy_(0, covered, inside & seen)
    return flow, visible.view(n_frames, height, width)
