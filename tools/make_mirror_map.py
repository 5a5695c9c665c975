#!/usr/bin/env python
"""Print the face mesh's left/right mirror map (``reanimate.faces.topology.MIRROR``).

MediaPipe's face mesh numbers its 478 landmarks without a published left/right table.
This finds one from the bundled example portrait: landmark ``i`` found on the
horizontally flipped image, flipped back, lies where the mirror landmark ``m(i)`` lies
on the original; a one-to-one assignment (Hungarian, on 3-D head-frame distances) of
the flipped-back points to the original ones gives ``m``, made an involution by
keeping ``i -> j`` only where ``j -> i`` too (the rest map to themselves).

    python tools/make_mirror_map.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from reanimate.faces import FaceMesh
from reanimate.io import read_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "source.png"


def main() -> None:
    image = read_image(EXAMPLE)
    with FaceMesh() as mesh:
        original = mesh.detect(image)[0].landmarks.astype(np.float64)
        flipped = mesh.detect(np.ascontiguousarray(image[:, ::-1]))[0].landmarks.astype(np.float64)
    back = flipped.copy()
    back[:, 0] = image.shape[1] - 1 - back[:, 0]
    back[:, 2] = flipped[:, 2]
    cost = np.linalg.norm(back[:, None] - original[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    mirror = np.empty(len(original), np.int64)
    mirror[rows] = cols
    mirror = np.where(mirror[mirror] == np.arange(len(mirror)), mirror, np.arange(len(mirror)))
    print(
        f"# {int((mirror != np.arange(len(mirror))).sum())} landmarks paired, "
        f"{int((mirror == np.arange(len(mirror))).sum())} on the midline (or unpaired)"
    )
    print("MIRROR = (")
    for start in range(0, len(mirror), 16):
        print("    " + ", ".join(str(int(v)) for v in mirror[start : start + 16]) + ",")
    print(")")


if __name__ == "__main__":
    main()
