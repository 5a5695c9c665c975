"""HeadMotion (reanimate.motion): posing, decomposition, relative transfer, editing."""

import math

import torch

from reanimate.geometry import euler_to_rotation, relative_pose_motion
from reanimate.motion import HeadMotion, relative_head_motion


def _rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> torch.Tensor:
    return euler_to_rotation(*(torch.tensor([a], dtype=torch.float64) for a in (yaw, pitch, roll)))


def _face_like(seed: int, count: int = 30) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scale = torch.tensor([50.0, 60.0, 30.0], dtype=torch.float64)
    return torch.randn(1, count, 3, generator=gen, dtype=torch.float64) * scale + 100.0


def _turned(points: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    centre = points.mean(1, keepdim=True)
    return (points - centre) @ rotation.transpose(1, 2) + centre


def test_points_hand_computed():
    # yaw 90 (R = Ry(-90)): the head's x axis goes to camera +z, y stays; x = s R (C + E) + t.
    head = HeadMotion(
        canonical=torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64),
        rotation=torch.tensor([[90.0, 0.0, 0.0]], dtype=torch.float64),
        scale=torch.tensor([2.0], dtype=torch.float64),
        translation=torch.tensor([[10.0, 20.0]], dtype=torch.float64),  # 2-D: z = 0
        expression=torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64),
    )
    assert torch.allclose(head.points(), torch.tensor([[[10.0, 22.0, 2.0]]], dtype=torch.float64), atol=1e-12)


def test_from_points_round_trip():
    points = _face_like(0)
    head = HeadMotion.from_points(points, _rotation(15.0, -5.0, 8.0), rigid=torch.arange(5, 30))
    assert torch.allclose(head.rotation, torch.tensor([[15.0, -5.0, 8.0]], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(head.translation, points[:, 5:].mean(1), atol=1e-12)
    assert not head.expression.any()
    assert torch.allclose(head.points(), points, atol=1e-9)


def test_identity_transfer_returns_the_source():
    source, initial = _face_like(1), _face_like(2)
    src = HeadMotion.from_points(source, _rotation(-30.0, 5.0, 2.0))
    start = HeadMotion.from_points(initial, _rotation(10.0, 0.0, -4.0))
    still = HeadMotion.tracked(initial, initial, start)
    out = relative_head_motion(src, still, start)
    assert torch.allclose(out.points(), source, atol=1e-9)
    assert torch.allclose(out.rotation, src.rotation, atol=1e-9)


def test_a_pure_yaw_of_the_driver_yaws_the_source_by_the_same_angle():
    source, initial = _face_like(3), _face_like(4)
    src = HeadMotion.from_points(source, _rotation(-30.0))  # a three-quarter view
    start = HeadMotion.from_points(initial, _rotation(0.0))
    driving = HeadMotion.tracked(_turned(initial, _rotation(20.0)), initial, start)
    assert torch.allclose(driving.rotation, torch.tensor([[20.0, 0.0, 0.0]], dtype=torch.float64), atol=1e-9)
    out = relative_head_motion(src, driving, start)
    assert torch.allclose(out.rotation, torch.tensor([[-10.0, 0.0, 0.0]], dtype=torch.float64), atol=1e-9)
    # By hand: yaw +20 is Ry(-20), turning the front (-z) towards +x, about the source's centre.
    c, s = math.cos(math.radians(20.0)), math.sin(math.radians(20.0))
    yaw = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]], dtype=torch.float64)
    assert torch.allclose(out.points(), _turned(source, yaw[None]), atol=1e-9)
    assert torch.allclose(out.scale, src.scale) and torch.allclose(out.translation, src.translation)


def test_transfer_matches_relative_pose_motion():
    source, initial = _face_like(5), _face_like(6)
    gen = torch.Generator().manual_seed(7)
    driving = 1.1 * _turned(initial, _rotation(12.0, -6.0, 3.0)) + 4.0
    driving = driving + torch.randn(driving.shape, generator=gen, dtype=torch.float64)  # expression
    rs, ri, rigid = _rotation(-25.0, 4.0, 1.0), _rotation(5.0, 2.0, -3.0), torch.arange(0, 20)
    start = HeadMotion.from_points(initial, ri, rigid)
    out = relative_head_motion(
        HeadMotion.from_points(source, rs, rigid), HeadMotion.tracked(driving, initial, start, rigid), start
    )
    assert torch.allclose(out.points(), relative_pose_motion(source, driving, initial, rs, ri, rigid), atol=1e-9)


def test_replacing_one_attribute_leaves_the_others():
    head = HeadMotion.from_points(_face_like(8), _rotation(10.0, 3.0, -2.0))
    angles = torch.tensor([[-20.0, 0.0, 5.0]], dtype=torch.float64)
    edited = head.with_(rotation=angles)
    assert torch.equal(edited.rotation, angles)
    for name in ("canonical", "scale", "translation", "expression"):
        assert getattr(edited, name) is getattr(head, name)
    # Setting it back restores the points: the rotation was the only change.
    assert torch.allclose(edited.with_(rotation=head.rotation).points(), head.points())


def test_transferring_one_attribute_keeps_the_source_others():
    source, initial = _face_like(9), _face_like(10)
    rigid = torch.arange(1, 30)  # point 0 moves on its own: an expression
    src = HeadMotion.from_points(source, _rotation(0.0), rigid)
    start = HeadMotion.from_points(initial, _rotation(0.0), rigid)
    # The driver nods, grows, moves and makes an expression; only the nod is taken.
    moved = 1.3 * _turned(initial, _rotation(0.0, 15.0)) + 7.0
    moved[:, 0] += 3.0
    driving = HeadMotion.tracked(moved, initial, start, rigid)
    out = relative_head_motion(src, driving, start, attributes=("rotation",))
    assert torch.allclose(out.rotation, torch.tensor([[0.0, 15.0, 0.0]], dtype=torch.float64), atol=1e-9)
    for name in ("canonical", "scale", "translation", "expression"):
        assert torch.equal(getattr(out, name), getattr(src, name))
    full = relative_head_motion(src, driving, start)
    assert torch.allclose(out.rotation, full.rotation) and torch.allclose(full.scale, 1.3 * src.scale)
    assert full.expression[0, 0].abs().sum() > 0 and not full.expression[0, 1:].abs().gt(1e-9).any()
