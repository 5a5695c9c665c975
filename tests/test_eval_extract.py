"""Per-frame evaluation measurements (face mesh, head pose, dlib landmarks and identity,
body pose) and their cache, on the example portrait moved about and on synthetic media.
The dlib parts are skipped when dlib or its model files are missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from media import make_frames_folder, make_image, make_video

from reanimate.errors import InputError, ReanimateError
from reanimate.evaluation.metrics import average_keypoint_distance, identity_distance
from reanimate.io import read_image

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe", reason="evaluation measurements need mediapipe")

from reanimate.evaluation.body_pose import BODY_KEYPOINTS  # noqa: E402
from reanimate.evaluation.cache import FeatureCache, file_digest  # noqa: E402
from reanimate.evaluation.dlib_face import (  # noqa: E402
    DLIB_INSTALL_HINT,
    DlibFace,
    DlibUnavailable,
    dlib_box_from_landmarks,
)
from reanimate.evaluation.extractor import FeatureExtractor  # noqa: E402
from reanimate.evaluation.features import VideoFeatures  # noqa: E402

PORTRAIT = Path(__file__).resolve().parents[1] / "examples" / "source.png"
FRAME_SIZE = (256, 300)  # (width, height) of the portrait frames
SHIFT = (6, 4)  # (dx, dy) pixels per frame
MOVING_FRAMES = 5
GREY = 128


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` translated by (dx, dy) pixels, the uncovered border repeated."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """The example portrait at 256 x 300 px."""
    return cv2.resize(read_image(PORTRAIT), FRAME_SIZE, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def moving_frames(portrait) -> list[np.ndarray]:
    """The portrait moved by ``i * SHIFT`` in frame ``i``, then one flat grey frame (no face)."""
    frames = [shifted(portrait, SHIFT[0] * i, SHIFT[1] * i) for i in range(MOVING_FRAMES)]
    return frames + [np.full_like(portrait, GREY)]


@pytest.fixture(scope="module")
def extractor():
    with FeatureExtractor("face") as face_extractor:
        yield face_extractor


@pytest.fixture(scope="module")
def features(extractor, moving_frames) -> VideoFeatures:
    return extractor(iter(moving_frames))


def needs_dlib(extractor: FeatureExtractor) -> None:
    if extractor.missing:
        pytest.skip(extractor.missing[0])


def assert_same_features(a: VideoFeatures, b: VideoFeatures) -> None:
    assert (a.kind, a.size) == (b.kind, b.size)
    for name in ("keypoints", "visible", "keypoints68", "pose", "identity"):
        left, right = getattr(a, name), getattr(b, name)
        assert (left is None) == (right is None), name
        if left is not None:
            assert left.dtype == right.dtype, name
            np.testing.assert_array_equal(left, right, err_msg=name)  # NaN equals NaN here


# -- faces ------------------------------------------------------------------------------


def test_face_features_have_the_documented_shapes_and_dtypes(features, extractor):
    frames = MOVING_FRAMES + 1
    assert features.kind == "face" and features.size == (FRAME_SIZE[1], FRAME_SIZE[0]) and len(features) == frames
    assert features.keypoints.shape == (frames, 478, 2) and features.keypoints.dtype == np.float32
    assert features.visible.shape == (frames, 478) and features.visible.dtype == bool
    assert features.pose.shape == (frames, 3) and features.pose.dtype == np.float32
    if not extractor.missing:
        assert features.keypoints68.shape == (frames, 68, 2) and features.keypoints68.dtype == np.float32
        assert features.identity.shape == (frames, 128) and features.identity.dtype == np.float32


def test_landmarks_and_a_frontal_pose_are_found_on_the_portrait(features):
    assert features.visible[:MOVING_FRAMES].all()
    first = features.keypoints[0]
    assert np.isfinite(first).all()
    assert (first >= 0).all() and (first[:, 0] < FRAME_SIZE[0]).all() and (first[:, 1] < FRAME_SIZE[1]).all()
    assert np.abs(features.pose[:MOVING_FRAMES]).max() < 15  # a frontal, upright face


def test_a_frame_without_a_face_is_nan_and_not_visible(features, extractor):
    last = len(features) - 1
    assert np.isnan(features.keypoints[last]).all() and not features.visible[last].any()
    assert np.isnan(features.pose[last]).all()
    assert features.found.tolist() == [True] * MOVING_FRAMES + [False]
    if not extractor.missing:
        assert np.isnan(features.keypoints68[last]).all() and np.isnan(features.identity[last]).all()


def test_keypoints_move_with_the_face(features):
    """Frame i is the portrait shifted by i * SHIFT: AKD to frame 0 is i * |SHIFT|."""
    first = np.broadcast_to(features.keypoints[:1], features.keypoints.shape)
    per_frame = average_keypoint_distance(features.keypoints, first, features.visible, reduction="none")
    expected = np.hypot(*SHIFT) * np.arange(MOVING_FRAMES)
    np.testing.assert_allclose(per_frame[:MOVING_FRAMES], expected, atol=1.5)
    assert np.isnan(per_frame[-1])
    mean_shift = (features.keypoints[1:MOVING_FRAMES] - features.keypoints[: MOVING_FRAMES - 1]).mean(axis=(0, 1))
    np.testing.assert_allclose(mean_shift, SHIFT, atol=0.5)


def test_dlib_landmarks_move_with_the_face(features, extractor):
    needs_dlib(extractor)
    first = np.broadcast_to(features.keypoints68[:1], features.keypoints68.shape)
    per_frame = average_keypoint_distance(features.keypoints68, first, reduction="none")
    np.testing.assert_allclose(per_frame[:MOVING_FRAMES], np.hypot(*SHIFT) * np.arange(MOVING_FRAMES), atol=1.5)


def test_identity_of_the_same_face_stays_close(features, extractor):
    needs_dlib(extractor)
    identity = features.identity[:MOVING_FRAMES]
    assert np.isfinite(identity).all()
    assert identity_distance(identity, identity[0]).max() < 0.3  # same person: dlib says < 0.6


def test_identity_every_leaves_the_frames_between_nan(moving_frames):
    with FeatureExtractor("face", identity=True, landmarks68=False, identity_every=2) as every_other:
        needs_dlib(every_other)
        result = every_other(iter(moving_frames[:3]))
    assert result.keypoints68 is None
    assert np.isfinite(result.identity[[0, 2]]).all() and np.isnan(result.identity[1]).all()
    assert "identity-every2" in every_other.version


def test_missing_dlib_is_reported_with_the_install_hint(monkeypatch, portrait):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with FeatureExtractor("face") as without_dlib:
        result = without_dlib(iter([portrait]))
    assert len(without_dlib.missing) == 1 and DLIB_INSTALL_HINT in without_dlib.missing[0]
    assert "\n" not in without_dlib.missing[0]
    assert result.identity is None and result.keypoints68 is None and result.visible.all()
    assert "dlib" not in without_dlib.version


def test_missing_dlib_model_files_are_one_line_errors(tmp_path):
    pytest.importorskip("dlib", reason="dlib is optional (pip install dlib-bin face_recognition_models)")
    with pytest.raises(DlibUnavailable, match="pip install dlib-bin face_recognition_models") as excinfo:
        DlibFace(models=tmp_path)
    assert "\n" not in str(excinfo.value)


def test_the_version_names_what_is_extracted(extractor):
    with FeatureExtractor("face", identity=False, landmarks68=False) as mesh_only, FeatureExtractor("body") as body:
        assert mesh_only.missing == [] and body.missing == []
        assert "face" in mesh_only.version and "body" in body.version and mesh_only.version != body.version
        # With dlib the full face extractor measures more than the face mesh alone and
        # says so; without dlib both measure the same and share a version (cache entries).
        assert (extractor.version != mesh_only.version) == (not extractor.missing)


def test_frames_of_different_sizes_and_bad_options_are_refused(portrait):
    with FeatureExtractor("face", identity=False, landmarks68=False) as cheap:
        with pytest.raises(ValueError, match="frame 1"):
            cheap(iter([portrait, portrait[:100]]))
        empty = cheap(iter([]))
    assert len(empty) == 0 and empty.keypoints.shape == (0, 478, 2) and empty.size == (0, 0)
    with pytest.raises(ValueError, match="closed"):
        cheap(iter([portrait]))
    with pytest.raises(ReanimateError, match="kind"):
        FeatureExtractor("hand")
    with pytest.raises(ReanimateError, match="identity_every"):
        FeatureExtractor("face", identity_every=0)


# -- bodies -----------------------------------------------------------------------------


def test_body_pose_on_the_portrait_and_a_grey_frame(portrait):
    calls = []
    with FeatureExtractor("body") as body:
        result = body(iter([portrait, np.full_like(portrait, GREY)]), progress=calls.append)
    assert calls == [1, 1] and body.missing == []
    assert result.kind == "body" and result.keypoints.shape == (2, BODY_KEYPOINTS, 2)
    assert result.pose is None and result.identity is None and result.keypoints68 is None
    assert result.visible[0, :11].all()  # the face's pose points (nose, eyes, ears, mouth) of a bust
    assert np.isnan(result.keypoints[1]).all() and not result.visible[1].any()


# -- saving and the cache ---------------------------------------------------------------


class CountingExtractor(FeatureExtractor):
    """A face-mesh-only extractor that counts its calls."""

    def __init__(self, kind: str = "face"):
        super().__init__(kind, identity=False, landmarks68=False)
        self.calls = 0

    def __call__(self, frames, progress=None):
        self.calls += 1
        return super().__call__(frames, progress)


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 100, (3, 478, 2)).astype(np.float32)
    keypoints[1] = np.nan
    original = VideoFeatures(
        "face",
        (120, 100),
        keypoints,
        np.isfinite(keypoints).all(-1),
        keypoints68=rng.uniform(0, 100, (3, 68, 2)),
        pose=[[1, 2, 3], [np.nan] * 3, [4, 5, 6]],
        identity=None,
    )
    original.save(tmp_path / "a.npz")
    assert_same_features(VideoFeatures.load(tmp_path / "a.npz"), original)
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # no temporary file left behind
    body = VideoFeatures("body", (10, 20), np.zeros((2, BODY_KEYPOINTS, 2)), np.ones((2, BODY_KEYPOINTS)))
    body.save(tmp_path / "b.npz")
    assert_same_features(VideoFeatures.load(tmp_path / "b.npz"), body)


def test_loading_something_else_or_a_bad_shape_fails(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    with pytest.raises(InputError, match="junk.npz"):
        VideoFeatures.load(junk)
    with pytest.raises(ValueError, match="visible"):
        VideoFeatures("face", (1, 1), np.zeros((2, 478, 2)), np.ones((2, 5), dtype=bool))


def test_the_cache_measures_a_video_once(tmp_path):
    video = make_video(tmp_path / "clip.mp4", num_frames=4, size=(64, 48))
    cache, extractor = FeatureCache(tmp_path / "cache"), CountingExtractor()
    first = cache.get(video, extractor)
    again = cache.get(video, extractor)
    assert extractor.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    assert_same_features(first, again)
    assert len(first) == 4 and first.size == (48, 64)
    assert cache.path_for(video, extractor).is_file()
    assert cache.get(video, CountingExtractor("body")).kind == "body"  # another version: its own entry
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_changed_bytes_miss_and_a_moved_file_hits(tmp_path):
    video = make_video(tmp_path / "clip.mp4", num_frames=4, size=(64, 48))
    cache, extractor = FeatureCache(tmp_path / "cache"), CountingExtractor()
    cache.get(video, extractor)
    moved = video.rename(tmp_path / "renamed.mp4")
    cache.get(moved, extractor)
    assert extractor.calls == 1
    make_video(moved, num_frames=4, size=(64, 48), pattern="static")
    cache.get(moved, extractor)
    assert extractor.calls == 2


def test_a_damaged_cache_entry_is_measured_again(tmp_path):
    video = make_video(tmp_path / "clip.mp4", num_frames=3, size=(64, 48))
    cache, extractor = FeatureCache(tmp_path / "cache"), CountingExtractor()
    first = cache.get(video, extractor)
    cache.path_for(video, extractor).write_bytes(b"truncated")
    assert_same_features(cache.get(video, extractor), first)
    assert extractor.calls == 2
    assert_same_features(VideoFeatures.load(cache.path_for(video, extractor)), first)


def test_frame_folders_and_images_are_cached_too(tmp_path):
    folder = make_frames_folder(tmp_path / "frames", num_frames=3, size=(32, 24))
    image = make_image(tmp_path / "still.png", size=(40, 30))
    cache, extractor = FeatureCache(tmp_path / "cache"), CountingExtractor()
    assert len(cache.get(folder, extractor)) == 3
    assert len(cache.get(image, extractor)) == 1 and extractor.calls == 2
    digest = file_digest(folder)
    (folder / "notes.txt").write_text("not a frame")
    assert file_digest(folder) == digest
    make_image(folder / "000001.png", size=(32, 24), array=np.zeros((24, 32, 3), dtype=np.uint8))
    assert file_digest(folder) != digest


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path):
    import hashlib

    data = os.urandom(3 << 20)
    (tmp_path / "blob.mp4").write_bytes(data)
    assert file_digest(tmp_path / "blob.mp4") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name, problem", [("garbage.mp4", "cannot be opened"), ("absent.mp4", "not found")])
def test_an_unreadable_file_is_a_one_line_input_error(tmp_path, name, problem):
    path = tmp_path / name
    if name == "garbage.mp4":
        path.write_bytes(b"\x00 this is not a video " * 50)
    with pytest.raises(InputError, match=problem) as excinfo:
        FeatureCache(tmp_path / "cache").get(path, CountingExtractor())
    assert name in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert not (tmp_path / "cache").exists()  # nothing stored


def test_dlib_box_from_landmarks_hand_computed():
    # All landmarks at (100, 200) except the outer eye corners, placed symmetrically
    # 20 px apart in 3-D (so the mean stays put): offsets times 20.
    landmarks = np.tile([100.0, 200.0, 5.0], (478, 1))
    landmarks[33] = (90.0, 200.0, 5.0)
    landmarks[263] = (110.0, 200.0, 5.0)
    np.testing.assert_allclose(
        dlib_box_from_landmarks(landmarks), (100 - 0.758 * 20, 200 - 0.675 * 20, 100 + 0.679 * 20, 200 + 0.755 * 20)
    )
    landmarks[263, 2] = 5.0 + 10.0 * np.sqrt(3.0)  # a turned head: the 3-D distance counts (40 px)
    landmarks[33, 2] = 5.0 - 10.0 * np.sqrt(3.0)
    box = dlib_box_from_landmarks(landmarks)
    np.testing.assert_allclose(box[2] - box[0], (0.679 + 0.758) * 40)


def test_made_box_gives_dlib_nearly_the_detections_descriptor(portrait, extractor):
    """Where dlib's detector misses a face, the box made from the face mesh stands in
    for its detection: the descriptor is close to the detection's."""
    needs_dlib(extractor)
    from reanimate.faces import FaceMesh

    dlib = DlibFace()
    with FaceMesh() as mesh:
        landmarks = mesh.detect(portrait)[0].landmarks
    detected = dlib.measure(portrait)
    made = dlib.measure(portrait, dlib_box_from_landmarks(landmarks), detect=False)
    assert detected is not None and not detected.from_mesh and made.from_mesh
    iou = box_overlap(detected.box, dlib_box_from_landmarks(landmarks))
    assert iou > 0.6, iou
    assert np.linalg.norm(made.descriptor - detected.descriptor) < 0.15  # same person: dlib says < 0.6


def box_overlap(a, b) -> float:
    from reanimate.faces import box_iou

    return float(box_iou(np.asarray(a, float), np.asarray(b, float)[None])[0, 0])
