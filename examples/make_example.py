"""Make the bundled example media: a drawn cartoon face (source.png) and a short clip
of a second drawn face that turns, nods, blinks and opens its mouth (driving.mp4).

Everything is drawn here from geometric shapes, so the files are ours to redistribute
(see README.md in this folder). Run: python examples/make_example.py
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reanimate.io import open_writer

SIZE = 256
SUPERSAMPLE = 3
HERE = Path(__file__).resolve().parent


def draw_face(
    *,
    shift=(0.0, 0.0),
    tilt=0.0,
    turn=0.0,
    eye_open=1.0,
    mouth_open=0.0,
    skin=(226, 184, 150),
    hair=(70, 45, 30),
    background=((70, 110, 160), (180, 200, 220)),
) -> np.ndarray:
    """One uint8 (SIZE, SIZE, 3) frame. ``turn`` in [-1, 1] shifts the features sideways
    (a cheap head yaw), ``tilt`` rotates the head in degrees (roll)."""
    s = SIZE * SUPERSAMPLE
    top, bottom = np.array(background[0], float), np.array(background[1], float)
    ramp = np.linspace(0, 1, s)[:, None, None]
    bg = (top * (1 - ramp) + bottom * ramp).repeat(s, axis=1).astype(np.uint8)
    canvas = Image.fromarray(bg)

    head = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(head)
    u = s / 256  # drawing unit: one pixel of the final image
    cx, cy = s / 2, s / 2 + 10 * u
    fx = cx + 14 * u * turn  # features move with the yaw
    d.rectangle([cx - 28 * u, cy + 70 * u, cx + 28 * u, s], fill=skin)  # neck
    d.ellipse([cx - 95 * u, cy - 40 * u, cx + 95 * u, s + 80 * u], fill=(60, 90, 70))  # shoulders
    d.ellipse([cx - 82 * u, cy - 110 * u, cx + 82 * u, cy + 30 * u], fill=hair)  # hair back
    d.ellipse([cx - 70 * u, cy - 90 * u, cx + 70 * u, cy + 95 * u], fill=skin)  # face
    d.chord([cx - 74 * u, cy - 112 * u, cx + 74 * u, cy - 10 * u], 180, 360, fill=hair)  # fringe
    for side in (-1, 1):
        ex, ey = fx + side * 28 * u, cy - 12 * u
        h = max(1.5, 13 * eye_open) * u
        d.ellipse([ex - 17 * u, ey - h, ex + 17 * u, ey + h], fill=(250, 250, 250))
        if eye_open > 0.25:
            px = ex + 5 * u * turn
            d.ellipse([px - 8 * u, ey - min(8 * u, h), px + 8 * u, ey + min(8 * u, h)], fill=(60, 90, 140))
            d.ellipse([px - 4 * u, ey - min(4 * u, h), px + 4 * u, ey + min(4 * u, h)], fill=(15, 15, 20))
        d.line([ex - 18 * u, ey - h - 2 * u, ex + 18 * u, ey - h - 2 * u], fill=(40, 30, 25), width=int(2 * u))
        d.line([ex - 18 * u, ey - 26 * u, ex + 16 * u, ey - 30 * u], fill=hair, width=int(5 * u))  # brow
    d.polygon([(fx, cy - 5 * u), (fx - 12 * u, cy + 28 * u), (fx + 8 * u, cy + 30 * u)], fill=(200, 150, 120))
    my = cy + 52 * u
    mh = (3 + 22 * mouth_open) * u
    d.ellipse([fx - 26 * u, my - mh, fx + 26 * u, my + mh], fill=(150, 50, 60))
    if mouth_open > 0.15:
        d.ellipse([fx - 20 * u, my - mh + 3 * u, fx + 20 * u, my + mh - 3 * u], fill=(60, 15, 25))
        d.rectangle([fx - 16 * u, my - mh + 3 * u, fx + 16 * u, my - mh + 9 * u], fill=(245, 245, 240))

    head = head.rotate(tilt, resample=Image.BICUBIC, center=(cx, cy + 60 * u),
                       translate=(shift[0] * u, shift[1] * u))
    canvas.paste(head, (0, 0), head)
    canvas = canvas.filter(ImageFilter.GaussianBlur(0.6 * SUPERSAMPLE))
    return np.asarray(canvas.resize((SIZE, SIZE), Image.LANCZOS))


def driving_pose(t: float) -> dict:
    """Head and face parameters at time t in [0, 1]."""
    blink = max(0.0, 1 - abs(t - 0.55) / 0.04)  # one blink
    return dict(
        shift=(22 * math.sin(2 * math.pi * t), 8 * math.sin(4 * math.pi * t)),
        tilt=10 * math.sin(2 * math.pi * t + 0.8),
        turn=math.sin(2 * math.pi * t),
        eye_open=1 - blink,
        mouth_open=max(0.0, math.sin(3 * math.pi * t)) ** 2,
        skin=(205, 160, 125),
        hair=(25, 20, 20),
        background=((150, 170, 150), (220, 225, 210)),
    )


def main(frames: int = 60, fps: int = 25) -> None:
    Image.fromarray(draw_face()).save(HERE / "source.png")
    with open_writer(HERE / "driving.mp4", fps=fps) as writer:
        for i in range(frames):
            writer.write(draw_face(**driving_pose(i / frames)))


if __name__ == "__main__":
    main()
