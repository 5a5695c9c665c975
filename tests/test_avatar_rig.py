"""The avatar rig: rotations, the kinematic chain, LBS, IMavatar's canonical-space deformation,
landmarks, and the three rigs (procedural, ICT-FaceKit against the heads' own rig, FLAME
from a pickle built here)."""

import math
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from reanimate.avatar.rig import (
    CANONICAL_JAW_OPENING,
    Rig,
    axis_angle_to_matrix,
    blend_transforms,
    bone_transforms,
    canonical_vertices,
    deform_points,
    joint_transforms,
    landmarks,
    lbs,
    matrix_to_axis_angle,
    pose_feature,
    rig_joints,
    rig_vertices,
    search_bones,
    transform_rig,
)
from reanimate.avatar.rigs.flame import FLAME_TO_OBJECT, load_flame, load_landmark_embedding
from reanimate.avatar.rigs.ict import head_pose_parameters, ict_pose, ict_rig
from reanimate.avatar.rigs.procedural import procedural_rig
from reanimate.errors import InputError
from reanimate.heads.model import load_head_model
from reanimate.heads.rig import ICT_TO_OBJECT, HeadPose, build_rig, head_vertices, pose_vertices, shape_vertices


@pytest.fixture(scope="module")
def rig():
    return procedural_rig()


@pytest.fixture(scope="module")
def ict():
    return ict_rig()


def _random(generator, *shape, scale=1.0, dtype=torch.float32):
    return torch.randn(*shape, generator=generator, dtype=dtype) * scale


def _network_outputs(rig, batch, count, generator, ghost_bone=False):
    """Per-point weights (rows sum to 1) and blendshapes, as a deformation network gives."""
    bones = rig.num_joints + (1 if ghost_bone else 0)
    weights = torch.softmax(_random(generator, batch, count, bones, scale=2.0), -1)
    expression_dirs = _random(generator, batch, count, 3, rig.num_expressions, scale=0.05)
    pose_dirs = _random(generator, batch, count, 3, rig.num_pose_features, scale=0.05)
    return weights, expression_dirs, pose_dirs


# ---------------------------------------------------------------------------------------
# Rotations and kinematics.


def test_axis_angle_quarter_turn_and_round_trip():
    quarter = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(quarter, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6)
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(_random(generator, 64, 3, dtype=torch.float64), dim=-1)
    angles = torch.linspace(0, math.pi - 1e-3, 64, dtype=torch.float64)[:, None]
    vectors = directions * angles
    matrices = axis_angle_to_matrix(vectors)
    assert torch.allclose(matrices @ matrices.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    assert torch.allclose(matrix_to_axis_angle(matrices), vectors, atol=1e-9)
    # smooth at rest: finite gradient, the derivative of R at 0 is the cross-product matrix
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (zero,))


def test_pose_feature_is_zero_at_the_zero_pose_and_flattens_r_minus_identity():
    pose = torch.zeros(2, 5, 3)
    assert pose_feature(pose).shape == (2, 36) and pose_feature(pose).abs().max() == 0
    pose[1, 2, 0] = math.pi / 2  # joint 2 -> entries 9..17
    feature = pose_feature(pose)[1]
    expected = axis_angle_to_matrix(pose[1, 2]) - torch.eye(3)
    assert torch.allclose(feature[9:18], expected.flatten(), atol=1e-6)
    assert feature[:9].abs().max() == 0 and feature[18:].abs().max() == 0


def test_single_joint_quarter_turn_by_hand():
    joints = torch.tensor([[[1.0, 0.0, 0.0]]])
    pose = torch.tensor([[[0.0, 0.0, math.pi / 2]]])
    posed, transforms = joint_transforms(joints, pose, torch.tensor([-1]))
    assert torch.allclose(posed, joints)
    # (2, 0, 0) is one unit along x from the joint: a quarter turn about z takes it to (1, 1, 0)
    points = torch.tensor([[[2.0, 0.0, 0.0], [1.0, 0.0, 5.0]]])
    moved = lbs(points, torch.ones(1, 2, 1), transforms)
    assert torch.allclose(moved, torch.tensor([[[1.0, 1.0, 0.0], [1.0, 0.0, 5.0]]]), atol=1e-6)


def test_kinematic_chain_child_follows_its_parent():
    joints = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    parents = torch.tensor([-1, 0, 1])
    quarter = math.pi / 2
    pose = torch.tensor([[[0.0, 0.0, quarter], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    posed, transforms = joint_transforms(joints, pose, parents)
    # the root's quarter turn about z carries the chain: (1,0,0) -> (0,1,0), (1,1,0) -> (-1,1,0)
    assert torch.allclose(posed[0], torch.tensor([[0.0, 0, 0], [0, 1, 0], [-1, 1, 0]]), atol=1e-6)
    # turning the middle joint too moves only what hangs below it, about its posed position
    pose[0, 1, 2] = quarter
    posed, transforms = joint_transforms(joints, pose, parents)
    # the last joint, (0, 1, 0) from the middle one at rest, is now turned by 180 degrees
    assert torch.allclose(posed[0, 2], torch.tensor([0.0, 0.0, 0.0]), atol=1e-6)
    point = torch.tensor([[[2.0, 0.0, 0.0]]])  # one unit beyond the middle joint, rigid with it
    moved = lbs(point, torch.tensor([[[0.0, 1.0, 0.0]]]), transforms)
    assert torch.allclose(moved, torch.tensor([[[-1.0, 1.0, 0.0]]]), atol=1e-6)


def test_lbs_round_trip_with_the_inverse_blended_transforms():
    generator = torch.Generator().manual_seed(1)
    joints = _random(generator, 2, 4, 3)
    pose = _random(generator, 2, 4, 3, scale=0.5)
    _, transforms = joint_transforms(joints, pose, torch.tensor([-1, 0, 1, 1]))
    weights = torch.softmax(_random(generator, 2, 50, 4), -1)
    points = _random(generator, 2, 50, 3)
    posed = lbs(points, weights, transforms)
    blended = blend_transforms(weights, transforms)
    back = (torch.linalg.inv(blended) @ torch.cat([posed, torch.ones(2, 50, 1)], -1)[..., None])[..., :3, 0]
    assert torch.allclose(back, points, atol=1e-4)
    assert (posed - points).norm(dim=-1).mean() > 0.1


# ---------------------------------------------------------------------------------------
# The rig's mesh and IMavatar's deformation.


def test_rest_pose_is_the_template_plus_blendshapes(rig):
    generator = torch.Generator().manual_seed(2)
    shape, expression = _random(generator, 3, rig.num_shapes), _random(generator, 3, rig.num_expressions)
    vertices, transforms = rig_vertices(rig, shape, expression, torch.zeros(3, rig.num_joints, 3))
    expected = rig.template + torch.einsum("vcs,bs->bvc", rig.shape_basis, shape)
    expected = expected + torch.einsum("vce,be->bvc", rig.expression_basis, expression)
    assert torch.allclose(vertices, expected, atol=1e-6)
    assert torch.allclose(transforms, torch.eye(4).expand(3, rig.num_joints, 4, 4), atol=1e-6)


def test_canonical_space_opens_the_jaw_and_moves_only_jaw_vertices(rig):
    canonical = canonical_vertices(rig)[0]
    moved = (canonical - rig.template).norm(dim=-1)
    jaw = rig.skinning_weights[:, rig.joint_index("jaw")]
    assert moved[jaw == 0].max() < 0.02  # only the small correctives
    assert moved[jaw > 0.9].min() > 0.01
    # the chin goes down (+y in the object frame)
    assert (canonical - rig.template)[jaw > 0.9, 1].mean() > 0.01


def test_deform_points_is_the_identity_in_the_canonical_pose(rig):
    generator = torch.Generator().manual_seed(3)
    points = _random(generator, 2, 40, 3, scale=0.3)
    shape = _random(generator, 2, rig.num_shapes)
    for ghost_bone in (False, True):
        weights, expression_dirs, pose_dirs = _network_outputs(rig, 2, 40, generator, ghost_bone)
        deformed = deform_points(
            rig,
            points,
            weights,
            expression_dirs,
            pose_dirs,
            rig.canonical_expression.expand(2, -1),
            rig.canonical_pose.expand(2, -1, -1),
            shape,
            ghost_bone=ghost_bone,
        )
        assert torch.allclose(deformed, points, atol=1e-6)


def test_deform_points_with_the_rigs_own_fields_maps_canonical_onto_posed_vertices(rig):
    generator = torch.Generator().manual_seed(4)
    shape = _random(generator, 2, rig.num_shapes)
    expression = _random(generator, 2, rig.num_expressions)
    pose = _random(generator, 2, rig.num_joints, 3, scale=0.3)
    canonical = canonical_vertices(rig, shape)
    weights = rig.skinning_weights.expand(2, -1, -1)
    expression_dirs = rig.expression_basis.expand(2, -1, -1, -1)
    pose_dirs = rig.pose_basis.expand(2, -1, -1, -1)
    expected, _ = rig_vertices(rig, shape, expression, pose)
    deformed = deform_points(rig, canonical, weights, expression_dirs, pose_dirs, expression, pose, shape)
    assert torch.allclose(deformed, expected, atol=1e-5)
    # the same with an unused ghost bone
    ghosted = torch.cat([torch.zeros(2, rig.num_vertices, 1), weights], -1)
    deformed = deform_points(rig, canonical, ghosted, expression_dirs, pose_dirs, expression, pose, shape, True)
    assert torch.allclose(deformed, expected, atol=1e-5)
    # with a pose, the canonical points do move
    assert (expected - canonical).norm(dim=-1).mean() > 0.05


def test_ghost_bone_keeps_its_points_still(rig):
    generator = torch.Generator().manual_seed(5)
    points = _random(generator, 1, 30, 3, scale=0.3)
    weights = torch.zeros(1, 30, rig.num_joints + 1)
    weights[..., 0] = 1
    pose = _random(generator, 1, rig.num_joints, 3, scale=0.5)
    expression = _random(generator, 1, rig.num_expressions)
    deformed = deform_points(rig, points, weights, None, None, expression, pose, ghost_bone=True)
    assert torch.allclose(deformed, points, atol=1e-6)
    transforms = bone_transforms(rig, pose, ghost_bone=True)
    assert transforms.shape == (1, rig.num_joints + 1, 4, 4) and torch.allclose(transforms[0, 0], torch.eye(4))
    assert search_bones(rig, True) == (0, 2, 3) and search_bones(rig, False) == (0, 1, 2)


def test_single_bone_inverse_recovers_canonical_points(rig):
    generator = torch.Generator().manual_seed(6)
    points = _random(generator, 1, 30, 3, scale=0.3)
    pose = _random(generator, 1, rig.num_joints, 3, scale=0.4)
    shape = _random(generator, 1, rig.num_shapes)
    jaw = rig.joint_index("jaw")
    weights = torch.nn.functional.one_hot(torch.full((1, 30), jaw), rig.num_joints).float()
    deformed = deform_points(rig, points, weights, None, None, rig.canonical_expression[None], pose, shape)
    transform = bone_transforms(rig, pose, shape)[0, jaw]
    back = (torch.linalg.inv(transform) @ torch.cat([deformed, torch.ones(1, 30, 1)], -1)[..., None])[..., :3, 0]
    assert torch.allclose(back, points, atol=1e-5)
    assert torch.allclose(bone_transforms(rig, rig.canonical_pose[None]), torch.eye(4).expand(1, 5, 4, 4), atol=1e-6)


def test_deform_points_gradient_matches_finite_differences(rig):
    rig64 = rig.to(dtype=torch.float64)
    generator = torch.Generator().manual_seed(7)
    weights, expression_dirs, pose_dirs = (t.double() for t in _network_outputs(rig64, 1, 4, generator))
    expression = _random(generator, 1, rig.num_expressions, dtype=torch.float64)
    pose = _random(generator, 1, rig.num_joints, 3, scale=0.3, dtype=torch.float64)
    points = _random(generator, 1, 4, 3, scale=0.3, dtype=torch.float64).requires_grad_()

    def deform(x):
        return deform_points(rig64, x, weights, expression_dirs, pose_dirs, expression, pose)

    assert torch.autograd.gradcheck(deform, (points,))


def test_landmarks_are_barycentric_points_of_faces():
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    vertices = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]]])
    tiny = Rig(
        name="triangle",
        template=vertices[0],
        faces=faces,
        shape_basis=torch.zeros(4, 3, 0),
        expression_basis=torch.zeros(4, 3, 0),
        pose_basis=torch.zeros(4, 3, 0),
        skinning_weights=torch.ones(4, 1),
        joint_regressor=torch.full((1, 4), 0.25),
        parents=torch.tensor([-1]),
        joint_names=("global",),
        landmark_faces=torch.tensor([1, 0]),
        landmark_barycentric=torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]),
        canonical_pose=torch.zeros(1, 3),
        units=1.0,
    )
    # face 1: 0.2 (1,0,0) + 0.3 (1,1,1) + 0.5 (0,1,0)
    assert torch.allclose(landmarks(tiny, vertices), torch.tensor([[[0.5, 0.8, 0.3], [0.0, 0.0, 0.0]]]))


def test_rig_checks_its_shapes(rig):
    with pytest.raises(AssertionError, match=r"skinning_weights must be \(V=642, J=5\)"):
        Rig(**{**rig.__dict__, "skinning_weights": rig.skinning_weights[:, :4]})
    with pytest.raises(AssertionError, match="parents"):
        Rig(**{**rig.__dict__, "parents": torch.tensor([-1, 0, 3, 1, 1])})


def test_procedural_rig_is_deterministic_and_well_formed(rig):
    again = procedural_rig()
    for name, value in rig.__dict__.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, getattr(again, name)), name
    assert not torch.equal(procedural_rig(seed=1).pose_basis, rig.pose_basis)
    assert rig.num_vertices == 642 and rig.joint_names == ("global", "neck", "jaw", "eye_left", "eye_right")
    assert torch.allclose(rig.skinning_weights.sum(1), torch.ones(642)) and rig.skinning_weights.min() >= 0
    joints = rig_joints(rig, None, None)[0]
    assert joints[3, 0] > 0 > joints[4, 0]  # the person's left eye on +x
    assert torch.equal(rig.parents, torch.tensor([-1, 0, 1, 1, 1]))
    assert rig.canonical_pose[2, 0] == CANONICAL_JAW_OPENING and rig.num_landmarks == 8


def test_transform_rig_rotates_and_scales_every_pose(rig):
    generator = torch.Generator().manual_seed(8)
    turn = axis_angle_to_matrix(torch.tensor([0.3, -0.5, 0.8]))
    moved = transform_rig(rig, turn, scale=2.0)
    shape, expression = _random(generator, 2, rig.num_shapes), _random(generator, 2, rig.num_expressions)
    pose = _random(generator, 2, rig.num_joints, 3, scale=0.4)
    vertices, _ = rig_vertices(rig, shape, expression, pose)
    turned, _ = rig_vertices(moved, shape, expression, pose @ turn.T)
    assert torch.allclose(turned, 2.0 * vertices @ turn.T, atol=1e-5)
    assert moved.units == rig.units / 2


# ---------------------------------------------------------------------------------------
# ICT-FaceKit: the heads' own rig, written as LBS.


def _head_pose(batch, generator, **values):
    pose = HeadPose(
        identity=_random(generator, batch, 50),
        expression=torch.rand(batch, 53, generator=generator) * 0.6,
        rotation=_random(generator, batch, 3, scale=15.0),
        scale=torch.ones(batch),
        translation=torch.zeros(batch, 3),
        gaze=_random(generator, batch, 2, scale=10.0),
    )
    for name, value in values.items():
        setattr(pose, name, value)
    return pose


def test_ict_rig_rest_pose_is_the_heads_neutral_head(ict):
    model = load_head_model()
    heads = build_rig(model)
    assert ict.num_expressions == 53 and ict.num_shapes == 50 and ict.num_landmarks == 68 and ict.units == 0.01
    vertices, _ = rig_vertices(ict, None, None, torch.zeros(1, 5, 3))
    assert torch.allclose(vertices[0], model.template @ ICT_TO_OBJECT)
    identity = _random(torch.Generator().manual_seed(9), 1, 50)
    person, _ = rig_vertices(ict, identity, None, torch.zeros(1, 5, 3))
    neutral = pose_vertices(
        heads, shape_vertices(model, heads, identity, torch.zeros(1, 53)), torch.zeros(1, 3), torch.zeros(1, 2)
    )
    assert torch.allclose(person, neutral, atol=1e-4)
    # the landmarks are the heads' 68 landmark vertices
    assert torch.allclose(landmarks(ict, person)[0], neutral[0, model.landmarks], atol=1e-5)


def test_ict_jaw_joint_reproduces_the_heads_jaw_hinge(ict):
    model = load_head_model()
    heads = build_rig(model)
    generator = torch.Generator().manual_seed(10)
    identity = _random(generator, 2, 50)
    expression = torch.zeros(2, 53)
    expression[:, heads.jaw_index] = torch.tensor([0.4, 1.0])
    pose = ict_pose(torch.zeros(2, 3), torch.zeros(2, 2), expression[:, heads.jaw_index])
    vertices, _ = rig_vertices(ict, identity, expression, pose)
    want = shape_vertices(model, heads, identity, expression) @ ICT_TO_OBJECT
    jaw = heads.jaw_vertices
    assert torch.allclose(vertices[:, jaw], want[:, jaw], atol=1e-4)
    # at jawOpen = 1 the hinge reproduces ICT-FaceKit's own jawOpen shape (within the fit)
    linear = (model.template + model.expression[heads.jaw_index]) @ ICT_TO_OBJECT
    turned, _ = rig_vertices(ict, None, expression[1:], pose[1:])
    assert (turned[0, jaw] - linear[jaw]).norm(dim=-1).max() < 0.06


def test_ict_rig_poses_whole_heads_like_the_heads_package(ict):
    model = load_head_model()
    generator = torch.Generator().manual_seed(11)
    head_pose = _head_pose(3, generator)
    shape, expression, pose = head_pose_parameters(head_pose)
    vertices, _ = rig_vertices(ict, shape, expression, pose)
    assert torch.allclose(vertices, head_vertices(model, head_pose), atol=1e-4)
    # the neck turn alone: vertices the neck blend gives fully to the head turn rigidly
    heads = build_rig(model)
    turned = _head_pose(1, generator, expression=torch.zeros(1, 53), gaze=torch.zeros(1, 2))
    shape, expression, pose = head_pose_parameters(turned)
    assert pose[0, [0, 2, 3, 4]].abs().max() == 0
    rest, _ = rig_vertices(ict, shape, expression, torch.zeros_like(pose))
    posed, _ = rig_vertices(ict, shape, expression, pose)
    full = heads.neck_weight == 1
    pivot = heads.neck_pivot @ ICT_TO_OBJECT
    rotation = axis_angle_to_matrix(pose[0, 1])
    assert torch.allclose(posed[0, full], (rest[0, full] - pivot) @ rotation.T + pivot, atol=1e-4)
    assert torch.allclose(posed[0, heads.neck_weight == 0], rest[0, heads.neck_weight == 0])


def test_ict_canonical_space_opens_the_mouth_as_the_heads_do(ict):
    model = load_head_model()
    heads = build_rig(model)
    opening = CANONICAL_JAW_OPENING / math.radians(heads.jaw_angle)
    head_pose = _head_pose(
        1,
        torch.Generator().manual_seed(12),
        expression=torch.zeros(1, 53),
        rotation=torch.zeros(1, 3),
        gaze=torch.zeros(1, 2),
    )
    head_pose.identity = torch.zeros(1, 50)
    head_pose.expression[0, heads.jaw_index] = opening
    canonical = canonical_vertices(ict)
    assert torch.allclose(canonical, head_vertices(model, head_pose), atol=1e-4)
    # IMavatar's deformation un-poses the canonical jaw and jawOpen before posing again
    some = torch.cat([heads.jaw_vertices[::50], torch.arange(0, model.num_vertices, 997)])
    generator = torch.Generator().manual_seed(13)
    expression = torch.rand(1, 53, generator=generator) * 0.5
    pose = ict_pose(_random(generator, 1, 3, scale=15.0), torch.zeros(1, 2), expression[:, heads.jaw_index])
    deformed = deform_points(
        ict,
        canonical[:, some],
        ict.skinning_weights[None, some],
        ict.expression_basis[None, some],
        ict.pose_basis[None, some],
        expression,
        pose,
    )
    assert torch.allclose(deformed, rig_vertices(ict, None, expression, pose)[0][:, some], atol=1e-4)


# ---------------------------------------------------------------------------------------
# FLAME, from a FLAME-format pickle built here (chumpy arrays, a sparse regressor).


class _FakeCh:
    """Pickles like chumpy's Ch: its state is its __dict__ with the array under "x"."""

    def __init__(self, value):
        self.x = np.asarray(value, dtype=np.float64)
        self._dirty_vars = set()
        self._itr = None
        self._make_dense = False

    def __getstate__(self):
        return dict(self.__dict__)


def _write_flame(path, vertices=12, landmarks=None):
    generator = np.random.default_rng(0)
    faces = np.stack([np.arange(vertices - 2), np.arange(1, vertices - 1), np.arange(2, vertices)], 1)
    regressor = generator.random((5, vertices))
    regressor /= regressor.sum(1, keepdims=True)
    weights = generator.random((vertices, 5))
    weights /= weights.sum(1, keepdims=True)
    content = {
        "v_template": _FakeCh(generator.standard_normal((vertices, 3)) * 0.1),
        "f": faces.astype(np.uint32),
        "shapedirs": _FakeCh(generator.standard_normal((vertices, 3, 400)) * 0.01),
        "posedirs": generator.standard_normal((vertices, 3, 36)) * 0.01,
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": _FakeCh(weights),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    module = types.ModuleType("chumpy.ch")
    module.Ch = _FakeCh
    saved = (_FakeCh.__module__, _FakeCh.__qualname__)
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), module
    try:
        with open(path, "wb") as file:
            pickle.dump(content, file, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
        _FakeCh.__module__, _FakeCh.__qualname__ = saved
    return content, regressor


def test_flame_loader_reads_a_chumpy_pickle_without_chumpy(tmp_path):
    path = tmp_path / "generic_model.pkl"
    content, regressor = _write_flame(path)
    assert b"chumpy.ch" in path.read_bytes() and "chumpy" not in sys.modules
    embedding = tmp_path / "landmark_embedding.npy"
    # DECA's layout: the full static set first choice, contour entries as torch tensors (unused)
    lmk = {
        "static_lmk_faces_idx": np.array([0]),
        "static_lmk_bary_coords": np.full((1, 3), 1 / 3),
        "full_lmk_faces_idx": np.array([[3, 1]]),
        "full_lmk_bary_coords": np.array([[[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]]),
        "dynamic_lmk_faces_idx": torch.zeros(4, 3, dtype=torch.int64),
    }
    np.save(embedding, lmk)
    flame = load_flame(path, embedding, object_frame=False)
    assert torch.allclose(flame.template, torch.from_numpy(content["v_template"].x).float())
    assert flame.num_shapes == 300 and flame.num_expressions == 100
    assert torch.allclose(flame.expression_basis, torch.from_numpy(content["shapedirs"].x[:, :, 300:]).float())
    assert torch.allclose(flame.pose_basis, torch.from_numpy(content["posedirs"]).float())
    assert torch.allclose(flame.joint_regressor, torch.from_numpy(regressor).float())
    assert torch.equal(flame.parents, torch.tensor([-1, 0, 1, 1, 1])) and flame.faces.dtype == torch.int64
    assert torch.equal(flame.landmark_faces, torch.tensor([3, 1])) and flame.units == 1.0
    assert torch.allclose(flame.landmark_barycentric, torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]))
    assert torch.allclose(flame.canonical_pose[2], torch.tensor([CANONICAL_JAW_OPENING, 0.0, 0.0]))
    # IMavatar's sizes, and the object frame: y and z flipped
    small = load_flame(path, num_shape=100, num_expression=50)
    assert small.num_shapes == 100 and small.num_expressions == 50 and small.num_landmarks == 0
    assert torch.allclose(small.template, flame.template @ FLAME_TO_OBJECT)
    pose = _random(torch.Generator().manual_seed(13), 1, 5, 3, scale=0.3)
    vertices, _ = rig_vertices(flame, None, None, pose)
    flipped, _ = rig_vertices(small, None, None, pose @ FLAME_TO_OBJECT.T)
    assert torch.allclose(flipped, vertices @ FLAME_TO_OBJECT.T, atol=1e-5)


def test_flame_loader_refuses_bad_files_with_one_line(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(InputError, match="evil.pkl: refusing to read FLAME model: the pickle asks for") as error:
        load_flame(evil)
    assert "system" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(InputError, match="missing.pkl: FLAME model not found"):
        load_flame(tmp_path / "missing.pkl")
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2))
    with pytest.raises(InputError, match=r"partial.pkl: not a FLAME model \(missing f, shapedirs"):
        load_flame(partial)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(InputError, match="garbage.pkl: not a readable FLAME model"):
        load_flame(garbage)
    listed = tmp_path / "listed.npy"
    np.save(listed, {"lmk_face_idx": np.array([0]), "lmk_b_coords": np.zeros((2, 3))})
    with pytest.raises(InputError, match=r"listed.npy: lmk_face_idx has 1 landmarks"):
        load_landmark_embedding(listed)
