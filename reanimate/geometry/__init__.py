"""Pure geometry functions on tensors: grids, heatmaps, local affine motion, relative
motion transfer, thin-plate splines and 3-D rotations. Coordinates are in [-1, 1], x first."""

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
from .rotation import euler_to_rotation, fit_rotation, fit_similarity, rotation_angle, rotation_to_euler
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
    "euler_to_rotation",
    "fit_rotation",
    "fit_similarity",
    "rotation_angle",
    "rotation_to_euler",
]
