#!/usr/bin/env python
"""Hand-run benchmark: how well a face animation follows its driving video (not part of
the test suite).

For a driving video and an output video with the same frames it compares, frame by
frame, measures read from MediaPipe's 478-point face mesh (tracked through each video):

* head yaw and pitch (from the 3-D landmarks: the left-right axis is the mean of the
  vectors between mirrored landmarks, the up axis runs from the chin to the forehead)
  and head roll (the angle of the line through the outer eye corners in the image):
  angles in the camera frame;
* the head's rotation since the first compared frame *in its own frame* (yaw, pitch,
  roll of ``R_0^T R_t``, with the head axes of ``reanimate.faces.pose``): the head's
  own motion, which does not depend on where it started. A three-quarter source that
  nods and turns exactly as a frontal driver does shows other image angles (its eye
  line tilts when it turns about its own, tilted, up axis), but the same head-frame
  angles;
* mouth opening: the inner-lip gap (13-14) over the distance of the outer eye corners
  (33-263), a face size that does not change with the image's size;
* each eye's opening: the lid gap (159-145, 386-374) over the eye's width (33-133,
  263-362).

and prints:

* Pearson r between the driver's and the output's series (the targets use head yaw and
  head roll in the head's frame; pitch and the camera-frame angles are for information);
* the blink amplitude ratio of each eye: (output open level - output minimum) /
  (driver open level - driver minimum), the open level being the 90th percentile.
  Only where the driver blinks (its minimum below 70% of its open level);
* the identity distance (dlib's 128-D face descriptor) between the source image's face
  and every ``--identity-every``-th output frame's face (same person: about 0.5 or less).
  dlib's frontal face detector misses turned heads; there a box like the detector's,
  made from the face mesh (``reanimate.evaluation.dlib_face.dlib_box_from_landmarks``),
  is given to dlib's shape predictor instead (counted; on faces both find, the two
  boxes give descriptors 0.06 apart on average; the mesh's own bounding box, used
  before, gave 0.16 and up to 0.65, and turned a few frames' misses into jumps of 0.3);
* with ``--same-identity`` (the source is a frame of the driving video): the mean
  ``|output - driving|`` in [0, 1], and the same for a still video of the source, which
  the animation should beat.

An r marked "*" is one where the driver barely moves (e.g. yaw range under 5 degrees):
it then mostly measures tracking noise. Frames where either video has no face are
skipped and counted. An output pasted back
into a larger source has other dimensions than the driver: the measures are ratios and
angles, so that does not matter; for the L1 the output is resized to the driver's size.

Usage::

    python benchmarks/face_quality.py --source S --driving D --output O [--same-identity]
        [--json out.json] [--grid grid.png]
    python benchmarks/face_quality.py --run [--clips a.mp4,b.mp4] [--workdir DIR]
        [--animate-args "--smooth one-euro"] [--grid grids.png] [--json all.json]
    python benchmarks/face_quality.py --selftest [--driving D]
    python benchmarks/face_quality.py --noise-floor [--clips a.mp4,b.mp4] [--workdir DIR]
    python benchmarks/face_quality.py --tracker-agreement [--clips a.mp4,b.mp4]

``--noise-floor`` measures how far the measures themselves can follow each clip: it
compares every clip with a copy of itself that has no motion of its own, only what any
animation's output goes through (each frame resampled bilinearly to 3/4 size and back,
then H.264-encoded by reanimate's writer). Even this near-perfect "output" gives
``r < 1``; where it is below 0.9, no animation can be shown to reach the target on that
clip with these trackers.

``--tracker-agreement`` reads each clip twice, with MediaPipe's tracking mode (as the
measures do) and with a fresh detection per frame (as ``reanimate animate`` reads driving
frames), and compares the two series: the most an animation driven by per-frame
landmarks can reach when it is measured by tracking.

``--run`` animates, for each clip, the portrait ``--portrait`` and the clip's own first
frame (a same-identity source) with ``reanimate animate SOURCE CLIP -o OUT.mp4``, then
measures both and prints a table and which targets pass: r >= 0.9 for head yaw, head
roll and mouth; blink ratio >= 0.8; mean identity distance <= 0.35; same-identity L1 below the
still source's. The default clips and portrait are the local media of
``../shared/media`` beside the checkout, or ``$REANIMATE_MEDIA`` (never part of the
repository).

Needs ``mediapipe`` and ``dlib`` (``pip install dlib-bin face_recognition_models``),
which are not dependencies of reanimate.
"""

from __future__ import annotations

import os

# MediaPipe's C++ logging reads this when it is imported.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from reanimate.faces.pose import head_rotation  # noqa: E402
from reanimate.faces.topology import (  # noqa: E402
    CHIN,
    FOREHEAD,
    INNER_LIP_MIDDLE,
    LEFT_EYE_CORNERS,
    LEFT_EYE_MID_LIDS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYE_MID_LIDS,
    SYMMETRIC_PAIRS,
)
from reanimate.geometry import rotation_to_euler  # noqa: E402
from reanimate.io import open_frames, open_writer, read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The project's local media folder sits beside the checkout (``../shared/media``); another
# place can be given with REANIMATE_MEDIA.
MEDIA = Path(os.environ.get("REANIMATE_MEDIA", REPO.parent / "shared" / "media"))
DEFAULT_CLIPS = [MEDIA / f"{name}.mp4" for name in ("d10", "d11", "d18", "d20")]
DEFAULT_PORTRAIT = MEDIA / "s10.jpg"

# Per-frame measures (face_measures), then the head's rotation since the first compared
# frame in its own frame (relative_head_angles), derived from the whole series.
FRAME_SERIES = ("yaw", "pitch", "roll", "mouth", "eye_right", "eye_left")
HEAD_SERIES = ("head_yaw", "head_pitch", "head_roll")
SERIES = FRAME_SERIES + HEAD_SERIES
EYES = ("eye_right", "eye_left")

# Targets for the "faces" issue. Head yaw and roll are judged in the head's own frame
# (see relative_head_angles): a source that looks three-quarter left and a frontal driver
# make the same head motion with different image angles, so the camera-frame yaw/roll
# columns are printed for information only.
TARGET_R = 0.9  # head yaw, head roll and mouth
TARGET_BLINK = 0.8
TARGET_IDENTITY = 0.35  # mean dlib distance to the source
TARGETS_R = ("head_yaw", "head_roll", "mouth")

# The driver blinks when an eye's minimum opening is below this fraction of its open level.
BLINK_MIN_DEPTH = 0.3
OPEN_PERCENTILE = 90
# Below these driver ranges (peak to peak) a Pearson r mostly measures tracking noise;
# reports mark such r with "*".
MIN_DRIVER_RANGE = {
    "yaw": 5.0,
    "pitch": 5.0,
    "roll": 5.0,
    "mouth": 0.05,
    "eye_right": 0.1,
    "eye_left": 0.1,
    "head_yaw": 5.0,
    "head_pitch": 5.0,
    "head_roll": 5.0,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def silence_native_stderr() -> None:
    """Send what native code writes to file descriptor 2 to /dev/null, keeping Python's
    ``sys.stderr`` (messages, tracebacks) on the real stderr.

    MediaPipe's TFLite and absl logging write to descriptor 2 from the graph's threads,
    whatever GLOG_minloglevel says, so hiding it around single calls is not enough.
    """
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


# --------------------------------------------------------------------------------------
# Landmarks and per-frame measures
# --------------------------------------------------------------------------------------


class LandmarkTracker:
    """MediaPipe face mesh in video mode (tracking) for one video; ``per_frame=True``: a
    fresh face detection on every frame instead (static-image mode, what
    ``reanimate animate`` uses for driving frames)."""

    def __init__(self, per_frame: bool = False):
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=per_frame, refine_landmarks=True, max_num_faces=1
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """``(478, 3)`` landmarks in pixels (z in the x scale), or None without a face."""
        return _pixels(self._mesh.process(frame), frame)

    def close(self) -> None:
        self._mesh.close()


def still_landmarks(image: np.ndarray) -> np.ndarray | None:
    """Face-mesh landmarks of a single image (pixels), or None."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        return _pixels(mesh.process(np.ascontiguousarray(image)), image)


def _pixels(result, image: np.ndarray) -> np.ndarray | None:
    """The first face of a face-mesh result as ``(478, 3)`` pixels (z in the x scale)."""
    if not result.multi_face_landmarks:
        return None
    height, width = image.shape[:2]
    points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark])
    return points * (width, height, width)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def face_measures(lm: np.ndarray) -> dict[str, float]:
    """The per-frame measures of :data:`SERIES` from ``(478, 3)`` landmarks.

    Distances are 3-D, so that turning the head does not shrink the face size. Angles
    are in degrees; image axes are x right, y down, z away from the camera.
    """

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(lm[a] - lm[b]))

    # Head axes: left-right from the mirrored pairs (person's right -> left, which points
    # to the image's right for a frontal face), up from chin to forehead, made orthogonal.
    lateral = _unit(np.mean([lm[left] - lm[right] for right, left in SYMMETRIC_PAIRS], axis=0))
    up = lm[FOREHEAD] - lm[CHIN]
    up = _unit(up - up.dot(lateral) * lateral)
    yaw = math.degrees(math.atan2(lateral[2], lateral[0]))
    pitch = math.degrees(math.atan2(up[2], -up[1]))
    eye_line = lm[LEFT_EYE_CORNERS[0], :2] - lm[RIGHT_EYE_CORNERS[0], :2]
    roll = math.degrees(math.atan2(eye_line[1], eye_line[0]))
    face_size = dist(RIGHT_EYE_CORNERS[0], LEFT_EYE_CORNERS[0])
    return {
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
        "mouth": dist(*INNER_LIP_MIDDLE) / face_size,
        "eye_right": dist(*RIGHT_EYE_MID_LIDS) / dist(*RIGHT_EYE_CORNERS),
        "eye_left": dist(*LEFT_EYE_MID_LIDS) / dist(*LEFT_EYE_CORNERS),
    }


def relative_head_angles(rotations: np.ndarray) -> np.ndarray:
    """Yaw, pitch and roll (degrees) of the head's rotation since the first frame,
    expressed in the first frame's head axes.

    ``rotations`` are ``(N, 3, 3)`` head axes in camera space (``faces.pose.head_rotation``);
    the result is ``(N, 3)``, the Euler angles (``geometry.rotation_to_euler``) of
    ``R_0^T R_t``, zero at frame 0. This is the quantity the landmark animator transfers
    (``geometry.relative_pose_motion`` applies the driver's ``R_D0^T R_Dt`` to the source's
    head), and unlike the image angles it does not depend on the head's starting pose.
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    if len(rotations) == 0:
        return np.zeros((0, 3))
    relative = np.einsum("ji,njk->nik", rotations[0], rotations)
    return rotation_to_euler(torch.from_numpy(relative)).numpy()


# --------------------------------------------------------------------------------------
# Identity (dlib)
# --------------------------------------------------------------------------------------


class IdentityModel:
    """dlib's 128-D face descriptor (:class:`reanimate.evaluation.dlib_face.DlibFace`), boxed
    by the face mesh where dlib's frontal detector misses a turned head."""

    def __init__(self):
        from reanimate.errors import ReanimateError
        from reanimate.evaluation.dlib_face import DlibFace

        try:
            self._dlib = DlibFace()
        except ReanimateError as exc:
            sys.exit(str(exc))

    def descriptor(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> tuple[np.ndarray | None, bool]:
        """128-D descriptor of the face of an RGB ``uint8`` image (the detection that
        overlaps the face mesh's box when ``landmarks`` (pixels) are given), and whether
        the box came from the landmarks. ``(None, False)`` without a face."""
        from reanimate.evaluation.dlib_face import dlib_box_from_landmarks

        box = None if landmarks is None else dlib_box_from_landmarks(landmarks)
        found = self._dlib.measure(image, box)
        if found is None:
            return None, False
        return found.descriptor.astype(np.float64), found.from_mesh


# --------------------------------------------------------------------------------------
# Comparing a driving video and an output video
# --------------------------------------------------------------------------------------


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``size`` is (width, height)."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def l1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255)


def pearson(driver: np.ndarray, output: np.ndarray) -> float:
    """Pearson r; NaN when the driver does not move, 0 when the output does not."""
    if len(driver) < 3 or np.std(driver) < 1e-9:
        return float("nan")
    if np.std(output) < 1e-9:
        return 0.0
    return float(np.corrcoef(driver, output)[0, 1])


def blink_ratio(driver: np.ndarray, output: np.ndarray) -> float | None:
    """(output open level - minimum) / (driver open level - minimum); None when the
    driver does not blink."""
    if len(driver) == 0:
        return None
    open_driver = np.percentile(driver, OPEN_PERCENTILE)
    depth_driver = open_driver - driver.min()
    if depth_driver < BLINK_MIN_DEPTH * open_driver:
        return None
    return float((np.percentile(output, OPEN_PERCENTILE) - output.min()) / depth_driver)


def compare(
    driving: Path,
    output: Path,
    source: Path | None = None,
    same_identity: bool = False,
    identity_every: int = 10,
    identity: IdentityModel | None = None,
    max_frames: int | None = None,
    output_per_frame: bool = False,
) -> dict:
    """Measure how ``output`` follows ``driving``; see the module docstring.
    ``output_per_frame``: read the output with per-frame detection instead of tracking."""
    if identity is None and source is not None:
        identity = IdentityModel()
    source_image = read_image(source) if source is not None else None
    source_descriptor = None
    if source_image is not None:
        source_descriptor, _ = identity.descriptor(source_image, still_landmarks(source_image))
        if source_descriptor is None:
            log(f"{source}: no face found; no identity distance")
    trackers = LandmarkTracker(), LandmarkTracker(per_frame=output_per_frame)
    frames_index, measures = [], {"driver": {k: [] for k in FRAME_SERIES}, "output": {k: [] for k in FRAME_SERIES}}
    rotations: dict[str, list[np.ndarray]] = {"driver": [], "output": []}
    no_face = {"driving": 0, "output": 0}
    identity_distances, identity_missing, identity_from_landmarks = [], 0, 0
    l1_output, l1_static = [], []
    static = None
    started = time.perf_counter()
    with open_frames(driving) as drv, open_frames(output) as out:
        count = 0
        for index, (frame_d, frame_o) in enumerate(zip(drv, out)):
            if max_frames is not None and index >= max_frames:
                break
            count += 1
            lm_d, lm_o = trackers[0](frame_d), trackers[1](frame_o)
            no_face["driving"] += lm_d is None
            no_face["output"] += lm_o is None
            if lm_d is not None and lm_o is not None:
                frames_index.append(index)
                for who, lm in (("driver", lm_d), ("output", lm_o)):
                    for key, value in face_measures(lm).items():
                        measures[who][key].append(value)
                    rotations[who].append(head_rotation(lm))
            if source_descriptor is not None and index % identity_every == 0:
                d, from_landmarks = identity.descriptor(frame_o, lm_o)
                if d is None:
                    identity_missing += 1
                else:
                    identity_distances.append(float(np.linalg.norm(d - source_descriptor)))
                    identity_from_landmarks += from_landmarks
            if same_identity:
                size = (frame_d.shape[1], frame_d.shape[0])
                if static is None:
                    static = resize(source_image, size)
                l1_output.append(l1(resize(frame_o, size), frame_d))
                l1_static.append(l1(static, frame_d))
        counts = {"driving": drv.frame_count, "output": out.frame_count}
        sizes = {"driving": list(drv.size), "output": list(out.size)}
    for tracker in trackers:
        tracker.close()
    if counts["driving"] != counts["output"] and count != max_frames:
        log(f"frame counts differ: driving {counts['driving']}, output {counts['output']}; compared the first {count}")

    series = {who: {k: np.array(v) for k, v in m.items()} for who, m in measures.items()}
    for who in series:
        angles = relative_head_angles(np.array(rotations[who]).reshape(-1, 3, 3))
        series[who].update({key: angles[:, i] for i, key in enumerate(HEAD_SERIES)})
    result = {
        "driving": str(driving),
        "output": str(output),
        "source": None if source is None else str(source),
        "frames": count,
        "frame_counts": counts,
        "sizes": sizes,
        "compared": len(frames_index),
        "skipped": count - len(frames_index),
        "no_face": no_face,
        "r": {k: pearson(series["driver"][k], series["output"][k]) for k in SERIES},
        "blink_ratio": {k: blink_ratio(series["driver"][k], series["output"][k]) for k in EYES},
        "driver_range": {k: _range(series["driver"][k]) for k in SERIES},
        "output_range": {k: _range(series["output"][k]) for k in SERIES},
        "identity": None,
        "l1": None,
        "seconds": time.perf_counter() - started,
        "frame_index": frames_index,
        "series": {who: {k: v.tolist() for k, v in s.items()} for who, s in series.items()},
    }
    if source_descriptor is not None:
        result["identity"] = {
            "mean": float(np.mean(identity_distances)) if identity_distances else None,
            "max": float(np.max(identity_distances)) if identity_distances else None,
            "frames": len(identity_distances),
            "no_face": identity_missing,
            "landmark_box": identity_from_landmarks,
            "every": identity_every,
        }
    if same_identity:
        result["l1"] = {"output": float(np.mean(l1_output)), "static": float(np.mean(l1_static))}
    return result


def _range(values: np.ndarray) -> float | None:
    return float(values.max() - values.min()) if len(values) else None


def _r_text(result: dict, key: str) -> str:
    """r, with "*" where the driver barely moves (see MIN_DRIVER_RANGE)."""
    small = result["driver_range"][key] is not None and result["driver_range"][key] < MIN_DRIVER_RANGE[key]
    return _fmt(result["r"][key]) + ("*" if small else "")


SMALL_RANGE_NOTE = "* the driver's range is small there: r mostly measures tracking noise"


def targets(result: dict) -> dict[str, bool | None]:
    """Which targets of the "faces" issue ``result`` meets (None: not measured)."""
    passed: dict[str, bool | None] = {}
    for key in TARGETS_R:
        r = result["r"][key]
        passed[f"{key} r"] = None if math.isnan(r) else r >= TARGET_R
    for eye in EYES:
        ratio = result["blink_ratio"][eye]
        passed[f"blink {eye.split('_')[1]}"] = None if ratio is None else ratio >= TARGET_BLINK
    identity = result["identity"]
    passed["identity"] = None if not identity or identity["mean"] is None else identity["mean"] <= TARGET_IDENTITY
    passed["L1"] = None if not result["l1"] else result["l1"]["output"] < result["l1"]["static"]
    return passed


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def print_report(result: dict) -> None:
    counts, sizes = result["frame_counts"], result["sizes"]
    print(f"driving {result['driving']} ({counts['driving']} frames, {sizes['driving'][0]}x{sizes['driving'][1]})")
    print(f"output  {result['output']} ({counts['output']} frames, {sizes['output'][0]}x{sizes['output'][1]})")
    print(
        f"frames compared {result['compared']} of {result['frames']}, skipped {result['skipped']} "
        f"(no face in driving {result['no_face']['driving']}, in output {result['no_face']['output']})"
    )
    print(f"{'measure':<10} {'r':>7} {'target':>7} {'driver range':>13} {'output range':>13}")
    for key in SERIES:
        target = f">={TARGET_R}" if key in TARGETS_R else ""
        unit = " deg" if key in ("yaw", "pitch", "roll") + HEAD_SERIES else ""
        print(
            f"{key:<10} {_r_text(result, key):>7} {target:>7} {_fmt(result['driver_range'][key]):>13} "
            f"{_fmt(result['output_range'][key]):>13}{unit}"
        )
    if any(_r_text(result, key).endswith("*") for key in SERIES):
        print(SMALL_RANGE_NOTE)
    for eye in EYES:
        ratio = result["blink_ratio"][eye]
        print(f"blink {eye.split('_')[1]:<5} ratio {'no blink in the driver' if ratio is None else _fmt(ratio)}")
    identity = result["identity"]
    if identity:
        print(
            f"identity distance to the source: mean {_fmt(identity['mean'])}, max {_fmt(identity['max'])} "
            f"over {identity['frames']} frames (every {identity['every']}th; {identity['no_face']} without a face; "
            f"{identity['landmark_box']} boxed by the face mesh, dlib's detector missed them)"
        )
    if result["l1"]:
        print(
            f"L1 |output - driving| {_fmt(result['l1']['output'], 4)}, still source {_fmt(result['l1']['static'], 4)}"
        )
    passed = targets(result)
    print("targets: " + ", ".join(f"{k} {'-' if v is None else 'pass' if v else 'FAIL'}" for k, v in passed.items()))


def grid_frames(result: dict, evenly: int = 4) -> list[tuple[int, str]]:
    """Frames to show: the driver's widest mouth, its largest |yaw|, and ``evenly``
    evenly spaced ones."""
    chosen: dict[int, str] = {}
    index = result["frame_index"]
    if index:
        driver = result["series"]["driver"]
        chosen[index[int(np.argmax(driver["mouth"]))]] = "max mouth"
        chosen.setdefault(index[int(np.argmax(np.abs(driver["yaw"])))], "max |yaw|")
    for i in np.linspace(0, result["frames"] - 1, evenly).round().astype(int):
        chosen.setdefault(int(i), "")
    return sorted(chosen.items())


def write_grid(driving: Path, output: Path, frames: list[tuple[int, str]], path: Path, cell: int = 256) -> None:
    """Driving frames over output frames, each fitted into a ``cell`` square."""
    wanted = {i for i, _ in frames}
    rows = []
    for video in (driving, output):
        picked = {}
        with open_frames(video) as reader:
            for i, frame in enumerate(reader):
                if i in wanted:
                    picked[i] = frame
                if i >= max(wanted):
                    break
        rows.append(picked)
    canvas = Image.new("RGB", (cell * len(frames), cell * 2), "black")
    draw = ImageDraw.Draw(canvas)
    for column, (i, label) in enumerate(frames):
        for row, picked in enumerate(rows):
            if i not in picked:
                continue
            image = Image.fromarray(picked[i])
            image.thumbnail((cell, cell), Image.BILINEAR)
            x = column * cell + (cell - image.width) // 2
            y = row * cell + (cell - image.height) // 2
            canvas.paste(image, (x, y))
        draw.text((column * cell + 4, 4), f"{i} {label}".strip(), fill="yellow")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot write {type(value)} to JSON")


def write_json(data, path: Path) -> None:
    path.write_text(json.dumps(data, indent=1, default=_json_default, allow_nan=True))


# --------------------------------------------------------------------------------------
# Batch mode: animate the local clips, then measure
# --------------------------------------------------------------------------------------


def animate_command(source: Path, driving: Path, output: Path, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "reanimate", "animate", str(source), str(driving), "-o", str(output)]
    help_text = subprocess.run(command[:4] + ["--help"], capture_output=True, text=True, cwd=REPO).stdout
    quiet = "--no-progress" if "--no-progress" in help_text else "--quiet"
    return command + [quiet, *extra]


def first_frame_png(clip: Path, path: Path) -> Path:
    with open_frames(clip) as reader:
        Image.fromarray(reader.read_frame(0)).save(path)
    return path


def _clips(args) -> list[Path]:
    """``--clips``, or the default local clips."""
    return [Path(c) for c in args.clips.split(",")] if args.clips else DEFAULT_CLIPS


def _workdir(args, stack: contextlib.ExitStack) -> Path:
    """``--workdir`` (made if need be), or a temporary folder that ``stack`` removes."""
    workdir = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def run_batch(args) -> list[dict]:
    extra = shlex.split(args.animate_args or "")
    identity = IdentityModel()
    with contextlib.ExitStack() as stack:
        workdir = _workdir(args, stack)
        results = []
        for clip in _clips(args):
            sources = [
                ("portrait", Path(args.portrait), False),
                ("self", first_frame_png(clip, workdir / f"{clip.stem}_first.png"), True),
            ]
            for kind, source, same_identity in sources:
                output = workdir / f"{clip.stem}_{kind}.mp4"
                command = animate_command(source, clip, output, extra)
                log(f"{clip.name} / {kind}: {shlex.join(command[1:])}")
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
                seconds = time.perf_counter() - started
                row = {"clip": clip.name, "kind": kind, "animate_seconds": seconds}
                if done.returncode != 0:
                    lines = (done.stderr or done.stdout).strip().splitlines() or ["(no message)"]
                    row["error"] = lines[-1]
                    log(f"  animate failed: {row['error']}")
                    results.append(row)
                    continue
                row.update(compare(clip, output, source, same_identity, args.identity_every, identity, args.max_frames))
                print_report(row)
                print()
                if args.grid:
                    grid = Path(args.grid)
                    grid = grid.with_name(f"{grid.stem}_{clip.stem}_{kind}{grid.suffix or '.png'}")
                    write_grid(clip, output, grid_frames(row, args.grid_frames), grid)
                    log(f"  grid {grid}")
                results.append(row)
    print_table(results)
    print_summary(results)
    return results


def resampled_copy(clip: Path, path: Path, scale: float = 0.75) -> Path:
    """``clip`` with each frame resized to ``scale`` and back (bilinear), written by
    reanimate's H.264 writer: the driver with no motion of its own."""
    with open_frames(clip) as frames, open_writer(path, frames.fps) as writer:
        for frame in frames:
            h, w = frame.shape[:2]
            small = resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))))
            writer.write(resize(small, (w, h)))
    return path


def noise_floor(args) -> list[dict]:
    """``--noise-floor``: each clip against its resampled, re-encoded copy."""
    results = []
    with contextlib.ExitStack() as stack:
        workdir = _workdir(args, stack)
        for clip in _clips(args):
            copy = resampled_copy(clip, workdir / f"{clip.stem}_resampled.mp4")
            row = {"clip": clip.name, "kind": "resampled copy", "animate_seconds": 0.0}
            row.update(compare(clip, copy, max_frames=args.max_frames))
            results.append(row)
    print_table(results)
    print(
        "r of each clip against a copy of itself (3/4-size resampling and H.264): the most an animation "
        "can show with these trackers."
    )
    return results


def tracker_agreement(args) -> list[dict]:
    """``--tracker-agreement``: each clip read by tracking against itself read by
    per-frame detection: how far MediaPipe's two modes agree on the same video."""
    results = []
    for clip in _clips(args):
        row = {"clip": clip.name, "kind": "per-frame", "animate_seconds": 0.0}
        row.update(compare(clip, clip, max_frames=args.max_frames, output_per_frame=True))
        results.append(row)
    print_table(results)
    print(
        "r of each clip read by MediaPipe's tracking mode against the same clip read by per-frame detection "
        "(what reanimate animate uses on driving frames)."
    )
    return results


def print_table(results: list[dict]) -> None:
    header = [
        "clip",
        "source",
        "frames",
        "skip",
        "r head yaw",
        "r head roll",
        "r mouth",
        "r yaw img",
        "r roll img",
        "r eyeR",
        "r eyeL",
        "blinkR",
        "blinkL",
        "id mean",
        "id max",
        "L1 out",
        "L1 still",
        "anim s",
    ]
    rows = []
    for res in results:
        if "error" in res:
            rows.append([res["clip"], res["kind"], "error: " + res["error"]])
            continue
        identity, l1s = res["identity"] or {}, res["l1"] or {}
        blink = [("no blink" if res["blink_ratio"][e] is None else _fmt(res["blink_ratio"][e], 2)) for e in EYES]
        rows.append(
            [
                res["clip"],
                res["kind"],
                str(res["frames"]),
                str(res["skipped"]),
                *[_r_text(res, k) for k in ("head_yaw", "head_roll", "mouth", "yaw", "roll", "eye_right", "eye_left")],
                *blink,
                _fmt(identity.get("mean")),
                _fmt(identity.get("max")),
                _fmt(l1s.get("output"), 4),
                _fmt(l1s.get("static"), 4),
                f"{res['animate_seconds']:.0f}",
            ]
        )
    widths = [max(len(header[i]), *(len(r[i]) for r in rows if len(r) > i)) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    if any("*" in cell for row in rows for cell in row):
        print(SMALL_RANGE_NOTE)
    print()


def print_summary(results: list[dict]) -> None:
    descriptions = {
        "head_yaw r": f"head yaw r >= {TARGET_R}",
        "head_roll r": f"head roll r >= {TARGET_R}",
        "mouth r": f"mouth r >= {TARGET_R}",
        "blink right": f"blink ratio right >= {TARGET_BLINK}",
        "blink left": f"blink ratio left >= {TARGET_BLINK}",
        "identity": f"mean identity distance <= {TARGET_IDENTITY}",
        "L1": "same-identity L1 < still source's",
    }
    measured = [r for r in results if "error" not in r]
    print(f"targets ({len(measured)} of {len(results)} animations measured)")
    for key, description in descriptions.items():
        outcomes = [(f"{r['clip']}/{r['kind']}", targets(r)[key]) for r in measured]
        judged = [(name, ok) for name, ok in outcomes if ok is not None]
        failed = [name for name, ok in judged if not ok]
        verdict = "n/a" if not judged else "PASS" if not failed else "FAIL"
        detail = f"{len(judged) - len(failed)}/{len(judged)}" + (f"; fails: {', '.join(failed)}" if failed else "")
        print(f"  {description:<38} {verdict:<5} {detail}")


# --------------------------------------------------------------------------------------
# Self-check on pairs with known answers
# --------------------------------------------------------------------------------------


def selftest(args) -> int:
    """Known answers: the driving video as its own output (r = 1, blink ratio 1, L1 = 0),
    the same frames upscaled 1.5x into a larger video (the measures are size-free: r
    close to 1), and a still video of the first frame (no correlation, L1 = the still's)."""
    driving = Path(args.driving or DEFAULT_CLIPS[0])
    identity = IdentityModel()
    failures = []

    def check(name: str, ok: bool) -> None:
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
        if not ok:
            failures.append(name)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = first_frame_png(driving, tmp / "first.png")
        with open_frames(driving) as reader:
            frames = [f for _, f in zip(range(args.max_frames or 10**9), reader)]
            fps = reader.fps
        still, larger = tmp / "still.mp4", tmp / "larger.mp4"
        with open_writer(still, fps) as writer:
            for _ in frames:
                writer.write(frames[0])
        with open_writer(larger, fps) as writer:
            for frame in frames:
                height, width = frame.shape[:2]
                writer.write(resize(frame, (width * 3 // 2, height * 3 // 2)))

        print(f"== output = driving ({driving})")
        same = compare(driving, driving, source, True, args.identity_every, identity, args.max_frames)
        print_report(same)
        check("r = 1 for every measure", all(abs(r - 1) < 1e-9 for r in same["r"].values()))
        check(
            "blink ratio = 1 where the driver blinks",
            all(b is None or abs(b - 1) < 1e-9 for b in same["blink_ratio"].values()),
        )
        check(
            "the driver blinks (else the blink check tests nothing)",
            any(b is not None for b in same["blink_ratio"].values()),
        )
        check("L1 = 0", same["l1"]["output"] == 0.0)
        check(f"identity distance <= {TARGET_IDENTITY} (same person)", same["identity"]["mean"] <= TARGET_IDENTITY)

        print(f"\n== output = driving upscaled 1.5x ({larger.name})")
        up = compare(driving, larger, source, True, args.identity_every, identity, args.max_frames)
        print_report(up)
        check(
            "r >= 0.95 for yaw, roll, head yaw, head roll, mouth, eyes",
            all(
                up["r"][k] >= 0.95
                for k in ("yaw", "roll", "mouth", "eye_right", "eye_left") + HEAD_SERIES
                if k != "head_pitch"
            ),
        )
        check("blink ratio within 0.9-1.1", all(b is None or 0.9 <= b <= 1.1 for b in up["blink_ratio"].values()))
        check("L1 small (< 0.02, resampling only)", up["l1"]["output"] < 0.02)

        print(f"\n== output = a still of the first frame ({still.name})")
        flat = compare(driving, still, source, True, args.identity_every, identity, args.max_frames)
        print_report(flat)
        # Tracking drift on a still moves the landmarks a little; Pearson r ignores scale, so
        # slow drift can correlate with the driver by chance. The ranges tell the story.
        check(f"r < {TARGET_R} for yaw, roll, mouth", all(flat["r"][k] < TARGET_R for k in TARGETS_R))
        check(
            "output ranges < 15% of the driver's for yaw, roll, mouth",
            all(flat["output_range"][k] < 0.15 * flat["driver_range"][k] for k in TARGETS_R),
        )
        check("blink ratio < 0.3", all(b is None or b < 0.3 for b in flat["blink_ratio"].values()))
        check(
            "L1 close to the still source's (H.264 re-encoding only)",
            abs(flat["l1"]["output"] - flat["l1"]["static"]) < 0.01,
        )
        check("targets fail for the still", targets(flat)["mouth r"] is False and targets(flat)["L1"] is False)
    print(f"\nselftest: {'all checks passed' if not failures else f'{len(failures)} FAILED'}")
    return 1 if failures else 0


# --------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--run", action="store_true", help="animate the clips (--clips) and measure them")
    mode.add_argument("--selftest", action="store_true", help="check the measures on pairs with known answers")
    mode.add_argument(
        "--noise-floor",
        action="store_true",
        help="each clip (--clips) against its resampled, re-encoded copy: the measures' own limit",
    )
    mode.add_argument(
        "--tracker-agreement",
        action="store_true",
        help="each clip (--clips) read by tracking against per-frame detection",
    )
    p.add_argument("--source", help="source image (for the identity distance, and the still-source L1)")
    p.add_argument("--driving", help="driving video (selftest: default d10.mp4)")
    p.add_argument("--output", help="output video of the animation")
    p.add_argument(
        "--same-identity",
        action="store_true",
        help="the source is a frame of the driving video: also compute the reconstruction L1",
    )
    p.add_argument("--json", help="write every number (and the per-frame series) to this JSON file")
    p.add_argument(
        "--grid", help="PNG of driving frames over output frames (--run: one per animation, named after this path)"
    )
    p.add_argument(
        "--grid-frames",
        type=int,
        default=4,
        help="evenly spaced frames in the grid besides max mouth and max |yaw| (default 4)",
    )
    p.add_argument("--identity-every", type=int, default=10, help="identity of every k-th output frame (default 10)")
    p.add_argument("--max-frames", type=int, help="compare only the first N frames")
    p.add_argument("--native-log", action="store_true", help="keep MediaPipe's native log lines on stderr")
    p.add_argument(
        "--clips",
        help=f"--run, --noise-floor: comma-separated driving clips (default {', '.join(c.name for c in DEFAULT_CLIPS)} "
        f"in {MEDIA})",
    )
    p.add_argument("--portrait", default=str(DEFAULT_PORTRAIT), help="--run: the portrait source (default %(default)s)")
    p.add_argument("--workdir", help="--run, --noise-floor: keep the videos here (default: a temporary folder)")
    p.add_argument("--animate-args", help='--run: extra options for reanimate animate, e.g. "--smooth one-euro"')
    args = p.parse_args(argv)
    if not (args.run or args.selftest or args.noise_floor or args.tracker_agreement) and not (
        args.driving and args.output
    ):
        p.error("give --driving and --output (and usually --source), or --run, or --selftest")
    if args.same_identity and not args.source:
        p.error("--same-identity needs --source")
    if args.identity_every < 1:
        p.error("--identity-every must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.native_log:
        silence_native_stderr()
    if args.selftest:
        return selftest(args)
    if args.run:
        results = run_batch(args)
    elif args.noise_floor:
        results = noise_floor(args)
    elif args.tracker_agreement:
        results = tracker_agreement(args)
    else:
        results = compare(
            Path(args.driving),
            Path(args.output),
            Path(args.source) if args.source else None,
            args.same_identity,
            args.identity_every,
            max_frames=args.max_frames,
        )
        print_report(results)
        if args.grid:
            write_grid(Path(args.driving), Path(args.output), grid_frames(results, args.grid_frames), Path(args.grid))
            log(f"grid {args.grid}")
    if args.json:
        write_json(results, Path(args.json))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
