"""Head-attribute control (MMFA paper Sec. 4.3) through the Animator interface:
``animate --transfer`` and ``reanimate edit``, with the zero-shot landmark animator."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("mediapipe")

from reanimate.animators.base import HeadControl, Transfer  # noqa: E402
from reanimate.animators.fomm import FommAnimator  # noqa: E402
from reanimate.animators.landmarks import DrivingFace, LandmarkAnimator, LandmarkAnimatorConfig  # noqa: E402
from reanimate.animators.landmarks import mouth_openness as mouth_open  # noqa: E402
from reanimate.animators.landmarks.animator import LandmarkFaceAnimator  # noqa: E402
from reanimate.animators.registry import build_animator  # noqa: E402
from reanimate.cli import main  # noqa: E402
from reanimate.cli.animate import parse_transfer  # noqa: E402
from reanimate.errors import ReanimateError  # noqa: E402
from reanimate.faces import FaceMesh, crop_face, head_pose, square_box  # noqa: E402
from reanimate.faces.edit import open_mouth, turn_head  # noqa: E402
from reanimate.io import open_frames, read_image  # noqa: E402
from reanimate.models import build_model, load_config  # noqa: E402
from reanimate.motion import HEAD_ATTRIBUTES  # noqa: E402
from reanimate.pipelines import AnimationOptions, AnimationPipeline, animate  # noqa: E402
from reanimate.pipelines.edit import EditPipeline, edit  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SOURCE = EXAMPLES / "source.png"
SIZE = 512


def detect(image: np.ndarray) -> np.ndarray:
    with FaceMesh() as mesh:
        faces = mesh.detect(image)
    assert faces, "no face found"
    return faces[0].landmarks


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return read_image(SOURCE)


@pytest.fixture(scope="module")
def portrait_landmarks(portrait) -> np.ndarray:
    return detect(portrait)


@pytest.fixture(scope="module")
def crop(portrait, portrait_landmarks):
    """The source's face crop as the animator sees it, and its landmarks."""
    with FaceMesh() as mesh:
        box = square_box(mesh.detect(portrait)[0].box, portrait.shape[:2], 0.45)
    image = crop_face(portrait, box, SIZE)
    return image, detect(image).astype(np.float64)


@pytest.fixture(scope="module")
def turned_and_talking(crop, tmp_path_factory) -> Path:
    """A two-frame driving folder: the source crop, then the same face turned 15 degrees
    with its mouth open (made with the animator itself)."""
    image, landmarks = crop
    engine = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE))
    source = engine.encode_source(image, landmarks)
    driver = turn_head(open_mouth(landmarks, 0.1), yaw=15)
    kp = engine.keypoints(np.stack([driver, landmarks]), (0, 0), float(SIZE - 1))
    frame = engine.animate(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
    folder = tmp_path_factory.mktemp("driving") / "turn"
    folder.mkdir()
    Image.fromarray(image).save(folder / "000.png")
    Image.fromarray(frame).save(folder / "001.png")
    return folder


@pytest.fixture(scope="module")
def tiny_fomm() -> FommAnimator:
    """A FOMM face model (random weights) of the synthetic-64 config: no head control."""
    config = load_config("synthetic-64")
    return FommAnimator(build_model(config, seed=0).eval(), device="cpu")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reanimate: error: "), err
    return err[0]


# -- the interface ---------------------------------------------------------------------------


def test_the_landmark_animator_separates_every_head_attribute():
    animator = build_animator()
    assert isinstance(animator, HeadControl)
    assert animator.requirements.head_attributes == HEAD_ATTRIBUTES
    assert animator.translation_unit == float(animator.requirements.size[1])
    # The 2-D displacement rule moves points, not a head: it cannot separate them.
    flat = LandmarkFaceAnimator(LandmarkAnimator(LandmarkAnimatorConfig(head_pose=False)))
    assert flat.requirements.head_attributes == ()
    assert Transfer().attributes == HEAD_ATTRIBUTES


def test_fomm_has_no_head_control(tiny_fomm):
    assert not isinstance(tiny_fomm, HeadControl) and tiny_fomm.requirements.head_attributes == ()


# -- animate --transfer ----------------------------------------------------------------------


def test_transfer_names_are_parsed_in_attribute_order():
    assert parse_transfer("expression, rotation") == ("rotation", "expression")
    assert parse_transfer("scale,scale") == ("scale",)
    assert parse_transfer("rotation,scale,translation,expression") == HEAD_ATTRIBUTES
    for bad in ("rotaton", "", ",", "rotation,pose"):
        with pytest.raises(ReanimateError, match="rotation,scale,translation,expression"):
            parse_transfer(bad)


def test_unknown_transfer_name_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "o.mp4"
    assert main(["animate", str(SOURCE), str(EXAMPLES / "driving.mp4"), "-o", str(out), "--transfer", "yaw"]) == 2
    line = one_line_error(capsys)
    assert "--transfer 'yaw'" in line and "rotation,scale,translation,expression" in line
    assert not list(tmp_path.iterdir())


def test_fomm_refuses_a_transfer_subset(tiny_fomm, tmp_path, tiny_checkpoint, capsys):
    pipeline = AnimationPipeline(tiny_fomm)
    assert pipeline.plan(AnimationOptions()).transfer.attributes == HEAD_ATTRIBUTES
    with pytest.raises(ReanimateError, match="fomm model cannot separate .*landmarks, mmfa"):
        pipeline.plan(AnimationOptions(transfer=("rotation",)))
    out = tmp_path / "o.mp4"
    args = ["animate", str(SOURCE), str(EXAMPLES / "driving.mp4"), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]
    assert main([*args, "--transfer", "rotation,expression", "-q"]) == 2
    line = one_line_error(capsys)
    assert "--transfer: the fomm model cannot separate" in line and "landmarks, mmfa" in line
    assert not list(tmp_path.iterdir())


def test_rotation_only_turns_the_head_and_keeps_the_source_mouth(turned_and_talking, portrait_landmarks, tmp_path):
    """The driver turns and opens its mouth; transferring only its rotation turns the
    source's head and leaves its mouth as it is (no lid, gaze or mouth retargeting)."""
    measured = {}
    for name, attributes in (("rotation", ("rotation",)), ("all", HEAD_ATTRIBUTES), ("expression", ("expression",))):
        out = tmp_path / name
        animate(SOURCE, turned_and_talking, out, transfer=attributes, progress=False)
        found = detect(read_image(sorted(out.glob("*.png"))[-1]))
        measured[name] = (mouth_open(found), head_pose(found).yaw - head_pose(portrait_landmarks).yaw)
    closed = mouth_open(portrait_landmarks)
    # Observed: mouth 0.001 (source 0.001), yaw +5.7; all: mouth 0.32, yaw +9.2.
    assert abs(measured["rotation"][0] - closed) < 0.03 and measured["rotation"][1] > 3.0
    assert measured["all"][0] > closed + 0.15 and measured["all"][1] > 3.0
    assert measured["expression"][0] > closed + 0.15 and abs(measured["expression"][1]) < 2.5


# -- edit ------------------------------------------------------------------------------------


def test_default_edit_reproduces_the_source(portrait, tmp_path):
    out = tmp_path / "same.png"
    assert main(["edit", str(SOURCE), "-o", str(out), "-q"]) == 0
    image = read_image(out)
    assert image.shape == portrait.shape
    assert np.abs(image.astype(int) - portrait).mean() < 1.5  # observed 1.05: the crop is resampled to 512 and back


@pytest.mark.parametrize("yaw", [15.0, -15.0])
def test_edit_yaw_turns_the_measured_head(portrait_landmarks, tmp_path, yaw):
    """A warp of one photo has no shading change, so MediaPipe reads ~60% of the turn
    from the output (observed +15 -> +9.8, -15 -> -8.1; pitch and roll stay within 1.5)."""
    out = tmp_path / "turned.png"
    assert main(["edit", str(SOURCE), "-o", str(out), "--yaw", str(yaw), "-q"]) == 0
    pose, base = head_pose(detect(read_image(out))), head_pose(portrait_landmarks)
    assert 0.4 * abs(yaw) < np.sign(yaw) * (pose.yaw - base.yaw) < 1.2 * abs(yaw)
    assert abs(pose.pitch - base.pitch) < 3.0 and abs(pose.roll - base.roll) < 3.0


def test_turned_landmarks_land_where_the_head_says(crop):
    """Where the landmarks land in the image is exact: with the head's own depth, the
    redetected output measures the turn asked for (observed 14.5 for 15)."""
    image, landmarks = crop
    animator = build_animator()
    source = animator.encode_source(image, landmarks)
    head = animator.source_head(source)
    turned = head.with_(rotation=head.rotation + torch.tensor([[15.0, 0.0, 0.0]], dtype=head.rotation.dtype))
    points = turned.points()[0].numpy()
    assert head_pose(points).yaw - head_pose(landmarks).yaw == pytest.approx(15.0, abs=1e-6)
    found = detect(animator.render_heads(source, turned).frames[0])
    assert np.linalg.norm(found[:, :2] - points[:, :2], axis=1).mean() < 5.0  # pixels, of 512
    mixed = np.concatenate([found[:, :2], points[:, 2:]], axis=1)
    assert head_pose(mixed).yaw - head_pose(landmarks).yaw == pytest.approx(15.0, abs=2.5)


def test_edit_roll_scale_and_translate(portrait_landmarks, tmp_path):
    with FaceMesh() as mesh:
        box = square_box(mesh.detect(read_image(SOURCE))[0].box, read_image(SOURCE).shape[:2], 0.45)
    width = float(box[2] - box[0])
    base = portrait_landmarks
    out = tmp_path / "e.png"
    edit(SOURCE, out, roll=10, progress=False)
    assert head_pose(detect(read_image(out))).roll - head_pose(base).roll == pytest.approx(10.0, abs=2.0)
    edit(SOURCE, out, scale=1.1, progress=False)
    eyes = lambda p: np.linalg.norm(p[33, :2] - p[263, :2])  # noqa: E731 (outer eye corners)
    assert eyes(detect(read_image(out))) / eyes(base) == pytest.approx(1.1, abs=0.03)
    edit(SOURCE, out, translate=(0.05, -0.03), progress=False)
    shift = detect(read_image(out))[:, :2].mean(0) - base[:, :2].mean(0)
    assert shift == pytest.approx(np.array([0.05, -0.03]) * width, abs=3.0)  # pixels; the crop is ~380 wide


def test_expression_from_another_photo(portrait_landmarks, tmp_path):
    """A frame of the bundled driving clip (the same portrait, mouth open) lends its
    expression; --expression-scale 0 keeps the source's."""
    with open_frames(EXAMPLES / "driving.mp4") as reader:
        frame = reader.read_frame(76)
    other = tmp_path / "open.png"
    Image.fromarray(frame).save(other)
    out = tmp_path / "e.png"
    assert main(["edit", str(SOURCE), "-o", str(out), "--expression-from", str(other), "-q"]) == 0
    assert mouth_open(detect(read_image(out))) > mouth_open(portrait_landmarks) + 0.15
    half = tmp_path / "half.png"
    edit(SOURCE, half, expression_from=other, expression_scale=0.5, progress=False)
    assert mouth_open(portrait_landmarks) < mouth_open(detect(read_image(half))) < mouth_open(detect(read_image(out)))
    edit(SOURCE, out, expression_from=other, expression_scale=0.0, progress=False)
    assert np.abs(read_image(out).astype(int) - read_image(SOURCE)).mean() < 1.5


def test_frames_sweep_from_the_source(portrait, tmp_path):
    out = tmp_path / "sweep.mp4"
    assert main(["edit", str(SOURCE), "-o", str(out), "--yaw", "-10", "--roll", "8", "--frames", "5", "-q"]) == 0
    with open_frames(out) as reader:
        frames = list(reader)
    assert len(frames) == 5 and frames[0].shape == portrait.shape
    assert np.abs(frames[0].astype(int) - portrait).mean() < 3.0  # H.264
    assert np.abs(frames[-1].astype(int) - portrait).mean() > 3.0
    rolls = [head_pose(detect(f)).roll for f in frames]
    assert np.all(np.diff(rolls) > 0)  # it sweeps


def test_a_turn_beyond_the_plausible_range_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        edit(SOURCE, tmp_path / "far.png", yaw=30, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "--yaw 30" in lines[0] and "yaw ±10°" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        edit(SOURCE, tmp_path / "near.png", yaw=5, progress=False)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--scale", "0"], "--scale"),
        (["--frames", "0"], "--frames"),
        (["--yaw", "nan"], "--yaw"),
        (["--translate", "0.1"], "--translate"),
        (["--translate", "a,b"], "--translate"),
        (["--expression-from", "missing.png"], "missing.png"),
        (["--frames", "5"], "out.png"),  # a video needs a video file
        (["--fps", "0", "--frames", "3"], "--fps"),
    ],
)
def test_bad_edit_values_are_one_line_errors(tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    assert main(["edit", str(SOURCE), "-o", "out.png", *args]) == 2
    assert expected in one_line_error(capsys)
    assert not list(tmp_path.iterdir())


def test_bad_edit_paths_are_one_line_errors(tmp_path, capsys):
    cases = [
        ([str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")], "nope.png"),
        ([str(SOURCE), "-o", str(tmp_path / "missing" / "o.png")], "does not exist"),
        ([str(SOURCE), "-o", str(tmp_path / "o.mp4")], "o.mp4"),  # one frame is an image
        ([str(SOURCE), "-o", str(tmp_path / "o")], "o"),  # no suffix: neither image nor video
    ]
    for args, expected in cases:
        assert main(["edit", *args, "-q"]) == 2
        assert expected in one_line_error(capsys)
    assert not list(tmp_path.iterdir())
    folder = tmp_path / "folder.png"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert main(["edit", str(SOURCE), "-o", str(folder), "-q"]) == 2
    assert "is a folder" in one_line_error(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["folder.png"] and (folder / "keep.txt").read_text() == "mine"


def test_an_animator_without_head_control_is_refused(tiny_fomm, tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(ReanimateError, match="the fomm model cannot pose a head"):
        EditPipeline(tiny_fomm)
    out = tmp_path / "o.png"
    assert main(["edit", str(SOURCE), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--yaw", "5"]) == 2
    assert "the fomm model cannot pose a head" in one_line_error(capsys)
    assert not list(tmp_path.iterdir())
