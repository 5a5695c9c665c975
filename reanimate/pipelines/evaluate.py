"""``reanimate evaluate``: the papers' evaluation protocols, run offline.

Two protocols (MoTrans Sec. 4, FOMM Sec. 4; MMFA Sec. 4.1 and B.1):

* **same-identity** (video reconstruction): every test video is animated with its own
  first frame as the source and itself as the driver; each generated frame is compared
  with the real one (L1, PSNR, SSIM, LPIPS, AKD, MKR, AED, APD).
* **cross-identity**: a list of (source image, driving video) pairs; the generated
  frames are compared with the driving video for motion (head pose, landmarks) and with
  the source for identity (CSIM) and distribution (FID).

The same-identity videos are animated with absolute transfer (each frame's own keypoints,
or for MMFA each frame's own rotation, scale, translation and expression on the source's
identity), as the reference code reconstructs; an animator that only transfers relative
motion (the landmark animator) takes it relative to the first frame, the source itself.
Cross-identity pairs are animated with relative transfer from the driving video's first
frame. A family with trained weights animates the test videos' whole frames (already the
dataset's crops, as its paper evaluates) through the Animator interface, with the face
landmarks of every frame where it asks for them; the zero-shot animator crops the face and
pastes it back (``crop`` of :func:`generate`).

A run either animates with a model (a checkpoint or the zero-shot landmark animator) into
``OUTDIR/generated/`` (PNG frames, lossless) or scores videos made by any tool
(``generated``: a folder with one video or frame folder per test video, named like it).
Landmarks, head poses and identity embeddings of every video are cached by file hash
(:class:`reanimate.evaluation.cache.FeatureCache`), so re-evaluating a new model only
measures its generated frames.

Each run writes ``metrics.json`` (the means, per-video numbers and notes), ``summary.csv``
(the table's row), ``per_video.csv`` and ``report.md``; :func:`compare` puts several runs side by side. The
metrics are defined in :mod:`reanimate.evaluation.metrics`; the README's *Evaluation*
section gives their units and the models they use.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..animators.base import Animator, Transfer
from ..animators.registry import families
from ..data.pairs import read_pairs_csv
from ..errors import InputError, ReanimateError
from ..evaluation import metrics
from ..evaluation.cache import FeatureCache, iterate_frames
from ..evaluation.extractor import FeatureExtractor
from ..evaluation.features import VideoFeatures
from ..io import fit_to_shape, is_image_path, is_video_path, open_frames, open_writer
from ..io.image import resize_area
from .animate import AnimationOptions, AnimationPipeline, batched
from .evaluation_report import COLUMNS, EvaluationResult, compare, markdown_table, write_report
from .reconstruct import FrameDriver, frame_faces

log = logging.getLogger(__name__)

PROTOCOLS = ("same-identity", "cross-identity")
NOT_AVAILABLE = "n/a (weights missing)"
#: driving frames per model call (the animate pipeline's default)
BATCH_SIZE = 4

# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


def test_videos(root: str | os.PathLike) -> list[Path]:
    """The test videos of a dataset: ``ROOT/test`` when it exists, else ``ROOT``; each a
    video file or a folder of frames (sorted by name)."""
    root = Path(root)
    folder = root / "test" if (root / "test").is_dir() else root
    if not folder.is_dir():
        raise InputError(root, "no such dataset folder")
    videos = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_dir() or is_video_path(p)))
    if not videos:
        raise InputError(folder, "no test videos (video files or frame folders)")
    return videos


def cross_identity_pairs(path: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(source image, driving video) paths of a pairs CSV with ``source`` and ``driving``
    columns; relative paths are taken from the CSV's folder."""
    path = Path(path)
    pairs = []
    for source, driving in read_pairs_csv(path):
        source_path, driving_path = (p if Path(p).is_absolute() else path.parent / p for p in (source, driving))
        for item in (Path(source_path), Path(driving_path)):
            if not item.exists():
                raise InputError(path, f"{item} (in the pairs list) does not exist")
        pairs.append((Path(source_path), Path(driving_path)))
    if not pairs:
        raise InputError(path, "the pairs list is empty")
    return pairs


def pair_name(source: Path, driving: Path) -> str:
    return f"{driving.stem}-{source.stem}"


def first_frame(path: Path) -> np.ndarray:
    """The image itself, or the first frame of a video or frame folder."""
    frames = iterate_frames(path)
    try:
        return next(frames)
    except StopIteration:
        raise InputError(path, "no frames") from None
    finally:
        frames.close()


def find_generated(directory: Path, name: str) -> Path:
    """``DIR/name`` (frame folder) or ``DIR/name.<video suffix>``."""
    candidates = [directory / name] + sorted(directory.glob(f"{name}.*"))
    for candidate in candidates:
        if candidate.is_dir() or (candidate.is_file() and is_video_path(candidate)):
            return candidate
    raise InputError(directory, f"no generated video for {name!r} (expected {name}/ or {name}.mp4)")


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def whole_frames(animator: Animator) -> bool:
    """Whether a model animates the test videos' frames whole: a family that loads trained
    weights does (the test videos are its dataset's crops, as its paper evaluates); the
    zero-shot family (no weights) crops the face and pastes it back."""
    family = families().get(animator.family)
    if family is not None:
        return family.uses_checkpoint
    return not animator.requirements.driving_landmarks


def generate(
    pipeline: AnimationPipeline,
    jobs: list[tuple[str, Path, Path]],
    out_dir: Path,
    progress: bool = True,
    *,
    relative: bool = True,
    crop: str | None = None,
    notes: list[str] | None = None,
) -> dict[str, Path]:
    """Animate every ``(name, source, driving)`` into ``out_dir/name/`` (PNG frames).

    Args:
        relative: relative transfer from the first driving frame (cross-identity); False:
            absolute (same-identity reconstruction), except for an animator that only
            transfers relative motion.
        crop: ``"none"``: the source (the first frame of a video) and the driving frames are
            fitted whole to the model's size and animated through the Animator interface,
            with face landmarks of every frame when the animator asks for them; ``"auto"``:
            the animate pipeline crops the face and pastes it back (outputs have the
            driving frames' size when the source is one of them); None: ``"none"`` for a
            model with trained weights, else ``"auto"`` (:func:`whole_frames`).
        notes: where notes for the report go (frames without a face).
    """
    if crop not in (None, "auto", "none"):
        raise ReanimateError(f"evaluate: crop {crop!r}: expected auto or none")
    animator = pipeline.animator
    requirements = animator.requirements
    relative = relative or requirements.relative_only
    if crop is None:
        crop = "none" if whole_frames(animator) else "auto"
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {}
    bar = tqdm(jobs, desc="generate", unit="video", disable=None if progress else True)
    if crop == "auto":
        options = AnimationOptions(relative=relative, crop=crop, batch_size=BATCH_SIZE)
        with tempfile.TemporaryDirectory() as scratch:
            for name, source, driving in bar:
                target = out_dir / name
                if not (is_image_path(source) and not source.is_dir()):
                    image_path = Path(scratch) / f"{name}-source.png"
                    Image.fromarray(first_frame(source)).save(image_path)
                    source = image_path
                pipeline.animate(source, driving, target, options, progress=False)
                outputs[name] = target
        return outputs
    transfer = Transfer(relative=relative, adapt_scale=requirements.adapt_scale)
    size = requirements.size
    with contextlib.ExitStack() as resources:
        faces = frame_faces(animator, resources)
        for name, source, driving in bar:
            target = out_dir / name
            missing = faces.missing if faces is not None else 0
            image, _ = fit_to_shape(first_frame(source), size, mode="crop")
            driver = FrameDriver(animator, transfer, image, faces, source, driving)
            with open_frames(driving) as reader, open_writer(target, reader.fps) as writer:
                for frames in batched(reader, BATCH_SIZE):
                    writer.write(driver([fit_to_shape(frame, size, mode="crop")[0] for frame in frames]).frames)
            if notes is not None and faces is not None and faces.missing > missing:
                notes.append(f"{name}: no face in {faces.missing - missing} frames; the previous landmarks were held")
            outputs[name] = target
    return outputs


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------


@dataclass
class Networks:
    """Optional networks that need user-supplied weights (None: the column is n/a)."""

    lpips: torch.nn.Module | None = None
    fid: torch.nn.Module | None = None


def _frames_pairs(generated: Path, reference: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Generated and reference frames side by side; generated frames are resized to the
    reference's size when they differ (area interpolation)."""
    with open_frames(generated) as gen_reader, open_frames(reference) as ref_reader:
        for gen, ref in zip(gen_reader, ref_reader):
            if gen.shape != ref.shape:
                gen = resize_area(gen, ref.shape[0], ref.shape[1])
            yield gen, ref


def _to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0


def _scaled(features: VideoFeatures, size: tuple[int, int], name: str) -> np.ndarray:
    """Keypoints of ``features`` in pixels of frames of ``size`` (H, W)."""
    points = getattr(features, name)
    if points is None:
        return None
    h, w = features.size
    return points * np.array([size[1] / w, size[0] / h], np.float32)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None


def score_video(
    generated: Path,
    reference: Path,
    gen_features: VideoFeatures,
    ref_features: VideoFeatures,
    source_identity: np.ndarray | None,
    networks: Networks,
    compare_pixels: bool,
    fid_features: dict[str, list] | None = None,
    batch_size: int = 8,
) -> dict[str, float | None]:
    """The metrics of one generated video against its reference video (the real video in
    the same-identity protocol, the driving video in the cross-identity one).

    ``compare_pixels``: L1/PSNR/SSIM/LPIPS (same-identity only: in cross-identity the
    driver is another person). ``source_identity``: the source face's embedding, which
    CSIM compares the generated frames with (cross-identity); None compares each generated
    frame with the reference frame (same-identity, where the real frame is the same person).
    """
    out: dict[str, float | None] = {}
    count = min(len(gen_features.keypoints), len(ref_features.keypoints))
    if compare_pixels or networks.fid is not None:
        l1s, psnrs, ssims, ms_ssims, lpips_values = [], [], [], [], []
        batch_gen, batch_ref = [], []

        def flush():
            if not batch_gen:
                return
            if networks.lpips is not None and compare_pixels:
                with torch.no_grad():
                    lpips_values.extend(networks.lpips(_to_tensor(batch_gen), _to_tensor(batch_ref)).tolist())
            if networks.fid is not None and fid_features is not None:
                with torch.no_grad():
                    fid_features["generated"].append(networks.fid(_to_tensor(batch_gen)).numpy())
                    fid_features["real"].append(networks.fid(_to_tensor(batch_ref)).numpy())
            batch_gen.clear()
            batch_ref.clear()

        frames = 0
        for gen, ref in _frames_pairs(generated, reference):
            frames += 1
            if compare_pixels:
                l1s.append(metrics.l1(gen, ref))
                psnrs.append(metrics.psnr(gen, ref))
                ssims.append(metrics.ssim(gen, ref))
                ms_ssims.append(metrics.ms_ssim_score(gen, ref))
            if networks.lpips is not None or networks.fid is not None:
                batch_gen.append(gen)
                batch_ref.append(ref)
                if len(batch_gen) == batch_size:
                    flush()
        flush()
        if frames == 0:
            raise InputError(generated, "no frames")
        if compare_pixels:
            out["l1"] = float(np.mean(l1s))
            finite = [p for p in psnrs if math.isfinite(p)]
            out["psnr"] = float(np.mean(finite)) if finite else math.inf
            out["ssim"] = float(np.mean(ssims))
            out["ms_ssim"] = float(np.mean(ms_ssims))
            out["lpips"] = float(np.mean(lpips_values)) if lpips_values else None
    size = ref_features.size
    gen_kp = _scaled(gen_features, size, "keypoints")[:count]
    ref_kp = ref_features.keypoints[:count]
    out["akd"] = _nan_to_none(
        metrics.average_keypoint_distance(gen_kp, ref_kp, gen_features.visible[:count], ref_features.visible[:count])
    )
    out["mkr"] = _nan_to_none(metrics.missing_keypoint_rate(gen_features.visible[:count], ref_features.visible[:count]))
    if gen_features.keypoints68 is not None and ref_features.keypoints68 is not None:
        out["akd68"] = _nan_to_none(
            metrics.average_keypoint_distance(
                _scaled(gen_features, size, "keypoints68")[:count], ref_features.keypoints68[:count]
            )
        )
    if gen_features.identity is not None and ref_features.identity is not None:
        gen_id, ref_id = gen_features.identity[:count], ref_features.identity[:count]
        both = ~np.isnan(gen_id).any(1) & ~np.isnan(ref_id).any(1)
        out["aed"] = float(metrics.identity_distance(gen_id[both], ref_id[both]).mean()) if both.any() else None
        if source_identity is not None:
            found = ~np.isnan(gen_id).any(1)
            out["csim"] = (
                float(np.mean(metrics.cosine_similarity(gen_id[found], source_identity))) if found.any() else None
            )
        else:
            out["csim"] = float(np.mean(metrics.cosine_similarity(gen_id[both], ref_id[both]))) if both.any() else None
    if gen_features.pose is not None and ref_features.pose is not None:
        out["apd"] = _nan_to_none(metrics.pose_difference(gen_features.pose[:count], ref_features.pose[:count]).mean)
    out["jitter"] = _nan_to_none(metrics.jitter(gen_kp, gen_features.visible[:count]))
    out["jitter_real"] = _nan_to_none(metrics.jitter(ref_kp, ref_features.visible[:count]))
    out["frames"] = count
    return out


def _nan_to_none(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


# --------------------------------------------------------------------------------------
# The protocols
# --------------------------------------------------------------------------------------


def evaluate(
    protocol: str,
    output_dir: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    pairs: str | os.PathLike | None = None,
    pipeline: AnimationPipeline | None = None,
    generated: str | os.PathLike | None = None,
    name: str | None = None,
    kind: str = "face",
    identity: bool = True,
    networks: Networks | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_videos: int | None = None,
    crop: str | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Run one protocol and write its report into ``output_dir``.

    Args:
        protocol: ``"same-identity"`` (needs ``data``: a dataset root whose ``test/``
            folder, or the folder itself, holds the videos) or ``"cross-identity"``
            (needs ``pairs``: a CSV of ``source``/``driving`` paths).
        pipeline: the model to run; or ``generated``: a folder of videos made already.
        kind: ``"face"`` (MediaPipe face mesh, dlib 68 points and identity) or
            ``"body"`` (MediaPipe's 33 pose landmarks).
        identity: compute dlib embeddings (AED, CSIM; faces only).
        cache_dir: where extracted features are cached (None: ``output_dir/cache``); share
            one folder between runs so the real videos are measured once.
        crop: how the model sees the videos (:func:`generate`; None: whole frames for a
            model with trained weights, the face crop for the zero-shot animator).
    """
    if protocol not in PROTOCOLS:
        raise ReanimateError(f"evaluate: protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if (pipeline is None) == (generated is None):
        raise ReanimateError("evaluate: give a model to run or --generated DIR, not both or neither")
    if kind not in ("face", "body"):
        raise ReanimateError(f"evaluate: --kind {kind!r}: expected face or body")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    networks = networks or Networks()
    notes: list[str] = []

    if protocol == "same-identity":
        if data is None:
            raise ReanimateError("evaluate same-identity: give the test videos with --data ROOT")
        videos = test_videos(data)[:num_videos]
        jobs = [(v.name if v.is_dir() else v.stem, v, v) for v in videos]
    else:
        if pairs is None:
            raise ReanimateError("evaluate cross-identity: give the pairs list with --pairs CSV")
        pair_list = cross_identity_pairs(pairs)[:num_videos]
        jobs = [(pair_name(s, d), s, d) for s, d in pair_list]

    if pipeline is not None:
        relative = protocol == "cross-identity"
        outputs = generate(pipeline, jobs, out / "generated", progress, relative=relative, crop=crop, notes=notes)
    else:
        outputs = {job[0]: find_generated(Path(generated), job[0]) for job in jobs}

    extractor = FeatureExtractor(kind=kind, identity=identity and kind == "face", landmarks68=kind == "face")
    notes.extend(getattr(extractor, "missing", []) or [])
    cache = FeatureCache(Path(cache_dir) if cache_dir is not None else out / "cache")
    fid_features = {"generated": [], "real": []} if networks.fid is not None else None
    per_video = []
    source_identities: dict[Path, np.ndarray | None] = {}
    try:
        bar = tqdm(jobs, desc="measure", unit="video", disable=None if progress else True)
        for job_name, source, driving in bar:
            ref_features = cache.get(driving, extractor)
            gen_features = cache.get(outputs[job_name], extractor)
            source_identity = None
            if protocol == "cross-identity" and gen_features.identity is not None:
                if source not in source_identities:
                    source_identities[source] = _image_identity(cache, extractor, source)
                source_identity = source_identities[source]
            row = score_video(
                outputs[job_name],
                driving,
                gen_features,
                ref_features,
                source_identity,
                networks,
                compare_pixels=protocol == "same-identity",
                fid_features=fid_features,
            )
            per_video.append({"name": job_name, "source": str(source), "driving": str(driving), **row})
    finally:
        extractor.close()

    keys = [key for key, _, _ in COLUMNS if key != "fid"]
    summary: dict[str, float | str | None] = {key: _mean(v.get(key) for v in per_video) for key in keys}
    if networks.lpips is None and protocol == "same-identity":
        summary["lpips"] = NOT_AVAILABLE
    if fid_features is not None and fid_features["generated"]:
        from ..evaluation.fid import fid_from_features

        summary["fid"] = fid_from_features(
            np.concatenate(fid_features["real"]), np.concatenate(fid_features["generated"])
        )
    else:
        summary["fid"] = NOT_AVAILABLE if networks.fid is None else None
    summary["videos"] = len(per_video)
    summary["frames"] = int(sum(v.get("frames", 0) for v in per_video))
    result = EvaluationResult(name or out.name, protocol, kind, summary, per_video, notes)
    write_report(result, out)
    return result


def _image_identity(cache: FeatureCache, extractor: FeatureExtractor, source: Path) -> np.ndarray | None:
    """Identity embedding of a source image (first frame of a video)."""
    features = cache.get(source, extractor)
    if features.identity is None or np.isnan(features.identity[0]).any():
        return None
    return features.identity[0]


# --------------------------------------------------------------------------------------
__all__ = ["EvaluationResult", "Networks", "compare", "evaluate", "markdown_table", "test_videos"]
