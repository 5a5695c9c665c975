"""The FOMM family (First Order Motion Model, with either motion estimator: the CNN
keypoint detector or the motion transformer) behind the :class:`Animator` interface.

Relative motion transfer is FOMM supp. Eq. 13-14 (:func:`reanimate.motion.relative_motion`).
Its learned keypoints mix the head's pose with the expression (one keypoint moves with
both), so it takes no retargeting controls (``animate --head`` etc.: refused,
:attr:`~reanimate.animators.base.Requirements.retarget` is empty).

Precision (``animate --precision``, :mod:`reanimate.precision`): :meth:`FommAnimator.set_precision`
runs the networks under bfloat16 (CPU, CUDA) or float16 (CUDA) autocast and lays the
convolutions out channels-last where that is faster (:data:`CHANNELS_LAST`).

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
from ..device import autocast, release_free_memory, select_device
from ..errors import ReanimateError
from ..io import fit_to_shape, frames_to_tensor, tensor_to_frames
from ..models import FirstOrderModel, ModelConfig, SourceEncoding, load_config
from ..models.inference import SubpixelUpConv, fold_batch_norms, subpixel_upsampling
from ..motion import Keypoints, relative_motion
from ..precision import resolve_precision
from .base import Animator, DrivingBatch, KeypointTensorSteps, Motion, Rendered, Requirements, Source, Transfer
from .registry import BuildRequest, Family, register_family

# The official crop-video.py's default margin around the face.
FOMM_CROP_INCREASE = 0.1
#: per device type and precision: whether the convolutions run channels-last (NHWC).
#: On the CPU oneDNN's convolutions want NHWC and otherwise reorder every input and
#: output; vox-256 measured faster so in both precisions (benchmarks/animate_speed.py).
#: CUDA: not measured, so the layout is left as it is.
CHANNELS_LAST = {("cpu", "fp32"): True, ("cpu", "bf16"): True}
#: the modules whose weights autocast casts to the lower precision on every call: with
#: bf16 on the CPU they are held in bfloat16 once (the same products, half the memory)
LOW_PRECISION_MODULES = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear, SubpixelUpConv)


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
    picks another autocast type, e.g. bfloat16 on CPU (autocast only: the model is not
    changed; :meth:`set_precision` also prepares it). Keypoints and motion geometry
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
        self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.autocast_dtype, "fp32")
        self.memory_format = torch.contiguous_format
        self.model = model.eval().to(self.device)
        self.config: ModelConfig = model.config
        self.notes: list[str] = []

    def set_precision(self, precision: str) -> None:
        """Run the networks at ``precision`` (``fp32``, ``bf16``, ``fp16``; see
        :func:`~reanimate.precision.resolve_precision`: fp16 only on CUDA, bf16 as fp32
        with a note where the device has no bfloat16 units).

        Prepares the model in place for it: batch norms folded into their convolutions
        and the generator's up blocks computed at their input's resolution
        (:mod:`reanimate.models.inference`: the same outputs to float rounding, less
        time and memory per frame), channels-last convolutions where
        :data:`CHANNELS_LAST` says they are faster and, for bf16 on the CPU, the weights
        of :data:`LOW_PRECISION_MODULES` held in bfloat16 (autocast would cast them on
        every call). Call it once, on a model this animator owns (never one in training).
        """
        chosen = resolve_precision(precision, self.device)
        if chosen.note:
            self.notes.append(chosen.note)
        self.precision, self.autocast_dtype = chosen.name, chosen.dtype
        fold_batch_norms(self.model)
        # (the largest tensors of a frame are the generator's upsampled inputs; the
        # hourglasses' up blocks are small at low resolution, and their weights large)
        subpixel_upsampling(self.model.generator.up_blocks)
        if chosen.name == "bf16" and self.device.type == "cpu":
            for module in self.model.modules():
                if isinstance(module, LOW_PRECISION_MODULES):
                    module.to(torch.bfloat16)
        if CHANNELS_LAST.get((self.device.type, chosen.name), False):
            # after the cast: the copies it makes are then of the smaller weights
            self.memory_format = torch.channels_last
            self.model.to(memory_format=torch.channels_last)
        release_free_memory()  # the weights replaced above

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
        return self.to_model(frames_to_tensor(np.stack(fitted))), notes

    def to_model(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images on the model's device, in its memory format."""
        return images.to(self.device).contiguous(memory_format=self.memory_format)

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
        state = self.encode(self.to_model(frames_to_tensor(image[None])))
        return Source(image, state.keypoints, state)

    def estimate(self, batch: DrivingBatch) -> Motion:
        return Motion(self.detect(self.to_model(frames_to_tensor(batch.crops()))))

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
    release_free_memory()  # what reading the checkpoint left
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

__all__ = ["CHANNELS_LAST", "FOMM_CROP_INCREASE", "FommAnimator", "FommSource", "LOW_PRECISION_MODULES"]
