"""MMFA geometry (Eq. 5, scaled orthographic projection, relative form, the pose of a warped
frame) and its losses on hand-computed cases."""

import math

import pytest
import torch

from reanimate.geometry import euler_to_rotation, rotation_to_euler
from reanimate.geometry.keypoints3d import in_plane_angle, orthographic_projection, warped_rotation
from reanimate.geometry.tps import ThinPlateSpline
from reanimate.motion import HeadMotion, relative_head_motion
from reanimate.training.head_losses import (
    canonical_consistency_loss,
    deformation_prior_loss,
    expression_similarity_loss,
    head_pose_bins_loss,
    keypoint_prior_loss,
    landmark_loss,
    projected_equivariance_loss,
)


def _head(canonical, angles, scale, translation, expression=None):
    canonical = torch.as_tensor(canonical, dtype=torch.float32)
    return HeadMotion(
        canonical,
        torch.as_tensor(angles, dtype=torch.float32),
        torch.as_tensor(scale, dtype=torch.float32),
        torch.as_tensor(translation, dtype=torch.float32),
        torch.zeros_like(canonical) if expression is None else torch.as_tensor(expression, dtype=torch.float32),
    )


def test_eq5_keypoints_by_hand():
    # yaw 90: the head's own x axis (its left) points away from the camera (+z), its front to +x.
    head = _head([[[1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]], [[90.0, 0.0, 0.0]], [2.0], [[0.1, 0.2]])
    points = head.points()
    assert torch.allclose(points, torch.tensor([[[0.1, 0.2, 2.0], [2.1, 0.2, 0.0]]]), atol=1e-6)
    assert torch.allclose(orthographic_projection(points), torch.tensor([[[0.1, 0.2], [2.1, 0.2]]]), atol=1e-6)
    # the expression is added before rotation and scale: p = f R (p_C + delta) + t
    moved = head.with_(expression=torch.tensor([[[0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]])).points()
    assert torch.allclose(moved[0, 0], torch.tensor([0.1, 1.2, 2.0]), atol=1e-6)


def test_relative_form_for_another_identity():
    source = _head(torch.randn(1, 5, 3), [[10.0, -5.0, 3.0]], [0.8], [[0.1, -0.1]], 0.01 * torch.randn(1, 5, 3))
    initial = _head(torch.randn(1, 5, 3), [[-4.0, 2.0, 1.0]], [1.1], [[0.0, 0.2]], 0.01 * torch.randn(1, 5, 3))
    # the driver unmoved: the source comes back
    same = relative_head_motion(source, initial, initial)
    assert torch.allclose(same.points(), source.points(), atol=1e-5)
    # the driver turns 20 degrees of yaw, grows 10% and moves: the source does the same,
    # in its own frame, and keeps its own canonical shape
    moved = initial.with_(
        rotation=rotation_to_euler(euler_to_rotation(-4.0, 2.0, 1.0) @ euler_to_rotation(20.0, 0.0, 0.0)),
        scale=initial.scale * 1.1,
        translation=initial.translation + torch.tensor([[0.11, 0.0]]),
    )
    target = relative_head_motion(source, moved, initial)
    turn = source.rotation_matrix().transpose(1, 2) @ target.rotation_matrix()
    assert torch.allclose(turn, euler_to_rotation(20.0, 0.0, 0.0), atol=1e-5)
    assert torch.allclose(target.scale, source.scale * 1.1)
    assert torch.allclose(target.translation, source.translation + torch.tensor([[0.11 * 0.8 / 1.1, 0.0]]))
    assert torch.equal(target.canonical, source.canonical)
    only_rotation = relative_head_motion(source, moved, initial, attributes=("rotation",))
    assert torch.equal(only_rotation.scale, source.scale) and torch.equal(only_rotation.translation, source.translation)


def test_in_plane_angle_and_the_roll_of_a_warped_frame():
    theta = torch.tensor([30.0, -75.0])
    c, s = torch.cos(torch.deg2rad(theta)), torch.sin(torch.deg2rad(theta))
    rotation = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # +x towards +y: clockwise
    assert torch.allclose(in_plane_angle(1.7 * rotation), theta, atol=1e-4)

    # Perfect keypoints are equivariant: a head seen in X, and in Y(p) = X(A p + b), whose
    # keypoints are those of the head with the warped rotation, A^-1-scaled and shifted.
    canonical = torch.randn(2, 6, 3)
    angles = torch.tensor([[25.0, -10.0, 5.0], [-40.0, 15.0, -20.0]])
    head_x = _head(canonical, angles, [0.9, 1.2], [[0.1, 0.0], [-0.2, 0.1]])
    scale, shift = 1.1, torch.tensor([0.05, -0.03])
    affine = torch.cat([scale * rotation, shift.expand(2, 2)[..., None]], dim=-1)
    tps = ThinPlateSpline(affine=affine)
    inverse = torch.linalg.inv(scale * rotation)
    translation_y = torch.einsum("bij,bj->bi", inverse, head_x.translation - shift)
    head_y = _head(canonical, warped_rotation(angles, affine[:, :, :2]), head_x.scale / scale, translation_y)
    assert projected_equivariance_loss(head_x.points(), head_y.points(), tps) < 1e-5
    # the wrong sign of the roll change is not equivariant
    wrong = angles.clone()
    wrong[:, 2] += theta
    head_wrong = _head(canonical, wrong, head_x.scale / scale, translation_y)
    assert projected_equivariance_loss(head_x.points(), head_wrong.points(), tps) > 1e-2


def test_keypoint_prior_by_hand():
    # two points 0.2 apart (squared 0.04 < D_t = 0.1) at the target depth: 2 * (0.1 - 0.04)
    close = torch.tensor([[[0.0, 0.0, 0.33], [0.2, 0.0, 0.33]]])
    assert keypoint_prior_loss(close).item() == pytest.approx(0.12, abs=1e-6)
    # far apart, mean depth 0.5: only |0.5 - 0.33|
    far = torch.tensor([[[-1.0, 0.0, 0.4], [1.0, 0.0, 0.6]]])
    assert keypoint_prior_loss(far).item() == pytest.approx(0.17, abs=1e-6)


def test_deformation_and_canonical_and_expression_losses():
    delta = torch.tensor([[[0.1, -0.2, 0.3]], [[0.0, 0.0, -0.6]]])
    assert deformation_prior_loss(delta).item() == pytest.approx(1.2 / 6)
    assert deformation_prior_loss(torch.zeros(2, 4, 3)).item() == 0

    canonical = torch.randn(3, 7, 3)
    assert canonical_consistency_loss(canonical, canonical.clone()).item() == 0
    shifted = canonical + torch.tensor([0.3, 0.4, 0.0])
    assert canonical_consistency_loss(canonical, shifted).item() == pytest.approx(0.5, abs=1e-6)

    f = torch.randn(4, 256)
    assert expression_similarity_loss(f, f.clone()).item() == pytest.approx(0, abs=1e-6)
    assert expression_similarity_loss(f, 3 * f).item() == pytest.approx(0, abs=1e-6)
    assert expression_similarity_loss(f, -f).item() == pytest.approx(2, abs=1e-6)
    e = torch.eye(2)
    assert expression_similarity_loss(e[:1], e[1:]).item() == pytest.approx(1, abs=1e-6)


def test_landmark_loss_by_hand():
    driving = torch.zeros(1, 5, 3)
    generated = driving.clone()
    generated[0, 0, :2] = torch.tensor([3.0, 4.0])  # 5 px off in the "face" group
    generated[0, 4, 2] = 100.0  # depth is not compared
    groups = {"face": (0, 1), "mouth": (2, 3), "pupil": (4,)}
    losses = landmark_loss(generated, driving, groups, {"face": 2.0, "mouth": 1.0, "pupil": 0.0}, image_size=10.0)
    assert set(losses) == {"face", "mouth"}
    assert losses["face"].item() == pytest.approx(2.0 * 2.5 / 10)
    assert losses["mouth"].item() == 0


def test_head_pose_bins_loss():
    centres = torch.arange(66, dtype=torch.float32) * 3 - 97.5
    target = torch.tensor([[12.0, -30.0, 0.5]])
    index = ((target + 99) / 3).floor().long()
    sharp = torch.full((1, 3, 66), -30.0).scatter(-1, index[..., None], 30.0)
    flat = torch.zeros(1, 3, 66)
    assert head_pose_bins_loss(sharp, target, centres) < 2.0  # 1.5 degrees at most from the bin centre
    assert head_pose_bins_loss(flat, target, centres) > math.log(66)
