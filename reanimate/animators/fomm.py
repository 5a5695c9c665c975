"""The FOMM family (First Order Motion Model, with either motion estimator: the CNN
keypoint detector or the motion transformer) behind the :class:`Animator` interface.

Relative motion transfer is FOMM supp. Eq. 13-14 (:func:`reanimate.motion.relative_motion`).
Its learned keypoints mix the head's pose with the expression (one keypoint moves with
both), so it takes no retargeting controls (``animate --head`` etc.: refused,
:attr:`~reanimate.animators.base.Requirements.retarget` is empty).
Besides the interface, :class:`FommAnimator` exposes the model steps on tensors
(:meth:`~FommAnimator.detect`, :meth:`~FommAnimator.encode`, :meth:`~FommAnimator.generate`)
for the pipelines that use float predictions when a family offers them (reconstruction
and pairs: :class:`~reanimate.animators.base.KeypointTensorSteps`; attention maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..device import autocast, select_device
from ..errors import ReanimateError
from ..io import fit_to_shape, frames_to_tensor, tensor_to_frames
from ..models import FirstOrderModel, ModelConfig, SourceEncoding, load_config
from ..motion import Keypoints, relative_motion
from .base import Animator, DrivingBatch, KeypointTensorSteps, Motion, Rendered, Requirements, Source, Transfer
from .registry import BuildRequest, Family, register_family

# The official crop-video.py's default margin around the face.
FOMM_CROP_INCREASE = 0.1


@dataclass
class FommSource:
    """What :meth:`FommAnimator.encode` keeps of a source: ``image`` ``(1, C, H, W)`` in
    [0, 1] on the model's device, its keypoints and the generator's encoding."""

    image: torch.Tensor
    keypoints: Keypoints
    encoding: SourceEncoding


class FommAnimator(Animator, KeypointTensorSteps):
    """A :class:`FirstOrderModel` on a device.

    ``fp16`` runs the networks under float16 autocast (CUDA only); ``autocast_dtype``
    picks another autocast type, e.g. bfloat16 on CPU. Keypoints and motion geometry
    always stay in float32.
    """

    family = "fomm"

    def __init__(
        self,
        model: FirstOrderModel,
        device: str | torch.device = "auto",
        fp16: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ):
        self.device = select_device(device) if isinstance(device, str) else device
        if fp16 and self.device.type != "cuda":
            raise ReanimateError("--fp16 needs a CUDA device")
        self.autocast_dtype = torch.float16 if fp16 else autocast_dtype
        self.model = model.eval().to(self.device)
        self.config: ModelConfig = model.config
        self.notes: list[str] = []

    @property
    def requirements(self) -> Requirements:
        return Requirements(
            size=self.config.image_size,
            face=self.config.face,
            crop_increase=FOMM_CROP_INCREASE,
            device=self.device.type,
        )

    def describe(self) -> str:
        return f"fomm ({self.config.name}, {self.config.motion_estimator})"

    # -- tensor steps ----------------------------------------------------------------

    def _autocast(self):
        return autocast(self.device, self.autocast_dtype)

    def prepare(self, frames, pad: bool = False) -> tuple[torch.Tensor, list[str]]:
        """uint8 frames of any size -> ``(N, C, H, W)`` at the model's resolution, on its device."""
        notes = []
        fitted = []
        for frame in frames:
            image, note = fit_to_shape(frame, self.config.image_size, mode="pad" if pad else "crop")
            fitted.append(image)
            if note:
                notes.append(note)
        return frames_to_tensor(np.stack(fitted)).to(self.device), notes

    @torch.inference_mode()
    def detect(self, images: torch.Tensor) -> Keypoints:
        """``(N, C, H, W)`` -> keypoints (float32)."""
        with self._autocast():
            kp = self.model.kp_detector(images)
        return kp.map(torch.Tensor.float)

    @torch.inference_mode()
    def encode(self, image: torch.Tensor) -> FommSource:
        """``(1, C, H, W)`` in [0, 1] -> keypoints and generator features of the source."""
        with self._autocast():
            encoding = self.model.generator.encode(image)
        return FommSource(image, self.detect(image), encoding)

    @torch.inference_mode()
    def generate(
        self,
        source: FommSource,
        kp_driving: Keypoints,
        kp_initial: Keypoints | None,
        transfer: Transfer,
        driving: torch.Tensor | None = None,
    ):
        """Move the source to the driving keypoints (relative to ``kp_initial`` if
        ``transfer.relative``). Returns the generator's output (prediction, occlusion map…).

        ``driving`` ``(N, C, H, W)``: the driving frames themselves, for a generator with a
        background motion predictor (the reconstruction protocol, as the MoTrans/MRAA
        code; animation of another image keeps the background still, as theirs does).
        """
        transfer.retarget.refuse_uncovered(self.family, ())
        if transfer.relative:
            kp_target = relative_motion(
                source.keypoints,
                kp_driving,
                kp_initial,
                transfer.adapt_scale,
                relative_jacobian=transfer.relative_jacobian,
            )
        else:
            kp_target = kp_driving
        generator = self.model.generator
        with self._autocast():
            background = generator.predict_background(source.image, driving) if driving is not None else None
            return generator.decode(source.encoding, kp_target, source.keypoints, background=background)

    # -- the Animator interface ------------------------------------------------------

    def encode_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> Source:
        state = self.encode(frames_to_tensor(image[None]).to(self.device))
        return Source(image, state.keypoints, state)

    def estimate(self, batch: DrivingBatch) -> Motion:
        return Motion(self.detect(frames_to_tensor(batch.crops()).to(self.device)))

    def render(self, source: Source, motion: Motion, reference: Motion | None, transfer: Transfer) -> Rendered:
        kp_initial = reference.keypoints if reference is not None else None
        out = self.generate(source.state, motion.keypoints, kp_initial, transfer)
        return Rendered(tensor_to_frames(out.prediction), out.occlusion_map)


def _build(request: BuildRequest) -> FommAnimator:
    config = request.config
    if config is not None and not isinstance(config, ModelConfig):
        config = load_config(config)
    notes: list[str] = []
    model = ckpt.load(request.checkpoint, config, align_corners=request.align_corners, notes=notes)
    animator = FommAnimator(model, device=request.device, fp16=request.fp16)
    animator.notes.extend(notes)
    return animator


def _model_info(config_name: str) -> tuple[str, list[tuple[str, int, int]]]:
    from ..models.complexity import model_report

    config = load_config(config_name)
    h, w = config.image_size
    return f"{config_name} ({config.motion_estimator}) at {h}x{w}", list(model_report(config))


FAMILY = register_family(
    Family(
        "fomm",
        "First Order Motion Model (CNN keypoints or the motion transformer); needs --checkpoint",
        build=_build,
        uses_checkpoint=True,
        model_info=_model_info,
    )
)

__all__ = ["FOMM_CROP_INCREASE", "FommAnimator", "FommSource"]
