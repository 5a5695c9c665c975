"""Faces: MediaPipe landmarks, head pose, square crops that follow a face, and
best-frame matching.

MediaPipe is installed apart from the package's dependencies (see the README): importing
this package does not need it; :class:`FaceMesh` raises a one-line
:class:`~reanimate.errors.ReanimateError` saying how to install it. Boxes are ``(x0, y0, x1, y1)`` pixels, x right, y down.
"""

from reanimate.faces.best_frame import best_frame_index, normalized_landmarks
from reanimate.faces.crop import (
    PasteCanvas,
    crop_face,
    feather_mask,
    paste_back,
    paste_back_into,
    square_around,
    square_box,
    track_crop_boxes,
)
from reanimate.faces.mesh import Face, FaceMesh, detect_faces
from reanimate.faces.pose import HeadPose, head_pose, head_rotation
from reanimate.faces.tracking import (
    FaceTrack,
    FaceTracker,
    box_iou,
    gaussian_smooth,
    link_boxes,
    smooth_boxes,
    track_faces,
)

__all__ = [
    "Face",
    "FaceMesh",
    "FaceTrack",
    "FaceTracker",
    "HeadPose",
    "PasteCanvas",
    "best_frame_index",
    "box_iou",
    "crop_face",
    "detect_faces",
    "feather_mask",
    "gaussian_smooth",
    "head_pose",
    "head_rotation",
    "link_boxes",
    "normalized_landmarks",
    "paste_back",
    "paste_back_into",
    "smooth_boxes",
    "square_around",
    "square_box",
    "track_crop_boxes",
    "track_faces",
]
