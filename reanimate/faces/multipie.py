"""MediaPipe's 478-point face mesh -> the 68 Multi-PIE points (0-based, iBUG 300-W order).

The 68-point layout is what face-alignment networks, 3DMM landmark embeddings (FLAME,
ICT-FaceKit) and IMavatar's tracking (supplement Sec. 2.6, keypoints of Bulat and
Tzimiropoulos 2017) use. Each Multi-PIE point is given one MediaPipe mesh point with the
same meaning, read off the mesh topology of :mod:`reanimate.faces.topology` ("right" is
the person's right, on the image's left):

* jaw 0..16: points of FACE_OVAL from the person's right temple (at the height of the
  eyes) down to the chin (152) and up the left side;
* brows 17..21 / 22..26: the upper edge of each brow, outer to inner (right) and inner
  to outer (left);
* nose 27..30: the midline (MIDLINE) from between the eyes (168) to the tip; 31..35:
  the lower nostril rim through the base of the columella (2);
* eyes 36..47: the corners (33, 133 | 362, 263), and the lid points a third and two
  thirds of the way along each lid (topology's ``*_EYE_*_LID`` tuples);
* lips 48..59: the outer loop (LIPS_OUTER) from the right corner (61) over the cupid's
  bow (37, 0, 267) and back along the lower lip; 60..67: the inner loop (LIPS_INNER)
  from its right corner (78) over its middle points (13, 14).

Which oval point each jaw point is, and where on the midline 29 and 30 sit, was chosen
on ``make-heads`` frames (ICT-FaceKit's 68 landmark vertices): the candidate with the
smallest mean distance to the exact point over 512 frames (8 pairs at 256 px, seed 7,
target and driving frames, all detected). The jaw choice came out mirror-symmetric
(172/397, 150/379, 149/378, 148/377). On those frames every other point of this table is
within 1.1 % of the inter-ocular distance of the best mesh point for it. (The table was
first written for ``benchmarks/_heads_metrics.py``.)
"""

from __future__ import annotations

import numpy as np
import torch

_JAW = (127, 234, 93, 132, 172, 150, 149, 148, 152, 377, 378, 379, 397, 361, 323, 454, 356)
_RIGHT_BROW = (70, 63, 105, 66, 107)
_LEFT_BROW = (336, 296, 334, 293, 300)
_NOSE_BRIDGE = (168, 197, 195, 4)
_NOSE_BASE = (98, 97, 2, 326, 327)
_RIGHT_EYE = (33, 160, 158, 133, 153, 144)  # outer, upper x2, inner, lower x2
_LEFT_EYE = (362, 385, 387, 263, 373, 380)  # inner, upper x2, outer, lower x2
_OUTER_LIPS = (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91)
_INNER_LIPS = (78, 81, 13, 311, 308, 402, 14, 178)

#: ``MEDIAPIPE_68[k]`` is the MediaPipe mesh index of Multi-PIE point ``k``.
MEDIAPIPE_68: tuple[int, ...] = (
    _JAW + _RIGHT_BROW + _LEFT_BROW + _NOSE_BRIDGE + _NOSE_BASE + _RIGHT_EYE + _LEFT_EYE + _OUTER_LIPS + _INNER_LIPS
)
assert len(MEDIAPIPE_68) == 68

#: Number of Multi-PIE points.
NUM_MULTIPIE = 68
#: Multi-PIE points that move with the skull, not with the expression: the upper jaw
#: contour (the chin and lower cheeks drop when the mouth opens), the nose and the eye
#: corners. Rigid fits (head pose, camera) use these.
RIGID_68: tuple[int, ...] = (0, 1, 2, 3, 13, 14, 15, 16, *range(27, 36), 36, 39, 42, 45)
#: Multi-PIE index ranges of the face's parts.
PARTS_68: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "lips": tuple(range(48, 68)),
}


def to_multipie(landmarks: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``(..., 478, C)`` MediaPipe landmarks (numpy or torch) -> ``(..., 68, C)`` Multi-PIE
    points, a new array of the same kind. (A mesh without the 10 iris points, ``(..., 468,
    C)``, works too: none of the 68 is an iris point.)"""
    assert landmarks.ndim >= 2 and landmarks.shape[-2] >= 468, (
        f"expected (..., 478, C) MediaPipe landmarks, got {tuple(landmarks.shape)}"
    )
    if isinstance(landmarks, torch.Tensor):
        return landmarks[..., list(MEDIAPIPE_68), :]
    return np.asarray(landmarks)[..., MEDIAPIPE_68, :]


__all__ = ["MEDIAPIPE_68", "NUM_MULTIPIE", "PARTS_68", "RIGID_68", "to_multipie"]
