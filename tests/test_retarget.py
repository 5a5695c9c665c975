"""Retargeting controls (``animate --head/--expression/--eyes/--lips/--lips-only/--blinks``):
the :class:`Retarget` of :class:`Transfer`, honoured by the landmark animator (all) and
MMFA (head, expression), refused with one line by the families that cannot."""

from pathlib import Path

import numpy as np
import pytest
import torch
from mmfa_tiny import tiny_checkpoint

from reanimate.animators.base import DrivingBatch, Retarget, Transfer
from reanimate.animators.registry import build_animator
from reanimate.cli import main
from reanimate.errors import ReanimateError
from reanimate.geometry import euler_to_rotation
from reanimate.geometry.rotation import rotation_angle, rotation_power, rotation_to_euler
from reanimate.io import open_frames, open_writer, read_image
from reanimate.motion import HeadMotion
from reanimate.pipelines import AnimationPipeline
from reanimate.pipelines.animate import AnimationOptions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZE = 512


def _rotations(*angles):
    yaw, pitch, roll = (torch.tensor(a, dtype=torch.float64) for a in zip(*angles))
    return euler_to_rotation(yaw, pitch, roll)


# -- the Retarget value and its geometry -------------------------------------------------


def test_rotation_power_scales_the_angle_about_the_same_axis():
    rotation = _rotations((20.0, 10.0, -7.0), (-5.0, 3.0, 0.0), (0.0, 0.0, 0.0))
    half = rotation_power(rotation, 0.5)
    assert torch.allclose(half @ half, rotation, atol=1e-12)
    identity = torch.eye(3, dtype=torch.float64).expand(3, 3, 3)
    angle = rotation_angle(identity, rotation)
    assert torch.allclose(rotation_angle(identity, half), angle / 2, atol=1e-9)
    assert torch.allclose(rotation_angle(identity, rotation_power(rotation, 2.0)), 2 * angle, atol=1e-9)
    assert torch.allclose(rotation_power(rotation, 0.0), identity, atol=1e-12)
    assert rotation_power(rotation, 1.0) is rotation
    # a pure yaw stays a pure yaw: the axis is kept
    yaw = rotation_to_euler(rotation_power(_rotations((30.0, 0.0, 0.0)), 0.25))
    assert torch.allclose(yaw, torch.tensor([[7.5, 0.0, 0.0]], dtype=torch.float64), atol=1e-9)


def test_retarget_names_the_controls_in_use_and_checks_its_factors():
    assert Retarget().used() == ()
    assert Retarget(expression=0.5, eyes=0.5, lips=0.5).used() == ("expression",)  # eyes, lips as expression
    assert Retarget(eyes=0.0).used() == ("eyes",)
    assert Retarget.lips_only().used() == ("head", "expression", "lips")
    assert Retarget(blinks="suppress").used() == ("blinks",)
    assert Retarget(blinks="suppress").lid_factor == 0.0 and Retarget(blinks="suppress").eye_factor == 1.0
    assert Transfer().retarget == Retarget()
    for bad in (dict(head=-0.1), dict(lips=2.5), dict(blinks="never")):
        with pytest.raises(ReanimateError) as error:
            Retarget(**bad)
        assert "\n" not in str(error.value)
    with pytest.raises(ReanimateError, match=r"^--eyes 0: the mmfa model only retargets --head, --expression"):
        Retarget(eyes=0.0).refuse_uncovered("mmfa", ("head", "expression"))
    with pytest.raises(ReanimateError, match="the fomm model cannot retarget"):
        Retarget(head=0.5).refuse_uncovered("fomm", ())
    Retarget(expression=0.0, eyes=0.0).refuse_uncovered("mmfa", ("head", "expression"))  # covered: no error


def test_head_motion_interpolates_between_the_source_and_the_target_head():
    torch.manual_seed(0)
    canonical = torch.randn(1, 5, 3, dtype=torch.float64)
    source = HeadMotion(
        canonical,
        torch.tensor([[10.0, -4.0, 2.0]], dtype=torch.float64),
        torch.tensor([2.0], dtype=torch.float64),
        torch.tensor([[0.1, 0.2]], dtype=torch.float64),
        torch.zeros(1, 5, 3, dtype=torch.float64),
    )
    target = HeadMotion(
        canonical.expand(2, -1, -1),
        torch.tensor([[30.0, 6.0, -3.0], [10.0, -4.0, 2.0]], dtype=torch.float64),
        torch.tensor([8.0, 2.0], dtype=torch.float64),
        torch.tensor([[0.5, -0.2], [0.1, 0.2]], dtype=torch.float64),
        torch.randn(2, 5, 3, dtype=torch.float64),
    )
    assert Retarget().head_motion(source, target) is target
    kept = Retarget(head=0.0, expression=0.0).head_motion(source, target)
    assert torch.allclose(kept.points(), source.points().expand(2, -1, -1), atol=1e-9)
    half = Retarget(head=0.5, expression=0.25).head_motion(source, target)
    turn = rotation_angle(source.rotation_matrix().expand(2, 3, 3), target.rotation_matrix())
    assert torch.allclose(rotation_angle(source.rotation_matrix().expand(2, 3, 3), half.rotation_matrix()), turn / 2)
    assert torch.allclose(half.scale, torch.tensor([4.0, 2.0], dtype=torch.float64))  # geometric mean
    assert torch.allclose(half.translation[0], torch.tensor([0.3, 0.0], dtype=torch.float64))
    assert torch.allclose(half.expression, 0.25 * target.expression)
    # per-point expression factors
    weights = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5], dtype=torch.float64)
    points = Retarget(head=1.0, expression=0.0).head_motion(source, target, weights)
    assert torch.allclose(points.expression, weights.view(1, -1, 1) * target.expression)


# -- the landmark animator -----------------------------------------------------------------


@pytest.fixture(scope="module")
def crop():
    pytest.importorskip("mediapipe")
    from reanimate.faces import FaceMesh, crop_face, square_box

    portrait = read_image(EXAMPLES / "source.png")
    with FaceMesh() as mesh:
        box = square_box(mesh.detect(portrait)[0].box, portrait.shape[:2], 0.45)
    image = crop_face(portrait, box, SIZE)
    with FaceMesh() as mesh:
        landmarks = mesh.detect(image)[0].landmarks.astype(np.float64)
    return image, landmarks


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("mediapipe")
    from reanimate.animators.landmarks import LandmarkAnimator, LandmarkAnimatorConfig

    return LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE))


def _faces(engine, driver, initial, frame=None):
    from reanimate.animators.landmarks import DrivingFace

    kp = engine.keypoints(np.stack([driver, initial]), (0, 0), float(SIZE - 1))
    return DrivingFace(kp[0], driver, frame), DrivingFace(kp[1], initial)


def _iris_darkness(image, landmarks):
    """Mean brightness of 7x7 patches at both iris centres (dark: the eyes are open)."""
    from reanimate.faces import topology

    values = []
    for centre in (topology.RIGHT_IRIS_CENTER, topology.LEFT_IRIS_CENTER):
        x, y = np.round(landmarks[centre, :2]).astype(int)
        values.append(image[y - 3 : y + 4, x - 3 : x + 4].mean())
    return float(np.mean(values))


def test_face_regions_split_the_eyes_the_mouth_and_the_rest(crop, engine):
    from reanimate.animators.landmarks.transfer import expression_weights, face_regions, source_head
    from reanimate.faces import topology

    image, landmarks = crop
    source = engine.encode_source(image, landmarks)
    canonical = source_head(source).canonical[0].numpy()
    eyes, mouth = face_regions(canonical)
    assert np.all(eyes >= 0) and np.all(mouth >= 0) and np.all(eyes + mouth <= 1 + 1e-12)
    assert np.all(eyes[list(topology.RIGHT_EYE) + list(topology.LEFT_EYE)] == 1)
    assert np.all(mouth[list(topology.LIPS_OUTER) + [topology.CHIN]] == 1)
    # the brows' upper edge, the forehead and the nose are the rest of the expression;
    # the brows' lower edge, next to the lids, at most a little of the eyes
    rest = list(topology.RIGHT_EYEBROW[5:]) + list(topology.LEFT_EYEBROW[5:]) + [topology.FOREHEAD, topology.NOSE_TIP]
    lower = list(topology.RIGHT_EYEBROW_LOWER) + list(topology.LEFT_EYEBROW_LOWER)
    assert np.all(eyes[rest] + mouth[rest] == 0) and np.all(eyes[lower] < 0.35) and np.all(mouth[lower] == 0)
    weights = expression_weights(canonical, Retarget(expression=0.2, eyes=0.6, lips=1.4))
    assert np.allclose(weights[list(topology.RIGHT_EYE)], 0.6) and np.allclose(weights[topology.CHIN], 1.4)
    assert np.allclose(weights[rest], 0.2)


def test_landmarks_factors_of_one_and_zero(crop, engine):
    """1 is the default (bit for bit); head 0 and expression 0 give the source back."""
    from reanimate.faces.edit import close_eyes, open_mouth, turn_head

    image, landmarks = crop
    source = engine.encode_source(image, landmarks)
    driver = turn_head(open_mouth(close_eyes(landmarks), 0.08), yaw=12.0, pitch=-5.0)
    driving, initial = _faces(engine, driver, landmarks)
    default = engine.animate(source, driving, initial)
    assert np.array_equal(engine.animate(source, driving, initial, retarget=Retarget()), default)
    still = engine.animate(source, driving, initial, retarget=Retarget(head=0.0, expression=0.0))
    assert np.abs(still.astype(int) - image).max() <= 1
    assert np.abs(default.astype(int) - image).max() > 50


def test_landmarks_head_factor_scales_the_turn_and_keeps_the_expression(crop, engine):
    from reanimate.animators.landmarks import mouth_openness
    from reanimate.faces import head_pose
    from reanimate.faces.edit import open_mouth, turn_head

    image, landmarks = crop
    source = engine.encode_source(image, landmarks)
    driver = turn_head(open_mouth(landmarks, 0.08), yaw=16.0)
    driving, initial = _faces(engine, driver, landmarks)
    base = head_pose(landmarks[None])[0].yaw
    yaws, mouths = {}, {}
    for head in (0.0, 0.5, 1.0, 1.5):
        _, points = engine.transfer(source, driving, initial, retarget=Retarget(head=head))
        yaws[head] = head_pose(points[None])[0].yaw - base
        mouths[head] = float(mouth_openness(points))
    assert abs(yaws[0.0]) < 0.5 and abs(yaws[1.0] - 16.0) < 2.0
    assert abs(yaws[0.5] - yaws[1.0] / 2) < 1.0 and abs(yaws[1.5] - 1.5 * yaws[1.0]) < 1.5
    # the mouth opens as wide whatever the head does
    assert mouths[0.0] > mouth_openness(landmarks) + 0.1 and abs(mouths[0.0] - mouths[1.0]) < 0.02


def test_lips_only_moves_the_mouth_and_nothing_else(crop, engine):
    from reanimate.animators.landmarks import eye_openness, mouth_openness
    from reanimate.faces import head_pose, topology
    from reanimate.faces.edit import close_eyes, open_mouth, turn_head

    image, landmarks = crop
    source = engine.encode_source(image, landmarks)
    # the driver raises its brows, closes its eyes, turns and opens its mouth
    lifted = landmarks.copy()
    brows = list(topology.RIGHT_EYEBROW) + list(topology.LEFT_EYEBROW)
    lifted[brows, 1] -= 8.0
    driver = turn_head(open_mouth(close_eyes(lifted), 0.08), yaw=10.0)
    driving, initial = _faces(engine, driver, landmarks)
    _, points = engine.transfer(source, driving, initial, retarget=Retarget.lips_only())
    assert abs(head_pose(points[None])[0].yaw - head_pose(landmarks[None])[0].yaw) < 0.5
    assert np.abs(points[brows, :2] - landmarks[brows, :2]).max() < 0.5
    assert np.allclose(eye_openness(points), eye_openness(landmarks), atol=0.01)
    assert mouth_openness(points) > mouth_openness(landmarks) + 0.1
    out = engine.animate(source, driving, initial, retarget=Retarget.lips_only())
    # the eyes stay open (dark irises), unlike with every control at 1
    default = engine.animate(source, driving, initial)
    assert _iris_darkness(out, landmarks) < _iris_darkness(default, landmarks) - 40
    assert abs(_iris_darkness(out, landmarks) - _iris_darkness(image, landmarks)) < 10
    # above the nose the output is the source
    top = int(landmarks[list(topology.NOSE_BASE), 1].min()) - 40
    assert np.abs(out[:top].astype(int) - image[:top]).max() <= 2


def test_blinks_suppressed_keep_the_eyes_open_and_the_rest_follows(crop, engine):
    from reanimate.animators.landmarks import mouth_openness
    from reanimate.faces.edit import close_eyes, open_mouth

    image, landmarks = crop
    source = engine.encode_source(image, landmarks)
    driver = open_mouth(close_eyes(landmarks), 0.08)
    driving, initial = _faces(engine, driver, landmarks)
    blink = engine.animate(source, driving, initial)
    kept = engine.animate(source, driving, initial, retarget=Retarget(blinks="suppress"))
    assert _iris_darkness(blink, landmarks) > _iris_darkness(image, landmarks) + 60  # closed
    assert abs(_iris_darkness(kept, landmarks) - _iris_darkness(image, landmarks)) < 10  # open
    _, points = engine.transfer(source, driving, initial, retarget=Retarget(blinks="suppress"))
    assert mouth_openness(points) > mouth_openness(landmarks) + 0.1
    # half an eye factor half-closes the lids
    half = engine.animate(source, driving, initial, retarget=Retarget(eyes=0.5))
    assert _iris_darkness(kept, landmarks) + 10 < _iris_darkness(half, landmarks) < _iris_darkness(blink, landmarks)


# -- the pipeline and the other families --------------------------------------------------------


@pytest.fixture(scope="module")
def short_driving(tmp_path_factory):
    """6 frames of the bundled driving clip (its mouth opens and the head turns)."""
    path = tmp_path_factory.mktemp("driving") / "short.mp4"
    with open_frames(EXAMPLES / "driving.mp4") as reader, open_writer(path, reader.fps) as writer:
        for i, frame in enumerate(reader):
            if i > 125:
                break
            if i in (0, 40, 76, 100, 110, 125):
                writer.write(frame[None])
    return path


def test_cli_retargets_with_the_default_animator(tmp_path, short_driving):
    from reanimate.faces import FaceMesh, topology

    pytest.importorskip("mediapipe")
    args = ["animate", str(EXAMPLES / "source.png"), str(short_driving), "-q"]

    def frames(name, *options):
        assert main([*args, "-o", str(tmp_path / name), *options]) == 0
        found = [read_image(p).astype(int) for p in sorted((tmp_path / name).glob("*.png"))]
        assert len(found) == 6
        return found

    def change(found, rows=slice(None)):
        """The largest change of each frame from the first (the reference frame: the source)."""
        return [np.abs(f[rows] - found[0][rows]).max() for f in found[1:]]

    # head and expression 0: every frame is the still source
    assert max(change(frames("still", "--head", "0", "--expression", "0"))) <= 2
    assert max(change(frames("default"))) > 30
    # only the mouth moves: above the nose the frames stay the source
    with FaceMesh() as mesh:
        landmarks = mesh.detect(read_image(EXAMPLES / "source.png"))[0].landmarks
    nose = int(landmarks[list(topology.NOSE_BASE), 1].min())
    dubbed = frames("dubbed", "--lips-only", "--blinks", "suppress")
    assert max(change(dubbed, slice(0, nose - 20))) <= 2
    assert max(change(dubbed, slice(nose, None))) > 30


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--head", "3"], "--head 3: expected a factor from 0"),
        (["--lips-only", "--expression", "0.5"], "--lips-only keeps the source's head, expression and eyes"),
    ],
)
def test_cli_refuses_bad_factors_in_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "o.mp4"
    code = main(["animate", str(EXAMPLES / "source.png"), str(EXAMPLES / "driving.mp4"), "-o", str(out), *argv])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.fixture(scope="module")
def mmfa_checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("mmfa") / "mmfa.safetensors")


def test_mmfa_honours_head_and_expression_and_refuses_the_rest(mmfa_checkpoint):
    animator = build_animator(mmfa_checkpoint, device="cpu")
    assert animator.requirements.retarget == ("head", "expression")
    pipeline = AnimationPipeline(animator)
    assert pipeline.plan(AnimationOptions(head=0.5, expression=0.0, eyes=0.0)).transfer.retarget.head == 0.5
    for options, what in (
        (AnimationOptions(eyes=0.0), "--eyes 0"),
        (AnimationOptions(lips_only=True), "--lips-only"),
        (AnimationOptions(blinks="suppress"), "--blinks suppress"),
    ):
        with pytest.raises(ReanimateError, match=f"^{what}: the mmfa model only retargets --head, --expression"):
            pipeline.plan(options)

    rng = np.random.default_rng(0)
    image, other, third = (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3))
    source = animator.encode_source(image)
    motion = animator.estimate(DrivingBatch([other, third], (64, 64)))
    reference = animator.estimate(DrivingBatch([image], (64, 64)))
    still = animator.render_heads(source, animator.source_head(source)).frames
    kept = animator.render(source, motion, reference, Transfer(retarget=Retarget(head=0.0, expression=0.0))).frames
    assert np.abs(kept.astype(int) - still.astype(int)).max() <= 1
    # expression 0 is the same as transferring only the head's attributes
    pose = Transfer(attributes=("rotation", "scale", "translation"))
    no_expression = animator.render(source, motion, reference, Transfer(retarget=Retarget(expression=0.0))).frames
    assert np.abs(no_expression.astype(int) - animator.render(source, motion, reference, pose).frames).max() <= 1
    with pytest.raises(ReanimateError, match="mmfa"):
        animator.render(source, motion, reference, Transfer(retarget=Retarget(lips=0.0)))


def test_fomm_refuses_every_control_in_one_line(tiny_config):
    from reanimate.animators.fomm import FommAnimator
    from reanimate.models import build_model

    animator = FommAnimator(build_model(tiny_config, seed=0), device="cpu")
    assert animator.requirements.retarget == ()
    pipeline = AnimationPipeline(animator)
    pipeline.plan(AnimationOptions(head=1.0, expression=1.0, eyes=1.0, lips=1.0))  # the driver as it is
    for options in (AnimationOptions(head=0.0), AnimationOptions(lips_only=True), AnimationOptions(blinks="suppress")):
        with pytest.raises(ReanimateError, match="the fomm model cannot retarget") as error:
            pipeline.plan(options)
        assert "\n" not in str(error.value)
