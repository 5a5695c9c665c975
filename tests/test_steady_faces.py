"""SteadyFaceMesh: a fresh detection averaged with MediaPipe's tracked read of the same
face; identical frames give identical faces."""

from __future__ import annotations

import numpy as np
import pytest
from portrait_crop import EXAMPLES

from reanimate.faces import Face, FaceMesh
from reanimate.faces.steady import SteadyFaceMesh
from reanimate.io import read_image

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """The bundled portrait shifted a few pixels at a time: consecutive video frames."""
    portrait = read_image(EXAMPLES / "source.png")
    return [np.roll(portrait, 3 * i, axis=1) for i in range(4)]


def test_each_frame_is_the_mean_of_the_detected_and_the_tracked_read(frames):
    differ = []
    with SteadyFaceMesh() as steady, FaceMesh(video=False) as detection, FaceMesh(video=True) as tracking:
        for frame in frames:
            got = steady.detect(frame)[0].landmarks
            a, b = detection.detect(frame)[0].landmarks, tracking.detect(frame)[0].landmarks
            np.testing.assert_allclose(got, 0.5 * (a + b), atol=1e-4)
            differ.append(not np.allclose(a, b, atol=1e-3))
    # tracking's first read is a detection; later ones differ, so the mean is neither read
    assert not differ[0] and all(differ[1:])


def test_identical_frames_give_identical_faces(frames):
    with SteadyFaceMesh() as steady:
        first = steady.detect(frames[0])[0].landmarks
        again = [steady.detect(frames[0].copy())[0].landmarks for _ in range(3)]
    assert all(np.array_equal(first, other) for other in again)


def test_reset_starts_afresh(frames):
    with SteadyFaceMesh() as used, SteadyFaceMesh() as fresh:
        for frame in frames:
            used.detect(frame)
        used.reset()
        for frame in frames[::-1]:
            np.testing.assert_array_equal(used.detect(frame)[0].landmarks, fresh.detect(frame)[0].landmarks)


def test_another_tracked_face_is_not_mixed_in(frames, monkeypatch):
    with SteadyFaceMesh() as steady, FaceMesh(video=False) as detection:
        detected = detection.detect(frames[1])[0].landmarks
        far = Face(detected + np.array([200.0, 0.0, 0.0], np.float32))  # a face elsewhere
        monkeypatch.setattr(steady.tracking, "detect", lambda frame: [far])
        np.testing.assert_array_equal(steady.detect(frames[1])[0].landmarks, detected)


def test_no_face_skips_tracking(monkeypatch):
    with SteadyFaceMesh() as steady:
        monkeypatch.setattr(steady.tracking, "detect", lambda frame: pytest.fail("tracking ran"))
        assert steady.detect(np.zeros((64, 64, 3), np.uint8)) == []
