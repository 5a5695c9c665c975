"""``reanimate make-heads``: synthetic talking-head datasets with exact ground truth.

On disk (frame folders in the official FOMM layout, so ``train``, ``reconstruct`` and
``evaluate`` read ``train/`` and ``test/`` unchanged)::

    OUT/heads.json                        config, camera, format description, listing
    OUT/train/head_00000/00000.png ...    RGB frames
    OUT/train/head_00000.flow.npz         flow (T, H, W, 2), visible (T, H, W): into frame 0
                                          (the make-synthetic format; data.synthetic.load_flow)
    OUT/train/head_00000.truth.npz        per-frame truth (see TRUTH below)
    OUT/test/...                          the same, stronger motion (the "test" profile)
    OUT/pairs/pair_00000/source.png       --pairs: identity A, neutral expression
    OUT/pairs/pair_00000/driving/         identity B talking and turning
    OUT/pairs/pair_00000/target/          the ground-truth output: A with B's motion,
                                          relative to B's first frame (FOMM's relative transfer)
    OUT/pairs/pair_00000/truth.npz        source_*, driving_*, target_* truth
    OUT/subject/{train,test}/             --subject: one identity; test has unseen expressions
    OUT/subject/{train,test}.truth.npz    truth, with per-frame head masks
    OUT/subject/camera.json               intrinsics and image size

Every video depends only on (seed, part, index), so growing one part leaves the others'
bytes unchanged; the same config gives the same bytes. The dataset is built in a hidden
sibling folder and renamed at the end.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from reanimate.errors import InputError, ReanimateError
from reanimate.heads.appearance import sample_appearance, sample_lighting
from reanimate.heads.model import load_head_model
from reanimate.heads.rig import ICT_TO_OBJECT, build_rig, shape_vertices
from reanimate.heads.scene import Backdrop, RenderedFrames, default_camera, render_frames
from reanimate.heads.trajectories import (
    EXPRESSION_NAMES,
    PROFILES,
    HeadTrajectory,
    neutral_trajectory,
    relative_trajectory,
    sample_trajectory,
)
from reanimate.io.files import atomic_path, check_output_folder, write_npz

logger = logging.getLogger(__name__)

__all__ = ["HeadsConfig", "METADATA_NAME", "TRUTH_SUFFIX", "load_truth", "make_heads", "truth_path", "write_flow"]

FORMAT_NAME = "reanimate-heads"
FORMAT_VERSION = 1
METADATA_NAME = "heads.json"
TRUTH_SUFFIX = ".truth.npz"
FLOW_SUFFIX = ".flow.npz"
_CHUNK = 16  # frames rendered per call
# Source poses of the --pairs set: mild, so the driving motion is what matters.
_SOURCE_POSE = (12.0, 6.0, 5.0)


@dataclass(frozen=True)
class HeadsConfig:
    """What ``make-heads`` writes (see the module docstring)."""

    size: int = 256
    frames: int = 64
    fps: float = 25.0
    train: int = 40
    test: int = 10
    pairs: int = 0
    pairs_profile: str = "train"
    subject: bool = False
    subject_frames: tuple[int, int] = (300, 150)
    seed: int = 0
    orthographic: bool = False
    moving_background: float = 0.3
    identity_spread: float = 1.0
    flow_dtype: str = "float16"

    def validate(self) -> None:
        problems = []
        if not 64 <= self.size <= 512:
            problems.append(f"size must be 64..512, got {self.size}")
        if self.frames < 2 or min(self.subject_frames) < 2:
            problems.append("videos need at least 2 frames")
        if min(self.train, self.test, self.pairs) < 0:
            problems.append("counts must not be negative")
        if self.train + self.test + self.pairs == 0 and not self.subject:
            problems.append("nothing to write: all counts are 0 and no --subject")
        if self.pairs_profile not in PROFILES:
            problems.append(f"unknown motion profile {self.pairs_profile!r} (choose from {', '.join(PROFILES)})")
        if not 0 <= self.moving_background <= 1:
            problems.append("moving_background is a fraction in [0, 1]")
        if self.flow_dtype not in ("float16", "float32"):
            problems.append("flow_dtype is float16 or float32")
        if problems:
            raise ReanimateError("make-heads: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return {**asdict(self), "subject_frames": list(self.subject_frames)}


def truth_path(video: str | os.PathLike) -> Path:
    """``train/head_00000`` -> ``train/head_00000.truth.npz``."""
    video = Path(video)
    return video.with_name(video.name + TRUTH_SUFFIX)


def load_truth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``.truth.npz`` (masks unpacked to ``(T, H, W)`` bool).

    Raises:
        InputError: naming the file when it is missing or damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ground truth not found (written by `reanimate make-heads`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # zipfile / numpy report damage in many ways
        raise InputError(path, f"corrupt ground-truth file ({type(exc).__name__}: {exc})") from None
    for name in [n for n in arrays if n.endswith("mask_bits")]:
        shape = tuple(arrays.pop(name.replace("mask_bits", "mask_shape")))
        bits = arrays.pop(name)
        arrays[name.replace("mask_bits", "mask")] = (
            np.unpackbits(bits)[: int(np.prod(shape))].reshape(shape).astype(bool)
        )
    return arrays


# ---------------------------------------------------------------------------------------
# One identity, one clip.


@dataclass
class _Person:
    identity: np.ndarray
    appearance: object
    lighting: object
    backdrop: Backdrop

    @classmethod
    def sample(cls, config: HeadsConfig, rng: np.random.Generator, moving: bool) -> _Person:
        model = load_head_model()
        identity = (rng.standard_normal(model.num_identities) * config.identity_spread).astype(np.float32)
        return cls(identity, sample_appearance(model, rng), sample_lighting(rng), Backdrop.sample(rng, moving))


def _canonical_landmarks(identity: np.ndarray) -> np.ndarray:
    """The 68 landmarks of a person's neutral head, object frame (cm) ``(68, 3)``."""
    model = load_head_model()
    shape = shape_vertices(model, build_rig(model), torch.from_numpy(identity)[None], torch.zeros(1, 53))
    return (shape[0, model.landmarks] @ ICT_TO_OBJECT).numpy()


def _render_clip(person: _Person, camera, trajectory: HeadTrajectory, folder: Path | None, with_flow: bool):
    """Render a whole clip in chunks, writing PNG frames into ``folder`` (if given).

    Returns ``(truth arrays, flow, visible, first frame)``.
    """
    model = load_head_model()
    count = len(trajectory)
    first = render_frames(model, person.identity, person.appearance, person.lighting, person.backdrop, camera,
                          trajectory, slice(0, 1))  # fmt: skip
    reference = first.reference(0, 0) if with_flow else None
    landmarks, landmarks3d, masks, flows, visibles = [], [], [], [], []
    if folder is not None:
        folder.mkdir(parents=True)
    for start in range(0, count, _CHUNK):
        part: RenderedFrames = render_frames(
            model, person.identity, person.appearance, person.lighting, person.backdrop, camera,
            trajectory, slice(start, min(start + _CHUNK, count)), reference,
        )  # fmt: skip
        for offset, frame in enumerate(part.rgb):
            if folder is not None:
                file = folder / f"{start + offset:05d}.png"
                if not cv2.imwrite(str(file), np.ascontiguousarray(frame[..., ::-1])):
                    raise InputError(file, "cannot write frame (is the disk full or read-only?)")
        landmarks.append(part.landmarks)
        landmarks3d.append(part.landmarks3d)
        masks.append(part.mask)
        if with_flow:
            flows.append(part.flow)
            visibles.append(part.visible)
    mask = np.concatenate(masks)
    truth = {
        **{k: v for k, v in trajectory.to_arrays().items()},
        "landmarks": np.concatenate(landmarks).astype(np.float32),
        "landmarks3d": np.concatenate(landmarks3d).astype(np.float32),
        "mask_bits": np.packbits(mask.ravel()),
        "mask_shape": np.array(mask.shape),
        "identity": person.identity,
        "canonical_landmarks": _canonical_landmarks(person.identity).astype(np.float32),
        "camera": np.asarray(json.dumps(camera.to_dict())),
        "expression_names": np.asarray(EXPRESSION_NAMES),
    }
    flow = np.concatenate(flows) if with_flow else None
    visible = np.concatenate(visibles) if with_flow else None
    return truth, flow, visible, first.rgb[0]


def write_flow(path: Path, flow: np.ndarray, visible: np.ndarray, dtype: str = "float16") -> None:
    """A ``.flow.npz`` in make-synthetic's format (``data.synthetic.load_flow`` reads it).

    Deflate level 1: float16 flow shrinks by ~45 % at 256x256 and higher levels cost more
    time than they save space (storing it uncompressed saved no measurable time).
    """
    write_npz(path, {"flow": flow.astype(dtype), "visible": visible}, compresslevel=1)


def _prefixed(prefix: str, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    shared = ("camera", "expression_names")
    return {(name if name in shared else f"{prefix}_{name}"): value for name, value in truth.items()}


# ---------------------------------------------------------------------------------------
# The jobs (top-level functions, so worker processes can run them).

_PART_CODES = {"train": 0, "test": 1, "pairs": 2, "subject": 3}


def _video_job(config: HeadsConfig, build: Path, split: str, index: int) -> dict:
    rng = np.random.default_rng([config.seed, _PART_CODES[split], index])
    camera = default_camera(config.size, config.orthographic)
    person = _Person.sample(config, rng, moving=rng.random() < config.moving_background)
    trajectory = sample_trajectory(rng, config.frames, config.fps, split)
    name = f"head_{index:05d}"
    folder = build / split / name
    truth, flow, visible, _ = _render_clip(person, camera, trajectory, folder, with_flow=True)
    write_flow(folder.with_name(name + FLOW_SUFFIX), flow, visible, config.flow_dtype)
    write_npz(truth_path(folder), truth)
    return {
        "name": name,
        "moving_background": bool(np.any(person.backdrop.velocity)),
        "max_abs_yaw": round(float(np.abs(trajectory.yaw).max()), 2),
        "max_jaw_open": round(float(trajectory.expression[:, EXPRESSION_NAMES.index("jawOpen")].max()), 3),
        "visible_fraction": round(float(visible.mean()), 4),
    }


def _source_trajectory(rng: np.random.Generator, fps: float) -> HeadTrajectory:
    source = neutral_trajectory(1, fps)
    yaw, pitch, roll = (rng.uniform(-bound, bound, 1).astype(np.float32) for bound in _SOURCE_POSE)
    return HeadTrajectory(yaw, pitch, roll, source.scale, source.translation, source.expression, source.gaze, fps)


def _pair_job(config: HeadsConfig, build: Path, split: str, index: int) -> dict:
    rng = np.random.default_rng([config.seed, _PART_CODES["pairs"], index])
    camera = default_camera(config.size, config.orthographic)
    person_a = _Person.sample(config, rng, moving=False)
    person_b = _Person.sample(config, rng, moving=rng.random() < config.moving_background)
    driving = sample_trajectory(rng, config.frames, config.fps, config.pairs_profile)
    source = _source_trajectory(rng, config.fps)
    target = relative_trajectory(source, driving)
    folder = build / "pairs" / f"pair_{index:05d}"
    folder.mkdir(parents=True)
    source_truth, _, _, source_image = _render_clip(person_a, camera, source, None, with_flow=False)
    if not cv2.imwrite(str(folder / "source.png"), np.ascontiguousarray(source_image[..., ::-1])):
        raise InputError(folder / "source.png", "cannot write frame (is the disk full or read-only?)")
    driving_truth, _, _, _ = _render_clip(person_b, camera, driving, folder / "driving", with_flow=False)
    target_truth, _, _, _ = _render_clip(person_a, camera, target, folder / "target", with_flow=False)
    write_npz(
        folder / "truth.npz",
        {
            **_prefixed("source", source_truth),
            **_prefixed("driving", driving_truth),
            **_prefixed("target", target_truth),
        },
    )
    return {"name": folder.name, "max_abs_yaw": round(float(np.abs(target.yaw).max()), 2)}


def _subject_job(config: HeadsConfig, build: Path, split: str, index: int) -> dict:
    rng = np.random.default_rng([config.seed, _PART_CODES["subject"], 0])
    camera = default_camera(config.size, config.orthographic)
    person = _Person.sample(config, rng, moving=False)
    folder = build / "subject"
    folder.mkdir(exist_ok=True)
    frames = config.subject_frames[0 if split == "train" else 1]
    clip_rng = np.random.default_rng([config.seed, _PART_CODES["subject"], 1 + (split == "test")])
    trajectory = sample_trajectory(clip_rng, frames, config.fps, f"subject_{split}")
    truth, _, _, _ = _render_clip(person, camera, trajectory, folder / split, with_flow=False)
    write_npz(truth_path(folder / split), truth)
    (folder / "camera.json").write_text(json.dumps(camera.to_dict(), indent=1) + "\n")
    return {"name": f"subject/{split}", "frames": frames}


# ---------------------------------------------------------------------------------------


def make_heads(
    out: str | os.PathLike,
    config: HeadsConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic talking-head dataset into ``out`` (layout in the module docstring).

    Args:
        workers: processes rendering videos in parallel (1: in this process).
        overwrite: replace a non-empty ``out``.

    Raises:
        InputError: ``out`` is a file, or a non-empty folder without ``overwrite``.
        ReanimateError: a config value is out of range.
    """
    config = config or HeadsConfig()
    config.validate()
    out = Path(out)
    check_output_folder(out, overwrite)
    load_head_model()  # a missing or damaged model file fails here, before any work

    # (function, split, index, listing key)
    jobs = [(_video_job, "train", i, "train") for i in range(config.train)]
    jobs += [(_video_job, "test", i, "test") for i in range(config.test)]
    jobs += [(_pair_job, "pairs", i, "pairs") for i in range(config.pairs)]
    jobs += [(_subject_job, split, 0, "subject") for split in ("train", "test") if config.subject]
    frames = (
        config.frames * (config.train + config.test + 2 * config.pairs) + sum(config.subject_frames) * config.subject
    )
    started = time.perf_counter()
    listing: dict[str, list[dict]] = {"train": [], "test": [], "pairs": [], "subject": []}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create the output folder ({exc.strerror or exc})") from None
    with atomic_path(out, directory=True) as build:
        for split in ("train", "test"):
            (build / split).mkdir()
        with tqdm(total=len(jobs), unit="video", desc="make-heads", disable=not progress) as bar:
            if workers > 1:
                with ProcessPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                    futures = [(key, pool.submit(job, config, build, split, i)) for job, split, i, key in jobs]
                    for key, future in futures:
                        listing[key].append(future.result())
                        bar.update(1)
            else:
                for job, split, i, key in jobs:
                    listing[key].append(job(config, build, split, i))
                    bar.update(1)
        seconds = time.perf_counter() - started
        metadata = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": config.to_dict(),
            "camera": default_camera(config.size, config.orthographic).to_dict(),
            "profiles": {name: profile.to_dict() for name, profile in PROFILES.items()},
            "model": "ICT-FaceKit light (MIT licence, (c) 2020 USC Institute for Creative Technologies)",
            "videos": {k: v for k, v in listing.items() if v},
            "description": _FORMAT_DESCRIPTION,
        }
        (build / METADATA_NAME).write_text(json.dumps(metadata, indent=1) + "\n")
    logger.info("wrote %d frames to %s in %.1f s (%.1f frames/s)", frames, out, seconds, frames / max(seconds, 1e-9))
    return out


_FORMAT_DESCRIPTION = {
    "frames": "<split>/<name>/<frame:05d>.png: RGB frames, the official FOMM frame-folder layout",
    "flow": "<split>/<name>.flow.npz: flow (T, H, W, 2) backward map of each pixel into frame 0, normalised "
    "coordinates x first, -1 and 1 the corner pixel centres (grid_sample align_corners=True); visible (T, H, W)",
    "truth": "<name>.truth.npz: yaw, pitch, roll (T,) degrees (x right, y down, z away from the camera; yaw > 0 "
    "turns the face to the image's right, pitch > 0 up, roll > 0 clockwise); scale (T,); translation (T, 3) cm "
    "added to the head's base placement; expression (T, 53) ARKit-named weights (expression_names); gaze (T, 2) "
    "eyeball yaw, pitch degrees; identity (50,) ICT-FaceKit identity coefficients; landmarks (T, 68, 2) pixels "
    "and landmarks3d (T, 68, 3) camera cm of the Multi-PIE 68 points; canonical_landmarks (68, 3) the neutral "
    "head's landmarks in the object frame; mask_bits/mask_shape the packed (T, H, W) head mask; camera (JSON)",
    "pairs": "pairs/<pair>/source.png (identity A, neutral), driving/ (identity B), target/ (A with B's motion "
    "relative to B's first frame: rotation R_t R_0^T R_s, scale s_s s_t / s_0, translation, expression and gaze "
    "differences added); truth.npz with source_*, driving_*, target_* arrays",
    "subject": "subject/train, subject/test: one identity under fixed light; test has expressions the training "
    "clip never shows; camera.json: intrinsics",
}
