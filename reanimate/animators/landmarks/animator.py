"""The zero-shot landmark animator (no weights) behind the :class:`Animator` interface.

Its motion is MediaPipe's face landmarks of each driving frame, normalised to the
driving face box; the engine (:class:`LandmarkAnimator`) does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...device import select_device
from ...errors import ReanimateError
from ...motion import Keypoints
from ..base import Animator, DrivingBatch, Motion, Rendered, Requirements, Source, Transfer
from ..registry import BuildRequest, Family, register_family
from . import DrivingFace, LandmarkAnimator, to_pixels

#: crop margin per side: the animator needs room around the face for its anchor rings
LANDMARK_CROP_INCREASE = 0.45


@dataclass
class LandmarkMotion(Motion):
    """Driving landmarks: ``keypoints`` ``(N, 478, 2)`` in [-1, 1] of ``box``, and one
    :class:`DrivingFace` per frame (its landmarks, frame and cached reference values)."""

    faces: list[DrivingFace] = field(default_factory=list)
    box: np.ndarray | None = None

    def __getitem__(self, index: int) -> LandmarkMotion:
        return LandmarkMotion(self.keypoints[index], [self.faces[index]], self.box)


class LandmarkFaceAnimator(Animator):
    """Wraps a :class:`LandmarkAnimator` (CPU, numpy)."""

    family = "landmarks"

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
        initial = reference.faces[0]
        return Rendered(np.stack([self.engine.animate(source.state, face, initial) for face in motion.faces]))


def _build(request: BuildRequest) -> LandmarkFaceAnimator:
    if request.config is not None:
        raise ReanimateError("--model landmarks takes no --config (it has no networks)")
    if request.fp16:
        raise ReanimateError("--fp16: the landmark animator runs on the CPU in float32 (drop --fp16)")
    animator = LandmarkFaceAnimator()
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
