"""``reanimate avatar track|fit|render|mesh`` end to end: a tiny avatar fitted for a few
steps on the procedural head (``avatar_tiny``), resumed, rendered from a track folder and
from sweeps (videos read back, a still equal to a sweep's last frame), meshed (the
random-init geometry is a sphere of radius 0.6 model units, wound outwards; a posed mesh
at the canonical pose is the canonical one), sweeps that keep the rotation conventions
and ICT-FaceKit's jaw pairing, one-line errors that leave nothing behind, and (with
mediapipe) tracking a real clip with given masks and driving an ICT avatar with it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from avatar_tiny import tiny_document, tiny_track

from reanimate.avatar.rig import landmarks as rig_landmarks
from reanimate.avatar.rig import rig_vertices
from reanimate.avatar.rigs.procedural import procedural_rig
from reanimate.cli import main
from reanimate.errors import ReanimateError
from reanimate.geometry.rotation import euler_to_rotation, rotation_to_euler
from reanimate.io import open_frames
from reanimate.pipelines import avatar as pipeline

SIZE = 32


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reanimate: error: "), err
    return err[0]


def write_config(path: Path, rig: str = "procedural") -> Path:
    doc = tiny_document()
    doc["model_params"]["rig"] = rig
    # a small rate keeps the random-init sphere through the few steps (the mesh test measures it)
    doc["train_params"]["lr"] = 1e-6
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("avatar_commands")
    track = tiny_track(root / "track", frames=4, size=SIZE)
    config = write_config(root / "tiny.yaml")
    avatar = root / "avatar"
    args = ["avatar", "fit", str(track), "-o", str(avatar), "--config", str(config), "--max-steps", "2"]
    assert main([*args, "--device", "cpu", "-q", "--no-tensorboard"]) == 0
    return SimpleNamespace(root=root, track=track, config=config, avatar=avatar)


def read_video(path: Path) -> np.ndarray:
    with open_frames(path) as reader:
        return np.stack(list(reader))


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            vertices.append([float(v) for v in line.split()[1:]])
        elif line.startswith("f "):
            faces.append([int(i) - 1 for i in line.split()[1:]])
    return np.array(vertices), np.array(faces)


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# -- fit ----------------------------------------------------------------------------------


def test_fit_makes_an_avatar_folder_that_resumes(work, tmp_path, capsys):
    avatar = work.avatar
    assert {"config.yaml", "run.json", "checkpoints", "log.jsonl", "avatar.json"} <= listing(avatar)
    run = json.loads((avatar / "run.json").read_text())
    assert Path(run["data_root"]) == work.track.resolve()
    view = json.loads((avatar / "avatar.json").read_text())
    assert view["rig"] == "procedural" and view["image_size"] == SIZE and view["frames"] == 4
    assert math.isclose(view["focal"], 1.6 * SIZE) and view["translation"][2] > 0

    copy = tmp_path / "resumed"
    shutil.copytree(avatar, copy)
    (copy / "avatar.json").unlink()  # an avatar whose fit stopped before it was written
    capsys.readouterr()
    assert main(["avatar", "fit", "--resume", str(copy), "--max-steps", "3", "--device", "cpu", "-q"]) == 0
    assert "step 3" in capsys.readouterr().err
    assert json.loads((copy / "checkpoints" / "latest.json").read_text())["checkpoint"] == "step-00000003"
    assert len((copy / "log.jsonl").read_text().splitlines()) == 3
    assert json.loads((copy / "avatar.json").read_text()) == view

    # a second fit into the same folder, or --resume with a track, is refused in one line
    assert main(["avatar", "fit", str(work.track), "-o", str(copy), "--config", str(work.config), "-q"]) == 2
    assert "already holds an avatar" in one_line_error(capsys)
    assert main(["avatar", "fit", str(work.track), "--resume", str(copy), "-q"]) == 2
    assert "drop TRACK_DIR" in one_line_error(capsys)


# -- render -------------------------------------------------------------------------------


def test_render_a_track_folder(work, tmp_path):
    out = tmp_path / "track.mp4"
    assert main(["avatar", "render", str(work.avatar), "--track", str(work.track), "-o", str(out), "-q"]) == 0
    frames = read_video(out)
    assert frames.shape == (4, SIZE, SIZE, 3)
    # the head (the random-init sphere) in the middle of a white background, turning between frames
    assert frames[:, 0, 0].min() > 240 and frames[:, SIZE // 2, SIZE // 2].max() < 235
    assert np.abs(frames[0].astype(int) - frames[1]).mean() > 0.5

    small = tmp_path / "two.mp4"
    args = ["avatar", "render", str(work.avatar), "--track", str(work.track), "--frames", "2", "--size", "24"]
    assert main([*args, "-o", str(small), "-q"]) == 0
    assert read_video(small).shape == (2, 24, 24, 3)


def test_render_sweeps_to_a_video_and_a_still(work, tmp_path):
    video, still = tmp_path / "sweep.mp4", tmp_path / "target.png"
    sweep = ["--expression", "1=0.5", "--yaw", "25"]
    assert main(["avatar", "render", str(work.avatar), *sweep, "--frames", "3", "-o", str(video), "-q"]) == 0
    assert main(["avatar", "render", str(work.avatar), *sweep, "-o", str(still), "-q"]) == 0
    frames = read_video(video)
    assert frames.shape == (3, SIZE, SIZE, 3)
    from reanimate.io import read_image

    image = read_image(still)
    assert image.shape == (SIZE, SIZE, 3)
    # the still is the sweep's target: its last frame (up to the video codec)
    assert np.abs(image.astype(int) - frames[-1]).mean() < 4
    assert np.abs(image.astype(int) - frames[0]).mean() > np.abs(image.astype(int) - frames[-1]).mean()


def test_sweep_frames_keep_the_project_conventions():
    rig = procedural_rig()
    translation = torch.tensor([0.0, 0.0, 3.0])
    frames = pipeline.sweep_frames(rig, translation, {1: 0.5}, yaw=30.0, pitch=-10.0, frames=3)
    assert frames.expression.shape == (3, 3) and frames.pose.shape == (3, 5, 3)
    # starts at the canonical space, ends at the target
    torch.testing.assert_close(frames.pose[0], rig.canonical_pose)
    torch.testing.assert_close(frames.expression[0], rig.canonical_expression)
    torch.testing.assert_close(frames.expression[2], torch.tensor([0.0, 0.5, 0.0]))
    torch.testing.assert_close(frames.translation, translation.expand(3, 3))
    # the root joint carries yaw/pitch as `reanimate faces` reports them: halfway at the middle frame
    from reanimate.avatar.rig import axis_angle_to_matrix

    angles = rotation_to_euler(axis_angle_to_matrix(frames.pose[:, 0]))
    torch.testing.assert_close(
        angles[:, :2], torch.tensor([[0.0, 0.0], [15.0, -5.0], [30.0, -10.0]]), atol=1e-4, rtol=0
    )
    # yaw > 0 turns the face (the nose tip, in front) towards the image's right (+x)
    nose = rig_landmarks(rig, rig_vertices(rig, None, frames.expression, frames.pose)[0])[:, 4]
    assert nose[2, 0] > nose[0, 0] + 0.1
    # --jaw sets the opening about the canonical axis (0: closed); without it the jaw stays canonical
    closed = pipeline.sweep_frames(rig, translation, jaw=0.0)
    torch.testing.assert_close(closed.pose[0, 2], torch.zeros(3))
    wide = pipeline.sweep_frames(rig, translation, jaw=20.0)
    torch.testing.assert_close(wide.pose[0, 2], torch.tensor([math.radians(20.0), 0.0, 0.0]))
    turned = euler_to_rotation(torch.tensor(30.0), torch.tensor(-10.0), torch.tensor(0.0))[0]
    torch.testing.assert_close(axis_angle_to_matrix(frames.pose[2, 0]), turned, atol=1e-5, rtol=0)


def test_ict_sweeps_pair_the_jaw_with_jaw_open():
    from reanimate.avatar.rigs.ict import ict_rig

    rig = ict_rig()
    jaw = rig.joint_index("jaw")
    names = pipeline.expression_names(rig)
    open_index = names.index("jawOpen")
    per_unit = rig.canonical_pose[jaw] / rig.canonical_expression[open_index]
    weights = pipeline.parse_expression("jawOpen=0.8, mouthSmile_L=1", rig)
    assert weights == {open_index: 0.8, names.index("mouthSmile_L"): 1.0}
    frames = pipeline.sweep_frames(rig, torch.zeros(3), weights, frames=2)
    torch.testing.assert_close(frames.pose[:, jaw], frames.expression[:, open_index, None] * per_unit)
    assert math.isclose(float(frames.expression[1, open_index]), 0.8, rel_tol=1e-6)
    # --jaw sets jawOpen to match the angle
    opened = pipeline.sweep_frames(rig, torch.zeros(3), jaw=15.0)
    assert math.isclose(float(opened.pose[0, jaw].norm()), math.radians(15.0), rel_tol=1e-5)
    torch.testing.assert_close(opened.pose[:, jaw], opened.expression[:, open_index, None] * per_unit)
    with pytest.raises(ReanimateError, match="'smile' is not an expression of the ict rig; e.g. browDown_L"):
        pipeline.parse_expression("smile=1", rig)
    with pytest.raises(ReanimateError, match="NAME=WEIGHT"):
        pipeline.parse_expression("jawOpen", rig)


# -- mesh ---------------------------------------------------------------------------------


def test_mesh_of_the_random_init_sphere(work, tmp_path):
    canonical, same, posed = tmp_path / "head.obj", tmp_path / "same.obj", tmp_path / "posed.obj"
    base = ["avatar", "mesh", str(work.avatar), "--resolution", "40", "-q"]
    assert main([*base, "-o", str(canonical)]) == 0
    vertices, faces = read_obj(canonical)
    assert len(vertices) > 500 and faces.shape[1] == 3 and faces.min() == 0 and faces.max() < len(vertices)
    model = pipeline.load_avatar(work.avatar, "cpu").model
    centre, scale = model.centre.numpy(), model.scale
    radius = np.linalg.norm(vertices - centre, axis=1) * scale  # model units
    assert abs(radius.mean() - 0.6) < 0.12 and np.percentile(radius, 95) < 0.9
    a, b, c = (vertices[faces[:, i]] - centre for i in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6 * scale**3
    assert 0.5 * (4 / 3 * math.pi * 0.6**3) < volume < 2 * (4 / 3 * math.pi * 0.6**3)  # positive: wound outwards

    # posed at the canonical pose: the canonical surface; turned and opened: moved
    assert main([*base, "--yaw", "0", "-o", str(same)]) == 0
    np.testing.assert_allclose(read_obj(same)[0], vertices, atol=2e-5)
    assert main([*base, "--yaw", "30", "--jaw", "25", "-o", str(posed)]) == 0
    moved, moved_faces = read_obj(posed)
    np.testing.assert_array_equal(moved_faces, faces)
    assert np.isfinite(moved).all() and np.abs(moved - vertices).max() > 0.05


# -- errors -------------------------------------------------------------------------------


def test_errors_are_one_line_and_write_nothing(work, tmp_path, capsys):
    from media import make_video

    avatar, track = str(work.avatar), str(work.track)
    video = make_video(work.root / "video.mp4", num_frames=2, size=(32, 32))
    before = listing(tmp_path)
    cases = [
        (["avatar", "render", str(tmp_path / "nope"), "--yaw", "0", "-o", str(tmp_path / "a.mp4")], "nope: no such"),
        (["avatar", "render", avatar, "--expression", "smile=1", "-o", str(tmp_path / "b.mp4")], "indices 0-2"),
        (["avatar", "render", avatar, "--yaw", "5", "--frames", "3", "-o", str(tmp_path / "c.png")], "c.png"),
        (["avatar", "render", avatar, "-o", str(tmp_path / "d.mp4")], "give --driving"),
        (["avatar", "render", avatar, "--track", track, "--yaw", "3", "-o", str(tmp_path / "e.mp4")], "sweep"),
        (["avatar", "render", avatar, "--track", str(tmp_path), "-o", str(tmp_path / "f.mp4")], "not a track folder"),
        (["avatar", "mesh", avatar, "-o", str(tmp_path / "g.ply")], "g.ply: expected an .obj"),
        (["avatar", "mesh", str(work.track), "-o", str(tmp_path / "h.obj")], "is not an avatar folder"),
        (["avatar", "fit", str(tmp_path), "-o", str(tmp_path / "i"), "--config", str(work.config)], "not a track"),
        (["avatar", "track", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "j")], "none.mp4: no such"),
        (["avatar", "track", str(tmp_path), "-o", str(tmp_path / "k"), "--rig", "procedural"], "68 Multi-PIE"),
        (["avatar", "render", avatar, "--driving", str(video), "-o", str(tmp_path / "l.mp4")], "68 Multi-PIE"),
        (["avatar", "fit", track, "-o", str(work.root), "--config", str(work.config)], "not an empty folder"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main([*args, "-q"]) == 2, args
        assert message in one_line_error(capsys), args
    assert listing(tmp_path) == before


# -- with mediapipe -------------------------------------------------------------------------


def test_track_a_clip_with_masks_and_drive_an_ict_avatar(tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="face landmarks need mediapipe")
    from conftest import example_clip
    from media import make_video

    from reanimate.avatar.tracking import load_tracking, to_crop

    # a video without a face: one line, no track folder
    blank = make_video(tmp_path / "blank.mp4", num_frames=2, size=(64, 64))
    assert main(["avatar", "track", str(blank), "-o", str(tmp_path / "none"), "-q"]) == 2
    assert "blank.mp4: no face found" in one_line_error(capsys)
    assert not (tmp_path / "none").exists()

    clip = example_clip(tmp_path / "clip.mp4", 2)
    with open_frames(clip) as reader:
        width, height = reader.size
    masks = tmp_path / "masks"
    masks.mkdir()
    from PIL import Image

    half = np.zeros((height, width), dtype=np.uint8)
    half[:, : width // 2] = 255  # the left half is "the person"
    for i in range(2):
        Image.fromarray(half).save(masks / f"{i:03d}.png")
    track = tmp_path / "track"
    assert main(["avatar", "track", str(clip), "-o", str(track), "--size", "64", "--masks", str(masks), "-q"]) == 0
    assert "fit error:" in capsys.readouterr().err
    folder = load_tracking(track)
    assert len(folder) == 2 and bool(folder.tracking.visible.all()) and folder.tracking.mean_error_px < 2.0
    middle = to_crop(np.array([[width / 2 - 0.5, 0.0]]), folder.box, 64)[0, 0]
    mask = folder.mask(0)
    columns = np.arange(64)
    inside = (columns < middle - 2) & (columns >= 0)
    assert mask[20:44, inside].min() > 0.99 and mask[20:44, columns > middle + 2].max() < 0.01

    # an ICT avatar, driven by the clip itself
    avatar = tmp_path / "avatar"
    config = write_config(tmp_path / "ict.yaml", rig="ict")
    args = ["avatar", "fit", str(track), "-o", str(avatar), "--config", str(config), "--max-steps", "1"]
    assert main([*args, "--device", "cpu", "-q", "--no-tensorboard"]) == 0
    # the driver's expressions and poses as the same tracker finds them, at the avatar's mean translation
    loaded = pipeline.load_avatar(avatar, "cpu")
    motion = pipeline.video_motion(loaded, clip, progress=False)
    tracked = folder.tracking
    torch.testing.assert_close(motion.frames.expression, tracked.expression)
    torch.testing.assert_close(motion.frames.pose, tracked.pose)
    torch.testing.assert_close(motion.frames.translation, tracked.translation.mean(0).expand(2, 3))
    assert motion.camera == tracked.camera
    out = tmp_path / "driven.mp4"
    args = ["avatar", "render", str(avatar), "--driving", str(clip), "--size", "24", "-o", str(out)]
    assert main([*args, "--device", "cpu", "-q"]) == 0
    assert read_video(out).shape == (2, 24, 24, 3)
    # the procedural tiny track cannot drive it
    capsys.readouterr()
    other = tiny_track(tmp_path / "procedural", frames=2, size=16)
    assert main(["avatar", "render", str(avatar), "--track", str(other), "-o", str(tmp_path / "x.mp4"), "-q"]) == 2
    assert "was tracked with the procedural rig but the avatar uses ict" in one_line_error(capsys)
    assert not (tmp_path / "x.mp4").exists()
