"""Large head turns in the landmark animator: a three-quarter source turned towards the
camera ends in its own silhouette, with no skin, strips or spikes in the background."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("mediapipe")

from portrait_crop import portrait_crop  # noqa: E402

from reanimate.animators.landmarks import DrivingFace, LandmarkAnimator, LandmarkAnimatorConfig  # noqa: E402
from reanimate.animators.landmarks.config import SURROUNDING  # noqa: E402
from reanimate.animators.landmarks.warp import ANCHOR_CLEARANCE, anchors_off_face, rasterize  # noqa: E402
from reanimate.faces import topology  # noqa: E402
from reanimate.faces.edit import turn_head  # noqa: E402
from reanimate.faces.lids import distance_to_polyline  # noqa: E402
from reanimate.geometry.mesh import signed_areas  # noqa: E402

SIZE = 512
BACKGROUND = np.array([90, 90, 90], np.uint8)
SKIN = np.array([230, 180, 150], np.uint8)


@pytest.fixture(scope="module")
def landmarks():
    return portrait_crop(SIZE)[1]


@pytest.fixture(scope="module")
def animator():
    return LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, face_kind="human"))


def painted(landmarks: np.ndarray) -> np.ndarray:
    """A flat painted face for ``(478, 3)`` landmarks: skin over the face mesh, grown by
    4 pixels (a painting's or photo's face ends a little beyond its outermost
    landmarks), on a grey background: ``(SIZE, SIZE, 3)`` uint8."""
    face = np.zeros((SIZE, SIZE), np.uint8)
    for triangle in topology.mesh_triangles():
        cv2.fillConvexPoly(face, np.round(landmarks[list(triangle), :2]).astype(np.int32), 1)
    face = cv2.dilate(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    return np.where(face[..., None] > 0, SKIN, BACKGROUND)


def turned(animator, source, driving, initial):
    """The animator's output and its ``(478, 3)`` target landmarks for one driving frame."""
    kp = animator.keypoints(np.stack([driving, initial]), (0, 0), float(SIZE - 1))
    faces = DrivingFace(kp[0], driving), DrivingFace(kp[1], initial)
    return animator.animate(source, *faces), animator.transfer(source, *faces)[1]


def hull_mask(points: np.ndarray, grow: int) -> np.ndarray:
    """``(SIZE, SIZE)`` bool: the convex hull of ``(N, 2+)`` points grown by ``grow`` pixels."""
    hull = cv2.convexHull(points[:, :2].astype(np.float32))[:, 0]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)) > 0


@pytest.mark.parametrize("yaw", [40, -40])
def test_turn_towards_the_camera_leaves_no_skin_in_the_background(landmarks, animator, yaw):
    """A three-quarter painted face (turned 40 degrees) driven 15 degrees back towards the
    camera: beyond its landmarks' hull (grown by 6 pixels, the painting's edge) the
    background stays background. Before, ring anchors that land on the far cheek (their
    triangles carry its skin) and relaxation pushing the far silhouette out put 327 and
    371 pixels of skin there, in strips and spikes; a still driver still returns the
    source."""
    three_quarter = turn_head(landmarks, yaw=yaw)
    image = painted(three_quarter)
    source = animator.encode_source(image, three_quarter)
    still, _ = turned(animator, source, three_quarter, three_quarter)
    assert np.abs(still.astype(int) - image).max() <= 1
    out, points = turned(animator, source, turn_head(landmarks, yaw=yaw - np.sign(yaw) * 15), three_quarter)
    stray = (np.abs(out.astype(int) - BACKGROUND).max(-1) > 40) & ~hull_mask(points, 6)
    assert stray.sum() < 40, f"{stray.sum()} pixels of skin beyond the silhouette"


def test_surroundings_use_no_anchor_on_the_face(landmarks, animator):
    """The surroundings are made of anchors clear of the landmarks' hull: on a
    three-quarter face the far side's ring (the oval scaled) lands on the cheek and is
    left out; on a frontal face every anchor stays."""
    frontal = animator.encode_source(painted(landmarks), landmarks)
    n = len(landmarks)
    assert np.array_equal(anchors_off_face(frontal.nodes, n), np.arange(n, len(frontal.nodes)))
    three_quarter = turn_head(landmarks, yaw=40)
    source = animator.encode_source(painted(three_quarter), three_quarter)
    used = np.unique(source.triangles[source.kinds == SURROUNDING])
    anchors = used[used >= n]
    oval = three_quarter[topology.FACE_OVAL, :2]
    radius = np.linalg.norm(oval - oval.mean(0), axis=1).mean()
    hull = cv2.convexHull(three_quarter[:, :2].astype(np.float32))[:, 0].astype(np.float64)
    inside = hull_mask(three_quarter, 0)[tuple(np.round(source.nodes[anchors, ::-1]).astype(int).T)]
    assert not inside.any()
    clearance = distance_to_polyline(source.nodes[anchors], np.concatenate([hull, hull[:1]]))
    assert clearance.min() >= ANCHOR_CLEARANCE * radius
    assert len(anchors) < len(source.nodes) - n  # some ring anchors were on the face


def test_a_hole_that_culled_skin_leaves_in_the_face_takes_its_neighbour():
    """A square of skin (a centre triangle and a ring of seven around it) inside a ring of
    surroundings. The centre triangle flipped on its own (a nose wing turned edge-on,
    nothing in front of it) is culled, and its hole takes the nearest drawn skin instead
    of index 0 (which read the source's pixels at the same place: a light blot on the
    nose). A culled triangle at the square's edge leaves a gap the surroundings reach:
    that stays index 0, as before."""
    square = [[4, 4], [28, 4], [28, 28], [4, 28]]
    inner = [[10, 10], [22, 12], [14, 22]]
    border = [[-2, -2], [34, -2], [34, 34], [-2, 34]]
    nodes = np.array(square + inner + border, np.float64)
    skin = [[4, 5, 6], [0, 1, 4], [1, 5, 4], [1, 2, 5], [2, 6, 5], [2, 3, 6], [3, 4, 6], [3, 0, 4]]
    around = [[7, 8, 1], [7, 1, 0], [8, 9, 2], [8, 2, 1], [9, 10, 3], [9, 3, 2], [10, 7, 0], [10, 0, 3]]
    triangles = np.array(skin + around)
    front = np.sign(signed_areas(nodes, triangles[:8]))
    front[[0, 3]] *= -1  # the centre triangle and the one at the right edge face away
    source = SimpleNamespace(
        image=np.zeros((32, 32, 3), np.uint8),
        landmarks=nodes[:7],
        triangles=triangles,
        kinds=np.array([0] * 8 + [SURROUNDING] * 8),
        mesh_count=8,
        front=front,
    )
    index = rasterize(source, nodes, np.zeros(len(nodes)), 32)
    centre = index[13:17, 14:18]
    assert (centre > 0).all() and not np.isin(centre, [1, 4]).any()  # filled from the skin around
    assert (index[10:18, 26:28] == 0).all()  # the gap at the edge
    assert not np.isin(index, [1, 4]).any()  # the culled triangles are never drawn
