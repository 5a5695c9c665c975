"""A differentiable PyTorch port of MediaPipe's face-landmark network.

The MMFA paper's landmark loss L_M (Eq. 9) compares face landmarks of the generated and
the real frame, which needs a landmark detector that gradients flow through. This module
runs MediaPipe's own model, ``face_landmark_with_attention.tflite`` (the one behind
``FaceMesh(refine_landmarks=True)``, which :mod:`reanimate.faces.mesh` uses), in PyTorch:

* the weights are read at run time from the ``.tflite`` file inside the installed
  ``mediapipe`` wheel (:mod:`reanimate.faces.tflite` parses it); nothing is copied;
* :class:`TFLiteGraph` interprets the model's operator list with PyTorch operations,
  mapping TF Lite's NHWC layout and SAME/VALID padding exactly, and MediaPipe's three
  custom operators of the attention model (``Landmarks2TransformMatrix``,
  ``TransformTensorBilinear``, ``TransformLandmarks``: the lips and eyes are re-sampled
  from a 48x48 feature map in crops placed by the first mesh estimate) with
  differentiable equivalents;
* :class:`FaceLandmarkNet` crops the face box with ``grid_sample`` exactly as MediaPipe's
  ``ImageToTensorCalculator`` samples its region of interest (without rotation), runs the
  graph and merges mesh, lips, eyes and irises into 478 points as MediaPipe's
  ``TensorsToFaceLandmarksWithAttention`` graph does.

Against MediaPipe's own ``FaceLandmarkCpu`` graph on the same region of the bundled
example (``tests/test_landmark_net.py``) the 478 points differ by 0.027 px on average
(at most 0.09 px) in a 302 px box. ``face_landmark.tflite`` (468 points, no custom
operators) loads too, ``FaceLandmarkNet.from_mediapipe(path)``: 0.018 px (at most 0.07).

Speed per 256x256 image (torch 2.13 CPU, a 2-core machine shared with other jobs, load
about 7; one thread): forward 35 ms, forward + backward 80 ms one image at a time; 19 ms
and 39 ms in batches of 8. Two threads were slower on that busy machine (oneDNN's
threads wait for each other): 50-70 ms forward.

Unlike MediaPipe's pipeline, there is no rotation alignment and no face detector: the
caller gives the (square) face box, e.g. from :class:`reanimate.faces.FaceMesh`'s
landmarks of the real frame.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reanimate.errors import InputError, ReanimateError
from reanimate.faces import tflite
from reanimate.faces.optional import INSTALL_HINT
from reanimate.faces.topology import (
    FACE_OVAL,
    LEFT_EYE,
    LEFT_EYEBROW,
    LEFT_IRIS,
    LEFT_IRIS_CENTER,
    LIPS_OUTER,
    MIDLINE,
    NOSE_TIP,
    RIGHT_EYE,
    RIGHT_EYEBROW,
    RIGHT_IRIS,
    RIGHT_IRIS_CENTER,
)

#: The model inside the mediapipe package: 468 mesh points refined around lips and eyes,
#: plus 5 points per iris (MediaPipe's ``refine_landmarks=True``).
ATTENTION_MODEL = "modules/face_landmark/face_landmark_with_attention.tflite"
#: The plain mesh model (468 points), for reference.
MESH_MODEL = "modules/face_landmark/face_landmark.tflite"

# Points of MediaPipe's FACEMESH_NOSE connections (face_mesh_connections.py).
_NOSE = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)


def _union(*groups) -> tuple[int, ...]:
    return tuple(dict.fromkeys(i for group in groups for i in group))


#: Landmark groups of the MMFA landmark loss (paper Eq. 9 weighs face, mouth and pupil
#: points of its 145-point detector apart), as indices into the 478 points:
#: "face": face oval, brows, eye contours, nose (FACEMESH_NOSE) and the midline from the
#: forehead to the nose tip (115 points); "mouth": the outer lip contour (20);
#: "pupil": both iris centres and their 4-point rings (10).
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "face": _union(
        FACE_OVAL,
        RIGHT_EYEBROW,
        LEFT_EYEBROW,
        RIGHT_EYE,
        LEFT_EYE,
        _NOSE,
        MIDLINE[: MIDLINE.index(NOSE_TIP) + 1],
    ),
    "mouth": LIPS_OUTER,
    "pupil": (RIGHT_IRIS_CENTER, *RIGHT_IRIS, LEFT_IRIS_CENTER, *LEFT_IRIS),
}

_ACTIVATIONS = {
    "NONE": None,
    "RELU": F.relu,
    "RELU6": F.relu6,
    "RELU_N1_TO_1": lambda x: x.clamp(-1.0, 1.0),
    "TANH": torch.tanh,
}


def mediapipe_model_path(name: str = ATTENTION_MODEL) -> Path:
    """Path of a model file inside the installed mediapipe package (found without
    importing it); one-line :class:`ReanimateError` if mediapipe or the file is missing."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ReanimateError(f"the differentiable face landmarks read MediaPipe's model: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise InputError(path, "MediaPipe's face landmark model is missing; reinstall mediapipe==0.10.21")
    return path


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF's SAME padding of one axis: (before, after); the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _nchw(array: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against an NHWC tensor, made to broadcast against NCHW."""
    array = array.reshape((1,) * (4 - array.ndim) + array.shape)
    return array.transpose(0, 3, 1, 2)


class TFLiteGraph(nn.Module):
    """A TF Lite float graph as a PyTorch module (frozen weights, batch of any size).

    Activations of rank 4 are kept in PyTorch's NCHW layout; the other ranks in TF Lite's.
    The graph's batch dimension (1 in the file) becomes the batch of the input.

    Args:
        model: a parsed ``.tflite`` model.

    ``forward(x)`` takes the graph's input as ``(B, C, H, W)`` (rank 4) and returns the
    graph's outputs in TF Lite's layout (NHWC for rank 4), in the file's order.
    """

    #: The operators of MediaPipe's face, face-with-attention and iris landmark models.
    SUPPORTED = frozenset(
        {
            "ADD",
            "MUL",
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "MAX_POOL_2D",
            "PRELU",
            "PAD",
            "RESHAPE",
            "STRIDED_SLICE",
            "DEQUANTIZE",
            "Landmarks2TransformMatrix",
            "TransformTensorBilinear",
            "TransformLandmarks",
        }
    )

    def __init__(self, model: tflite.Model):
        super().__init__()
        graph = model.graph
        missing = sorted(model.opcodes - self.SUPPORTED)
        if missing:
            raise ValueError(f"unsupported TF Lite operators: {', '.join(missing)}")
        self.shapes = [t.shape for t in graph.tensors]
        self.inputs = tuple(graph.inputs)
        self.outputs = tuple(graph.outputs)
        self.weights = nn.ParameterDict()
        self._constants: dict[int, np.ndarray] = {t.index: t.data for t in graph.tensors if t.data is not None}
        self._steps: list[tuple] = []
        for op in graph.operators:
            self._compile(op)
        for p in self.weights.values():
            p.requires_grad_(False)

    # -- building ---------------------------------------------------------------------

    def _const(self, index: int) -> np.ndarray | None:
        return self._constants.get(index)

    def _required(self, index: int, op: str) -> np.ndarray:
        const = self._const(index)
        if const is None:
            raise ValueError(f"{op} with a computed {self.shapes[index]} operand is not supported")
        return const

    def _weight(self, array: np.ndarray) -> str:
        key = f"w{len(self.weights)}"
        self.weights[key] = nn.Parameter(torch.from_numpy(np.array(array, dtype=np.float32)))
        return key

    def _operand(self, index: int, like: int) -> tuple[str, object]:
        """An input of an element-wise op: a runtime value or a weight laid out to match
        the other operand (``like``)."""
        const = self._const(index)
        if const is None:
            return ("value", index)
        const = const.astype(np.float32)
        if len(self.shapes[like]) == 4:
            const = _nchw(const)
        return ("weight", self._weight(const))

    def _compile(self, op: tflite.Operator) -> None:
        name, ins, outs, opts = op.opcode, op.inputs, op.outputs, op.options
        if name == "DEQUANTIZE":
            # float16 weights, stored as constants and widened by DEQUANTIZE: folded here.
            self._constants[outs[0]] = self._required(ins[0], name).astype(np.float32)
            return
        if all(self._const(i) is not None for i in ins if i >= 0):
            raise ValueError(f"{name} of constants only is not supported")
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weight = self._required(ins[1], name).astype(np.float32)
            if name == "CONV_2D":
                weight, groups = weight.transpose(0, 3, 1, 2), 1  # (O, kh, kw, I) -> (O, I, kh, kw)
            else:
                weight, groups = weight.transpose(3, 0, 1, 2), self.shapes[ins[0]][3]  # (1, kh, kw, C*M)
            bias = self._const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            stride = (opts["stride_h"], opts["stride_w"])
            dilation = (opts["dilation_h"], opts["dilation_w"])
            pad = self._padding(ins[0], weight.shape[2:], stride, dilation, opts["padding"])
            step = (
                "conv",
                self._weight(weight),
                None if bias is None else self._weight(bias),
                stride,
                dilation,
                groups,
                pad,
            )
            self._steps.append((step, ins[0], outs[0], opts["activation"]))
        elif name == "MAX_POOL_2D":
            kernel, stride = (opts["filter_h"], opts["filter_w"]), (opts["stride_h"], opts["stride_w"])
            pad = self._padding(ins[0], kernel, stride, (1, 1), opts["padding"])
            self._steps.append((("pool", kernel, stride, pad), ins[0], outs[0], opts["activation"]))
        elif name in ("ADD", "MUL"):
            a, b = self._operand(ins[0], ins[1]), self._operand(ins[1], ins[0])
            self._steps.append((("binary", name, a, b), None, outs[0], opts.get("activation", "NONE")))
        elif name == "PRELU":
            alpha = self._operand(ins[1], ins[0])
            self._steps.append((("prelu", alpha), ins[0], outs[0], "NONE"))
        elif name == "PAD":
            pads = self._required(ins[1], name)
            pads = [int(v) for v in pads.reshape(-1, 2)[::-1].reshape(-1)]  # last axis first, as F.pad wants
            if len(self.shapes[ins[0]]) == 4:  # NHWC paddings -> NCHW: W, H, C, N
                pads = pads[2:4] + pads[4:6] + pads[0:2] + pads[6:8]
            self._steps.append((("pad", tuple(pads)), ins[0], outs[0], "NONE"))
        elif name == "RESHAPE":
            shape = self.shapes[outs[0]]
            self._steps.append((("reshape", tuple(shape[1:])), ins[0], outs[0], "NONE"))
        elif name == "STRIDED_SLICE":
            begin, end, strides = (self._required(i, name) for i in ins[1:4])
            if opts.get("ellipsis_mask") or opts.get("new_axis_mask") or opts.get("offset"):
                raise ValueError("STRIDED_SLICE with ellipsis, new axes or offsets is not supported")
            slices = []
            for axis, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
                b = None if opts["begin_mask"] >> axis & 1 else b
                e = None if opts["end_mask"] >> axis & 1 else e
                if opts["shrink_axis_mask"] >> axis & 1:
                    slices.append(b)
                else:
                    slices.append(slice(b, e, s) if axis else slice(None))  # keep the batch
            self._steps.append((("slice", tuple(slices)), ins[0], outs[0], "NONE"))
        elif name == "Landmarks2TransformMatrix":
            attrs = tflite.parse_flexbuffer(op.custom_options)
            if op.version != 2:
                raise ValueError(f"{name} version {op.version} is not supported")
            self._steps.append((("landmarks_to_matrix", attrs), ins[0], outs[0], "NONE"))
        elif name == "TransformTensorBilinear":
            if op.version != 2:
                raise ValueError(f"{name} version {op.version} is not supported")
            size = self.shapes[outs[0]][1:3]
            self._steps.append((("transform_tensor", ins[1], tuple(size)), ins[0], outs[0], "NONE"))
        elif name == "TransformLandmarks":
            if op.version != 2:
                raise ValueError(f"{name} version {op.version} is not supported")
            self._steps.append((("transform_landmarks", ins[1]), ins[0], outs[0], "NONE"))
        else:  # pragma: no cover - SUPPORTED and this list are kept in step
            raise ValueError(f"unsupported TF Lite operator {name}")

    def _padding(self, index, kernel, stride, dilation, padding: str) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) for an NHWC input of the graph."""
        if padding == "VALID":
            return (0, 0, 0, 0)
        _, height, width, _ = self.shapes[index]
        top, bottom = _same_padding(height, kernel[0], stride[0], dilation[0])
        left, right = _same_padding(width, kernel[1], stride[1], dilation[1])
        return (left, right, top, bottom)

    # -- running ----------------------------------------------------------------------

    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        assert len(inputs) == len(self.inputs), f"expected {len(self.inputs)} inputs, got {len(inputs)}"
        values: dict[int, torch.Tensor] = {}
        for index, x in zip(self.inputs, inputs):
            expected = self.shapes[index]
            if len(expected) == 4:
                assert tuple(x.shape[1:]) == (expected[3], expected[1], expected[2]), (
                    f"input {index}: expected (B, {expected[3]}, {expected[1]}, {expected[2]}), got {tuple(x.shape)}"
                )
            values[index] = x
        for step, source, target, activation in self._steps:
            x = values[source] if source is not None else None
            y = self._run(step, x, values)
            if (fn := _ACTIVATIONS[activation]) is not None:
                y = fn(y)
            values[target] = y
        return [self._tf_layout(values[i], i) for i in self.outputs]

    def _value(self, operand, values):
        kind, ref = operand
        return self.weights[ref] if kind == "weight" else values[ref]

    def _tf_layout(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return x.permute(0, 2, 3, 1) if len(self.shapes[index]) == 4 else x

    def _run(self, step: tuple, x: torch.Tensor | None, values: dict) -> torch.Tensor:
        kind = step[0]
        if kind == "conv":
            _, weight, bias, stride, dilation, groups, pad = step
            left, right, top, bottom = pad
            if left == right and top == bottom:
                padding = (top, left)
            else:
                x, padding = F.pad(x, pad), (0, 0)
            bias = None if bias is None else self.weights[bias]
            return F.conv2d(x, self.weights[weight], bias, stride, padding, dilation, groups)
        if kind == "pool":
            _, kernel, stride, pad = step
            if any(pad):  # TF's max pooling ignores the padding
                x = F.pad(x, pad, value=-math.inf)
            return F.max_pool2d(x, kernel, stride)
        if kind == "binary":
            _, name, a, b = step
            a, b = self._value(a, values), self._value(b, values)
            return a + b if name == "ADD" else a * b
        if kind == "prelu":
            alpha = self._value(step[1], values)
            if alpha.dim() == 4 and alpha.shape[0] == 1 and alpha.shape[2:] == (1, 1):
                return F.prelu(x, alpha.reshape(-1))
            return torch.where(x >= 0, x, x * alpha)
        if kind == "pad":
            return F.pad(x, step[1])
        if kind == "reshape":
            if x.dim() == 4:
                x = x.permute(0, 2, 3, 1)
            y = x.reshape(x.shape[0], *step[1])
            return y.permute(0, 3, 1, 2) if y.dim() == 4 else y
        if kind == "slice":
            if x.dim() == 4:
                return x.permute(0, 2, 3, 1)[step[1]].permute(0, 3, 1, 2)
            return x[step[1]]
        if kind == "landmarks_to_matrix":
            return landmarks_to_transform_matrix(x, step[1])
        if kind == "transform_tensor":
            return transform_tensor_bilinear(x, values[step[1]], step[2])
        if kind == "transform_landmarks":
            return transform_landmarks(x, values[step[1]])
        raise AssertionError(kind)  # pragma: no cover


# MediaPipe's custom TF Lite operators (mediapipe/util/tflite/operations/*.cc, version 2),
# rewritten with differentiable tensor operations.


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 2)`` rotation matrices by ``angle`` ``(B,)`` radians."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def landmarks_to_transform_matrix(landmarks: torch.Tensor, attrs: dict) -> torch.Tensor:
    """``Landmarks2TransformMatrix`` v2: the ``(B, 4, 4)`` matrix taking pixels of an
    ``output_width`` x ``output_height`` crop to the landmarks' frame. The crop is the
    bounding box of the ``subset_idxs`` landmarks in a frame rotated so that the line from
    ``left_rotation_idx`` to ``right_rotation_idx`` is at ``target_rotation_radians``,
    scaled by ``scale_x`` and ``scale_y`` about its centre.

    Args:
        landmarks: ``(B, N, 3)`` points (x, y used).
    """
    xy = landmarks[..., :2]
    left, right = xy[:, attrs["left_rotation_idx"]], xy[:, attrs["right_rotation_idx"]]
    delta = right - left
    rotation = attrs["target_rotation_radians"] - torch.atan2(delta[:, 1], delta[:, 0])
    subset = xy[:, list(attrs["subset_idxs"])]  # (B, S, 2)
    forward = _rotation(rotation)
    rotated = subset @ forward.transpose(1, 2)
    low, high = rotated.amin(1), rotated.amax(1)
    size = high - low
    centre = ((low + high) / 2)[:, None] @ _rotation(-rotation).transpose(1, 2)  # back to the input frame
    out_w, out_h = attrs["output_width"], attrs["output_height"]
    scale = torch.stack([attrs["scale_x"] * size[:, 0] / out_w, attrs["scale_y"] * size[:, 1] / out_h], -1)
    # M = shift(centre) @ rotate(-rotation) @ scale @ shift(-output size / 2), in 2-D.
    linear = _rotation(-rotation) * scale[:, None, :]
    offset = centre[:, 0] - (linear @ torch.tensor([out_w / 2, out_h / 2], dtype=xy.dtype, device=xy.device))
    matrix = torch.zeros(xy.shape[0], 4, 4, dtype=xy.dtype, device=xy.device)
    matrix[:, :2, :2] = linear
    matrix[:, :2, 3] = offset
    matrix[:, 2, 2] = 1
    matrix[:, 3, 3] = 1
    return matrix


def transform_tensor_bilinear(features: torch.Tensor, matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``TransformTensorBilinear`` v2: sample ``features`` ``(B, C, H, W)`` at the crop
    pixels mapped by ``matrix`` ``(B, 4, 4)`` (pixel centres at +0.5, the "align corners"
    correction of version 2); samples that fall outside the map are 0, neighbours outside
    it count as 0. Returns ``(B, C, size[0], size[1])``."""
    height, width = features.shape[2:]
    out_h, out_w = size
    # T -> S @ T @ A with A adding and S subtracting half a pixel.
    rows = matrix[:, :2, [0, 1, 3]]
    offset = rows[:, :, 2] + 0.5 * (rows[:, :, 0] + rows[:, :, 1]) - 0.5
    ys, xs = torch.meshgrid(
        torch.arange(out_h, dtype=features.dtype, device=features.device),
        torch.arange(out_w, dtype=features.dtype, device=features.device),
        indexing="ij",
    )
    pixels = torch.stack([xs, ys], -1).reshape(1, -1, 2)  # (1, P, 2)
    coords = pixels @ rows[:, :, :2].transpose(1, 2) + offset[:, None]  # (B, P, 2) in input pixels
    inside = (
        (coords[..., 0] >= 0) & (coords[..., 0] <= width - 1) & (coords[..., 1] >= 0) & (coords[..., 1] <= height - 1)
    )
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], dtype=features.dtype, device=features.device)
    grid = (coords * scale - 1).reshape(-1, out_h, out_w, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled * inside.reshape(-1, 1, out_h, out_w).to(features.dtype)


def transform_landmarks(landmarks: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``TransformLandmarks`` v2: apply the 2-D part of ``matrix`` ``(B, 4, 4)`` to x, y of
    ``landmarks`` ``(B, N, 2 or 3)``; z is kept."""
    xy = landmarks[..., :2] @ matrix[:, :2, :2].transpose(1, 2) + matrix[:, None, :2, 3]
    return torch.cat([xy, landmarks[..., 2:]], -1)


def _subset_of(graph: tflite.Graph, index: int) -> tuple[int, ...]:
    """The ``subset_idxs`` of the ``Landmarks2TransformMatrix`` that places the crop an
    output was predicted in (MediaPipe refines the mesh points of that same list)."""
    producers = {out: op for op in graph.operators for out in op.outputs}
    pending, seen = [index], set()
    while pending:
        op = producers.get(pending.pop())
        if op is None or id(op) in seen:
            continue
        seen.add(id(op))
        if op.opcode == "Landmarks2TransformMatrix":
            return tuple(tflite.parse_flexbuffer(op.custom_options)["subset_idxs"])
        pending.extend(i for i in op.inputs if i >= 0)
    raise ValueError(f"output {graph.tensors[index].name} does not come from a landmark crop")


class FaceLandmarkNet(nn.Module):
    """MediaPipe's face-landmark network in PyTorch (frozen weights, differentiable in
    the image and the boxes).

    Args:
        model: the parsed ``face_landmark_with_attention.tflite`` (478 points) or
            ``face_landmark.tflite`` (468 points).

    Use :meth:`from_mediapipe` to read the model from the installed mediapipe package.
    """

    def __init__(self, model: tflite.Model):
        super().__init__()
        graph = model.graph
        self.net = TFLiteGraph(model)
        _, self.input_height, self.input_width, _ = graph.tensors[graph.inputs[0]].shape
        sizes = [int(np.prod(graph.tensors[i].shape[1:])) for i in graph.outputs]
        mesh_points = sizes[0] // 3
        # Output order of MediaPipe's models: mesh, [lips, left eye, right eye, left iris,
        # right iris,] face flag (see TensorsToFaceLandmarksWithAttention).
        if len(sizes) == 7:
            refined = [_subset_of(graph, i) for i in graph.outputs[1:4]]
            if [len(r) * 2 for r in refined] != sizes[1:4] or sizes[4:6] != [10, 10]:
                raise ValueError(f"unexpected outputs of a face landmark model with attention: {sizes}")
            self.refinements = refined
            self.num_landmarks = mesh_points + 10
        elif len(sizes) == 2:
            self.refinements = []
            self.num_landmarks = mesh_points
        else:
            raise ValueError(f"not a face landmark model: outputs of sizes {sizes}")
        self.mesh_points = mesh_points
        # MediaPipe gives each iris the mean depth of its eye's contour (LEFT_EYE/RIGHT_EYE
        # are the same 16 points as its ``indexes_for_average``). The model's "left" eye is
        # the one on the image's left: the person's right.
        self.iris_depth = (RIGHT_EYE, LEFT_EYE)
        for contour, refined in zip(self.iris_depth, self.refinements[1:]):
            assert set(contour) <= set(refined), "the model's eye crops do not cover topology's eye contours"

    @classmethod
    def from_mediapipe(cls, path: str | os.PathLike | None = None) -> FaceLandmarkNet:
        """The network with the weights of ``path`` (default: the attention model inside
        the installed mediapipe). One-line errors for a missing or unusable file."""
        path = mediapipe_model_path() if path is None else Path(path)
        model = tflite.read_tflite(path)
        try:
            return cls(model)
        except ValueError as exc:
            raise InputError(path, f"not a MediaPipe face landmark model ({exc})") from None

    def crop(self, images: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """The model's input: each box of ``images`` resampled to ``(B, 3, 192, 192)``.

        Output pixel (u, v) samples the image at ``(x0 + u * w / 192, y0 + v * h / 192)``
        in pixels whose centres are at integers, bilinearly, edge pixels repeated outside
        the image: the mapping of MediaPipe's ``ImageToTensorCalculator`` for an unrotated
        region (whose corners it maps to the output's corners)."""
        batch, _, height, width = images.shape
        boxes = self._boxes(images, boxes)
        u = torch.arange(self.input_width, dtype=images.dtype, device=images.device)
        v = torch.arange(self.input_height, dtype=images.dtype, device=images.device)
        x0, y0, x1, y1 = boxes.unbind(-1)
        xs = x0[:, None] + u * ((x1 - x0) / self.input_width)[:, None]  # (B, S)
        ys = y0[:, None] + v * ((y1 - y0) / self.input_height)[:, None]
        gx = (2 * xs / max(width - 1, 1) - 1)[:, None, :].expand(batch, self.input_height, self.input_width)
        gy = (2 * ys / max(height - 1, 1) - 1)[:, :, None].expand(batch, self.input_height, self.input_width)
        grid = torch.stack([gx, gy], -1)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def _boxes(self, images: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        batch, _, height, width = images.shape
        if boxes is None:
            whole = torch.tensor([0.0, 0.0, width, height], dtype=images.dtype, device=images.device)
            return whole.expand(batch, 4)
        boxes = torch.as_tensor(boxes, dtype=images.dtype, device=images.device)
        assert boxes.shape == (batch, 4), f"boxes: expected ({batch}, 4), got {tuple(boxes.shape)}"
        return boxes

    def predict(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks in pixels of the model's input and the face-presence logit.

        Args:
            crops: ``(B, 3, 192, 192)`` RGB in [0, 1] (MediaPipe's float range for this
                model: no further normalisation).

        Returns:
            ``(B, N, 3)`` x, y, z in input pixels (z: depth in the scale of x, smaller =
            nearer the camera) and ``(B,)`` logits (MediaPipe keeps faces whose sigmoid
            is at least 0.5).
        """
        outputs = [o.reshape(o.shape[0], -1) for o in self.net(crops)]
        batch = crops.shape[0]
        mesh = outputs[0].reshape(batch, -1, 3)
        if not self.refinements:
            return mesh, outputs[1][:, 0]
        xy = mesh[..., :2]
        for indices, refined in zip(self.refinements, outputs[1:4]):
            xy = xy.index_copy(1, torch.tensor(indices, device=xy.device), refined.reshape(batch, -1, 2))
        points = [torch.cat([xy, mesh[..., 2:]], -1)]
        for iris, contour in zip(outputs[4:6], self.iris_depth):
            depth = mesh[:, list(contour), 2].mean(1, keepdim=True)  # (B, 1)
            points.append(torch.cat([iris.reshape(batch, -1, 2), depth[:, :, None].expand(batch, 5, 1)], -1))
        return torch.cat(points, 1), outputs[6][:, 0]

    def forward(self, images: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """Face landmarks of ``images``.

        Args:
            images: ``(B, 3, H, W)`` float RGB in [0, 1].
            boxes: ``(B, 4)`` x0, y0, x1, y1 in pixels: square face boxes (default: the
                whole image, which should then be a square face crop).

        Returns:
            ``(B, N, 3)`` landmarks (N = 478 for the default model, indices as in
            :mod:`reanimate.faces.topology`) in pixels of ``images``: x, y, and z in the
            scale of x, as :class:`reanimate.faces.FaceMesh` gives them.
        """
        assert images.dim() == 4 and images.shape[1] == 3, f"expected (B, 3, H, W) images, got {tuple(images.shape)}"
        boxes = self._boxes(images, boxes)
        points, _ = self.predict(self.crop(images, boxes))
        scale_x = (boxes[:, 2] - boxes[:, 0]) / self.input_width
        scale_y = (boxes[:, 3] - boxes[:, 1]) / self.input_height
        scale = torch.stack([scale_x, scale_y, scale_x], -1)[:, None]
        origin = torch.stack([boxes[:, 0], boxes[:, 1], torch.zeros_like(boxes[:, 0])], -1)[:, None]
        return origin + points * scale
