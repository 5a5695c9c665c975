"""The measures of ``benchmarks/heads_gt.py`` on hand-made cases, and the script's baselines
on a tiny ``make-heads`` pairs set (skipped without mediapipe)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _heads_metrics as hm  # noqa: E402
import heads_gt  # noqa: E402

from reanimate.evaluation.metrics import ssim as project_ssim  # noqa: E402
from reanimate.geometry import euler_to_rotation  # noqa: E402


def _frames(seed: int = 0, shape=(2, 32, 40, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _square_mask(shape=(2, 32, 40)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[:, 8:24, 10:30] = True
    return mask


# ---------------------------------------------------------------------------------------
# Pixels


def test_identical_frames_are_perfect():
    frames, mask = _frames(), _square_mask()
    errors = hm.image_errors(frames, frames.copy(), mask)
    np.testing.assert_array_equal(errors["l1"], 0)
    np.testing.assert_array_equal(errors["l1_mask"], 0)
    np.testing.assert_array_equal(errors["psnr"], hm.PSNR_CAP_DB)
    np.testing.assert_array_equal(errors["psnr_mask"], hm.PSNR_CAP_DB)
    np.testing.assert_allclose(errors["ssim"], 1, atol=1e-12)
    np.testing.assert_allclose(errors["ssim_mask"], 1, atol=1e-12)


def test_known_offset_gives_known_l1_and_psnr():
    target = np.full((1, 20, 20, 3), 100, dtype=np.uint8)
    output = target + np.uint8(10)
    assert hm.l1_error(output, target)[0] == pytest.approx(10)
    assert hm.psnr(output, target)[0] == pytest.approx(10 * math.log10(255**2 / 100))


def test_masked_variants_see_only_the_mask():
    target = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    output = target.copy()
    output[:, :, :16] = 40  # left half wrong
    left = np.zeros((1, 32, 32), dtype=bool)
    left[:, :, :16] = True
    assert hm.l1_error(output, target)[0] == pytest.approx(20)
    assert hm.l1_error(output, target, left)[0] == pytest.approx(40)
    assert hm.l1_error(output, target, ~left)[0] == 0
    assert hm.psnr(output, target, ~left)[0] == hm.PSNR_CAP_DB
    assert hm.psnr(output, target, left)[0] == pytest.approx(10 * math.log10(255**2 / 1600))
    assert hm.ssim(output, target, ~left)[0] < 1  # windows centred right of the edge still see it
    right_far = np.zeros_like(left)
    right_far[:, :, 24:] = True  # 8 px away from the edge: windows reach 5 px
    assert hm.ssim(output, target, right_far)[0] == pytest.approx(1)
    assert hm.ssim(output, target, left)[0] < hm.ssim(output, target)[0]
    empty = np.zeros_like(left)
    assert np.isnan(hm.l1_error(output, target, empty)[0])


def test_ssim_map_mean_is_the_project_ssim():
    output, target = _frames(1), _frames(2)
    target[:, 5:20] = output[:, 5:20]
    np.testing.assert_allclose(hm.ssim(output, target), project_ssim(output, target, reduction="none"), atol=1e-5)


# ---------------------------------------------------------------------------------------
# Landmarks


def _face68() -> np.ndarray:
    """A hand-built frontal 68-point face (pixels): eyes 40 px apart at the outer corners,
    each eye 10 px wide and 4 px open, the inner lips 6 px apart."""
    points = np.zeros((68, 2))
    points[0:17] = np.stack([np.linspace(20, 80, 17), 50 + 30 * np.sin(np.linspace(0, np.pi, 17))], 1)
    points[17:27] = np.stack([np.linspace(25, 75, 10), np.full(10, 35)], 1)
    points[27:31] = np.stack([np.full(4, 50), np.linspace(42, 60, 4)], 1)
    points[31:36] = np.stack([np.linspace(44, 56, 5), np.full(5, 63)], 1)
    # Eyes: corner, two upper lid points, corner, two lower lid points (Multi-PIE order).
    points[36:42] = [[30, 45], [33, 43], [37, 43], [40, 45], [37, 47], [33, 47]]
    points[42:48] = [[60, 45], [63, 43], [67, 43], [70, 45], [67, 47], [63, 47]]
    points[48:60] = np.stack([np.linspace(40, 60, 12), np.full(12, 72)], 1)
    points[60:68] = [[42, 72], [46, 69], [50, 69], [54, 69], [58, 72], [54, 75], [50, 75], [46, 75]]
    return points


def test_mouth_and_eye_opening_of_a_hand_built_face():
    face = _face68()
    assert hm.interocular(face) == pytest.approx(40)
    assert hm.mouth_opening(face) == pytest.approx(6 / 40)
    assert hm.eye_opening(face) == pytest.approx(4 / 10)
    closed = face.copy()
    closed[[37, 38, 43, 44]] = closed[[41, 40, 47, 46]]
    closed[[61, 62, 63]] = closed[[67, 66, 65]]
    assert hm.eye_opening(closed) == 0 and hm.mouth_opening(closed) == 0
    # Ratios: the same face twice as large (a nearer camera) reads the same.
    assert hm.mouth_opening(2 * face) == pytest.approx(hm.mouth_opening(face))
    assert hm.eye_opening(2 * face + 7) == pytest.approx(hm.eye_opening(face))


def _face68_3d(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([_face68(), rng.uniform(-5, 5, (68, 1))], axis=1)


def test_identity_drift_ignores_similarity_transforms():
    face = _face68_3d()
    angles = torch.tensor([20.0, -10.0, 5.0], dtype=torch.float64)
    rotation = euler_to_rotation(*angles[:, None])[0].numpy()
    moved = 1.7 * face @ rotation.T + np.array([3.0, -8.0, 2.0])
    np.testing.assert_allclose(hm.identity_drift(moved[None], face[None]), 0, atol=1e-9)
    flat = face[:, :2]
    angle = np.deg2rad(30)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(hm.identity_drift((0.5 * flat @ turn.T + 4)[None], flat[None]), 0, atol=1e-9)


def test_identity_drift_sees_another_shape():
    face = _face68_3d()
    wider = face.copy()
    wider[hm.RIGID_68[:8], 0] = 50 + 1.2 * (wider[hm.RIGID_68[:8], 0] - 50)  # a wider jaw
    drift = hm.identity_drift(np.stack([face, wider]), np.stack([face, face]))
    assert drift[0] == pytest.approx(0, abs=1e-9) and drift[1] > 0.02
    # Non-rigid points (lips) do not count.
    talking = face.copy()
    talking[60:68, 1] += 5
    assert hm.identity_drift(talking[None], face[None])[0] == pytest.approx(0, abs=1e-9)
    nan = np.full_like(face, np.nan)
    assert np.isnan(hm.identity_drift(nan[None], face[None])[0])


def test_landmark_error_and_parts():
    face = _face68()
    shifted = face + [3.0, 4.0]
    assert hm.landmark_error(shifted[None], face[None])[0] == pytest.approx(5)
    lips = face.copy()
    lips[48:68] += [0, 2]
    assert hm.landmark_error(lips, face, hm.PARTS_68["lips"]) == pytest.approx(2)
    assert hm.landmark_error(lips, face, hm.PARTS_68["eyes"]) == 0


def test_mapping_has_68_distinct_mediapipe_points():
    from reanimate.faces.topology import NUM_LANDMARKS, SYMMETRIC_PAIRS

    index = hm.MEDIAPIPE_68
    assert len(index) == 68 and len(set(index)) == 68
    assert all(0 <= i < NUM_LANDMARKS for i in index)
    mirror = dict(SYMMETRIC_PAIRS) | {left: right for right, left in SYMMETRIC_PAIRS}
    # Mirror points of the 68 (jaw 0 <-> 16, eye corners 36 <-> 45, ...) are mirror mesh points
    # wherever topology lists that pair.
    for a, b in ((36, 45), (39, 42), (48, 54), (0, 16), (31, 35)):
        if index[a] in mirror:
            assert mirror[index[a]] == index[b], (a, b)
    landmarks = np.arange(478 * 3, dtype=float).reshape(478, 3)
    assert hm.mesh_to_68(landmarks).shape == (68, 3)


def test_pose_errors_wrap_and_geodesic():
    estimated = np.array([[10.0, 0.0, 179.0], [np.nan, np.nan, np.nan]])
    truth = np.array([[0.0, 0.0, -179.0], [0.0, 0.0, 0.0]])
    absolute, geodesic = hm.pose_errors(estimated, truth)
    np.testing.assert_allclose(absolute[0], [10, 0, 2])
    assert np.isnan(absolute[1]).all() and np.isnan(geodesic[1])
    assert 10 <= geodesic[0] <= 12.1
    _, same = hm.pose_errors(truth[:1], truth[:1])
    assert same[0] == pytest.approx(0, abs=1e-5)


# ---------------------------------------------------------------------------------------
# The script


def test_bad_data_folders_exit_2_with_one_line(tmp_path, capsys):
    cases = [tmp_path / "missing", tmp_path / "plain"]
    (tmp_path / "plain").mkdir()
    nopairs = tmp_path / "nopairs"
    nopairs.mkdir()
    (nopairs / "heads.json").write_text('{"format": "reanimate-heads"}')
    cases.append(nopairs)
    for case in cases:
        assert heads_gt.main(["--data", str(case), "--baselines-only", "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(case) in err and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory) -> Path:
    pytest.importorskip("mediapipe", reason="the landmark measures need mediapipe")
    try:
        from reanimate.heads.dataset import HeadsConfig, make_heads
    except ImportError as exc:  # the renderer is being finished
        pytest.skip(f"make-heads is not available ({exc})")
    out = tmp_path_factory.mktemp("heads") / "set"
    # 24 frames of the stronger "test" motion: in 8 frames the head turns by 1-2 degrees,
    # no more than the pose estimator's own frame-to-frame noise (about 1 degree).
    config = HeadsConfig(size=128, frames=24, train=0, test=0, pairs=1, pairs_profile="test")
    return make_heads(out, config, progress=False)


def test_baselines_on_a_tiny_pairs_set(tiny_pairs):
    folders = heads_gt.pair_folders(tiny_pairs)
    result = heads_gt.evaluate_pairs(folders, progress=False)
    rows = heads_gt.summarise(result)
    still, driver, floor = rows["still"], rows["driver"], rows["target"]
    assert still["identity"] < driver["identity"]  # right identity, wrong motion
    assert driver["motion"] < still["motion"]  # right motion, wrong identity
    assert floor["l1"] == 0 and floor["psnr"] == hm.PSNR_CAP_DB and floor["ssim"] == pytest.approx(1)
    assert floor["detected"] == 1 and floor["identity"] == pytest.approx(0, abs=1e-9)
    assert floor["landmarks"] < min(still["landmarks"], driver["landmarks"])
    assert still["l1"] < driver["l1"]
    table = heads_gt.format_table(rows, [])
    assert "still source" in table and "target (floor)" in table
