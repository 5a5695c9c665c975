"""Evaluation metrics against constructed cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reanimate.evaluation.metrics import (
    PoseDifference,
    average_keypoint_distance,
    cosine_similarity,
    identity_distance,
    jitter,
    l1,
    missing_keypoint_rate,
    ms_ssim_score,
    pose_difference,
    psnr,
    ssim,
)
from reanimate.smoothing import jitter_score


def random_video(frames=3, height=24, width=20, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (frames, height, width, channels))


# --------------------------------------------------------------------------------------
# L1
# --------------------------------------------------------------------------------------


def test_l1_of_a_constant_offset_is_the_offset():
    real = random_video() * 0.8
    assert l1(real + 0.125, real) == pytest.approx(0.125, abs=1e-12)
    assert l1(real, real) == 0.0


def test_l1_scales_uint8_and_keeps_per_frame_values():
    real = np.full((2, 4, 5, 3), 100, dtype=np.uint8)
    generated = real.copy()
    generated[1] += 51  # 51 / 255 = 0.2 in frame 1 only
    per_frame = l1(generated, real, reduction="none")
    assert per_frame.shape == (2,)
    assert per_frame == pytest.approx([0.0, 0.2])
    assert l1(generated, real) == pytest.approx(0.1)
    # uint8 against the same frames as float in [0, 1], and torch tensors.
    assert l1(generated, real.astype(np.float64) / 255) == pytest.approx(0.1)
    assert l1(torch.from_numpy(generated), torch.from_numpy(real)) == pytest.approx(0.1)


def test_l1_of_a_single_image_and_nested_leading_dimensions():
    real = random_video(frames=6).reshape(2, 3, 24, 20, 3)
    generated = real.copy()
    generated[1, 2] += 0.3
    assert l1(generated, real, reduction="none").shape == (2, 3)
    assert l1(generated[0, 0], real[0, 0]) == 0.0
    assert l1(generated[1, 2], real[1, 2], reduction="none").shape == ()


# --------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------


def test_psnr_of_an_offset_of_0_1_is_20_db():
    real = random_video() * 0.5
    assert psnr(real + 0.1, real) == pytest.approx(20.0, abs=1e-9)  # MSE 0.01
    assert psnr(real - 0.1, real, reduction="none") == pytest.approx([20.0] * 3, abs=1e-9)


def test_psnr_of_identical_frames_is_inf():
    real = random_video()
    assert psnr(real, real) == math.inf
    generated = real.copy()
    generated[0] += 0.01  # MSE 1e-4: 40 dB
    per_frame = psnr(generated, real, reduction="none")
    assert per_frame[0] == pytest.approx(40.0)
    assert np.isinf(per_frame[1:]).all()


def test_psnr_data_range():
    real = random_video() * 0.5
    assert psnr((real + 0.1) * 255, real * 255, data_range=255.0) == pytest.approx(20.0)
    # uint8 is scaled to [0, 1]: a data_range of 255 would silently be wrong.
    frames = (real * 255).astype(np.uint8)
    with pytest.raises(ValueError, match="data_range"):
        psnr(frames, frames, data_range=255.0)


# --------------------------------------------------------------------------------------
# SSIM and MS-SSIM
# --------------------------------------------------------------------------------------


def direct_ssim(x: np.ndarray, y: np.ndarray, size=11, sigma=1.5, data_range=1.0) -> float:
    """SSIM of two (H, W, C) images straight from Wang et al. (2004): Gaussian-weighted local
    statistics at every window position inside the image, averaged over positions and channels."""
    offsets = np.arange(size) - (size - 1) / 2
    g = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    w = g / g.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for c in range(x.shape[2]):
        for i in range(x.shape[0] - size + 1):
            for j in range(x.shape[1] - size + 1):
                a, b = x[i : i + size, j : j + size, c], y[i : i + size, j : j + size, c]
                mu_a, mu_b = (w * a).sum(), (w * b).sum()
                var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
                cov = (w * (a - mu_a) * (b - mu_b)).sum()
                values.append(
                    (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
                )
    return float(np.mean(values))


def test_ssim_of_identical_images_is_1():
    video = random_video()
    assert ssim(video, video) == pytest.approx(1.0, abs=1e-12)
    assert ssim(video, video, reduction="none") == pytest.approx([1.0] * 3, abs=1e-12)


def test_ssim_of_flat_images_is_the_luminance_term():
    # No variance: SSIM = (2 a b + C1) / (a^2 + b^2 + C1) at every position.
    a, b = np.full((16, 16, 3), 0.5), np.full((16, 16, 3), 0.25)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1), rel=1e-12)


def test_ssim_matches_a_direct_implementation_of_the_formula():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (14, 13, 2))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    assert ssim(x, y) == pytest.approx(direct_ssim(x, y), rel=1e-10)
    assert ssim(x * 4, y * 4, data_range=4.0) == pytest.approx(direct_ssim(x, y), rel=1e-10)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics", reason="the reference is scikit-image (the test extra)")
    x = random_video(frames=1)[0]
    y = np.clip(x + np.random.default_rng(2).normal(0, 0.1, x.shape), 0, 1)
    expected = metrics.structural_similarity(
        x, y, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(x, y) == pytest.approx(expected, rel=1e-9)


def test_ssim_is_symmetric_and_drops_with_noise():
    rng = np.random.default_rng(3)
    x = random_video(frames=1, height=32, width=32)[0]
    noise = rng.normal(0, 1, x.shape)
    slightly, very = np.clip(x + 0.05 * noise, 0, 1), np.clip(x + 0.3 * noise, 0, 1)
    assert ssim(x, slightly) == pytest.approx(ssim(slightly, x), rel=1e-12)
    assert 1.0 > ssim(x, slightly) > ssim(x, very)


def test_ssim_of_uint8_frames():
    x = (random_video(frames=2) * 255).astype(np.uint8)
    y = np.clip(x.astype(int) + 20, 0, 255).astype(np.uint8)
    assert ssim(x, y) == pytest.approx(ssim(x / 255.0, y / 255.0), rel=1e-12)


def test_single_scale_ms_ssim_is_ssim():
    # Under 21 px MS-SSIM has one scale, and so is SSIM with the same conventions.
    x = random_video(frames=2, height=16, width=18)
    y = np.clip(x + 0.1 * np.random.default_rng(4).normal(0, 1, x.shape), 0, 1)
    assert ms_ssim_score(x, y, reduction="none") == pytest.approx(ssim(x, y, reduction="none"), rel=1e-10)
    # and below the window size both shrink the window the same way.
    assert ms_ssim_score(x[:, :7, :9], y[:, :7, :9]) == pytest.approx(ssim(x[:, :7, :9], y[:, :7, :9]), rel=1e-10)


def test_ms_ssim_of_identical_images_is_1_and_drops_with_noise():
    x = random_video(frames=2, height=48, width=48)
    noise = np.random.default_rng(5).normal(0, 1, x.shape)
    assert ms_ssim_score(x, x) == pytest.approx(1.0, abs=1e-9)
    assert 1.0 > ms_ssim_score(x, np.clip(x + 0.05 * noise, 0, 1)) > ms_ssim_score(x, np.clip(x + 0.3 * noise, 0, 1))
    frames = (x * 255).astype(np.uint8)
    assert ms_ssim_score(torch.from_numpy(frames), torch.from_numpy(frames), reduction="none") == pytest.approx([1, 1])


def test_ssim_rejects_images_under_3_pixels():
    with pytest.raises(ValueError, match="3x3"):
        ssim(np.zeros((2, 8, 3)), np.zeros((2, 8, 3)))


@pytest.mark.parametrize("metric", [l1, psnr, ssim, ms_ssim_score])
def test_image_metrics_reject_mismatched_shapes_and_bad_reduction(metric):
    with pytest.raises(ValueError, match="same shape"):
        metric(np.zeros((2, 16, 16, 3)), np.zeros((2, 16, 15, 3)))
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, C\)"):
        metric(np.zeros((16, 16)), np.zeros((16, 16)))
    with pytest.raises(ValueError, match="reduction"):
        metric(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)), reduction="sum")


# --------------------------------------------------------------------------------------
# AKD and MKR
# --------------------------------------------------------------------------------------


def landmarks(frames=4, k=5, seed=0):
    return np.random.default_rng(seed).uniform(0, 256, (frames, k, 2))


def test_akd_of_a_3_4_shift_is_5_pixels():
    real = landmarks()
    assert average_keypoint_distance(real + [3.0, 4.0], real) == pytest.approx(5.0)
    assert average_keypoint_distance(real[0] + [3.0, 4.0], real[0]) == pytest.approx(5.0)  # (K, 2)
    assert average_keypoint_distance(real, real) == 0.0
    # FOMM's scripts average |dx| and |dy| instead.
    assert average_keypoint_distance(real + [3.0, 4.0], real, distance="mean_abs") == pytest.approx(3.5)


def test_akd_excludes_missing_keypoints():
    real = landmarks(frames=2, k=3)
    generated = real + [3.0, 4.0]
    generated[0, 1] += 100.0  # far off, but missing in the real frame below
    real_visible = np.array([[True, False, True], [True, True, True]])
    assert average_keypoint_distance(generated, real, real_visible=real_visible) == pytest.approx(5.0)
    # NaN coordinates mark missing keypoints too, in either input.
    generated[0, 1] = np.nan
    assert average_keypoint_distance(generated, real) == pytest.approx(5.0)
    assert average_keypoint_distance(real, generated, generated_visible=np.ones((2, 3), bool)) == pytest.approx(5.0)


def test_akd_weights_frames_equally():
    real = np.zeros((2, 2, 2))
    generated = np.array([[[3.0, 4.0], [np.nan, np.nan]], [[1.0, 0.0], [0.0, 1.0]]])
    # frame 0: one keypoint at 5 px; frame 1: two at 1 px -> (5 + 1) / 2, not (5 + 1 + 1) / 3.
    assert average_keypoint_distance(generated, real) == pytest.approx(3.0)
    assert average_keypoint_distance(generated, real, reduction="none") == pytest.approx([5.0, 1.0])


def test_akd_is_nan_when_nothing_is_comparable():
    real = landmarks(frames=2, k=3)
    none_visible = np.zeros((2, 3), bool)
    assert math.isnan(average_keypoint_distance(real, real, real_visible=none_visible))
    per_frame = average_keypoint_distance(
        real, real, generated_visible=np.array([[1, 1, 1], [0, 0, 0]]), reduction="none"
    )
    assert per_frame[0] == 0.0 and math.isnan(per_frame[1])


def test_akd_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        average_keypoint_distance(landmarks(k=5), landmarks(k=4))
    with pytest.raises(ValueError, match="real_visible"):
        average_keypoint_distance(landmarks(), landmarks(), real_visible=np.ones((4, 4), bool))


def test_mkr_of_a_hand_made_pattern():
    real_visible = np.array([True, True, True, True, False])  # 4 of 5 visible
    generated_visible = np.array([True, False, True, True, True])  # misses 1 of those 4
    assert missing_keypoint_rate(generated_visible, real_visible) == pytest.approx(0.25)
    # A keypoint missing in the real frame never counts.
    assert missing_keypoint_rate(np.array([1, 1, 1, 1, 0]), real_visible) == 0.0


def test_mkr_averages_frames_with_visible_real_keypoints():
    real_visible = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
    generated_visible = np.array([[1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 1, 1]], bool)
    per_frame = missing_keypoint_rate(generated_visible, real_visible, reduction="none")
    assert per_frame[:2] == pytest.approx([0.25, 1.0]) and math.isnan(per_frame[2])
    assert missing_keypoint_rate(generated_visible, real_visible) == pytest.approx(0.625)
    assert math.isnan(missing_keypoint_rate(generated_visible[2:], real_visible[2:]))
    with pytest.raises(ValueError, match="same shape"):
        missing_keypoint_rate(generated_visible, real_visible[:, :3])


# --------------------------------------------------------------------------------------
# AED and CSIM
# --------------------------------------------------------------------------------------


def test_identity_metrics_of_identical_and_orthogonal_embeddings():
    rng = np.random.default_rng(6)
    embeddings = rng.normal(size=(5, 128))
    assert identity_distance(embeddings, embeddings) == pytest.approx(np.zeros(5))
    assert cosine_similarity(embeddings, embeddings) == pytest.approx(np.ones(5))
    a, b = np.eye(128)[0], np.eye(128)[1]
    assert cosine_similarity(a, b) == 0.0
    assert cosine_similarity(a, -2 * a) == pytest.approx(-1.0)
    assert identity_distance(a, b) == pytest.approx(math.sqrt(2))
    assert identity_distance([0.0, 3.0], [4.0, 0.0]) == pytest.approx(5.0)
    assert identity_distance([0.0, 3.0], [4.0, 0.0], distance="mean_abs") == pytest.approx(3.5)


def test_identity_metrics_broadcast_a_source_embedding():
    frames = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    source = torch.tensor([1.0, 0.0])
    assert cosine_similarity(frames, source) == pytest.approx([1.0, 0.0, math.sqrt(0.5)])
    assert identity_distance(frames, source) == pytest.approx([0.0, math.sqrt(2), 1.0])
    assert math.isnan(cosine_similarity([0.0, 0.0], [1.0, 0.0]))
    with pytest.raises(ValueError, match="same D"):
        identity_distance(np.zeros((3, 128)), np.zeros((3, 64)))
    with pytest.raises(ValueError, match="broadcast"):
        cosine_similarity(np.ones((3, 8)), np.ones((2, 8)))


# --------------------------------------------------------------------------------------
# APD
# --------------------------------------------------------------------------------------


def test_apd_per_angle_and_wrap_around():
    real = np.array([[179.0, 10.0, -5.0], [-90.0, 0.0, 30.0]])
    generated = np.array([[-179.0, 13.0, -5.0], [-80.0, -6.0, 30.0]])
    result = pose_difference(generated, real)
    assert isinstance(result, PoseDifference)
    assert result.yaw == pytest.approx((2 + 10) / 2)  # 179 vs -179 is 2 degrees
    assert result.pitch == pytest.approx((3 + 6) / 2)
    assert result.roll == 0.0
    assert result.mean == pytest.approx((6 + 4.5 + 0) / 3)
    assert pose_difference([0.0, 0.0, 180.0], [0.0, 0.0, -180.0]).roll == 0.0
    assert pose_difference([0.0, 0.0, 90.0], [0.0, 0.0, -90.0]).roll == 180.0


def test_apd_of_identical_poses_and_missing_frames():
    real = np.random.default_rng(7).uniform(-60, 60, (6, 3))
    assert pose_difference(real, real) == (0.0, 0.0, 0.0, 0.0)
    generated = real + [1.0, 2.0, 3.0]
    generated[2, 0] = np.nan  # no head found: the frame is skipped
    assert pose_difference(generated, real) == pytest.approx((1.0, 2.0, 3.0, 2.0))
    assert all(math.isnan(v) for v in pose_difference(np.full((2, 3), np.nan), real[:2]))
    with pytest.raises(ValueError, match="yaw, pitch, roll"):
        pose_difference(np.zeros((4, 2)), np.zeros((4, 2)))


# --------------------------------------------------------------------------------------
# Jitter
# --------------------------------------------------------------------------------------


def test_jitter_of_constant_velocity_is_0():
    t = np.arange(10.0)[:, None, None]
    trajectory = np.array([[10.0, 20.0], [50.0, 5.0]]) + t * np.array([[1.5, -2.0], [0.0, 3.0]])
    assert jitter(trajectory) == pytest.approx(0.0, abs=1e-12)


def test_jitter_of_a_single_bump():
    # One landmark at rest, displaced by (3, 4) in frame 2 of 5: second differences
    # (3, 4), (-6, -8), (3, 4) at frames 1-3 -> norms 5, 10, 5 -> mean 20 / 3 px/frame^2.
    trajectory = np.zeros((5, 1, 2))
    trajectory[2, 0] = [3.0, 4.0]
    assert jitter(trajectory) == pytest.approx(20 / 3)
    # With a second, still landmark the mean is over both: 20 / 6.
    assert jitter(np.concatenate([trajectory, np.zeros((5, 1, 2))], axis=1)) == pytest.approx(20 / 6)


def test_jitter_skips_triples_with_a_missing_frame():
    trajectory = np.zeros((6, 1, 2))
    trajectory[2, 0] = [3.0, 4.0]
    visible = np.ones((6, 1), bool)
    # Second differences centred on frames 1-4 have norms 5, 10, 5, 0; frame 4 missing
    # drops the triples centred on 3 and 4, which include it.
    visible[4, 0] = False
    assert jitter(trajectory, visible) == pytest.approx((5 + 10) / 2)
    trajectory[4, 0] = np.nan
    assert jitter(trajectory) == pytest.approx((5 + 10) / 2)
    assert math.isnan(jitter(trajectory[:2]))
    assert math.isnan(jitter(trajectory, np.zeros((6, 1), bool)))


def test_jitter_equals_the_smoothing_modules_jitter_score():
    values = landmarks(frames=12, k=7, seed=8)
    assert jitter(values) == pytest.approx(jitter_score(values), rel=1e-12)
    assert jitter(torch.from_numpy(values)) == pytest.approx(jitter_score(values), rel=1e-12)
    with pytest.raises(ValueError, match=r"\(T, K, D\)"):
        jitter(values[0])
