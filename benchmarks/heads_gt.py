#!/usr/bin/env python
"""Hand-run benchmark: a face animation against exact ground truth (not part of the test suite).

    python benchmarks/heads_gt.py --data DIR [--pairs N] [--out DIR | --keep] [--json FILE]
        [--baselines-only] [any `reanimate animate` option, e.g. --model fomm --checkpoint C]

``DIR`` is a ``reanimate make-heads DIR --pairs N`` set: each ``pairs/pair_*`` holds a
source image (identity A, neutral), driving frames (identity B talking and turning), the
ground-truth output ``target/`` (A with B's motion relative to B's first frame) and
``truth.npz``. Every pair is animated by ``python -m reanimate animate SOURCE DRIVING -o
OUT/animate/PAIR <options> -q`` (a folder of PNG frames; options this script does not know
go to animate; the default model is the zero-shot MediaPipe landmark animator) and
compared, frame by frame, with ``target/``. In the same run, as rows of the same table:

* ``still``: the source image repeated for every frame (right identity, no motion);
* ``driver``: the driving frames themselves (wrong identity, perfect motion);
* ``target``: the ground-truth frames: its pixel measures are trivially perfect, its
  landmark measures are the *floor* of the detector and of the pose estimator (MediaPipe
  on perfect frames against the exact points and angles).

Measures (per frame, then the mean over all frames of all pairs; landmark measures over
the frames where MediaPipe finds a face):

* ``L1``: mean ``|output - target|`` in grey levels (0..255) over pixels and channels;
  ``PSNR``: ``10 log10(255^2 / MSE)`` dB, capped at 100 dB (an identical frame);
  ``SSIM``: Wang et al. (2004), the project's constants and "valid" border (11x11 Gaussian
  window, sigma 1.5; the mean equals ``reanimate.evaluation.metrics.ssim``). Each also
  inside the target's head mask (``head`` columns): L1 and MSE averaged over the mask's
  pixels; SSIM as the mean of the SSIM map over the mask's pixels (a map pixel is the
  window centred there, so the mask is cut by 5 px at the border).
* ``det``: fraction of frames where MediaPipe's face mesh (``reanimate.faces.FaceMesh``,
  a fresh detection on every frame, as ``reanimate animate`` reads driving frames) finds
  a face.
* ``lmk px``: mean 2-D distance between the detected landmarks, mapped to the 68
  Multi-PIE points (``reanimate.faces.multipie.MEDIAPIPE_68``, one mesh point per Multi-PIE point),
  and the exact ``target_landmarks``; the JSON has it per part (jaw, brows, nose, eyes,
  lips).
* ``yaw``, ``pitch``, ``roll``: mean absolute error in degrees of the head pose that
  ``reanimate.faces.head_pose`` reads from the output's landmarks against the target's
  true pose; ``geo``: the geodesic angle between the two rotations. ``motion``: the
  geodesic angle between the head's rotation since frame 0, ``R_t R_0^T``, read from the
  output and the true one of the target. The absolute angles charge the driver for
  starting from B's pose rather than A's, and every row for the estimator's fixed bias
  (on these heads it reads pitch about 5 degrees too high); ``motion`` is free of both
  and is where the driver's perfect motion shows.
* ``mouth``: ``|m(output) - m(target)|``, m the mean gap of the three facing inner-lip
  pairs (61-67, 62-66, 63-65) over the outer eye corners' distance (36-45); ``eye``:
  the same for the lid gap (37-41, 38-40; 43-47, 44-46) over each eye's width (36-39;
  42-45), both eyes averaged. The output's measure comes from its detected landmarks,
  the target's from the exact ones; all distances in the image plane.
* ``id``: identity drift, the output's face shape against A's as MediaPipe sees it. The
  21 rigid points (``RIGID_68``: upper jaw contour 0-3 and 13-16, nose 27-35, eye
  corners 36, 39, 42, 45; not the chin, lips or brows, which move with the expression) of
  the output's detected 3-D landmarks (x, y pixels, MediaPipe's z in the x scale) are
  put onto the same points detected on the target frame by the least-squares 3-D
  similarity (``reanimate.geometry.fit_similarity``: rotation, scale, translation, which
  take out pose and size); ``id`` is the RMS residual over the target's 3-D inter-ocular
  distance, x100 (percent of the eye distance). Detected against detected, so that the
  detector's fixed disagreement with the Multi-PIE points cancels; the ``target`` row is
  0 by definition, and the still source (A at another pose and expression) shows what a
  right identity scores. Aligned to the exact 3-D landmarks instead, that disagreement
  (about 7 % of the eye distance, the same for A and B) hides the identity: still 6.8,
  driver 6.6, target 7.0 on 8 pairs.

Timing: ``s/pair`` is the wall time of one animate process (start-up included) per pair;
the footer gives the measuring time and the CPU (``lscpu``).

Bad input (a missing folder, not a make-heads set, no ``pairs/``) prints one line and
exits with code 2. Outputs go to a temporary folder removed at the end, unless ``--out``
(kept there) or ``--keep`` (the temporary folder is kept and named).
"""

from __future__ import annotations

import os

# MediaPipe's C++ logging reads these when it is imported.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _heads_metrics as hm  # noqa: E402
from _machine import cpu_model  # noqa: E402

from reanimate.errors import InputError, ReanimateError  # noqa: E402
from reanimate.io import list_frame_files, read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASET_FORMAT = "reanimate-heads"  # heads.json's "format"
BASELINES = ("still", "driver")
FLOOR = "target"
MAKE_PAIRS = "make one with `reanimate make-heads OUT --pairs N`"

#: (key, column header, format) of the printed table; the JSON has every key.
COLUMNS = (
    ("detected", "det", "{:.0%}"),
    ("l1", "L1", "{:.2f}"),
    ("l1_mask", "L1 head", "{:.2f}"),
    ("psnr", "PSNR", "{:.2f}"),
    ("psnr_mask", "PSNR head", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("ssim_mask", "SSIM head", "{:.3f}"),
    ("landmarks", "lmk px", "{:.2f}"),
    ("yaw", "yaw", "{:.2f}"),
    ("pitch", "pitch", "{:.2f}"),
    ("roll", "roll", "{:.2f}"),
    ("geodesic", "geo", "{:.2f}"),
    ("motion", "motion", "{:.2f}"),
    ("mouth", "mouth", "{:.3f}"),
    ("eyes", "eye", "{:.3f}"),
    ("identity", "id", "{:.2f}"),
)
#: Measures reported x100 (a fraction of the inter-ocular distance -> percent).
PERCENT = ("identity",)


# ---------------------------------------------------------------------------------------
# The dataset.


@dataclass
class Pair:
    """One ``pairs/pair_*`` folder, read."""

    folder: Path
    source: np.ndarray  # (H, W, 3) uint8
    driving: np.ndarray  # (T, H, W, 3) uint8
    target: np.ndarray  # (T, H, W, 3) uint8
    truth: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return self.folder.name


def pair_folders(data: Path, limit: int | None = None) -> list[Path]:
    """The pair folders of a make-heads set, sorted; the first ``limit`` of them.

    Raises:
        InputError: naming the path, when ``data`` is missing, not a make-heads set, has no
            pairs, or a pair lacks one of its parts.
    """
    from reanimate.heads.dataset import METADATA_NAME  # imports the renderer: not at start-up

    if not data.exists():
        raise InputError(data, "not found (give a folder written by `reanimate make-heads`)")
    if not data.is_dir():
        raise InputError(data, "is not a folder (give a folder written by `reanimate make-heads`)")
    metadata = data / METADATA_NAME
    try:
        fmt = json.loads(metadata.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != DATASET_FORMAT:
        raise InputError(data, f"not a make-heads dataset (no valid {METADATA_NAME}); {MAKE_PAIRS}")
    pairs_dir = data / "pairs"
    folders = sorted(p for p in pairs_dir.glob("pair_*") if p.is_dir()) if pairs_dir.is_dir() else []
    if not folders:
        raise InputError(data, f"has no pairs/ (or it is empty); {MAKE_PAIRS}")
    for folder in folders[:limit]:
        for part in ("source.png", "driving", "target", "truth.npz"):
            if not (folder / part).exists():
                raise InputError(folder, f"incomplete pair: {part} is missing")
    return folders[:limit]


def read_frames(folder: Path) -> np.ndarray:
    """The frames of a folder as ``(T, H, W, 3)`` uint8."""
    files = list_frame_files(folder)
    if not files:
        raise InputError(folder, "no frame images")
    return np.stack([read_image(file) for file in files])


def read_pair(folder: Path) -> Pair:
    from reanimate.heads.dataset import load_truth

    pair = Pair(
        folder,
        read_image(folder / "source.png"),
        read_frames(folder / "driving"),
        read_frames(folder / "target"),
        load_truth(folder / "truth.npz"),
    )
    count = len(pair.target)
    if len(pair.driving) != count or len(pair.truth["target_landmarks"]) != count:
        raise InputError(folder, "driving/, target/ and truth.npz have different frame counts")
    return pair


# ---------------------------------------------------------------------------------------
# The outputs.


def animate_command(pair: Path, output: Path, options: list[str]) -> list[str]:
    return [sys.executable, "-m", "reanimate", "animate", str(pair / "source.png"), str(pair / "driving"),
            "-o", str(output), *options, "-q"]  # fmt: skip


def run_animate(pair: Path, output: Path, options: list[str]) -> float:
    """Animate one pair into the frame folder ``output``; returns the wall time in seconds.

    Raises:
        ReanimateError: animate failed (its last line of output in the message).
    """
    command = animate_command(pair, output, options)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no message)"]
        raise ReanimateError(f"{shlex.join(command[1:])} failed: {lines[-1]}")
    return seconds


def fit_frames(frames: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``frames`` cut to the target's frame count and resized to its size (notes say so)."""
    notes = []
    count = min(len(frames), len(target))
    if len(frames) != len(target):
        notes.append(f"{len(frames)} frames for {len(target)} target frames: the first {count} compared")
    frames = frames[:count]
    height, width = target.shape[1:3]
    if frames.shape[1:3] != (height, width):
        notes.append(f"{frames.shape[2]}x{frames.shape[1]} frames resized to the target's {width}x{height}")
        interpolation = cv2.INTER_AREA if frames.shape[1] > height else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])
    return frames, notes


# ---------------------------------------------------------------------------------------
# Measuring.


def measure(frames: np.ndarray, landmarks: np.ndarray, pair: Pair, target_landmarks: np.ndarray) -> dict:
    """Every per-frame measure of one output video ``(n, H, W, 3)`` (``n <= T``)."""
    n = len(frames)
    per_frame = ("mask", "landmarks", "yaw", "pitch", "roll")
    truth = {f"target_{key}": pair.truth[f"target_{key}"][:n] for key in per_frame}
    values = hm.image_errors(frames, pair.target[:n], truth["target_mask"])
    values.update(hm.face_errors(landmarks, truth, target_landmarks[:n]))
    for key in PERCENT:
        values[key] = 100 * values[key]
    return values


def evaluate_pairs(
    folders: list[Path],
    methods: tuple[str, ...] = (*BASELINES, FLOOR),
    animate_options: list[str] | None = None,
    workdir: Path | None = None,
    progress: bool = True,
) -> dict:
    """Measure ``methods`` (``"animate"``, ``"still"``, ``"driver"``, ``"target"``) on every pair.

    ``"animate"`` runs ``reanimate animate`` with ``animate_options`` into
    ``workdir/animate/<pair>``. Returns ``{"frames": {method: {measure: (N,) all frames of
    all pairs}}, "per_pair": {pair: {method: {measure: mean}}}, "seconds": {method: s},
    "notes": [...]}``; a pair whose animation fails is left out of that method (noted).
    """
    from reanimate.faces import FaceMesh

    frames_of: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in methods}
    per_pair: dict[str, dict] = {}
    seconds = dict.fromkeys(methods, 0.0)
    notes: list[str] = []
    shape = None
    bar = tqdm(total=len(folders) * len(methods), unit="run", disable=not progress)
    with FaceMesh(video=False) as mesh, bar:
        for folder in folders:
            pair = read_pair(folder)
            shape = shape or pair.target.shape[:3]
            target_landmarks = hm.detect_landmarks(pair.target, mesh)
            per_pair[pair.name] = {}
            for method in methods:
                bar.set_description(f"{pair.name} {method}")
                try:
                    frames, landmarks = _output(method, pair, mesh, target_landmarks, animate_options or [], workdir,
                                                seconds)  # fmt: skip
                except ReanimateError as exc:
                    notes.append(f"{pair.name} {method}: {exc}")
                    tqdm.write(f"warning: {notes[-1]}", file=sys.stderr)
                    bar.update(1)
                    continue
                size = frames.shape[2]
                frames, fitted = fit_frames(frames, pair.target)
                notes += [f"{pair.name} {method}: {note}" for note in fitted]
                # landmarks found on frames of another size, in the target's pixels (x, y, z alike)
                landmarks = landmarks * (frames.shape[2] / size)
                values = measure(frames, landmarks[: len(frames)], pair, target_landmarks)
                per_pair[pair.name][method] = {key: _mean(v) for key, v in values.items()}
                for key, value in values.items():
                    frames_of[method].setdefault(key, []).append(value)
                bar.update(1)
    return {
        "frames": {m: {k: np.concatenate(v) for k, v in measures.items()} for m, measures in frames_of.items()},
        "per_pair": per_pair,
        "seconds": seconds,
        "notes": notes,
        "shape": shape,  # (T, H, W) of the first pair
    }


def _output(method, pair, mesh, target_landmarks, options, workdir, seconds) -> tuple[np.ndarray, np.ndarray]:
    """The frames of one method on one pair and their landmarks ``(T, 478, 3)``."""
    count = len(pair.target)
    if method == FLOOR:
        return pair.target, target_landmarks
    if method == "still":
        landmarks = hm.detect_landmarks(pair.source[None], mesh)  # static detection: the same for every copy
        return np.repeat(pair.source[None], count, axis=0), np.repeat(landmarks, count, axis=0)
    if method == "driver":
        return pair.driving, hm.detect_landmarks(pair.driving, mesh)
    assert method == "animate", f"unknown method {method!r}"
    output = workdir / "animate" / pair.name
    output.parent.mkdir(parents=True, exist_ok=True)
    seconds[method] += run_animate(pair.folder, output, options)
    frames = read_frames(output)
    return frames, hm.detect_landmarks(frames, mesh)


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def summarise(result: dict) -> dict[str, dict]:
    """One row per method: the mean of each measure over all frames (NaN-skipping), the
    frame and pair counts, and timings."""
    rows = {}
    for method, measures in result["frames"].items():
        if not measures:
            rows[method] = {"frames": 0, "pairs": 0}
            continue
        frames = len(measures["l1"])
        row = {key: _mean(values) for key, values in measures.items()}
        row.update(frames=frames, pairs=sum(method in p for p in result["per_pair"].values()))
        if method == "animate":
            row["seconds"] = result["seconds"][method]
            row["seconds_per_pair"] = row["seconds"] / max(row["pairs"], 1)
            row["frames_per_second"] = frames / max(row["seconds"], 1e-9)
        rows[method] = row
    return rows


# ---------------------------------------------------------------------------------------
# Report.


def label(method: str, options: list[str]) -> str:
    if method == "animate":
        return "animate" + (f" {shlex.join(options)}" if options else " (landmarks)")
    return {"still": "still source", "driver": "driver", FLOOR: "target (floor)"}[method]


def format_table(rows: dict[str, dict], options: list[str]) -> str:
    header = ["method", *(title for _, title, _ in COLUMNS), "s/pair"]
    body = []
    for method, row in rows.items():
        cells = [label(method, options)]
        for key, _, fmt in COLUMNS:
            value = row.get(key, float("nan"))
            cells.append("-" if not np.isfinite(value) else fmt.format(value))
        cells.append(f"{row['seconds_per_pair']:.1f}" if "seconds_per_pair" in row else "-")
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:  # the method left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value)} to JSON")


# ---------------------------------------------------------------------------------------


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
        epilog="Options this script does not know are passed to `reanimate animate` (see its --help).",
    )
    parser.add_argument("--data", required=True, type=Path, help="a `reanimate make-heads --pairs N` folder")
    parser.add_argument("--pairs", type=int, help="measure only the first N pairs (default: all)")
    parser.add_argument("--out", type=Path, help="keep the animations in this folder (new or empty)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder of the animations")
    parser.add_argument("--json", type=Path, help="also write the table (and per-pair means) to this JSON file")
    parser.add_argument("--baselines-only", action="store_true", help="no animation: only still, driver, target")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args, options = parser.parse_known_args(argv)
    if args.pairs is not None and args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if args.baselines_only and options:
        parser.error(f"--baselines-only runs no animation; unknown options {shlex.join(options)}")
    return args, options


def _workdir(args) -> tuple[Path, bool]:
    """The animations' folder and whether to remove it at the end."""
    if args.out is None:
        return Path(tempfile.mkdtemp(prefix="heads_gt-")), not args.keep
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise InputError(args.out, "exists and is not an empty folder; choose a new --out folder")
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out, False


def main(argv=None) -> int:
    args, options = parse_args(argv)
    try:
        folders = pair_folders(args.data, args.pairs)
        workdir, remove = (None, False) if args.baselines_only else _workdir(args)
    except ReanimateError as exc:
        print(f"heads_gt.py: error: {exc}", file=sys.stderr)
        return 2
    methods = BASELINES + (FLOOR,) if args.baselines_only else ("animate", *BASELINES, FLOOR)
    started = time.perf_counter()
    try:
        result = evaluate_pairs(folders, methods, options, workdir, progress=not args.no_progress)
    except ReanimateError as exc:
        print(f"heads_gt.py: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if workdir is not None and remove:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - started
    frames, height, width = result["shape"]
    rows = summarise(result)
    measuring = wall - sum(result["seconds"].values())
    info = {
        "data": str(args.data),
        "pairs": [f.name for f in folders],
        "frames_per_pair": frames,
        "size": [width, height],
        "animate_options": options,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seconds": wall,
        "measure_seconds": measuring,
    }
    print(f"{len(folders)} pairs x {frames} frames, {width}x{height}, from {args.data}")
    print(format_table(rows, options))
    print(
        f"CPU: {info['cpu']} ({info['cpus']} cores); measuring {measuring:.1f} s, whole run {wall:.1f} s. "
        "L1 in grey levels, PSNR dB, angles degrees, id in % of the eye distance; target row: the detector's floor."
    )
    for note in result["notes"]:
        print(f"note: {note}")
    if workdir is not None and not remove:
        print(f"animations kept in {workdir}")
    failed = [method for method, row in rows.items() if not row["frames"]]
    if failed:
        print(f"heads_gt.py: error: no pair could be measured for {', '.join(failed)} (see the notes)", file=sys.stderr)
    if args.json:
        report = {**info, "methods": rows, "per_pair": result["per_pair"], "notes": result["notes"]}
        args.json.write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
