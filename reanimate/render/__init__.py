"""Plain PyTorch triangle rendering: cameras, a differentiable z-buffer rasteriser,
Lambert/Blinn-Phong shading and ground-truth optical flow between rendered frames.

Camera coordinates: ``x`` right, ``y`` down, ``z`` away from the camera. Pixel centres are
at integer ``(u, v)``; images are channels-last ``(N, H, W, C)``; flow is in normalised
coordinates, x first, ``grid_sample(..., align_corners=True)`` convention.

Typical use::

    camera = Camera.from_fov(256, 256, fov_degrees=20)
    screen = project(vertices, camera)                      # (N, V, 3)
    fragments = rasterize(screen, faces, 256, 256)
    normals = interpolate(vertex_normals(vertices, faces), fragments, faces)
    albedo = interpolate(colors, fragments, faces)
    image = composite(lambert(albedo, normals, light, 0.3, 0.7), fragments.mask, background)
"""

from .camera import Camera, project, unproject
from .flow import DEPTH_TOLERANCE, backward_flow
from .raster import Fragments, interpolate, rasterize, triangulate, vertex_normals
from .shading import composite, downsample, lambert

__all__ = [
    "DEPTH_TOLERANCE",
    "Camera",
    "Fragments",
    "backward_flow",
    "composite",
    "downsample",
    "interpolate",
    "lambert",
    "project",
    "rasterize",
    "triangulate",
    "unproject",
    "vertex_normals",
]
