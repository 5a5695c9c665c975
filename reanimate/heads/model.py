"""The ICT-FaceKit head model shipped with the project, and its loader.

The file ``assets/ict_facekit.npz`` is converted once from ICT-FaceKit (MIT licence, (c)
2020 USC Institute for Creative Technologies; the notice is inside the file, array
``license``, and beside it in ``LICENSE-ICT-FaceKit.txt``) by
``tools/convert_ict_facekit.py``. It holds the *render set* of the model: 24,591 vertices
(face, head and neck, mouth and eye sockets, gums and tongue, teeth, eyeballs), its
polygons, 50 identity PCA modes and the 53 ARKit-named expression shapes as float16
offsets from the neutral head, and the 68 Multi-PIE landmark vertices.

Model coordinates are ICT-FaceKit's: centimetres, ``x`` towards the person's left (the
viewer's right), ``y`` up, ``z`` out of the face. :mod:`reanimate.heads.rig` turns them
into the project's object frame (``x`` right, ``y`` down, ``z`` away from the viewer).
A head with identity coefficients ``a`` and expression weights ``e`` is::

    template + sum_i a_i identity_i + sum_j e_j expression_j          (V, 3)

with ``a_i ~ N(0, 1)`` a plausible person (ICT-FaceKit's sampling) and ``e_j`` in [0, 1].
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reanimate.errors import InputError
from reanimate.render.raster import triangulate

__all__ = ["MODEL_PATH", "NOTICE_PATH", "PARTS", "RENDER_VERTICES", "HeadModel", "load_head_model"]

ASSETS = Path(__file__).resolve().parent / "assets"
MODEL_PATH = ASSETS / "ict_facekit.npz"
NOTICE_PATH = ASSETS / "LICENSE-ICT-FaceKit.txt"

#: Vertices 0 .. RENDER_VERTICES - 1 are the render set (ICT-FaceKit README, "Face Model Topology").
RENDER_VERTICES = 24591

#: (name, first vertex, one past the last vertex), from ICT-FaceKit's README tables.
PARTS: tuple[tuple[str, int, int], ...] = (
    ("face", 0, 9409),
    ("head_neck", 9409, 11248),
    ("mouth_socket", 11248, 13294),
    ("eye_socket_left", 13294, 13678),
    ("eye_socket_right", 13678, 14062),
    ("gums_tongue", 14062, 17039),
    ("teeth_upper", 17039, 19247),
    ("teeth_lower", 19247, 21451),
    ("sclera_left", 21451, 22221),
    ("iris_left", 22221, 23021),
    ("sclera_right", 23021, 23791),
    ("iris_right", 23791, 24591),
)


@dataclass(frozen=True, eq=False)  # hashed by identity (cached rigs)
class HeadModel:
    """The linear head model (tensors float32 unless said otherwise; ICT coordinates, cm).

    Attributes:
        template: ``(V, 3)`` neutral generic head.
        identity: ``(I, V, 3)`` identity modes (offsets at one standard deviation).
        expression: ``(E, V, 3)`` expression shapes (offsets at weight 1), E = 53.
        triangles: ``(F, 3)`` int64, the polygons split into triangles (same winding).
        landmarks: ``(68,)`` int64 vertex indices of the Multi-PIE 68 landmarks.
        expression_names: the E ARKit-style names, in the order of ``expression``.
        parts: name -> ``slice`` of vertex indices (see :data:`PARTS`).
        license: ICT-FaceKit's MIT notice, as stored in the file.
    """

    template: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor
    triangles: torch.Tensor
    landmarks: torch.Tensor
    expression_names: tuple[str, ...]
    parts: dict[str, slice]
    license: str

    @property
    def num_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def num_identities(self) -> int:
        return self.identity.shape[0]

    def expression_index(self, name: str) -> int:
        """Position of an expression shape by name (``"jawOpen"`` -> 26)."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"no expression shape {name!r}; known: {', '.join(self.expression_names)}") from None

    def part_indices(self, *names: str) -> torch.Tensor:
        """Vertex indices ``(n,)`` int64 of the named parts, in order."""
        return torch.cat([torch.arange(self.parts[n].start, self.parts[n].stop) for n in names])

    def part_of_vertex(self) -> torch.Tensor:
        """``(V,)`` int64: the index in :data:`PARTS` of each vertex's part."""
        labels = torch.empty(self.num_vertices, dtype=torch.int64)
        for index, (name, _, _) in enumerate(PARTS):
            labels[self.parts[name]] = index
        return labels


def load_head_model(path: str | os.PathLike | None = None) -> HeadModel:
    """Read the converted ICT-FaceKit model (default: the shipped file; cached per path).

    Raises:
        InputError: naming the file, when it is missing or not a converted model.
    """
    return _load(Path(path) if path is not None else MODEL_PATH)


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> HeadModel:
    if not path.is_file():
        raise InputError(path, "head model not found (make it with tools/convert_ict_facekit.py)")
    required = ("template", "identity", "expression", "faces", "landmarks", "expression_names", "license")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in required if name not in data]
            if missing:
                raise InputError(path, f"not a converted ICT-FaceKit model (missing {', '.join(missing)})")
            arrays = {name: data[name] for name in data.files}
    except InputError:
        raise
    except Exception as exc:  # zipfile / numpy report damage in many ways
        raise InputError(path, f"corrupt head model file ({type(exc).__name__}: {exc})") from None
    template = arrays["template"].astype(np.float32)
    vertices = template.shape[0]
    if arrays["identity"].shape[1:] != (vertices, 3) or arrays["expression"].shape[1:] != (vertices, 3):
        raise InputError(path, "head model arrays disagree on the vertex count")
    parts = {str(n): slice(int(a), int(b)) for n, (a, b) in zip(arrays["part_names"], arrays["part_ranges"])}
    return HeadModel(
        template=torch.from_numpy(template),
        identity=torch.from_numpy(arrays["identity"].astype(np.float32)),
        expression=torch.from_numpy(arrays["expression"].astype(np.float32)),
        triangles=triangulate(arrays["faces"]),
        landmarks=torch.from_numpy(arrays["landmarks"].astype(np.int64)),
        expression_names=tuple(str(n) for n in arrays["expression_names"]),
        parts=parts,
        license=str(arrays["license"]),
    )
