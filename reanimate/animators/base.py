"""The interface every model family implements and the pipelines consume.

An :class:`Animator` turns a source image into a state once (:meth:`Animator.encode_source`),
reads the motion of batches of driving frames (:meth:`Animator.estimate`) and renders
the source moved by that motion (:meth:`Animator.render`). It declares what it needs
from the pipeline in :class:`Requirements` (face crop and its margin, per-frame face
landmarks, relative-only transfer, default adapt-scale, native resolution), so the
pipeline reads, crops, batches, smooths, pastes back and writes without asking which
model it holds.

An animator that can also pose the source's head directly (MMFA paper Sec. 4.3,
motion attribute editing) subclasses :class:`HeadControl` too: it reads the source's
head as a :class:`~reanimate.motion.HeadMotion` and renders the source with any
heads given, which is what ``reanimate edit`` needs. Which head attributes it can
transfer from a driver one by one it declares in :attr:`Requirements.head_attributes`.

How much of each part of the driver's motion the source takes (head pose, expression,
eyes, lips, blinks: ``animate --head/--expression/--eyes/--lips/--blinks``) is the
:class:`Retarget` in :attr:`Transfer.retarget`; a family names the controls it honours
in :attr:`Requirements.retarget`, and the pipeline refuses the others.

Frames are uint8 ``(H, W, 3)`` RGB numpy arrays; face landmarks are ``(478, 3)``
MediaPipe points in the pixels of the frame they were found in.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ReanimateError
from ..faces import crop_face
from ..geometry.rotation import rotation_power, rotation_to_euler
from ..io import fit_to_shape
from ..motion import HEAD_ATTRIBUTES, HeadMotion, Keypoints


@dataclass(frozen=True)
class Requirements:
    """What an animator needs from the pipeline around it.

    Attributes:
        size: ``(H, W)`` the animator runs at; sources and driving crops come at this size.
        face: a face model: by default the source's face is cropped (a square box with
            ``crop_increase`` margin per side), animated and pasted back, and the driving
            frames are cropped with the fixed box of their reference frame's face.
        crop_increase: the default face-crop margin (fraction of the face box, per side).
        driving_landmarks: face landmarks of every driving frame are needed (and of the
            source, also without a face crop); the driving box is then always the face's.
        relative_only: only relative motion transfer is possible.
        adapt_scale: default of ``AnimationOptions.adapt_scale``.
        device: where it runs (``"cpu"``, ``"cuda"``…), for notes and stats.
        head_attributes: which of :data:`~reanimate.motion.HEAD_ATTRIBUTES` (rotation,
            scale, translation, expression) it can transfer from the driver separately
            (:attr:`Transfer.attributes`); empty: it cannot separate them (FOMM).
        retarget: which of :data:`RETARGET_CONTROLS` (head, expression, eyes, lips,
            blinks) it honours in :attr:`Transfer.retarget` (:meth:`Retarget.used`);
            empty: only the default, the driver's motion as it is (FOMM).
        cpu_threads: the torch threads it runs fastest with on the CPU beside the
            decoder, face detection and the encoder (None: torch's default, one per
            core). A command applies it unless the user set ``OMP_NUM_THREADS``.
    """

    size: tuple[int, int]
    face: bool = False
    crop_increase: float = 0.1
    driving_landmarks: bool = False
    relative_only: bool = False
    adapt_scale: bool = False
    device: str = "cpu"
    head_attributes: tuple[str, ...] = ()
    retarget: tuple[str, ...] = ()
    cpu_threads: int | None = None


@dataclass
class Source:
    """A source prepared once: ``image`` ``(H, W, 3)`` uint8 at the animator's size, its
    ``keypoints`` (batch 1, for visualisation and best-frame matching) and whatever the
    family keeps in ``state``."""

    image: np.ndarray
    keypoints: Keypoints
    state: Any = None


@dataclass
class Motion:
    """The motion of N driving frames as one family reads it.

    ``keypoints`` ``(N, K, D)`` is what the pipeline smooths over time, measures jitter
    on, matches for the best frame and draws; families add their own fields
    (subclass). Indexing gives a one-frame :class:`Motion` of the same type.
    """

    keypoints: Keypoints

    def __len__(self) -> int:
        return self.keypoints.batch_size

    def __getitem__(self, index: int) -> Motion:
        return dataclasses.replace(self, keypoints=self.keypoints[index])


@dataclass
class DrivingBatch:
    """N driving frames as the pipeline hands them to :meth:`Animator.estimate`.

    Attributes:
        frames: the decoded frames (any size).
        size: ``(H, W)`` of the animator.
        box: ``(4,)`` x0, y0, x1, y1 square box in frame pixels (the reference frame's face,
            with margin) or None: then :meth:`crops` fits whole frames to ``size``.
        landmarks: ``(N, 478, 3)`` face landmarks in frame pixels, when the animator asks
            for them (:attr:`Requirements.driving_landmarks`), else None.
        pad: letterbox (True) or centre-crop (False) when fitting whole frames.
    """

    frames: list[np.ndarray]
    size: tuple[int, int]
    box: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    pad: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    def crops(self) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 at :attr:`size`: the box's crop of each frame, or the whole
        frame fitted to ``size`` (a note on the first refit is kept in :attr:`notes`)."""
        if self.box is not None:
            return np.stack([crop_face(f, self.box, self.size[0]) for f in self.frames])
        fitted = []
        for frame in self.frames:
            image, note = fit_to_shape(frame, self.size, mode="pad" if self.pad else "crop")
            fitted.append(image)
            if note and not self.notes:
                self.notes.append(note)
        return np.stack(fitted)


#: the retargeting controls (:class:`Retarget`), as ``animate`` names its options
RETARGET_CONTROLS = ("head", "expression", "eyes", "lips", "blinks")
#: what ``--blinks`` takes: ``keep`` the driver's blinks (the lids follow ``eyes``) or
#: ``suppress`` them (the lids keep the source's opening; the gaze still follows)
BLINKS = ("keep", "suppress")
#: the largest retargeting factor: beyond 1 the motion is exaggerated (a 10-degree turn
#: becomes 20 at 2); further than that the warp and the generators leave what they
#: render plausibly
MAX_RETARGET = 2.0


@dataclass(frozen=True)
class Retarget:
    """How much of each part of the driver's motion the source takes (relative to the
    reference frame, or to the source's own head for absolute transfer).

    Each factor: 0 keeps the source's, 1 follows the driver (default), between scales
    the motion, up to :data:`MAX_RETARGET` exaggerates it.

    Attributes:
        head: the head's rotation (its axis-angle turn scaled, so rotations interpolate
            on the sphere), scale (in log space) and translation.
        expression: the non-rigid motion of the face (brows, cheeks, nose...); also of
            the eyes and lips where their own factor is None.
        eyes: the lids (opening) and the gaze; None: as ``expression``.
        lips: the mouth and jaw; None: as ``expression``.
        blinks: ``keep`` (the lids open and close as ``eyes`` says) or ``suppress``
            (the lids keep the source's opening, the gaze still follows).
    """

    head: float = 1.0
    expression: float = 1.0
    eyes: float | None = None
    lips: float | None = None
    blinks: str = "keep"

    def __post_init__(self):
        for name in ("head", "expression", "eyes", "lips"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= MAX_RETARGET:
                raise ReanimateError(
                    f"--{name} {value:g}: expected a factor from 0 (keep the source's) to 1 (follow the "
                    f"driver) or up to {MAX_RETARGET:g} (exaggerate)"
                )
        if self.blinks not in BLINKS:
            raise ReanimateError(f"--blinks {self.blinks}: expected {' or '.join(BLINKS)}")

    @classmethod
    def lips_only(cls, lips: float = 1.0) -> Retarget:
        """Only the mouth follows (dubbing): head, expression and eyes stay the source's."""
        return cls(head=0.0, expression=0.0, eyes=0.0, lips=lips)

    @property
    def eye_factor(self) -> float:
        return self.expression if self.eyes is None else self.eyes

    @property
    def lip_factor(self) -> float:
        return self.expression if self.lips is None else self.lips

    @property
    def lid_factor(self) -> float:
        """How much of the driver's change of eye opening the lids take."""
        return 0.0 if self.blinks == "suppress" else self.eye_factor

    def used(self) -> tuple[str, ...]:
        """The controls that change anything (a family must honour them): ``eyes`` and
        ``lips`` only where they differ from ``expression``."""
        used = {
            "head": self.head != 1.0,
            "expression": self.expression != 1.0,
            "eyes": self.eye_factor != self.expression,
            "lips": self.lip_factor != self.expression,
            "blinks": self.blinks != "keep",
        }
        return tuple(name for name in RETARGET_CONTROLS if used[name])

    def refuse_uncovered(self, family: str, covered: tuple[str, ...], hint: str = "", option: str = "") -> None:
        """A one-line :class:`ReanimateError` naming ``family`` and the first used control
        it does not cover (:attr:`Requirements.retarget`); nothing when all are.
        ``option``: how the user asked for it (default: the control's option and value)."""
        missing = [name for name in self.used() if name not in covered]
        if not missing:
            return
        name = missing[0]
        factor = getattr(self, name)
        option = option or (f"--blinks {self.blinks}" if name == "blinks" else f"--{name} {factor:g}")
        if covered:
            what = f"only retargets {', '.join(f'--{c}' for c in covered)}"
            if name in ("eyes", "lips", "blinks") and "expression" in covered:
                what += f" (it cannot tell the {'eyes' if name == 'blinks' else name} from the rest of the expression)"
        else:
            what = "cannot retarget parts of the motion (its keypoints mix head, expression, eyes and lips)"
        raise ReanimateError(f"{option}: the {family} model {what}" + (f"; {hint}" if hint else ""))

    def head_motion(
        self, source: HeadMotion, target: HeadMotion, expression: torch.Tensor | float | None = None
    ) -> HeadMotion:
        """``target`` (batch B, the source's canonical points) moved back towards
        ``source`` (batch 1 or B): the turn ``R_S^T R_T`` as an axis-angle scaled by
        :attr:`head`, the scale ratio to the power :attr:`head`, the translation
        interpolated; the expression interpolated by ``expression`` (a factor, or ``(N,)``
        per point; default :attr:`expression`). Factors of 1 return ``target``."""
        weights = self.expression if expression is None else expression
        if self.head == 1.0 and (not torch.is_tensor(weights) and weights == 1.0):
            return target
        b = target.batch_size
        rotation_s = source.rotation_matrix().expand(b, 3, 3)
        turn = rotation_power(rotation_s.transpose(-1, -2) @ target.rotation_matrix(), self.head)
        scale_s = source.scale.expand(b)
        translation_s = source.translation.expand(b, -1)
        if torch.is_tensor(weights):
            weights = weights.to(target.expression).view(1, -1, 1)
        expression_s = source.expression.expand(b, -1, -1)
        return target.with_(
            rotation=rotation_to_euler(rotation_s @ turn).to(target.rotation),
            scale=scale_s * (target.scale / scale_s) ** self.head,
            translation=translation_s + self.head * (target.translation - translation_s),
            expression=expression_s + weights * (target.expression - expression_s),
        )


@dataclass(frozen=True)
class Transfer:
    """How motion goes from the driver to the source (names follow the reference demo)."""

    relative: bool = True  # relative motion transfer (FOMM supp. A.3); False = absolute keypoints
    adapt_scale: bool = False  # scale relative motion by the keypoint hull-area ratio
    relative_jacobian: bool = True  # with relative motion, also transfer the Jacobians (FOMM Eq. 14)
    # which head attributes to take from the driver (MMFA Sec. 4.3); the others stay the
    # source's. Anything but all of them needs Requirements.head_attributes to cover it.
    attributes: tuple[str, ...] = HEAD_ATTRIBUTES
    # how much of the head, expression, eyes and lips to take (and whether blinks); any
    # control in use (Retarget.used) needs Requirements.retarget to cover it
    retarget: Retarget = field(default_factory=Retarget)


@dataclass
class Rendered:
    """Output of :meth:`Animator.render` for N frames: ``frames`` ``(N, H, W, 3)`` uint8 at
    the animator's size and, where the model has one, ``occlusion`` ``(N, 1, h, w)`` in [0, 1]."""

    frames: np.ndarray
    occlusion: Any = None


class Animator(abc.ABC):
    """One model family's way to animate a source (see the module docstring).

    A family adds one :class:`Animator` subclass and one registry entry
    (:func:`reanimate.animators.registry.register_family`).
    """

    #: the registry name of the family
    family: str = "animator"
    #: one-line notes for the user about how the model was loaded (instances set a list)
    notes: list[str] | tuple[str, ...] = ()
    #: the numeric precision its networks run at (:data:`reanimate.precision.PRECISIONS`)
    precision: str = "fp32"

    def set_precision(self, precision: str) -> None:
        """Run the networks at ``precision`` (``animate --precision``). ``fp16`` reaches a
        family when it is built (``BuildRequest.fp16``, honoured or refused there); this
        default records it, keeps ``fp32`` and refuses ``bf16`` in one line. A family
        with a bfloat16 path overrides it (FOMM: :meth:`FommAnimator.set_precision`)."""
        if precision == "bf16":
            raise ReanimateError(f"--precision bf16: {self.describe()} has no bfloat16 path (drop --precision)")
        if precision not in ("fp32", "fp16"):
            raise ReanimateError(f"--precision {precision}: expected fp32, bf16 or fp16")
        self.precision = precision

    @property
    @abc.abstractmethod
    def requirements(self) -> Requirements:
        """What the pipeline must provide."""

    @abc.abstractmethod
    def encode_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> Source:
        """``image`` ``(H, W, 3)`` uint8 at :attr:`Requirements.size`; ``landmarks``
        ``(478, 3)`` in its pixels for face models (None otherwise)."""

    @abc.abstractmethod
    def estimate(self, batch: DrivingBatch) -> Motion:
        """The motion of each driving frame (not yet transferred to the source)."""

    def with_keypoints(self, motion: Motion, keypoints: Keypoints) -> Motion:
        """``motion`` with its keypoints replaced (after temporal smoothing). Families
        whose motion holds more than keypoints update that too."""
        return dataclasses.replace(motion, keypoints=keypoints)

    @abc.abstractmethod
    def render(self, source: Source, motion: Motion, reference: Motion | None, transfer: Transfer) -> Rendered:
        """The source moved by ``motion``; relative to ``reference`` (the driving frame
        aligned with the source, one frame) when ``transfer.relative``."""

    def describe(self) -> str:
        """One line for notes and logs."""
        return self.family


class HeadControl(abc.ABC):
    """What an :class:`Animator` that can pose the source's head directly adds (MMFA
    paper Sec. 4.3, motion attribute editing): ``reanimate edit`` turns, scales, moves
    the head and changes its expression through these, for any family.

    Heads are :class:`~reanimate.motion.HeadMotion` objects in the family's own frame and
    units; a pipeline only changes them relative to :meth:`source_head` (angles add,
    scale multiplies, translation moves by :attr:`translation_unit` per crop width,
    expression blends), so it never needs to know those units.
    """

    #: ``(yaw, pitch, roll)`` degrees: the largest change from the source's pose that the
    #: family renders plausibly (the pipeline warns beyond it); None: no known limit
    plausible_turn: tuple[float, float, float] | None = None

    @property
    @abc.abstractmethod
    def translation_unit(self) -> float:
        """HeadMotion translation units per crop width (the landmark animator: crop
        pixels, so the crop's side; MMFA: 2.0, keypoints in [-1, 1]). A class attribute
        does as well."""

    @abc.abstractmethod
    def source_head(self, source: Source) -> HeadMotion:
        """The source's own head (batch 1); rendered by :meth:`render_heads`, it gives the
        source back."""

    @abc.abstractmethod
    def expression_from(self, source: Source, image: np.ndarray, landmarks: np.ndarray | None = None) -> torch.Tensor:
        """Another face's expression as an ``expression`` field for the source's head.

        Args:
            image: ``(H, W, 3)`` uint8 at :attr:`Requirements.size` (cropped like the
                source); landmarks: its ``(478, 3)`` face landmarks in those pixels, for
                face models (None otherwise).

        Returns:
            ``(1, N, 3)`` tensor, the shape of :meth:`source_head`'s ``expression``.
        """

    @abc.abstractmethod
    def render_heads(self, source: Source, heads: HeadMotion) -> Rendered:
        """The source rendered with N absolute target heads (batch N, the canonical
        points of :meth:`source_head`): ``frames`` ``(N, H, W, 3)``."""


class KeypointTensorSteps(abc.ABC):
    """An optional capability beyond the :class:`Animator` interface, declared by
    subclassing: the model's steps on float tensors with 2-D keypoints (FOMM's animator).
    Where present, reconstruction and pair animation run them on the float frames as the
    reference code does, give the driving frames to a background motion predictor, and
    measure the flow (``reanimate reconstruct --gt-flow``).

    Attributes: ``device``; ``config`` (its ``align_corners``, for the keypoint
    equivariance error)."""

    device: Any
    config: Any

    @abc.abstractmethod
    def detect(self, images):
        """``(N, 3, H, W)`` in [0, 1] -> :class:`~reanimate.motion.Keypoints`."""

    @abc.abstractmethod
    def encode(self, image):
        """``(1, 3, H, W)`` -> the source's state for :meth:`generate`."""

    @abc.abstractmethod
    def generate(self, source, kp_driving: Keypoints, kp_initial: Keypoints | None, transfer: Transfer, driving=None):
        """The generator's output (``prediction`` ``(N, 3, H, W)``, ``deformation``…);
        ``driving``: the driving frames, for a background motion predictor."""
