"""Video reconstruction (the official ``run.py --mode reconstruction``; FOMM Sec. 4).

Protocol: for every test video the first frame is the source and every frame is
driven by itself, with absolute keypoints; the prediction is compared with the real
frame. Reported: mean L1 over all frames of all videos (the reference code's
"Reconstruction loss"), beside the no-motion baseline (the source frame itself as the
prediction).

With ground-truth motion (``reanimate make-synthetic`` datasets, ``--gt-flow``) it also
reports the end-point error, in pixels, of the model's dense backward flow (upsampled to
the frame size) against the true one, over all pixels and over the pixels visible in the
source, each beside the no-motion (identity flow) baseline; and the keypoint detector's
equivariance error: the mean distance in pixels between the keypoints of a frame and
those of a randomly TPS-warped copy mapped back (supp. A.2, with the training
``transform_params``).

Any family with a checkpoint runs through the :class:`~reanimate.animators.base.Animator`
interface: the source is encoded from the first frame, every batch of frames is
estimated and rendered with absolute transfer (``Transfer(relative=False)``: MMFA renders
each frame's own rotation, scale, translation and expression on the source's identity),
with the face landmarks of every frame when the animator asks for them
(``Requirements.driving_landmarks``). A family that also offers its steps on float
tensors with 2-D keypoints (:class:`KeypointTensorSteps`, FOMM's) keeps them: the L1 of
the float predictions (the reference code's), the driving frames for a background motion
predictor (MoTrans/MRAA reconstruction), and the flow and equivariance errors of
``--gt-flow``.

Videos are streamed frame by frame; nothing holds a whole video in memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..animators.base import Animator, DrivingBatch, KeypointTensorSteps, Rendered, Transfer
from ..data.frames import FramesDataset, frames_to_batch, iter_frames
from ..data.synthetic import load_flow
from ..errors import InputError, ReanimateError
from ..geometry.flow import end_point_error, identity_flow, resize_flow
from ..geometry.tps import ThinPlateSpline
from ..io import frames_to_tensor, open_writer, tensor_to_frames
from ..motion import Keypoints
from ..training.config import TrainConfig
from ..training.losses import transform_frame
from .animate import batched

log = logging.getLogger(__name__)

#: the reconstruction protocol's transfer: each frame's own motion, absolute (FOMM Sec. 4)
ABSOLUTE = Transfer(relative=False)


# --------------------------------------------------------------------------------------
# Models as animators, and what some of them offer besides the interface
# --------------------------------------------------------------------------------------


def as_animator(model: Any, device: str = "auto") -> Animator:
    """``model`` as an :class:`Animator`: an animator as it is; a bare FOMM network (a
    ``FirstOrderModel``, what older callers pass) in a FOMM animator on ``device``."""
    if isinstance(model, torch.nn.Module):
        from ..animators.fomm import FommAnimator

        return FommAnimator(model, device=device)
    return model


def config_document(animator: Animator) -> dict:
    """The YAML document of a trained family's model (its ``dataset_params``,
    ``animate_params``, ``train_params``…), which FOMM and MMFA animators keep as
    ``config.raw``; ``{}`` for an animator without one."""
    raw = getattr(getattr(animator, "config", None), "raw", None)
    return raw if isinstance(raw, dict) else {}


def keypoint_steps(animator: Animator) -> KeypointTensorSteps | None:
    """The animator's float-tensor keypoint steps, or None where it has none."""
    return animator if isinstance(animator, KeypointTensorSteps) else None


# --------------------------------------------------------------------------------------
# Driving a source with whole frames through the Animator interface
# --------------------------------------------------------------------------------------


class FrameFaces:
    """MediaPipe face landmarks ``(478, 3)`` of images and of consecutive video frames,
    for an animator that reads the head's pose from them
    (:attr:`~reanimate.animators.base.Requirements.driving_landmarks`). A frame without a
    face keeps the previous frame's landmarks (counted in :attr:`missing`); a video whose
    first frame has none is an error. A context manager: it owns a MediaPipe graph."""

    def __init__(self):
        from ..faces import FaceMesh

        # Every frame is detected afresh, as the animate pipeline's driving frames.
        self.mesh = FaceMesh(video=False)
        self.last: np.ndarray | None = None
        self.missing = 0

    def image(self, image: np.ndarray, where: object) -> np.ndarray:
        """The largest face's landmarks in ``image``; none is a one-line error naming ``where``."""
        found = self.mesh.detect(image)
        if not found:
            raise InputError(where, "no face found (this model reads the head's rotation from face landmarks)")
        return found[0].landmarks

    def start(self) -> None:
        """A new video begins."""
        self.last = None

    def frames(self, frames: Sequence[np.ndarray], where: object) -> np.ndarray:
        """``(N, 478, 3)`` for the next frames of the current video."""
        out = []
        for frame in frames:
            found = self.mesh.detect(frame)
            if found:
                self.last = found[0].landmarks
            elif self.last is None:
                raise InputError(where, "no face in the first frame (this model reads the head's rotation from faces)")
            else:
                self.missing += 1
            out.append(self.last)
        return np.stack(out)

    def close(self) -> None:
        self.mesh.close()

    def __enter__(self) -> FrameFaces:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def frame_faces(animator: Animator, stack: contextlib.ExitStack) -> FrameFaces | None:
    """A :class:`FrameFaces` in ``stack`` when the animator needs per-frame landmarks, else None."""
    return stack.enter_context(FrameFaces()) if animator.requirements.driving_landmarks else None


class FrameDriver:
    """One source animated by batches of frames through the :class:`Animator` interface.

    The source and the frames are what the animator sees, uint8 ``(H, W, 3)`` at its
    size: a dataset's frames (already crops) are animated whole, as the papers evaluate.
    With ``faces`` (see :func:`frame_faces`) the landmarks of the source and of every
    frame go to the animator. With relative transfer the first frame given is the
    reference (estimated alone, as the animate pipeline does).
    """

    def __init__(
        self,
        animator: Animator,
        transfer: Transfer,
        source: np.ndarray,
        faces: FrameFaces | None = None,
        source_path: object = None,
        driving_path: object = None,
    ):
        self.animator = animator
        self.transfer = transfer
        self.size = tuple(animator.requirements.size)
        assert source.shape[:2] == self.size, f"source {source.shape} is not at the animator's size {self.size}"
        self.faces = faces
        self.driving_path = driving_path
        landmarks = faces.image(source, source_path) if faces is not None else None
        self.source = animator.encode_source(source, landmarks)
        self.reference = None
        if faces is not None:
            faces.start()

    def __call__(self, frames: Sequence[np.ndarray]) -> Rendered:
        frames = list(frames)
        landmarks = self.faces.frames(frames, self.driving_path) if self.faces is not None else None
        if self.transfer.relative and self.reference is None:
            first = None if landmarks is None else landmarks[:1]
            self.reference = self.animator.estimate(DrivingBatch(frames[:1], self.size, landmarks=first))
        motion = self.animator.estimate(DrivingBatch(frames, self.size, landmarks=landmarks))
        return self.animator.render(self.source, motion, self.reference, self.transfer)


class FramePredictor:
    """A source moved by batches of float frames ``(N, 3, H, W)`` in [0, 1] at the model's
    size: ``predictor(images) -> (prediction (N, 3, H, W) float, deformation or None)``.

    With :class:`KeypointTensorSteps` the float frames go to the model as they are (and,
    with ``background``, to its background motion predictor, as in reconstruction);
    otherwise they are rounded to uint8 and go through a :class:`FrameDriver`. With
    relative transfer the first frame given is the reference.
    """

    def __init__(
        self,
        animator: Animator,
        source: torch.Tensor,
        transfer: Transfer,
        faces: FrameFaces | None = None,
        source_path: object = None,
        driving_path: object = None,
        background: bool = False,
    ):
        self.steps = keypoint_steps(animator)
        self.transfer = transfer
        self.background = background
        self.kp_initial: Keypoints | None = None
        if self.steps is not None:
            self.state = self.steps.encode(source)
        else:
            self.driver = FrameDriver(animator, transfer, tensor_to_frames(source)[0], faces, source_path, driving_path)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.steps is None:
            rendered = self.driver(tensor_to_frames(images))
            return frames_to_tensor(rendered.frames).to(images.device), None
        kp_driving = self.steps.detect(images)
        if self.transfer.relative and self.kp_initial is None:
            self.kp_initial = kp_driving[:1]
        driving = images if self.background else None
        result = self.steps.generate(self.state, kp_driving, self.kp_initial, self.transfer, driving=driving)
        return result.prediction.float(), getattr(result, "deformation", None)


# --------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0

    def add(self, values: torch.Tensor) -> None:
        self.total += float(values.double().sum())
        self.count += values.numel()

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class ReconstructionResult:
    videos: int
    frames: int
    l1: float
    no_motion_l1: float
    flow_epe: float | None = None
    flow_epe_visible: float | None = None
    no_motion_epe: float | None = None
    no_motion_epe_visible: float | None = None
    keypoint_equivariance: float | None = None  # pixels
    per_video: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"reconstruction L1 {self.l1:.4f} (no motion {self.no_motion_l1:.4f}) "
            f"over {self.frames} frames of {self.videos} videos"
        ]
        if self.flow_epe is not None:
            lines.append(
                f"flow EPE {self.flow_epe:.3f} px (no motion {self.no_motion_epe:.3f}); "
                f"visible pixels {self.flow_epe_visible:.3f} px (no motion {self.no_motion_epe_visible:.3f})"
            )
        if self.keypoint_equivariance is not None:
            lines.append(f"keypoint equivariance error {self.keypoint_equivariance:.3f} px")
        return "\n".join(lines)


def keypoint_equivariance_error(
    pipeline: KeypointTensorSteps, images: torch.Tensor, transform: ThinPlateSpline, align_corners: bool
) -> torch.Tensor:
    """Per keypoint distances in pixels ``(N, K)`` between the keypoints of ``images``
    and the keypoints of their TPS-warped copies mapped back through the TPS."""
    kp = pipeline.detect(images).value
    warped = transform_frame(images, transform, align_corners=align_corners)
    kp_warped = pipeline.detect(warped).value
    mapped = transform.warp_points(kp_warped)
    h, w = images.shape[2:]
    scale = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=kp.device)
    return ((kp - mapped) * scale).norm(dim=-1)


def reconstruct(
    model: Animator | torch.nn.Module,
    dataset: FramesDataset,
    output_dir: str | os.PathLike | None = None,
    save: str | None = "mp4",
    gt_flow: bool = False,
    num_videos: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    fps: float = 25.0,
    seed: int = 0,
    progress: bool = True,
) -> ReconstructionResult:
    """Run the protocol over ``dataset`` (test split) with ``model``: an :class:`Animator`
    of any family (``build_animator(checkpoint)``), or a bare FOMM network (then run on
    ``device``). ``save``: ``"mp4"`` writes ``<name>.mp4`` per video into ``output_dir``,
    ``"png"`` a folder of frames, None nothing. ``metrics.json`` is written there too
    when ``output_dir`` is given. ``gt_flow`` needs :class:`KeypointTensorSteps`."""
    if save not in (None, "mp4", "png"):
        raise ValueError(f"save must be mp4, png or None, got {save!r}")
    if save and output_dir is None:
        raise ValueError("saving predictions needs an output folder")
    animator = as_animator(model, device)
    steps = keypoint_steps(animator)
    if gt_flow and steps is None:
        raise ReanimateError(
            f"--gt-flow: the {animator.family} model gives no 2-D flow and keypoints to measure (FOMM models do)"
        )
    on = steps.device if steps is not None else torch.device("cpu")
    frame_shape = (*animator.requirements.size, 3)
    transform_params = None
    if gt_flow:
        transform_params = TrainConfig.from_dict(config_document(animator).get("train_params")).transform_params
    generator = torch.Generator().manual_seed(seed)
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    count = len(dataset) if num_videos is None else min(num_videos, len(dataset))
    if count == 0:
        raise InputError(dataset.root, "no test videos")
    l1, still_l1 = _Mean(), _Mean()
    epe, epe_vis, still_epe, still_epe_vis, equivariance = _Mean(), _Mean(), _Mean(), _Mean(), _Mean()
    per_video = []
    bar = tqdm(total=count, unit="video", desc="reconstruct", disable=None if progress else True, dynamic_ncols=True)
    with bar, contextlib.ExitStack() as resources:
        faces = frame_faces(animator, resources)
        for index in range(count):
            path = dataset.video_path(index)
            name = dataset.name(index)
            flow = visible = None
            if gt_flow:
                flow, visible = load_flow(path)
            video_l1, video_still, video_epe, video_still_epe = _Mean(), _Mean(), _Mean(), _Mean()
            missing = faces.missing if faces is not None else 0
            writer = None
            if save:
                target = out / (f"{name}.mp4" if save == "mp4" else name)
                writer = open_writer(target, fps)
            try:
                frames = iter_frames(path, frame_shape)
                source = predictor = None
                position = 0
                for batch in batched(frames, batch_size):
                    images = frames_to_batch(batch).to(on)
                    if predictor is None:
                        source = images[:1]
                        predictor = FramePredictor(animator, source, ABSOLUTE, faces, path, path, background=True)
                    prediction, deformation = predictor(images)
                    errors = (prediction - images).abs().flatten(1).mean(1)
                    still = (source - images).abs().flatten(1).mean(1)
                    for meter in (l1, video_l1):
                        meter.add(errors)
                    for meter in (still_l1, video_still):
                        meter.add(still)
                    if writer is not None:
                        writer.write(tensor_to_frames(prediction))
                    if gt_flow:
                        n = images.shape[0]
                        if position + n > len(flow):
                            raise InputError(path, f"the ground-truth flow has {len(flow)} frames, the video more")
                        true = torch.from_numpy(np.asarray(flow[position : position + n], dtype=np.float32))
                        true = true.to(on)
                        seen = torch.from_numpy(np.asarray(visible[position : position + n])).to(on)
                        size = tuple(images.shape[2:])
                        predicted = resize_flow(deformation.float(), size)
                        identity = identity_flow(n, *size, device=on)
                        errors_flow = end_point_error(predicted, true, reduction="none")
                        errors_still = end_point_error(identity, true, reduction="none")
                        for meter in (epe, video_epe):
                            meter.add(errors_flow)
                        for meter in (still_epe, video_still_epe):
                            meter.add(errors_still)
                        epe_vis.add(errors_flow[seen])
                        still_epe_vis.add(errors_still[seen])
                        t = transform_params
                        tps = ThinPlateSpline.random(
                            n, t.sigma_affine, t.sigma_tps, t.points_tps, generator=generator
                        ).to(on)
                        equivariance.add(keypoint_equivariance_error(steps, images, tps, steps.config.align_corners))
                    position += images.shape[0]
                if writer is not None:
                    writer.close()
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            record = {"name": name, "frames": video_l1.count, "l1": video_l1.value, "no_motion_l1": video_still.value}
            if gt_flow:
                record.update(flow_epe=video_epe.value, no_motion_epe=video_still_epe.value)
            if faces is not None and faces.missing > missing:
                log.warning("%s: no face in %d frames; the previous landmarks were held", name, faces.missing - missing)
            per_video.append(record)
            bar.update(1)
    frames_done = sum(v["frames"] for v in per_video)
    result = ReconstructionResult(
        videos=count,
        frames=frames_done,
        l1=l1.value,
        no_motion_l1=still_l1.value,
        flow_epe=epe.value,
        flow_epe_visible=epe_vis.value,
        no_motion_epe=still_epe.value,
        no_motion_epe_visible=still_epe_vis.value,
        keypoint_equivariance=equivariance.value,
        per_video=per_video,
    )
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(result.as_dict(), indent=1))
    return result


__all__ = [
    "ABSOLUTE",
    "FrameDriver",
    "FrameFaces",
    "FramePredictor",
    "KeypointTensorSteps",
    "ReconstructionResult",
    "as_animator",
    "config_document",
    "frame_faces",
    "keypoint_equivariance_error",
    "keypoint_steps",
    "reconstruct",
]
