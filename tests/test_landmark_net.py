"""The TF Lite reader and the PyTorch port of MediaPipe's face-landmark network: a
hand-built model file, facts of the shipped one, agreement with MediaPipe's own graph on
the bundled example, gradients, and one-line errors. The MediaPipe parts are skipped
without mediapipe."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from reanimate.errors import InputError, ReanimateError
from reanimate.faces import landmark_net, tflite
from reanimate.faces.landmark_net import LANDMARK_GROUPS, FaceLandmarkNet, TFLiteGraph
from reanimate.io import read_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "source.png"

# -- a tiny FlatBuffer writer (children after parents, so every offset points forward) --


class _Writer:
    """Serialises nested values: ("table", [field or None, ...]), ("tables", [...]),
    ("vec", fmt, [...]), ("str", text), ("bytes", data) and scalars (fmt, value)."""

    def __init__(self):
        self.buf = bytearray(8)

    def finish(self, root) -> bytes:
        struct.pack_into("<I", self.buf, 0, self.write(root))
        self.buf[4:8] = b"TFL3"
        return bytes(self.buf)

    def _ref(self, at: int, child) -> None:
        struct.pack_into("<I", self.buf, at, self.write(child) - at)

    def write(self, value) -> int:
        kind = value[0]
        at = len(self.buf)
        if kind == "table":
            fields = value[1]
            self.buf += bytes(4 + 2 * len(fields))
            table = len(self.buf)
            self.buf += struct.pack("<i", table - at)
            slots, children = [], []
            for field in fields:
                slots.append(0 if field is None else len(self.buf) - table)
                if field is None:
                    continue
                if field[0] in ("table", "tables", "vec", "str", "bytes"):
                    children.append((len(self.buf), field))
                    self.buf += bytes(4)
                else:
                    self.buf += struct.pack("<" + field[0], field[1])
            struct.pack_into(f"<HH{len(fields)}H", self.buf, at, 4 + 2 * len(fields), len(self.buf) - table, *slots)
            for where, child in children:
                self._ref(where, child)
            return table
        if kind == "vec":
            self.buf += struct.pack(f"<I{len(value[2])}{value[1]}", len(value[2]), *value[2])
        elif kind in ("str", "bytes"):
            data = value[1].encode() if kind == "str" else value[1]
            self.buf += struct.pack("<I", len(data)) + data + (b"\0" if kind == "str" else b"")
        elif kind == "tables":
            self.buf += struct.pack("<I", len(value[1])) + bytes(4 * len(value[1]))
            for k, table in enumerate(value[1]):
                self._ref(at + 4 + 4 * k, ("table", table))
        else:
            raise AssertionError(kind)
        return at


def _tiny_model(weight: np.ndarray, bias: np.ndarray) -> bytes:
    """input (1, 4, 5, 2) -> DEQUANTIZE'd float16 1x1 CONV_2D (3 outputs), RELU -> output."""

    def tensor(shape, type_code, buffer, name):
        return [("vec", "i", shape), ("b", type_code), ("I", buffer), ("str", name)]

    def buffer(data: bytes | None):
        return [None if data is None else ("bytes", data)]

    conv_options = ("table", [("b", 1), ("i", 1), ("i", 1), ("b", 1)])  # VALID, strides 1, RELU
    graph = [
        (
            "tables",
            [
                tensor([1, 4, 5, 2], 0, 0, "input"),
                tensor([3, 1, 1, 2], 1, 1, "weight_fp16"),
                tensor([3, 1, 1, 2], 0, 0, "weight"),
                tensor([3], 0, 2, "bias"),
                tensor([1, 4, 5, 3], 0, 0, "output"),
            ],
        ),
        ("vec", "i", [0]),
        ("vec", "i", [4]),
        (
            "tables",
            [
                [("I", 0), ("vec", "i", [1]), ("vec", "i", [2])],
                [("I", 1), ("vec", "i", [0, 2, 3]), ("vec", "i", [4]), ("B", 1), conv_options],
            ],
        ),
        ("str", "main"),
    ]
    model = [
        ("I", 3),
        ("tables", [[("b", 6)], [("b", 3), None, ("i", 2)]]),  # DEQUANTIZE v1, CONV_2D v2
        ("tables", [graph]),
        ("str", "tiny"),
        ("tables", [buffer(None), buffer(weight.astype("<f2").tobytes()), buffer(bias.astype("<f4").tobytes())]),
    ]
    return _Writer().finish(("table", model))


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(3, 1, 1, 2)).astype(np.float16)
    bias = rng.normal(size=3).astype(np.float32)
    return _tiny_model(weight, bias), weight, bias


def test_reader_on_a_hand_built_model(tiny):
    data, weight, bias = tiny
    model = tflite.parse_tflite(data)
    graph = model.graph
    assert (model.version, model.description, graph.name) == (3, "tiny", "main")
    assert [t.shape for t in graph.tensors] == [(1, 4, 5, 2), (3, 1, 1, 2), (3, 1, 1, 2), (3,), (1, 4, 5, 3)]
    assert [t.dtype for t in graph.tensors] == ["float32", "float16", "float32", "float32", "float32"]
    assert graph.tensors[0].data is None and graph.tensors[2].data is None
    np.testing.assert_array_equal(graph.tensors[1].data, weight)
    np.testing.assert_array_equal(graph.tensors[3].data, bias)
    assert (graph.inputs, graph.outputs) == ((0,), (4,))
    dequantize, conv = graph.operators
    assert (dequantize.opcode, dequantize.inputs, dequantize.outputs, dequantize.version) == (
        "DEQUANTIZE",
        (1,),
        (2,),
        1,
    )
    assert (conv.opcode, conv.inputs, conv.version) == ("CONV_2D", (0, 2, 3), 2)
    assert conv.options == {
        "padding": "VALID",
        "stride_w": 1,
        "stride_h": 1,
        "activation": "RELU",
        "dilation_w": 1,  # defaults of fields the file leaves out
        "dilation_h": 1,
    }


def test_graph_runs_the_hand_built_model(tiny):
    data, weight, bias = tiny
    net = TFLiteGraph(tflite.parse_tflite(data))
    assert all(not p.requires_grad for p in net.parameters())
    x = torch.rand(2, 4, 5, 2)  # NHWC, batch of 2 although the file says 1
    (y,) = net(x.permute(0, 3, 1, 2))
    expected = np.maximum(np.einsum("bhwi,oi->bhwo", x.numpy(), weight[:, 0, 0].astype(np.float32)) + bias, 0)
    assert y.shape == (2, 4, 5, 3)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_same_padding_is_tensorflows():
    # The odd pixel goes after: 96 -> 48 with a stride-2 3x3 kernel pads (0, 1).
    assert landmark_net._same_padding(96, 3, 2, 1) == (0, 1)
    assert landmark_net._same_padding(48, 3, 1, 1) == (1, 1)
    assert landmark_net._same_padding(5, 1, 1, 1) == (0, 0)


def test_flexbuffer_map():
    # The custom options of TransformTensorBilinear in face_landmark_with_attention.tflite.
    data = b"output_height\x00output_width\x00\x02\x1c\x0f\x02\x01\x02\x10\x10\x04\x04\x04$\x01"
    assert tflite.parse_flexbuffer(data) == {"output_height": 16, "output_width": 16}
    with pytest.raises(ValueError):
        tflite.parse_flexbuffer(b"\x00\x01\x07")


# -- errors -----------------------------------------------------------------------------


def _one_line(error: Exception) -> str:
    message = str(error)
    assert "\n" not in message and message
    return message


def test_missing_and_garbage_files(tmp_path, tiny):
    with pytest.raises(InputError) as info:
        FaceLandmarkNet.from_mediapipe(tmp_path / "absent.tflite")
    assert "absent.tflite" in _one_line(info.value) and "cannot read" in str(info.value)

    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(os.urandom(300))
    with pytest.raises(InputError, match="not a TF Lite model") as info:
        FaceLandmarkNet.from_mediapipe(garbage)
    _one_line(info.value)

    data = tiny[0]
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt TF Lite model") as info:
        FaceLandmarkNet.from_mediapipe(truncated)
    _one_line(info.value)

    other = tmp_path / "other.tflite"
    other.write_bytes(data)
    with pytest.raises(InputError, match="not a MediaPipe face landmark model") as info:
        FaceLandmarkNet.from_mediapipe(other)
    _one_line(info.value)


def test_missing_mediapipe_is_one_line(monkeypatch):
    monkeypatch.setattr(landmark_net.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ReanimateError, match="pip install --no-deps mediapipe") as info:
        FaceLandmarkNet.from_mediapipe()
    _one_line(info.value)


# -- the shipped model against MediaPipe -------------------------------------------------


@pytest.fixture(scope="module")
def mediapipe():
    return pytest.importorskip("mediapipe", reason="the face landmark model ships with mediapipe")


@pytest.fixture(scope="module")
def nets(mediapipe) -> dict[bool, FaceLandmarkNet]:
    """The attention model (478 points) and the plain mesh model (468), by with_attention."""
    return {
        True: FaceLandmarkNet.from_mediapipe(),
        False: FaceLandmarkNet.from_mediapipe(landmark_net.mediapipe_model_path(landmark_net.MESH_MODEL)),
    }


def test_shipped_model_facts(mediapipe):
    model = tflite.read_tflite(landmark_net.mediapipe_model_path())
    graph = model.graph
    assert len(graph.tensors) == 1096
    assert graph.tensors[graph.inputs[0]].shape == (1, 192, 192, 3)
    assert [graph.tensors[i].shape[-1] for i in graph.outputs] == [1404, 160, 142, 142, 10, 10, 1]
    assert {"Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks"} <= model.opcodes
    assert {t.dtype for t in graph.tensors if t.data is not None} == {"float16", "int32"}


def _mediapipe_landmarks(image: np.ndarray, roi: tuple[float, float, float], with_attention: bool) -> np.ndarray:
    """MediaPipe's own FaceLandmarkCpu graph (crop, TF Lite, decoding, projection) on the
    unrotated square region ``roi`` = (centre x, centre y, side) in pixels; ``(N, 3)``
    pixels as reanimate.faces.FaceMesh gives them."""
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2
    from mediapipe.framework.formats import rect_pb2
    from mediapipe.python import packet_creator, packet_getter
    from mediapipe.python._framework_bindings import calculator_graph, image_frame, resource_util

    from reanimate.faces.mesh import quiet_native_stderr

    resource_util.set_resource_dir(str(landmark_net.mediapipe_model_path().parents[3]))
    config = text_format.Parse(
        """
        input_stream: "IMAGE:image"
        input_stream: "ROI:roi"
        output_stream: "LANDMARKS:landmarks"
        node {
          calculator: "FaceLandmarkCpu"
          input_stream: "IMAGE:image"
          input_stream: "ROI:roi"
          input_side_packet: "WITH_ATTENTION:with_attention"
          output_stream: "LANDMARKS:landmarks"
        }
        """,
        calculator_pb2.CalculatorGraphConfig(),
    )
    height, width = image.shape[:2]
    cx, cy, side = roi
    rect = rect_pb2.NormalizedRect(x_center=cx / width, y_center=cy / height, width=side / width, height=side / height)
    found = []
    with quiet_native_stderr():
        graph = calculator_graph.CalculatorGraph(graph_config=config)
        graph.observe_output_stream("landmarks", lambda stream, packet: found.append(packet_getter.get_proto(packet)))
        graph.start_run(input_side_packets={"with_attention": packet_creator.create_bool(with_attention)})
        frame = packet_creator.create_image_frame(image_format=image_frame.ImageFormat.SRGB, data=image)
        graph.add_packet_to_input_stream("image", frame.at(0))
        graph.add_packet_to_input_stream("roi", packet_creator.create_proto(rect).at(0))
        graph.close()
    assert len(found) == 1, "MediaPipe found no face in the region"
    return np.array([(p.x * width, p.y * height, p.z * width) for p in found[0].landmark], dtype=np.float32)


@pytest.fixture(scope="module")
def example(mediapipe):
    """The bundled example and a square region around MediaPipe's face: (image, roi)."""
    from reanimate.faces import FaceMesh

    image = read_image(EXAMPLE)
    with FaceMesh() as mesh:
        (face, *_) = mesh.detect(image)
    x0, y0, x1, y1 = face.box
    # Half as large again as the mesh's bounds, like MediaPipe's own region from the mesh.
    return image, ((x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0))


@pytest.mark.parametrize("with_attention", [True, False], ids=["478-attention", "468-mesh"])
def test_matches_mediapipe_on_the_example(nets, example, with_attention):
    image, (cx, cy, side) = example
    expected = _mediapipe_landmarks(image, (cx, cy, side), with_attention)
    net = nets[with_attention]
    images = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    boxes = torch.tensor([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])
    with torch.no_grad():
        points = net(images, boxes)[0].numpy()
    assert points.shape == expected.shape == (478 if with_attention else 468, 3)
    error = np.linalg.norm(points[:, :2] - expected[:, :2], axis=1)
    # Measured: 478 points mean 0.027 px, max 0.09 px (468 points: about the same) in a
    # 302 px box; the rest is MediaPipe's uint8 crop and XNNPACK's arithmetic.
    assert error.mean() < 1.0, f"mean {error.mean():.3f} px, max {error.max():.3f} px"
    assert error.max() < 1.0, f"max {error.max():.3f} px"
    np.testing.assert_allclose(points[:, 2], expected[:, 2], atol=1.0)


def test_gradients_reach_the_image_not_the_weights(nets, example):
    net = nets[True]
    image, (cx, cy, side) = example
    crop = image[int(cy - side / 2) :, int(cx - side / 2) :][: int(side), : int(side)]
    images = (torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255).requires_grad_(True)
    points = net(images)
    assert points.shape == (1, 478, 3)
    loss = sum(points[:, list(group), :2].mean() for group in LANDMARK_GROUPS.values())
    loss.backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
    assert sum(1 for _ in net.parameters()) > 300


def test_landmark_groups():
    sizes = {name: len(group) for name, group in LANDMARK_GROUPS.items()}
    assert sizes == {"face": 115, "mouth": 20, "pupil": 10}
    for group in LANDMARK_GROUPS.values():
        assert len(set(group)) == len(group) and all(0 <= i < 478 for i in group)
    assert not set(LANDMARK_GROUPS["face"]) & set(LANDMARK_GROUPS["mouth"])


def test_nose_points_are_mediapipes(mediapipe):
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_NOSE

    assert set(landmark_net._NOSE) == {i for edge in FACEMESH_NOSE for i in edge}
