"""The ICT-FaceKit head model file and the rig: identity, expression, jaw hinge, neck, gaze."""

import numpy as np
import pytest
import torch

from reanimate.errors import InputError
from reanimate.geometry.rotation import fit_rotation, rotation_to_euler
from reanimate.heads.model import MODEL_PATH, NOTICE_PATH, RENDER_VERTICES, load_head_model
from reanimate.heads.rig import (
    ICT_TO_OBJECT,
    HeadPose,
    axis_angle_rotation,
    build_rig,
    fit_jaw_hinge,
    fit_sphere,
    head_vertices,
    mirror_vertex_map,
    pose_vertices,
    shape_vertices,
)
from reanimate.heads.trajectories import EXPRESSION_NAMES, HeadTrajectory
from reanimate.render import triangulate


@pytest.fixture(scope="module")
def model():
    return load_head_model()


@pytest.fixture(scope="module")
def rig(model):
    return build_rig(model)


def _pose(model, batch=1, **values):
    pose = HeadPose(
        identity=torch.zeros(batch, model.num_identities),
        expression=torch.zeros(batch, len(model.expression_names)),
        rotation=torch.zeros(batch, 3),
        scale=torch.ones(batch),
        translation=torch.zeros(batch, 3),
        gaze=torch.zeros(batch, 2),
    )
    for name, value in values.items():
        setattr(pose, name, value)
    return pose


def test_model_file_carries_the_notice_and_the_expected_content(model):
    assert "MIT License" in model.license and "USC Institute for Creative Technologies" in model.license
    assert "MIT License" in NOTICE_PATH.read_text()
    assert model.num_vertices == RENDER_VERTICES and model.num_identities == 50
    assert model.expression_names == EXPRESSION_NAMES
    assert model.landmarks.shape == (68,) and int(model.landmarks.max()) < RENDER_VERTICES
    assert int(model.triangles.max()) < RENDER_VERTICES and model.triangles.shape[1] == 3
    # the 68 landmarks of a frontal face: the nose tip (30) is the front-most point on the midline
    assert abs(float(model.template[model.landmarks[30], 0])) < 1e-4


def test_quads_split_into_triangles_of_the_same_winding(model):
    assert model.triangles.shape == (48836, 3)  # 24,692 polygons, 24,144 of them quads
    assert triangulate(np.array([[0, 1, 2, 3], [4, 5, 6, -1]])).tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6]]


def test_missing_or_damaged_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="head model not found"):
        load_head_model(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="corrupt head model"):
        load_head_model(bad)


def test_zero_parameters_give_the_template(model):
    vertices = head_vertices(model, _pose(model))
    assert torch.allclose(vertices[0], model.template @ ICT_TO_OBJECT, atol=1e-5)


def test_identity_and_expression_are_linear_offsets(model, rig):
    identity = torch.zeros(1, 50)
    identity[0, 3] = 1.5
    expression = torch.zeros(1, 53)
    expression[0, model.expression_index("mouthSmile_L")] = 0.7
    shape = shape_vertices(model, rig, identity, expression)
    expected = model.template + 1.5 * model.identity[3] + 0.7 * model.expression[model.expression_index("mouthSmile_L")]
    assert torch.allclose(shape[0], expected, atol=1e-5)


def test_jaw_hinge_reproduces_jaw_open_and_opens_on_the_arc(model, rig):
    assert 24 < rig.jaw_angle < 27  # ICT-FaceKit's jawOpen is a ~25 degree hinge
    assert torch.allclose(rig.jaw_axis.abs(), torch.tensor([1.0, 0, 0]), atol=1e-3)
    jaw = model.expression_index("jawOpen")
    linear = model.template + model.expression[jaw]
    for weight in (1.0, 0.5):
        expression = torch.zeros(1, 53)
        expression[0, jaw] = weight
        shape = shape_vertices(model, rig, torch.zeros(1, 50), expression)[0]
        teeth = rig.jaw_vertices
        if weight == 1.0:
            assert float((shape[teeth] - linear[teeth]).norm(dim=1).max()) < 0.06  # cm
            untouched = torch.ones(model.num_vertices, dtype=torch.bool)
            untouched[teeth] = False
            assert torch.allclose(shape[untouched], linear[untouched], atol=1e-5)
        # rigid: distances between jaw vertices are kept at any weight
        a, b = shape[teeth[::40]], model.template[teeth[::40]]
        pairwise = lambda p: (p[:, None] - p[None]).norm(dim=-1)
        assert torch.allclose(pairwise(a), pairwise(b), atol=1e-4)


def test_hinge_and_sphere_fits_recover_known_motion():
    rng = torch.Generator().manual_seed(0)
    points = torch.randn(200, 3, generator=rng)
    axis, point = torch.tensor([0.0, 0.6, 0.8]), torch.tensor([1.0, -2.0, 0.5])
    turn = axis_angle_rotation(axis, torch.tensor([30.0]))[0]
    opened = (points - point) @ turn.T + point
    found_axis, found_point, angle, residual = fit_jaw_hinge(points, opened)
    assert abs(angle - 30.0) < 1e-3 and residual < 1e-4
    assert torch.allclose(found_axis, axis, atol=1e-4)
    # the found point lies on the true axis
    offset = found_point - point
    assert float((offset - (offset @ axis) * axis).norm()) < 1e-3
    direction = torch.nn.functional.normalize(torch.randn(500, 3, generator=rng), dim=1)
    centre, radius = fit_sphere(torch.tensor([0.5, 1.0, -2.0]) + 1.25 * direction)
    assert torch.allclose(centre, torch.tensor([0.5, 1.0, -2.0]), atol=1e-4) and abs(radius - 1.25) < 1e-4


@pytest.mark.parametrize("angles", [(20.0, 0.0, 0.0), (-30.0, 12.0, 8.0), (0.0, -15.0, -12.0)])
def test_head_rotation_round_trips_and_the_neck_base_stays(model, rig, angles):
    rotation = torch.tensor([angles])
    shape = shape_vertices(model, rig, torch.zeros(1, 50), torch.zeros(1, 53))
    posed = pose_vertices(rig, shape, rotation, torch.zeros(1, 2))
    rest = shape @ ICT_TO_OBJECT
    head = rig.neck_weight == 1
    found = fit_rotation(rest[:, head], posed[:, head])
    assert torch.allclose(rotation_to_euler(found), rotation, atol=1e-3)
    base = rig.neck_weight == 0
    assert base.sum() > 100 and torch.allclose(posed[0, base], rest[0, base], atol=1e-5)


def test_gaze_turns_the_eyeballs_rigidly_about_their_centres(model, rig):
    shape = shape_vertices(model, rig, torch.zeros(1, 50), torch.zeros(1, 53))
    posed = pose_vertices(rig, shape, torch.zeros(1, 3), torch.tensor([[20.0, 0.0]]))
    rest = shape @ ICT_TO_OBJECT
    for side, index in enumerate(rig.eye_vertices):
        centre = rig.eye_centres[side] @ ICT_TO_OBJECT
        assert torch.allclose((posed[0, index] - centre).norm(dim=1), (rest[0, index] - centre).norm(dim=1), atol=1e-4)
        iris = model.part_indices(f"iris_{('left', 'right')[side]}")
        assert float(posed[0, iris, 0].mean() - rest[0, iris, 0].mean()) > 0.1  # gaze yaw > 0: towards +x
    others = torch.ones(model.num_vertices, dtype=torch.bool)
    others[torch.cat(rig.eye_vertices)] = False
    assert torch.allclose(posed[0, others], rest[0, others], atol=1e-5)


def test_mirrored_head_flips_yaw_and_roll(model, rig):
    """Posing commutes with the mirror image (x -> -x): the mirror of a posed head is the
    mirrored head (any identity, asymmetric ones included) posed with yaw, roll and gaze
    yaw negated; and mirroring the expression weights (left <-> right) mirrors the shape."""
    mirror = mirror_vertex_map(model.template)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    expression = np.zeros((1, 53), np.float32)
    for name, weight in (("mouthSmile_L", 0.8), ("eyeBlink_R", 0.6), ("jawOpen", 0.4), ("browInnerUp_L", 0.7)):
        expression[0, model.expression_index(name)] = weight
    motion = HeadTrajectory(
        yaw=np.array([25.0]),
        pitch=np.array([10.0]),
        roll=np.array([-8.0]),
        scale=np.ones(1),
        translation=np.zeros((1, 3)),
        expression=expression,
        gaze=np.array([[12.0, -5.0]]),
    )
    identity = torch.zeros(1, 50)
    identity[0, 9] = 2.0  # ICT-FaceKit's most asymmetric identity mode
    shape = shape_vertices(model, rig, identity, torch.from_numpy(motion.expression))
    mirrored_shape = shape[:, mirror] * flip

    def posed(s: torch.Tensor, m: HeadTrajectory) -> torch.Tensor:
        angles = torch.from_numpy(np.stack([m.yaw, m.pitch, m.roll], 1))
        return pose_vertices(rig, s, angles, torch.from_numpy(m.gaze))[0]

    flipped = motion.mirrored()
    assert flipped.yaw[0] == -25.0 and flipped.roll[0] == 8.0 and flipped.pitch[0] == 10.0
    error = (posed(mirrored_shape, flipped) - posed(shape, motion)[mirror] * flip).norm(dim=1)
    assert float(error.max()) < 0.02  # cm (the template itself is symmetric to 0.03 cm)

    symmetric = torch.zeros(1, 50)
    mirrored_expression = shape_vertices(model, rig, symmetric, torch.from_numpy(flipped.expression))
    error = (
        mirrored_expression
        - shape_vertices(model, rig, symmetric, torch.from_numpy(motion.expression))[:, mirror] * flip
    )
    assert float(error.norm(dim=-1).median()) < 1e-3 and float(error.norm(dim=-1).max()) < 0.3


def test_model_path_is_inside_the_package():
    assert MODEL_PATH.is_file() and MODEL_PATH.stat().st_size < 10_000_000
