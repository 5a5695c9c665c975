"""Random head motion for synthetic talking heads (reanimate.heads.trajectories)."""

from __future__ import annotations

import numpy as np
import pytest

from reanimate.errors import ReanimateError
from reanimate.heads.trajectories import (
    BLINK_CHANNELS,
    EPISODES,
    EXPRESSION_NAMES,
    GAZE_CHANNELS,
    PROFILES,
    SPEECH_CHANNELS,
    HeadTrajectory,
    MotionProfile,
    neutral_trajectory,
    sample_trajectory,
)

FPS = 25.0
IDX = {n: i for i, n in enumerate(EXPRESSION_NAMES)}


def sample(seed: int, profile="train", frames: int = 250, fps: float = FPS) -> HeadTrajectory:
    return sample_trajectory(np.random.default_rng(seed), frames, fps, profile)


def channel(traj: HeadTrajectory, name: str) -> np.ndarray:
    return traj.expression[:, IDX[name]]


def test_expression_names_and_episode_patterns():
    assert len(EXPRESSION_NAMES) == 53 == len(set(EXPRESSION_NAMES))
    assert EXPRESSION_NAMES[0] == "browDown_L" and EXPRESSION_NAMES[26] == "jawOpen"
    assert EXPRESSION_NAMES[-1] == "noseSneer_R"
    for pattern in EPISODES.values():
        assert set(pattern) <= set(EXPRESSION_NAMES)
        assert all(0.0 < w <= 1.0 for w in pattern.values())
    assert set(PROFILES["train"].episodes) == {"smile", "frown", "surprise"}
    assert set(PROFILES["test"].episodes) == set(EPISODES)


def test_same_seed_same_arrays():
    a, b, c = sample(3, "test"), sample(3, "test"), sample(4, "test")
    for key, value in a.to_arrays().items():
        np.testing.assert_array_equal(value, b.to_arrays()[key])
    assert not np.array_equal(a.yaw, c.yaw)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_bounds_of_each_profile(name):
    p = PROFILES[name]
    for seed in range(5):
        t = sample(seed, name)
        assert len(t) == 250 and t.expression.dtype == np.float32 and t.expression.shape == (250, 53)
        eps = 1e-4
        assert np.abs(t.yaw).max() <= p.yaw + eps
        assert np.abs(t.pitch).max() <= p.pitch + eps
        assert np.abs(t.roll).max() <= p.roll + eps
        assert np.abs(t.scale - 1).max() <= p.scale + eps
        assert np.abs(t.translation[:, :2]).max() <= p.translation + eps
        assert np.abs(t.translation[:, 2]).max() <= p.depth + eps
        assert np.abs(t.gaze).max() <= p.gaze + eps
        assert t.expression.min() >= 0.0 and t.expression.max() <= 1.0
        episode_only = [i for n, i in IDX.items() if n not in SPEECH_CHANNELS + BLINK_CHANNELS + GAZE_CHANNELS]
        assert t.expression[:, episode_only].max() <= p.expression_strength + eps
        assert channel(t, "jawOpen").max() <= max(p.speech, p.expression_strength) + eps


def test_frame0_is_a_natural_start():
    for name in PROFILES:
        for seed in range(5):
            first = sample(seed, name).frame(0)
            # neutral but for the lid shapes that follow the gaze; eyes open, mouth closed
            assert first["expression"][[i for n, i in IDX.items() if n not in GAZE_CHANNELS]].max() == 0.0
            assert first["expression"].max() <= 0.5


def test_test_profile_moves_more_than_train():
    def amplitude(name):
        clips = [sample(seed, name, frames=125) for seed in range(20)]
        return np.mean([[np.abs(c.yaw).max(), np.abs(c.pitch).max(), np.abs(c.roll).max()] for c in clips], axis=0)

    train, test = amplitude("train"), amplitude("test")
    assert np.all(test > train * 1.2)
    # the bounds are reached, not just respected: a fair share of clips comes near them
    near = [np.abs(sample(seed, "train").yaw).max() > 0.8 * PROFILES["train"].yaw for seed in range(20)]
    assert np.mean(near) >= 0.4


def test_subject_test_has_expressions_unseen_in_subject_train():
    other = set(SPEECH_CHANNELS + BLINK_CHANNELS + GAZE_CHANNELS)

    def active(name):
        peaks = np.max([sample(seed, name, frames=200).expression.max(0) for seed in range(10)], axis=0)
        return {n for n, v in zip(EXPRESSION_NAMES, peaks) if v > 0.02 and n not in other}

    seen, unseen = active("subject_train"), active("subject_test")
    assert seen <= set(EPISODES["smile"])
    assert {"noseSneer_L", "eyeWide_L", "browDown_R", "cheekPuff_L", "mouthFrown_R"} <= unseen - seen
    assert not set(PROFILES["subject_test"].episodes) & set(PROFILES["subject_train"].episodes)


def test_mirrored_swaps_sides_and_is_an_involution():
    t = sample(1, "test")
    m = t.mirrored()
    np.testing.assert_array_equal(m.yaw, -t.yaw)
    np.testing.assert_array_equal(m.roll, -t.roll)
    np.testing.assert_array_equal(m.pitch, t.pitch)
    np.testing.assert_array_equal(m.translation[:, 0], -t.translation[:, 0])
    np.testing.assert_array_equal(m.translation[:, 1:], t.translation[:, 1:])
    np.testing.assert_array_equal(m.gaze[:, 0], -t.gaze[:, 0])
    for a, b in (("eyeBlink_L", "eyeBlink_R"), ("mouthSmile_L", "mouthSmile_R"), ("jawLeft", "jawRight")):
        np.testing.assert_array_equal(channel(m, a), channel(t, b))
    for a, b in (("mouthLeft", "mouthRight"), ("eyeLookIn_L", "eyeLookIn_R"), ("eyeLookOut_R", "eyeLookOut_L")):
        np.testing.assert_array_equal(channel(m, a), channel(t, b))
    np.testing.assert_array_equal(channel(m, "jawOpen"), channel(t, "jawOpen"))
    twice = m.mirrored()
    for key, value in t.to_arrays().items():
        np.testing.assert_array_equal(twice.to_arrays()[key], value)


@pytest.mark.parametrize("mirror", [False, True])
def test_lid_shapes_follow_gaze(mirror):
    t = sample(2, "test", frames=500)
    t = t.mirrored() if mirror else t
    right, down = t.gaze[:, 0] > 3, t.gaze[:, 1] < -3  # toward the image's right = the subject's left
    assert right.any() and down.any()
    assert np.all(channel(t, "eyeLookOut_L")[right] > 0) and np.all(channel(t, "eyeLookIn_R")[right] > 0)
    assert np.all(channel(t, "eyeLookIn_L")[right] == 0)
    assert np.all(channel(t, "eyeLookDown_L")[down] > 0) and np.all(channel(t, "eyeLookUp_R")[down] == 0)


def test_pose_is_smooth():
    for name in PROFILES:
        for seed in range(10):
            t = sample(seed, name)
            for angle in (t.yaw, t.pitch, t.roll):
                assert np.abs(np.diff(angle)).max() < 3.0  # deg per frame at 25 fps
            assert np.abs(np.diff(t.translation, axis=0)).max() < 0.5


@pytest.mark.parametrize("fps", [25.0, 30.0, 100.0])
def test_blinks_close_the_eyes_briefly(fps):
    profile = MotionProfile(blink_rate=1.0)
    t = sample(0, profile, frames=int(12 * fps), fps=fps)
    left, right = channel(t, "eyeBlink_L"), channel(t, "eyeBlink_R")
    np.testing.assert_array_equal(left, right)
    shut = np.concatenate([[0], (left > 0.05).astype(int), [0]])
    starts, ends = np.flatnonzero(np.diff(shut) == 1), np.flatnonzero(np.diff(shut) == -1)
    assert len(starts) >= 4
    for s, e in zip(starts, ends):
        assert left[s:e].max() >= 0.9  # every blink is seen fully closed
        assert (e - s) / fps <= 0.3
        if fps >= 100:  # fast but not instantaneous: lids pass through half-closed frames
            peak = s + int(np.argmax(left[s:e]))
            assert ((left[s:peak] > 0.1) & (left[s:peak] < 0.9)).any()
            assert ((left[peak:e] > 0.1) & (left[peak:e] < 0.9)).sum() >= 2


@pytest.mark.parametrize("name", [n for n, p in PROFILES.items() if p.speech > 0])
def test_jaw_moves_at_syllable_rate(name):
    fractions = []
    for seed in range(5):
        jaw = channel(sample(seed, name), "jawOpen").astype(float)
        assert jaw.max() > 0.3 * PROFILES[name].speech
        power = np.abs(np.fft.rfft(jaw - jaw.mean())) ** 2
        freq = np.fft.rfftfreq(len(jaw), 1 / FPS)
        fractions.append(power[(freq >= 2) & (freq <= 7)].sum() / power[freq > 0].sum())
        # head pose, for contrast, has almost none of its energy there
        yaw = sample(seed, name).yaw.astype(float)
        yaw_power = np.abs(np.fft.rfft(yaw - yaw.mean())) ** 2
        assert yaw_power[(freq >= 2) & (freq <= 7)].sum() < 0.05 * yaw_power[freq > 0].sum()
    assert min(fractions) > 0.3


def test_profiles_and_errors():
    for p in PROFILES.values():
        assert MotionProfile.from_dict(p.to_dict()) == p
    assert isinstance(PROFILES["test"].to_dict()["episodes"], list)
    with pytest.raises(ReanimateError, match="unknown motion profile"):
        sample_trajectory(np.random.default_rng(0), 10, profile="nope")
    with pytest.raises(ReanimateError, match="unknown episode"):
        MotionProfile(episodes=("grin",))
    with pytest.raises(ValueError, match="frames"):
        sample_trajectory(np.random.default_rng(0), 0)
    assert len(sample(0, "test", frames=1)) == 1


def test_neutral_and_npz_round_trip(tmp_path):
    n = neutral_trajectory(4, fps=30.0)
    assert len(n) == 4 and n.fps == 30.0
    assert np.all(n.scale == 1) and not n.expression.any() and not n.yaw.any() and not n.gaze.any()
    t = sample(5, "subject_test", frames=50)
    np.savez(tmp_path / "motion.npz", **t.to_arrays())
    back = HeadTrajectory.from_arrays(np.load(tmp_path / "motion.npz"))
    assert back.fps == FPS
    for key, value in t.to_arrays().items():
        np.testing.assert_array_equal(back.to_arrays()[key], value)
    with pytest.raises(ValueError, match="expression"):
        HeadTrajectory(n.yaw, n.pitch, n.roll, n.scale, n.translation, n.expression[:, :50], n.gaze)
