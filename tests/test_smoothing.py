"""Temporal keypoint smoothing against hand-computed cases."""

import math

import pytest
import torch

from reanimate.errors import ReanimateError
from reanimate.motion import Keypoints
from reanimate.smoothing import (
    JitterMeter,
    KalmanFilter,
    KeypointSmoother,
    OneEuroFilter,
    jitter_score,
    make_smoother,
)


def alpha(cutoff, fps):
    # Casiez et al. 2012: alpha = 1 / (1 + tau / T_e), tau = 1 / (2 pi f_c), T_e = 1 / fps.
    tau = 1 / (2 * math.pi * cutoff)
    return 1 / (1 + tau * fps)


def run(filt, signal):
    return torch.stack([filt(x) for x in signal])


def noisy_static_keypoints(frames=300, k=10, sigma=0.005, seed=0):
    g = torch.Generator().manual_seed(seed)
    rest = torch.rand(1, k, 2, generator=g) * 2 - 1
    return rest + sigma * torch.randn(frames, k, 2, generator=g)


def test_one_euro_first_step_by_hand():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.1, d_cutoff=1.0, fps=30.0)
    assert f(torch.tensor([0.0])).item() == 0.0  # the first sample passes unchanged
    # Second sample 1.0: speed 30 units/s, filtered speed alpha(1 Hz) * 30, cutoff
    # 1 + 0.1 * that, output alpha(cutoff) * 1.0.
    speed = alpha(1.0, 30) * 30.0
    expected = alpha(1.0 + 0.1 * speed, 30)
    assert f(torch.tensor([1.0])).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.24142, abs=1e-5)


def test_one_euro_without_beta_is_exponential_smoothing():
    f = OneEuroFilter(min_cutoff=2.0, beta=0.0, fps=25.0)
    a = alpha(2.0, 25)
    out = run(f, torch.tensor([[0.0], [1.0], [1.0], [1.0]]))
    expected = [0.0, a, a + a * (1 - a), 1 - (1 - a) ** 3]
    assert out.squeeze(1).tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("filt", [OneEuroFilter(beta=5.0), KalmanFilter(0.01, 1e-4, 30.0)])
def test_constant_input_stays_constant(filt):
    x = torch.tensor([[0.25, -0.5], [0.75, 1.0]])
    for _ in range(20):
        assert torch.allclose(filt(x), x, atol=1e-7)


@pytest.mark.parametrize("method", ["one-euro", "kalman"])
def test_noisy_static_keypoints_lose_most_jitter(method):
    values = noisy_static_keypoints()
    smoothed = KeypointSmoother(method, fps=30.0)(Keypoints(values)).value
    # Skip the first second while the filter settles.
    before, after = jitter_score(values[30:]), jitter_score(smoothed[30:])
    assert after < before / (4 if method == "one-euro" else 2)


def test_ramp_is_followed_with_bounded_lag_when_beta_is_positive():
    fps, speed, min_cutoff = 30.0, 0.5, 0.5
    ramp = (torch.arange(120, dtype=torch.float64) * speed / fps).unsqueeze(1)
    lags = {}
    for beta in (0.0, 20.0):
        out = run(OneEuroFilter(min_cutoff=min_cutoff, beta=beta, fps=fps), ramp)
        lags[beta] = (ramp[-1] - out[-1]).item()
        # At steady state the output rises by v / fps per frame, so a (x_t - y_{t-1}) =
        # v / fps and the lag x_t - y_t is (v / fps) (1 - a) / a. The speed estimate,
        # (x_t - y_{t-1}) fps = v / a, sets a = alpha(min_cutoff + beta v / a): a fixed point.
        a = alpha(min_cutoff, fps)
        for _ in range(100):
            a = alpha(min_cutoff + beta * speed / a, fps)
        assert lags[beta] == pytest.approx(speed / fps * (1 - a) / a, rel=1e-3)
    assert lags[20.0] < 0.01  # under 1.3 px on a 256 px frame
    assert lags[0.0] > 10 * lags[20.0]


def test_kalman_converges_on_constant_velocity():
    fps, velocity = 25.0, torch.tensor([0.3, -0.8])
    f = KalmanFilter(process_noise=0.01, measurement_noise=1e-4, fps=fps)
    start = torch.tensor([-0.5, 0.6])
    for t in range(100):
        truth = start + velocity * t / fps
        out = f(truth)
    assert torch.allclose(out, truth, atol=1e-5)
    assert torch.allclose(f.v, velocity, atol=1e-3)


def test_kalman_averages_noise_on_a_moving_point():
    g = torch.Generator().manual_seed(1)
    fps, t = 30.0, torch.arange(300, dtype=torch.float32) / 30.0
    truth = (0.2 * t - 0.3).unsqueeze(1)
    measured = truth + 0.005 * torch.randn(300, 1, generator=g)
    out = run(KalmanFilter(process_noise=0.005, measurement_noise=2.5e-5, fps=fps), measured)
    error_in = (measured - truth)[60:].abs().mean()
    error_out = (out - truth)[60:].abs().mean()
    assert error_out < 0.6 * error_in


def keypoints_with_jacobians(frames=12, k=3, seed=2):
    g = torch.Generator().manual_seed(seed)
    value = torch.rand(frames, k, 2, generator=g) * 2 - 1
    jacobian = torch.eye(2) + 0.1 * torch.randn(frames, k, 2, 2, generator=g)
    return Keypoints(value, jacobian)


@pytest.mark.parametrize("method", ["one-euro", "kalman"])
def test_state_carries_across_batches(method):
    kp = keypoints_with_jacobians()
    whole = KeypointSmoother(method, fps=25.0)(kp)
    smoother = KeypointSmoother(method, fps=25.0)
    ones = Keypoints.cat([smoother(kp[i]) for i in range(kp.batch_size)])
    smoother.reset()
    fours = Keypoints.cat([smoother(kp[i : i + 4]) for i in range(0, kp.batch_size, 4)])
    for result in (ones, fours):
        assert torch.equal(result.value, whole.value)
        assert torch.equal(result.jacobian, whole.jacobian)
    assert not torch.equal(whole.value, kp.value)  # it did smooth


def test_jacobians_are_smoothed_too():
    g = torch.Generator().manual_seed(3)
    jacobian = torch.eye(2) + 0.005 * torch.randn(200, 4, 2, 2, generator=g)
    kp = Keypoints(noisy_static_keypoints(200, 4), jacobian)
    out = KeypointSmoother("one-euro", fps=30.0)(kp)
    flat = lambda j: j.reshape(len(j), -1, 4)  # noqa: E731  (T, K, 2, 2) -> (T, K, 4)
    assert jitter_score(flat(out.jacobian[30:])) < jitter_score(flat(jacobian[30:])) / 3.5
    assert KeypointSmoother(fps=30.0)(Keypoints(kp.value)).jacobian is None


def test_jitter_score_by_hand():
    # One keypoint at x = 0, 1, 4, 9 (t^2): every second difference is 2.
    assert jitter_score(torch.tensor([[[0.0]], [[1.0]], [[4.0]], [[9.0]]])) == 2.0
    # Two keypoints, D = 2: accelerations (3, 4) -> 5 and (0, 0) -> 0; mean 2.5.
    values = torch.zeros(3, 2, 2)
    values[1, 0] = torch.tensor([-1.5, -2.0])
    assert jitter_score(values) == pytest.approx(2.5)
    assert math.isnan(jitter_score(torch.zeros(2, 1, 2)))


def test_jitter_meter_streams_the_same_score():
    values = noisy_static_keypoints(23, 5)
    meter = JitterMeter()
    assert math.isnan(meter.score)
    start = 0
    for size in (1, 1, 4, 2, 7, 1, 3, 4):  # batches of 1 at the start: no full triple yet
        meter.update(values[start : start + size])
        start += size
    assert start == len(values)
    assert meter.score == pytest.approx(jitter_score(values), rel=1e-12)


def test_make_smoother_names():
    assert make_smoother("one-euro", 30.0).method == "one-euro"
    assert make_smoother("Kalman", 25.0).method == "kalman"
    assert make_smoother("none", 25.0) is None and make_smoother(None, 25.0) is None
    with pytest.raises(ReanimateError, match="--smooth gauss: unknown smoothing method.*one-euro, kalman"):
        make_smoother("gauss", 30.0)
    with pytest.raises(ReanimateError, match="unknown parameter gamma"):
        make_smoother("one-euro", 30.0, gamma=1.0)
