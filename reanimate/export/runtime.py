"""Run an ONNX export (:mod:`reanimate.export.onnx`) with ONNX Runtime on the CPU.

:class:`OnnxFommModel` holds one inference session per graph and offers the same three
steps as the PyTorch model: :meth:`~OnnxFommModel.detect` keypoints,
:meth:`~OnnxFommModel.encode` a source once, :meth:`~OnnxFommModel.generate` frames from
keypoints. Tensors go in and come out as float32 ``torch.Tensor`` on the CPU, so the
motion geometry around the graphs (relative transfer) stays the library's.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np
import torch

from ..errors import ReanimateError
from ..motion import Keypoints
from .manifest import Manifest, read_manifest

#: how to install what export and the onnxruntime backend need (pyproject's extra)
INSTALL_HINT = 'pip install "reanimate[onnx]" (or: pip install "onnx>=1.16" "onnxruntime>=1.18")'


def require(module: str, what: str) -> ModuleType:
    """Import ``onnx`` or ``onnxruntime``, or a one-line error saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ReanimateError(f"{what} needs the {module} package: {INSTALL_HINT}") from None


def cpu_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime session on the CPU provider with ``threads`` intra-op threads
    (default: as many as PyTorch uses, so both backends share the same budget)."""
    ort = require("onnxruntime", "the onnxruntime backend")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no optimiser chatter on stderr
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ReanimateError(f"{path}: ONNX Runtime cannot load the graph ({first[:200]})") from None


class OnnxFommModel:
    """The three graphs of an export folder, each in a CPU session.

    ``source`` states are dicts of the source encoder's outputs by name (plus the
    ``source`` image, which the generator takes when the model has U-Net skips).
    """

    def __init__(self, folder: str | os.PathLike | Manifest, threads: int | None = None):
        self.manifest = folder if isinstance(folder, Manifest) else read_manifest(folder)
        self.config = self.manifest.config
        self.sessions = {name: cpu_session(self.manifest.path(name), threads) for name in self.manifest.graphs}

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = self.manifest.graphs[graph].input_names
        return self.sessions[graph].run(None, {name: feeds[name] for name in names})

    def detect(self, images: torch.Tensor) -> Keypoints:
        """``(N, C, H, W)`` in [0, 1] -> keypoints ``(N, K, 2)`` (and Jacobians ``(N, K, 2, 2)``)."""
        outputs = self._run("keypoints", {"image": _array(images)})
        return Keypoints(*(torch.from_numpy(o) for o in outputs))

    def encode(self, image: torch.Tensor) -> dict[str, np.ndarray]:
        """``(1, C, H, W)`` in [0, 1] -> the source encoding the generator graph takes."""
        image = _array(image)
        outputs = self._run("source_encoder", {"source": image})
        encoding = dict(zip(self.manifest.graphs["source_encoder"].output_names, outputs))
        encoding["source"] = image
        return encoding

    def generate(
        self, encoding: dict[str, np.ndarray], kp_source: Keypoints, kp_driving: Keypoints
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The source moved to ``kp_driving`` (N frames): ``prediction (N, C, H, W)`` in
        [0, 1] and the occlusion map ``(N, 1, h, w)`` (None when the model has none)."""
        feeds = dict(encoding, kp_source=_array(kp_source.value), kp_driving=_array(kp_driving.value))
        if self.manifest.jacobians:
            feeds["jacobian_source"] = _array(kp_source.jacobian)
            feeds["jacobian_driving"] = _array(kp_driving.jacobian)
        outputs = [torch.from_numpy(o) for o in self._run("generator", feeds)]
        return outputs[0], outputs[1] if len(outputs) > 1 else None


def _array(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
