"""Parameters of a synthetic dataset (:class:`SyntheticConfig`, :data:`PRESETS`) and the
fixed proportions of its puppets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from reanimate.errors import ReanimateError

__all__ = ["PRESETS", "SyntheticConfig"]

# Puppet proportions, ranges (min, max) in fractions of the frame for one puppet alone:
# large enough that every part spans several pixels at 64x64.
TORSO_HALF_WIDTH = (0.08, 0.11)
TORSO_HALF_HEIGHT = (0.11, 0.15)
HEAD_RADIUS = (0.065, 0.085)
LIMB_LENGTH = (0.13, 0.19)  # per segment, joint to joint
LIMB_HALF_WIDTH = (0.04, 0.055)
# Slots where limbs attach to the torso: (kind, anchor on the torso as fractions of its
# half extents (x, y), rest angle in degrees; image y points down, so 90 deg is down).
LIMB_SLOTS = (
    ("head", (0.0, -1.0), -90.0),
    ("arm", (-1.0, -0.6), 180.0),
    ("arm", (1.0, -0.6), 0.0),
    ("leg", (-0.5, 1.0), 100.0),
    ("leg", (0.5, 1.0), 80.0),
)


@dataclass
class SyntheticConfig:
    """Parameters of a synthetic dataset. Lengths are fractions of the frame size.

    Attributes:
        size: frames are ``size x size`` pixels.
        num_frames: frames per video.
        num_train, num_test: number of videos in each split.
        seed: everything is a deterministic function of the seed (and of the other
            fields); a video depends only on the seed, its split and its index.
        camera_motion_fraction: share of the videos of each split (rounded) where the
            camera moves: a smooth global affine motion of the whole image.
        puppets_per_video: inclusive range of the number of puppets in a video.
        limbs_per_puppet: inclusive range of the number of limbs (head, arms, legs; at
            most 5) attached to a puppet's torso.
        second_segment_probability: chance that an arm or leg has a second segment
            (forearm, shin) on an elbow/knee joint.
        puppet_size: overall scale of a puppet (torso height about ``0.24 * puppet_size``
            of the frame); with several puppets each is shrunk by ``1/sqrt(n)``.
        puppet_translation: largest displacement of a puppet along each axis.
        puppet_rotation_deg: largest rotation of a whole puppet.
        puppet_scale: a puppet's scale varies within ``[1/(1+s), 1+s]``.
        joint_angle_deg: largest swing of a joint around its rest angle (heads: half).
        camera_translation, camera_rotation_deg, camera_scale, camera_shear: largest
            camera motion (translation per axis, rotation, log-scale as for puppets,
            shear factor) in camera-motion videos.
        motion_periods: range of the periods (frames) of the sinusoids that drive every
            motion parameter; each parameter is a sum of two of them with random phases,
            so motion is smooth and frame 0 is not a rest pose.
        flow_dtype: ``"float16"`` (about 0.02 px precision at 64 px) or ``"float32"``.
        part_palette: ``"random"`` (every part its own random hues and pattern) or
            ``"by_part"`` (torso, head, arms, forearms, legs and shins each keep one
            look across videos, so that puppets form one object class like the faces
            of a real dataset).
    """

    size: int = 64
    num_frames: int = 32
    num_train: int = 200
    num_test: int = 20
    seed: int = 0
    camera_motion_fraction: float = 0.3
    puppets_per_video: tuple[int, int] = (1, 2)
    limbs_per_puppet: tuple[int, int] = (2, 4)
    second_segment_probability: float = 0.5
    puppet_size: float = 1.0
    puppet_translation: float = 0.15
    puppet_rotation_deg: float = 25.0
    puppet_scale: float = 0.15
    joint_angle_deg: float = 45.0
    camera_translation: float = 0.08
    camera_rotation_deg: float = 8.0
    camera_scale: float = 0.08
    camera_shear: float = 0.05
    motion_periods: tuple[float, float] = (24.0, 64.0)
    flow_dtype: str = "float16"
    part_palette: str = "random"

    def __post_init__(self) -> None:
        self.puppets_per_video = tuple(self.puppets_per_video)
        self.limbs_per_puppet = tuple(self.limbs_per_puppet)
        self.motion_periods = tuple(self.motion_periods)

    def validate(self) -> None:
        """Raise :class:`ReanimateError` (one line naming the field) on a bad value."""

        def bad(name: str, problem: str) -> ReanimateError:
            return ReanimateError(f"synthetic dataset: {name}={getattr(self, name)!r} {problem}")

        if self.size < 8:
            raise bad("size", "is too small (use at least 8)")
        if self.num_frames < 1:
            raise bad("num_frames", "must be at least 1")
        for name in ("num_train", "num_test"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if not 0.0 <= self.camera_motion_fraction <= 1.0:
            raise bad("camera_motion_fraction", "must be between 0 and 1")
        lo, hi = self.puppets_per_video
        if not 1 <= lo <= hi:
            raise bad("puppets_per_video", "must be a range (min, max) with 1 <= min <= max")
        lo, hi = self.limbs_per_puppet
        if not 0 <= lo <= hi <= len(LIMB_SLOTS):
            raise bad("limbs_per_puppet", f"must be a range (min, max) within 0..{len(LIMB_SLOTS)}")
        lo, hi = self.motion_periods
        if not 0 < lo <= hi:
            raise bad("motion_periods", "must be a range (min, max) of positive periods")
        if self.part_palette not in ("random", "by_part"):
            raise bad("part_palette", "must be 'random' or 'by_part'")
        if self.flow_dtype not in ("float16", "float32"):
            raise bad("flow_dtype", "must be 'float16' or 'float32'")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def preset(cls, name: str, **overrides) -> SyntheticConfig:
        """The named dataset of :data:`PRESETS`, with ``overrides`` of any field."""
        if name not in PRESETS:
            raise ReanimateError(f"synthetic dataset: unknown preset {name!r} (choose from {', '.join(PRESETS)})")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict) -> SyntheticConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (newer files)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


#: Named datasets (``reanimate make-synthetic --preset``), as overrides of the
#: :class:`SyntheticConfig` defaults:
#:
#: * ``one-class``: one puppet per video, always a torso, head, two arms and two legs of
#:   two segments each, every part kind with its own look (``part_palette="by_part"``),
#:   1.4x larger. The puppets form one object class, as the faces or bodies of a real
#:   dataset do, so an unsupervised keypoint model can give its keypoints meanings
#:   (this head, that forearm). The training benchmark's set.
#: * ``mixed``: the defaults: one or two puppets with 2-4 limbs each and random looks
#:   for every part; a harder set, where no two videos share a structure.
PRESETS: dict[str, dict] = {
    "one-class": dict(
        puppets_per_video=(1, 1),
        limbs_per_puppet=(5, 5),
        second_segment_probability=1.0,
        puppet_size=1.4,
        part_palette="by_part",
    ),
    "mixed": {},
}
