"""The dense warp: a triangulation of the source nodes (landmarks and anchors) moved to
the target nodes, each triangle's exact first-order map giving the backward flow inside
it (:func:`reanimate.geometry.triangle_backward_maps`).

Triangles that would flip (the far cheek in a large head turn) are relaxed towards the
first-order prediction of their neighbours' Jacobians, and triangles are drawn far to
near by landmark depth, skin facing away from the camera culled (a hole that leaves
inside the face takes its nearest drawn triangle), so that what remains folded is
hidden like in a renderer instead of tearing. Anchors: rings that follow the face's
outline (hair, ears, neck move with it) and fixed points on the crop border (the flow
is the identity there, so paste-back has no seam); the surroundings use only those
clear of the face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from scipy.spatial import Delaunay

from ...faces import topology as mesh
from ...faces.lids import distance_to_polyline
from ...geometry import fit_similarity
from ...geometry.mesh import signed_areas, triangle_backward_maps, untangle
from .config import EYES, FACE_OVAL, HOLE, LIPS_INNER, RIGID, SKIN, SURROUNDING, LandmarkAnimatorConfig
from .eyes import draw_eyeball, draw_lids, lid_line

if TYPE_CHECKING:
    from .source import LandmarkSource

#: Anchors closer than this share of the face oval's mean radius to the landmarks' hull
#: take no part in the surroundings (:func:`anchors_off_face`); the inner ring lies a
#: quarter of it (``inner_ring`` 1.25) outside a frontal face's oval.
ANCHOR_CLEARANCE = 0.1

# -- the source mesh ---------------------------------------------------------------------


def triangulate(nodes: np.ndarray, num_landmarks: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangles over all nodes and their kinds: MediaPipe's face mesh (SKIN, first),
    a strip across the mouth and each eye's contour with its iris points (HOLE), then
    the SURROUNDING triangles: those of a Delaunay triangulation of the landmarks and
    the anchors outside the face (:func:`anchors_off_face`) that touch an anchor or lie
    outside the face mesh (the outline's concave pockets, not a gap inside it)."""
    face = mesh.mesh_triangles()
    # The mouth and eyes open and close, so their triangles may legitimately turn over
    # (a closed mouth's inner lips even cross slightly); only the skin must not flip.
    holes = [mesh.mouth_triangles()]
    for loop, iris in ((mesh.RIGHT_EYE, EYES[0]["iris"]), (mesh.LEFT_EYE, EYES[1]["iris"])):
        index = np.array(loop + tuple(iris))
        local = Delaunay(nodes[index]).simplices
        centres = nodes[index][local].mean(1)
        holes.append(index[local[_inside(nodes[list(loop)], centres)]])
    holes = np.concatenate(holes)
    used = np.concatenate([np.arange(num_landmarks), anchors_off_face(nodes, num_landmarks)])
    everything = used[Delaunay(nodes[used]).simplices]
    touches_anchor = (everything >= num_landmarks).any(1)
    pockets = ~touches_anchor & _outside(nodes, np.concatenate([face, holes]), nodes[everything].mean(1))
    around = everything[touches_anchor | pockets]
    kinds = np.concatenate([np.full(len(face), SKIN), np.full(len(holes), HOLE), np.full(len(around), SURROUNDING)])
    return np.concatenate([face, holes, around]).astype(np.int64), kinds


def anchors_off_face(nodes: np.ndarray, num_landmarks: int) -> np.ndarray:
    """Indices of the anchors (nodes from ``num_landmarks`` on) that lie outside the
    convex hull of the landmarks by :data:`ANCHOR_CLEARANCE` of the face oval's mean
    radius or more: the ones the surroundings are made of.

    The rings are the face oval scaled about its centre, but on a three-quarter face the
    far side's oval runs behind the cheek, eye corner and nose that the source shows,
    so some ring anchors land on the face or at its edge. Triangles to them carried that
    skin and the far eye's lashes with the surroundings, and a turn towards the camera
    stretched them sideways into strips and spikes past the silhouette."""
    landmarks = nodes[:num_landmarks]
    hull = cv2.convexHull(landmarks.astype(np.float32))[:, 0].astype(np.float64)
    oval = landmarks[FACE_OVAL]
    radius = float(np.linalg.norm(oval - oval.mean(0), axis=1).mean())
    anchors = np.arange(num_landmarks, len(nodes))
    near = distance_to_polyline(nodes[anchors], np.concatenate([hull, hull[:1]])) < ANCHOR_CLEARANCE * radius
    return anchors[~(_inside(hull, nodes[anchors]) | near)]


def _outside(nodes: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(P,)`` bool: which ``(P, 2)`` points (pixels, >= 0) lie outside the region the
    ``(T, 3)`` triangles cover with its gaps filled (a gap between the lips is inside),
    read from a mask of them drawn at one-pixel resolution."""
    size = int(np.ceil(max(nodes[triangles].max(), points.max()))) + 3
    mask = np.zeros((size, size), np.uint8)
    for triangle in np.round((nodes[triangles] + 1) * 16).astype(np.int32):  # a free pixel all round
        cv2.fillConvexPoly(mask, triangle, 1, lineType=cv2.LINE_8, shift=4)
    cv2.floodFill(mask, None, (0, 0), 2)
    x, y = np.clip(np.round(points + 1), 0, size - 1).astype(int).T
    return mask[y, x] == 2


def mesh_neighbours(triangles: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices sharing a triangle with each vertex, as a padded ``(count, D)`` index
    array (padding points at the vertex itself) and ``(count, D)`` 0/1 weights."""
    sets: list[set[int]] = [set() for _ in range(count)]
    for a, b, c in triangles:
        sets[a] |= {b, c}
        sets[b] |= {a, c}
        sets[c] |= {a, b}
    width = max(1, max(len(x) for x in sets))
    index = np.tile(np.arange(count)[:, None], (1, width))
    weights = np.zeros((count, width))
    for i, nb in enumerate(sets):
        index[i, : len(nb)] = sorted(nb)
        weights[i, : len(nb)] = 1.0
    weights[weights.sum(1) == 0, 0] = 1.0  # isolated (iris) points predict themselves
    return index, weights


def _inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd rule: which ``(N, 2)`` points lie inside the closed ``(M, 2)`` polygon."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-12, y1 - y0) + x0)
    return crosses.sum(1) % 2 == 1


# -- target nodes ------------------------------------------------------------------------


def target_nodes(
    config: LandmarkAnimatorConfig, source: LandmarkSource, points: np.ndarray, jacobian: torch.Tensor | None
) -> np.ndarray:
    """Target positions of all nodes ``(N, 2)``: landmarks ``points``, head-following
    rings, fixed border; flips relaxed with the ``(1, 478, 2, 2)`` Jacobians if given."""
    n = len(source.landmarks)
    scale, rotation, _ = fit_similarity(
        torch.from_numpy(source.landmarks[None, RIGID, :2]),
        torch.from_numpy(np.ascontiguousarray(points[None, RIGID, :2])),
    )
    head = (scale[0] * rotation[0]).numpy()
    # Each anchor keeps its offset from its face-oval point, turned and scaled with the
    # head: the surroundings follow the face's silhouette, and never cross it.
    owner = source.ring_owner
    offset = source.ring - source.landmarks[owner, :2]
    moved = points[owner, :2] + offset @ head.T
    ring = source.ring + source.ring_follow[:, None] * (moved - source.ring)
    nodes = source.nodes.copy()
    nodes[:n] = points[:, :2]
    nodes[n : n + len(ring)] = ring
    if jacobian is not None:
        relax_flips(config, source, nodes, jacobian[0].detach().cpu().double().numpy())
    if config.min_area_ratio > 0:
        nodes = untangle_skin(config, source, nodes, points)
    return nodes


def untangle_skin(
    config: LandmarkAnimatorConfig, source: LandmarkSource, nodes: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """The landmarks moved the least (:func:`reanimate.geometry.mesh.untangle`) so that no
    skin triangle that faces the camera at the target's head pose flips or keeps less
    than ``min_area_ratio`` of its area there (``lid_keep`` on the lids); anchors stay.

    Where a driver's expression does not fit the source's proportions (a wide-open mouth
    on a thin lower lip) the skin between the lip and the chin would otherwise fold:
    hidden by the culling, it cuts a seam across the chin and the lip disappears. The
    reference is the source's own 3-D landmarks turned and scaled to the target's pose
    (the similarity of the rigid points), so the skin a head turn takes away from the
    camera (the far cheek) is left to the culling, not unfolded.

    The lids (:func:`lid_skin`, chosen once per source) keep ``lid_keep`` of their size:
    a driver that lowers its brow towards its eye by more than the source's lid has room
    for (a painted portrait's heavy lid) would otherwise fold the lid under the brow,
    which leaves a notch between the brow and the eye; the brow stops higher instead.

    Args:
        nodes: ``(N, 2)`` target nodes; points: ``(478, 3)`` target landmarks (with depth).
    """
    checked = source.untangled  # below the nose and the lids, no slivers (source.untangled_skin)
    keep = source.untangle_keep[checked]
    skin = source.triangles[: source.mesh_count][checked]
    src_areas, front = source.areas[: source.mesh_count][checked], source.front[checked]
    scale, rotation, _ = fit_similarity(
        torch.from_numpy(source.landmarks[None, RIGID]), torch.from_numpy(np.ascontiguousarray(points[None, RIGID]))
    )
    posed = float(scale[0]) * source.landmarks @ rotation[0].numpy().T
    reference = signed_areas(posed[:, :2], skin) * front  # > 0: faces the camera at the target's pose
    facing = reference > config.min_facing * float(scale[0]) ** 2 * np.abs(src_areas)
    skin, need = skin[facing], reference[facing] * front[facing] * keep[facing]  # the least each may keep
    areas = signed_areas(nodes, skin)
    if not (areas * np.sign(need) < np.abs(need)).any():
        return nodes
    movable = np.zeros(len(nodes), bool)
    movable[: len(source.landmarks)] = True
    # The mouth's and the eyes' openings are what the driver's expression says: the
    # skin around them gives way instead.
    movable[list(LIPS_INNER)] = False
    for eye in EYES:
        movable[list(eye["loop"])] = False
    moved, _ = untangle(nodes, skin, need, movable, 1.0, config.untangle_iterations)
    return moved


def lid_skin(landmarks: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """``(len(skin),)`` bool: the skin triangles ``(T, 3)`` whose centre lies between an
    upper lid's margin and the top of its brow in ``(478, 2+)`` landmarks (the source's:
    the lid and the brow as the source shows them)."""
    centres = landmarks[skin, :2].mean(1)
    inside = np.zeros(len(skin), bool)
    for eye in EYES:
        band = np.concatenate(
            [lid_line(landmarks, eye, landmarks[eye["pairs"][:, 0], :2]), landmarks[eye["brow_top"][::-1], :2]]
        )
        inside |= _inside(band, centres)
    return inside


def relax_flips(
    config: LandmarkAnimatorConfig, source: LandmarkSource, nodes: np.ndarray, jacobian: np.ndarray
) -> None:
    """In place: move landmarks of flipped skin triangles half-way towards the
    first-order predictions of their mesh neighbours, ``p_k + J_k (s_i - s_k)`` (held
    inside the bounding box of those neighbours' positions), until no skin triangle
    flips (or ``relax_iterations`` passes). Only the triangles chosen once per source
    (:func:`.source.relaxed_skin`: no slivers, facing the camera in the source) are
    checked."""
    checked = source.relaxed
    skin = source.triangles[: source.mesh_count][checked]
    src_areas = source.areas[: source.mesh_count][checked]
    neighbours, weights = source.skin_neighbours
    src = source.nodes
    for _ in range(config.relax_iterations):
        flipped = signed_areas(nodes, skin) * src_areas <= 0
        if not flipped.any():
            return
        idx = np.unique(skin[flipped])
        nb, w = neighbours[idx], weights[idx]  # (M, D)
        offsets = src[idx][:, None, :] - src[nb]  # (M, D, 2)
        predicted = nodes[nb] + np.einsum("mdij,mdj->mdi", jacobian[nb], offsets)
        predicted = (predicted * w[..., None]).sum(1) / w.sum(1, keepdims=True)
        # Untangle, never extrapolate: where the face is stretched (the far cheek of a
        # turned source coming into view) the neighbours' Jacobians are large and their
        # predictions overshoot into spikes of skin. A vertex stays within the box of
        # its neighbours.
        around = nodes[nb]  # (M, D, 2); padding repeats the vertex itself
        predicted = np.clip(predicted, around.min(1), around.max(1))
        nodes[idx] = 0.5 * (nodes[idx] + predicted)


# -- flow and drawing ------------------------------------------------------------------------


def render(
    config: LandmarkAnimatorConfig,
    source: LandmarkSource,
    nodes: np.ndarray,
    depth: np.ndarray,
    source_nodes: np.ndarray | None = None,
    gaze: list[np.ndarray] | None = None,
    closing: np.ndarray | None = None,
) -> np.ndarray:
    """Backward-warp the source so that its nodes land on ``nodes``: ``(S, S, 3)``.

    The piecewise-affine flow (:func:`grid_flow`) is rasterised at ``flow_scale`` of
    the crop and upsampled (it is linear inside triangles, so little is lost).
    ``gaze``: per eye the iris shift in source pixels, drawn inside each eye's opening
    by the eyeball layer. ``closing``: ``(2,)`` per eye how far it has closed (0 open,
    1 closed), to draw the closed-lid layer.
    """
    s = source.image.shape[0]
    f = max(int(round(s * config.flow_scale)), 8)
    map_x, map_y, xs, ys, index = grid_flow(source, nodes, depth, f, source_nodes)
    map_x, map_y = _full_size(map_x, map_y, xs, ys, index == 0, s)
    out = cv2.remap(source.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weights = mirror_weights(config, source, nodes) if config.mirror_fill else None
    if weights is not None:
        # The revealed skin read from the other side of the face, blended in smoothly.
        extended = np.concatenate([source.nodes if source_nodes is None else source_nodes, source.outer_landmarks])
        mx, my, *_ = grid_flow(source, nodes, depth, f, extended, source.mirror_texture, index)
        mx, my = _full_size(mx, my, xs, ys, index == 0, s)
        mirrored = cv2.remap(source.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = np.where(index > 0, np.take(weights, np.maximum(index - 1, 0)), 0.0).astype(np.float32)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(config.mirror_feather * f / s, 0.5))
        alpha = cv2.resize(alpha, (s, s), interpolation=cv2.INTER_LINEAR)[..., None]
        out = np.clip(out + alpha * (mirrored.astype(np.float32) - out), 0, 255).astype(np.uint8)
    if gaze is not None:
        for eye, layer, shift in zip(EYES, source.eyeballs, gaze):
            draw_eyeball(out, layer, nodes[list(eye["loop"])], map_x, map_y, shift)
    if closing is not None and source.lids is not None:
        draw_lids(config, out, source.lids, map_x, map_y, nodes, closing, lash=source.human)
    return out


def _full_size(
    map_x: np.ndarray, map_y: np.ndarray, xs: np.ndarray, ys: np.ndarray, outside: np.ndarray, s: int
) -> tuple[np.ndarray, np.ndarray]:
    """A grid flow upsampled to the ``s``-pixel crop: ``map_x, map_y`` float32 ``(s, s)``."""
    # Upsample the displacement, not the coordinates: the identity stays exact
    # (also at the border, where resizing clamps).
    dx = np.where(outside, 0.0, map_x - xs).astype(np.float32)
    dy = np.where(outside, 0.0, map_y - ys).astype(np.float32)
    if dx.shape[0] != s:
        dx = cv2.resize(dx, (s, s), interpolation=cv2.INTER_LINEAR)
        dy = cv2.resize(dy, (s, s), interpolation=cv2.INTER_LINEAR)
    # The border nodes are fixed, so the true flow there is zero; upsampling from
    # cell centres half a cell inside would otherwise leak motion onto it.
    for d in (dx, dy):
        d[[0, -1], :] = 0.0
        d[:, [0, -1]] = 0.0
    grid = np.arange(s, dtype=np.float32)
    return dx + grid[None, :], dy + grid[:, None]


def mirror_weights(config: LandmarkAnimatorConfig, source: LandmarkSource, nodes: np.ndarray) -> np.ndarray | None:
    """``(T,)`` per triangle the share of its texture read from its mirror image, or
    None when no triangle takes any.

    A head turned towards the side the source hides (the far cheek of a three-quarter
    face) shows skin the source only has as a thin, foreshortened strip at its
    silhouette; stretched, that strip tears into streaks of skin and background. Such a
    skin triangle - shown ``mirror_stretch`` or more times larger than in the source,
    relative to the face's overall scale - whose mirror image the source shows better
    (by more than ``mirror_margin`` in visibility) takes its texture from that mirror
    image instead, fully at twice the stretch. The surroundings stretched along some
    direction by ``silhouette_stretch`` or more (relative to the face's scale; fully at
    twice that) read from beyond the source's silhouette (``outer_landmarks``) instead
    of the strip of cheek there."""
    mc = source.mesh_count
    sign = np.ones(len(source.triangles))
    sign[:mc] = source.front
    sign[mc:] = np.sign(source.areas[mc:])
    target = signed_areas(nodes, source.triangles) * sign
    own = source.areas * sign
    both = (target[:mc] > 0) & (own[:mc] > 0)
    if not both.any():
        return None
    scale = np.median(target[:mc][both]) / max(np.median(own[:mc][both]), 1e-12)
    stretch = np.where(own > 0, target / np.maximum(own * scale, 1e-12), np.where(target > 0, np.inf, 0.0))
    a = config.mirror_stretch
    grow = np.clip((stretch[:mc] - a) / a, 0.0, 1.0)
    index = source.mirror_index
    gain = np.where(index >= 0, source.visibility[np.maximum(index, 0)] - source.visibility, -np.inf)
    better = np.clip((gain - config.mirror_margin) / max(config.mirror_margin, 1e-6), 0.0, 1.0)
    weights = np.zeros(len(source.triangles))
    weights[:mc] = grow * better
    # The surroundings drawn much longer than the source has them: on a three-quarter
    # face the band outside the far side's landmarks is a sliver of cheek at the
    # silhouette, and a turn towards the camera pulls it into streaks.
    around = np.nonzero((source.kinds == SURROUNDING) & (source.mirror_texture != source.triangles).any(1))[0]
    long = longest_stretch(source.nodes, nodes, source.triangles[around]) / np.sqrt(scale)
    b = config.silhouette_stretch
    weights[around] = np.clip((long - b) / b, 0.0, 1.0)
    return weights if weights.max() > 0.01 else None


def longest_stretch(source: np.ndarray, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``(T,)`` the largest singular value of each triangle's affine map from its
    ``source`` to its ``target`` position (``(N, 2)`` nodes): how many times longer it
    is drawn along its most stretched direction (inf for a degenerate source triangle)."""
    a, b, c = (source[triangles[:, i]] for i in range(3))
    p, q, r = (target[triangles[:, i]] for i in range(3))
    e_s = np.stack([b - a, c - a], -1)  # (T, 2, 2), edges as columns
    e_t = np.stack([q - p, r - p], -1)
    det = e_s[:, 0, 0] * e_s[:, 1, 1] - e_s[:, 0, 1] * e_s[:, 1, 0]
    inv = np.stack([np.stack([e_s[:, 1, 1], -e_s[:, 0, 1]], -1), np.stack([-e_s[:, 1, 0], e_s[:, 0, 0]], -1)], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = e_t @ (inv / det[:, None, None])
        g = np.einsum("tji,tjk->tik", m, m)  # m^T m
        half_trace = 0.5 * (g[:, 0, 0] + g[:, 1, 1])
        gap = np.sqrt(np.maximum(half_trace**2 - (g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0]), 0.0))
        out = np.sqrt(half_trace + gap)
    return np.where(np.abs(det) > 1e-9, out, np.inf)


def grid_flow(
    source: LandmarkSource,
    nodes: np.ndarray,
    depth: np.ndarray,
    size: int,
    source_nodes: np.ndarray | None = None,
    texture: np.ndarray | None = None,
    index: np.ndarray | None = None,
):
    """The backward flow on a ``size``-pixel grid over the crop.

    Returns:
        ``map_x, map_y``: ``(size, size)`` source coordinates (crop pixels) of each
        grid cell's centre; ``xs`` ``(1, size)`` and ``ys`` ``(size, 1)``: those
        centres; ``index``: ``(size, size)`` the triangle seen in each cell (index + 1;
        0: none, see :func:`rasterize`).

    A cell is drawn by a triangle whose edge passes near its centre, not only through
    it; the affine map of a sliver (tiny in the target, not in the source) sends such
    a cell far outside its source triangle (dark specks from lashes or the
    background). So every sample is held within a pixel of its triangle's source
    bounding box.

    ``texture``: ``(T, 3)`` source nodes to read each triangle's texture from instead of
    its own corners (the mirror fill); ``index``: the rasterisation, if already made.
    """
    k = size / source.image.shape[0]  # crop pixels -> grid pixels (pixel centres at +0.5)
    source_nodes = source.nodes if source_nodes is None else source_nodes
    texture = source.triangles if texture is None else texture
    count = len(source.triangles)
    flat = np.arange(3 * count).reshape(count, 3)
    maps = triangle_backward_maps(
        source_nodes[texture].reshape(-1, 2), nodes[source.triangles].reshape(-1, 2), flat
    ).astype(np.float32)
    index = rasterize(source, nodes, depth, size) if index is None else index
    coords = (np.arange(size, dtype=np.float32) + 0.5) / k - 0.5  # grid centres in crop pixels
    xs, ys = coords[None, :], coords[:, None]
    corners = source_nodes[texture].astype(np.float32)  # (T, 3, 2)
    # Per triangle: its map (6), then its source box less / plus a pixel (4).
    table = np.concatenate([maps.reshape(-1, 6), corners.min(1) - 1.0, corners.max(1) + 1.0], axis=1)
    m = np.take(table, np.maximum(index - 1, 0), axis=0)  # (size, size, 10)
    map_x = np.clip(m[..., 0] * xs + m[..., 1] * ys + m[..., 2], m[..., 6], m[..., 8])
    map_y = np.clip(m[..., 3] * xs + m[..., 4] * ys + m[..., 5], m[..., 7], m[..., 9])
    return map_x, map_y, xs, ys, index


def rasterize(source: LandmarkSource, nodes: np.ndarray, depth: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` int32 map of which triangle (index + 1; 0 = none) is seen at
    each pixel of a ``size``-pixel grid over the crop (painter's algorithm; a hole the
    surroundings do not reach takes its nearest drawn triangle)."""
    k = size / source.image.shape[0]
    # Drawing order: surroundings, then the mouth and eye holes, then the skin far
    # to near (lids and lips cover what is behind them, even when collapsed). Skin
    # that faces away from the camera is not drawn (back-face culling): on a turned
    # head, the temple and far cheek fold behind the face in the projected mesh, and
    # drawn they would cover the eye or cheek in front with texture from elsewhere.
    key = np.where(source.kinds == SKIN, depth[source.triangles].mean(1), np.inf)
    order = np.lexsort((-key, -source.kinds))
    back = signed_areas(nodes, source.triangles[: source.mesh_count]) * source.front < 0
    order = order[(order >= source.mesh_count) | ~back[np.minimum(order, source.mesh_count - 1)]]
    index = np.zeros((size, size), np.int32)
    fixed = np.round(((nodes + 0.5) * k - 0.5) * 16).astype(np.int32)
    for t in order:
        cv2.fillConvexPoly(index, fixed[source.triangles[t]], int(t) + 1, lineType=cv2.LINE_8, shift=4)
    # A nose wing turned edge-on flips on its own, with no skin in front of it: culled,
    # it left a hole through which the source's pixels at the same place (the cheek's)
    # showed as a light blot. A hole that the surroundings do not reach (one inside the
    # face) takes its nearest drawn triangle; a gap at the silhouette stays as it was.
    holes = (index == 0).astype(np.uint8)
    if holes.any():
        _, parts = cv2.connectedComponents(holes, connectivity=4)
        around = (index > 0) & (source.kinds[np.maximum(index - 1, 0)] == SURROUNDING)
        around = cv2.dilate(around.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        enclosed = (parts > 0) & ~np.isin(parts, parts[around & (holes > 0)])
        if enclosed.any() and not holes.all():
            _, (y, x) = distance_transform_edt(holes, return_indices=True)
            index[enclosed] = index[y[enclosed], x[enclosed]]
    return index
