"""FLAME (Li et al. 2017) from the user's own model file, read without chumpy.

FLAME's ``generic_model.pkl`` (licensed by the MPI, never shipped here) is a Python 2
pickle of a dict whose arrays are numpy arrays, ``chumpy`` objects (a ``Ch`` keeps its
array in its pickled ``__dict__`` under ``"x"``) and a ``scipy.sparse`` joint regressor:

========================  =================  ===============================================
key                       shape              use
========================  =================  ===============================================
``v_template``            (5023, 3)          template, metres
``f``                     (9976, 3)          triangles
``shapedirs``             (5023, 3, 400)     300 identity then 100 expression shapes
``posedirs``              (5023, 3, 36)      pose correctives on FLAME's pose feature
``J_regressor``           (5, 5023)          joints: global, neck, jaw, eyes
``weights``               (5023, 5)          skinning weights
``kintree_table``         (2, 5)             row 0: parents (the root's is garbage)
========================  =================  ===============================================

The file is read by a restricted unpickler that builds only numpy arrays, the sparse
matrices' arrays, a few builtins and stand-ins for chumpy objects; any other global a
pickle asks for (a function to call, a class to build) is refused, so a doctored file
cannot run code.

Landmarks come from FLAME's landmark embedding (``landmark_embedding.npy`` of DECA/RingNet,
a pickled dict in a ``.npy``, or ``flame_static_embedding.pkl``), read the same way: the
full static set (``full_lmk_faces_idx``, ``full_lmk_bary_coords``, DECA's 68 points) when
present, else ``lmk_face_idx``/``lmk_b_coords``, else ``static_lmk_faces_idx``/
``static_lmk_bary_coords``; the pose-dependent contour entries are not used.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import copyreg
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reanimate.avatar.rig import CANONICAL_JAW_OPENING, Rig, transform_rig
from reanimate.errors import InputError

__all__ = ["FLAME_TO_OBJECT", "JOINT_NAMES", "NUM_IDENTITY_SHAPES", "load_flame", "load_landmark_embedding"]

JOINT_NAMES = ("global", "neck", "jaw", "eye_left", "eye_right")
#: ``shapedirs`` holds this many identity shapes, then the expression shapes.
NUM_IDENTITY_SHAPES = 300
#: FLAME's frame (``y`` up, ``z`` out of the face) -> the project's object frame.
FLAME_TO_OBJECT = torch.diag(torch.tensor([1.0, -1.0, -1.0]))

_REQUIRED = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
_LANDMARK_KEYS = (
    ("full_lmk_faces_idx", "full_lmk_bary_coords"),
    ("lmk_face_idx", "lmk_b_coords"),
    ("static_lmk_faces_idx", "static_lmk_bary_coords"),
)
_NUMPY_MAGIC = b"\x93NUMPY"


class _Refused(Exception):
    """A pickle asked for a global outside the allowed set."""


class _ChumpyObject:
    """Stands in for any chumpy class: keeps the pickled state (a ``Ch``'s array is ``x``)."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _SparseMatrix:
    """Stands in for a ``scipy.sparse`` matrix: keeps its arrays, made dense by :func:`_plain`."""

    kind = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state


_SPARSE = {
    name: type(name, (_SparseMatrix,), {"kind": name[:3]}) for name in ("csc_matrix", "csr_matrix", "coo_matrix")
}
_NUMPY = {
    "_reconstruct": np.ndarray.__reduce__(np.zeros(1))[0],
    "scalar": np.float64(0).__reduce__()[0],
    "ndarray": np.ndarray,
    "dtype": np.dtype,
}
_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "object", "slice", "complex", "bytearray"}


def _tensor_from_bytes(data: bytes) -> torch.Tensor:
    # A torch tensor pickled with plain pickle (DECA's contour entries): a torch.save
    # archive inside, read with torch's own restricted loader.
    return torch.load(io.BytesIO(data), weights_only=True)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyObject
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _SPARSE[name]
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY:
            return _NUMPY[name]
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return getattr(builtins, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return copyreg._reconstructor
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode  # bytes in a protocol-2 pickle written by Python 3
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return torch._utils._rebuild_tensor_v2
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _tensor_from_bytes
        raise _Refused(f"{module}.{name}")


def _dense_sparse(matrix: _SparseMatrix) -> np.ndarray:
    state = matrix.state
    shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
    dense = np.zeros(shape, dtype=np.float64)
    data = np.asarray(state["data"], dtype=np.float64)
    if matrix.kind == "coo":
        rows, cols = state["coords"] if "coords" in state else (state["row"], state["col"])
        np.add.at(dense, (np.asarray(rows), np.asarray(cols)), data)
        return dense
    indptr, indices = np.asarray(state["indptr"]), np.asarray(state["indices"])
    outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    if matrix.kind == "csc":
        np.add.at(dense, (indices, outer), data)
    else:
        np.add.at(dense, (outer, indices), data)
    return dense


def _plain(value: Any) -> Any:
    """Stand-ins replaced by numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(value, _ChumpyObject):
        state = value.state
        if not isinstance(state, dict) or "x" not in state:
            raise ValueError("a chumpy expression other than a plain Ch array")
        return _plain(state["x"])
    if isinstance(value, _SparseMatrix):
        return _dense_sparse(value)
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def _read(path: Path, what: str) -> Any:
    """A restricted unpickle of ``path`` (a pickle, or a ``.npy`` holding a pickled object)."""
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    try:
        with open(path, "rb") as file:
            if file.read(len(_NUMPY_MAGIC)) == _NUMPY_MAGIC:
                file.seek(0)
                version = np.lib.format.read_magic(file)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                _, _, dtype = read_header(file)
                if not dtype.hasobject:
                    return np.load(path, allow_pickle=False)
            else:
                file.seek(0)
            value = _RestrictedUnpickler(file, encoding="latin1").load()
        if isinstance(value, np.ndarray) and value.dtype.hasobject and value.shape == ():
            value = value.item()  # np.save of a dict
        value = _plain(value)
    except _Refused as refused:
        raise InputError(
            path, f"refusing to read {what}: the pickle asks for {refused}, which a model file never needs"
        ) from None
    except Exception as exc:  # pickle and numpy report damage in many ways
        raise InputError(path, f"not a readable {what} ({type(exc).__name__}: {exc})") from None
    return value


def load_landmark_embedding(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """FLAME's landmark embedding -> ``(faces (L,) int64, barycentric (L, 3) float32)``.

    Raises:
        InputError: naming the file, when it is missing, unreadable or has no static landmarks.
    """
    path = Path(path)
    content = _read(path, "FLAME landmark embedding")
    if not isinstance(content, dict):
        raise InputError(path, f"not a FLAME landmark embedding (holds a {type(content).__name__}, not a dict)")
    for faces_key, coords_key in _LANDMARK_KEYS:
        if faces_key in content and coords_key in content:
            faces = np.asarray(content[faces_key]).reshape(-1).astype(np.int64)
            coords = np.asarray(content[coords_key], dtype=np.float32).reshape(-1, 3)
            if len(coords) != len(faces):
                raise InputError(path, f"{faces_key} has {len(faces)} landmarks but {coords_key} {len(coords)}")
            return torch.from_numpy(faces), torch.from_numpy(coords)
    expected = " or ".join(f"{a}/{b}" for a, b in _LANDMARK_KEYS)
    raise InputError(path, f"not a FLAME landmark embedding (no {expected})")


def load_flame(
    path: str | os.PathLike,
    landmark_embedding: str | os.PathLike | None = None,
    *,
    num_shape: int | None = None,
    num_expression: int | None = None,
    object_frame: bool = True,
) -> Rig:
    """A :class:`~reanimate.avatar.rig.Rig` from FLAME's ``generic_model.pkl`` (FLAME 2020).

    Args:
        path: the model file.
        landmark_embedding: FLAME's landmark embedding (see the module doc), or ``None``
            for no landmarks.
        num_shape, num_expression: keep the first this many identity / expression shapes
            (``None``: all; IMavatar uses 100 and 50).
        object_frame: turn the model into the project's object frame (``y`` down, ``z``
            away from the viewer) by :data:`FLAME_TO_OBJECT`; FLAME's own poses then become
            ``pose @ FLAME_TO_OBJECT.T`` (``(x, -y, -z)`` of each axis-angle). ``False``
            keeps FLAME's frame.

    Metres (``units = 1``; IMavatar scales by 4: :func:`~reanimate.avatar.rig.transform_rig`).
    Canonical pose: IMavatar's, the jaw opened by 0.2 rad about ``x``.

    Raises:
        InputError: naming the file, when it is missing, not a FLAME model, or asks the
            unpickler for anything but arrays.
    """
    path = Path(path)
    content = _read(path, "FLAME model")
    if not isinstance(content, dict):
        raise InputError(path, f"not a FLAME model (holds a {type(content).__name__}, not a dict)")
    missing = [key for key in _REQUIRED if key not in content]
    if missing:
        raise InputError(path, f"not a FLAME model (missing {', '.join(missing)})")
    try:
        arrays = {key: np.asarray(content[key]) for key in _REQUIRED}
        template = arrays["v_template"].astype(np.float32)
        vertices = template.shape[0]
        shapedirs = arrays["shapedirs"].astype(np.float32)
        posedirs = arrays["posedirs"].astype(np.float32)
        regressor = arrays["J_regressor"].astype(np.float32)
        weights = arrays["weights"].astype(np.float32)
        joints = len(JOINT_NAMES)
        expected = {
            "v_template": (template.shape, (vertices, 3)),
            "shapedirs": (shapedirs.shape[:2], (vertices, 3)),
            "posedirs": (posedirs.shape, (vertices, 3, 9 * (joints - 1))),
            "J_regressor": (regressor.shape, (joints, vertices)),
            "weights": (weights.shape, (vertices, joints)),
            "kintree_table": (arrays["kintree_table"].shape, (2, joints)),
        }
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(path, f"not a FLAME model ({type(exc).__name__}: {exc})") from None
    wrong = [f"{key} {tuple(got)} (expected {want})" for key, (got, want) in expected.items() if tuple(got) != want]
    if shapedirs.ndim != 3 or shapedirs.shape[2] <= NUM_IDENTITY_SHAPES:
        wrong.append(f"shapedirs {shapedirs.shape} (expected (V, 3, {NUM_IDENTITY_SHAPES} + E))")
    if wrong:
        raise InputError(path, f"not a FLAME 2020 model: {'; '.join(wrong)}")
    identity = shapedirs[:, :, :NUM_IDENTITY_SHAPES][:, :, :num_shape]
    expression = shapedirs[:, :, NUM_IDENTITY_SHAPES:][:, :, :num_expression]
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    if any(not 0 <= parent < joint for joint, parent in enumerate(parents.tolist()) if joint):
        raise InputError(path, f"not a FLAME model (kintree_table parents {parents.tolist()[1:]} of joints 1..4)")
    faces = torch.from_numpy(arrays["f"].astype(np.int64))
    if landmark_embedding is not None:
        landmark_faces, barycentric = load_landmark_embedding(landmark_embedding)
        if len(landmark_faces) and (int(landmark_faces.max()) >= len(faces) or int(landmark_faces.min()) < 0):
            raise InputError(landmark_embedding, f"landmark faces out of range for {path.name}'s {len(faces)} faces")
    else:
        landmark_faces, barycentric = torch.zeros(0, dtype=torch.int64), torch.zeros(0, 3)
    canonical_pose = torch.zeros(joints, 3)
    canonical_pose[JOINT_NAMES.index("jaw"), 0] = CANONICAL_JAW_OPENING
    rig = Rig(
        name="flame",
        template=torch.from_numpy(template),
        faces=faces,
        shape_basis=torch.from_numpy(np.ascontiguousarray(identity)),
        expression_basis=torch.from_numpy(np.ascontiguousarray(expression)),
        pose_basis=torch.from_numpy(posedirs),
        skinning_weights=torch.from_numpy(weights),
        joint_regressor=torch.from_numpy(regressor),
        parents=torch.from_numpy(parents),
        joint_names=JOINT_NAMES,
        landmark_faces=landmark_faces,
        landmark_barycentric=barycentric,
        canonical_pose=canonical_pose,
        units=1.0,
    )
    return transform_rig(rig, FLAME_TO_OBJECT) if object_frame else rig
