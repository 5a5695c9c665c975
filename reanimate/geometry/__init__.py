"""Pure geometry functions on tensors: grids, heatmaps, local affine motion, relative
motion transfer, thin-plate splines, 3-D rotations and dense flow maps. Coordinates are in [-1, 1], x first."""

from .affine import affine_grid_points, compose_jacobians, local_affine_motion
from .flow import end_point_error, identity_flow, resize_flow, warp
from .grid import box_to_normalized, coordinate_grid, normalized_to_box, normalized_to_pixel, pixel_to_normalized
from .heatmap import heatmap_to_keypoints, keypoints_to_gaussian, spatial_softmax, weighted_average
from .relative import (
    convex_hull_area,
    from_canonical,
    movement_scale,
    normalized_shape,
    relative_jacobians,
    relative_keypoints,
    relative_pose_motion,
    relative_similarity,
    rigid_frame,
    to_canonical,
    tracked_frame,
)
from .rotation import euler_to_rotation, fit_rotation, fit_similarity, rotation_angle, rotation_to_euler
from .tps import ThinPlateSpline

__all__ = [
    "affine_grid_points",
    "box_to_normalized",
    "compose_jacobians",
    "convex_hull_area",
    "coordinate_grid",
    "end_point_error",
    "from_canonical",
    "heatmap_to_keypoints",
    "identity_flow",
    "keypoints_to_gaussian",
    "local_affine_motion",
    "movement_scale",
    "normalized_to_box",
    "normalized_shape",
    "normalized_to_pixel",
    "pixel_to_normalized",
    "relative_jacobians",
    "relative_keypoints",
    "relative_pose_motion",
    "relative_similarity",
    "rigid_frame",
    "resize_flow",
    "spatial_softmax",
    "ThinPlateSpline",
    "to_canonical",
    "tracked_frame",
    "warp",
    "weighted_average",
    "euler_to_rotation",
    "fit_rotation",
    "fit_similarity",
    "rotation_angle",
    "rotation_to_euler",
]
