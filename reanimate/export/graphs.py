"""The three graphs a FOMM-family model is exported as, each an ``nn.Module`` on plain
tensors (what ``torch.onnx.export`` traces), named inputs and outputs beside it.

``keypoints``
    the motion estimator (CNN keypoint detector or motion transformer):
    ``image (B, C, H, W) in [0, 1] -> keypoints (B, K, 2)[, jacobians (B, K, 2, 2)]``.
    Run on the source once and on every batch of driving frames.
``source_encoder``
    what the generator needs from the source, computed once per source
    (:meth:`~reanimate.models.Generator.encode`): ``source (1, C, H, W) -> features``
    ``(1, F, H / 2^n, W / 2^n)``, ``motion_input`` (the source at the dense-motion
    network's resolution) and, with U-Net skips, ``skip0 … skip{n-1}`` (the encoder's
    finer outputs, ``skip{i}`` at ``H / 2^i``).
``generator``
    dense motion and the rest of the generator (:meth:`~reanimate.models.Generator.decode`):
    the source encoding (and the ``source`` image itself with skips), ``kp_source (1, K, 2)``
    ``[, jacobian_source (1, K, 2, 2)]``, ``kp_driving (B, K, 2)[, jacobian_driving
    (B, K, 2, 2)]`` -> ``prediction (B, C, H, W)`` in [0, 1] ``[, occlusion (B, 1, h, w)]``.

The background motion predictor (MRAA) is left out: animation keeps the background
still (the identity), as :class:`~reanimate.animators.fomm.FommAnimator` does.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import Generator, SourceEncoding
from ..motion import Keypoints

#: the graphs in the order they run, with their file names in an export folder
GRAPH_FILES = {
    "keypoints": "keypoints.onnx",
    "source_encoder": "source_encoder.onnx",
    "generator": "generator.onnx",
}


class KeypointGraph(nn.Module):
    """``image (B, C, H, W) -> keypoints (B, K, 2)[, jacobians (B, K, 2, 2)]``."""

    def __init__(self, estimator: nn.Module):
        super().__init__()
        self.estimator = estimator
        self.jacobians = bool(estimator.config.estimate_jacobian)
        self.inputs = ("image",)
        self.outputs = ("keypoints", "jacobians") if self.jacobians else ("keypoints",)

    def forward(self, image: torch.Tensor):
        kp = self.estimator(image)
        return (kp.value, kp.jacobian) if self.jacobians else kp.value


class SourceEncoderGraph(nn.Module):
    """``source (1, C, H, W) -> features, motion_input[, skip0 … skip{n-1}]``."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator
        skips = generator.config.num_down_blocks if generator.config.skips else 0
        self.inputs = ("source",)
        self.outputs = ("features", "motion_input", *(f"skip{i}" for i in range(skips)))

    def forward(self, source: torch.Tensor):
        encoding = self.generator.encode(source)
        skips = encoding.skips[:-1] if encoding.skips is not None else []  # skips[-1] is the features
        return (encoding.features, encoding.motion_input, *skips)


class GeneratorGraph(nn.Module):
    """The source encoding and both keypoint sets -> ``prediction[, occlusion]``
    (inputs in the order of :attr:`inputs`)."""

    def __init__(self, generator: Generator, jacobians: bool):
        super().__init__()
        self.generator = generator
        self.jacobians = jacobians
        encoder = SourceEncoderGraph(generator)
        image = ("source",) if generator.config.skips else ()  # the skips blend in the warped source
        kp_source = ("kp_source", "jacobian_source") if jacobians else ("kp_source",)
        kp_driving = ("kp_driving", "jacobian_driving") if jacobians else ("kp_driving",)
        self.inputs = (*image, *encoder.outputs, *kp_source, *kp_driving)
        occlusion = generator.config.dense_motion_params.estimate_occlusion_map
        self.outputs = ("prediction", "occlusion") if occlusion else ("prediction",)

    def forward(self, *tensors: torch.Tensor):
        named = dict(zip(self.inputs, tensors))
        skips = None
        if self.generator.config.skips:
            n = self.generator.config.num_down_blocks
            skips = [named[f"skip{i}"] for i in range(n)] + [named["features"]]
        encoding = SourceEncoding(named.get("source"), named["features"], named["motion_input"], skips)
        kp_source = Keypoints(named["kp_source"], named.get("jacobian_source"))
        kp_driving = Keypoints(named["kp_driving"], named.get("jacobian_driving"))
        out = self.generator.decode(encoding, kp_driving, kp_source)
        return (out.prediction, out.occlusion_map) if len(self.outputs) == 2 else out.prediction
