"""Fit and check the face-mesh -> dlib box (``DLIB_BOX_FROM_MESH``).

dlib's shape predictor and face descriptor expect the boxes of dlib's own frontal
detector. Where the detector misses a face (turned heads, paintings), the evaluation
and ``face_quality.py`` give dlib a box made from MediaPipe's landmarks instead
(``reanimate.evaluation.dlib_face.dlib_box_from_landmarks``): the landmarks' mean plus
fixed offsets in units of the 3-D outer-eye-corner distance. This script measures those
offsets (medians over the frames of ``--fit`` videos where the detector finds the face)
and checks them on ``--check`` videos: the descriptor computed from the made box against
the one from the detection, and the same for the landmarks' own bounding box.

    python benchmarks/dlib_box_fit.py                                   # fit on the bundled example
    python benchmarks/dlib_box_fit.py --check a.mp4,b.mp4 [--every 10]  # and check elsewhere

Needs ``pip install dlib-bin face_recognition_models``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import face_quality as fq  # noqa: E402

from reanimate.evaluation.dlib_face import (  # noqa: E402
    DLIB_BOX_FROM_MESH,
    DlibFace,
    dlib_box_from_landmarks,
    landmark_box_frame,
)
from reanimate.io import open_frames  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "driving.mp4"


def frames_with_both(dlib: DlibFace, path: Path, every: int):
    """``(frame, landmarks, dlib box)`` for every ``every``-th frame where both find a face."""
    tracker = fq.LandmarkTracker()
    try:
        with open_frames(path) as reader:
            for index, frame in enumerate(reader):
                landmarks = tracker(frame)  # every frame: tracking
                if index % every or landmarks is None:
                    continue
                boxes = dlib.detect(frame)
                if len(boxes):
                    yield frame, landmarks, boxes[0]
    finally:
        tracker.close()


def offsets(landmarks: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``box`` relative to the landmarks' mean, in outer-eye-corner distances."""
    centre, size = landmark_box_frame(landmarks)
    return (box - np.tile(centre, 2)) / size


def descriptor(dlib: DlibFace, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """dlib's descriptor of the face in ``box`` (no detection)."""
    return dlib.measure(frame, box, detect=False).descriptor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fit", default=str(EXAMPLE), help="comma-separated videos to fit on (default: the bundled example)"
    )
    parser.add_argument("--check", help="comma-separated videos to check the current offsets on")
    parser.add_argument("--fit-every", type=int, default=2, help="--fit: every k-th frame (default 2)")
    parser.add_argument("--every", type=int, default=10, help="--check: every k-th frame (default 10)")
    args = parser.parse_args(argv)
    fq.silence_native_stderr()
    dlib = DlibFace()
    samples = [
        offsets(lm, box)
        for path in args.fit.split(",")
        for _, lm, box in frames_with_both(dlib, Path(path), args.fit_every)
    ]
    if not samples:
        raise SystemExit("dlib found no face in the --fit videos")
    print(
        f"fitted on {len(samples)} frames: {np.round(np.median(samples, axis=0), 3).tolist()}; "
        f"in use (DLIB_BOX_FROM_MESH): {list(DLIB_BOX_FROM_MESH)}"
    )
    if args.check:
        made, hull = [], []
        for path in args.check.split(","):
            for frame, lm, box in frames_with_both(dlib, Path(path), args.every):
                reference = descriptor(dlib, frame, box)
                made.append(np.linalg.norm(descriptor(dlib, frame, dlib_box_from_landmarks(lm)) - reference))
                bounds = np.concatenate([lm[:, :2].min(0), lm[:, :2].max(0)])
                hull.append(np.linalg.norm(descriptor(dlib, frame, bounds) - reference))
        print(
            f"descriptor distance to the detection's, {len(made)} frames: made box mean {np.mean(made):.3f} "
            f"max {np.max(made):.3f}; landmarks' bounding box mean {np.mean(hull):.3f} max {np.max(hull):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
