"""Geometry functions against hand-computed cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from reanimate.geometry import (
    ThinPlateSpline,
    compose_jacobians,
    convex_hull_area,
    coordinate_grid,
    heatmap_to_keypoints,
    keypoints_to_gaussian,
    local_affine_motion,
    movement_scale,
    normalized_shape,
    normalized_to_pixel,
    pixel_to_normalized,
    relative_pose_motion,
    spatial_softmax,
)
from reanimate.motion import Keypoints, relative_motion, sparse_motion


def test_coordinate_grid_is_x_first_and_spans_minus_one_to_one():
    grid = coordinate_grid((3, 5))
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1, -1]
    assert grid[2, 4].tolist() == [1, 1]
    assert grid[0, :, 0].tolist() == [-1, -0.5, 0, 0.5, 1]  # x varies along the width
    assert grid[:, 0, 1].tolist() == [-1, 0, 1]
    vol = coordinate_grid((2, 3, 4))
    assert vol.shape == (2, 3, 4, 3) and vol[1, 2, 3].tolist() == [1, 1, 1]


def test_pixel_normalized_round_trip():
    pts = torch.tensor([[0.0, 0.0], [63.0, 31.0], [10.5, 7.25]])
    norm = pixel_to_normalized(pts, (32, 64))
    assert norm[0].tolist() == [-1, -1] and norm[1].tolist() == [1, 1]
    assert torch.allclose(normalized_to_pixel(norm, (32, 64)), pts)


def test_gaussian_values_match_hand_computation():
    kp = torch.tensor([[[0.0, 0.0]]])
    g = keypoints_to_gaussian(kp, (5, 5), variance=0.01)
    assert g.shape == (1, 1, 5, 5)
    assert g[0, 0, 2, 2] == 1.0
    # neighbour at x = 0.5: exp(-0.5 * 0.25 / 0.01)
    assert math.isclose(g[0, 0, 2, 3].item(), math.exp(-12.5), rel_tol=1e-5)


@pytest.mark.parametrize("point", [(0.3, -0.4), (-0.75, 0.6), (0.0, 0.0)])
def test_keypoint_heatmap_keypoint_round_trip(point):
    kp = torch.tensor([[point]])
    heat = keypoints_to_gaussian(kp, (64, 64), variance=0.002)
    heat = heat / heat.sum(dim=(2, 3), keepdim=True)
    recovered = heatmap_to_keypoints(heat)
    assert recovered.shape == (1, 1, 2)
    assert torch.allclose(recovered, kp, atol=1e-4)


def test_spatial_softmax_normalises_each_map_and_sharpens_with_temperature():
    logits = torch.randn(2, 3, 8, 8)
    p = spatial_softmax(logits, 0.1)
    assert torch.allclose(p.sum(dim=(2, 3)), torch.ones(2, 3))
    assert p.max() > spatial_softmax(logits, 1.0).max()


def test_local_affine_motion_hand_computed():
    grid = torch.tensor([[[0.5, 0.5]]])  # (1, 1, 2): one point
    kp_s = torch.tensor([[[0.1, 0.2]]])
    kp_d = torch.tensor([[[0.0, 0.0]]])
    jac = torch.tensor([[[[2.0, 0.0], [0.0, 1.0]]]])
    out = local_affine_motion(grid, kp_s, kp_d, jac)
    assert out.shape == (1, 1, 1, 1, 2)
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor([1.1, 0.7]))
    # zeroth order: translation only
    assert torch.allclose(local_affine_motion(grid, kp_s, kp_d)[0, 0, 0, 0], torch.tensor([0.6, 0.7]))


def test_compose_jacobians_is_source_times_inverse_driving():
    js = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    jd = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    expected = torch.tensor([[0.5, 0.5], [0.0, 0.25]])
    assert torch.allclose(compose_jacobians(js, jd), expected)


def test_first_order_motion_recovers_a_known_affine_warp_exactly():
    """If the source is a global affine transform of the driving frame, the local affine
    motion around any keypoint is that transform everywhere (Eq. 6 is exact)."""
    a = torch.tensor([[0.9, -0.2], [0.15, 1.1]])
    t = torch.tensor([0.05, -0.1])
    kp_d = torch.tensor([[[0.2, -0.3], [-0.5, 0.4]]])
    jac_d = torch.tensor([[[1.2, 0.1], [-0.3, 0.8]], [[0.7, 0.0], [0.2, 1.0]]])[None]
    kp_s = kp_d @ a.T + t
    jac_s = a @ jac_d  # the source's local frames are the driving ones mapped by A
    grid = coordinate_grid((16, 16))
    motions = sparse_motion(grid, Keypoints(kp_s, jac_s), Keypoints(kp_d, jac_d))
    expected = grid @ a.T + t
    assert motions.shape == (1, 3, 16, 16, 2)
    assert torch.allclose(motions[0, 0], grid)  # background = identity
    for k in (1, 2):
        assert torch.allclose(motions[0, k], expected, atol=1e-6)

    # Warping an image with that grid gives the analytically transformed image.
    def pattern(xy):
        return torch.sin(3 * xy[..., 0]) * torch.cos(2 * xy[..., 1])

    big = coordinate_grid((64, 64))
    image = pattern(big)[None, None]
    warp = big @ a.T + t
    warped = F.grid_sample(image, warp[None], align_corners=True)
    inside = (warp.abs() < 0.95).all(-1)
    assert torch.allclose(warped[0, 0][inside], pattern(warp)[inside], atol=2e-3)


def test_relative_motion_with_identical_driving_frames_returns_the_source():
    src = Keypoints(torch.rand(1, 10, 2) * 2 - 1, torch.randn(1, 10, 2, 2) + 2 * torch.eye(2))
    drv = Keypoints(torch.rand(3, 10, 2) * 2 - 1, torch.randn(3, 10, 2, 2) + 2 * torch.eye(2))
    for adapt in (False, True):
        out = relative_motion(src, drv[1], drv[1], adapt_movement_scale=adapt)
        assert torch.allclose(out.value, src.value, atol=1e-6)
        assert torch.allclose(out.jacobian, src.jacobian, atol=1e-5)


def test_relative_motion_adds_scaled_displacement():
    src = Keypoints(torch.zeros(1, 2, 2), torch.eye(2).expand(1, 2, 2, 2))
    d0 = Keypoints(torch.tensor([[[0.1, 0.1], [0.2, 0.2]]]), torch.eye(2).expand(1, 2, 2, 2))
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    dt = Keypoints(d0.value + torch.tensor([0.3, -0.1]), rot.expand(1, 2, 2, 2))
    out = relative_motion(src, dt, d0, adapt_movement_scale=0.5)
    assert torch.allclose(out.value, torch.tensor([0.15, -0.05]).expand(1, 2, 2))
    assert torch.allclose(out.jacobian, rot.expand(1, 2, 2, 2))
    # absolute jacobian kept if not relative
    out = relative_motion(src, dt, d0, relative_jacobian=False)
    assert torch.allclose(out.jacobian, dt.jacobian)


def test_convex_hull_area_and_adapt_scale_ratio():
    square = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0], [0.5, -0.2]])
    assert convex_hull_area(square).item() == pytest.approx(4.0)
    assert convex_hull_area(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])).item() == 0.0
    triangle = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert convex_hull_area(triangle).item() == pytest.approx(3.0)
    # source hull area 4, driving hull area 1 -> displacements doubled
    small = square * 0.5
    scale = movement_scale(square[None], small[None])
    assert scale.tolist() == pytest.approx([2.0])
    with pytest.raises(ValueError):
        movement_scale(square[None], torch.zeros(1, 6, 2))


def test_normalized_shape_ignores_translation_and_scale():
    pts = torch.rand(1, 10, 2)
    moved = pts * 3.0 + torch.tensor([0.5, -2.0])
    assert torch.allclose(normalized_shape(pts), normalized_shape(moved), atol=1e-5)


def test_tps_identity_at_zero_parameters():
    tps = ThinPlateSpline.identity(batch=2, points_tps=5)
    pts = coordinate_grid((7, 9)).view(1, -1, 2)
    assert torch.allclose(tps.warp_points(pts), pts.expand(2, -1, -1))
    assert torch.allclose(tps.jacobian(pts), torch.eye(2).expand(2, pts.shape[1], 2, 2))


def test_tps_matches_reference_formula_at_one_point():
    """T(p) = A p + t + sum_i w_i r_i^2 log(r_i + 1e-6) with L1 distances, the same weight for x and y."""
    affine = torch.tensor([[[1.1, 0.1, 0.05], [-0.2, 0.9, 0.0]]])
    control = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    weights = torch.tensor([[[0.3], [-0.2]]])
    tps = ThinPlateSpline(affine, control, weights, norm="l1")
    p = torch.tensor([[[0.5, -0.5]]])
    r0, r1 = 1.0, 0.5 + 1.5
    bump = 0.3 * r0**2 * math.log(r0 + 1e-6) - 0.2 * r1**2 * math.log(r1 + 1e-6)
    expected = torch.tensor([1.1 * 0.5 - 0.1 * 0.5 + 0.05 + bump, -0.2 * 0.5 - 0.9 * 0.5 + bump])
    assert torch.allclose(tps.warp_points(p)[0, 0], expected, atol=1e-6)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_tps_analytic_jacobian_matches_autograd(norm):
    gen = torch.Generator().manual_seed(3)
    tps = ThinPlateSpline.random(2, 0.05, 0.005, 5, norm=norm, generator=gen)
    tps.weights = tps.weights * 20  # make the non-linear part matter
    pts = (torch.rand(2, 20, 2, generator=gen) * 1.8 - 0.9).requires_grad_(True)
    out = tps.warp_points(pts)
    rows = [torch.autograd.grad(out[..., i].sum(), pts, retain_graph=True)[0] for i in range(2)]
    auto = torch.stack(rows, dim=-2)
    assert torch.allclose(tps.jacobian(pts.detach()), auto, atol=1e-5)


def test_random_tps_is_numerically_invertible_on_a_grid():
    gen = torch.Generator().manual_seed(0)
    tps = ThinPlateSpline.random(1, 0.05, 0.005, 5, generator=gen)
    target = coordinate_grid((9, 9)).view(1, -1, 2) * 0.8
    # Newton iterations solve T(p) = target with the analytic Jacobian.
    p = target.clone()
    for _ in range(10):
        residual = tps.warp_points(p) - target
        p = p - torch.linalg.solve(tps.jacobian(p), residual.unsqueeze(-1)).squeeze(-1)
    assert (tps.warp_points(p) - target).abs().max() < 1e-5
    assert torch.linalg.det(tps.jacobian(p)).min() > 0  # no fold-over


def test_tps_warp_grid_shape():
    tps = ThinPlateSpline.random(3, 0.05, 0.005, 5)
    assert tps.warp_grid((12, 10)).shape == (3, 12, 10, 2)


# -- rotations ----------------------------------------------------------------------

from reanimate.geometry import euler_to_rotation, fit_rotation, fit_similarity, rotation_angle, rotation_to_euler  # noqa: E402

FRONT = torch.tensor([0.0, 0.0, -1.0])  # a face looks at the camera, along -z


def test_euler_quarter_turns_follow_the_image_convention():
    assert torch.equal(euler_to_rotation(0.0, 0.0, 0.0), torch.eye(3).unsqueeze(0))
    yaw = euler_to_rotation(torch.tensor([90.0]), torch.tensor([0.0]), torch.tensor([0.0]))[0]
    assert torch.allclose(yaw, torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]), atol=1e-6)
    assert torch.allclose(yaw @ FRONT, torch.tensor([1.0, 0, 0]), atol=1e-6)  # faces image right
    pitch = euler_to_rotation(0.0, 90.0, 0.0)[0]
    assert torch.allclose(pitch @ FRONT, torch.tensor([0.0, -1, 0]), atol=1e-6)  # looks up (y is down)
    roll = euler_to_rotation(0.0, 0.0, 90.0)[0]
    assert torch.allclose(roll, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6)
    assert torch.allclose(roll @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)  # clockwise


def test_euler_round_trip_and_image_rotation_adds_to_roll():
    gen = torch.Generator().manual_seed(0)
    angles = torch.stack(
        [
            torch.rand(64, generator=gen) * 178 - 89,
            torch.rand(64, generator=gen) * 358 - 179,
            torch.rand(64, generator=gen) * 358 - 179,
        ],
        dim=1,
    ).double()
    rotations = euler_to_rotation(*angles.T)
    assert rotations.shape == (64, 3, 3) and rotations.dtype == torch.float64
    assert torch.allclose(rotations @ rotations.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    assert torch.allclose(rotation_to_euler(rotations), angles, atol=1e-8)
    in_plane = euler_to_rotation(0.0, 0.0, 10.0).double()
    expected = angles.clone()
    expected[:, 2] = (expected[:, 2] + 190) % 360 - 180
    assert torch.allclose(rotation_to_euler(in_plane @ rotations), expected, atol=1e-8)


def test_euler_gimbal_lock_keeps_the_rotation():
    for yaw in (90.0, -90.0):
        rotation = euler_to_rotation(yaw, 20.0, 30.0).double()
        angles = rotation_to_euler(rotation)[0]
        assert angles[0].item() == pytest.approx(yaw) and angles[1].item() == 0.0
        assert torch.allclose(euler_to_rotation(*angles).double(), rotation, atol=1e-6)
    assert rotation_to_euler(euler_to_rotation(90.0, 0.0, 30.0))[0].tolist() == pytest.approx([90, 0, 30], abs=1e-4)


def test_fit_rotation_recovers_a_known_rotation_and_never_reflects():
    gen = torch.Generator().manual_seed(1)
    points = torch.randn(2, 30, 3, generator=gen, dtype=torch.float64)
    truth = euler_to_rotation(
        torch.tensor([25.0, -60.0]), torch.tensor([-10.0, 5.0]), torch.tensor([3.0, 170.0])
    ).double()
    moved = points @ truth.transpose(1, 2) + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    fitted = fit_rotation(points, moved)
    assert torch.allclose(fitted, truth, atol=1e-10)
    assert rotation_angle(fitted, truth).max() < 1e-4
    mirrored = points * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(torch.det(fit_rotation(points, mirrored)), torch.ones(2, dtype=torch.float64))
    # 2-D: a quarter turn of the unit square
    square = torch.tensor([[[0.0, 0], [1, 0], [1, 1], [0, 1]]])
    turned = square @ torch.tensor([[0.0, 1], [-1, 0]])  # (x, y) -> (-y, x)
    assert torch.allclose(fit_rotation(square, turned)[0], torch.tensor([[0.0, -1], [1, 0]]), atol=1e-6)


def test_fit_similarity_recovers_scale_rotation_translation():
    gen = torch.Generator().manual_seed(2)
    points = torch.randn(1, 20, 3, generator=gen, dtype=torch.float64)
    truth = euler_to_rotation(40.0, 10.0, -20.0).double()
    moved = 2.5 * points @ truth.transpose(1, 2) + torch.tensor([4.0, 5.0, 6.0], dtype=torch.float64)
    scale, rotation, translation = fit_similarity(points, moved)
    assert scale.item() == pytest.approx(2.5)
    assert torch.allclose(rotation, truth, atol=1e-10)
    assert torch.allclose(translation, torch.tensor([[4.0, 5.0, 6.0]], dtype=torch.float64))
    weights = torch.ones(1, 20, dtype=torch.float64)
    weights[0, 0] = 0.0
    noisy = moved.clone()
    noisy[0, 0] += 100.0  # an outlier with zero weight changes nothing
    assert fit_similarity(points, noisy, weights)[0].item() == pytest.approx(2.5)


def _rotation(yaw: float, pitch: float, roll: float) -> torch.Tensor:
    return euler_to_rotation(*(torch.tensor([a], dtype=torch.float64) for a in (yaw, pitch, roll)))


def _face_like(seed: int, count: int = 40) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, count, 3, generator=gen, dtype=torch.float64) * torch.tensor(
        [50.0, 60.0, 30.0], dtype=torch.float64
    )


def test_relative_pose_motion_still_driver_returns_the_source():
    source, driver = _face_like(3), _face_like(4) + 200.0
    rs = _rotation(-30.0, 5.0, 2.0)
    ri = _rotation(10.0, 0.0, -4.0)
    out = relative_pose_motion(source, driver, driver, rs, ri)
    assert torch.allclose(out, source, atol=1e-9)


def test_relative_pose_motion_transfers_a_rigid_turn_onto_the_source_shape():
    source, initial = _face_like(5), _face_like(6)
    q = _rotation(20.0, -5.0, 8.0)
    # The driver turns about its centre, grows by 1.2 and moves by (10, -4, 0).
    centre = initial.mean(1, keepdim=True)
    driving = (
        1.2 * (initial - centre) @ q.transpose(1, 2) + centre + torch.tensor([10.0, -4.0, 0.0], dtype=torch.float64)
    )
    rs, ri = _rotation(-35.0, 0.0, 0.0), torch.eye(3, dtype=torch.float64)[None]
    out = relative_pose_motion(source, driving, initial, rs, ri)
    size_ratio = (source - source.mean(1, True)).square().sum(-1).mean().sqrt() / (initial - centre).square().sum(
        -1
    ).mean().sqrt()
    c_s = source.mean(1, keepdim=True)
    turn = rs @ q @ rs.transpose(1, 2)  # the driver's turn, made in the source's head frame
    expected = (
        1.2 * (source - c_s) @ turn.transpose(1, 2)
        + c_s
        + size_ratio * torch.tensor([10.0, -4.0, 0.0], dtype=torch.float64)
    )
    assert torch.allclose(out, expected, atol=1e-8)


def test_relative_pose_motion_expression_is_turned_into_the_source_frame():
    # One point of the driver moves 5 units along the driver's own head x axis (an
    # expression, too small to change the fitted similarity much with rigid points only).
    source, initial = _face_like(7), _face_like(8)
    rigid = torch.arange(1, 40)
    driving = initial.clone()
    driving[0, 0, 0] += 5.0
    rs = _rotation(90.0, 0.0, 0.0)  # source faces sideways: its head x is camera z
    ri = torch.eye(3, dtype=torch.float64)[None]
    out = relative_pose_motion(source, driving, initial, rs, ri, rigid=rigid)
    size = lambda p: (p[:, 1:] - p[:, 1:].mean(1, True)).square().sum(-1).mean().sqrt()  # noqa: E731
    moved = (out - source)[0]
    assert torch.allclose(moved[1:], torch.zeros_like(moved[1:]), atol=1e-9)
    expected = 5.0 * size(source) / size(initial) * rs[0][:, 0]
    assert torch.allclose(moved[0], expected, atol=1e-9)
