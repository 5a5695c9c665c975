"""MMFA's expression jobs (paper Sec. 3.3, 4.3-4.4): the canonical face of a source
(Fig. 7), training the expression VAE on a dataset's expression features, and a source's
face whose expression walks the VAE's latent space from one image's expression to
another's (Fig. 8).

Any animator with :class:`~reanimate.animators.expression.ExpressionControl` and
:class:`~reanimate.animators.base.HeadControl` runs them (MMFA); cropping, rendering in
batches, paste-back and atomic writing are :class:`~reanimate.pipelines.edit.HeadPipeline`'s.

``train-vae`` run folder::

    RUN/features.safetensors   f_delta (N, F) of the chosen training frames, with where
                               they come from in the header (reused by --resume)
    RUN/checkpoints/...        the VAE's checkpoints (reanimate.training.expression_vae)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from ..animators.base import Animator, HeadControl
from ..animators.expression import ExpressionControl
from ..animators.registry import build_animator
from ..checkpoint import follow_umask
from ..data.frames import FramesDataset
from ..device import select_device
from ..errors import CheckpointError, InputError, OutputError, ReanimateError
from ..io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, atomic_path
from ..io.clips import ShortVideoError, open_clip
from ..models.mmfa.expression_vae import ExpressionVAE, LatentDiscriminatorConfig, expressions_at
from ..motion import HeadMotion
from ..training.checkpoints import latest_checkpoint
from ..training.expression_vae import MODEL_FILE, VAETrainConfig, load_expression_vae, train_expression_vae
from .edit import FaceSource, HeadPipeline

log = logging.getLogger(__name__)

#: the features' file in a ``train-vae`` run folder
FEATURES_FILE = "features.safetensors"
FEATURES_FORMAT = "reanimate.expression_features"
#: frames per training video whose features the VAE is trained on (a seeded choice)
FRAMES_PER_VIDEO = 32
#: frames of an interpolation video (both expressions included)
INTERPOLATION_FRAMES = 25


@dataclass
class ExpressionResult:
    output: Path
    frames: int
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class VAERunResult:
    run_dir: Path
    vae: Path  # the model file of the latest checkpoint
    step: int
    features: int  # feature vectors trained on
    features_reused: bool
    seconds: float


class ExpressionPipeline(HeadPipeline):
    """An animator with expression control, ready for canonical faces and expression
    interpolation on files.

    >>> pipe = ExpressionPipeline(build_animator("mmfa.safetensors"))
    >>> pipe.canonical("photo.png", "canonical.png")
    >>> pipe.interpolate("photo.png", "smile.png", "frown.png", load_expression_vae("vae-run"), "walk.mp4")
    """

    def __init__(self, animator: Animator):
        check_expression_control(animator)
        super().__init__(animator)

    # -- canonical face (Fig. 7) ------------------------------------------------------

    def canonical(
        self, source_path: str | os.PathLike, output_path: str | os.PathLike, progress: bool = True
    ) -> ExpressionResult:
        """Render the source's canonical face (no rotation, translation or expression)
        into the image ``output_path``, pasted back into the source for face models."""
        output = Path(output_path)
        check_output(output, video=False)
        start = time.perf_counter()
        notes = list(self.animator.notes)
        face = self.open_source(source_path, notes=notes)
        heads = self.animator.canonical_head(face.source)
        self.write(output, face, heads, progress=progress, desc="canonical")
        return ExpressionResult(output, 1, time.perf_counter() - start, notes)

    # -- expression interpolation (Sec. 4.4, Fig. 8) ----------------------------------

    def features_of(self, face: FaceSource, path: str | os.PathLike, notes: list[str] | None = None) -> torch.Tensor:
        """``f_delta`` ``(1, F)`` of the face in another image, cropped like the source."""
        crop, _ = self.crop_like(face, path, notes)
        return self.animator.expression_feature(crop)

    def expression_ends(
        self,
        face: FaceSource,
        vae: ExpressionVAE,
        expression_a: str | os.PathLike,
        expression_b: str | os.PathLike,
        notes: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`features_of` the two images, ``(1, F)`` each; a one-line error when the
        VAE was trained on features of another size (another model's)."""
        f_a = self.features_of(face, expression_a, notes)
        f_b = self.features_of(face, expression_b, notes)
        expected = vae.config.feature_dim
        if f_a.shape[-1] != expected:
            raise ReanimateError(
                f"--vae: the expression VAE was trained on {expected}-d features, this {self.animator.family} model "
                f"gives {f_a.shape[-1]}-d ones; train one for it with `reanimate train-vae`"
            )
        return f_a, f_b

    def heads_at(
        self, face: FaceSource, vae: ExpressionVAE, f_a: torch.Tensor, f_b: torch.Tensor, t: torch.Tensor
    ) -> HeadMotion:
        """Heads of the source (its own pose), one per ``t`` of ``t`` ``(N,)`` in [0, 1],
        their expression features the decodings of the point ``t`` of the straight line
        from ``f_a``'s posterior mean to ``f_b``'s (``(1, F)`` each; 0: ``f_a``'s, 1:
        ``f_b``'s), decoded for the source's identity (Eq. 4)."""
        head = self.animator.source_head(face.source)
        vae_device = vae.feature_mean.device
        features = expressions_at(vae, f_a[0].to(vae_device), f_b[0].to(vae_device), t)
        expression = self.animator.expression(features.to(head.canonical.device), head.canonical)
        count = t.shape[0]
        fixed = {name: getattr(head, name).expand(count, *getattr(head, name).shape[1:]) for name in _POSE}
        return HeadMotion(head.canonical.expand(count, -1, -1), expression=expression.to(head.expression), **fixed)

    def interpolated_heads(
        self, face: FaceSource, vae: ExpressionVAE, f_a: torch.Tensor, f_b: torch.Tensor, frames: int
    ) -> HeadMotion:
        """:meth:`heads_at` ``frames`` points evenly spaced from ``f_a`` to ``f_b``, both
        ends included."""
        return self.heads_at(face, vae, f_a, f_b, torch.linspace(0, 1, frames))

    def interpolate(
        self,
        source_path: str | os.PathLike,
        expression_a: str | os.PathLike,
        expression_b: str | os.PathLike,
        vae: ExpressionVAE,
        output_path: str | os.PathLike,
        frames: int = INTERPOLATION_FRAMES,
        fps: float = 25.0,
        batch_size: int = 4,
        progress: bool = True,
    ) -> ExpressionResult:
        """Write a video of the source's face, with its own pose, whose expression walks
        the VAE's latent space from ``expression_a``'s face's to ``expression_b``'s in
        ``frames`` frames (both ends included)."""
        output = Path(output_path)
        check_interpolation(output, frames, fps, batch_size, (expression_a, expression_b))
        start = time.perf_counter()
        notes = list(self.animator.notes)
        face = self.open_source(source_path, notes=notes)
        f_a, f_b = self.expression_ends(face, vae, expression_a, expression_b, notes)
        heads = self.interpolated_heads(face, vae, f_a, f_b, frames)
        self.write(output, face, heads, fps, batch_size, progress, desc="interpolate")
        return ExpressionResult(output, frames, time.perf_counter() - start, notes)


_POSE = ("rotation", "scale", "translation")


def has_expression_control(animator: Animator) -> bool:
    """Whether ``animator`` has expression features and head control (MMFA)."""
    return isinstance(animator, ExpressionControl) and isinstance(animator, HeadControl)


def check_expression_control(animator: Animator) -> None:
    """A one-line error when ``animator`` has no expression features to work with."""
    if not has_expression_control(animator):
        raise ReanimateError(
            f"the {animator.family} model has no expression features (MMFA paper Sec. 3.2); "
            "give an MMFA checkpoint with --checkpoint"
        )


def check_output(output: Path, video: bool) -> None:
    """One-line errors for an output path that cannot take an image (``video`` False) or
    a video or frames folder (``video`` True), before any work."""
    suffix = output.suffix.lower()
    if video:
        if suffix and suffix not in VIDEO_EXTENSIONS:
            raise OutputError(
                output,
                "an interpolation is a video: use .mp4 (or .mov, .mkv, .webm, .gif), or no suffix for PNG frames",
            )
    else:
        if output.is_dir():
            raise OutputError(output, "is a folder; the canonical face is written to an image file (.png, .jpg)")
        if suffix not in IMAGE_EXTENSIONS:
            raise OutputError(output, "the canonical face is an image: use .png or .jpg")
    if not output.parent.is_dir():
        raise OutputError(output, f"output folder {output.parent} does not exist")


def check_interpolation(output: Path, frames: int, fps: float, batch_size: int, images) -> None:
    """One-line errors for the values and paths of an interpolation (before any work)."""
    if frames < 2:
        raise ReanimateError(f"--frames must be at least 2 (both expressions), got {frames}")
    if not (math.isfinite(fps) and fps > 0):
        raise ReanimateError(f"--fps must be greater than 0, got {fps:g}")
    if batch_size < 1:
        raise ReanimateError(f"--batch-size must be at least 1, got {batch_size}")
    for image in images:
        if not Path(image).is_file():
            raise InputError(image, "no such image file")
    check_output(output, video=True)


# --------------------------------------------------------------------------------------
# Expression features of a dataset and the VAE's training (Sec. 3.3)
# --------------------------------------------------------------------------------------


def _video_seed(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def chosen_frames(count: int, per_video: int, seed: int, index: int) -> np.ndarray:
    """The frames of the ``index``-th video (``count`` frames) whose features are used:
    ``min(per_video, count)`` distinct ones, drawn from (seed, index), in time order."""
    rng = _video_seed(seed, index)
    return np.sort(rng.choice(count, size=min(per_video, count), replace=False))


def extract_features(
    animator: Animator,
    data: str | os.PathLike,
    frame_shape: tuple[int, int, int],
    per_video: int = FRAMES_PER_VIDEO,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """``f_delta`` ``(N, F)`` (CPU, float32) of a seeded choice of ``per_video`` frames of
    every training video of the dataset ``data`` (:class:`FramesDataset` layout, frames at
    ``frame_shape``: the model's training crops, so no face detection). A video that
    cannot be read is skipped with a warning."""
    from tqdm.auto import tqdm

    check_expression_control(animator)
    if per_video < 1:
        raise ReanimateError(f"--frames-per-video must be at least 1, got {per_video}")
    dataset = FramesDataset(data, frame_shape=frame_shape, is_train=True)
    features: list[torch.Tensor] = []
    bar = tqdm(total=len(dataset), unit="video", desc="features", disable=None if progress else True)
    with bar:
        for index in range(len(dataset)):
            path = dataset.video_path(index)
            try:
                frames = _read_chosen(path, frame_shape, per_video, seed, index)
            except (InputError, OSError) as exc:
                log.warning("skipping unreadable training video %s (%s)", path, exc)
                bar.update(1)
                continue
            for frame in frames:
                image = np.round(frame * 255.0).astype(np.uint8)
                features.append(animator.expression_feature(image).cpu())
            bar.update(1)
            bar.set_postfix(frames=len(features), refresh=False)
    if not features:
        raise InputError(data, "none of the training videos could be read (see the warnings above)")
    return torch.cat(features).float()


def _read_chosen(path: Path, frame_shape, per_video: int, seed: int, index: int) -> np.ndarray:
    """The chosen frames of one video, float32 ``(n, H, W, 3)`` in [0, 1]."""
    clip = open_clip(path, tuple(frame_shape[:2]))
    count = clip.num_frames
    if count == 0:
        raise InputError(path, "video contains no frames")
    try:
        return clip.read(chosen_frames(count, per_video, seed, index))
    except ShortVideoError as exc:  # declared more frames than it has: choose among those it has
        if exc.available == 0:
            raise InputError(path, "video contains no frames") from None
        return clip.read(chosen_frames(exc.available, per_video, seed, index))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def save_features(path: Path, features: torch.Tensor, info: dict[str, str]) -> None:
    """``features`` ``(N, F)`` and ``info`` (where they come from) to ``path``, atomically."""
    metadata = {"format": FEATURES_FORMAT, **info}
    with atomic_path(path) as tmp, follow_umask(tmp):
        save_file({"features": features.contiguous()}, str(tmp), metadata=metadata)


def load_features(path: Path) -> tuple[torch.Tensor, dict[str, str]]:
    """The features and header of a run's :data:`FEATURES_FILE`."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        features = load_file(str(path))["features"]
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise InputError(
            path, f"cannot read the cached features ({str(exc)[:200]}); delete it to extract again"
        ) from None
    if metadata.get("format") != FEATURES_FORMAT:
        raise InputError(path, "not a features file of `reanimate train-vae`; delete it to extract again")
    return features, metadata


def _saved_config(checkpoint: Path) -> VAETrainConfig:
    """The training config of a VAE checkpoint (its ``state.json``)."""
    try:
        return VAETrainConfig.from_dict(json.loads((checkpoint / "state.json").read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(checkpoint, f"cannot read the training state ({exc})") from None


def train_vae(
    checkpoint: str | os.PathLike,
    run_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    frames_per_video: int = FRAMES_PER_VIDEO,
    resume: bool = False,
    config: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> VAERunResult:
    """Train MMFA's expression VAE (Sec. 3.3) in ``run_dir`` on the expression features
    of the training videos of ``data``, with the MMFA model of ``checkpoint``.

    ``steps``, ``batch_size``: the VAE's training (None: :class:`VAETrainConfig`'s, or on
    resume the run's). ``resume``: reuse ``run_dir``'s cached features (``data`` is then
    only read when none were cached) and continue its latest VAE checkpoint, if any."""
    start = time.perf_counter()
    run_dir = Path(run_dir)
    if steps is not None and steps < 1:
        raise ReanimateError(f"--steps must be at least 1, got {steps}")
    if batch_size is not None and batch_size < 1:
        raise ReanimateError(f"--batch-size must be at least 1, got {batch_size}")
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(run_dir, "is a file; the run is a folder")
    if not run_dir.parent.is_dir():
        raise OutputError(run_dir, f"output folder {run_dir.parent} does not exist")
    features_path = run_dir / FEATURES_FILE
    existing = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    if not resume and (features_path.exists() or existing is not None):
        raise OutputError(run_dir, "already holds an expression VAE run; add --resume or choose a new folder")
    if resume and not run_dir.is_dir():
        raise InputError(run_dir, "no such run folder to resume; start it without --resume")
    reused = resume and features_path.is_file()
    if data is None and not reused:
        raise ReanimateError("train-vae: give the dataset with --data ROOT")

    checkpoint = Path(checkpoint)
    device = select_device(device)
    animator = build_animator(checkpoint, "auto", config, None, str(device))
    check_expression_control(animator)
    digest = _file_digest(checkpoint)
    if reused:
        features, info = load_features(features_path)
        if info.get("checkpoint_sha256") not in (None, digest):
            raise InputError(
                features_path, f"was extracted with another MMFA checkpoint ({info.get('checkpoint')}); resume with it"
            )
        log.info("reusing %d cached expression features from %s", features.shape[0], features_path)
    else:
        frame_shape = _frame_shape(animator)
        seed = VAETrainConfig().seed
        features = extract_features(animator, data, frame_shape, frames_per_video, seed, progress)
        run_dir.mkdir(exist_ok=True)
        info = {
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": digest,
            "data": str(data),
            "frame_shape": json.dumps(list(frame_shape)),
            "frames_per_video": str(frames_per_video),
            "seed": str(seed),
        }
        save_features(features_path, features, info)

    feature_dim = features.shape[1]
    if existing is not None and resume:
        train_config = _saved_config(existing)
        changes = {"steps": steps, "batch_size": batch_size}
        train_config = replace(train_config, **{k: v for k, v in changes.items() if v is not None})
    else:
        train_config = VAETrainConfig()
        train_config = replace(
            train_config,
            steps=steps or train_config.steps,
            batch_size=batch_size or train_config.batch_size,
            vae=replace(train_config.vae, feature_dim=feature_dim),
            discriminator=LatentDiscriminatorConfig(feature_dim=feature_dim),
        )
    result = train_expression_vae(
        features,
        run_dir,
        train_config,
        progress=progress,
        resume=resume and existing is not None,
        device=device,
    )
    return VAERunResult(
        run_dir,
        Path(result.checkpoint) / MODEL_FILE,
        result.step,
        features.shape[0],
        reused,
        time.perf_counter() - start,
    )


def _frame_shape(animator: Animator) -> tuple[int, int, int]:
    """The frames the model was trained on: its input size (``dataset_params.frame_shape``
    of its config)."""
    height, width = animator.requirements.size
    return int(height), int(width), 3


# --------------------------------------------------------------------------------------
# Whole jobs from files
# --------------------------------------------------------------------------------------


def read_vae(path: str | os.PathLike, device: str | torch.device = "cpu") -> ExpressionVAE:
    """:func:`load_expression_vae` with its one-line errors saying what ``--vae`` takes."""
    try:
        return load_expression_vae(path, device)
    except CheckpointError as exc:
        hint = "--vae takes a `reanimate train-vae` run folder or its model.safetensors"
        raise CheckpointError(exc.path, f"{exc.problem}; {hint}") from None


def canonical(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> ExpressionResult:
    """The canonical face of ``source`` (MMFA Fig. 7) as an image ``output``."""
    check_output(Path(output), video=False)
    pipeline = ExpressionPipeline(build_animator(checkpoint, "auto", config, None, device))
    return pipeline.canonical(source, output, progress=progress)


def interpolate(
    source: str | os.PathLike,
    expression_a: str | os.PathLike,
    expression_b: str | os.PathLike,
    output: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None,
    vae: str | os.PathLike,
    frames: int = INTERPOLATION_FRAMES,
    fps: float = 25.0,
    config: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 4,
    progress: bool = True,
) -> ExpressionResult:
    """``source``'s face, with its pose, its expression walking the VAE latent from
    ``expression_a``'s to ``expression_b``'s (MMFA Sec. 4.4) as a video ``output``;
    ``vae``: a VAE model file, checkpoint folder or ``train-vae`` run folder."""
    check_interpolation(Path(output), frames, fps, batch_size, (source, expression_a, expression_b))
    model = read_vae(vae)
    pipeline = ExpressionPipeline(build_animator(checkpoint, "auto", config, None, device))
    return pipeline.interpolate(source, expression_a, expression_b, model, output, frames, fps, batch_size, progress)


__all__ = [
    "FEATURES_FILE",
    "ExpressionPipeline",
    "ExpressionResult",
    "VAERunResult",
    "canonical",
    "check_expression_control",
    "chosen_frames",
    "extract_features",
    "has_expression_control",
    "interpolate",
    "read_vae",
    "train_vae",
]
