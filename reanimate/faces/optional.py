"""MediaPipe, installed apart from the package's dependencies (``--no-deps``, see the
README), imported on first use with a one-line hint."""

from __future__ import annotations

import os

from reanimate.errors import ReanimateError

INSTALL_HINT = "face support needs mediapipe: pip install --no-deps mediapipe==0.10.21"


def require_face_mesh():
    """``mediapipe.solutions.face_mesh`` with MediaPipe's native logging turned down."""
    # glog and TF Lite read these when the library loads. The absl lines that MediaPipe's
    # C++ graph still prints go to file descriptor 2 directly; FaceMesh silences those.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise ReanimateError(f"{INSTALL_HINT} ({exc})") from None
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return mp.solutions.face_mesh
