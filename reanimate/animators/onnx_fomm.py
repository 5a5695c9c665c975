"""The FOMM family exported to ONNX (``reanimate export --format onnx``), run by ONNX
Runtime on the CPU behind the :class:`Animator` interface: ``reanimate animate
--backend onnxruntime --checkpoint EXPORT_DIR``.

The steps are those of :class:`~reanimate.animators.fomm.FommAnimator` on the three
graphs of :mod:`reanimate.export.graphs`: the source's keypoints and generator encoding
once per source, keypoints per batch of driving frames, relative motion in PyTorch (FOMM
supp. Eq. 13-14, :func:`reanimate.motion.relative_motion`, on ``(N, K, 2)`` tensors: no
graph needed), then the generator graph. The registry entry :data:`FAMILY` is what
``--backend onnxruntime`` selects (:func:`backend_request`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ReanimateError
from ..export.manifest import is_export_folder
from ..export.runtime import OnnxFommModel
from ..io import frames_to_tensor, tensor_to_frames
from ..motion import Keypoints, relative_motion
from .base import Animator, DrivingBatch, Motion, Rendered, Requirements, Source, Transfer
from .fomm import FOMM_CROP_INCREASE
from .registry import BuildRequest, Family, register_family

#: ``animate --backend``: PyTorch (any family) or ONNX Runtime (FOMM-family exports)
BACKENDS = ("torch", "onnxruntime")
#: the registry name of the onnxruntime build of the FOMM family
ONNX_FAMILY = "fomm-onnx"


@dataclass
class OnnxSource:
    """A source as the graphs need it: its keypoints (batch 1) and the source encoder's
    outputs by name (:meth:`~reanimate.export.runtime.OnnxFommModel.encode`)."""

    keypoints: Keypoints
    encoding: dict[str, np.ndarray]


class OnnxFommAnimator(Animator):
    """An :class:`~reanimate.export.runtime.OnnxFommModel` (three ONNX Runtime sessions
    on the CPU) as an animator of the FOMM family."""

    family = "fomm"

    def __init__(self, model: OnnxFommModel):
        self.model = model
        self.config = model.config
        self.notes: list[str] = []

    @property
    def requirements(self) -> Requirements:
        return Requirements(
            size=self.config.image_size, face=self.config.face, crop_increase=FOMM_CROP_INCREASE, device="cpu"
        )

    def describe(self) -> str:
        return f"fomm ({self.config.name}, {self.config.motion_estimator}) on onnxruntime"

    def encode_source(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> Source:
        tensor = frames_to_tensor(image[None])
        keypoints = self.model.detect(tensor)
        return Source(image, keypoints, OnnxSource(keypoints, self.model.encode(tensor)))

    def estimate(self, batch: DrivingBatch) -> Motion:
        return Motion(self.model.detect(frames_to_tensor(batch.crops())))

    @torch.inference_mode()
    def render(self, source: Source, motion: Motion, reference: Motion | None, transfer: Transfer) -> Rendered:
        transfer.retarget.refuse_uncovered(self.family, ())
        state: OnnxSource = source.state
        target = motion.keypoints
        if transfer.relative:
            target = relative_motion(
                state.keypoints,
                motion.keypoints,
                reference.keypoints,
                transfer.adapt_scale,
                relative_jacobian=transfer.relative_jacobian,
            )
        prediction, occlusion = self.model.generate(state.encoding, state.keypoints, target)
        return Rendered(tensor_to_frames(prediction), occlusion)


def backend_request(backend: str, model: str, checkpoint, config, fp16: bool = False) -> tuple[str, object]:
    """``animate --backend``: the family and config to build. ``torch`` keeps them (an
    export folder as ``--checkpoint`` is refused with a hint); ``onnxruntime`` builds
    :data:`ONNX_FAMILY` from an export folder. One-line errors for what it cannot honour."""
    if backend not in BACKENDS:
        raise ReanimateError(f"--backend {backend}: expected {' or '.join(BACKENDS)}")
    if backend == "torch":
        if is_export_folder(checkpoint):
            raise ReanimateError(
                f"--checkpoint {checkpoint} is an ONNX export: run it with --backend onnxruntime "
                "(or give the PyTorch checkpoint)"
            )
        return model, config
    if model not in ("auto", "fomm", ONNX_FAMILY):
        raise ReanimateError(
            f"--backend onnxruntime runs exports of the fomm family (FOMM, the motion transformer), not --model {model}"
        )
    if checkpoint is None:
        raise ReanimateError(
            "--backend onnxruntime needs --checkpoint EXPORT_DIR (made by reanimate export --format onnx)"
        )
    if config is not None:
        raise ReanimateError("--config: an ONNX export carries its config (drop --config)")
    if fp16:
        raise ReanimateError("--fp16: the onnxruntime backend runs in float32 on the CPU (drop --fp16)")
    return ONNX_FAMILY, None


def _build(request: BuildRequest) -> OnnxFommAnimator:
    from ..export.runtime import require

    require("onnxruntime", "--backend onnxruntime")
    animator = OnnxFommAnimator(OnnxFommModel(request.checkpoint))
    exported = animator.config.align_corners
    if request.align_corners is not None and request.align_corners != exported:
        raise ReanimateError(
            f"--align-corners {str(request.align_corners).lower()}: the export has align_corners="
            f"{str(exported).lower()} in its graphs; export the checkpoint again with that option"
        )
    if request.device not in ("auto", "cpu"):
        animator.notes.append(f"--device {request.device}: the onnxruntime backend runs on the CPU")
    return animator


FAMILY = register_family(
    Family(
        ONNX_FAMILY,
        "an ONNX export of the fomm family (reanimate export --format onnx), run by ONNX Runtime on the CPU; "
        "needs --checkpoint EXPORT_DIR",
        build=_build,
        uses_checkpoint=True,
    )
)

__all__ = ["BACKENDS", "ONNX_FAMILY", "OnnxFommAnimator", "OnnxSource", "backend_request"]
