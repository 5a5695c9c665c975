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

Videos are streamed frame by frame; nothing holds a whole video in memory.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..animators.base import Transfer
from ..animators.fomm import FommAnimator
from ..data.frames import FramesDataset, frames_to_batch, iter_frames
from ..data.synthetic import load_flow
from ..errors import InputError
from ..geometry.flow import end_point_error, identity_flow, resize_flow
from ..geometry.tps import ThinPlateSpline
from ..io import open_writer, tensor_to_frames
from ..models import FirstOrderModel
from ..training.config import TrainConfig
from ..training.losses import transform_frame
from .animate import batched

log = logging.getLogger(__name__)


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
    pipeline: FommAnimator, images: torch.Tensor, transform: ThinPlateSpline, align_corners: bool
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
    model: FirstOrderModel,
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
    """Run the protocol over ``dataset`` (test split). ``save``: ``"mp4"`` writes
    ``<name>.mp4`` per video into ``output_dir``, ``"png"`` a folder of frames, None
    nothing. ``metrics.json`` is written there too when ``output_dir`` is given."""
    if save not in (None, "mp4", "png"):
        raise ValueError(f"save must be mp4, png or None, got {save!r}")
    if save and output_dir is None:
        raise ValueError("saving predictions needs an output folder")
    pipeline = FommAnimator(model, device=device)
    absolute = Transfer(relative=False)
    frame_shape = tuple(model.config.frame_shape)
    transform_params = TrainConfig.from_dict(model.config.raw.get("train_params")).transform_params
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
    with bar:
        for index in range(count):
            path = dataset.video_path(index)
            name = dataset.name(index)
            flow = visible = None
            if gt_flow:
                flow, visible = load_flow(path)
            video_l1, video_still, video_epe, video_still_epe = _Mean(), _Mean(), _Mean(), _Mean()
            writer = None
            if save:
                target = out / (f"{name}.mp4" if save == "mp4" else name)
                writer = open_writer(target, fps)
            try:
                frames = iter_frames(path, frame_shape)
                source_state = None
                position = 0
                for batch in batched(frames, batch_size):
                    images = frames_to_batch(batch).to(pipeline.device)
                    if source_state is None:
                        source_state = pipeline.encode(images[:1])
                    kp_driving = pipeline.detect(images)
                    result = pipeline.generate(source_state, kp_driving, None, absolute, driving=images)
                    prediction = result.prediction.float()
                    errors = (prediction - images).abs().flatten(1).mean(1)
                    still = (source_state.image - images).abs().flatten(1).mean(1)
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
                        true = true.to(pipeline.device)
                        seen = torch.from_numpy(np.asarray(visible[position : position + n])).to(pipeline.device)
                        size = tuple(images.shape[2:])
                        predicted = resize_flow(result.deformation.float(), size)
                        identity = identity_flow(n, *size, device=pipeline.device)
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
                        ).to(pipeline.device)
                        equivariance.add(keypoint_equivariance_error(pipeline, images, tps, model.config.align_corners))
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


__all__ = ["ReconstructionResult", "keypoint_equivariance_error", "reconstruct"]
