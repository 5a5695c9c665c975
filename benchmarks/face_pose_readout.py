"""How well MediaPipe reads back a head pose that the zero-shot animator renders.

For one source face (default: the bundled example's portrait), the landmark animator is
driven by the source's own landmarks turned by known angles (``faces.edit.turn_head``),
and MediaPipe's face mesh is run on each rendered crop. Printed per angle: the roll
(eye-corner line) and yaw (``face_quality.face_measures``) that MediaPipe reads, relative
to the unmoved source, and the mean distance of the re-detected landmarks from the ones
the animator placed. For in-plane rotations the same numbers are given for the crop
rotated by ``cv2.warpAffine``: a rotation of the pixels is what the animator should
reproduce exactly.

    python benchmarks/face_pose_readout.py [--source IMAGE] [--angles 1,2,4,6]

It tells where the head-pose targets of ``face_quality.py`` are lost: in the landmarks the
animator places, or in what a tracker can read from a warped photo.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import face_quality as fq  # noqa: E402

from reanimate.animators.landmarks import DrivingFace, LandmarkAnimator, LandmarkAnimatorConfig  # noqa: E402
from reanimate.faces import FaceMesh, crop_face, square_box  # noqa: E402
from reanimate.faces.edit import turn_head  # noqa: E402
from reanimate.io import read_image  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "source.png"
SIZE = 512


def source_crop(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The animator's square crop of the largest face and its landmarks."""
    image = read_image(path)
    with FaceMesh() as mesh:
        faces = mesh.detect(image)
        if not faces:
            raise SystemExit(f"{path}: no face found")
        crop = crop_face(image, square_box(faces[0].box, image.shape[:2], 0.45), SIZE)
        landmarks = mesh.detect(crop)[0].landmarks.astype(np.float64)
    return crop, landmarks


def readout(image: np.ndarray) -> tuple[float, float, np.ndarray]:
    landmarks = fq.still_landmarks(image)
    if landmarks is None:
        raise SystemExit("MediaPipe found no face in a rendered crop")
    measures = fq.face_measures(landmarks)
    return measures["roll"], measures["yaw"], landmarks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(EXAMPLE), help="source image (default: the bundled portrait)")
    parser.add_argument("--angles", default="1,2,4,6", help="comma-separated angles in degrees (each also negated)")
    args = parser.parse_args(argv)
    fq.silence_native_stderr()
    angles = sorted({s * float(a) for a in args.angles.split(",") for s in (-1, 1)})

    crop, landmarks = source_crop(Path(args.source))
    animator = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE))
    source = animator.encode_source(crop, landmarks)
    initial = DrivingFace(animator.keypoints(landmarks[None], (0, 0), SIZE - 1.0)[0], landmarks)

    def render(target: np.ndarray) -> np.ndarray:
        kp = animator.keypoints(target[None], (0, 0), SIZE - 1.0)[0]
        return animator.animate(source, DrivingFace(kp, target), initial)

    roll0, yaw0, _ = readout(crop)
    centre = landmarks[:, :2].mean(0)
    still = readout(render(landmarks))[2]
    print(f"source {args.source}; angles the animator was given, and what MediaPipe reads back (degrees)")
    print(f"re-detection error with no motion: {np.linalg.norm(still[:, :2] - landmarks[:, :2], axis=1).mean():.2f} px")
    print(f"{'turn':<6} {'given':>6} {'read':>7} {'other axis':>10} {'landmark err px':>16} {'cv2 read':>9}")
    for kind in ("roll", "yaw"):
        ratios = []
        for angle in angles:
            target = turn_head(landmarks, **{kind: angle})
            roll, yaw, found = readout(render(target))
            read, other = (roll - roll0, yaw - yaw0) if kind == "roll" else (yaw - yaw0, roll - roll0)
            err = float(np.linalg.norm(found[:, :2] - target[:, :2], axis=1).mean())
            pixels = ""
            if kind == "roll":
                # The same turn of the eye line, as a rotation of the pixels.
                turn = fq.face_measures(target)["roll"] - fq.face_measures(landmarks)["roll"]
                matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), -turn, 1.0)
                rotated = cv2.warpAffine(crop, matrix, (SIZE, SIZE), borderMode=cv2.BORDER_REPLICATE)
                pixels = f"{readout(rotated)[0] - roll0:+9.2f}"
            ratios.append(read / angle)
            print(f"{kind:<6} {angle:+6.1f} {read:+7.2f} {other:+10.2f} {err:16.2f} {pixels}")
        print(f"{kind}: read / given = {np.mean(ratios):.2f} (mean over the angles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
