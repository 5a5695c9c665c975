"""The bundled portrait's face crop and its landmarks (MediaPipe), shared by the face tests.

Import from tests as ``from portrait_crop import portrait_crop`` (needs mediapipe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def portrait_crop(size: int = 512, increase: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """``(crop (size, size, 3) uint8, landmarks (478, 3) float64 in the crop's pixels)``
    of ``examples/source.png`` (the face box grown by ``increase``)."""
    from reanimate.faces import FaceMesh, crop_face, square_box
    from reanimate.io import read_image

    portrait = read_image(EXAMPLES / "source.png")
    with FaceMesh() as mesh:
        face = mesh.detect(portrait)[0]
    image = crop_face(portrait, square_box(face.box, portrait.shape[:2], increase), size)
    with FaceMesh() as mesh:
        landmarks = mesh.detect(image)[0].landmarks.astype(np.float64)
    return image, landmarks
