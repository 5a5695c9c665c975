"""Triangle rasterisation in plain PyTorch, differentiable through the barycentrics.

Screen space is the output of :func:`reanimate.render.camera.project`: ``(u, v, z)`` with
pixel centres at the integers (``u`` columns, ``v`` rows) and ``z`` the camera depth.

How it works. Visibility is found without gradients, all frames of a batch at once.
Each triangle's integer bounding box (the pixel centres it may cover) puts it in a size
class ``kw x kh`` (sides 1, 2, 3, 4, 6, 8, 16, ...); the triangles of a class are tested
against their ``kw x kh`` candidate pixels as one dense block, and a z-buffer keeps, per
pixel, the largest key ``(inverse depth bits << 32) | face`` with one
``scatter_reduce(..., "amax")``: the nearest surface wins (ties: the larger face id).
The barycentrics of the winning triangle are then recomputed at each covered pixel
centre with autograd on, so gradients reach the screen positions (and, through
:func:`interpolate`, the attributes); coverage changes at edges give no gradients.

Edge rule (watertightness). The coverage test snaps the vertices to 1/256 pixel, which
makes every edge function exact in float64, so two triangles sharing an edge compute the
same values; a pixel centre exactly on an edge follows the top-left rule (it belongs to
the triangle below the edge, or right of a vertical edge: the sample is taken as moved
by an infinitesimal ``(eta, 1)``). A mesh without gaps therefore has no cracks and no
pixel covered twice, also where a vertex falls on a pixel centre. Exactness holds for
vertices within 2**16 pixels of the origin; farther ones (triangles almost reaching the
camera plane) are still drawn, possibly with a rounding error on their edges.

Orientation. A triangle is front-facing when it is counter-clockwise as seen in the
image, i.e. its normal ``(b - a) x (c - a)`` in camera coordinates points towards the
camera (the OBJ convention for outward normals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Fragments:
    """Per-pixel result of :func:`rasterize` for ``N`` frames of ``H x W`` pixels.

    Attributes:
        face_index: ``(N, H, W)`` int64 index into ``faces``, ``-1`` on background.
        bary: ``(N, H, W, 3)`` barycentric coordinates of the pixel centre's surface
            point in the visible triangle (perspective-correct under perspective, so
            they interpolate camera-space attributes exactly); zero on background.
            Differentiable w.r.t. the screen positions.
        depth: ``(N, H, W)`` camera depth ``z``, ``inf`` on background; differentiable.
        covered: ``(P,)`` int64 flat indices (into ``N * H * W``) of the covered pixels,
            ascending, or None (then derived from ``face_index`` on demand).
        covered_face: ``(P,)`` int64 face id at each covered pixel, or None.
        covered_bary: ``(P, 3)`` barycentrics at the covered pixels (the rows of ``bary``
            there, with the same gradients), or None.
    """

    face_index: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    covered: torch.Tensor | None = field(default=None, repr=False)
    covered_face: torch.Tensor | None = field(default=None, repr=False)
    covered_bary: torch.Tensor | None = field(default=None, repr=False)

    def pixels(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``covered, covered_face, covered_bary`` (see the attributes), computed from the
        maps and kept when :func:`rasterize` did not fill them in."""
        if self.covered is None or self.covered_face is None or self.covered_bary is None:
            face_index = self.face_index.reshape(-1)
            self.covered = (face_index >= 0).nonzero().squeeze(1)
            self.covered_face = face_index.index_select(0, self.covered)
            self.covered_bary = self.bary.reshape(-1, 3).index_select(0, self.covered)
        return self.covered, self.covered_face, self.covered_bary

    @property
    def mask(self) -> torch.Tensor:
        """``(N, H, W)`` bool, True where a triangle covers the pixel centre."""
        return self.face_index >= 0


# Sub-pixel precision of the coverage test: vertices are snapped to multiples of
# 2**-_SUBPIXEL_BITS pixels, which makes every edge function exact in float64 (for
# coordinates within +-2**16 pixels), so that neighbouring triangles agree bit for bit.
_SUBPIXEL_BITS = 8
_QUANTUM = 2.0 ** (-2 * _SUBPIXEL_BITS)  # edge functions are multiples of this
# Triangles handled per setup pass and candidates per coverage pass: small enough for
# the working set to stay in the CPU caches, large enough to amortise the overhead.
_SETUP_CHUNK = 1 << 16
_COVER_CHUNK = 1 << 18
# Triangles (frames x faces) per z-buffer batch; bounds the memory of the tables.
_BATCH = 1 << 20


def _size_classes(limit: int) -> list[int]:
    """Side lengths of the candidate blocks along an image side of ``limit`` pixels: exact
    up to 4, then 6, 8, 16, 32, ... and ``limit`` itself last."""
    sizes = [1, 2, 3, 4, 6, 8]
    while sizes[-1] < limit:
        sizes.append(sizes[-1] * 2)
    return [size for size in sizes if size < limit] + [limit]


def _bbox(u, v, height, width):
    """Integer bounding box ``x0, x1, y0, y1`` (floats) of the pixel centres a triangle
    with corners ``u, v`` (each ``(3, T)``) may cover, clipped to the image (empty when
    ``x1 < x0`` or ``y1 < y0``; NaN corners give an empty box)."""
    u_min, u_max = torch.minimum(torch.minimum(u[0], u[1]), u[2]), torch.maximum(torch.maximum(u[0], u[1]), u[2])
    v_min, v_max = torch.minimum(torch.minimum(v[0], v[1]), v[2]), torch.maximum(torch.maximum(v[0], v[1]), v[2])
    x0, x1 = torch.ceil(u_min).clamp_(0, width), torch.floor(u_max).clamp_(-1, width - 1)
    y0, y1 = torch.ceil(v_min).clamp_(0, height), torch.floor(v_max).clamp_(-1, height - 1)
    return x0, x1, y0, y1


def _size_groups(uv, vertex, height, width, cull_backfaces):
    """First pass over all triangles: bounding boxes and their size classes.

    Args:
        uv: ``(2, N * V)`` float32 snapped vertex coordinates (NaN behind the near plane).
        vertex: ``(3, T0)`` int32 or int64 corner vertex ids (into the flattened ``N * V``).

    Returns:
        ``group`` ``(T0,)``: ``kw_class * len(sizes_h) + kh_class``, or the largest value
        ``len(sizes_w) * len(sizes_h)`` for triangles that cannot cover a pixel centre;
        ``x0, y0`` ``(T0,)`` float32 first pixel of each candidate block, moved left or up
        where needed for the ``kw x kh`` block to stay inside the image; ``sizes_w``,
        ``sizes_h``.
    """
    n_tri = vertex.shape[1]
    sizes_w, sizes_h = _size_classes(width), _size_classes(height)
    block_w, block_h = (torch.tensor(sizes, dtype=uv.dtype, device=uv.device) for sizes in (sizes_w, sizes_h))
    lut_w = torch.searchsorted(block_w, torch.arange(width + 1, dtype=uv.dtype, device=uv.device))
    lut_h = torch.searchsorted(block_h, torch.arange(height + 1, dtype=uv.dtype, device=uv.device))
    group = torch.empty(n_tri, dtype=torch.int16, device=uv.device)
    x0_all, y0_all = torch.empty(n_tri, device=uv.device), torch.empty(n_tri, device=uv.device)
    for lo in range(0, n_tri, _SETUP_CHUNK):
        hi = min(lo + _SETUP_CHUNK, n_tri)
        ids = vertex[:, lo:hi].reshape(-1)
        u, v = (uv[c].index_select(0, ids).view(3, -1) for c in range(2))
        x0, x1, y0, y1 = _bbox(u, v, height, width)
        empty = ~((x1 >= x0) & (y1 >= y0))  # also where a corner is NaN
        w, h = (x1 - x0 + 1).masked_fill_(empty, 0), (y1 - y0 + 1).masked_fill_(empty, 0)
        class_w, class_h = lut_w.index_select(0, w.long()), lut_h.index_select(0, h.long())
        if cull_backfaces:  # keep counter-clockwise triangles: negative area
            empty |= (u[1] - u[0]) * (v[2] - v[0]) - (v[1] - v[0]) * (u[2] - u[0]) >= 0
        group[lo:hi] = (class_w * len(sizes_h) + class_h).masked_fill_(empty, len(sizes_w) * len(sizes_h))
        torch.minimum(x0, width - block_w.index_select(0, class_w), out=x0_all[lo:hi])
        torch.minimum(y0, height - block_h.index_select(0, class_h), out=y0_all[lo:hi])
    return group, x0_all, y0_all, sizes_w, sizes_h


def _edge_tables(uv, depth, vertex, x0, y0, perspective, edges, plane):
    """Coverage and depth tables of triangles with corners ``vertex`` (three ``(T,)`` id
    arrays), written into ``edges`` ``(9, T)`` and ``plane`` ``(3, T)`` (float64 views).

    ``edges`` rows: ``C`` (3), ``A`` (3), ``B`` (3) such that the inside-positive edge
    function of edge ``i`` (opposite corner ``i``) at the pixel ``(x0 + col, y0 + row)``
    is ``C_i + A_i col + B_i row``, with the inside test ``>= 0`` (the tie rule folded into
    ``C``). ``plane`` rows: ``Q0, Qx, Qy`` of the inverse depth (perspective) or the depth
    (orthographic) ``Q0 + Qx col + Qy row``.
    """
    n_tri = x0.shape[0]
    # Rows 0, 1, 2, 0, 1 so that edge i, from corner i + 1 to corner i + 2, is rows i + 1 -> i + 2.
    u, v, z = (torch.empty(5, n_tri, dtype=torch.float64, device=x0.device) for _ in range(3))
    for source, out in ((uv[0], u), (uv[1], v), (depth, z)):
        for i, corner in enumerate(vertex):
            torch.index_select(source, 0, corner, out=out[i])
        out[3:] = out[:2]
    dx, dy = u[2:] - u[1:4], v[2:] - v[1:4]
    area = dx[1] * dy[2] - dx[2] * dy[1]  # exact, as every product here
    sign = torch.sign(area)
    a = torch.mul(dy, -sign, out=edges[3:6])  # d/du of the inside-positive edge function
    b = torch.mul(dx, sign, out=edges[6:9])  # d/dv
    # Top-left rule: a pixel centre on an edge belongs to the triangle below it (+v), or
    # right of it (+u) for a vertical edge, i.e. the edge function at the point moved by
    # an infinitesimal (eta, 1) must be positive: b > 0, or b == 0 and a > 0. The sign
    # of b + a * 2**-27 is exactly that, as |a| * 2**-27 is below the smallest nonzero |b|.
    bias = (torch.add(b, a, alpha=2.0**-27) > 0).to(torch.float64).sub_(1).mul_(_QUANTUM)
    c = torch.sub(y0, v[1:4], out=edges[0:3]).mul_(b)
    c += (x0 - u[1:4]).mul_(a)
    c += bias
    k = (area.abs_() * z[:3]).reciprocal_() if perspective else z[:3] / area.abs_()
    for row, coefficient in enumerate((c, a, b)):
        torch.sum(coefficient * k, 0, out=plane[row])


def _cover(edges, kw, kh):
    """Covered candidates of triangles whose boxes fit in ``kw x kh``: ``(t, row, col)``,
    three distinct int64 tensors.

    ``edges`` ``(9, Tc)``: the rows of :func:`_edge_tables` for these triangles. The
    candidates are laid out ``(kh, kw, Tc)``, triangles innermost, so every loop is long.
    """
    n_tri = edges.shape[1]
    inside = None
    for i in range(3):
        # C + A col + B row >= 0 tested as C + B row >= -(A col): exact, no rounding.
        fy = edges[i] if kh == 1 else edges[i] + edges[6 + i] * _steps(kh, edges)
        if kw == 1:
            ok = (fy >= 0).view(kh, 1, n_tri)
        else:
            ok = fy.view(kh, 1, n_tri) >= (edges[3 + i] * -_steps(kw, edges)).view(1, kw, n_tri)
        inside = ok if inside is None else inside.logical_and_(ok)
    if kw * kh == 1:
        hit = inside.view(-1).nonzero().squeeze(1)
        return hit, torch.zeros_like(hit), torch.zeros_like(hit)  # distinct: callers work in place
    row, col, tri = inside.nonzero().t().contiguous()
    return tri, row, col


def _steps(n: int, like: torch.Tensor) -> torch.Tensor:
    """``(n, 1)`` column ``0 .. n-1`` in ``like``'s dtype and device."""
    return torch.arange(n, dtype=like.dtype, device=like.device)[:, None]


def _zbuffer(screen, faces, height, width, perspective, cull_backfaces, near):
    """``(N * H * W,)`` int64 z-buffer of keys ``(inverse depth bits << 32) | (n * F + f)``, -1 on background."""
    n_frames, n_verts, _ = screen.shape
    device = screen.device
    buffer = torch.full((n_frames * height * width,), -1, dtype=torch.long, device=device)
    if faces.shape[0] == 0:
        return buffer
    coords = screen.detach().to(torch.float64).permute(2, 0, 1).reshape(3, -1)
    scale = 2.0**_SUBPIXEL_BITS
    uv = torch.round(coords[:2] * scale) / scale
    depth = coords[2].contiguous()
    # Corners behind the near plane poison their triangles' boxes with NaN.
    uv[:, depth <= near] = float("nan")
    offset = torch.arange(n_frames, device=device)[:, None] * n_verts
    # Corner vertex ids (3, N * F), triangles in n * F + f order; int32 halves the traffic.
    index_type = torch.int32 if n_frames * n_verts < 2**31 else torch.long
    vertex = (faces.t().contiguous().to(index_type)[:, None, :] + offset.to(index_type)).reshape(3, -1)
    group, x0_all, y0_all, sizes_w, sizes_h = _size_groups(uv.float(), vertex, height, width, cull_backfaces)
    group, order = torch.sort(group, stable=True)
    counts = torch.bincount(group.int(), minlength=len(sizes_w) * len(sizes_h) + 1)[:-1].tolist()
    n_valid = sum(counts)
    if n_valid == 0:
        return buffer
    order = order[:n_valid]
    x0, y0 = x0_all.index_select(0, order), y0_all.index_select(0, order)
    frame = torch.div(order, faces.shape[0], rounding_mode="floor")
    base = frame * (height * width) + y0.long() * width + x0.long()  # first pixel of each block
    x0, y0 = x0.double(), y0.double()
    edges = torch.empty(9, n_valid, dtype=torch.float64, device=device)
    plane = torch.empty(3, n_valid, dtype=torch.float64, device=device)
    for lo in range(0, n_valid, _SETUP_CHUNK):
        hi = min(lo + _SETUP_CHUNK, n_valid)
        corners = [corner.index_select(0, order[lo:hi]) for corner in vertex]
        _edge_tables(uv, depth, corners, x0[lo:hi], y0[lo:hi], perspective, edges[:, lo:hi], plane[:, lo:hi])
    start = 0
    for g, count in enumerate(counts):
        kw, kh = sizes_w[g // len(sizes_h)], sizes_h[g % len(sizes_h)]
        step = max(1, _COVER_CHUNK // (kw * kh))
        for lo in range(start, start + count, step):
            hi = min(lo + step, start + count)
            tri, row, col = _cover(edges[:, lo:hi], kw, kh)
            # Keys and pixels per chunk, while its tables are still in the caches; "amax"
            # does not depend on the order of the scatters.
            q0, qx, qy = (coefficient[lo:hi].index_select(0, tri) for coefficient in plane)
            value = qx.mul_(col).add_(qy.mul_(row)).add_(q0)
            if not perspective:
                value = value.reciprocal_()
            key = value.float().clamp_min_(0).view(torch.int32).long().bitwise_left_shift_(32)
            key.bitwise_or_(order[lo:hi].index_select(0, tri))
            pixel = row.mul_(width).add_(col).add_(base[lo:hi].index_select(0, tri))
            buffer.scatter_reduce_(0, pixel, key, "amax")
        start += count
    return buffer


def rasterize(
    screen: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    perspective: bool = True,
    cull_backfaces: bool = False,
    near: float = 1e-6,
) -> Fragments:
    """Rasterise a triangle mesh seen in ``N`` frames with a z-buffer.

    Args:
        screen: ``(N, V, 3)`` float ``(u, v, z)`` per vertex, as returned by
            :func:`reanimate.render.camera.project`; gradients flow into it through
            ``Fragments.bary`` and ``Fragments.depth``.
        faces: ``(F, 3)`` int64 vertex indices (see :func:`triangulate`).
        height, width: image size in pixels.
        perspective: ``screen`` comes from a perspective projection (barycentrics are
            made perspective-correct); False for (scaled) orthographic.
        cull_backfaces: drop triangles that are clockwise in the image (normals pointing
            away from the camera).
        near: triangles with a vertex at ``z <= near`` are dropped (camera units).

    Returns:
        :class:`Fragments` with ``(N, H, W)`` maps and the covered pixels' indices, faces
        and barycentrics (which :func:`interpolate` and
        :func:`~reanimate.render.flow.backward_flow` reuse).
    """
    if screen.dim() != 3 or screen.shape[-1] != 3 or not screen.is_floating_point():
        raise ValueError(f"rasterize expects float screen (N, V, 3), got {tuple(screen.shape)} {screen.dtype}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"rasterize expects faces (F, 3), got {tuple(faces.shape)}")
    n_frames, n_verts, _ = screen.shape
    n_faces = faces.shape[0]
    faces = faces.long().to(screen.device)
    frame_pixels = height * width
    step = max(1, _BATCH // max(n_faces, 1))
    buffer = torch.cat(
        [
            _zbuffer(screen[lo : lo + step], faces, height, width, perspective, cull_backfaces, near)
            for lo in range(0, n_frames, step)
        ]
    )
    covered = (buffer >= 0).nonzero().squeeze(1)
    winner = buffer.index_select(0, covered) & 0xFFFFFFFF  # face id within its batch: n * F + f
    face = torch.remainder(winner, max(n_faces, 1))
    frame = torch.div(covered, frame_pixels, rounding_mode="floor")
    face_index = torch.full((n_frames * frame_pixels,), -1, dtype=torch.long, device=screen.device)
    face_index.index_copy_(0, covered, face)

    # Differentiable barycentrics of the winning triangle at each covered pixel centre,
    # computed on contiguous (P,) columns: u[k], v[k], z[k] of corner k.
    first = frame * n_verts
    vertex = [corner.index_select(0, face).add_(first) for corner in faces.t().contiguous()]
    coords = screen.reshape(-1, 3).t().contiguous()
    u, v, z = ([row.index_select(0, k) for k in vertex] for row in coords)
    in_frame = covered - frame * frame_pixels
    py = torch.div(in_frame, width, rounding_mode="floor")
    px = (in_frame - py * width).to(screen.dtype)
    py = py.to(screen.dtype)
    # Edge functions opposite each corner; they sum to twice the signed area.
    edge = [(u[b] - u[a]) * (py - v[a]) - (v[b] - v[a]) * (px - u[a]) for a, b in ((1, 2), (2, 0), (0, 1))]
    if perspective:
        weight = [e / z[i] for i, e in enumerate(edge)]
        total = weight[0] + weight[1] + weight[2]
        bary_c = torch.stack(weight, dim=1) / total[:, None]
        depth_c = (edge[0] + edge[1] + edge[2]) / total
    else:
        bary_c = torch.stack(edge, dim=1) / (edge[0] + edge[1] + edge[2])[:, None]
        depth_c = bary_c[:, 0] * z[0] + bary_c[:, 1] * z[1] + bary_c[:, 2] * z[2]
    bary = screen.new_zeros(n_frames * frame_pixels, 3).index_copy_(0, covered, bary_c)
    depth = screen.new_full((n_frames * frame_pixels,), float("inf")).index_copy_(0, covered, depth_c)
    shape = (n_frames, height, width)
    return Fragments(face_index.view(shape), bary.view(*shape, 3), depth.view(shape), covered, face, bary_c)


def interpolate(attributes: torch.Tensor, fragments: Fragments, faces: torch.Tensor) -> torch.Tensor:
    """Per-pixel barycentric interpolation of vertex attributes.

    Args:
        attributes: ``(V, C)`` shared by all frames or ``(N, V, C)`` per frame.
        fragments: from :func:`rasterize` with the same ``faces``; only its covered
            pixels are evaluated (:meth:`Fragments.pixels`), as one gather of their
            ``(P, 3, C)`` corner values and a batched ``(1, 3) x (3, C)`` product.
        faces: ``(F, 3)`` int64.

    Returns:
        ``(N, H, W, C)``, zero on background; differentiable w.r.t. ``attributes`` and
        (through the barycentrics) the screen positions.
    """
    n_frames, height, width = fragments.face_index.shape
    if attributes.dim() not in (2, 3) or (attributes.dim() == 3 and attributes.shape[0] != n_frames):
        raise ValueError(f"interpolate expects attributes (V, C) or ({n_frames}, V, C), got {tuple(attributes.shape)}")
    n_channels = attributes.shape[-1]
    covered, face, bary = fragments.pixels()
    vertex = faces.long().to(covered.device).index_select(0, face)  # (P, 3)
    if attributes.dim() == 3:
        frame = torch.div(covered, height * width, rounding_mode="floor")
        vertex = vertex + (frame * attributes.shape[1])[:, None]
    values = attributes.reshape(-1, n_channels).index_select(0, vertex.view(-1)).view(-1, 3, n_channels)
    pixel = torch.bmm(bary.to(values.dtype)[:, None, :], values).squeeze(1)  # (P, C)
    out = pixel.new_zeros(n_frames * height * width, n_channels).index_copy_(0, covered, pixel)
    return out.view(n_frames, height, width, n_channels)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Area-weighted unit vertex normals, ``(b - a) x (c - a)`` summed over incident faces.

    Args:
        vertices: ``(N, V, 3)`` camera-space positions.
        faces: ``(F, 3)`` int64, counter-clockwise seen from outside for outward normals.

    Returns:
        ``(N, V, 3)`` unit normals (zero for vertices without faces).
    """
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertex_normals expects vertices (N, V, 3), got {tuple(vertices.shape)}")
    n_frames, n_verts, _ = vertices.shape
    faces = faces.long().to(vertices.device)
    # Vertex-major (V, N * 3) rows: gathers and scatters move whole rows of all frames.
    rows = vertices.permute(1, 0, 2).reshape(n_verts, n_frames * 3)
    a, b, c = (rows.index_select(0, faces[:, k]).view(-1, n_frames, 3) for k in range(3))
    face_normal = torch.linalg.cross(b - a, c - a).view(-1, n_frames * 3)  # length twice the area
    normal = rows.new_zeros(n_verts, n_frames * 3)
    for k in range(3):
        normal.index_add_(0, faces[:, k], face_normal)
    normal = normal.view(n_verts, n_frames, 3).permute(1, 0, 2)
    return normal / torch.linalg.vector_norm(normal, dim=-1, keepdim=True).clamp_min(eps)


def triangulate(polygons: Sequence[Sequence[int]] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """Split polygons into triangles by fans from each polygon's first vertex.

    The winding of every triangle is that of its polygon; a polygon's triangles are
    consecutive and in polygon order.

    Args:
        polygons: a list of vertex-index lists (3 or more each), or an ``(F, K)`` array
            padded with ``-1`` (e.g. quads and triangles as ``(F, 4)``).

    Returns:
        ``(F', 3)`` int64.
    """
    if isinstance(polygons, (np.ndarray, torch.Tensor)):
        array = torch.as_tensor(polygons).cpu().long()
        if array.dim() != 2 or array.shape[1] < 3:
            raise ValueError(
                f"triangulate expects an (F, K) array padded with -1, K >= 3, got shape {tuple(array.shape)}"
            )
        if bool((array[:, :3] < 0).any()):
            raise ValueError("triangulate: every row needs at least 3 vertex indices before its -1 padding")
        fans = torch.stack(
            [array[:, :1].expand(-1, array.shape[1] - 2), array[:, 1:-1], array[:, 2:]], dim=-1
        )  # (F, K - 2, 3)
        return fans[(fans >= 0).all(-1)]
    triangles = []
    for polygon in polygons:
        polygon = [int(i) for i in polygon]
        if len(polygon) < 3:
            raise ValueError(f"a polygon needs at least 3 vertices, got {polygon}")
        triangles.extend([polygon[0], polygon[j], polygon[j + 1]] for j in range(1, len(polygon) - 1))
    return torch.tensor(triangles, dtype=torch.long).reshape(-1, 3)
