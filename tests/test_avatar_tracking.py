"""Tracking (IMavatar's pre-processing): the fit recovers known rig parameters from their
landmarks, its temporal terms steady a noisy sequence, track folders round-trip, the
Multi-PIE map, and (with mediapipe) the selfie segmenter and a whole video."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from reanimate.avatar import tracking as tr
from reanimate.avatar.rig import axis_angle_to_matrix
from reanimate.avatar.rigs.procedural import procedural_rig
from reanimate.errors import InputError
from reanimate.faces.multipie import MEDIAPIPE_68, RIGID_68, to_multipie

FOCAL, SIZE = 600.0, 128
FAST = {"rigid_steps": 100, "steps": 300}
NO_TEMPORAL = {"temporal_pose": 0.0, "temporal_translation": 0.0, "temporal_expression": 0.0}


@pytest.fixture(scope="module")
def rig():
    """The procedural rig with 60 landmarks spread over its front (its own 8 cannot tell
    the chin's expression from the jaw, so no fit could recover those)."""
    rig = procedural_rig(subdivisions=2)
    centres = rig.template[rig.faces].mean(1)
    front = torch.nonzero(centres[:, 2] < -0.15).flatten()
    chosen = front[torch.linspace(0, len(front) - 1, 60).long()]
    return dataclasses.replace(rig, landmark_faces=chosen, landmark_barycentric=torch.full((60, 3), 1 / 3))


def motion(frames: int):
    """Smooth known parameters: shape (2,), expression (T, 3), pose (T, 5, 3), translation (T, 3)."""
    t = torch.linspace(0, 1, frames)
    pose = torch.zeros(frames, 5, 3)
    pose[:, 0] = torch.stack([0.15 * torch.sin(3 * t), 0.3 * torch.sin(2 * t + 0.5), 0.1 * t], -1)
    pose[:, 2, 0] = 0.1 * (1 - torch.cos(4 * t))
    expression = torch.stack([0.5 * (1 - torch.cos(3 * t)), 0.6 * torch.sin(2 * t), 0.3 * t], -1)
    translation = torch.stack([0.1 * torch.sin(2 * t), 0.05 * t, 4.0 + 0.2 * t], -1)
    return torch.tensor([0.5, -0.3]), expression, pose, translation


def observe(rig, shape, expression, pose, translation) -> torch.Tensor:
    points = tr.rig_landmarks(rig, shape.expand(len(pose), -1), expression, pose, translation)
    return tr.project_landmarks(points, torch.tensor(FOCAL), SIZE)


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    relative = axis_angle_to_matrix(a).transpose(-1, -2) @ axis_angle_to_matrix(b)
    cosine = (relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cosine.clamp(-1, 1)))


def jitter(values: torch.Tensor) -> float:
    """Mean norm of the second differences over time."""
    return float((values[2:] - 2 * values[1:-1] + values[:-2]).flatten(1).norm(dim=1).mean())


def test_multipie_map():
    assert len(MEDIAPIPE_68) == 68 and len(set(MEDIAPIPE_68)) == 68
    assert all(0 <= i < 478 for i in MEDIAPIPE_68)
    assert set(RIGID_68) <= set(range(68))
    mesh = np.arange(2 * 478 * 3, dtype=np.float32).reshape(2, 478, 3)
    mapped = to_multipie(mesh)
    assert mapped.shape == (2, 68, 3)
    np.testing.assert_array_equal(mapped[1, 8], mesh[1, 152])  # the chin
    assert torch.equal(to_multipie(torch.from_numpy(mesh)), torch.from_numpy(mapped))


def test_landmark_rig_is_exact(rig):
    small = tr.landmark_rig(rig)
    assert small.num_vertices < rig.num_vertices / 2
    g = torch.Generator().manual_seed(0)
    shape, expression = torch.randn(4, 2, generator=g), torch.randn(4, 3, generator=g)
    pose, translation = 0.3 * torch.randn(4, 5, 3, generator=g), torch.randn(4, 3, generator=g)
    full = tr.rig_landmarks(rig, shape, expression, pose, translation)
    torch.testing.assert_close(tr.rig_landmarks(small, shape, expression, pose, translation), full)


def test_projection_and_crop_mapping():
    points = torch.tensor([[[0.0, 0.0, 2.0], [1.0, -0.5, 2.0]]])
    pixels = tr.project_landmarks(points, torch.tensor(100.0), 64)
    torch.testing.assert_close(pixels, torch.tensor([[[31.5, 31.5], [81.5, 6.5]]]))
    # A 100-pixel box at (10, 20) shrunk to 50: source pixel centres 10.5, 12.5, ... are
    # the centres of crop pixels 0, 1, ...
    box = np.array([10, 20, 110, 120])
    source = np.array([[10.5, 20.5], [12.5, 118.5]])
    np.testing.assert_allclose(tr.to_crop(source, box, 50), [[0, 0], [1, 49]], atol=1e-5)


def test_fit_recovers_known_parameters(rig):
    frames = 12
    shape, expression, pose, translation = motion(frames)
    landmarks = observe(rig, shape, expression, pose, translation)
    visible = torch.ones(frames, dtype=torch.bool)
    landmarks[5], visible[5] = math.nan, False  # a frame without a face
    config = tr.TrackConfig(focal=FOCAL, **FAST)
    fit = tr.fit_tracking(rig, landmarks, SIZE, config, visible)

    assert fit.expression.shape == (frames, 3) and fit.pose.shape == (frames, 5, 3) and fit.shape.shape == (2,)
    assert fit.focal == pytest.approx(FOCAL)
    assert torch.isnan(fit.landmarks_fit_px[5]) and not bool(fit.visible[5])
    assert fit.mean_error_px < 0.5 and float(fit.landmarks_fit_px[visible].max()) < 0.5
    # Every frame, the hidden one included (carried by the temporal terms):
    assert float(angle_deg(fit.pose[:, 0], pose[:, 0]).max()) < 1.5
    assert float(angle_deg(fit.pose[:, 2], pose[:, 2]).max()) < 2.0
    assert (fit.pose[:, [1, 3, 4]] == 0).all()  # neck and eyes are not tracked
    assert float((fit.translation[:, :2] - translation[:, :2]).abs().max()) < 0.01
    assert float(((fit.translation[:, 2] - translation[:, 2]) / translation[:, 2]).abs().max()) < 0.05
    assert float((fit.expression - expression).abs().max()) < 0.3
    assert float((fit.expression - expression).abs().mean()) < 0.1
    # deterministic
    again = tr.fit_tracking(rig, landmarks, SIZE, config, visible)
    assert torch.equal(again.pose, fit.pose) and torch.equal(again.expression, fit.expression)


def test_temporal_terms_steady_a_noisy_sequence(rig):
    frames = 20
    truth = motion(frames)
    noisy = observe(rig, *truth) + torch.randn(frames, 60, 2, generator=torch.Generator().manual_seed(0))
    steady = tr.fit_tracking(rig, noisy, SIZE, tr.TrackConfig(focal=FOCAL, **FAST))
    loose = tr.fit_tracking(rig, noisy, SIZE, tr.TrackConfig(focal=FOCAL, **FAST, **NO_TEMPORAL))
    # (measured: rotation 0.009 vs 0.034, translation 0.004 vs 0.030; the truth's own 0.004 and 0.001)
    assert jitter(steady.pose[:, 0]) < 0.5 * jitter(loose.pose[:, 0])
    assert jitter(steady.translation) < 0.5 * jitter(loose.translation)
    assert jitter(steady.expression) < jitter(loose.expression)
    assert "temporal_pose" in steady.objective and loose.objective["temporal_pose"] == 0


def test_fit_rejects_a_video_without_faces(rig):
    with pytest.raises(InputError, match="no frame"):
        tr.fit_tracking(rig, torch.full((3, 60, 2), math.nan), SIZE, tr.TrackConfig(**FAST))


def _small_tracking(rig) -> tr.Tracking:
    shape, expression, pose, translation = motion(4)
    landmarks = observe(rig, shape, expression, pose, translation)
    return tr.fit_tracking(rig, landmarks, SIZE, tr.TrackConfig(focal=FOCAL, rigid_steps=5, steps=5))


def test_track_folder_round_trip(rig, tmp_path):
    tracking = _small_tracking(rig)
    g = np.random.default_rng(0)
    frames = g.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    masks = g.integers(0, 256, (4, SIZE, SIZE), dtype=np.uint8)
    config = tr.TrackConfig(focal=FOCAL, rigid_steps=5, steps=5, size=SIZE)
    box = np.array([3, 4, 203, 204])
    out = tmp_path / "track"
    tr.save_tracking(out, tracking, iter(frames), masks, box, (300, 400), 25.0, config)
    assert sorted(p.name for p in out.iterdir()) == ["frames", "masks", "track.npz"]

    folder = tr.load_tracking(out)
    assert len(folder) == 4 and folder.config == config and folder.fps == 25.0
    assert folder.source_size == (300, 400) and np.array_equal(folder.box, box)
    loaded = folder.tracking
    for name in ("shape", "expression", "pose", "translation", "landmarks_fit", "visible"):
        assert torch.equal(getattr(loaded, name), getattr(tracking, name)), name
    assert loaded.focal == tracking.focal and loaded.rig_name == "procedural"
    assert loaded.joint_names == rig.joint_names and loaded.objective == tracking.objective
    np.testing.assert_array_equal(folder.frame(2), frames[2])
    np.testing.assert_allclose(folder.mask(3), masks[3] / 255.0, atol=1e-6)
    torch.testing.assert_close(folder.parameters(1)["pose"], tracking.pose[1])
    assert loaded.camera.focal == tracking.focal and loaded.camera.width == SIZE

    # A failed write (one frame short) leaves the old folder and no temporary behind.
    with pytest.raises(InputError, match="4 tracked frames"):
        tr.save_tracking(out, tracking, frames[:3], masks, box, (300, 400), 25.0, config, overwrite=True)
    assert len(tr.load_tracking(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["track"]
    with pytest.raises(InputError, match="not empty"):
        tr.save_tracking(out, tracking, frames, masks, box, (300, 400), 25.0, config)
    with pytest.raises(InputError, match="not a track folder"):
        tr.load_tracking(tmp_path)


def test_config_round_trip_and_checks():
    config = tr.TrackConfig(rigid_landmarks=(1, 2), expression_bounds=(0, 1), focal=500.0)
    assert tr.TrackConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="temporal_pose"):
        tr.TrackConfig(temporal_pose=-1)
    with pytest.raises(ValueError, match="expression_bounds"):
        tr.TrackConfig(expression_bounds=(1, 0))


# -- with mediapipe ------------------------------------------------------------------------


def test_selfie_segmenter_shape_and_range():
    pytest.importorskip("mediapipe", reason="segmentation needs mediapipe")
    from reanimate.avatar.segmentation import SelfieSegmenter

    image = np.full((96, 80, 3), 220, dtype=np.uint8)
    image[20:60, 25:55] = (180, 130, 100)  # a head
    image[60:, 10:70] = (40, 60, 150)  # shoulders
    with SelfieSegmenter() as segment:
        mask = segment(image)
        assert mask.shape == (96, 80) and mask.dtype == np.float32
        assert 0 <= mask.min() and mask.max() <= 1
    with pytest.raises(ValueError, match="closed"):
        segment(image)
    with pytest.raises(ValueError, match="uint8"):
        SelfieSegmenter().__call__(image.astype(np.float32))


def test_track_a_video_to_a_folder(tmp_path):
    pytest.importorskip("mediapipe", reason="face landmarks need mediapipe")
    from conftest import example_clip

    from reanimate.avatar.rigs.ict import ict_rig

    clip = example_clip(tmp_path / "clip.mp4", 6)
    rig = ict_rig()
    config = tr.TrackConfig(rigid_steps=60, steps=120, size=96)
    folder = tr.track_to_folder(clip, tmp_path / "track", rig, config, progress=False)
    tracking = folder.tracking
    assert len(folder) == 6 and bool(tracking.visible.all())
    assert folder.frame(0).shape == (96, 96, 3) and folder.mask(0).shape == (96, 96)
    assert tracking.mean_error_px < 2.0  # on a 96-pixel crop of a real face (measured 0.9)
    assert float(folder.mask(0)[40:60, 40:60].mean()) > 0.5  # the face is foreground
    # ICT-FaceKit's jaw joint (the teeth) follows jawOpen, which the landmarks fit.
    jaw_open = rig.canonical_expression.argmax()
    per_unit = rig.canonical_pose[2] / rig.canonical_expression[jaw_open]
    torch.testing.assert_close(tracking.pose[:, 2], tracking.expression[:, jaw_open, None] * per_unit)
    assert float(tracking.expression.min()) >= 0 and float(tracking.expression.max()) <= 1
