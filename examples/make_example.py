"""Make the bundled example media from public-domain portraits that ship in packages.

* ``source.png``: Grace Hopper, the portrait matplotlib ships as sample data (a U.S.
  Navy photograph, public domain).
* ``driving.mp4``: the portrait of astronaut Eileen Collins that scikit-image ships
  (NASA photograph, public domain), animated by this project's own zero-shot landmark
  animator with a scripted motion: landmarks turned in 3-D (yaw, pitch, roll), the jaw
  opened, the eyes blinked. No other video goes into it.

    python examples/make_example.py            # needs matplotlib and scikit-image

Deterministic up to the H.264 encoder.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from reanimate.animators.landmarks import DrivingFace, LandmarkAnimator, LandmarkAnimatorConfig
from reanimate.faces import FaceMesh, crop_face, square_box
from reanimate.faces.edit import close_eyes, open_mouth, turn_head
from reanimate.io import open_writer

HERE = Path(__file__).resolve().parent
FPS = 25
SECONDS = 6
SIZE = 384  # driving clip resolution


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise SystemExit(f"{package} is needed to make the example (pip install {package})")
    return Path(spec.submodule_search_locations[0], *parts)


def smooth_pulse(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """0 -> 1 -> 0 raised-cosine bump of full width ``width`` seconds."""
    x = np.clip((t - centre) / (width / 2), -1, 1)
    return 0.5 * (1 + np.cos(np.pi * x))


def script(t: np.ndarray) -> dict[str, np.ndarray]:
    """The scripted performance: angles in degrees, openings in [0, 1]."""
    return {
        "yaw": 18 * np.sin(2 * np.pi * t / 4.0) * np.clip(t / 0.8, 0, 1),
        "pitch": 6 * np.sin(2 * np.pi * t / 3.0 + 1.0),
        "roll": 5 * np.sin(2 * np.pi * t / 5.0),
        "mouth": sum(
            smooth_pulse(t, c, w) * a
            for c, w, a in ((1.0, 0.7, 0.9), (1.9, 0.5, 0.5), (3.1, 0.9, 1.0), (4.4, 0.4, 0.6), (5.2, 0.6, 0.8))
        ),
        "blink": sum(smooth_pulse(t, c, 0.28) for c in (0.6, 2.5, 4.0, 5.6)),
    }


def perform(landmarks: np.ndarray, yaw: float, pitch: float, roll: float, mouth: float, blink: float) -> np.ndarray:
    """Move ``(478, 3)`` pixel landmarks: open the jaw, close the eyes, turn the head."""
    return turn_head(close_eyes(open_mouth(landmarks, 0.05 * mouth), 0.95 * blink), yaw, pitch, roll)


def make_driving(portrait: np.ndarray, path: Path) -> None:
    with FaceMesh() as mesh:
        face = mesh.detect(portrait)[0]
        box = square_box(face.box, portrait.shape[:2], increase=0.7)
        frame = crop_face(portrait, box, SIZE)
        landmarks = mesh.detect(frame)[0].landmarks.astype(np.float64)
    animator = LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE))
    source = animator.encode_source(frame, landmarks)
    side = float(SIZE - 1)

    def driving(points: np.ndarray) -> DrivingFace:
        return DrivingFace(animator.keypoints(points[None], (0, 0), side), points)

    initial = driving(landmarks)
    t = np.arange(FPS * SECONDS) / FPS
    motion = script(t)
    with open_writer(path, FPS) as writer:
        for i in range(len(t)):
            values = {k: float(v[i]) for k, v in motion.items()}
            writer.write(animator.animate(source, driving(perform(landmarks, **values)), initial)[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    hopper = package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
    Image.open(hopper).convert("RGB").save(args.out / "source.png", optimize=True)
    astronaut = np.asarray(Image.open(package_file("skimage", "data", "astronaut.png")).convert("RGB"))
    make_driving(astronaut, args.out / "driving.mp4")
    print(f"wrote {args.out / 'source.png'} and {args.out / 'driving.mp4'} ({FPS * SECONDS} frames, {SECONDS} s)")


if __name__ == "__main__":
    main()
