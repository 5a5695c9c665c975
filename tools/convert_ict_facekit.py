"""One-time conversion of ICT-FaceKit's light face model into the compact file the
project ships (``reanimate/heads/assets/ict_facekit.npz``).

ICT-FaceKit (https://github.com/ICT-VGL/ICT-FaceKit, MIT licence, (c) 2020 USC Institute
for Creative Technologies) ships its model as ~160 plain-text OBJ files (~390 MB): a
generic neutral head, 100 identity PCA modes and 53 ARKit-named expression shapes, all
on one 26,719-vertex topology. We keep what a renderer needs:

* the *render set*: vertices 0..24,590 (face, head and neck, mouth and eye sockets, gums
  and tongue, teeth, eyeballs) and the polygons using only those vertices; the eye blend,
  occlusion, lacrimal-fluid and eyelash strips are dropped (they need UE-style shaders);
* the first ``--identities`` identity modes (default 50) and all 53 expressions, stored
  as float16 offsets from the neutral head (centimetres; the rounding error is reported);
* the 68 Multi-PIE landmark vertex indices and the expression names from
  ``FaceXModel/vertex_indices.json``, and the part ranges of the model's README.

Usage (the repository from ``git clone https://github.com/ICT-VGL/ICT-FaceKit``)::

    python tools/convert_ict_facekit.py /path/to/ICT-FaceKit [--identities 50]

The output carries ICT-FaceKit's MIT notice (array ``license``) and the notice is also
written beside it as ``LICENSE-ICT-FaceKit.txt``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reanimate.heads.model import MODEL_PATH, NOTICE_PATH, PARTS, RENDER_VERTICES  # noqa: E402
from reanimate.io.files import write_npz  # noqa: E402


def read_obj_vertices(path: Path) -> np.ndarray:
    """``v x y z`` lines of an OBJ file -> float64 ``(V, 3)``."""
    text = path.read_text()
    rows = [line[2:] for line in text.splitlines() if line.startswith("v ")]
    return np.array(" ".join(rows).split(), dtype=np.float64).reshape(-1, 3)


def read_obj_polygons(path: Path) -> list[list[int]]:
    """``f a/b/c ...`` lines -> 0-based vertex index lists (triangles and quads)."""
    polygons = []
    for line in path.read_text().splitlines():
        if line.startswith("f "):
            polygons.append([int(item.split("/")[0]) - 1 for item in line.split()[1:]])
    return polygons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repository", type=Path, help="a checkout of ICT-VGL/ICT-FaceKit")
    parser.add_argument("--identities", type=int, default=50, help="identity modes to keep (of 100)")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    folder = args.repository / "FaceXModel"
    started = time.perf_counter()

    neutral = read_obj_vertices(folder / "generic_neutral_mesh.obj")
    polygons = read_obj_polygons(folder / "generic_neutral_mesh.obj")
    kept = [p for p in polygons if max(p) < RENDER_VERTICES]
    if any(len(p) not in (3, 4) for p in kept):
        raise SystemExit("unexpected polygon with more than 4 corners")
    faces = np.full((len(kept), 4), -1, np.int32)
    for row, polygon in enumerate(kept):
        faces[row, : len(polygon)] = polygon

    indices = json.loads((folder / "vertex_indices.json").read_text())
    names = list(indices["expressions"])
    landmarks = np.asarray(indices["idx_to_landmark_verts"], np.int32)

    def deltas(files: list[Path]) -> tuple[np.ndarray, float]:
        exact = np.stack([read_obj_vertices(f)[:RENDER_VERTICES] - neutral[:RENDER_VERTICES] for f in files])
        packed = exact.astype(np.float16)
        return packed, float(np.abs(packed.astype(np.float64) - exact).max())

    identity, identity_error = deltas([folder / f"identity{i:03d}.obj" for i in range(args.identities)])
    expression, expression_error = deltas([folder / f"{name}.obj" for name in names])

    try:
        commit = subprocess.run(
            ["git", "-C", str(args.repository), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    notice = (args.repository / "LICENSE").read_text()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(
        args.out,
        {
            "template": neutral[:RENDER_VERTICES].astype(np.float32),
            "identity": identity,
            "expression": expression,
            "faces": faces,
            "landmarks": landmarks,
            "expression_names": np.asarray(names),
            "part_names": np.asarray([name for name, _, _ in PARTS]),
            "part_ranges": np.asarray([(start, stop) for _, start, stop in PARTS], np.int32),
            "license": np.asarray(notice),
            "source": np.asarray(f"https://github.com/ICT-VGL/ICT-FaceKit @ {commit}, FaceXModel/"),
        },
    )
    (args.out.parent / NOTICE_PATH.name).write_text(
        "The file ict_facekit.npz in this folder is converted from ICT-FaceKit\n"
        "(https://github.com/ICT-VGL/ICT-FaceKit, commit " + commit + "), under this licence:\n\n" + notice
    )
    print(
        f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB, {RENDER_VERTICES} vertices, {len(faces)} polygons, "
        f"{len(identity)} identities, {len(expression)} expressions; float16 rounding error "
        f"{identity_error * 10:.4f} mm (identity), {expression_error * 10:.4f} mm (expression); "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
