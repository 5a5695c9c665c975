"""Landmark-mesh geometry (reanimate.geometry.mesh) against hand-computed cases."""

import math

import numpy as np
import torch

from reanimate.geometry import fit_similarity
from reanimate.geometry.mesh import (
    fit_affine,
    fit_local_jacobians,
    nearest_neighbours,
    signed_areas,
    triangle_backward_maps,
    untangle,
)
from reanimate.geometry.relative import polygon_area


def test_nearest_neighbours_excludes_self_and_orders_by_distance():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    nb = nearest_neighbours(points, 2)
    assert nb.tolist() == [[1, 3], [0, 2], [1, 0], [0, 1]]


def test_local_jacobians_recover_a_global_linear_map():
    torch.manual_seed(0)
    reference = torch.rand(1, 30, 2)
    matrix = torch.tensor([[1.2, -0.3], [0.4, 0.8]])
    points = reference @ matrix.T + torch.tensor([0.5, -0.2])
    jac = fit_local_jacobians(reference, points, nearest_neighbours(reference[0], 6))
    assert jac.shape == (1, 30, 2, 2)
    assert torch.allclose(jac, matrix.expand(1, 30, 2, 2), atol=1e-3)  # ridge 1e-6 biases slightly


def test_local_jacobians_are_local():
    # Left half stretched x2 horizontally, right half unchanged: each side's Jacobian
    # sees only its own neighbourhood.
    xs, ys = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="xy")
    left = torch.stack([xs.flatten(), ys.flatten()], 1)
    right = left + torch.tensor([100.0, 0.0])
    reference = torch.cat([left, right])[None]
    points = torch.cat([left * torch.tensor([2.0, 1.0]), right])[None]
    jac = fit_local_jacobians(reference, points, nearest_neighbours(reference[0], 4))
    assert torch.allclose(jac[0, :36], torch.tensor([[2.0, 0.0], [0.0, 1.0]]).expand(36, 2, 2), atol=1e-4)
    assert torch.allclose(jac[0, 36:], torch.eye(2).expand(36, 2, 2), atol=1e-4)


def test_similarity_fit_recovers_rotation_scale_translation():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(20, 2))
    angle, scale = math.radians(30), 1.7
    linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    target = source @ linear.T + [3.0, -1.0]
    # The 3-D head-pose fit serves 2-D points too (the animator's head motion).
    s, r, t = fit_similarity(torch.from_numpy(source[None]), torch.from_numpy(target[None]))
    matrix = np.concatenate([(s[0] * r[0]).numpy(), t[0].numpy()[:, None]], axis=1)
    assert np.allclose(matrix[:, :2], linear, atol=1e-9)
    assert np.allclose(matrix[:, 2], [3.0, -1.0], atol=1e-9)
    assert np.allclose(source @ matrix[:, :2].T + matrix[:, 2], target, atol=1e-9)


def test_affine_fit_is_exact_for_affine_data():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(10, 2))
    matrix = np.array([[1.0, 0.5, 2.0], [-0.2, 0.9, 1.0]])
    target = source @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(fit_affine(source, target), matrix, atol=1e-9)


def test_signed_and_polygon_areas():
    points = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [2.0, 3.0]])
    tri = np.array([[0, 1, 2], [0, 2, 1]])
    assert signed_areas(points, tri).tolist() == [6.0, -6.0]
    assert polygon_area(points[[0, 1, 3, 2]]) == 6.0


def test_triangle_backward_maps_send_target_vertices_to_source_vertices():
    source = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    target = np.array([[1.0, 1.0], [6.0, 2.0], [0.0, 5.0], [5.0, 6.0]])
    triangles = np.array([[0, 1, 2], [1, 3, 2]])
    maps = triangle_backward_maps(source, target, triangles)
    assert maps.shape == (2, 2, 3)
    for t, tri in enumerate(triangles):
        for v in tri:
            assert np.allclose(maps[t] @ [*target[v], 1.0], source[v], atol=1e-9)
    # A degenerate (collapsed) target triangle still gives finite maps.
    collapsed = target.copy()
    collapsed[2] = (collapsed[0] + collapsed[1]) / 2
    assert np.isfinite(triangle_backward_maps(source, collapsed, triangles)).all()


def _grid_mesh(n: int = 5):
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel()], 1)
    triangles = []
    for y in range(n - 1):
        for x in range(n - 1):
            a, b, c, d = y * n + x, y * n + x + 1, (y + 1) * n + x, (y + 1) * n + x + 1
            triangles += [(a, b, d), (a, d, c)]
    return points, np.array(triangles)


def test_untangle_unfolds_a_pushed_vertex_and_keeps_the_rest():
    points, triangles = _grid_mesh()
    reference = signed_areas(points, triangles)
    movable = np.zeros(len(points), bool)
    movable[[6, 7, 8, 11, 12, 13, 16, 17, 18]] = True  # the inner vertices; the border is fixed
    folded = points.copy()
    folded[12] += (1.6, 0.0)  # the centre pushed past its right neighbour: triangles flip
    assert (signed_areas(folded, triangles) * reference <= 0).any()
    moved, left = untangle(folded, triangles, reference, movable, min_ratio=0.2)
    assert left == 0
    areas = signed_areas(moved, triangles)
    assert (areas * np.sign(reference) >= 0.2 * np.abs(reference) - 1e-9).all()
    np.testing.assert_array_equal(moved[~movable], points[~movable])  # fixed points stay
    # the least move: the pushed vertex comes back towards its place but not all the way
    assert 0 < np.linalg.norm(moved[12] - folded[12]) < 1.6
    # an untangled mesh is returned as it is
    same, left = untangle(points, triangles, reference, movable)
    assert left == 0
    np.testing.assert_array_equal(same, points)


def test_untangle_reports_what_it_cannot_fix():
    points, triangles = _grid_mesh(3)
    reference = signed_areas(points, triangles)
    folded = points.copy()
    folded[4] = (3.5, 1.0)  # the only inner vertex, far outside, and nothing may move
    moved, left = untangle(folded, triangles, reference, np.zeros(len(points), bool))
    assert left > 0
    np.testing.assert_array_equal(moved, folded)
