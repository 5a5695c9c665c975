"""Normalised coordinate grids.

Convention used throughout the project: coordinates live in [-1, 1], ``x`` (width)
first, then ``y`` (height) and, for volumes, ``z`` (depth). ``-1`` and ``1`` are the
*centres* of the first and last pixel, i.e. the ``align_corners=True`` convention
of :func:`torch.nn.functional.grid_sample`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def coordinate_grid(
    spatial_size: Sequence[int],
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Meshgrid of normalised coordinates.

    Args:
        spatial_size: ``(H, W)`` for images or ``(D, H, W)`` for volumes.

    Returns:
        ``(H, W, 2)`` with ``[..., 0] = x`` and ``[..., 1] = y`` (or ``(D, H, W, 3)``
        with x, y, z), values ``2 * i / (n - 1) - 1`` (a size-1 axis gives 0).
    """
    axes = []
    for n in spatial_size:
        idx = torch.arange(n, dtype=dtype or torch.float32, device=device)
        axes.append(2 * (idx / (n - 1)) - 1 if n > 1 else idx * 0)
    mesh = torch.meshgrid(*axes, indexing="ij")  # slowest axis first: (z,) y, x
    return torch.stack(mesh[::-1], dim=-1)


def box_to_normalized(points: torch.Tensor, origin, side) -> torch.Tensor:
    """Pixel coordinates ``(..., n)`` to [-1, 1] in a box whose first pixel centre is at
    ``origin`` and whose last is ``side`` pixels further on each axis.

    The general form of :func:`pixel_to_normalized` (a whole image is the box at origin
    0 with ``side = size - 1``); a square face crop of a frame is ``origin = (x0, y0)``,
    one ``side``.

    Args:
        points: ``(..., n)`` pixels, x first.
        origin: scalar or ``(n,)`` pixels (tensor or sequence).
        side: scalar or ``(n,)`` pixels, > 0.

    Returns:
        ``(..., n)``, same dtype as ``points``: ``2 (points - origin) / side - 1``.
    """
    origin = torch.as_tensor(origin, dtype=points.dtype, device=points.device)
    return 2 * (points - origin) / side - 1


def normalized_to_box(points: torch.Tensor, origin, side) -> torch.Tensor:
    """Inverse of :func:`box_to_normalized`: ``(points + 1) side / 2 + origin``, ``(..., n)``."""
    origin = torch.as_tensor(origin, dtype=points.dtype, device=points.device)
    return (points + 1) * side / 2 + origin


def _image_side(points: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """``(n,)`` pixel spans of an image of ``spatial_size`` (``(H, W)`` or ``(D, H, W)``), x first."""
    sizes = torch.tensor(list(spatial_size)[::-1], dtype=points.dtype, device=points.device)
    return (sizes - 1).clamp(min=1)


def pixel_to_normalized(points: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """Pixel coordinates ``(..., n)`` (x first, 0 = centre of first pixel) to [-1, 1]."""
    return box_to_normalized(points, 0.0, _image_side(points, spatial_size))


def normalized_to_pixel(points: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`pixel_to_normalized`."""
    return normalized_to_box(points, 0.0, _image_side(points, spatial_size))
