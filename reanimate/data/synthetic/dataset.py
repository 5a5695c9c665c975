"""The synthetic dataset on disk: frame folders with their ground truth beside them
(:func:`make_synthetic`, :func:`flow_path`, :func:`load_flow`); the layout is in the
docstring of :mod:`reanimate.data.synthetic`."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from reanimate.data.synthetic.config import SyntheticConfig
from reanimate.data.synthetic.render import RenderedVideo, make_video
from reanimate.errors import InputError
from reanimate.io.files import check_output_folder, is_video_path, write_npz

logger = logging.getLogger(__name__)

__all__ = ["FLOW_SUFFIX", "METADATA_NAME", "flow_path", "load_flow", "make_synthetic"]

FORMAT_NAME = "reanimate-synthetic"
FORMAT_VERSION = 1
#: Suffix of the ground-truth file written beside each video folder.
FLOW_SUFFIX = ".flow.npz"
#: Name of the dataset description at the top of the output folder.
METADATA_NAME = "synthetic.json"
SPLITS = ("train", "test")


# ---------------------------------------------------------------------------------------
# Files.


def flow_path(video_path: str | os.PathLike) -> Path:
    """Where the ground truth of a video lives: beside it, ``<name>.flow.npz``.

    ``train/video_00000`` (a frame folder) -> ``train/video_00000.flow.npz``; a video file
    ``clip.mp4`` -> ``clip.flow.npz``.
    """
    path = Path(video_path)
    name = path.stem if is_video_path(path) else path.name
    return path.with_name(name + FLOW_SUFFIX)


def load_flow(video_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the ground truth of a video written by :func:`make_synthetic`.

    Returns:
        ``flow`` float32 ``(T, H, W, 2)`` and ``visible`` bool ``(T, H, W)`` (see
        :func:`render_video`).

    Raises:
        InputError: naming the ``.flow.npz`` file, when it is missing or corrupt.
    """
    path = flow_path(video_path)
    if not path.is_file():
        raise InputError(
            path, "ground-truth flow not found (it is written beside each video by `reanimate make-synthetic`)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            if "flow" not in data or "visible" not in data:
                raise InputError(
                    path,
                    "not a ground-truth flow file (needs arrays 'flow' and "
                    "'visible'; regenerate with `reanimate make-synthetic`)",
                )
            flow = data["flow"].astype(np.float32)
            visible = data["visible"].astype(bool)
    except InputError:
        raise
    except Exception as exc:  # zipfile / numpy report damage in many ways
        raise InputError(path, f"corrupt ground-truth flow file ({type(exc).__name__}: {exc})") from None
    if flow.ndim != 4 or flow.shape[-1] != 2 or visible.shape != flow.shape[:3]:
        raise InputError(
            path,
            f"ground-truth arrays have wrong shapes: flow {flow.shape} (expected "
            f"(T, H, W, 2)), visible {visible.shape} (expected (T, H, W))",
        )
    return flow, visible


def _write_video(folder: Path, video: RenderedVideo, flow_dtype: str) -> None:
    folder.mkdir()
    for index, frame in enumerate(video.frames):
        file = folder / f"{index:05d}.png"
        if not cv2.imwrite(str(file), np.ascontiguousarray(frame[..., ::-1])):
            raise InputError(file, "cannot write frame (is the disk full or read-only?)")
    write_npz(flow_path(folder), {"flow": video.flow.astype(flow_dtype), "visible": video.visible})


def _no_motion_epe(video: RenderedVideo, size: int) -> float:
    """Mean distance (pixels) between the ground truth and the identity map, all frames."""
    identity = np.stack(np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size)), axis=-1)
    return float(np.linalg.norm(video.flow - identity, axis=-1).mean() * (size - 1) / 2)


def _replace_folder(built: Path, out: Path) -> None:
    """Move the finished ``built`` folder to ``out``, replacing what is there."""
    if out.is_dir() and any(out.iterdir()):
        old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
        os.rename(out, old)
        os.rename(built, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if out.is_dir():
            out.rmdir()
        os.rename(built, out)


def _camera_flags(config: SyntheticConfig, split: int, count: int) -> np.ndarray:
    """Exactly ``round(fraction * count)`` camera-motion videos per split, at random."""
    flags = np.zeros(count, bool)
    rng = np.random.default_rng([config.seed, split, 2**31])
    flags[rng.permutation(count)[: round(config.camera_motion_fraction * count)]] = True
    return flags


def make_synthetic(
    out: str | os.PathLike, config: SyntheticConfig | None = None, progress: bool = True, overwrite: bool = False
) -> Path:
    """Generate the synthetic benchmark into ``out`` (layout in the module docstring).

    The dataset is built in a hidden sibling folder and renamed to ``out`` at the end, so
    an interrupted run leaves nothing behind. The same config (seed included) gives
    byte-identical files.

    Args:
        out: output folder; must not exist or be empty, unless ``overwrite``.
        config: dataset parameters (defaults: 200 + 20 videos of 32 frames at 64x64).
        progress: show a progress bar on stderr.
        overwrite: replace a non-empty ``out``.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: ``out`` is a file, or a non-empty folder without ``overwrite``, or
            cannot be written.
        ReanimateError: a config value is out of range.
    """
    config = config or SyntheticConfig()
    config.validate()
    out = Path(out)
    check_output_folder(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        build = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
        build.mkdir()
    except OSError as exc:
        raise InputError(out, f"cannot create the output folder ({exc.strerror or exc})") from None

    started = time.perf_counter()
    counts = {"train": config.num_train, "test": config.num_test}
    listing: dict[str, list[dict]] = {}
    try:
        with tqdm(total=sum(counts.values()), unit="video", desc="make-synthetic", disable=not progress) as bar:
            for split_index, split in enumerate(SPLITS):
                (build / split).mkdir()
                cameras = _camera_flags(config, split_index, counts[split])
                listing[split] = []
                for index in range(counts[split]):
                    # A video depends only on (seed, split, index): growing one split does
                    # not change the videos of the other.
                    rng = np.random.default_rng([config.seed, split_index, index])
                    video = make_video(config, rng, bool(cameras[index]))
                    name = f"video_{index:05d}"
                    _write_video(build / split / name, video, config.flow_dtype)
                    listing[split].append(
                        {
                            "name": name,
                            "camera_motion": video.camera_motion,
                            "puppets": video.num_puppets,
                            "parts": video.num_parts,
                            "no_motion_epe_px": round(_no_motion_epe(video, config.size), 4),
                            "visible_fraction": round(float(video.visible.mean()), 4),
                        }
                    )
                    bar.update(1)
        metadata = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "description": _FORMAT_DESCRIPTION,
            "config": config.to_dict(),
            "videos": listing,
        }
        (build / METADATA_NAME).write_text(json.dumps(metadata, indent=1) + "\n")
        _replace_folder(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    logger.info("wrote %d synthetic videos to %s in %.1f s", sum(counts.values()), out, time.perf_counter() - started)
    return out


_FORMAT_DESCRIPTION = {
    "frames": "<split>/<name>/<frame:05d>.png: RGB frames, the official FOMM frame-folder layout",
    "ground_truth": "<split>/<name>.flow.npz beside each video folder (numpy .npz, deflate)",
    "flow": (
        "(T, H, W, 2) float16/float32: for each pixel centre of frame t, the point of frame 0 "
        "showing the same surface point (backward map into frame 0), normalised coordinates, "
        "x first, -1 and 1 the centres of the corner pixels (grid_sample align_corners=True), "
        "i.e. FOMM's dense 'deformation' with frame 0 as source; frame 0 is the identity"
    ),
    "visible": (
        "(T, H, W) bool: the surface point is also the front-most one at its position in "
        "frame 0 and that position lies within the frame (between the border pixel centres)"
    ),
    "scene": (
        "textured background plane and articulated puppets of rigid parts (rounded boxes) in a "
        "fixed depth order; each layer moves by its own affine transform; camera-motion videos "
        "add one global affine motion"
    ),
}
