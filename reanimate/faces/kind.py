"""Is a face human? The default animator draws human parts (a mouth interior with teeth
borrowed from the driver, lash lines on closed lids) only on human faces.

MediaPipe's face mesh fits its human template to anything face-like: it finds the
monkey and the dog of the local test portraits with all 478 landmarks, and nothing in
the landmarks' geometry sets them apart (eye width over eye distance, mouth width over
eye distance: both animals fall inside the spread of the human faces tried). Colour
cues (lips redder than skin, white sclera beside the iris) fail on ordinary human
inputs too (small or squinting eyes, dim video, grey photos). What does separate them
is MediaPipe's own *face detector* (BlazeFace, short range, shipped with the same
package): its confidence on a fixed framing of the face the landmarks outline.

Measured (``face_score``: the detector's score on a square around the landmarks with
:data:`VIEW_MARGIN` per side, averaged with its mirror image): 75 human faces (the
bundled ``examples/source.png``, a painted portrait, and every 15th frame of four
talking-head clips) scored 0.884 to 0.946; a capuchin monkey 0.750 and a shiba dog
0.768. :data:`HUMAN_SCORE` lies in that gap. It is one cue with two animals behind it:
expect mistakes on stylised faces (cartoons, masks, heavy make-up) and on animals with
flat, human-like faces; ``face_kind="human"`` or ``"other"`` overrides it. (A cartoon
llama tried had no face found at all, so it is refused before this is asked.)
"""

from __future__ import annotations

import logging

import numpy as np

from reanimate.faces.crop import crop_face, square_box

logger = logging.getLogger(__name__)

HUMAN, OTHER, AUTO = "human", "other", "auto"
#: What ``face_kind`` settings take: ``auto`` decides from the image (:func:`decide_face_kind`).
FACE_KINDS = (AUTO, HUMAN, OTHER)
#: Scores at or above this are human (between the lowest human, 0.884, and the highest
#: animal, 0.768, of the faces measured above).
HUMAN_SCORE = 0.83
#: The detector's view: a square around the landmarks grown by this share of its side
#: per side (0.3 separated the two groups best of 0.15, 0.2 and 0.3; the score depends
#: on the framing, so it is fixed here, not taken from the animator's crop margin) ...
VIEW_MARGIN = 0.3
#: ... resized to this many pixels (the short-range detector works at 128 itself).
VIEW_SIZE = 256


def detector_view(image: np.ndarray, landmarks: np.ndarray, margin: float = VIEW_MARGIN, size: int = VIEW_SIZE):
    """What the detector is shown: ``(size, size, 3)`` uint8, the square around the
    ``(478, 2+)`` pixel ``landmarks`` of ``image`` ``(H, W, 3)`` grown by ``margin`` per
    side (borders outside the image are black)."""
    points = np.asarray(landmarks, np.float64)[:, :2]
    box = np.concatenate([points.min(0), points.max(0)])
    return crop_face(image, square_box(box, image.shape[:2], margin), size)


def face_score(image: np.ndarray, landmarks: np.ndarray) -> float | None:
    """MediaPipe's face-detector confidence in [0, 1] for the face that ``landmarks``
    ``(478, 2+)`` outline in ``image`` ``(H, W, 3)`` uint8 RGB, averaged over the view
    and its mirror (which takes out some of the detector's left/right asymmetry); 0
    where it finds no face. None when MediaPipe is not installed (no evidence)."""
    try:
        from reanimate.faces.optional import require_face_mesh

        require_face_mesh()  # sets MediaPipe's logging up, raises if it is missing
        import mediapipe as mp
    except Exception:  # noqa: BLE001 - MediaPipe missing or broken: no evidence
        return None
    view = detector_view(image, landmarks)
    scores = []
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.05) as detector:
        for picture in (view, view[:, ::-1]):
            found = detector.process(np.ascontiguousarray(picture)).detections or ()
            scores.append(max((float(d.score[0]) for d in found), default=0.0))
    return float(np.mean(scores))


def decide_face_kind(score: float | None, setting: str = AUTO, threshold: float = HUMAN_SCORE) -> str:
    """``"human"`` or ``"other"``: ``setting`` when it names one, else (``"auto"``) human
    when the detector ``score`` reaches ``threshold``; no score (no detector) counts as
    human, which draws what the animator drew before there was a choice."""
    if setting not in FACE_KINDS:
        raise ValueError(f"face kind must be one of {', '.join(FACE_KINDS)}, got {setting!r}")
    if setting != AUTO:
        return setting
    return HUMAN if score is None or score >= threshold else OTHER


def face_kind(image: np.ndarray, landmarks: np.ndarray, setting: str = AUTO) -> str:
    """:func:`decide_face_kind` of the face ``landmarks`` outline in ``image`` (the
    detector runs only for ``setting="auto"``)."""
    if setting != AUTO:
        return decide_face_kind(None, setting)
    score = face_score(image, landmarks)
    kind = decide_face_kind(score, setting)
    logger.info("face kind: %s (face-detector score %s, human from %.2f)", kind, score, HUMAN_SCORE)
    return kind
