"""Pinhole and scaled-orthographic cameras: projection of camera-space points to pixels.

Camera coordinates (the project's, see :mod:`reanimate.geometry.rotation`): ``x`` right,
``y`` *down*, ``z`` away from the camera; a point is in front of the camera when
``z > 0``. Pixel coordinates ``(u, v)``: ``u`` along ``x`` (columns), ``v`` along ``y``
(rows), pixel centres at the integers ``0 .. W-1`` and ``0 .. H-1``, so the image spans
``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.

* Perspective: ``u = focal * x / z + cx``, ``v = focal * y / z + cy``.
* Scaled orthographic (weak perspective): ``u = focal * x / z_ref + cx``,
  ``v = focal * y / z_ref + cy``, where ``z_ref`` is the reference ("average") depth of
  the object; both models agree on the plane ``z = z_ref``.

In both cases the third screen coordinate is the depth ``z`` itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Camera:
    """Intrinsics of a camera with square pixels and no skew.

    Attributes:
        width, height: image size in pixels.
        focal: focal length in pixels.
        cx, cy: principal point in pixels; ``None`` (the default) puts it at the image
            centre ``((W - 1) / 2, (H - 1) / 2)``, which is filled in on construction.
        orthographic: scaled orthographic projection instead of perspective.
        z_ref: reference depth of the scaled orthographic model (camera units); unused
            in perspective.
    """

    width: int
    height: int
    focal: float
    cx: float | None = None
    cy: float | None = None
    orthographic: bool = False
    z_ref: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"Camera size must be positive, got width={self.width} height={self.height}")
        if not self.focal > 0:
            raise ValueError(f"Camera focal must be positive (pixels), got {self.focal}")
        if not self.z_ref > 0:
            raise ValueError(f"Camera z_ref must be a positive depth, got {self.z_ref}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "focal", float(self.focal))
        object.__setattr__(self, "z_ref", float(self.z_ref))
        object.__setattr__(self, "orthographic", bool(self.orthographic))
        object.__setattr__(self, "cx", float((self.width - 1) / 2 if self.cx is None else self.cx))
        object.__setattr__(self, "cy", float((self.height - 1) / 2 if self.cy is None else self.cy))

    @classmethod
    def from_fov(
        cls,
        width: int,
        height: int,
        fov_degrees: float,
        orthographic: bool = False,
        z_ref: float = 1.0,
    ) -> Camera:
        """A centred camera whose horizontal field of view, across the full image width
        (outer edges of the border pixels), is ``fov_degrees``."""
        if not 0 < fov_degrees < 180:
            raise ValueError(f"fov_degrees must be in (0, 180), got {fov_degrees}")
        focal = width / (2.0 * math.tan(math.radians(fov_degrees) / 2.0))
        return cls(width=width, height=height, focal=focal, orthographic=orthographic, z_ref=z_ref)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict of every field (inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Camera:
        """Camera from :meth:`to_dict`'s output."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown camera fields {unknown}; expected some of {sorted(names)}")
        return cls(**data)

    def intrinsics(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``(3, 3)`` matrix ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]`` (for the scaled
        orthographic model it applies to ``(x / z_ref, y / z_ref, 1)``)."""
        return torch.tensor(
            [[self.focal, 0.0, self.cx], [0.0, self.focal, self.cy], [0.0, 0.0, 1.0]],
            dtype=dtype or torch.get_default_dtype(),
        )


def project(points: torch.Tensor, camera: Camera) -> torch.Tensor:
    """Camera-space points to pixel coordinates and depth.

    Args:
        points: ``(..., V, 3)`` camera-space ``(x, y, z)``.
        camera: the camera.

    Returns:
        ``(..., V, 3)``: ``(u, v, z)``, pixels and depth. Perspective projection of points
        with ``z <= 0`` is meaningless (the rasteriser drops their triangles).
    """
    if points.shape[-1] != 3:
        raise ValueError(f"project expects (..., 3) points, got {tuple(points.shape)}")
    x, y, z = points.unbind(-1)
    scale = camera.focal / (camera.z_ref if camera.orthographic else z)
    return torch.stack([x * scale + camera.cx, y * scale + camera.cy, z], dim=-1)


def unproject(uv: torch.Tensor, depth: torch.Tensor, camera: Camera) -> torch.Tensor:
    """Pixel coordinates and depth back to camera-space points (inverse of :func:`project`).

    Args:
        uv: ``(..., 2)`` pixel coordinates ``(u, v)``.
        depth: ``(...)`` depth ``z``.
        camera: the camera.

    Returns:
        ``(..., 3)`` camera-space ``(x, y, z)``.
    """
    if uv.shape[-1] != 2 or uv.shape[:-1] != depth.shape:
        raise ValueError(
            f"unproject expects uv (..., 2) and depth (...), got {tuple(uv.shape)} and {tuple(depth.shape)}"
        )
    scale = (camera.z_ref if camera.orthographic else depth) / camera.focal
    x = (uv[..., 0] - camera.cx) * scale
    y = (uv[..., 1] - camera.cy) * scale
    return torch.stack([x, y, depth.to(x.dtype)], dim=-1)
