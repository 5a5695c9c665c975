"""Fitting an avatar to a track folder (``reanimate avatar fit``): the shared training loop
(:class:`reanimate.training.loop.TrainingLoop`: data order, atomic checkpoints, exact
resume, TensorBoard, time limits) with IMavatar's step: rays drawn half uniform and half
in the face box, traced through the deformation, and the losses of
:mod:`reanimate.training.avatar_losses` (RGB, mask, and the rig's pseudo ground truth for the
deformation network unless ``loss_weights.lbs`` is 0, the paper's "Ours-")."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..avatar.config import AvatarConfig, build_avatar
from ..avatar.data import TrackFrames, gather_pixels, sample_pixels
from ..avatar.model import AvatarRender, FrameBatch, FrameRefinement, ImplicitAvatar
from ..avatar.rigs import load_rig
from ..avatar.tracking import load_tracking
from ..errors import InputError
from .avatar_config import AvatarTrainConfig
from .avatar_losses import PSEUDO_GT_SQUARED_DISTANCE, mask_loss, nearest_vertices, pseudo_gt_loss, rgb_loss
from .avatar_rig_prior import rig_prior_loss, warm_up_deformation
from .loop import TrainingLoop


def avatar_losses(
    model: ImplicitAvatar, out: AvatarRender, target: torch.Tensor, foreground: torch.Tensor, weights
) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one step: ``target (B, R, 3)``, ``foreground (B, R)``."""
    n = out.hit.numel()
    hit, fg = out.hit.flatten(), foreground.flatten()
    losses = {
        "rgb": weights.rgb * rgb_loss(out.rgb.reshape(-1, 3), target.reshape(-1, 3), hit, fg),
        "mask": weights.mask * mask_loss(out.value.flatten(), hit, fg, out.valid.flatten(), weights.alpha),
    }
    if weights.lbs and out.deformation is not None:
        points = out.canonical[out.surface]
        distance, index = nearest_vertices(points, model.canonical_vertices)
        near = distance < PSEUDO_GT_SQUARED_DISTANCE
        target_dirs = model.rig_targets(index)
        pred = out.deformation
        scale = weights.dirs_scale
        losses["skinning"] = weights.lbs * weights.skinning * pseudo_gt_loss(pred.weights, target_dirs.weights, near, n)
        losses["expression_dirs"] = (
            weights.lbs
            * weights.expression_dirs
            * pseudo_gt_loss(pred.expression_dirs.flatten(1), target_dirs.expression_dirs.flatten(1), near, n, scale)
        )
        losses["pose_dirs"] = (
            weights.lbs
            * weights.pose_dirs
            * pseudo_gt_loss(pred.pose_dirs.flatten(1), target_dirs.pose_dirs.flatten(1), near, n, scale)
        )
    return losses


class AvatarTrainer(TrainingLoop):
    @staticmethod
    def config_from_document(doc: dict, name: str) -> AvatarConfig:
        return AvatarConfig.from_document(doc, name=name)

    def __init__(self, config: AvatarConfig, run_dir, options):
        train_config = AvatarTrainConfig.from_dict(config.raw.get("train_params"))
        super().__init__(config, run_dir, options, train_config)

    def training_samples(self) -> Dataset:
        root = self.options.data_root or (self.config.raw.get("dataset_params") or {}).get("root_dir")
        if not root:
            raise InputError(self.config.name, "no track folder: pass --data TRACK_DIR (reanimate avatar track)")
        self.track = load_tracking(root)
        self.data_root = self.track.path
        every = self.train_config.hold_out_every
        frames = [i for i in range(len(self.track)) if not every or i % every]
        return TrackFrames(self.track, self.train_config.box_margin, frames)

    def build(self) -> None:
        tc = self.train_config
        rig = load_rig(self.config.rig)
        if rig.name != self.track.tracking.rig_name:
            raise InputError(
                self.track.path,
                f"was tracked with the {self.track.tracking.rig_name} rig but the config uses {rig.name}",
            )
        self.model = build_avatar(self.config, self.track.tracking.shape, self.options.seed, rig).to(self.device)
        self.camera = self.track.tracking.camera
        self.optimizers = {"avatar": self.adam(self.model.parameters(), tc.lr, tuple(tc.betas))}
        if tc.refine_frames:
            rig = self.model.rig
            self.model.refinement = FrameRefinement(len(self.track), rig.num_expressions, rig.num_joints).to(
                self.device
            )
            self.optimizers["frames"] = self.adam(self.model.refinement.parameters(), tc.lr_frames, tuple(tc.betas))

    def initialise(self) -> None:
        tc = self.train_config
        generator = torch.Generator().manual_seed(self.options.seed)
        warm_up_deformation(self.model, tc.deformation_warmup_steps, tc.loss_weights, generator=generator)

    @staticmethod
    def averaged_networks(model) -> nn.ModuleList:
        return nn.ModuleList([model.geometry, model.texture, model.deformation])

    def inference_forward(self, models, batch: dict) -> None:  # no BatchNorm in the fields
        return None

    def frames(self, batch: dict) -> FrameBatch:
        """The batch's tracked parameters (with the learnt corrections when refining)."""
        frames = FrameBatch(*(batch[k].to(self.device).float() for k in ("expression", "pose", "translation")))
        refinement = getattr(self.model, "refinement", None)
        return frames if refinement is None else refinement(batch["index"], frames)

    def train_step(self, batch: dict):
        tc = self.train_config
        image = batch["image"].to(self.device)
        b, _, h, w = image.shape
        generator = self.step_generator()
        pixels = sample_pixels(batch["box"], h, w, tc.num_pixels, tc.box_fraction, generator)
        target = gather_pixels(image, pixels)
        foreground = gather_pixels(batch["mask"][:, None].float(), pixels)[..., 0].to(self.device) > 0.5
        with self._autocast():
            out = self.model(pixels.to(self.device), self.frames(batch), self.camera, foreground)
            losses = avatar_losses(self.model, out, target, foreground, tc.loss_weights)
            if tc.loss_weights.rig_prior:
                losses["rig_prior"] = tc.loss_weights.rig_prior * rig_prior_loss(
                    self.model, tc.loss_weights, tc.rig_prior_points, generator
                )
        values = self.generator_update(losses, list(self.optimizers))
        self.end_step()
        return values, batch, image, image

    @torch.no_grad()
    def render_frames(self, batch: dict, side: int = 32) -> np.ndarray:
        """Full renders of a batch's frames at ``side`` pixels (for the image log)."""
        image = batch["image"]
        h = image.shape[2]
        step = h / side
        ys, xs = torch.meshgrid(
            torch.arange(side) * step + (step - 1) / 2, torch.arange(side) * step + (step - 1) / 2, indexing="ij"
        )
        pixels = torch.stack([xs, ys], -1).reshape(1, -1, 2).expand(image.shape[0], -1, -1).to(self.device)
        self.model.eval()
        try:
            with torch.enable_grad():
                out = self.model(pixels, self.frames(batch), self.camera)
        finally:
            self.model.train()
        rgb = out.rgb.detach().reshape(-1, side, side, 3).clamp(0, 1)
        return (rgb.cpu().numpy() * 255).round().astype(np.uint8)

    def log_images(self, logger, generated, source, driving) -> None:
        renders = self.render_frames(generated)
        real = torch.nn.functional.interpolate(source, size=renders.shape[1:3], mode="area")
        real = (real.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        logger.images(self.state.step, np.concatenate([np.concatenate([r, f], axis=1) for r, f in zip(real, renders)]))


__all__ = ["AvatarTrainer", "avatar_losses"]
