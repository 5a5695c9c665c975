"""Settings and constants of the zero-shot landmark animator: its config (every tunable
number) and the landmark groups its parts share (eyes, lips, face oval, rigid points)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...faces import topology as mesh


@dataclass
class LandmarkAnimatorConfig:
    """Settings of the zero-shot animator (no weights; every constant is here)."""

    size: int = 512  # working resolution of the square face crop, pixels
    flow_scale: float = 0.5  # the dense flow is rasterised at this fraction of `size`, then upsampled
    neighbours: int = 8  # landmarks per neighbourhood for each fitted Jacobian
    adapt_scale: bool = True  # 2-D path: scale driver displacements by the face-size ratio (the pose path always does)
    head_pose: bool = True  # transfer the 3-D head pose and the expression apart (else 2-D displacements)
    inner_ring: float = 1.25  # anchor ring: face oval scaled about its centre, follows the head
    outer_ring: float = 1.8  # second ring, follows the head by `outer_follow`
    outer_follow: float = 0.5
    border_points: int = 9  # fixed anchors per crop side (identity flow at the border)
    # The neck follows the head with a gradient (source.neck_follow): fully at the chin,
    # not at all at the crop's bottom edge (the paste-back seam), over neck_width times
    # the jaw's width; neck_rows rows of anchors carry it (0: off, the neck stays).
    neck_rows: int = 4
    neck_width: float = 1.0
    # The collar (source.neck_anchors): anchors on the lower face oval scaled by
    # neck_collar about its centre (under the jaw, past the shadow there) follow the head
    # fully and the gradient starts below them, so a lifted chin keeps the jaw's edge and
    # stretches the whole neck evenly (from the inner ring, 1.25, it stretched only the
    # neck's bottom strip, about 2.4 times on the first frame of d10 driven by d11).
    neck_collar: float = 1.15
    # The moved head's inner ring stays this far (fraction of the crop side) inside the
    # crop: a driver that walks towards the camera or out of its frame would otherwise
    # push the head against the fixed border, where it is cut off. None: no limit. (0.04
    # held back ordinary moves on the real clips: same-identity L1 on d18 0.0152 -> 0.0193.)
    crop_margin: float | None = 0.0
    relax_iterations: int = 8  # passes of flip relaxation
    # After it, skin triangles are untangled (warp.untangle_skin): none that faces the
    # camera at the target's pose (more than min_facing of its frontal size) may flip or
    # keep less than min_area_ratio of its size there (0: off); at most this many passes.
    min_area_ratio: float = 0.1
    min_facing: float = 0.3
    untangle_iterations: int = 60
    # ... and the skin between each upper lid and the top of its brow keeps lid_keep of
    # its size (warp.lid_skin): a driver's brow lowered further than the source's lid has
    # room for stops there instead of folding the lid (a notch between brow and eye).
    lid_keep: float = 0.5
    # Revealed skin (warp.mirror_weights): a skin triangle shown this many times larger
    # than in the source (fully at twice that) whose mirror image the source shows better
    # by more than mirror_margin of visibility reads its texture from that mirror image,
    # blended over mirror_feather pixels.
    mirror_fill: bool = True
    mirror_stretch: float = 3.0
    mirror_margin: float = 0.15
    mirror_feather: float = 6.0
    # ... and the surroundings stretched silhouette_stretch times along some direction
    # (fully at twice that) from beyond the source's silhouette: their landmarks scaled by
    # silhouette_push about the oval's centre (< inner_ring).
    silhouette_stretch: float = 2.0
    silhouette_push: float = 1.15
    eyes: bool = True  # eyelids follow the driver's opening ratio (full blinks)
    gaze: bool = True  # irises follow the driver's gaze
    max_gaze: float = 0.2  # largest iris shift, in eye widths
    iris_scale: float = 1.1  # iris layer: this times the iris landmarks' radius, plus the dark pixels next to it
    max_eye_ratio: float = 1.3  # eyes open at most this much wider than in the source
    lid_lift: float = 0.6  # a closed upper lid is sampled this many lid gaps above its margin
    # A driver's closed eye still measures about this fraction of its open lid gap (the
    # lashes' thickness): openings are rescaled so that it closes the source's eye fully.
    closed_ratio: float = 0.1
    # Closed lids (faces.lids): each eye's opening and this many lid gaps of lid above it
    # are painted over with skin, drawn in as the eye closes (in proportion), with a lash
    # line `lash_width` eye widths thick. The painted area is grown by `lid_grow` eye
    # widths, as landmark contours can sit off the eye a photo shows.
    lid_fill: bool = True
    lid_band: float = 1.2
    lid_brow: float = 0.5  # ... but at most this share of the way to the brow (brows stay)
    lid_grow: float = 0.15
    lid_feather: float = 0.05  # blur of the painted area's edge, eye widths
    lash_width: float = 0.045
    sliver_area: float = 0.05  # skin triangles smaller than this times the median are not checked for flips
    mouth_fill: bool = True  # fill a newly opened mouth from the driver's mouth
    mouth_feather: float = 1.5  # blur of the mouth mask, pixels
    # The filled interior (teeth included) darkens into shadow towards the mouth's inner
    # corners, over this fraction of the corner-to-corner distance from each (mouth.corner_shade).
    mouth_corner_reach: float = 0.3
    # Human or not (faces.kind): on other faces (an animal's) no borrowed mouth interior
    # and no lash lines are drawn; the mouth stretches the source's own and closing lids
    # take the skin or fur around the eye. "auto" asks MediaPipe's face detector once per
    # source; "human" or "other" decides without it.
    face_kind: str = "auto"


EYES = (
    dict(
        corners=mesh.RIGHT_EYE_CORNERS,
        pairs=np.array(mesh.RIGHT_EYE_LID_PAIRS),
        loop=mesh.RIGHT_EYE,
        brow=np.array(mesh.RIGHT_EYEBROW_LOWER),
        brow_top=np.array(mesh.RIGHT_EYEBROW[5:]),  # the brow's upper edge, outer to inner
        lower=np.array(mesh.RIGHT_EYE_LOWER_LID),
        iris=np.array((mesh.RIGHT_IRIS_CENTER, *mesh.RIGHT_IRIS)),
    ),
    dict(
        corners=mesh.LEFT_EYE_CORNERS,
        pairs=np.array(mesh.LEFT_EYE_LID_PAIRS),
        loop=mesh.LEFT_EYE,
        brow=np.array(mesh.LEFT_EYEBROW_LOWER),
        brow_top=np.array(mesh.LEFT_EYEBROW[5:]),  # the brow's upper edge, outer to inner
        lower=np.array(mesh.LEFT_EYE_LOWER_LID),
        iris=np.array((mesh.LEFT_IRIS_CENTER, *mesh.LEFT_IRIS)),
    ),
)
SKIN, HOLE, SURROUNDING = 0, 1, 2  # triangle kinds, in reverse drawing order
LIPS_INNER = np.array(mesh.LIPS_INNER)
LIPS_OUTER = np.array(mesh.LIPS_OUTER)
FACE_OVAL = np.array(mesh.FACE_OVAL)
# Points that move rigidly with the skull (oval, brows, nose bridge), for the head's similarity.
RIGID = np.array(
    sorted(
        set(
            mesh.FACE_OVAL[:10]
            + mesh.FACE_OVAL[-9:]
            + mesh.MIDLINE[:10]
            + mesh.RIGHT_EYE_CORNERS
            + mesh.LEFT_EYE_CORNERS
        )
    )
)
