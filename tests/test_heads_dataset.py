"""Synthetic talking heads: rendering ground truth and the make-heads dataset on disk."""

import hashlib
import json

import numpy as np
import pytest
import torch

from reanimate.data.synthetic import load_flow
from reanimate.errors import InputError, ReanimateError
from reanimate.heads.appearance import Appearance, Lighting, sample_appearance
from reanimate.heads.dataset import HeadsConfig, load_truth, make_heads, truth_path
from reanimate.heads.model import load_head_model
from reanimate.heads.scene import Backdrop, default_camera, render_frames
from reanimate.heads.trajectories import HeadTrajectory, sample_trajectory

SIZE = 64


@pytest.fixture(scope="module")
def model():
    return load_head_model()


def _flat_light() -> Lighting:
    """Ambient only: a surface point has the same colour in every frame."""
    return Lighting(towards_light=np.array([0.0, 0.0, -1.0]), ambient=1.0, diffuse=0.0, specular=0.0, tint=np.ones(3))


def _smooth_appearance(model) -> Appearance:
    """Colour = a smooth function of the rest position, so bilinear resampling is exact
    to second order and any warp error is the flow's."""
    rest = model.template
    colour = 0.5 + 0.4 * torch.sin(rest / torch.tensor([3.0, 4.0, 5.0]))
    return Appearance(colour, torch.zeros(len(rest)))


def _still_backdrop() -> Backdrop:
    return Backdrop(np.full((8, 8, 3), 0.2, np.float32), np.zeros(2))


def _motion(rng, frames=6, profile="train") -> HeadTrajectory:
    return sample_trajectory(rng, frames, 25.0, profile)


def test_flow_warps_the_first_frame_onto_every_frame_where_visible(model):
    """Warping frame 0 by the ground-truth flow reproduces each frame where visible: mean
    error < 0.5 grey levels at 64x64 (before rounding to 8 bits), on the pixels whose
    bilinear footprint in frame 0 lies on the head (not on the silhouette's one-pixel ring,
    where bilinear sampling mixes in the background)."""
    rng = np.random.default_rng(1)
    motion = _motion(rng, frames=24)
    camera = default_camera(SIZE)
    identity = rng.standard_normal(50).astype(np.float32)
    args = (model, identity, _smooth_appearance(model), _flat_light(), _still_backdrop(), camera, motion)
    first = render_frames(*args, slice(0, 1), exact=True)
    frames = render_frames(*args, slice(0, 24), first.reference(0, 0), exact=True)
    flow = torch.from_numpy(frames.flow)
    source = torch.from_numpy(first.rgb[0]).permute(2, 0, 1)[None].expand(24, -1, -1, -1)
    warped = torch.nn.functional.grid_sample(source, flow, align_corners=True)
    error = (warped - torch.from_numpy(frames.rgb).permute(0, 3, 1, 2)).abs().mean(1)
    head = torch.from_numpy(first.mask[0]).float()[None, None]
    interior = -torch.nn.functional.max_pool2d(-head, 3, 1, 1)
    footprint = torch.nn.functional.grid_sample(
        interior.expand(24, -1, -1, -1), flow, mode="nearest", align_corners=True
    )
    checked = torch.from_numpy(frames.visible & frames.mask) & (footprint[:, 0] > 0.5)
    assert checked.sum() > 24 * SIZE * SIZE * 0.1
    assert float(error[checked].mean()) < 0.5  # grey levels
    # the flow is not the identity: the head moved
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, SIZE), np.linspace(-1, 1, SIZE)), -1)
    assert float(np.abs(frames.flow[-1] - grid)[frames.mask[-1]].mean()) * (SIZE - 1) / 2 > 0.5  # px
    # occlusion: a head turning hides some pixels of frame 0
    assert (frames.mask & ~frames.visible).any()


def test_landmarks_lie_on_the_rendered_head(model):
    rng = np.random.default_rng(2)
    motion = _motion(rng, frames=8, profile="test")
    look = sample_appearance(model, rng)
    frames = render_frames(
        model,
        np.zeros(50, np.float32),
        look,
        _flat_light(),
        _still_backdrop(),
        default_camera(SIZE),
        motion,
        slice(0, 8),
    )
    # the jaw-line points sit on the silhouette: allow one pixel
    near = torch.nn.functional.max_pool2d(torch.from_numpy(frames.mask).float()[:, None], 3, 1, 1)[:, 0].bool().numpy()
    pixels = np.clip(np.round(frames.landmarks).astype(int), 0, SIZE - 1)
    assert near[np.arange(8)[:, None], pixels[..., 1], pixels[..., 0]].all()
    inner = pixels[:, 17:]  # brows, nose, eyes, mouth: well inside
    assert frames.mask[np.arange(8)[:, None], inner[..., 1], inner[..., 0]].all()
    # 3-D landmarks project to the 2-D ones
    camera = default_camera(SIZE)
    projected = frames.landmarks3d[..., :2] / frames.landmarks3d[..., 2:] * camera.focal + (SIZE - 1) / 2
    assert np.allclose(projected, frames.landmarks, atol=1e-3)


def test_mirrored_motion_renders_the_mirror_image(model):
    """With the (near-symmetric) template identity, yaw and roll negated and left/right
    expressions swapped give the left-right flipped head mask."""
    motion = HeadTrajectory(
        yaw=np.array([30.0]),
        pitch=np.array([8.0]),
        roll=np.array([12.0]),
        scale=np.ones(1),
        translation=np.array([[1.0, 0.5, 0.0]]),
        expression=np.zeros((1, 53)),
        gaze=np.array([[15.0, 0.0]]),
    )
    motion.expression[0, 45] = 0.9  # mouthSmile_L
    args = (model, np.zeros(50, np.float32), _smooth_appearance(model), _flat_light(), _still_backdrop())
    camera = default_camera(SIZE)
    original = render_frames(*args, camera, motion, slice(0, 1))
    mirrored = render_frames(*args, camera, motion.mirrored(), slice(0, 1))
    flipped = original.mask[0, :, ::-1]
    union = (flipped | mirrored.mask[0]).sum()
    assert (flipped & mirrored.mask[0]).sum() / union > 0.98
    assert np.allclose(mirrored.landmarks[0, :, 0], SIZE - 1 - original.landmarks[0, :, 0][_MIRROR_68], atol=0.05)


# Multi-PIE 68 points: the left-right mirror permutation.
_MIRROR_68 = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def _tree_digest(root):
    digest = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("heads") / "set"
    config = HeadsConfig(size=SIZE, frames=6, train=2, test=1, pairs=1, subject=True, subject_frames=(4, 3), seed=5)
    make_heads(out, config, progress=False)
    return out, config


def test_make_heads_writes_the_documented_layout(small_set):
    out, config = small_set
    meta = json.loads((out / "heads.json").read_text())
    assert meta["format"] == "reanimate-heads" and meta["config"]["size"] == SIZE
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "head_00000",
        "head_00000.flow.npz",
        "head_00000.truth.npz",
        "head_00001",
        "head_00001.flow.npz",
        "head_00001.truth.npz",
    ]
    assert len(list((out / "train" / "head_00000").glob("*.png"))) == 6
    flow, visible = load_flow(out / "test" / "head_00000")
    assert flow.shape == (6, SIZE, SIZE, 2) and visible.shape == (6, SIZE, SIZE)
    truth = load_truth(truth_path(out / "test" / "head_00000"))
    assert truth["landmarks"].shape == (6, 68, 2) and truth["expression"].shape == (6, 53)
    assert truth["mask"].shape == (6, SIZE, SIZE) and truth["mask"].any()
    assert json.loads(str(truth["camera"]))["width"] == SIZE
    # subject: clips, truth and camera
    assert len(list((out / "subject" / "train").glob("*.png"))) == 4
    assert load_truth(out / "subject" / "test.truth.npz")["mask"].shape == (3, SIZE, SIZE)
    assert json.loads((out / "subject" / "camera.json").read_text())["focal"] > 0


def test_pairs_target_starts_at_the_source(small_set):
    out, _ = small_set
    import cv2

    pair = out / "pairs" / "pair_00000"
    source = cv2.imread(str(pair / "source.png"))
    target0 = cv2.imread(str(pair / "target" / "00000.png"))
    assert np.array_equal(source, target0)
    truth = load_truth(pair / "truth.npz")
    assert np.allclose(truth["target_yaw"][0], truth["source_yaw"][0], atol=1e-3)
    # the target follows the driver's turn: yaw changes match (small angles, roughly additive)
    turn_target = truth["target_yaw"] - truth["target_yaw"][0]
    turn_driver = truth["driving_yaw"] - truth["driving_yaw"][0]
    assert np.abs(turn_target - turn_driver).max() < 3.0
    assert not np.array_equal(truth["source_identity"], truth["driving_identity"])


def test_same_seed_same_bytes(small_set, tmp_path):
    out, config = small_set
    again = tmp_path / "again"
    make_heads(again, config, progress=False, workers=2)
    assert _tree_digest(again) == _tree_digest(out)


def test_bad_output_and_config_are_one_line_errors(tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty"):
        make_heads(occupied, HeadsConfig(size=SIZE, frames=2, train=1, test=0), progress=False)
    assert (occupied / "mine.txt").read_text() == "keep" and len(list(occupied.iterdir())) == 1
    with pytest.raises(ReanimateError, match="size must be 64..512"):
        make_heads(tmp_path / "x", HeadsConfig(size=32), progress=False)
    assert not (tmp_path / "x").exists()


def test_orthographic_camera_projects_landmarks_without_perspective(model):
    camera = default_camera(SIZE, orthographic=True)
    motion = _motion(np.random.default_rng(4), frames=2)
    frames = render_frames(
        model, np.zeros(50, np.float32), _smooth_appearance(model), _flat_light(), _still_backdrop(), camera, motion,
        slice(0, 2),
    )  # fmt: skip
    expected = frames.landmarks3d[..., :2] * camera.focal / camera.z_ref + (SIZE - 1) / 2
    assert np.allclose(frames.landmarks, expected, atol=1e-3)
    # the same image scale as the perspective camera at the head's distance
    perspective = render_frames(
        model, np.zeros(50, np.float32), _smooth_appearance(model), _flat_light(), _still_backdrop(),
        default_camera(SIZE), motion, slice(0, 2),
    )  # fmt: skip
    ratio = frames.mask.sum() / perspective.mask.sum()
    assert 0.9 < ratio < 1.1


def test_make_heads_command_line(tmp_path, capsys):
    from reanimate.cli import main

    out = tmp_path / "cli"
    assert main(["make-heads", str(out), "--size", "64", "--frames", "3", "--train", "1", "--test", "0", "-q"]) == 0
    assert len(list((out / "train" / "head_00000").glob("*.png"))) == 3
    assert main(["make-heads", str(tmp_path / "bad"), "--size", "32", "-q"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("reanimate: error: make-heads: size must be 64..512")
    assert not (tmp_path / "bad").exists()
