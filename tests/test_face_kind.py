"""Human or not (:mod:`reanimate.faces.kind`): the decision, the override, and what the
landmark animator draws on a face that is not human (no borrowed teeth, no lash lines)."""

from pathlib import Path

import numpy as np
import pytest
from portrait_crop import portrait_crop

from reanimate.animators.landmarks.animator import face_kind_request
from reanimate.animators.registry import build_animator
from reanimate.cli import main
from reanimate.errors import ReanimateError
from reanimate.faces.kind import HUMAN_SCORE, decide_face_kind, detector_view, face_kind

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZE = 512


# -- the decision ----------------------------------------------------------------------------


def test_decision_follows_the_score_and_the_setting():
    assert decide_face_kind(HUMAN_SCORE) == "human"
    assert decide_face_kind(0.93) == "human"
    assert decide_face_kind(HUMAN_SCORE - 0.01) == "other"
    assert decide_face_kind(0.0) == "other"
    assert decide_face_kind(None) == "human"  # no detector: draw as before
    # The setting wins over any score.
    assert decide_face_kind(0.0, "human") == "human"
    assert decide_face_kind(0.99, "other") == "other"
    with pytest.raises(ValueError, match="face kind must be one of"):
        decide_face_kind(0.5, "dog")


def test_detector_view_is_the_square_around_the_landmarks():
    image = np.zeros((300, 400, 3), np.uint8)
    image[100:200, 150:250] = 255  # the "face"
    landmarks = np.array([[150.0, 100.0, 0.0], [249.0, 199.0, 0.0], [200.0, 150.0, 0.0]])
    view = detector_view(image, landmarks, margin=0.3, size=160)
    assert view.shape == (160, 160, 3) and view.dtype == np.uint8
    # 100 px of face plus 30 px a side: the face fills the middle 100/160 of the view.
    assert view[80, 80].min() == 255 and view[30:130, 30:130].mean() > 250
    assert view[:20].max() == 0 and view[:, :20].max() == 0


def test_settings_other_than_auto_do_not_run_the_detector(monkeypatch):
    import reanimate.faces.kind as kind

    monkeypatch.setattr(kind, "face_score", lambda *a: pytest.fail("the detector ran"))
    image = np.zeros((64, 64, 3), np.uint8)
    landmarks = np.zeros((478, 3))
    assert face_kind(image, landmarks, "other") == "other"
    assert face_kind(image, landmarks, "human") == "human"


def test_no_detector_means_human(monkeypatch):
    import reanimate.faces.kind as kind

    monkeypatch.setattr(kind, "face_score", lambda *a: None)
    assert face_kind(np.zeros((64, 64, 3), np.uint8), np.zeros((478, 3))) == "human"


# -- the override ---------------------------------------------------------------------------


def test_face_kind_reaches_the_landmark_animator_as_its_config():
    model, config = face_kind_request("other", "auto", None, None)
    animator = build_animator(model=model, config=config)
    assert animator.family == "landmarks" and animator.engine.config.face_kind == "other"
    with pytest.raises(ReanimateError, match="--face-kind is a setting of the zero-shot landmark animator"):
        face_kind_request("human", "fomm", None, None)
    with pytest.raises(ReanimateError, match="drop --checkpoint"):
        face_kind_request("human", "auto", "model.pth.tar", None)


def test_cli_refuses_face_kind_for_other_models_in_one_line(tmp_path, capsys):
    out = tmp_path / "o.mp4"
    argv = ["animate", str(EXAMPLES / "source.png"), str(EXAMPLES / "driving.mp4"), "-o", str(out)]
    code = main([*argv, "--face-kind", "other", "--model", "fomm"])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--face-kind is a setting of the zero-shot landmark animator" in err[0]


# -- with MediaPipe: the detector and the animator ----------------------------------------


@pytest.fixture(scope="module")
def crop():
    pytest.importorskip("mediapipe")
    return portrait_crop(SIZE)


def test_detector_tells_a_face_from_a_texture(crop):
    from reanimate.faces.kind import face_score

    image, landmarks = crop
    assert face_kind(image, landmarks) == "human"
    # The same landmarks over fur-like noise: nothing a face detector trusts.
    noise = np.random.default_rng(0).integers(90, 200, image.shape, dtype=np.uint8)
    score = face_score(noise, landmarks)
    assert score is not None and score < HUMAN_SCORE
    assert face_kind(noise, landmarks) == "other"


def _drive(engine, source, landmarks, initial, frame=None):
    from reanimate.animators.landmarks import DrivingFace

    kp = engine.keypoints(np.stack([landmarks, initial]), (0, 0), float(SIZE - 1))
    return engine.animate(source, DrivingFace(kp[0], landmarks, frame), DrivingFace(kp[1], initial))


def _engine(**settings):
    from reanimate.animators.landmarks import LandmarkAnimator, LandmarkAnimatorConfig

    return LandmarkAnimator(LandmarkAnimatorConfig(size=SIZE, **settings))


def test_other_faces_get_no_teeth_from_the_driver(crop):
    from reanimate.faces import topology
    from reanimate.faces.edit import open_mouth

    image, landmarks = crop
    driver = open_mouth(landmarks, 0.1)
    frame = np.random.default_rng(1).integers(0, 256, image.shape, dtype=np.uint8)  # the driver's pixels
    up, low = topology.INNER_LIP_MIDDLE
    x, y = np.round((driver[up, :2] + driver[low, :2]) / 2).astype(int)
    human, other = _engine(face_kind="human"), _engine(face_kind="other")
    human_source, other_source = human.encode_source(image, landmarks), other.encode_source(image, landmarks)
    assert human_source.human and not other_source.human
    # A human face shows the driver's mouth interior ...
    borrowed = _drive(human, human_source, driver, landmarks, frame)
    shadow = _drive(human, human_source, driver, landmarks)
    assert np.abs(borrowed[y - 2 : y + 3, x - 2 : x + 3].astype(int) - shadow[y - 2 : y + 3, x - 2 : x + 3]).max() > 10
    # ... another face none of the driver's pixels: its opened mouth is the shadow in
    # its own lips' colour that scripted motion (no driver frame) gets.
    with_frame = _drive(other, other_source, driver, landmarks, frame)
    np.testing.assert_array_equal(with_frame, _drive(other, other_source, driver, landmarks))
    inside = with_frame[y - 2 : y + 3, x - 2 : x + 3].astype(float).mean()
    assert inside < 0.6 * other_source.lips[0].mean()


def test_other_faces_close_their_eyes_without_lash_lines(crop):
    from reanimate.faces.edit import close_eyes

    image, landmarks = crop
    driver = close_eyes(landmarks)
    engine = _engine(face_kind="other")
    other = _drive(engine, engine.encode_source(image, landmarks), driver, landmarks)
    # The same as a human face drawn without lash lines and without the eyeball layer.
    plain = _engine(face_kind="human", lash_width=0.0, gaze=False)
    expected = _drive(plain, plain.encode_source(image, landmarks), driver, landmarks)
    np.testing.assert_array_equal(other, expected)
    lashed = _engine(face_kind="human", gaze=False)
    with_lash = _drive(lashed, lashed.encode_source(image, landmarks), driver, landmarks)
    assert np.abs(with_lash.astype(int) - other).max() > 40  # the lash line is what differs
