"""The zero-shot landmark animator (no weights) behind the :class:`Animator` interface,
with :class:`HeadControl` (head edits: ``reanimate edit``).

Its motion is MediaPipe's face landmarks of each driving frame, normalised to the
driving face box; the engine (:class:`LandmarkAnimator`) does the rest. Its heads are
:class:`~reanimate.motion.HeadMotion` objects of the source crop's landmarks, in crop pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ...device import select_device
from ...errors import ReanimateError
from ...motion import HEAD_ATTRIBUTES, HeadMotion, Keypoints
from ..base import (
    RETARGET_CONTROLS,
    Animator,
    DrivingBatch,
    HeadControl,
    Motion,
    Rendered,
    Requirements,
    Source,
    Transfer,
)
from ..registry import BuildRequest, Family, register_family
from . import DrivingFace, LandmarkAnimator, LandmarkAnimatorConfig, to_pixels

#: crop margin per side: the animator needs room around the face for its anchor rings
LANDMARK_CROP_INCREASE = 0.45
#: The largest yaw, pitch and roll changes (degrees) that a head edit renders plausibly,
#: judged by eye on grids of edits of the frontal examples/source.png (README, "Editing a
#: face"): beyond 10 degrees of yaw the temple that comes into view is stretched into
#: streaks (the glasses' hinges smear); beyond 10 of pitch the chin stretches (up) or
#: the face flattens (down); beyond 15 of roll the collar and shoulders, which follow the
#: head to the fixed crop border, kink.
PLAUSIBLE_TURN = (10.0, 10.0, 15.0)


@dataclass
class LandmarkMotion(Motion):
    """Driving landmarks: ``keypoints`` ``(N, 478, 2)`` in [-1, 1] of ``box``, and one
    :class:`DrivingFace` per frame (its landmarks, frame and cached reference values)."""

    faces: list[DrivingFace] = field(default_factory=list)
    box: np.ndarray | None = None

    def __getitem__(self, index: int) -> LandmarkMotion:
        return LandmarkMotion(self.keypoints[index], [self.faces[index]], self.box)


class LandmarkFaceAnimator(Animator, HeadControl):
    """Wraps a :class:`LandmarkAnimator` (CPU, numpy)."""

    family = "landmarks"
    plausible_turn = PLAUSIBLE_TURN

    def __init__(self, engine: LandmarkAnimator | None = None):
        self.engine = engine or LandmarkAnimator()
        self.notes: list[str] = []

    @property
    def requirements(self) -> Requirements:
        size = self.engine.size
        return Requirements(
            size=(size, size),
            face=True,
            crop_increase=LANDMARK_CROP_INCREASE,
            driving_landmarks=True,
            relative_only=True,
            adapt_scale=True,
            device="cpu",
            # the 2-D displacement rule (head_pose=False) moves points, not a head
            head_attributes=HEAD_ATTRIBUTES if self.engine.config.head_pose else (),
            retarget=RETARGET_CONTROLS if self.engine.config.head_pose else (),
            # Its torch work is small tensors: a second thread gains nothing and takes
            # the core that decoding, MediaPipe and the H.264 encoder run on (2048x2048
            # source, 2 cores: 17.3 -> 20.5 frames/s).
            cpu_threads=1,
        )

    def describe(self) -> str:
        return "landmarks (zero-shot, no weights)"

    def encode_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> Source:
        if landmarks is None:
            raise ValueError("the landmark animator needs the source's face landmarks")
        state = self.engine.encode_source(image, landmarks)
        return Source(image, state.keypoints, state)

    def estimate(self, batch: DrivingBatch) -> LandmarkMotion:
        if batch.landmarks is None or batch.box is None:
            raise ValueError("the landmark animator needs the driving frames' landmarks and face box")
        box = batch.box
        kp = self.engine.keypoints(batch.landmarks, box[:2], float(box[2] - box[0]))
        faces = [DrivingFace(kp[i], batch.landmarks[i], batch.frames[i]) for i in range(len(batch))]
        return LandmarkMotion(Keypoints.cat([f.keypoints for f in faces]), faces, box)

    def with_keypoints(self, motion: LandmarkMotion, keypoints: Keypoints) -> LandmarkMotion:
        # The eyes and mouth read landmarks: give them the smoothed ones.
        box = motion.box
        xy = to_pixels(keypoints.value, box[:2], float(box[2] - box[0]))
        faces = []
        for i, face in enumerate(motion.faces):
            landmarks = np.concatenate([xy[i], face.landmarks[:, 2:]], axis=1)
            faces.append(DrivingFace(keypoints[i], landmarks, face.frame))
        return LandmarkMotion(keypoints, faces, box)

    def render(
        self, source: Source, motion: LandmarkMotion, reference: LandmarkMotion | None, transfer: Transfer
    ) -> Rendered:
        if reference is None or not transfer.relative:
            raise ReanimateError("the landmark animator only transfers relative motion (drop --absolute)")
        transfer.retarget.refuse_uncovered(self.family, self.requirements.retarget)
        initial = reference.faces[0]
        frames = [
            self.engine.animate(source.state, face, initial, transfer.attributes, transfer.retarget)
            for face in motion.faces
        ]
        return Rendered(np.stack(frames))

    # -- HeadControl -----------------------------------------------------------------------

    @property
    def translation_unit(self) -> float:
        return float(self.engine.size)  # heads are in crop pixels

    def source_head(self, source: Source) -> HeadMotion:
        return self.engine.source_head(source.state)

    def expression_from(self, source: Source, image: np.ndarray, landmarks: np.ndarray | None = None):
        if landmarks is None:
            raise ValueError("the landmark animator needs the other face's landmarks")
        return self.engine.expression_from(source.state, landmarks)

    def render_heads(self, source: Source, heads: HeadMotion) -> Rendered:
        return Rendered(np.stack([self.engine.pose(source.state, _one(heads, i)) for i in range(heads.batch_size)]))


def _one(heads: HeadMotion, index: int) -> HeadMotion:
    """Head ``index`` of a batch, as a batch of one."""
    return HeadMotion(*(getattr(heads, f.name)[index : index + 1] for f in dataclasses.fields(heads)))


def face_kind_request(kind: str, model: str, checkpoint, config) -> tuple[str, LandmarkAnimatorConfig]:
    """``--face-kind human|other``: the family and config to build (the landmark
    animator's config with ``face_kind`` set); one line for any other model."""
    if checkpoint is not None or config is not None or model not in ("auto", "landmarks"):
        raise ReanimateError(
            "--face-kind is a setting of the zero-shot landmark animator: drop --checkpoint, --config and --model"
        )
    return "landmarks", LandmarkAnimatorConfig(face_kind=kind)


def _build(request: BuildRequest) -> LandmarkFaceAnimator:
    engine = None
    if isinstance(request.config, LandmarkAnimatorConfig):  # Python callers, --face-kind
        engine = LandmarkAnimator(request.config)
    elif request.config is not None:
        raise ReanimateError("--model landmarks takes no --config (it has no networks)")
    if request.fp16:
        raise ReanimateError("--fp16: the landmark animator runs on the CPU in float32 (drop --fp16)")
    animator = LandmarkFaceAnimator(engine)
    if request.device != "auto" and select_device(request.device).type != "cpu":
        animator.notes.append(f"--device {request.device}: the landmark animator runs on the CPU")
    return animator


FAMILY = register_family(
    Family(
        "landmarks",
        "the zero-shot face animator (MediaPipe landmarks, no weights)",
        build=_build,
        uses_checkpoint=False,
    )
)
