"""Plain PyTorch rasteriser (reanimate.render): coverage, z-buffer, barycentrics,
watertightness, cameras, shading and ground-truth backward flow."""

import json
import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from reanimate.geometry import euler_to_rotation
from reanimate.render import (
    Camera,
    Fragments,
    backward_flow,
    composite,
    downsample,
    interpolate,
    lambert,
    project,
    rasterize,
    triangulate,
    unproject,
    vertex_normals,
)

SQUARE = torch.tensor([[0, 3, 2], [0, 2, 1]])  # corners 0..3 clockwise from top-left: CCW on screen


def square(u0, v0, u1, v1, z=1.0, dtype=torch.float32):
    """``(1, 4, 3)`` screen corners of an axis-aligned rectangle at depth ``z``."""
    return torch.tensor([[[u0, v0, z], [u1, v0, z], [u1, v1, z], [u0, v1, z]]], dtype=dtype)


def icosphere(subdivisions):
    """Unit icosphere: ``(V, 3)`` vertices, ``(F, 3)`` faces with outward normals ``(b - a) x (c - a)``."""
    t = (1 + 5**0.5) / 2
    verts = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t]]
    verts += [[0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    faces = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2]]
    faces += [[10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5]]
    faces += [[2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    verts = [torch.tensor(v, dtype=torch.float64) / math.sqrt(1 + t * t) for v in verts]
    for _ in range(subdivisions):
        midpoint, refined = {}, []

        def middle(i, j):
            key = (min(i, j), max(i, j))
            if key not in midpoint:
                m = verts[i] + verts[j]
                verts.append(m / m.norm())
                midpoint[key] = len(verts) - 1
            return midpoint[key]

        for a, b, c in faces:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            refined += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        faces = refined
    vertices, faces = torch.stack(verts).float(), torch.tensor(faces)
    a, b, c = vertices[faces].unbind(1)
    outward = (torch.linalg.cross(b - a, c - a) * a).sum(-1) > 0
    return vertices, torch.where(outward[:, None], faces, faces[:, [0, 2, 1]])


def grid_mesh(n, size=1.0):
    """Flat ``n x n`` quad grid on ``[-size, size]^2`` at z = 0 facing -z: ``(V, 3)``, ``(F, 3)``."""
    axis = torch.linspace(-size, size, n + 1)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    vertices = torch.stack([x, y, torch.zeros_like(x)], dim=-1).reshape(-1, 3)
    index = torch.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    quads = torch.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], dim=-1).reshape(-1, 4)
    return vertices, triangulate(quads[:, [0, 3, 2, 1]])  # counter-clockwise on screen


def coverage_count(screen, faces, height, width, **kwargs):
    """How many triangles cover each pixel centre, each rasterised alone: ``(H, W)``."""
    return sum(rasterize(screen, faces[i : i + 1], height, width, **kwargs).mask[0].long() for i in range(len(faces)))


# --- cameras ---------------------------------------------------------------------------


@pytest.mark.parametrize("orthographic", [False, True])
def test_project_unproject_round_trip(orthographic):
    camera = Camera(width=64, height=48, focal=70.0, cx=30.0, cy=20.5, orthographic=orthographic, z_ref=3.0)
    points = torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(0)) + torch.tensor([0.0, 0.0, 4.0])
    screen = project(points, camera)
    torch.testing.assert_close(screen[..., 2], points[..., 2])
    torch.testing.assert_close(unproject(screen[..., :2], screen[..., 2], camera), points)
    # Hand-computed: the principal ray hits the principal point; x right, y down.
    on_axis = project(torch.tensor([[0.0, 0.0, 2.0], [1.0, 2.0, 3.0]]), camera)
    scale = 70.0 / (3.0 if orthographic else torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(on_axis[:, 0], torch.tensor([30.0, 30.0]) + torch.tensor([0.0, 1.0]) * scale)
    torch.testing.assert_close(on_axis[:, 1], torch.tensor([20.5, 20.5]) + torch.tensor([0.0, 2.0]) * scale)


def test_camera_defaults_dict_and_fov():
    camera = Camera.from_fov(64, 32, 90.0)
    assert (camera.cx, camera.cy) == (31.5, 15.5)
    assert camera.focal == pytest.approx(32.0)  # half width / tan(45 degrees)
    assert Camera.from_dict(json.loads(json.dumps(camera.to_dict()))) == camera
    torch.testing.assert_close(camera.intrinsics(), torch.tensor([[32.0, 0, 31.5], [0, 32.0, 15.5], [0, 0, 1]]))
    with pytest.raises(ValueError, match="unknown camera fields"):
        Camera.from_dict({**camera.to_dict(), "skew": 0.0})


# --- coverage, z-buffer and barycentrics -----------------------------------------------


def test_square_covers_the_pixel_centres_inside():
    fragments = rasterize(square(2.5, 2.5, 9.5, 7.5), SQUARE, 12, 12)
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[3:8, 3:10] = True  # rows 3..7, columns 3..9
    assert fragments.mask[0].sum() == 35
    assert torch.equal(fragments.mask[0], expected)
    torch.testing.assert_close(fragments.depth[0][expected], torch.ones(35))
    assert torch.isinf(fragments.depth[0][~expected]).all() and fragments.bary[0][~expected].eq(0).all()


def test_edges_through_pixel_centres_follow_the_top_left_rule():
    # Square [2, 8] x [2, 6] with its edges on pixel centres: top and left edges are in.
    fragments = rasterize(square(2.0, 2.0, 8.0, 6.0), SQUARE, 12, 12)
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[2:6, 2:8] = True
    assert torch.equal(fragments.mask[0], expected)
    # The shared diagonal (2, 2) -> (8, 6) passes through the pixel centre (5, 4), which
    # belongs to exactly one of the two triangles.
    assert torch.equal(coverage_count(square(2.0, 2.0, 8.0, 6.0), SQUARE, 12, 12), expected.long())


def test_barycentrics_sum_to_one_and_reproduce_pixel_centres():
    # Orthographic (screen-space) barycentrics of a tilted triangle interpolate (u, v) exactly.
    screen = torch.tensor([[[1.3, 2.2, 2.0], [14.6, 4.1, 3.0], [6.2, 13.7, 5.0]]])
    faces = torch.tensor([[0, 2, 1]])
    fragments = rasterize(screen, faces, 16, 16, perspective=False)
    mask = fragments.mask[0]
    assert mask.sum() > 40
    torch.testing.assert_close(fragments.bary[0][mask].sum(-1), torch.ones(int(mask.sum())))
    uv = interpolate(screen[0, :, :2], fragments, faces)[0][mask]
    rows, cols = mask.nonzero().unbind(1)
    torch.testing.assert_close(uv, torch.stack([cols, rows], dim=1).float(), atol=1e-4, rtol=0)
    # Orthographic depth is affine in screen space.
    torch.testing.assert_close(
        fragments.depth[0][mask], interpolate(screen[0, :, 2:], fragments, faces)[0, ..., 0][mask]
    )


def test_perspective_barycentrics_interpolate_camera_space_points():
    camera = Camera(width=24, height=24, focal=30.0)
    points = torch.tensor([[[-0.4, -0.3, 2.0], [0.5, -0.2, 4.0], [0.0, 0.5, 3.0]]])
    faces = torch.tensor([[0, 2, 1]])
    fragments = rasterize(project(points, camera), faces, 24, 24)
    mask = fragments.mask[0]
    assert mask.sum() > 30
    reprojected = project(interpolate(points[0], fragments, faces)[0][mask][None], camera)[0]
    rows, cols = mask.nonzero().unbind(1)
    torch.testing.assert_close(reprojected[:, :2], torch.stack([cols, rows], dim=1).float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(reprojected[:, 2], fragments.depth[0][mask])


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_triangle_wins_regardless_of_order(near_first):
    near, far = square(1.5, 1.5, 8.5, 8.5, z=2.0)[0], square(4.5, 4.5, 12.5, 12.5, z=5.0)[0]
    screen = torch.cat([near, far] if near_first else [far, near])[None]
    faces = torch.cat([SQUARE, SQUARE + 4])
    fragments = rasterize(screen, faces, 16, 16)
    near_faces = (0, 1) if near_first else (2, 3)
    overlap = fragments.face_index[0, 5:9, 5:9]
    assert torch.isin(overlap, torch.tensor(near_faces)).all()
    torch.testing.assert_close(fragments.depth[0, 5:9, 5:9], torch.full((4, 4), 2.0))
    torch.testing.assert_close(fragments.depth[0, 10:13, 10:13], torch.full((3, 3), 5.0))


def reference_cover(triangle, u, v):
    """Brute-force top-left-rule coverage of pixel centre ``(u, v)`` by ``triangle`` (exact)."""
    (u0, v0), (u1, v1), (u2, v2) = (map(Fraction, corner) for corner in triangle)
    area = (u1 - u0) * (v2 - v0) - (v1 - v0) * (u2 - u0)
    if area == 0:
        return False
    for (ua, va), (ub, vb) in (((u1, v1), (u2, v2)), ((u2, v2), (u0, v0)), ((u0, v0), (u1, v1))):
        du, dv = (ub - ua) * (1 if area > 0 else -1), (vb - va) * (1 if area > 0 else -1)
        edge = du * (v - va) - dv * (u - ua)
        # On the edge: taken when the edge function grows along (eta, 1), i.e. du > 0, or
        # du == 0 and -dv > 0.
        if edge < 0 or (edge == 0 and not (du > 0 or (du == 0 and dv < 0))):
            return False
    return True


def test_coverage_and_depth_order_match_a_brute_force_reference():
    # Corners on a half-pixel lattice put many pixel centres exactly on edges and corners.
    generator = torch.Generator().manual_seed(5)
    corners = torch.randint(-4, 30, (30, 3, 2), generator=generator) / 2
    depth = torch.rand(30, 3, generator=generator) * 4 + 1
    screen = torch.cat([corners.reshape(-1, 2), depth.reshape(-1, 1)], dim=1)[None]
    faces = torch.arange(90).reshape(30, 3)
    fragments = rasterize(screen, faces, 14, 13)
    singles = [rasterize(screen, faces[f : f + 1], 14, 13) for f in range(30)]
    for row in range(14):
        for col in range(13):
            cover = [f for f in range(30) if reference_cover(corners[f].tolist(), col, row)]
            assert [f for f in range(30) if singles[f].mask[0, row, col]] == cover, (row, col)
            depths = [singles[f].depth[0, row, col].item() for f in cover]
            nearest = cover[depths.index(min(depths))] if cover else -1
            assert fragments.face_index[0, row, col] == nearest, (row, col)


def test_flat_grid_on_pixel_centres_is_covered_exactly_once():
    # Orthographic grid whose vertices all sit on pixel centres: every shared edge and
    # vertex is a tie, and the top-left rule must still cover each centre once.
    vertices, faces = grid_mesh(4)
    screen = torch.cat([vertices[:, :2] * 6 + 10, torch.ones(len(vertices), 1)], dim=1)[None]  # [4, 16]^2
    count = coverage_count(screen, faces, 24, 24, perspective=False)
    expected = torch.zeros(24, 24, dtype=torch.long)
    expected[4:16, 4:16] = 1
    assert torch.equal(count, expected)


def test_fan_around_a_vertex_on_a_pixel_centre():
    angles = torch.sort(torch.rand(9, generator=torch.Generator().manual_seed(3)) * 2 * math.pi)[0]
    ring = torch.stack([8 + 6 * angles.cos(), 8 + 6 * angles.sin(), torch.ones(9)], dim=1)
    screen = torch.cat([torch.tensor([[8.0, 8.0, 1.0]]), ring])[None]
    faces = torch.tensor([[0, 1 + (i + 1) % 9, 1 + i] for i in range(9)])  # counter-clockwise on screen
    count = coverage_count(screen, faces, 16, 16)
    assert count.max() == 1 and count[8, 8] == 1
    assert torch.equal(count.bool(), rasterize(screen, faces, 16, 16).mask[0])


def test_closed_mesh_has_no_holes_and_no_double_coverage():
    vertices, faces = icosphere(2)
    camera = Camera(width=40, height=40, focal=60.0, cx=19.3, cy=20.1)
    points = vertices @ euler_to_rotation(torch.tensor(20.0), torch.tensor(-30.0), torch.tensor(10.0))[0].T
    screen = project(points + torch.tensor([0.0, 0.0, 4.0]), camera)[None]
    full = rasterize(screen, faces, 40, 40)
    front = rasterize(screen, faces, 40, 40, cull_backfaces=True)
    # Front faces tile the silhouette once; culling keeps the near surface.
    count = coverage_count(screen, faces, 40, 40, cull_backfaces=True)
    assert count.max() == 1
    assert torch.equal(count.bool(), full.mask[0]) and torch.equal(front.mask, full.mask)
    torch.testing.assert_close(front.depth, full.depth)
    # Against the analytic silhouette: the sphere's outline is a circle of radius
    # f / sqrt(d^2 - 1) around the principal point; the polyhedron lies within 1.5 %.
    v, u = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    radius = ((u - 19.3) ** 2 + (v - 20.1) ** 2).sqrt()
    outline = 60.0 / math.sqrt(15.0)
    assert full.mask[0][radius < outline * 0.96].all() and not full.mask[0][radius > outline * 1.01].any()


def test_batched_frames_match_single_frames():
    vertices, faces = icosphere(1)
    rotation = euler_to_rotation(torch.tensor([0.0, 40.0, -70.0]), torch.tensor([10.0, 0.0, 20.0]), torch.zeros(3))
    screen = project(vertices @ rotation.transpose(1, 2) + torch.tensor([0.0, 0.0, 3.0]), Camera(32, 32, 40.0))
    batched = rasterize(screen, faces, 32, 32)
    for n in range(3):
        single = rasterize(screen[n : n + 1], faces, 32, 32)
        assert torch.equal(single.face_index[0], batched.face_index[n])
        torch.testing.assert_close(single.bary[0], batched.bary[n])


def test_triangles_behind_the_near_plane_are_dropped():
    screen = torch.cat([square(1.5, 1.5, 6.5, 6.5, z=2.0), square(1.5, 1.5, 6.5, 6.5, z=-1.0)], dim=1)
    screen[0, 4, 2] = 2.0  # one triangle of the second square straddles the camera plane
    fragments = rasterize(screen, torch.cat([SQUARE, SQUARE + 4]), 8, 8)
    assert torch.isin(fragments.face_index[0][fragments.mask[0]], torch.tensor([0, 1])).all()


def test_gradients_reach_vertex_positions_and_attributes():
    screen = torch.tensor([[[1.3, 2.2, 2.0], [14.6, 4.1, 3.0], [6.2, 13.7, 5.0]]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1]])
    colors = torch.tensor([[1.0, 0.2], [0.3, 0.5], [0.0, 0.9]], dtype=torch.float64, requires_grad=True)

    def loss(s):
        fragments = rasterize(s, faces, 16, 16)
        return (interpolate(colors, fragments, faces) * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum()

    position = screen.clone().requires_grad_(True)
    loss(position).backward()
    assert colors.grad.abs().sum() > 0
    for coordinate in range(3):
        step = torch.zeros_like(screen)
        step[0, 1, coordinate] = 1e-6
        numeric = (loss(screen + step) - loss(screen - step)) / 2e-6
        assert position.grad[0, 1, coordinate].item() == pytest.approx(numeric.item(), rel=1e-4, abs=1e-8)


# --- mesh helpers and shading ----------------------------------------------------------


def test_triangulate_and_vertex_normals():
    padded = torch.tensor([[0, 1, 2, 3], [4, 5, 6, -1]])
    expected = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    assert torch.equal(triangulate(padded), expected)
    assert torch.equal(triangulate([[0, 1, 2, 3], [4, 5, 6]]), expected)
    assert torch.equal(triangulate([[0, 1, 2, 3, 4]]), torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4]]))
    vertices, faces = icosphere(2)
    normals = vertex_normals(vertices[None], faces)[0]
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(len(vertices)))
    assert (normals * vertices).sum(-1).min() > 0.99  # outward, close to radial


def test_lambert_composite_and_downsample():
    albedo = torch.full((2, 1, 1, 3), 0.5)
    normals = torch.tensor([0.0, 0.0, -1.0]).expand(2, 1, 1, 3)
    light = torch.tensor([[0.0, 0.0, -1.0], [0.0, math.sin(math.pi / 3), -0.5]])  # at the camera; 60 degrees off
    shaded = lambert(albedo, normals, light, ambient=0.2, diffuse=torch.tensor([0.6, 0.6]))
    torch.testing.assert_close(shaded[:, 0, 0, 0], torch.tensor([0.5 * 0.8, 0.5 * (0.2 + 0.6 * 0.5)]))
    shiny = lambert(albedo, normals, light, 0.2, 0.6, specular=0.5, shininess=4.0)
    half = math.cos(math.pi / 6)  # the half vector is 30 degrees off the normal
    torch.testing.assert_close(shiny[:, 0, 0, 0], torch.tensor([0.4 + 0.5, 0.25 + 0.5 * half**4]))
    per_pixel = lambert(albedo, normals, light, 0.2, 0.6, specular=torch.full((2, 1, 1), 0.5), shininess=4.0)
    torch.testing.assert_close(per_pixel, shiny)
    mask = torch.tensor([[[True]], [[False]]])
    torch.testing.assert_close(composite(shaded, mask, torch.zeros_like(shaded)), shaded * mask[..., None])
    image = torch.arange(16.0).reshape(1, 4, 4, 1)
    torch.testing.assert_close(downsample(image, 2)[0, :, :, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert downsample(mask.float().expand(2, 2, 2), 2).shape == (2, 1, 1)


# --- backward flow ---------------------------------------------------------------------


def smooth_colors(vertices):
    """A smooth per-vertex texture ``(V, 3)`` from object-space positions."""
    return 0.5 + 0.4 * torch.sin(torch.stack([2 * vertices[:, 0], 3 * vertices[:, 1], 2 * vertices[:, 2] + 1], 1))


def warp(image, flow):
    """``grid_sample`` of channels-last ``image`` ``(N, H, W, C)`` by ``flow`` ``(N, H, W, 2)``."""
    return F.grid_sample(image.permute(0, 3, 1, 2), flow, align_corners=True).permute(0, 2, 3, 1)


def render(points, faces, colors, camera):
    fragments = rasterize(project(points, camera), faces, camera.height, camera.width, not camera.orthographic)
    return fragments, interpolate(colors, fragments, faces)


@pytest.mark.parametrize("orthographic", [False, True])
def test_backward_flow_of_a_translated_plane(orthographic):
    camera = Camera(width=48, height=40, focal=50.0, orthographic=orthographic, z_ref=4.0)
    vertices, faces = grid_mesh(6)
    source = vertices * 1.2 + torch.tensor([0.0, 0.0, 4.0])
    target = source + torch.tensor([0.25, -0.1, 0.0])
    colors = smooth_colors(vertices)
    fragments, image_t = render(target[None], faces, colors, camera)
    source_fragments, image_0 = render(source[None], faces, colors, camera)
    flow, visible = backward_flow(fragments, faces, project(source, camera), source_fragments.depth, camera)
    # Analytic: the point seen at (u, v) was 50 * (0.25, -0.1) / 4 pixels away.
    v, u = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
    expected = torch.stack([2 * (u - 3.125) / 47 - 1, 2 * (v + 1.25) / 39 - 1], dim=-1)
    mask = fragments.mask[0]
    torch.testing.assert_close(flow[0][mask], expected[mask], atol=1e-4, rtol=0)
    identity = torch.stack([2 * u / 47 - 1, 2 * v / 39 - 1], dim=-1)
    torch.testing.assert_close(flow[0][~mask], identity[~mask])
    inside = (u - 3.125 >= 0) & (v + 1.25 <= 39)
    assert torch.equal(visible[0], mask & inside)
    # Warping rebuilds the frame, except where bilinear sampling mixes in the source's
    # background (within a pixel of its silhouette).
    inner = visible & (warp(source_fragments.mask[..., None].float(), flow)[..., 0] > 0.999)
    assert inner.sum() > 0.8 * visible.sum()
    torch.testing.assert_close(warp(image_0, flow)[inner], image_t[inner], atol=0.01, rtol=0)


def test_backward_flow_of_a_rotating_sphere():
    camera = Camera(width=48, height=48, focal=70.0)
    vertices, faces = icosphere(3)
    centre = torch.tensor([0.0, 0.0, 4.0])
    rotation = euler_to_rotation(torch.tensor([0.0, 25.0]), torch.tensor([0.0, -6.0]), torch.tensor([0.0, 5.0]))
    points = vertices @ rotation.transpose(1, 2) + centre  # frame 0 = source, frame 1 = target
    colors = smooth_colors(vertices)
    fragments, images = render(points, faces, colors, camera)
    flow, visible = backward_flow(fragments, faces, project(points[0], camera), fragments.depth[0], camera)
    assert torch.equal(visible[0], fragments.mask[0])  # frame 0 maps onto itself
    # Analytic: intersect each pixel's ray with the unit sphere, rotate the point back.
    v, u = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    ray = torch.stack([(u - 23.5) / 70, (v - 23.5) / 70, torch.ones_like(u)], dim=-1)
    b = (ray * centre).sum(-1)
    disc = b**2 - (ray * ray).sum(-1) * (centre @ centre - 1)
    hit = ray * ((b - disc.clamp_min(0).sqrt()) / (ray * ray).sum(-1))[..., None]
    source_point = (hit - centre) @ (rotation[0] @ rotation[1].T).T + centre
    expected = project(source_point, camera)[..., :2] * torch.tensor([2 / 47, 2 / 47]) - 1
    facing = -((hit - centre) * ray).sum(-1) / ray.norm(dim=-1) > 0.5  # away from the silhouette
    interior = fragments.mask[1] & (disc > 0) & facing & visible[1]
    assert interior.sum() > 300
    error_pixels = (flow[1] - expected).norm(dim=-1)[interior] * 47 / 2
    assert error_pixels.max() < 0.35
    # Visible: the point faced the camera in the source frame (a margin at the limb).
    facing_source = -((source_point - centre) * source_point).sum(-1) / source_point.norm(dim=-1)
    seen = fragments.mask[1] & (disc > 0)
    assert visible[1][seen & (facing_source > 0.25)].all()
    assert not visible[1][seen & (facing_source < -0.05)].any()
    assert (seen & (facing_source < -0.05)).sum() > 20
    inner = visible[1:] & (warp(fragments.mask[:1, ..., None].float(), flow[1:])[..., 0] > 0.999)
    error = (warp(images[:1], flow[1:]) - images[1:])[inner].abs()
    assert error.mean() < 0.005 and error.max() < 0.05


def test_occluded_points_are_invisible():
    # A static occluder in front of a plane that slides right: plane points that were
    # behind the occluder in the source frame are not visible there.
    camera = Camera(width=40, height=32, focal=40.0)
    back, back_faces = grid_mesh(4, size=2.0)
    front, front_faces = grid_mesh(1, size=0.5)
    front_points = front + torch.tensor([0.0, 0.0, 2.0])
    faces = torch.cat([back_faces, front_faces + len(back)])
    source = torch.cat([back + torch.tensor([0.0, 0.0, 4.0]), front_points])
    target = torch.cat([back + torch.tensor([0.8, 0.0, 4.0]), front_points])
    source_fragments = rasterize(project(source, camera)[None], faces, 32, 40)
    fragments = rasterize(project(target, camera)[None], faces, 32, 40)
    flow, visible = backward_flow(fragments, faces, project(source, camera), source_fragments.depth, camera)
    # The occluder spans u in [9.5, 29.5] (rows 6..25); plane points move 8 px right.
    on_plane = fragments.mask[0] & (fragments.face_index[0] < len(back_faces))
    hidden_before = (flow[0, ..., 0] + 1) * 39 / 2
    behind = (hidden_before > 9.6) & (hidden_before < 29.4)
    rows = torch.zeros(32, 40, dtype=torch.bool)
    rows[7:25] = True
    assert (on_plane & behind & rows).sum() > 50
    assert not visible[0][on_plane & behind & rows].any()
    assert visible[0][on_plane & ~behind & rows & (hidden_before > 0.5)].all()
    assert visible[0][~on_plane & fragments.mask[0]].all()  # the occluder itself


# --- fast paths against plain references ---------------------------------------------


def test_interpolate_without_the_covered_pixel_cache():
    """Fragments built from the maps alone (no cached covered pixels) interpolate alike."""
    vertices, faces = icosphere(2)
    camera = Camera(width=24, height=20, focal=30.0)
    screen = project((vertices * 0.8 + torch.tensor([0.0, 0.0, 3.0]))[None].expand(2, -1, -1), camera)
    fragments = rasterize(screen, faces, 20, 24)
    attributes = torch.randn(2, len(vertices), 5)
    plain = Fragments(fragments.face_index, fragments.bary, fragments.depth)
    torch.testing.assert_close(interpolate(attributes, plain, faces), interpolate(attributes, fragments, faces))
    covered, face, bary = plain.pixels()
    assert torch.equal(covered, fragments.covered) and torch.equal(face, fragments.covered_face)
    torch.testing.assert_close(bary, fragments.covered_bary)
    mask = fragments.mask
    corners = attributes[0][faces[fragments.face_index.clamp_min(0)]]  # (N, H, W, 3, C)
    expected = ((corners * fragments.bary[..., None]).sum(-2)) * mask[..., None]
    torch.testing.assert_close(interpolate(attributes[0], fragments, faces), expected)


def test_vertex_normals_match_a_per_face_loop():
    vertices, faces = icosphere(1)
    frames = torch.stack([vertices, vertices * torch.tensor([1.0, 2.0, 0.5]) + 0.3])
    expected = torch.zeros_like(frames)
    for a, b, c in faces.tolist():
        normal = torch.linalg.cross(frames[:, b] - frames[:, a], frames[:, c] - frames[:, a])
        for i in (a, b, c):
            expected[:, i] += normal
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(vertex_normals(frames, faces), expected)


def test_lambert_matches_the_normalised_formula():
    """Random normals (unnormalised, some zero), per-pixel views, two-sided, highlights."""
    torch.manual_seed(0)
    albedo, normals = torch.rand(2, 4, 5, 3), torch.randn(2, 4, 5, 3)
    normals[0, 0, 0] = 0
    view = F.normalize(torch.randn(2, 4, 5, 3), dim=-1)
    light = F.normalize(torch.randn(2, 3), dim=-1)
    specular = torch.rand(2, 4, 5)
    for two_sided in (False, True):
        for v in (None, view):
            unit = F.normalize(normals, dim=-1, eps=1e-12)
            towards = torch.tensor([0.0, 0.0, -1.0]).expand_as(unit) if v is None else v
            if two_sided:
                unit = torch.where((unit * towards).sum(-1, keepdim=True) < 0, -unit, unit)
            n_dot_l = (unit * light[:, None, None]).sum(-1, keepdim=True)
            half = F.normalize(light[:, None, None] + towards, dim=-1)
            n_dot_h = (unit * half).sum(-1, keepdim=True).clamp_min(0)
            expected = albedo * (0.2 + 0.7 * n_dot_l.clamp_min(0)) + specular[..., None] * n_dot_h**8 * (n_dot_l > 0)
            shaded = lambert(albedo, normals, light, 0.2, 0.7, specular, 8.0, view=v, two_sided=two_sided)
            torch.testing.assert_close(shaded, expected.clamp(0, 1))
