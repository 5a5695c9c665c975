"""Pure geometry functions on tensors: grids, heatmaps, local affine motion, relative
motion transfer and thin-plate splines. Coordinates are in [-1, 1], x first."""

from .affine import affine_grid_points, compose_jacobians, local_affine_motion
from .grid import coordinate_grid, normalized_to_pixel, pixel_to_normalized
from .heatmap import heatmap_to_keypoints, keypoints_to_gaussian, spatial_softmax, weighted_average
from .relative import (
    convex_hull_area,
    movement_scale,
    normalized_shape,
    relative_jacobians,
    relative_keypoints,
)
from .tps import ThinPlateSpline

__all__ = [
    "affine_grid_points",
    "compose_jacobians",
    "convex_hull_area",
    "coordinate_grid",
    "heatmap_to_keypoints",
    "keypoints_to_gaussian",
    "local_affine_motion",
    "movement_scale",
    "normalized_shape",
    "normalized_to_pixel",
    "pixel_to_normalized",
    "relative_jacobians",
    "relative_keypoints",
    "spatial_softmax",
    "ThinPlateSpline",
    "weighted_average",
]
