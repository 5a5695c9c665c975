"""The borrowed mouth interior (reanimate.animators.landmarks.mouth) on constructed mouths:
elliptic inner and outer lip contours, no face tracker."""

from types import SimpleNamespace

import numpy as np

from reanimate.animators.landmarks import LandmarkAnimatorConfig
from reanimate.animators.landmarks.config import LIPS_INNER, LIPS_OUTER
from reanimate.animators.landmarks.mouth import fill_mouth, interior_maps
from reanimate.faces import topology
from reanimate.geometry.mesh import fit_affine
from reanimate.io.image import LUMA_WEIGHTS

SIZE = 160


def lips(centre, width: float, inner_height: float, outer_height: float, bend: float = 0.0) -> np.ndarray:
    """``(478, 2)`` landmarks: the inner and outer lip contours as ellipses about
    ``centre`` (a corner, the lower lip, the other corner, the upper lip, as the
    contours run), their corners raised by ``bend`` times the squared offset from the
    middle (a smile); the other landmarks at the centre."""
    points = np.tile(np.asarray(centre, np.float64), (478, 1))
    angle = np.pi * np.arange(20) / 10
    for loop, height, half in ((LIPS_INNER, inner_height, 0.5 * width), (LIPS_OUTER, outer_height, 0.6 * width)):
        x = -half * np.cos(angle)
        points[list(loop)] = np.stack([x, height * np.sin(angle) - bend * x**2], 1) + centre
    return points


def mouth_frame(driver: np.ndarray, lip_mean, lip_std, seed: int = 0) -> np.ndarray:
    """A driver's frame: textured lips of the given mean and std colour between its
    contours, white teeth (235, a little texture) inside, skin around."""
    import cv2

    rng = np.random.default_rng(seed)
    frame = np.full((SIZE, SIZE, 3), (190.0, 150.0, 130.0))
    outer = np.zeros((SIZE, SIZE), np.uint8)
    inner = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(outer, [np.round(driver[LIPS_OUTER]).astype(np.int32)], 1)
    cv2.fillPoly(inner, [np.round(driver[LIPS_INNER]).astype(np.int32)], 1)
    on_lips = (outer > 0) & (inner == 0)
    frame[on_lips] = rng.normal(lip_mean, lip_std, (int(on_lips.sum()), 3))
    frame[inner > 0] = 235.0 + rng.normal(0.0, 4.0, (int((inner > 0).sum()), 3))
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_borrowed_teeth_keep_their_hue_and_end_in_shadow_at_the_corners():
    """The painted portrait s10 driven by d10 (issue 21): its lips more contrasted in green
    and blue than the driver's, whose white teeth a gain per colour channel turned cool
    (cyan) and which ended in bright points in the narrowing corners. Now they stay as
    warm as the source's teeth colour (red >= green >= blue) and darken towards the inner
    corners; the lips around stay the source's."""
    driver = lips((80.0, 80.0), 100.0, 10.0, 22.0)
    frame = mouth_frame(driver, (195.0, 107.0, 98.0), (22.0, 17.0, 15.0))
    target = lips((80.0, 80.0), 70.0, 16.0, 26.0)
    source = SimpleNamespace(
        mouth_area=0.0,
        lips=(np.array([179.0, 108.0, 95.0], np.float32), np.array([32.0, 35.0, 37.0], np.float32)),
        teeth=np.array([213.0, 200.0, 185.0], np.float32),
    )
    out = np.full((SIZE, SIZE, 3), 120, np.uint8)
    fill_mouth(LandmarkAnimatorConfig(), source, out, target, frame, driver)
    a, b = target[list(topology.MOUTH_INNER_CORNERS)]
    xs = np.arange(SIZE)
    along = (xs - a[0]) / (b[0] - a[0])
    middle = out[78:83, (np.abs(along - 0.5) < 0.15)].reshape(-1, 3).astype(float)
    teeth = middle.mean(0)
    assert teeth @ LUMA_WEIGHTS > 150 and teeth[0] >= teeth[1] >= teeth[2], teeth
    for end in (along > 0.04) & (along < 0.12), (along > 0.88) & (along < 0.96):
        corner = out[79:82, end].reshape(-1, 3).astype(float).mean(0)
        assert corner @ LUMA_WEIGHTS < 0.6 * (teeth @ LUMA_WEIGHTS), (corner, teeth)
    # nothing outside the inner lips is drawn over
    assert (out[:, xs < a[0] - 1] == 120).all() and (out[:60] == 120).all()


def test_the_interior_maps_the_driver_inner_lips_onto_the_target_ones():
    """Piecewise over the strip between the inner lips: every inner-lip landmark of the
    target (a wide-open smile) reads the driver's (a thin, straight mouth elsewhere in
    its frame), which one affine map of the whole contour does not (its corners read the
    driver's lips and skin, where a band of teeth ended in points)."""
    target = np.round(lips((80.0, 80.0), 70.0, 18.0, 26.0, bend=0.012))
    driver = lips((300.0, 210.0), 120.0, 6.0, 20.0)
    map_x, map_y = interior_maps(target, driver, (SIZE, SIZE))
    x, y = target[LIPS_INNER].astype(int).T
    np.testing.assert_allclose(np.stack([map_x[y, x], map_y[y, x]], 1), driver[LIPS_INNER], atol=1e-3)
    affine = fit_affine(target[LIPS_INNER], driver[LIPS_INNER])
    one_map = target[LIPS_INNER] @ affine[:, :2].T + affine[:, 2]
    assert np.abs(one_map - driver[LIPS_INNER]).max() > 3.0  # the case is real
