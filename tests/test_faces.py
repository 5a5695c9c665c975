"""Face tools: crops and paste-back, tracks and smoothing, head pose, best frame, and
MediaPipe landmarks on a public-domain portrait (skipped without mediapipe)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from reanimate.errors import ReanimateError
from reanimate.faces import (
    Face,
    FaceTrack,
    FaceTracker,
    HeadPose,
    best_frame_index,
    box_iou,
    crop_face,
    feather_mask,
    gaussian_smooth,
    head_pose,
    head_rotation,
    link_boxes,
    normalized_landmarks,
    paste_back,
    paste_back_into,
    smooth_boxes,
    square_around,
    square_box,
    topology,
    track_crop_boxes,
    track_faces,
)
from reanimate.faces.pose import NEUTRAL_PITCH
from reanimate.geometry import euler_to_rotation
from reanimate.io import read_image

cv2 = pytest.importorskip("cv2", reason="the face tools need opencv-python-headless")


@pytest.fixture(scope="session")
def portrait_path() -> str:
    """A frontal public-domain portrait: the project's example if present, else the copy
    of Grace Hopper's US Navy portrait that matplotlib ships."""
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "portrait.png")
    if os.path.exists(example):
        return example
    matplotlib = pytest.importorskip("matplotlib")
    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")


@pytest.fixture(scope="session")
def portrait(portrait_path) -> np.ndarray:
    return read_image(portrait_path)


@pytest.fixture(scope="session")
def mesh():
    pytest.importorskip("mediapipe", reason="face landmarks need mediapipe (pip install mediapipe)")
    from reanimate.faces import FaceMesh

    with FaceMesh(max_faces=2) as detector:
        yield detector


@pytest.fixture(scope="session")
def portrait_face(mesh, portrait) -> Face:
    faces = mesh.detect(portrait)
    assert len(faces) == 1
    return faces[0]


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def smooth_image(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xx / width * 255, yy / height * 255, 128 + 60 * np.sin(xx / 9) * np.cos(yy / 13)], axis=-1).astype(
        np.uint8
    )


# -- square boxes and crops -----------------------------------------------------------


def test_square_box_is_enlarged_and_centred():
    box = square_box((100, 120, 180, 220), image_size=(480, 640), increase=0.1)  # 80 x 100 face
    assert box.dtype == np.int64 and box.tolist() == [80, 110, 200, 230]  # side 1.2 * 100 = 120


@pytest.mark.parametrize(
    "face",
    [
        (0, 0, 50, 60),
        (590, 0, 640, 40),
        (0, 430, 30, 480),
        (600, 440, 640, 480),
        (-20, 200, 40, 260),
        (300, -10, 360, 50),
        (630, 470, 650, 490),
    ],
)
def test_square_box_stays_inside_frame_near_borders_and_corners(face):
    height, width = 480, 640
    x0, y0, x1, y1 = square_box(face, (height, width), increase=0.2)
    assert x1 - x0 == y1 - y0 > 0
    assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height
    visible = (max(face[0], 0), max(face[1], 0), min(face[2], width), min(face[3], height))
    assert x0 <= visible[0] and y0 <= visible[1] and visible[2] <= x1 and visible[3] <= y1


def test_square_box_shrinks_when_it_cannot_fit():
    box = square_box((10, 0, 190, 100), (100, 200), increase=0.5)  # wants 360 px in a 100-high frame
    assert box.tolist() == [50, 0, 150, 100]
    assert square_around((5, 5), 1000, (30, 20)).tolist() == [0, 0, 20, 20]
    with pytest.raises(ValueError):
        square_box((0, 0, 10, 10), (100, 100), increase=-0.1)


def test_crop_face_resizes_the_box_and_pads_outside():
    image = random_image(100, 120)
    assert np.array_equal(crop_face(image, (10, 20, 50, 60), 40), image[20:60, 10:50])
    small = crop_face(image, (10, 20, 50, 60), 20)
    assert small.shape == (20, 20, 3) and small.dtype == np.uint8
    area = image[20:60, 10:50].astype(np.float64).reshape(20, 2, 20, 2, 3).mean(axis=(1, 3))
    assert np.abs(small - area).max() <= 1  # area averaging when shrinking
    assert crop_face(image, (0, 0, 10, 10), (30, 40)).shape == (30, 40, 3)
    corner = crop_face(image, (-10, -10, 10, 10), 20)
    assert np.array_equal(corner[10:, 10:], image[:10, :10]) and not corner[:10].any() and not corner[:, :10].any()


def test_feather_mask_falls_from_one_inside_to_zero_at_the_border():
    mask = feather_mask(100, feather=0.1)
    assert mask.shape == (100, 100) and mask.dtype == np.float32
    assert np.all(mask[10:90, 10:90] == 1)
    assert mask[0, 50] < 0.01 and mask[0, 0] < 1e-4
    assert np.all(np.diff(mask[50, :50]) >= 0)  # rises monotonically towards the centre
    assert np.array_equal(mask, mask[::-1]) and np.array_equal(mask, mask[:, ::-1])
    assert np.all(feather_mask((8, 12), 0) == 1) and feather_mask((8, 12)).shape == (8, 12)


def test_paste_back_touches_only_the_box_and_restores_an_unchanged_crop():
    image = smooth_image(300, 400)
    box = (120, 60, 280, 220)
    crop = crop_face(image, box, 64)
    out = paste_back(image, crop, box)
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    outside = np.ones(image.shape[:2], dtype=bool)
    outside[60:220, 120:280] = False
    assert np.array_equal(out[outside], image[outside])
    assert np.abs(out.astype(int) - image).mean() < 1.0  # down and up again: nearly the original
    assert np.array_equal(paste_back(image, crop_face(image, box, 160), box), image)  # same size: exact

    buffer = image.copy()
    assert paste_back_into(buffer, np.zeros((32, 32, 3), np.uint8), box, np.ones((5, 5))) is buffer
    assert not buffer[60:220, 120:280].any() and np.array_equal(buffer[outside], image[outside])


def test_paste_back_with_a_box_reaching_outside_the_image():
    image = random_image(64, 64)
    out = paste_back(image, np.full((10, 10, 3), 255, np.uint8), (40, 40, 80, 80), mask=np.ones((4, 4)))
    assert np.all(out[40:, 40:] == 255)
    assert np.array_equal(out[:40], image[:40]) and np.array_equal(out[:, :40], image[:, :40])
    assert np.array_equal(paste_back(image, out, (70, 70, 90, 90)), image)  # wholly outside: unchanged


def test_paste_back_works_on_the_box_region_only_for_large_frames():
    image = np.zeros((2048, 2048, 3), dtype=np.uint8)
    out = image.copy()
    box = square_box((900, 900, 1200, 1250), image.shape[:2])
    paste_back_into(out, np.full((256, 256, 3), 200, np.uint8), box)
    x0, y0, x1, y1 = box
    assert out[y0:y1, x0:x1].any() and not out[:y0].any() and not out[y1:].any() and not out[:, x1:].any()


# -- tracks and smoothing ---------------------------------------------------------


def test_box_iou_hand_computed():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    assert iou.shape == (1, 3) and iou[0].tolist() == pytest.approx([50 / 150, 0, 1])


def test_two_faces_are_linked_into_tracks_and_one_ends_when_lost():
    a = np.array([10.0, 10, 50, 60])
    b = np.array([200.0, 30, 250, 90])
    frames = []
    for t in range(12):
        boxes = [a + [2 * t, 0, 2 * t, 0]]  # face A drifts right
        if t < 7:
            boxes.append(b + [0, t, 0, t])  # face B is lost after frame 6
        frames.append(boxes[::-1] if t % 2 else boxes)  # detection order does not matter
    tracks = link_boxes(frames, iou_threshold=0.25)
    assert [(t.start, t.end, len(t)) for t in tracks] == [(0, 12, 12), (0, 7, 7)]
    assert np.allclose(tracks[0].boxes[5], a + [10, 0, 10, 0]) and tracks[1].detected.all()
    frames.append([b])  # B comes back: a new track
    assert [(t.start, len(t)) for t in link_boxes(frames)] == [(0, 12), (0, 7), (12, 1)]


def test_tracks_bridge_short_gaps_by_interpolation():
    box = np.array([0.0, 0, 40, 40])
    frames = [[box], [], [], [box + 6], [], [], [], [box + 8]]
    tracks = link_boxes(frames, max_gap=2)
    assert [(t.start, len(t)) for t in tracks] == [(0, 4), (7, 1)]  # a 3-frame gap is too long
    assert np.allclose(tracks[0].boxes[1:3], [box + 2, box + 4])
    assert tracks[0].detected.tolist() == [True, False, False, True]
    assert [len(t) for t in link_boxes(frames, max_gap=0)] == [1, 1, 1]


def test_against_initial_ends_a_track_that_drifts_away():
    frames = [[[x, 0, x + 20, 20]] for x in range(0, 40, 4)]  # moves 4 px a frame
    assert [len(t) for t in link_boxes(frames)] == [10]
    drifting = link_boxes(frames, against_initial=True)
    assert len(drifting) > 1 and len(drifting[0]) < 10


def test_track_faces_runs_a_detector_over_frames():
    frames = [np.zeros((8, 8, 3), np.uint8)] * 5

    def detector(frame):
        return [Face(np.tile([[2.0, 2.0, 0.0]], (478, 1)) + np.r_[[[0, 0, 0], [4, 4, 0]], np.zeros((476, 3))])]

    tracks = track_faces(frames, detector)
    assert len(tracks) == 1 and len(tracks[0]) == 5 and tracks[0].boxes[0].tolist() == [2, 2, 6, 6]
    tracker = FaceTracker()
    tracker.update([(0, 0, 1, 1)])
    assert tracker.frames == 1 and isinstance(tracker.finish()[0], FaceTrack)


def test_gaussian_smooth_keeps_constants_and_lines():
    assert np.allclose(gaussian_smooth(np.full((7, 2), 3.0), 2.0), 3.0)  # also at the ends
    line = np.arange(40, dtype=np.float64)
    assert np.allclose(gaussian_smooth(line, 2.0)[6:-6], line[6:-6])
    assert np.array_equal(gaussian_smooth(line, 0), line)
    impulse = np.zeros(21)
    impulse[10] = 1
    smoothed = gaussian_smooth(impulse, 1.0)
    assert smoothed.sum() == pytest.approx(1, abs=1e-3) and smoothed[10] == pytest.approx(0.399, abs=1e-3)


def test_smooth_boxes_reduces_jitter():
    rng = np.random.default_rng(0)
    t = np.arange(100, dtype=np.float64)[:, None]
    clean = np.hstack([100 + t, 50 + 0 * t, 180 + t, 150 + 0 * t])  # moving right, 80 x 100
    noisy = clean + rng.normal(0, 3, clean.shape)
    smoothed = smooth_boxes(noisy, sigma=3.0)
    assert smoothed.shape == (100, 4)

    def jitter(boxes):
        return np.abs(np.diff(boxes, n=2, axis=0)).mean()

    assert jitter(smoothed) < jitter(noisy) / 10
    assert np.abs(smoothed - clean).mean() < np.abs(noisy - clean).mean() / 2
    assert np.allclose(smooth_boxes(clean, 3.0)[10:-10], clean[10:-10])


def test_track_crop_boxes_follow_or_hold_the_face():
    rng = np.random.default_rng(1)
    t = np.arange(60, dtype=np.float64)[:, None]
    boxes = np.hstack([20 + 3 * t, 40 + 0 * t, 100 + 3 * t, 140 + 0 * t]) + rng.normal(0, 2, (60, 4))
    crops = track_crop_boxes(boxes, (240, 320), increase=0.1, sigma=2.0)
    assert crops.shape == (60, 4) and crops.dtype == np.int64
    sides = crops[:, 2] - crops[:, 0]
    assert np.array_equal(sides, crops[:, 3] - crops[:, 1])
    assert np.all(crops[:, :2] >= 0) and np.all(crops[:, 2] <= 320) and np.all(crops[:, 3] <= 240)
    assert np.abs(np.diff(sides)).max() <= 2  # the zoom barely changes
    assert crops[-1, 0] - crops[0, 0] > 100  # but the crop follows the face
    fixed = track_crop_boxes(boxes[:20], (240, 320), fixed=True)
    assert np.all(fixed == fixed[0])
    assert np.all(fixed[0, :2] <= boxes[:20, :2].min(axis=0)) and np.all(fixed[0, 2:] >= boxes[:20, 2:].max(axis=0))


# -- head pose from landmarks ------------------------------------------------------


def synthetic_frontal_landmarks(seed: int = 0) -> np.ndarray:
    """(478, 3) points, mirror-symmetric about x = 0, whose raw head axes are exactly the
    camera axes; tilted by NEUTRAL_PITCH so that head_pose reads (0, 0, 0)."""
    rng = np.random.default_rng(seed)
    points = rng.normal(0, 40, (478, 3))
    for right, left in topology.SYMMETRIC_PAIRS:  # the person's left is on the image's right
        points[left, 0] = abs(points[left, 0]) + 5
        points[right] = points[left] * [-1, 1, 1]
    points[list(topology.MIDLINE), 0] = 0
    points[list(topology.FOREHEAD_TOP)] = [[0, -80, 5], [0, -70, 0], [0, -60, -5]]
    points[list(topology.NOSE_BASE)] = [[0, 30, -2], [0, 32, 2]]
    points[topology.NOSE_TIP] = [0, 10, -50]  # nearer the camera than the rest
    tilt = euler_to_rotation(*torch.tensor([[0.0, NEUTRAL_PITCH, 0.0]], dtype=torch.float64).T)[0].numpy()
    return points @ tilt.T


def test_head_pose_of_rotated_synthetic_landmarks():
    frontal = synthetic_frontal_landmarks()
    assert head_pose(frontal).as_tuple() == pytest.approx((0, 0, 0), abs=1e-9)
    cases = [(30.0, 0.0, 0.0), (0.0, -20.0, 0.0), (0.0, 0.0, 15.0), (-35.0, 12.0, -8.0)]
    rotations = euler_to_rotation(*torch.tensor(cases, dtype=torch.float64).T).numpy()
    moved = np.stack([frontal @ r.T + [320, 240, 0] for r in rotations])
    poses = head_pose(moved)
    assert isinstance(poses, list) and all(isinstance(p, HeadPose) for p in poses)
    for pose, expected in zip(poses, cases):
        assert pose.as_tuple() == pytest.approx(expected, abs=1e-6)
    nose = topology.NOSE_TIP
    turned = moved[0]
    assert head_pose(turned).yaw > 0 and turned[nose, 0] - 320 > frontal[nose, 0]  # the face turned to +x
    assert np.allclose(poses[3].rotation() @ head_rotation(frontal), head_rotation(moved[3]), atol=1e-9)


def test_head_pose_of_mirrored_synthetic_landmarks_flips_yaw_and_roll():
    frontal = synthetic_frontal_landmarks(1)
    pose = euler_to_rotation(*torch.tensor([[25.0, 10.0, 5.0]], dtype=torch.float64).T)[0].numpy()
    face = frontal @ pose.T
    mirrored = face * [-1, 1, 1]
    swap = np.arange(478)
    for right, left in topology.SYMMETRIC_PAIRS:  # a mirrored person's right eye is their left
        swap[right], swap[left] = left, right
    assert head_pose(mirrored[swap]).as_tuple() == pytest.approx((-25, 10, -5), abs=1e-6)


# -- best frame -------------------------------------------------------------------


def test_best_frame_index_finds_the_frame_shaped_like_the_source():
    rng = np.random.default_rng(2)
    source = rng.normal(100, 30, (478, 3))
    driving = [rng.normal(100, 30, (478, 3)) for _ in range(6)]
    driving[4] = source * 1.7 + [40, -10, 3]  # same shape, moved and scaled
    driving[1] = None  # no face in this frame
    index, distance = best_frame_index(source, iter(driving))
    assert index == 4 and distance == pytest.approx(0, abs=1e-12)
    assert best_frame_index(source[:, :2], [source[:, :2] + 1e-3 * rng.normal(size=(478, 2)), source[:, :2]])[0] == 1
    with pytest.raises(ReanimateError, match="no face"):
        best_frame_index(source, [None, None])


def test_normalized_landmarks_remove_position_and_scale():
    square = np.array([[0.0, 0], [2, 0], [2, 2], [0, 2]])
    assert np.allclose(normalized_landmarks(square), (square - 1) / 2)
    batch = normalized_landmarks(np.stack([square, square * 3 + 7]))
    assert batch.shape == (2, 4, 2) and np.allclose(batch[0], batch[1])


# -- MediaPipe on a portrait ------------------------------------------------------


def test_mesh_finds_the_portrait_face_in_pixels(portrait, portrait_face):
    landmarks = portrait_face.landmarks
    assert landmarks.shape == (478, 3) and landmarks.dtype == np.float32
    height, width = portrait.shape[:2]
    x0, y0, x1, y1 = portrait_face.box
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert 0.05 < portrait_face.area / (width * height) < 0.8
    assert np.allclose(portrait_face.center, [(x0 + x1) / 2, (y0 + y1) / 2])
    # The person's right eye is on the image's left, the forehead above the chin.
    right_eye = landmarks[list(topology.RIGHT_EYE), 0].mean()
    assert right_eye < landmarks[list(topology.LEFT_EYE), 0].mean()
    assert landmarks[topology.FOREHEAD, 1] < landmarks[topology.CHIN, 1]
    assert landmarks[topology.NOSE_TIP, 2] < landmarks[list(topology.FACE_OVAL), 2].mean()  # nose nearer


def test_mesh_sorts_faces_by_area_and_finds_none_in_noise(mesh, portrait):
    height, width = portrait.shape[:2]
    half = cv2.resize(portrait, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width + width // 2, 3), 128, np.uint8)
    canvas[:, :width] = portrait
    canvas[: height // 2, width:] = half
    faces = mesh.detect(canvas)
    assert len(faces) == 2 and faces[0].area > 2 * faces[1].area
    assert faces[0].center[0] < width < faces[1].center[0]
    assert mesh.detect(random_image(240, 320)) == []
    with pytest.raises(ValueError, match="uint8"):
        mesh.detect(canvas.astype(np.float32))


def test_portrait_pose_is_frontal_and_mirroring_flips_yaw_and_roll(mesh, portrait, portrait_face):
    pose = portrait_face.pose
    assert max(abs(pose.yaw), abs(pose.pitch), abs(pose.roll)) < 8
    mirrored = mesh.detect(np.ascontiguousarray(portrait[:, ::-1]))[0].pose
    assert mirrored.yaw == pytest.approx(-pose.yaw, abs=2.5)
    assert mirrored.roll == pytest.approx(-pose.roll, abs=2.5)
    assert mirrored.pitch == pytest.approx(pose.pitch, abs=2.5)


def test_rotating_the_image_clockwise_adds_to_roll(mesh, portrait, portrait_face):
    height, width = portrait.shape[:2]
    centre = tuple(float(c) for c in portrait_face.center)
    clockwise = cv2.getRotationMatrix2D(centre, -10, 1.0)  # OpenCV: positive = anticlockwise
    rotated = cv2.warpAffine(portrait, clockwise, (width, height), borderMode=cv2.BORDER_REPLICATE)
    pose = mesh.detect(rotated)[0].pose
    assert pose.roll - portrait_face.pose.roll == pytest.approx(10, abs=1.5)
    assert pose.yaw == pytest.approx(portrait_face.pose.yaw, abs=2)


def test_missing_mediapipe_is_a_one_line_error(monkeypatch):
    from reanimate.faces import FaceMesh

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    with pytest.raises(ReanimateError, match="pip install") as excinfo:
        FaceMesh()
    assert "\n" not in str(excinfo.value)


def test_video_mode_tracks_a_moving_face(portrait):
    pytest.importorskip("mediapipe")
    from reanimate.faces import FaceMesh, detect_faces

    height, width = portrait.shape[:2]
    frames = [np.roll(portrait, 4 * i, axis=1) for i in range(6)]
    with FaceMesh(video=True) as tracker:
        tracks = track_faces(frames, tracker.detect)
    assert len(tracks) == 1 and len(tracks[0]) == 6
    centres = tracks[0].boxes[:, [0, 2]].mean(axis=1)
    # The first frame's landmarks come from a detection, the next ones from tracking.
    assert np.allclose(np.diff(centres[1:]), 4, atol=1.5)
    assert len(detect_faces(portrait)) == 1


def test_the_mirror_map_is_an_involution_that_keeps_the_mesh():
    from reanimate.faces import topology

    mirror = np.array(topology.MIRROR)
    assert sorted(mirror.tolist()) == list(range(478))
    np.testing.assert_array_equal(mirror[mirror], np.arange(478))
    for right, left in topology.SYMMETRIC_PAIRS:
        assert mirror[right] == left
    for i in topology.MIDLINE:
        assert mirror[i] == i
    # the mesh's triangles mirror onto its triangles (all but a few near the midline)
    triangles = topology.mesh_triangles()
    known = {tuple(sorted(t)) for t in triangles.tolist()}
    share = np.mean([tuple(sorted(mirror[t].tolist())) in known for t in triangles])
    assert share > 0.97
