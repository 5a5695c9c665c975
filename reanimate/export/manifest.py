"""``manifest.json`` of an ONNX export folder: what the graphs are, how they were made.

Layout (format ``reanimate.fomm.onnx``, version 1)::

    {"format": "reanimate.fomm.onnx", "format_version": 1, "opset": 17,
     "exporter": "...", "torch": "2.13.0", "onnx": "1.22.0", "onnxruntime": "1.32.0",
     "checkpoint": "vox.safetensors", "image_size": [256, 256], "num_kp": 10,
     "motion_estimator": "keypoint_detector", "jacobians": true, "align_corners": true,
     "graphs": {"keypoints": {"file": "keypoints.onnx",
                              "inputs": [{"name": "image", "shape": ["batch", 3, 256, 256]}],
                              "outputs": [...]},
                "source_encoder": {...}, "generator": {...}},
     "verification": {"tolerance": 1e-4, "max_abs_diff": {"keypoints": 1e-6, ...}},
     "config": "<the model config, YAML with the official keys>"}

A shape entry is an int, or ``"batch"`` for the number of driving frames (dynamic).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..models import ModelConfig
from .graphs import GRAPH_FILES

FORMAT = "reanimate.fomm.onnx"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class GraphSpec:
    """One graph: its file in the folder and its named inputs and outputs with shapes
    (``"batch"`` where the size is the number of driving frames)."""

    file: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec["name"] for spec in self.outputs]


@dataclass
class Manifest:
    """The parsed ``manifest.json`` (see the module docstring); ``config`` is the model
    config it carries, ``folder`` where it was read from."""

    opset: int
    graphs: dict[str, GraphSpec]
    config: ModelConfig
    folder: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def jacobians(self) -> bool:
        return "jacobians" in self.graphs["keypoints"].output_names

    def path(self, graph: str) -> Path:
        return self.folder / self.graphs[graph].file


def manifest_document(
    opset: int, graphs: dict[str, GraphSpec], config: ModelConfig, info: dict[str, Any]
) -> dict[str, Any]:
    """The JSON document written as ``manifest.json``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "opset": opset,
        **info,
        "image_size": list(config.image_size),
        "num_kp": config.num_kp,
        "motion_estimator": config.motion_estimator,
        "jacobians": "jacobians" in graphs["keypoints"].output_names,
        "align_corners": config.align_corners,
        "graphs": {name: vars(spec) for name, spec in graphs.items()},
        "config": config.to_yaml(),
    }


def is_export_folder(path: str | os.PathLike | None) -> bool:
    """True when ``path`` is a folder with a ``manifest.json`` (an ONNX export)."""
    return path is not None and (Path(path) / MANIFEST).is_file()


def read_manifest(folder: str | os.PathLike) -> Manifest:
    """Read and check an export folder's manifest; every graph file must be there.

    Raises:
        InputError: one line naming the folder or file and the problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not an export folder" if folder.exists() else "no such export folder"
        raise InputError(folder, f"{what} (make one with reanimate export --format onnx)")
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(folder, f"no {MANIFEST}: not an ONNX export (make one with reanimate export --format onnx)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable manifest ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(path, f"not a reanimate ONNX export manifest (format {found!r}, expected {FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise InputError(
            path,
            f"format version {doc.get('format_version')!r} is not {FORMAT_VERSION}: export the checkpoint "
            "again with this version of reanimate",
        )
    try:
        graphs = {name: GraphSpec(**doc["graphs"][name]) for name in GRAPH_FILES}
        config = ModelConfig.from_yaml_text(doc["config"], name=folder.name)
        opset = int(doc["opset"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(path, f"incomplete or invalid manifest ({exc.__class__.__name__}: {exc})") from None
    for spec in graphs.values():
        if not (folder / spec.file).is_file():
            raise InputError(folder / spec.file, "graph file of the export is missing; export the checkpoint again")
    info = {k: v for k, v in doc.items() if k not in ("graphs", "config")}
    return Manifest(opset, graphs, config, folder, info)
