"""``reanimate export --format onnx``: a FOMM-family model (FOMM or the motion
transformer, with or without U-Net skips) as three ONNX graphs (:mod:`.graphs`:
``keypoints``, ``source_encoder``, ``generator``) and a ``manifest.json``
(:mod:`.manifest`) in one folder, checked against PyTorch before it is kept.

Exporter: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based one. It needs
no further package (the ``torch.export`` path needs ``onnxscript``), exports these
networks in about a quarter of the time, and gives the number of driving frames as a
dynamic axis without specialising the batch-1 source encoding that the generator
broadcasts (``dynamic_axes``).

Opset :data:`OPSET` (17): ``F.grid_sample``, which every warp of FOMM uses (the sparse
motions, the features, the U-Net skips), is ONNX ``GridSample`` from opset 16 on (2-D,
bilinear, zeros padding, ``align_corners`` from the config fixed in the graph); 17 adds
``LayerNormalization`` (one node per norm of the motion transformer instead of a
decomposition). ``torch.inverse`` (the driving Jacobians, FOMM supp. Eq. 5) has no ONNX
operator: :func:`reanimate.geometry.affine.inverse_2x2` is the closed form.

Verification: ONNX Runtime (CPU) and PyTorch run each graph on the same random inputs
(a batch of :data:`CHECK_BATCH` driving frames, not the traced batch, so the dynamic
axis is exercised); the largest absolute difference of every graph must be at most
:data:`TOLERANCE`. Everything is written to a hidden temporary folder beside the output
and renamed at the end: a failed export leaves nothing.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..errors import InputError, OutputError, ReanimateError
from ..io.files import atomic_path, check_output_folder
from ..models import FirstOrderModel, load_config
from ..models.config import FAMILY, config_family
from .graphs import GRAPH_FILES, GeneratorGraph, KeypointGraph, SourceEncoderGraph
from .manifest import MANIFEST, GraphSpec, is_export_folder, manifest_document
from .runtime import cpu_session, require

OPSET = 17
#: the largest absolute difference between ONNX Runtime's and PyTorch's outputs accepted
TOLERANCE = 1e-4
EXPORTER = "torch.onnx.export, TorchScript-based (dynamo=False)"
#: driving frames in the traced example and in the check (any number runs: dynamic axis)
TRACE_BATCH = 2
CHECK_BATCH = 3
#: the name of the dynamic axis (driving frames) in the graphs and the manifest
BATCH = "batch"
#: what the graphs take per frame, which every input and output with a batch axis has
_BATCHED = {"image", "keypoints", "jacobians", "kp_driving", "jacobian_driving", "prediction", "occlusion"}


@dataclass
class ExportResult:
    """``max_abs_diff``: per graph, ONNX Runtime against PyTorch; ``sizes``: bytes per file."""

    output: Path
    max_abs_diff: dict[str, float]
    sizes: dict[str, int]
    seconds: float
    notes: list[str] = field(default_factory=list)


def load_for_export(
    checkpoint: str | os.PathLike,
    config: str | os.PathLike | None = None,
    align_corners: bool | None = None,
    notes: list[str] | None = None,
) -> FirstOrderModel:
    """The FOMM-family model of a checkpoint (own ``.safetensors`` or official
    ``.pth.tar``, ``config`` as ``reanimate animate`` takes it); a one-line error for
    anything else: another family (MMFA, avatars), a folder, an export."""
    path = Path(checkpoint)
    if is_export_folder(path):
        raise InputError(path, "is already an ONNX export (animate with it: --backend onnxruntime --checkpoint DIR)")
    if path.is_dir():
        raise InputError(
            path,
            f"is a folder, not a checkpoint file: only the {FAMILY} family (FOMM, the motion transformer) "
            "is exportable to ONNX, from its .safetensors or .pth.tar",
        )
    named = [(str(path), ckpt.checkpoint_family(path))]  # None: an official file, FOMM's
    if config is not None:
        named.append((f"--config {config}", config_family(config)))
    for what, family in named:
        if family not in (None, FAMILY):
            raise ReanimateError(
                f"{what}: the {family} family is not exportable to ONNX; export takes the {FAMILY} family "
                "(FOMM, the motion transformer)"
            )
    return ckpt.load(
        path, load_config(config) if config is not None else None, align_corners=align_corners, notes=notes
    )


def export_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    config: str | os.PathLike | None = None,
    align_corners: bool | None = None,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Load a checkpoint (:func:`load_for_export`) and :func:`export_model` it."""
    require("onnx", "reanimate export --format onnx")
    require("onnxruntime", "reanimate export --format onnx (its check against PyTorch)")
    _check_output(Path(output), overwrite)
    notes: list[str] = []
    model = load_for_export(checkpoint, config, align_corners, notes)
    result = export_model(model, output, Path(checkpoint).name, overwrite=overwrite, tolerance=tolerance)
    result.notes[:0] = notes
    return result


def build_graphs(model: FirstOrderModel) -> dict[str, nn.Module]:
    """The three graphs of :mod:`.graphs` on ``model``'s networks, in eval mode."""
    if model.generator.dense_motion_network is None:
        raise ReanimateError("the model's generator has no dense motion network: it cannot animate, nothing to export")
    keypoints = KeypointGraph(model.kp_detector)
    graphs = {
        "keypoints": keypoints,
        "source_encoder": SourceEncoderGraph(model.generator),
        "generator": GeneratorGraph(model.generator, keypoints.jacobians),
    }
    return {name: graph.eval() for name, graph in graphs.items()}


@torch.no_grad()
def graph_inputs(graphs: dict[str, nn.Module], size: tuple[int, int], batch: int, seed: int) -> dict[str, tuple]:
    """Inputs for each graph from a random source and ``batch`` random driving frames:
    images for the first two, their PyTorch outputs for the generator."""
    gen = torch.Generator().manual_seed(seed)
    source = torch.rand(1, 3, *size, generator=gen)
    driving = torch.rand(batch, 3, *size, generator=gen)
    outputs = {
        "source": source,
        **_named(graphs["keypoints"], graphs["keypoints"](source), suffix="_source"),
        **_named(graphs["source_encoder"], graphs["source_encoder"](source)),
        **_named(graphs["keypoints"], graphs["keypoints"](driving), suffix="_driving"),
    }
    generator = graphs["generator"]
    return {
        "keypoints": (driving,),
        "source_encoder": (source,),
        "generator": tuple(outputs[name] for name in generator.inputs),
    }


def _named(graph: nn.Module, outputs, suffix: str = "") -> dict[str, torch.Tensor]:
    """A graph's outputs by name; keypoint outputs renamed as the generator's inputs
    (``keypoints`` -> ``kp_source``, ``jacobians`` -> ``jacobian_source`` with ``suffix``)."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    renamed = {"keypoints": "kp", "jacobians": "jacobian"}
    return {(renamed[n] + suffix if n in renamed else n): t for n, t in zip(graph.outputs, outputs)}


def export_model(
    model: FirstOrderModel,
    output: str | os.PathLike,
    checkpoint_name: str | None = None,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Export ``model``'s networks into the folder ``output`` (see the module docstring);
    ``model`` is put in eval mode on the CPU in float32 (in place).

    Raises:
        OutputError: ``output`` exists and is not an empty folder (or, with
            ``overwrite``, not an earlier export), or its parent is missing.
        ReanimateError: ONNX Runtime's outputs differ from PyTorch's by more than
            ``tolerance``; nothing is written.
    """
    onnx = require("onnx", "reanimate export --format onnx")
    ort = require("onnxruntime", "reanimate export --format onnx (its check against PyTorch)")
    output = Path(output)
    _check_output(output, overwrite)
    start = time.perf_counter()
    model = model.eval().to("cpu", torch.float32)
    graphs = build_graphs(model)
    size = model.config.image_size
    traced = graph_inputs(graphs, size, TRACE_BATCH, seed=0)
    checked = graph_inputs(graphs, size, CHECK_BATCH, seed=1)
    with atomic_path(output, directory=True) as temp:
        specs = {}
        for name, graph in graphs.items():
            specs[name] = _export_graph(graph, traced[name], temp / GRAPH_FILES[name])
            onnx.checker.check_model(str(temp / GRAPH_FILES[name]))
        diffs = {name: _max_abs_diff(graph, checked[name], temp / specs[name].file) for name, graph in graphs.items()}
        worst = max(diffs, key=diffs.get)
        if not diffs[worst] <= tolerance:  # also catches nan
            raise ReanimateError(
                f"{output}: ONNX Runtime's {worst} graph differs from PyTorch's by {diffs[worst]:.2e} "
                f"(more than {tolerance:g}); nothing written"
            )
        info = {
            "exporter": EXPORTER,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "checkpoint": checkpoint_name,
            "background": "identity (a background motion predictor is not exported)",
            "verification": {"tolerance": tolerance, "batch": CHECK_BATCH, "max_abs_diff": diffs},
        }
        document = manifest_document(OPSET, specs, model.config, info)
        (temp / MANIFEST).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        sizes = {name: (temp / spec.file).stat().st_size for name, spec in specs.items()}
    return ExportResult(output, diffs, sizes, time.perf_counter() - start)


def _check_output(output: Path, overwrite: bool) -> None:
    """A new or empty folder; with ``overwrite``, also an earlier export (replaced whole
    once the new one is verified), never another non-empty folder."""
    if not output.parent.is_dir():
        raise OutputError(output, f"the folder {output.parent} it would be written in does not exist")
    check_output_folder(output, overwrite)
    if overwrite and output.is_dir() and any(output.iterdir()) and not is_export_folder(output):
        raise OutputError(output, f"is not an ONNX export (no {MANIFEST}); --overwrite only replaces one")


def _export_graph(graph: nn.Module, inputs: tuple, path: Path) -> GraphSpec:
    dynamic = {name: {0: BATCH} for name in (*graph.inputs, *graph.outputs) if name in _BATCHED}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter's deprecation notice and tracer warnings about shape
        # checks (sizes are fixed per export, the batch axis is declared dynamic).
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                graph,
                inputs,
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=list(graph.inputs),
                output_names=list(graph.outputs),
                dynamic_axes=dynamic,
            )
        except Exception as exc:  # the exporter's errors for operators without an ONNX form
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ReanimateError(
                f"the {path.stem} graph does not export to ONNX opset {OPSET} ({exc.__class__.__name__}: {first[:200]})"
            ) from None
        outputs = graph(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)

    def specs(names, tensors):
        return [
            {"name": n, "shape": [BATCH if n in _BATCHED and i == 0 else s for i, s in enumerate(t.shape)]}
            for n, t in zip(names, tensors)
        ]

    return GraphSpec(path.name, specs(graph.inputs, inputs), specs(graph.outputs, outputs))


@torch.no_grad()
def _max_abs_diff(graph: nn.Module, inputs: tuple, path: Path) -> float:
    """The largest absolute difference over all outputs of ONNX Runtime's run of the
    graph file against PyTorch's run of ``graph``, on ``inputs``."""
    expected = graph(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = cpu_session(path)
    got = session.run(None, {name: t.numpy() for name, t in zip(graph.inputs, inputs)})
    return max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected))
