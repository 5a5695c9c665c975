"""Zero-shot face animator: the first-order motion model with face-mesh landmarks as
keypoints instead of learned ones. It needs no trained weights.

How a frame is made (FOMM Sec. 3 with hand-made parts in place of the networks):

1. **Keypoints.** The 478 MediaPipe landmarks of the source crop and of each driving
   frame, in [-1, 1], each with a local Jacobian fitted by least squares from its
   landmark neighbourhood (:func:`reanimate.geometry.fit_local_jacobians`).
2. **Relative motion**, split into head pose and expression
   (:class:`reanimate.motion.HeadMotion`, :func:`reanimate.motion.relative_head_motion`:
   the 3-D form of FOMM supp. Eq. 13-14 with adapt-scale): the driver's head rotation,
   scale and translation since its initial frame turn the source's own 3-D landmarks,
   and the driver's expression (what that similarity leaves, in the head's frame and
   size) is added in the source's head frame. With ``head_pose=False`` the plain 2-D rule
   (:func:`reanimate.motion.relative_motion`: the driver's displacements, scaled by the
   face-size ratio) is used instead; it copies the driver's foreshortening and so
   under-turns a source that is not seen from the front.
3. **Retargeting where displacements are not enough** (as zero-shot portrait animation
   does, Averbuch-Elor et al. 2017): eyelids follow the driver's eye *opening ratio*
   so that blinks close the source's eyes fully whatever their size; irises follow the
   driver's gaze in eye-corner coordinates. The eyeball is its own layer: the mesh
   carries the eye with its lids, and inside the opening the iris disc is drawn
   shifted by the gaze over the sclera (the source's, with the iris painted out), so
   a look aside slides the iris instead of stretching it into the white. A closing
   lid is drawn from a second layer (:mod:`reanimate.faces.lids`): the opening and the
   lid band above it painted over with skin, plus a lash line along the closed margin,
   so that a closed eye reads as closed instead of a stretched band of lashes.
4. **Anchors.** A ring that follows the face's outline at a fixed (head-rotated and
   scaled) offset (hair, ears, neck move with it), a second ring that follows half-way,
   and fixed points on the crop border (so the flow is the identity there and
   paste-back has no seam). A head that the driver would carry out of the crop
   (walking towards the camera, leaving its frame) is held inside it by
   :func:`keep_head_inside` instead of being cut off.
5. **Dense backward flow.** A triangulation of the source nodes is moved to the
   target nodes; each triangle's exact first-order map
   (:func:`reanimate.geometry.triangle_backward_maps`) gives the flow inside it.
   Triangles that would flip (the far cheek in a large head turn) are relaxed towards
   the first-order prediction of their neighbours' Jacobians, and triangles are drawn
   far-to-near by landmark depth, skin facing away from the camera culled, so that
   what remains folded is hidden like in a renderer instead of tearing.
6. **Mouth interior.** When the driver opens a mouth that the source keeps closed, the
   revealed interior is filled from the driver's mouth (warped into place and
   colour-matched to the source's lips) instead of stretching lip texture.
7. **Faces that are not human** (:mod:`reanimate.faces.kind`, decided once per source
   or set by ``config.face_kind``): no mouth interior from the driver (a shadow in the
   source's lip colour), no lash lines and no eyeball layer.

All work happens on a square face crop of ``config.size`` pixels; the pipeline crops
and pastes back. The same drawing (steps 3-6) renders head edits: the source's landmarks
placed at a :class:`~reanimate.motion.HeadMotion` of its own, turned, scaled, moved or
with another face's expression (:meth:`LandmarkAnimator.pose`, ``reanimate edit``).

The parts: :mod:`.config` (settings, landmark groups), :mod:`.source` (per-source state,
coordinates), :mod:`.transfer` (steps 2-4), :mod:`.eyes` (eyeball and lid layers),
:mod:`.mouth` (step 6), :mod:`.warp` (step 5) and :mod:`.engine`, the
:class:`LandmarkAnimator` that composes them.
"""

from .config import EYES, FACE_OVAL, LIPS_INNER, LIPS_OUTER, RIGID, LandmarkAnimatorConfig
from .engine import LandmarkAnimator
from .eyes import Eyeball, eye_opening_ratio, eye_openness
from .mouth import mouth_openness
from .source import DrivingFace, LandmarkSource, frontal_view, oval_ring, to_normalized, to_pixels
from .transfer import keep_head_inside

__all__ = [
    "EYES",
    "FACE_OVAL",
    "LIPS_INNER",
    "LIPS_OUTER",
    "RIGID",
    "DrivingFace",
    "Eyeball",
    "LandmarkAnimator",
    "LandmarkAnimatorConfig",
    "LandmarkSource",
    "eye_opening_ratio",
    "eye_openness",
    "frontal_view",
    "keep_head_inside",
    "mouth_openness",
    "oval_ring",
    "to_normalized",
    "to_pixels",
]
