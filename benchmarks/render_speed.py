"""Speed of the plain PyTorch rasteriser (``reanimate.render``) on CPU.

A closed, randomly bumpy sphere of about 49k triangles (the size of the ICT-FaceKit head
mesh once its quads are split) covers about 40 % of a 256x256 image; each of ``N``
frames shows it under another random rotation. One timed call rasterises all frames and
interpolates a per-vertex colour; the script prints milliseconds per frame (median and
best of the repeats) with ``torch.set_num_threads(2)``, and the CPU model.

    python benchmarks/render_speed.py                 # 256x256, N=8
    python benchmarks/render_speed.py --size 512 --frames 4 --cull
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from _machine import cpu_model

from reanimate.geometry import euler_to_rotation
from reanimate.render import Camera, interpolate, project, rasterize


def bumpy_sphere(n_lat: int, n_lon: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed latitude-longitude sphere of radius about 1 with smooth random bumps.

    Returns ``(V, 3)`` vertices and ``(F, 3)`` faces, ``F = 2 * n_lon * (n_lat - 1)``,
    counter-clockwise seen from outside.
    """
    generator = torch.Generator().manual_seed(seed)
    theta = torch.arange(1, n_lat) * math.pi / n_lat  # polar angle of the rings
    phi = torch.arange(n_lon) * 2 * math.pi / n_lon
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    ring = torch.stack([t.sin() * p.cos(), -t.cos(), t.sin() * p.sin()], dim=-1).reshape(-1, 3)
    vertices = torch.cat([torch.tensor([[0.0, -1.0, 0.0]]), ring, torch.tensor([[0.0, 1.0, 0.0]])])
    # Smooth bumps (a few random plane waves, up to about 10 % of the radius), like a
    # head's nose and cheeks rather than noise that folds the surface.
    waves = torch.randn(3, 8, generator=generator) * 3
    phase = torch.rand(8, generator=generator) * 2 * math.pi
    vertices = vertices * (1 + 0.03 * torch.sin(vertices @ waves + phase).sum(1, keepdim=True) / 8**0.5)
    last = vertices.shape[0] - 1
    index = torch.arange((n_lat - 1) * n_lon).reshape(n_lat - 1, n_lon) + 1
    nxt = index.roll(-1, dims=1)
    top = torch.stack([torch.zeros(n_lon, dtype=torch.long), nxt[0], index[0]], dim=-1)
    bottom = torch.stack([torch.full((n_lon,), last), index[-1], nxt[-1]], dim=-1)
    a, b, c, d = index[:-1], nxt[:-1], nxt[1:], index[1:]
    quads = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return vertices, torch.cat([top, quads, bottom])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cull", action="store_true", help="cull back faces")
    parser.add_argument("--orthographic", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    vertices, faces = bumpy_sphere(129, 192)
    colors = torch.rand(vertices.shape[0], 3, generator=torch.Generator().manual_seed(1))
    angles = torch.rand(3, args.frames, generator=torch.Generator().manual_seed(2)) * 360 - 180
    rotation = euler_to_rotation(*angles)
    distance = 5.0
    # Radius 1 at distance 5 projects to about 0.357 * size pixels: 40 % of the image.
    camera = Camera.from_fov(
        args.size, args.size, 2 * math.degrees(math.atan(1.4 / distance)), args.orthographic, distance
    )
    points = vertices @ rotation.transpose(1, 2) + torch.tensor([0.0, 0.0, distance])
    screen = project(points, camera)

    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        fragments = rasterize(screen, faces, args.size, args.size, not args.orthographic, args.cull)
        interpolate(colors, fragments, faces)
        times.append(time.perf_counter() - start)
    timed = sorted(times[1:])  # the first call warms up
    median, best = (t * 1000 / args.frames for t in (timed[len(timed) // 2], timed[0]))
    coverage = fragments.mask.float().mean().item()
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{faces.shape[0]} triangles, {args.size}x{args.size}, N={args.frames}, coverage {coverage:.0%}, "
        f"cull={args.cull}, orthographic={args.orthographic}: {median:.1f} ms/frame (median; best {best:.1f})"
    )


if __name__ == "__main__":
    main()
