"""Random but plausible per-frame motion for synthetic talking heads.

:func:`sample_trajectory` draws, from a :class:`numpy.random.Generator`, everything a
renderer of the ICT-FaceKit blendshape head needs per frame: head rotation, scale,
translation, 53 expression weights and eye gaze. A :class:`MotionProfile` bounds the
motion; :data:`PROFILES` holds the dataset's presets.

Conventions (image seen by the camera, the face looking at it):

* ``yaw > 0`` turns the face to the image's right, ``pitch > 0`` looks up, ``roll > 0``
  rotates the head clockwise in the image; degrees.
* ``scale`` is relative (1 = nominal); ``translation`` is ``(tx, ty, tz)`` in cm, x/y in
  the image plane, z a depth offset.
* ``gaze`` is ``(yaw, pitch)`` of the eyeballs in degrees, same signs as the head.
* Expression channels are ARKit-style; ``_L``/``_R`` is the subject's left/right (the
  subject's left eye is on the image's right), so gaze yaw > 0 is ``eyeLookOut_L`` and
  ``eyeLookIn_R``.

Layers are combined per channel by their maximum, so every weight stays in [0, 1] and
each layer's own bound (``speech``, ``expression_strength``) holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from reanimate.errors import ReanimateError
from reanimate.geometry.rotation import euler_to_rotation, rotation_to_euler

__all__ = [
    "BLINK_CHANNELS", "EPISODES", "EXPRESSION_NAMES", "GAZE_CHANNELS", "PROFILES", "SPEECH_CHANNELS",
    "HeadTrajectory", "MotionProfile", "neutral_trajectory", "relative_trajectory", "sample_trajectory",
]  # fmt: skip

EXPRESSION_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L",
    "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)  # fmt: skip
_INDEX = {name: i for i, name in enumerate(EXPRESSION_NAMES)}


def _mirror_name(name: str) -> str:
    for a, b in (("_L", "_R"), ("Left", "Right")):
        if name.endswith(a):
            return name[: -len(a)] + b
        if name.endswith(b):
            return name[: -len(b)] + a
    return name


# Channel permutation of the left-right mirror image (an involution).
_MIRROR = np.array([_INDEX[_mirror_name(n)] for n in EXPRESSION_NAMES])


def _both(stem: str, w: float) -> dict[str, float]:
    return {f"{stem}_L": w, f"{stem}_R": w}


EPISODES: dict[str, dict[str, float]] = {
    "smile": {**_both("mouthSmile", 1.0), **_both("cheekSquint", 0.5), **_both("mouthDimple", 0.2)},
    "frown": {**_both("mouthFrown", 1.0), **_both("browDown", 0.8), "mouthShrugLower": 0.3},
    "surprise": {**_both("browInnerUp", 1.0), **_both("browOuterUp", 1.0), **_both("eyeWide", 0.8), "jawOpen": 0.3},
    "sneer": {**_both("noseSneer", 1.0), **_both("mouthUpperUp", 0.5), **_both("browDown", 0.3)},
    "pucker": {"mouthPucker": 1.0, "mouthFunnel": 0.3, "mouthRollLower": 0.2},
    "squint": {**_both("eyeSquint", 1.0), **_both("cheekSquint", 0.4), **_both("browDown", 0.2)},
    "wide_eyes": {**_both("eyeWide", 1.0), **_both("browInnerUp", 0.3), **_both("browOuterUp", 0.4)},
    "smirk": {"mouthSmile_L": 0.9, "mouthDimple_L": 0.4, "cheekSquint_L": 0.3, "mouthLeft": 0.2},
    "puff": {**_both("cheekPuff", 1.0), **_both("mouthPress", 0.3)},
}

# Channels driven by the speech, blink and gaze layers (not by episodes alone).
SPEECH_CHANNELS: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "mouthPress_L", "mouthPress_R",
)  # fmt: skip
BLINK_CHANNELS: tuple[str, ...] = ("eyeBlink_L", "eyeBlink_R")
GAZE_CHANNELS: tuple[str, ...] = tuple(f"eyeLook{d}_{s}" for d in ("Down", "In", "Out", "Up") for s in "LR")

# Peak head-rotation speed is about 1.5-2x this mean speed between key points (deg/s);
# keeps turns well under 3 deg/frame at 25 fps.
_TURN_SPEED = 30.0
# Gaze angle at which the eyeLook* lid shapes reach _LID_FOLLOW.
_GAZE_FULL_DEG = 30.0
_LID_FOLLOW = 0.5


@dataclass(frozen=True)
class MotionProfile:
    """Bounds of the sampled motion.

    Attributes:
        yaw, pitch, roll: largest |angle| of the head, degrees.
        scale: largest relative deviation of the scale from 1.
        translation: largest |tx|, |ty| in cm; depth: largest |tz| in cm.
        speech: largest jawOpen while talking (0: silent).
        blink_rate: blinks per second.
        gaze: largest |gaze yaw|, |gaze pitch| in degrees.
        expression_strength: largest weight of an expression episode.
        episodes: names in :data:`EPISODES` that may occur.
        smoothness: typical seconds between pose key points.
    """

    yaw: float = 25.0
    pitch: float = 12.0
    roll: float = 8.0
    scale: float = 0.05
    translation: float = 1.0
    depth: float = 2.0
    speech: float = 0.6
    blink_rate: float = 0.3
    gaze: float = 15.0
    expression_strength: float = 0.6
    episodes: tuple[str, ...] = ("smile", "frown", "surprise")
    smoothness: float = 1.2

    def __post_init__(self):
        object.__setattr__(self, "episodes", tuple(self.episodes))
        unknown = [e for e in self.episodes if e not in EPISODES]
        if unknown:
            raise ReanimateError(f"motion profile: unknown episode(s) {unknown}; choose from {sorted(EPISODES)}")
        if self.smoothness <= 0:
            raise ReanimateError(f"motion profile: smoothness must be > 0 seconds, got {self.smoothness}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["episodes"] = list(self.episodes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MotionProfile:
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ReanimateError(f"motion profile: unknown key(s) {extra}; known keys are {sorted(known)}")
        return cls(**d)


_SUBJECT_TEST_EPISODES = ("surprise", "frown", "sneer", "pucker", "squint", "wide_eyes", "puff")
PROFILES: dict[str, MotionProfile] = {
    "train": MotionProfile(),
    "test": MotionProfile(
        yaw=35.0, pitch=20.0, roll=15.0, scale=0.08, translation=1.5, depth=4.0, speech=0.8, blink_rate=0.4,
        gaze=25.0, expression_strength=1.0, episodes=tuple(EPISODES), smoothness=1.0,
    ),
    "subject_train": MotionProfile(
        yaw=30.0, pitch=15.0, roll=10.0, speech=0.6, expression_strength=0.5, episodes=("smile",),
    ),
    "subject_test": MotionProfile(
        yaw=35.0, pitch=20.0, roll=15.0, scale=0.08, translation=1.5, depth=4.0, speech=1.0, blink_rate=0.4,
        gaze=25.0, expression_strength=1.0, episodes=_SUBJECT_TEST_EPISODES, smoothness=1.0,
    ),
}  # fmt: skip


@dataclass
class HeadTrajectory:
    """Per-frame head motion; T frames. Angles in degrees, translation in cm.

    Attributes:
        yaw, pitch, roll, scale: ``(T,)``; translation: ``(T, 3)`` (tx, ty, tz);
        expression: ``(T, 53)`` weights in [0, 1] in :data:`EXPRESSION_NAMES` order;
        gaze: ``(T, 2)`` (yaw, pitch); fps: frames per second.
    """

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    gaze: np.ndarray
    fps: float = 25.0

    def __post_init__(self):
        n = len(self.yaw)
        shapes = {"yaw": (n,), "pitch": (n,), "roll": (n,), "scale": (n,), "translation": (n, 3)}
        shapes.update(expression=(n, len(EXPRESSION_NAMES)), gaze=(n, 2))
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"HeadTrajectory.{name}: expected shape {shape}, got {value.shape}")
            setattr(self, name, value)
        self.fps = float(self.fps)

    def __len__(self) -> int:
        return len(self.yaw)

    def frame(self, i: int) -> dict:
        """Frame ``i``: floats for yaw/pitch/roll/scale, arrays for the rest."""
        scalars = {k: float(getattr(self, k)[i]) for k in ("yaw", "pitch", "roll", "scale")}
        return {**scalars, "translation": self.translation[i], "expression": self.expression[i], "gaze": self.gaze[i]}

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "fps"}
        arrays["fps"] = np.array(self.fps, dtype=np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> HeadTrajectory:
        """Inverse of :meth:`to_arrays` (also takes a loaded ``.npz``)."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "fps"]
        return cls(**{n: np.asarray(arrays[n]) for n in names}, fps=float(arrays["fps"]))

    def mirrored(self) -> HeadTrajectory:
        """The left-right mirror image: yaw, roll, gaze yaw and tx negated, _L/_R (and
        jaw/mouth Left/Right) channels swapped."""
        flip = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
        return HeadTrajectory(
            yaw=-self.yaw,
            pitch=self.pitch.copy(),
            roll=-self.roll,
            scale=self.scale.copy(),
            translation=self.translation * flip,
            expression=self.expression[:, _MIRROR],
            gaze=self.gaze * flip[:2],
            fps=self.fps,
        )


def neutral_trajectory(frames: int, fps: float = 25.0) -> HeadTrajectory:
    """A head at rest: frontal, nominal scale, neutral expression, eyes open and ahead."""
    z = np.zeros(frames, np.float32)
    return HeadTrajectory(
        z, z, z, np.ones(frames, np.float32), np.zeros((frames, 3)), np.zeros((frames, len(EXPRESSION_NAMES))),
        np.zeros((frames, 2)), fps,
    )  # fmt: skip


def sample_trajectory(
    rng: np.random.Generator, frames: int, fps: float = 25.0, profile: MotionProfile | str = "train"
) -> HeadTrajectory:
    """Sample ``frames`` frames of head motion bounded by ``profile`` (a preset name or a
    :class:`MotionProfile`). Deterministic given the state of ``rng``. Frame 0 has a
    near-neutral face with the eyes open; talking, blinks and episodes start later."""
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ReanimateError(f"unknown motion profile {profile!r}; choose from {sorted(PROFILES)}")
        profile = PROFILES[profile]
    if frames < 1 or fps <= 0:
        raise ValueError(f"sample_trajectory: need frames >= 1 and fps > 0, got frames={frames}, fps={fps}")
    t = np.arange(frames) / fps
    p = profile

    def pose(bound: float, speed: float | None = None) -> np.ndarray:
        return _pose_curve(rng, t, bound, p.smoothness, speed)

    yaw, pitch, roll = pose(p.yaw, _TURN_SPEED), pose(p.pitch, _TURN_SPEED), pose(p.roll, _TURN_SPEED)
    scale = 1.0 + pose(p.scale)
    translation = np.stack([pose(p.translation), pose(p.translation), pose(p.depth)], axis=1)

    gaze = _gaze(rng, t, p.gaze)
    layers = [_speech(rng, t, p.speech), _blinks(rng, t, fps, p.blink_rate), _gaze_lids(gaze)]
    layers.append(_episodes(rng, t, p.episodes, p.expression_strength))
    expression = np.clip(np.max(layers, axis=0), 0.0, 1.0)
    return HeadTrajectory(yaw, pitch, roll, scale, translation, expression, gaze, fps)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(t: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 over ``rise`` s from ``start``, 1 for ``hold`` s, back to 0 over ``fall`` s."""
    up = _smoothstep((t - start) / rise)
    down = _smoothstep((t - start - rise - hold) / fall)
    return up * (1.0 - down)


def _pchip(xk: np.ndarray, yk: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic interpolation (Fritsch and Carlson, SIAM J. Numer. Anal.
    1980): C1 and never leaves the range of two neighbouring key values, so the curve
    keeps the keys' bounds. Zero slope at both ends (the head starts at rest)."""
    h = np.diff(xk)
    d = np.diff(yk) / h
    m = np.zeros_like(yk)
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = d[:-1] * d[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        m[1:-1] = np.where(same, (w1 + w2) / (w1 / d[:-1] + w2 / d[1:]), 0.0)
    i = np.clip(np.searchsorted(xk, x, side="right") - 1, 0, len(xk) - 2)
    s = (x - xk[i]) / h[i]
    s2, s3 = s * s, s * s * s
    y0, y1, m0, m1 = yk[i], yk[i + 1], h[i] * m[i], h[i] * m[i + 1]
    return (2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * m0 + (3 * s2 - 2 * s3) * y1 + (s3 - s2) * m1


def _pose_curve(rng, t: np.ndarray, bound: float, smoothness: float, speed: float | None) -> np.ndarray:
    """Smooth curve in [-bound, bound] through random key points about ``smoothness`` s
    apart; a key uniform in the range, so clips often come near the bounds. With
    ``speed``, big swings get longer intervals (mean speed between keys <= speed)."""
    keys_t, keys_u = [0.0], [rng.uniform(-0.5, 0.5)]  # start nearer the middle: a natural source frame
    while keys_t[-1] <= t[-1]:
        u = rng.uniform(-1.0, 1.0)
        gap = smoothness * rng.uniform(0.6, 1.4)
        if speed is not None and bound > 0:
            gap = max(gap, abs(u - keys_u[-1]) * bound / speed)
        keys_t.append(keys_t[-1] + gap)
        keys_u.append(u)
    return bound * _pchip(np.array(keys_t), np.array(keys_u), t)


def _pattern(weights: dict[str, float]) -> np.ndarray:
    v = np.zeros(len(EXPRESSION_NAMES))
    for name, w in weights.items():
        v[_INDEX[name]] = w
    return v


# Mouth shapes of a syllable: (probability, jawOpen range as a fraction of the speech
# amplitude, other channels as fractions of it). Open vowels, rounded vowels, spread
# vowels and bilabial consonants (lips pressed while the jaw moves little).
_SYLLABLES = (
    (0.35, (0.6, 1.0), {**_both("mouthLowerDown", 0.5), **_both("mouthStretch", 0.1)}),
    (0.25, (0.3, 0.6), {"mouthFunnel": 0.6, "mouthPucker": 0.4, **_both("mouthLowerDown", 0.2)}),
    (0.25, (0.25, 0.5), {**_both("mouthStretch", 0.4), **_both("mouthUpperUp", 0.2), **_both("mouthLowerDown", 0.3)}),
    (0.15, (0.1, 0.3), {"mouthClose": 0.8, **_both("mouthPress", 0.3)}),
)
_SYLLABLE_P = np.array([s[0] for s in _SYLLABLES])
_SYLLABLE_PATTERNS = [(jaw, _pattern(shape)) for _, jaw, shape in _SYLLABLES]
_JAW = _INDEX["jawOpen"]


def _speech(rng, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Phrases of 1-4 s separated by 0.2-1.2 s pauses; within a phrase, syllables at 3-6 Hz,
    each a sin^2 pulse of jawOpen with a random mouth shape, over a small open baseline."""
    out = np.zeros((len(t), len(EXPRESSION_NAMES)))
    if amplitude <= 0:
        return out
    time = rng.uniform(0.3, 0.8)  # mouth closed at the start
    while time < t[-1]:
        end = time + rng.uniform(1.0, 4.0)
        rate = rng.uniform(3.0, 6.0)
        out[:, _JAW] = np.maximum(out[:, _JAW], 0.1 * amplitude * _envelope(t, time, 0.1, end - time - 0.2, 0.1))
        while time < end:
            length = rng.uniform(0.8, 1.25) / rate
            jaw, shape = _SYLLABLE_PATTERNS[rng.choice(len(_SYLLABLES), p=_SYLLABLE_P)]
            inside = (t > time) & (t < time + length)
            pulse = np.sin(np.pi * (t[inside] - time) / length) ** 2
            weights = shape * rng.uniform(0.6, 1.0)
            weights[_JAW] = rng.uniform(*jaw)
            out[inside] = np.maximum(out[inside], amplitude * pulse[:, None] * weights)
            time += length
        time += rng.uniform(0.2, 1.2)
    return out


def _blinks(rng, t: np.ndarray, fps: float, rate: float) -> np.ndarray:
    """Blinks of 0.1-0.25 s: fast closing, a closed hold of at least one frame (so a frame
    sees the lids shut), slower opening. Poisson onsets, none in the first 0.3 s."""
    out = np.zeros((len(t), len(EXPRESSION_NAMES)))
    if rate <= 0:
        return out
    idx = [_INDEX[n] for n in BLINK_CHANNELS]
    time = 0.3 + rng.exponential(1.0 / rate)
    while time < t[-1]:
        length = rng.uniform(0.1, 0.25)
        env = _envelope(t, time, 0.3 * length, max(0.2 * length, 1.0 / fps), 0.5 * length)
        out[:, idx] = np.maximum(out[:, idx], rng.uniform(0.92, 1.0) * env[:, None])
        time += length + 0.2 + rng.exponential(1.0 / rate)
    return out


def _gaze(rng, t: np.ndarray, bound: float) -> np.ndarray:
    """Fixations of 0.3-2 s joined by saccades whose duration follows the main sequence
    (about 21 ms + 2.2 ms/deg, Carpenter 1988) with a minimum-jerk profile."""
    gaze = np.zeros((len(t), 2))
    if bound <= 0:
        return gaze
    current = np.clip(rng.normal(0.0, bound / 4, 2), -bound, bound)
    gaze[:] = current
    time = rng.uniform(0.3, 2.0)
    while time < t[-1]:
        target = np.clip(rng.normal(0.0, bound / 2, 2), -bound, bound)
        length = 0.021 + 0.0022 * float(np.hypot(*(target - current)))
        s = np.clip((t[t >= time] - time) / length, 0.0, 1.0)
        s = s**3 * (10 - 15 * s + 6 * s * s)
        gaze[t >= time] = current + s[:, None] * (target - current)
        current = target
        time += length + rng.uniform(0.3, 2.0)
    return gaze


def _gaze_lids(gaze: np.ndarray) -> np.ndarray:
    """eyeLook* shapes that move the lids with the eyeballs (looking down lowers them)."""
    out = np.zeros((len(gaze), len(EXPRESSION_NAMES)))
    yaw, pitch = (np.clip(g / _GAZE_FULL_DEG, -1.0, 1.0) * _LID_FOLLOW for g in gaze.T)
    for names, w in (
        (("eyeLookOut_L", "eyeLookIn_R"), yaw),  # toward the image's right = the subject's left
        (("eyeLookIn_L", "eyeLookOut_R"), -yaw),
        (("eyeLookUp_L", "eyeLookUp_R"), pitch),
        (("eyeLookDown_L", "eyeLookDown_R"), -pitch),
    ):
        out[:, [_INDEX[n] for n in names]] = np.maximum(w, 0.0)[:, None]
    return out


def _episodes(rng, t: np.ndarray, names: tuple[str, ...], strength: float) -> np.ndarray:
    """Expression episodes: onset 0.2-0.6 s, hold 0.5-2.5 s, release 0.3-0.8 s; the next one
    starts after the hold, sometimes while the last is still releasing. One-sided episodes
    fall on either side."""
    out = np.zeros((len(t), len(EXPRESSION_NAMES)))
    if not names or strength <= 0:
        return out
    time = rng.uniform(0.5, 2.0)  # frame 0 near neutral
    while time < t[-1]:
        pattern = _pattern(EPISODES[names[rng.integers(len(names))]])
        if rng.random() < 0.5:
            pattern = pattern[_MIRROR]
        rise, hold, fall = rng.uniform(0.2, 0.6), rng.uniform(0.5, 2.5), rng.uniform(0.3, 0.8)
        env = strength * rng.uniform(0.5, 1.0) * _envelope(t, time, rise, hold, fall)
        out = np.maximum(out, env[:, None] * pattern)
        time += rise + hold + rng.uniform(0.0, fall) + rng.exponential(1.5)
    return out


def relative_trajectory(source: HeadTrajectory, driving: HeadTrajectory) -> HeadTrajectory:
    """FOMM's relative transfer in 3-D: the source (frame 0 of ``source``) moved by the
    driving video's motion since its first frame.

    Rotation ``R_t R_0^T R_s`` (the driving turn applied in the camera frame), scale
    ``s_s s_t / s_0``, translation ``t_s + (t_t - t_0)``, expression and gaze
    ``x_s + (x_t - x_0)`` (expression clipped to [0, 1]). Frame 0 of the result is the source.
    """

    def rotations(trajectory: HeadTrajectory) -> torch.Tensor:
        angles = torch.from_numpy(np.stack([trajectory.yaw, trajectory.pitch, trajectory.roll], 1)).double()
        return euler_to_rotation(angles[:, 0], angles[:, 1], angles[:, 2])

    turn = rotations(driving) @ rotations(driving)[:1].transpose(-1, -2)
    angles = rotation_to_euler(turn @ rotations(source)[:1]).numpy()
    return HeadTrajectory(
        yaw=angles[:, 0],
        pitch=angles[:, 1],
        roll=angles[:, 2],
        scale=source.scale[0] * driving.scale / driving.scale[0],
        translation=source.translation[0] + driving.translation - driving.translation[0],
        expression=np.clip(source.expression[0] + driving.expression - driving.expression[0], 0, 1),
        gaze=source.gaze[0] + driving.gaze - driving.gaze[0],
        fps=driving.fps,
    )
