"""ONNX export of the FOMM family and its ONNX Runtime backend.

``onnx.py`` exports (``reanimate export --format onnx``), ``graphs.py`` says what each of
the three graphs computes, ``manifest.py`` reads and writes the folder's
``manifest.json``, ``runtime.py`` runs the graphs (``reanimate animate --backend
onnxruntime``, through :mod:`reanimate.animators.onnx_fomm`). ``onnx`` and
``onnxruntime`` are optional dependencies (``pip install "reanimate[onnx]"``), imported
only when used.
"""

from .manifest import MANIFEST, Manifest, is_export_folder, read_manifest

__all__ = ["MANIFEST", "Manifest", "is_export_folder", "read_manifest"]
