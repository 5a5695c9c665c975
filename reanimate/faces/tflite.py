"""A small pure-Python reader of TensorFlow Lite model files (``.tflite``).

A ``.tflite`` file is a FlatBuffer laid out by TF Lite's ``schema.fbs`` (root table
``Model``). This module reads the parts needed to rebuild a float network elsewhere:
tensors (shape, type, constant data, quantisation), operators in execution order (the
builtin operator's name, its inputs and outputs, its options) and the graph's inputs
and outputs. It depends on numpy only (no tensorflow, no ``flatbuffers`` package).

FlatBuffer facts used here (all little-endian):

* the file starts with a ``uoffset`` (uint32) to the root table;
* a table starts with an ``soffset`` (int32): the table's position minus its vtable's;
* a vtable holds its own size (uint16), the table's size (uint16), then one uint16 per
  field: the field's offset inside the table, 0 when absent (the default applies);
* a reference field (table, vector, string) holds a ``uoffset`` relative to itself;
* a vector (and a string) is a uint32 length followed by its elements;
* a union takes two field slots: its type (ubyte) and then the reference to its table.

>>> model = read_tflite("face_landmark.tflite")
>>> model.graph.tensors[model.graph.inputs[0]].shape
(1, 192, 192, 3)
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from reanimate.errors import InputError

#: ``TensorType`` enum of the schema -> numpy dtype (None: not readable as an array).
TENSOR_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("float32", "<f4"),
    1: ("float16", "<f2"),
    2: ("int32", "<i4"),
    3: ("uint8", "u1"),
    4: ("int64", "<i8"),
    5: ("string", None),
    6: ("bool", "?"),
    7: ("int16", "<i2"),
    8: ("complex64", "<c8"),
    9: ("int8", "i1"),
    10: ("float64", "<f8"),
    11: ("complex128", "<c16"),
    12: ("uint64", "<u8"),
    15: ("uint32", "<u4"),
    16: ("uint16", "<u2"),
}

#: ``BuiltinOperator`` codes of the schema that float vision networks use (the enum has
#: 200+; unknown codes are kept as ``"BUILTIN_<code>"``).
BUILTIN_OPERATORS: dict[int, str] = {
    0: "ADD",
    1: "AVERAGE_POOL_2D",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE",
    6: "DEQUANTIZE",
    9: "FULLY_CONNECTED",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    18: "MUL",
    19: "RELU",
    21: "RELU6",
    22: "RESHAPE",
    23: "RESIZE_BILINEAR",
    25: "SOFTMAX",
    28: "TANH",
    32: "CUSTOM",
    34: "PAD",
    39: "TRANSPOSE",
    40: "MEAN",
    41: "SUB",
    42: "DIV",
    43: "SQUEEZE",
    45: "STRIDED_SLICE",
    49: "SPLIT",
    53: "CAST",
    54: "PRELU",
    55: "MAXIMUM",
    57: "MINIMUM",
    60: "PADV2",
    65: "SLICE",
    67: "TRANSPOSE_CONV",
    70: "EXPAND_DIMS",
    83: "PACK",
    88: "UNPACK",
    97: "RESIZE_NEAREST_NEIGHBOR",
    98: "LEAKY_RELU",
    117: "HARD_SWISH",
    126: "BATCH_MATMUL",
}
#: Codes from this one on are only in ``OperatorCode.builtin_code`` (field 3); below it the
#: older byte field 0 holds the same value.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127

#: ``Padding`` and ``ActivationFunctionType`` enums.
PADDINGS = ("SAME", "VALID")
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")

# Option tables by operator: (name, struct format, default, enum names or None) in field
# order. Fields not listed (newer additions) are ignored.
_CONV = (
    ("padding", "b", 0, PADDINGS),
    ("stride_w", "i", 0, None),
    ("stride_h", "i", 0, None),
    ("activation", "b", 0, ACTIVATIONS),
    ("dilation_w", "i", 1, None),
    ("dilation_h", "i", 1, None),
)
_DEPTHWISE = (
    ("padding", "b", 0, PADDINGS),
    ("stride_w", "i", 0, None),
    ("stride_h", "i", 0, None),
    ("depth_multiplier", "i", 0, None),
    ("activation", "b", 0, ACTIVATIONS),
    ("dilation_w", "i", 1, None),
    ("dilation_h", "i", 1, None),
)
_POOL = (
    ("padding", "b", 0, PADDINGS),
    ("stride_w", "i", 0, None),
    ("stride_h", "i", 0, None),
    ("filter_w", "i", 0, None),
    ("filter_h", "i", 0, None),
    ("activation", "b", 0, ACTIVATIONS),
)
_ACTIVATION_ONLY = (("activation", "b", 0, ACTIVATIONS),)
_OPTIONS: dict[str, tuple] = {
    "CONV_2D": _CONV,
    "DEPTHWISE_CONV_2D": _DEPTHWISE,
    "MAX_POOL_2D": _POOL,
    "AVERAGE_POOL_2D": _POOL,
    "ADD": _ACTIVATION_ONLY,
    "SUB": _ACTIVATION_ONLY,
    "MUL": _ACTIVATION_ONLY,
    "DIV": _ACTIVATION_ONLY,
    "CONCATENATION": (("axis", "i", 0, None), ("activation", "b", 0, ACTIVATIONS)),
    "FULLY_CONNECTED": (
        ("activation", "b", 0, ACTIVATIONS),
        ("weights_format", "b", 0, None),
        ("keep_num_dims", "?", False, None),
    ),
    "RESHAPE": (("new_shape", "[i]", None, None),),
    "SOFTMAX": (("beta", "f", 0.0, None),),
    "LEAKY_RELU": (("alpha", "f", 0.0, None),),
    "RESIZE_BILINEAR": (
        ("new_height", "i", 0, None),
        ("new_width", "i", 0, None),
        ("align_corners", "?", False, None),
        ("half_pixel_centers", "?", False, None),
    ),
    "TRANSPOSE_CONV": (("padding", "b", 0, PADDINGS), ("stride_w", "i", 0, None), ("stride_h", "i", 0, None)),
    "MEAN": (("keep_dims", "?", False, None),),
    "SQUEEZE": (("squeeze_dims", "[i]", None, None),),
    "STRIDED_SLICE": (
        ("begin_mask", "i", 0, None),
        ("end_mask", "i", 0, None),
        ("ellipsis_mask", "i", 0, None),
        ("new_axis_mask", "i", 0, None),
        ("shrink_axis_mask", "i", 0, None),
        ("offset", "?", False, None),
    ),
}


@dataclass(frozen=True)
class Quantization:
    """Affine quantisation of a tensor: ``real = scale * (q - zero_point)`` along
    ``dimension`` (per-channel when ``scale`` has more than one entry)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    dimension: int = 0


@dataclass(frozen=True)
class Tensor:
    """One tensor of a graph.

    Attributes:
        index: its position in the graph's tensor list (operators refer to it by this).
        shape: TF Lite's layout: NHWC for images, ``(out, kh, kw, in)`` for convolution
            weights, ``(1, kh, kw, channels)`` for depthwise weights.
        dtype: the schema's type name in lower case (``"float32"``, ``"float16"``, …).
        data: the constant's values in ``shape`` (read-only numpy array), or None for
            activations.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    data: np.ndarray | None = field(default=None, repr=False, compare=False)
    quantization: Quantization | None = None


@dataclass(frozen=True)
class Operator:
    """One operator: ``opcode`` is the builtin operator's name (``"CONV_2D"``) or, for a
    custom operator, its ``custom_code``; ``inputs`` / ``outputs`` are tensor indices
    (-1: an omitted optional input); ``options`` the decoded builtin options."""

    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict, compare=False)
    custom: bool = False
    version: int = 1
    custom_options: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class Graph:
    """A subgraph: its tensors, operators in execution order, inputs and outputs."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    name: str = ""


@dataclass(frozen=True)
class Model:
    """A ``.tflite`` model; :attr:`graph` is the main subgraph (the first)."""

    version: int
    description: str
    subgraphs: tuple[Graph, ...]

    @property
    def graph(self) -> Graph:
        return self.subgraphs[0]

    @property
    def opcodes(self) -> set[str]:
        """Names of all operators used by the main graph."""
        return {op.opcode for op in self.graph.operators}


class _Table:
    """A FlatBuffer table at ``pos`` of ``buf``: field access by field index."""

    __slots__ = ("buf", "pos", "_vtable", "_vsize")

    def __init__(self, buf: memoryview, pos: int):
        self.buf = buf
        self.pos = pos
        self._vtable = pos - _unpack("<i", buf, pos)
        self._vsize = _unpack("<H", buf, self._vtable)

    def _offset(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot >= self._vsize:
            return 0
        return _unpack("<H", self.buf, self._vtable + slot)

    def scalar(self, index: int, fmt: str, default=0):
        offset = self._offset(index)
        return default if offset == 0 else _unpack("<" + fmt, self.buf, self.pos + offset)

    def _reference(self, index: int) -> int | None:
        offset = self._offset(index)
        if offset == 0:
            return None
        at = self.pos + offset
        return at + _unpack("<I", self.buf, at)

    def table(self, index: int) -> _Table | None:
        at = self._reference(index)
        return None if at is None else _Table(self.buf, at)

    def string(self, index: int) -> str:
        data = self.bytes(index)
        return "" if data is None else bytes(data).decode("utf-8", "replace")

    def bytes(self, index: int) -> memoryview | None:
        at = self._reference(index)
        if at is None:
            return None
        length = _unpack("<I", self.buf, at)
        _check_range(self.buf, at + 4, length)
        return self.buf[at + 4 : at + 4 + length]

    def scalars(self, index: int, fmt: str) -> tuple:
        at = self._reference(index)
        if at is None:
            return ()
        length = _unpack("<I", self.buf, at)
        size = struct.calcsize(fmt)
        _check_range(self.buf, at + 4, length * size)
        return struct.unpack_from(f"<{length}{fmt}", self.buf, at + 4)

    def tables(self, index: int) -> list[_Table]:
        at = self._reference(index)
        if at is None:
            return []
        length = _unpack("<I", self.buf, at)
        _check_range(self.buf, at + 4, 4 * length)
        items = []
        for k in range(length):
            element = at + 4 + 4 * k
            items.append(_Table(self.buf, element + _unpack("<I", self.buf, element)))
        return items


class _Corrupt(Exception):
    """A reference points outside the file."""


def _unpack(fmt: str, buf: memoryview, at: int):
    if at < 0 or at + struct.calcsize(fmt) > len(buf):
        raise _Corrupt(f"offset {at} outside the file")
    return struct.unpack_from(fmt, buf, at)[0]


def _check_range(buf: memoryview, at: int, length: int) -> None:
    if at < 0 or length < 0 or at + length > len(buf):
        raise _Corrupt(f"{length} bytes at offset {at} outside the file")


def read_tflite(path: str | os.PathLike) -> Model:
    """Read a ``.tflite`` file; :class:`~reanimate.errors.InputError` (one line) if it is
    missing, unreadable or not a TF Lite model."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(path, f"cannot read the TF Lite model ({exc.strerror or exc})") from None
    return parse_tflite(data, path)


def parse_tflite(data: bytes, path: str | os.PathLike | None = None) -> Model:
    """Parse the bytes of a ``.tflite`` file (``path`` only names it in errors)."""
    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise InputError(path, "not a TF Lite model (no TFL3 FlatBuffer identifier)")
    buf = memoryview(data)
    try:
        return _read_model(buf)
    except (_Corrupt, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"corrupt TF Lite model ({exc})") from None


def _read_model(buf: memoryview) -> Model:
    root = _Table(buf, _unpack("<I", buf, 0))
    version = root.scalar(0, "I")
    opcodes = [_opcode_name(code) for code in root.tables(1)]
    buffers = [_buffer_data(b, buf) for b in root.tables(4)]
    subgraphs = tuple(_read_graph(g, opcodes, buffers) for g in root.tables(2))
    if not subgraphs:
        raise ValueError("no subgraph")
    return Model(version=version, description=root.string(3), subgraphs=subgraphs)


def _opcode_name(code: _Table) -> tuple[str, bool, int]:
    builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
    version = code.scalar(2, "i", 1)
    if builtin == 32:  # CUSTOM
        return code.string(1), True, version
    return BUILTIN_OPERATORS.get(builtin, f"BUILTIN_{builtin}"), False, version


def _buffer_data(table: _Table, buf: memoryview) -> memoryview | None:
    data = table.bytes(0)
    offset, size = table.scalar(1, "Q"), table.scalar(2, "Q")
    if offset > 1:  # models over 2 GB keep buffers after the FlatBuffer
        _check_range(buf, offset, size)
        return buf[offset : offset + size]
    return data if data is not None and len(data) else None


def _read_graph(graph: _Table, opcodes: list, buffers: list) -> Graph:
    tensors = tuple(_read_tensor(k, t, buffers) for k, t in enumerate(graph.tables(0)))
    operators = []
    for table in graph.tables(3):
        index = table.scalar(0, "I")
        if index >= len(opcodes):
            raise ValueError(f"operator code {index} out of range")
        name, custom, version = opcodes[index]
        options = {}
        if not custom and name in _OPTIONS and (opts := table.table(4)) is not None:
            options = _read_options(opts, _OPTIONS[name])
        inputs, outputs = table.scalars(1, "i"), table.scalars(2, "i")
        if any(i >= len(tensors) for i in inputs + outputs):
            raise ValueError(f"{name} refers to a tensor out of range")
        custom_options = bytes(table.bytes(5) or b"") if custom else b""
        operators.append(Operator(name, inputs, outputs, options, custom, version, custom_options))
    return Graph(tensors, tuple(operators), graph.scalars(1, "i"), graph.scalars(2, "i"), graph.string(4))


def _read_tensor(index: int, table: _Table, buffers: list) -> Tensor:
    shape = tuple(int(s) for s in table.scalars(0, "i"))
    type_code = table.scalar(1, "b")
    dtype, numpy_dtype = TENSOR_TYPES.get(type_code, (f"type_{type_code}", None))
    buffer = table.scalar(2, "I")
    data = None
    raw = buffers[buffer] if buffer < len(buffers) else None
    if raw is not None and numpy_dtype is not None:
        values = np.frombuffer(raw, dtype=numpy_dtype)
        expected = int(np.prod(shape)) if shape else 1
        if values.size != expected:
            raise ValueError(f"tensor {index} has {values.size} values for shape {shape}")
        data = values.reshape(shape)
    quantization = None
    if (q := table.table(4)) is not None and (scale := q.scalars(2, "f")):
        quantization = Quantization(scale, q.scalars(3, "q"), q.scalar(6, "i"))
    return Tensor(index, table.string(3), shape, dtype, buffer, data, quantization)


def _read_options(table: _Table, fields: tuple) -> dict:
    options = {}
    for k, (name, fmt, default, names) in enumerate(fields):
        if fmt.startswith("["):
            value = table.scalars(k, fmt[1:-1])
        else:
            value = table.scalar(k, fmt, default)
            if names is not None:
                value = names[value] if 0 <= value < len(names) else f"UNKNOWN_{value}"
        options[name] = value
    return options


# FlexBuffers (the schema-less format of custom operators' options). Value types, packed
# with a width code as ``type << 2 | log2(width in bytes)``.
_FLEX_NULL, _FLEX_INT, _FLEX_UINT, _FLEX_FLOAT, _FLEX_KEY, _FLEX_STRING = 0, 1, 2, 3, 4, 5
_FLEX_INDIRECT = {6: _FLEX_INT, 7: _FLEX_UINT, 8: _FLEX_FLOAT}
_FLEX_MAP, _FLEX_VECTOR, _FLEX_BLOB, _FLEX_BOOL, _FLEX_VECTOR_BOOL = 9, 10, 25, 26, 36
#: Typed vectors with a size prefix: vector type -> element type.
_FLEX_TYPED = {11: _FLEX_INT, 12: _FLEX_UINT, 13: _FLEX_FLOAT, 14: _FLEX_KEY, 15: _FLEX_STRING, 36: _FLEX_BOOL}
_INT_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}
_FLOAT_FORMATS = {2: "e", 4: "f", 8: "d"}


def parse_flexbuffer(data: bytes):
    """Decode a FlexBuffer (as in ``Operator.custom_options``) into Python values: maps
    become dicts, vectors lists, keys and strings str, blobs bytes.

    The root's byte width is the buffer's last byte, its packed type the one before and
    the root value precedes them; references are unsigned offsets back from where they
    are stored. Raises ``ValueError`` on a malformed buffer."""
    buf = memoryview(bytes(data))
    if len(buf) < 3:
        raise ValueError("FlexBuffer too short")
    width = buf[-1]
    if width not in _INT_FORMATS:
        raise ValueError(f"bad FlexBuffer root width {width}")
    try:
        return _flex_value(buf, len(buf) - 2 - width, width, buf[-2])
    except (_Corrupt, struct.error) as exc:
        raise ValueError(f"corrupt FlexBuffer ({exc})") from None


def _flex_int(buf: memoryview, at: int, width: int, signed: bool = True) -> int:
    fmt = _INT_FORMATS.get(width)
    if fmt is None:
        raise ValueError(f"bad FlexBuffer width {width}")
    return _unpack("<" + (fmt if signed else fmt.upper()), buf, at)


def _flex_value(buf: memoryview, at: int, parent_width: int, packed: int):
    kind, width = packed >> 2, 1 << (packed & 3)
    if kind == _FLEX_NULL:
        return None
    if kind in (_FLEX_INT, _FLEX_UINT, _FLEX_BOOL):
        value = _flex_int(buf, at, parent_width, signed=kind == _FLEX_INT)
        return bool(value) if kind == _FLEX_BOOL else value
    if kind == _FLEX_FLOAT:
        return _unpack("<" + _FLOAT_FORMATS[parent_width], buf, at)
    target = at - _flex_int(buf, at, parent_width, signed=False)
    if kind in _FLEX_INDIRECT:
        return _flex_value(buf, target, width, _FLEX_INDIRECT[kind] << 2)
    if kind == _FLEX_KEY:
        end = bytes(buf[target:]).index(0)
        return bytes(buf[target : target + end]).decode("utf-8")
    if kind in (_FLEX_STRING, _FLEX_BLOB):
        size = _flex_int(buf, target - width, width, signed=False)
        _check_range(buf, target, size)
        raw = bytes(buf[target : target + size])
        return raw.decode("utf-8") if kind == _FLEX_STRING else raw
    if kind in (_FLEX_MAP, _FLEX_VECTOR):
        size = _flex_int(buf, target - width, width, signed=False)
        types = target + size * width
        _check_range(buf, types, size)
        values = [_flex_value(buf, target + k * width, width, buf[types + k]) for k in range(size)]
        if kind == _FLEX_VECTOR:
            return values
        keys_at = target - 3 * width
        keys = keys_at - _flex_int(buf, keys_at, width, signed=False)
        keys_width = _flex_int(buf, target - 2 * width, width, signed=False)
        names = _flex_typed(buf, keys, keys_width, _FLEX_KEY, None)
        if len(names) != size:
            raise ValueError("FlexBuffer map with unequal keys and values")
        return dict(zip(names, values))
    if kind in _FLEX_TYPED:
        return _flex_typed(buf, target, width, _FLEX_TYPED[kind], None)
    if 16 <= kind <= 24:  # fixed-length typed vectors of 2, 3 or 4 numbers
        element = (_FLEX_INT, _FLEX_UINT, _FLEX_FLOAT)[(kind - 16) % 3]
        return _flex_typed(buf, target, width, element, (kind - 16) // 3 + 2)
    raise ValueError(f"unsupported FlexBuffer type {kind}")


def _flex_typed(buf: memoryview, target: int, width: int, element: int, size: int | None) -> list:
    if size is None:
        size = _flex_int(buf, target - width, width, signed=False)
    _check_range(buf, target, size * width)
    packed = element << 2 | (width.bit_length() - 1)
    return [_flex_value(buf, target + k * width, width, packed) for k in range(size)]
