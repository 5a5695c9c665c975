"""Synthetic benchmark with exact ground-truth motion.

Videos of textured 2-D puppets (a torso with a head, arms and legs made of rigid parts in a
kinematic tree) moving smoothly over a textured background, some with a moving camera.
Every frame is rendered by backward mapping through the layers' affine transforms, so the
true motion is known at every pixel: for frame ``t`` the *ground-truth map* gives, for
each pixel, where the surface seen there was in frame 0 (the source frame of the
reconstruction protocol). Training on this data can then be checked against true motion
rather than only against reconstruction error.

Scene model. A video is a stack of layers, back to front: the background plane (infinite,
periodic texture), then the puppet parts in a fixed depth order. Each layer ``L`` has a
texture and a shape (a rounded box; a capsule for limbs, a disc for heads) in its own
local coordinates, and per frame an affine transform ``A_t`` (3x3, local -> image pixel
coordinates). A pixel centre ``p`` of frame ``t`` shows the front-most layer whose shape
contains ``A_t^-1 p``; its ground-truth map is ``A_0 A_t^-1 p``, and it is *visible* in
frame 0 when that layer is also the front-most one at ``A_0 A_t^-1 p`` in frame 0 and that
point lies within the frame (between the centres of the border pixels).

Images are anti-aliased: layer edges have a one-pixel-wide smooth coverage ramp (from the
signed distance to the shape) and textures are band-limited before bilinear sampling.
The ground truth is defined by the hard layer membership at pixel centres, so on the one
ring of edge pixels where colours are mixed, warping frame 0 reproduces the frame only
approximately.

On disk (the official FOMM frame-folder layout, so training reads it unchanged)::

    OUT/synthetic.json                       config, format description, video list
    OUT/train/video_00000/00000.png ...      frames, RGB PNG
    OUT/train/video_00000.flow.npz           ground truth: flow, visible
    OUT/test/...

``flow`` is ``(T, H, W, 2)`` (float16 by default), normalised coordinates x first in
[-1, 1] with -1 and 1 the centres of the corner pixels (``grid_sample(...,
align_corners=True)``), exactly FOMM's dense ``deformation`` from a driving frame ``t``
into the source frame 0; ``visible`` is ``(T, H, W)`` bool. Frame 0's map is the identity.
"""

from reanimate.data.synthetic.config import PRESETS, SyntheticConfig
from reanimate.data.synthetic.dataset import (
    FLOW_SUFFIX,
    METADATA_NAME,
    flow_path,
    load_flow,
    make_synthetic,
)
from reanimate.data.synthetic.render import render_video

__all__ = [
    "PRESETS",
    "SyntheticConfig",
    "flow_path",
    "load_flow",
    "make_synthetic",
    "render_video",
    "FLOW_SUFFIX",
    "METADATA_NAME",
]
