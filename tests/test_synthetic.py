"""Synthetic benchmark: exact ground-truth motion, files on disk, and the flow metrics."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from reanimate.data import synthetic
from reanimate.data.synthetic import (
    SyntheticConfig,
    dataset,
    flow_path,
    load_flow,
    make_synthetic,
    render,
    render_video,
    textures,
)
from reanimate.errors import InputError, ReanimateError
from reanimate.geometry.flow import end_point_error, identity_flow, resize_flow, warp
from reanimate.geometry.grid import coordinate_grid
from reanimate.io import read_image

SMALL = SyntheticConfig(size=40, num_frames=6)
TINY = SyntheticConfig(size=16, num_frames=3, num_train=2, num_test=1, camera_motion_fraction=0.5)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


def _warp_first(frames: np.ndarray, flow: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame 0 warped by each frame's map, and the frames, as (T, 3, H, W) in [0, 1]."""
    images = _to_tensor(frames)
    source = images[:1].expand_as(images)
    return warp(source, torch.from_numpy(flow), padding_mode="border"), images


@pytest.fixture(scope="module")
def videos():
    """(camera_motion, frames, flow, visible) for two small videos, one per camera mode."""
    return {cam: render_video(SMALL, np.random.default_rng(7), camera_motion=cam) for cam in (False, True)}


# --- flow metrics ----------------------------------------------------------------------


def test_end_point_error_of_a_one_pixel_shift_is_one_pixel():
    target = identity_flow(2, 5, 9)
    shifted = target.clone()
    shifted[..., 0] += 2 / (9 - 1)  # one pixel along x
    assert end_point_error(shifted, target).item() == pytest.approx(1.0)
    shifted = target.clone()
    shifted[..., 1] -= 2 / (5 - 1)  # one pixel along y
    assert end_point_error(shifted, target).item() == pytest.approx(1.0)
    # the same normalised error measured at twice the resolution (17 x 9 pixels)
    assert end_point_error(shifted, target, spatial_size=(9, 17)).item() == pytest.approx(2.0)


def test_end_point_error_is_euclidean_and_mask_averages_over_masked_pixels():
    target = identity_flow(1, 3, 3)  # one normalised unit is one pixel here
    flow = target.clone()
    flow[0, 0, 0] += torch.tensor([3.0, 4.0])  # 5 pixels at one pixel, 0 elsewhere
    assert end_point_error(flow, target).item() == pytest.approx(5 / 9)
    mask = torch.zeros(1, 3, 3, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 2, 2] = True
    assert end_point_error(flow, target, mask).item() == pytest.approx(2.5)
    per_pixel = end_point_error(flow, target, reduction="none")
    assert per_pixel.shape == (1, 3, 3) and per_pixel[0, 0, 0].item() == pytest.approx(5.0)
    assert math.isnan(end_point_error(flow, target, torch.zeros(1, 3, 3)).item())


def test_identity_flow_warp_and_resize():
    flow = identity_flow(2, 4, 6)
    assert flow.shape == (2, 4, 6, 2) and torch.equal(flow[1], coordinate_grid((4, 6)))
    image = torch.rand(2, 3, 4, 6)
    assert torch.allclose(warp(image, flow), image, atol=1e-6)
    # an affine map stays the same affine map at any resolution (align_corners=True)
    affine = torch.tensor([[0.9, 0.2], [-0.1, 1.1]])
    small = identity_flow(1, 5, 7) @ affine.T + torch.tensor([0.1, -0.2])
    big = resize_flow(small, (9, 13))
    assert torch.allclose(big, identity_flow(1, 9, 13) @ affine.T + torch.tensor([0.1, -0.2]), atol=1e-6)
    assert resize_flow(small, (5, 7)) is small


# --- rendering ---------------------------------------------------------------------------


def _square_scene(shift: tuple[float, float]):
    """Plain-textured background and one 8x8 square moving by `shift` pixels in frame 1."""
    flat = np.full((4, 4, 3), 0.5, np.float32)
    still = np.eye(3)[None].repeat(2, axis=0)
    moved = still.copy()
    moved[0, :2, 2] = (10.0, 10.0)
    moved[1, :2, 2] = (10.0 + shift[0], 10.0 + shift[1])
    return [render._Layer(flat, 1.0, still), render._Layer(flat * 0 + 1, 1.0, moved, (0.0, 0.0, 4.0, 4.0, 0.0))]


def test_hand_built_scene_has_the_exact_flow_and_visibility():
    _, source, visible = render._render_layers(_square_scene((3.0, -2.0)), 24)
    ys, xs = np.mgrid[0:24, 0:24]
    pixels = np.stack([xs, ys], axis=-1).astype(float)
    in_square = lambda x, y, cx, cy: (np.abs(x - cx) <= 4) & (np.abs(y - cy) <= 4)  # noqa: E731
    square1 = in_square(xs, ys, 13, 8)
    square0 = in_square(xs, ys, 10, 10)
    assert np.array_equal(source[0], pixels) and visible[0].all()
    # on the square, frame 1 samples frame 0 three pixels left and two down; elsewhere the
    # background is static
    assert np.allclose(source[1][square1], pixels[square1] - (3, -2))
    assert np.allclose(source[1][~square1], pixels[~square1])
    # background uncovered by the square's move is not visible in frame 0
    assert np.array_equal(visible[1], ~(square0 & ~square1))


def test_warping_frame_zero_with_the_ground_truth_reproduces_every_frame(videos):
    for camera in (False, True):
        frames, flow, visible = videos[camera]
        warped, images = _warp_first(frames, flow)
        mask = torch.from_numpy(visible)[:, None].expand_as(images)
        error = (warped - images).abs()[mask].mean().item()
        no_motion = (images[:1] - images).abs()[mask].mean().item()
        assert error < 0.03, f"camera={camera}: ground-truth warp error {error:.4f}"
        assert no_motion > 3 * error, f"camera={camera}: {no_motion:.4f} vs {error:.4f}"


def test_frame_zero_map_is_identity_and_visibility_marks_disocclusions(videos):
    frames, flow, visible = videos[False]
    assert frames.shape == (6, 40, 40, 3) and frames.dtype == np.uint8
    assert flow.shape == (6, 40, 40, 2) and flow.dtype == np.float32
    assert visible.shape == (6, 40, 40) and visible.dtype == bool
    assert np.allclose(flow[0], coordinate_grid((40, 40)).numpy(), rtol=0, atol=1e-6) and visible[0].all()
    assert visible.mean() > 0.7
    # Without camera motion the background is static (identity map); where it is not
    # visible, a puppet covered it in frame 0, so frame 0 shows something else there.
    static = np.linalg.norm(flow - flow[:1], axis=-1) < 1e-6
    hidden = static & ~visible
    assert hidden.sum() > 10
    difference = np.abs(frames.astype(int) - frames[:1].astype(int)).mean(axis=-1)
    assert difference[hidden].mean() > 5 * difference[static & visible].mean()


def test_camera_motion_moves_the_background(videos):
    displacement = {}
    for camera in (False, True):
        _, flow, _ = videos[camera]
        pixels = np.linalg.norm(flow[-1] - flow[0], axis=-1) * (40 - 1) / 2
        displacement[camera] = pixels
    # still camera: most pixels (the background) have exactly the identity map
    assert (displacement[False] < 1e-4).mean() > 0.6
    # moving camera: nearly every pixel moves
    assert (displacement[True] > 0.1).mean() > 0.9


def test_same_seed_gives_the_same_video_and_other_seeds_differ():
    first = render_video(SMALL, np.random.default_rng(3))
    again = render_video(SMALL, np.random.default_rng(3))
    other = render_video(SMALL, np.random.default_rng(4))
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_bad_config_is_a_one_line_error():
    with pytest.raises(ReanimateError, match="num_frames"):
        render_video(SyntheticConfig(num_frames=0), np.random.default_rng(0))
    with pytest.raises(ReanimateError, match="part_palette"):
        render_video(SyntheticConfig(part_palette="pastel"), np.random.default_rng(0))


def _mean_hue(texture: np.ndarray) -> float:
    """Circular mean hue (in turns) of an ``(n, n, 3)`` RGB texture, weighted by chroma."""
    r, g, b = np.moveaxis(texture.astype(np.float64), -1, 0)
    # Hue angle from the opponent-colour plane (the usual hexagon approximated by a circle).
    a, c = r - (g + b) / 2, np.sqrt(3) / 2 * (g - b)
    return float(np.angle(np.sum(a + 1j * c)) / (2 * np.pi) % 1.0)


def _hue_spread(hues: list[float]) -> float:
    """Largest circular distance (turns) of the hues from their circular mean."""
    mean = np.angle(np.exp(2j * np.pi * np.array(hues)).mean()) / (2 * np.pi)
    return float(np.max(np.abs((np.array(hues) - mean + 0.5) % 1.0 - 0.5)))


def test_by_part_palette_gives_each_part_kind_one_look():
    heads = [_mean_hue(textures.part_texture(np.random.default_rng(i), "head")) for i in range(8)]
    torsos = [_mean_hue(textures.part_texture(np.random.default_rng(i), "torso")) for i in range(8)]
    anything = [_mean_hue(textures.part_texture(np.random.default_rng(i))) for i in range(8)]
    assert _hue_spread(heads) < 0.1 and _hue_spread(torsos) < 0.1
    assert _hue_spread(anything) > 0.2
    # Heads and torsos are told apart by colour.
    assert abs((np.mean(heads) - np.mean(torsos) + 0.5) % 1.0 - 0.5) > 0.2
    # Whole videos: the same seed renders the same, and "random" stays the default.
    config = dataclasses.replace(SMALL, part_palette="by_part", puppets_per_video=(1, 1))
    first = render_video(config, np.random.default_rng(5))
    assert np.array_equal(first[0], render_video(config, np.random.default_rng(5))[0])
    assert SyntheticConfig().part_palette == "random"


# --- files --------------------------------------------------------------------------------


def test_dataset_layout_on_disk(tmp_path):
    out = make_synthetic(tmp_path / "data", TINY, progress=False)
    assert out == tmp_path / "data"
    assert sorted(p.name for p in out.iterdir()) == ["synthetic.json", "test", "train"]
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "video_00000",
        "video_00000.flow.npz",
        "video_00001",
        "video_00001.flow.npz",
    ]
    video = out / "train" / "video_00001"
    assert sorted(p.name for p in video.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert read_image(video / "00002.png").shape == (16, 16, 3)
    flow, visible = load_flow(video)
    assert flow.shape == (3, 16, 16, 2) and flow.dtype == np.float32
    assert visible.shape == (3, 16, 16) and visible.dtype == bool
    with np.load(flow_path(video)) as data:
        assert data["flow"].dtype == np.float16
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta["format"] == "reanimate-synthetic"
    assert SyntheticConfig.from_dict(meta["config"]) == TINY
    assert [v["name"] for v in meta["videos"]["test"]] == ["video_00000"]
    assert sum(v["camera_motion"] for v in meta["videos"]["train"]) == 1  # 0.5 of 2
    # the files hold exactly the video rendered in memory from (seed, split, index)
    frames, flow_mem, visible_mem = render_video(
        TINY, np.random.default_rng([TINY.seed, 0, 1]), meta["videos"]["train"][1]["camera_motion"]
    )
    assert np.array_equal(read_image(video / "00002.png"), frames[2])
    assert np.allclose(flow, flow_mem, atol=1e-3) and np.array_equal(visible, visible_mem)


def test_same_seed_writes_identical_files(tmp_path):
    first = make_synthetic(tmp_path / "a", TINY, progress=False)
    second = make_synthetic(tmp_path / "b", TINY, progress=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = dataset._write_video

    def failing(folder, video, dtype):
        calls.append(folder)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(folder, video, dtype)

    monkeypatch.setattr(dataset, "_write_video", failing)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic(tmp_path / "data", TINY, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_non_empty_output_unless_overwrite(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    make_synthetic(out, TINY, progress=False)  # an empty folder is fine
    (out / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty"):
        make_synthetic(out, TINY, progress=False)
    assert (out / "mine.txt").exists()
    make_synthetic(out, TINY, progress=False, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "synthetic.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary leftovers
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        make_synthetic(tmp_path / "file", TINY, progress=False, overwrite=True)


def test_flow_path_and_load_flow_errors(tmp_path):
    assert flow_path(tmp_path / "train" / "video_00000") == tmp_path / "train" / "video_00000.flow.npz"
    assert flow_path(tmp_path / "clip.mp4") == tmp_path / "clip.flow.npz"
    with pytest.raises(InputError, match="video_00000.flow.npz: ground-truth flow not found"):
        load_flow(tmp_path / "video_00000")
    (tmp_path / "broken.flow.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="broken.flow.npz: corrupt"):
        load_flow(tmp_path / "broken")
    np.savez(tmp_path / "other.flow.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="other.flow.npz: not a ground-truth flow file"):
        load_flow(tmp_path / "other")


def test_make_synthetic_cli_presets(tmp_path, capsys):
    from reanimate.cli import main

    common = ["--size", "16", "--frames", "2", "--train", "1", "--test", "1", "-q"]
    assert main(["make-synthetic", str(tmp_path / "a"), *common]) == 0
    config = json.loads((tmp_path / "a" / synthetic.METADATA_NAME).read_text())["config"]
    assert config["part_palette"] == "by_part" and config["puppets_per_video"] == [1, 1]
    assert config["limbs_per_puppet"] == [5, 5] and config["size"] == 16
    assert main(["make-synthetic", str(tmp_path / "b"), "--preset", "mixed", *common]) == 0
    config = json.loads((tmp_path / "b" / synthetic.METADATA_NAME).read_text())["config"]
    assert config == {**SyntheticConfig(size=16, num_frames=2, num_train=1, num_test=1).to_dict()}
    with pytest.raises(ReanimateError, match="unknown preset 'nope'"):
        SyntheticConfig.preset("nope")
