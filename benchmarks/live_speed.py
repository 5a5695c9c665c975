#!/usr/bin/env python
"""Hand-run benchmark: ``reanimate live``'s sustained frames/s and latency on the CPU
(not part of the test suite).

The bundled driving clip (``examples/driving.mp4``), placed in a webcam-sized frame
(``--frame-size``, default 640x480: the clip scaled to the frame's height, centred,
grey at the sides) and written at a camera's rate, is played in real time as the camera
(``reanimate.io.camera.VideoInput``, looped) for ``--seconds``; the bundled portrait,
cut square, is animated at ``--size`` (default 512: 512x512 output) by the default
animator, through the same ``LiveSession``, capture thread and ``run_live`` loop as the
command, with no window (the frames go nowhere). Each row is one way of running:

* ``sequential``: face detection and rendering one after the other (``run_live``'s
  default and the baseline);
* ``overlap``: the next frame's face detected in a second thread while the current one
  renders (``run_live(overlap=True)``; mixed results on 2 cores, so not the default).

each at ``--rates`` camera frame rates (default 30, a webcam's, and 60, which no
animator here keeps up with: the sustained rate is then the animator's own). Printed per
row: frames/s shown, frames dropped, median and 95th-percentile latency from capture to
output ready; and the ratio of each row's frames/s and median latency to the sequential
row's at the same rate, measured in the same run. Before the rows, the per-frame cost of
the two stages alone (no threads): detection and the session's step. The CPU model, the
thread count and the load average are printed: timings are noisy when other processes
share the CPUs.

Usage::

    python benchmarks/live_speed.py                       # about a minute
    python benchmarks/live_speed.py --threads 2           # torch's threads against the default
    python benchmarks/live_speed.py --seconds 20 --rates 25
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import cpu_model  # noqa: E402

from reanimate.device import tune_cpu_allocator  # noqa: E402
from reanimate.io import open_frames, open_writer, read_image  # noqa: E402
from reanimate.io.camera import CaptureThread, VideoInput  # noqa: E402
from reanimate.pipelines.animate import build_pipeline  # noqa: E402
from reanimate.pipelines.live import LiveSession, default_threads, run_live  # noqa: E402

EXAMPLES = REPO / "examples"
ROWS = ("sequential", "overlap")


def webcam_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` scaled to ``height``, centred in a grey ``(height, width, 3)`` frame (or
    centre-cropped to ``width`` where it is wider)."""
    side = round(frame.shape[1] * height / frame.shape[0])
    scaled = cv2.resize(frame, (side, height), interpolation=cv2.INTER_LINEAR)
    out = np.full((height, width, 3), 128, np.uint8)
    if side >= width:
        x = (side - width) // 2
        return np.ascontiguousarray(scaled[:, x : x + width])
    x = (width - side) // 2
    out[:, x : x + side] = scaled
    return out


def make_camera_clip(path: Path, rate: float, width: int, height: int) -> Path:
    """The bundled driving clip in webcam-sized frames at ``rate`` frames/s."""
    with open_frames(EXAMPLES / "driving.mp4") as reader, open_writer(path, rate, crf=12) as writer:
        for frame in reader:
            writer.write(webcam_frame(frame, width, height))
    return path


def square_portrait() -> np.ndarray:
    """The bundled portrait, its central square."""
    image = read_image(EXAMPLES / "source.png")
    height, width = image.shape[:2]
    side = min(height, width)
    y, x = (height - side) // 2, (width - side) // 2
    return np.ascontiguousarray(image[y : y + side, x : x + side])


def stage_costs(pipeline, portrait, clip: Path, size: int, frames: int = 60) -> tuple[float, float]:
    """Median ms per frame of detection and of the session's step, one after the other."""
    detect, step = [], []
    with LiveSession(pipeline, portrait, size=size) as session, open_frames(clip) as reader:
        for n, frame in enumerate(reader):
            if n == frames:
                break
            t0 = time.perf_counter()
            faces = session.detect(frame)
            t1 = time.perf_counter()
            session.step(frame, faces)
            t2 = time.perf_counter()
            if n >= 5:  # after the first frames (the reference, warm-up)
                detect.append(t1 - t0)
                step.append(t2 - t1)
    return 1000 * statistics.median(detect), 1000 * statistics.median(step)


def run_row(pipeline, portrait, clip: Path, size: int, seconds: float, overlap: bool):
    with LiveSession(pipeline, portrait, size=size) as session:
        shape = session.output_shape
        with CaptureThread(VideoInput(clip, loop=True)) as capture:
            stats = run_live(session, capture, [], max_seconds=seconds, overlap=overlap)
    return stats, shape


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each row's run (default 12)")
    parser.add_argument("--rates", default="30,60", help="camera frame rates, comma-separated (default 30,60)")
    parser.add_argument("--size", type=int, default=512, help="output side (default 512)")
    parser.add_argument("--frame-size", default="640x480", help="camera frame WxH (default 640x480)")
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: reanimate live's, OMP_NUM_THREADS when set)"
    )
    args = parser.parse_args()
    if args.threads is not None or "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(args.threads or default_threads())
    width, height = (int(v) for v in args.frame_size.lower().split("x"))
    rates = [float(r) for r in args.rates.split(",")]

    tune_cpu_allocator()
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    pipeline = build_pipeline()
    portrait = square_portrait()
    with tempfile.TemporaryDirectory() as tmp:
        clips = {rate: make_camera_clip(Path(tmp) / f"camera{rate:g}.mp4", rate, width, height) for rate in rates}
        detect, step = stage_costs(pipeline, portrait, clips[rates[0]], args.size)
        print(
            f"per frame alone: detection {detect:.1f} ms, step {step:.1f} ms "
            f"(one after the other: at most {1000 / (detect + step):.1f} frames/s)"
        )
        print(f"camera {width}x{height}; output {args.size}x{args.size}; {args.seconds:g} s per row")
        header = (
            f"{'rate':>5} {'row':<11} {'frames/s':>8} {'shown':>6} {'dropped':>7} "
            f"{'median ms':>9} {'p95 ms':>7} {'fps ratio':>9} {'latency ratio':>13}"
        )
        print(header)
        for rate in rates:
            baseline = None
            for row in ROWS:
                stats, shape = run_row(pipeline, portrait, clips[rate], args.size, args.seconds, row == "overlap")
                assert shape[:2] == (args.size, args.size), shape
                fps, median = stats.frames_per_second, stats.latency_ms(50)
                baseline = baseline or (fps, median)
                print(
                    f"{rate:>5g} {row:<11} {fps:>8.1f} {stats.shown:>6} {stats.dropped:>7} {median:>9.1f} "
                    f"{stats.latency_ms(95):>7.1f} {fps / baseline[0]:>9.2f} {median / baseline[1]:>13.2f}"
                )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
