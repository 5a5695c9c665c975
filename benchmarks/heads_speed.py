#!/usr/bin/env python
"""Hand-run benchmark: how fast ``reanimate make-heads`` renders (target: >= 30 frames/s
at 256x256 on 2 cores).

    python benchmarks/heads_speed.py [--size 256] [--videos 8] [--frames 64]

Writes ``--videos`` training videos (flow and truth included) twice, with 1 and with 2
worker processes, into temporary folders, and prints frames/s of each (and their ratio),
then the time per frame of each stage of one video in this process with one torch
thread: rig, rasterise, shade, backdrop, flow, PNG frames, flow file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from _machine import cpu_model

from reanimate.heads.appearance import sample_appearance, sample_lighting
from reanimate.heads.dataset import HeadsConfig, make_heads, write_flow
from reanimate.heads.model import load_head_model
from reanimate.heads.rig import build_rig, pose_vertices, shape_vertices, to_camera
from reanimate.heads.scene import Backdrop, _shade, default_camera, head_pose
from reanimate.heads.trajectories import sample_trajectory
from reanimate.render import project, rasterize
from reanimate.render.flow import backward_flow


def end_to_end(size: int, videos: int, frames: int, workers: int) -> float:
    config = HeadsConfig(size=size, frames=frames, train=videos, test=0)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        make_heads(Path(folder) / "set", config, workers=workers, progress=False)
        return videos * frames / (time.perf_counter() - started)


def stages(size: int, frames: int) -> dict[str, float]:
    torch.set_num_threads(1)
    model, rng = load_head_model(), np.random.default_rng(0)
    rig, camera = build_rig(model), default_camera(size)
    look, light = sample_appearance(model, rng), sample_lighting(rng)
    backdrop = Backdrop.sample(rng, moving=True)
    motion = sample_trajectory(rng, frames, 25.0, "train")
    identity = rng.standard_normal(model.num_identities).astype(np.float32)
    times: dict[str, float] = {}

    def timed(name, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        times[name] = times.get(name, 0.0) + time.perf_counter() - started
        return result

    with torch.no_grad():
        reference = None
        for start in range(0, frames, 16):
            pose = head_pose(identity, motion, slice(start, start + 16))

            def rig_step(p=pose):
                shape = shape_vertices(model, rig, p.identity, p.expression)
                return to_camera(pose_vertices(rig, shape, p.rotation, p.gaze), p.scale, p.translation)

            vertices = timed("rig", rig_step)
            screen = project(vertices, camera)
            fragments = timed("rasterise", rasterize, screen, model.triangles, size, size, cull_backfaces=True)
            colour, _ = timed("shade", _shade, model, look, light, vertices, fragments)
            timed("backdrop", backdrop.render, np.arange(start, start + len(pose)), size, size)
            if reference is None:
                reference = (screen[0], fragments.depth[0])
            flow, visible = timed("flow", backward_flow, fragments, model.triangles, *reference, camera)
            rgb = (colour.clamp(0, 1) * 255).to(torch.uint8).numpy()
            with tempfile.TemporaryDirectory() as folder:
                timed("PNG frames", lambda: [cv2.imwrite(f"{folder}/{i}.png", f) for i, f in enumerate(rgb)])
                timed("flow file", write_flow, Path(folder) / "f.npz", flow.numpy(), visible.numpy())
    return {name: seconds / frames * 1000 for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; {args.videos} videos x {args.frames} frames at {args.size}x{args.size}")
    one = end_to_end(args.size, args.videos, args.frames, 1)
    two = end_to_end(args.size, args.videos, args.frames, 2)
    print(f"make-heads, 1 worker: {one:.1f} frames/s; 2 workers: {two:.1f} frames/s ({two / one:.2f}x)")
    split = stages(args.size, args.frames)
    print("one process, one thread, ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in split.items()))
    print(f"  sum {sum(split.values()):.1f} ms -> {1000 / sum(split.values()):.1f} frames/s per core")


if __name__ == "__main__":
    main()
