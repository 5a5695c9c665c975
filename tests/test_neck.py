"""The neck under the zero-shot animator's head: a collar under the jaw that moves with
the head, and a gradient of anchors down the neck to the crop's fixed edge."""

import numpy as np
import pytest

pytest.importorskip("mediapipe")

from portrait_crop import portrait_crop  # noqa: E402

from reanimate.animators.landmarks import DrivingFace, LandmarkAnimator, LandmarkAnimatorConfig  # noqa: E402
from reanimate.animators.landmarks.config import FACE_OVAL  # noqa: E402
from reanimate.animators.landmarks.source import neck_anchors, neck_axis, neck_follow  # noqa: E402
from reanimate.animators.landmarks.warp import grid_flow, target_nodes  # noqa: E402
from reanimate.faces.topology import CHIN  # noqa: E402

SIZE = 512
SIDE = float(SIZE - 1)


@pytest.fixture(scope="module")
def animator():
    return LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE))


@pytest.fixture(scope="module")
def crop():
    return portrait_crop(SIZE)


@pytest.fixture(scope="module")
def tight_crop():
    """The bundled portrait cropped with little margin: its chin sits low in the crop
    (about 420 of 511 px), with little neck below it, as in a head-and-shoulders
    portrait whose crop reaches the image's bottom."""
    return portrait_crop(SIZE, increase=0.3)


def raised(animator, image, landmarks, lift):
    """The source's target nodes ``(N, 2)``, target landmarks ``(478, 3)`` and the source
    itself, for a driver whose head rose ``lift`` pixels (the same face moved up)."""
    source = animator.encode_source(image, landmarks)
    driver = landmarks + np.array([0.0, -lift, 0.0])
    kp = animator.keypoints(np.stack([driver, landmarks]), (0, 0), SIDE)
    _, points = animator.transfer(source, DrivingFace(kp[0], driver), DrivingFace(kp[1], landmarks))
    return target_nodes(animator.config, source, points, None), points, source


def test_the_neck_follows_a_raised_head_with_a_gradient(crop, animator):
    _, landmarks = crop
    collar, width = animator.config.neck_collar, animator.config.neck_width
    start, down, across, half, length = neck_axis(landmarks, SIDE, collar, width)
    assert np.linalg.norm(down) == pytest.approx(1.0) and abs(down @ across) < 1e-12
    assert down[1] > 0.9  # an upright portrait: the face's downward axis points down the crop
    assert start[1] + length * down[1] == pytest.approx(SIDE)  # it leaves through the bottom
    centre, chin = landmarks[FACE_OVAL, :2].mean(0), landmarks[CHIN, :2]
    np.testing.assert_allclose(start, chin + (collar - 1) * (chin - centre))  # a little below the chin
    # The gradient: 1 at the start, linear along the axis, 0 at the crop's edge; the
    # given follow above the start and well beside the neck.
    along = start + np.outer([1e-9, 0.25, 0.5, 0.75, 1.0], down) * length
    follow = neck_follow(landmarks, along, np.full(5, 0.3), SIDE, collar, width)
    np.testing.assert_allclose(follow, [1, 0.75, 0.5, 0.25, 0], atol=1e-6)
    away = np.stack([start - 10 * down, start + 0.2 * length * down + 2 * half * across])
    assert np.array_equal(neck_follow(landmarks, away, np.array([0.3, 0.7]), SIDE, collar, width), [0.3, 0.7])
    # The anchors: the collar (the lower face oval scaled by `collar`) follows fully, then
    # rows of five, each following by the gradient at its height, the same across it.
    points, given = neck_anchors(landmarks, SIDE, 4, collar, width)
    band = given == 1.0
    assert band.sum() >= 10 and np.all((points[band] - centre) @ down > 0)
    rows = (points[~band] - start) @ down / length
    np.testing.assert_allclose(rows, np.repeat([0.2, 0.4, 0.6, 0.8], 5), atol=1e-9)
    np.testing.assert_allclose(given[~band], 1 - rows, atol=1e-9)
    # Through the animator: the driver's head raised 40 px. The head's rings go up by
    # all of it, the anchors down the neck by less the lower they sit, the border not.
    nodes, _, source = raised(animator, *crop, 40.0)
    n, r = len(landmarks), len(source.ring)
    lift = source.nodes[n : n + r, 1] - nodes[n : n + r, 1]
    below = (source.ring - start) @ down
    neck = (below > 1e-6) & (np.abs((source.ring - start) @ across) < 0.6 * half)
    assert neck.sum() >= 2 * animator.config.neck_rows
    order = np.argsort(below[neck])
    assert np.all(np.diff(lift[neck][order]) <= 1e-6)  # less the lower
    assert lift[neck][order][0] > 25 and lift[neck][order][-1] > 0
    assert np.allclose(lift[neck], 40 * source.ring_follow[neck], atol=2)
    assert np.array_equal(nodes[n + r :], source.nodes[n + r :])  # the border stays


def test_a_raised_head_stretches_the_whole_neck_evenly_not_its_bottom(tight_crop, animator):
    """The head rises 40 px over a short neck (the crop's fixed edge ~90 px below the
    chin). The jaw and the shadow under it (down to 0.15 of the face oval's centre-chin
    distance below the chin) move with the head unstretched, and the neck below takes
    the lift evenly down to the crop's edge: drawn ``(L + 40) / L`` times longer, ``L``
    its length. (With the gradient starting at the inner anchor ring, a quarter of that
    distance below the chin, only the neck's bottom strip took it, 1.12 times more
    stretched than that: the jaw's shadow line and the neck's contours smeared into long
    streaks.)"""
    image, landmarks = tight_crop
    lift = 40.0
    nodes, points, source = raised(animator, image, landmarks, lift)
    centre, chin = landmarks[FACE_OVAL, :2].mean(0), landmarks[CHIN, :2]
    radius = float(np.linalg.norm(chin - centre))
    assert SIDE - chin[1] < 0.6 * radius  # little neck in the crop
    depth = np.concatenate([points[:, 2], source.depth[len(points) :]])
    _, map_y, *_ = grid_flow(source, nodes, depth, SIZE)
    # Down the neck's middle, from the moved chin to the crop's edge: the source row each
    # output row shows, and the stretch over 8-row windows (single rows are quantised).
    rows = np.arange(int(np.ceil(points[CHIN, 1])), SIZE - 1)
    seen = map_y[rows, int(round(chin[0]))]
    stretch = 8.0 / (seen[8:] - seen[:-8])
    jaw = seen[8:] < chin[1] + 0.1 * radius
    assert jaw.sum() >= 5 and np.all(np.abs(stretch[jaw] - 1.0) < 0.02)
    length = SIDE - (chin[1] + 0.15 * radius)
    assert stretch.max() < 1.05 * (length + lift) / length


def test_the_neck_rises_as_one_across_its_width(tight_crop, animator):
    """Below the collar every point across the neck rises as much as its middle: the
    anchors at the neck's sides no longer follow half as much (which sheared the neck's
    contours and the hair beside it into slanted streaks)."""
    image, landmarks = tight_crop
    nodes, points, source = raised(animator, image, landmarks, 40.0)
    config = animator.config
    start, down, across, half, length = neck_axis(landmarks, SIDE, config.neck_collar, config.neck_width)
    depth = np.concatenate([points[:, 2], source.depth[len(points) :]])
    _, map_y, *_ = grid_flow(source, nodes, depth, SIZE)
    for t in (0.3, 0.5):
        # Five source points on a row across the neck, and the output row each is drawn at
        # (the output column's backward map runs down the source monotonically).
        row = start + t * length * down + np.outer([-0.9, -0.5, 0.0, 0.5, 0.9], half * across)
        drawn = [np.interp(y, map_y[:, int(round(x))], np.arange(SIZE)) for x, y in row]
        rise = row[:, 1] - np.array(drawn)
        assert rise[2] > 0.3 * 40.0
        np.testing.assert_allclose(rise, rise[2], rtol=0.1)
