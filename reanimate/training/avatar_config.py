"""Training hyper-parameters of an avatar: the ``train_params`` section of
``configs/avatar/*.yaml`` (defaults: the authors' ``IMavatar_supervised.conf`` and supp. 2.5:
60 epochs, Adam 1e-4 with betas (0.9, 0.999) halved after 40 epochs, one frame of 2048
rays per step, half of them in the face box)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .avatar_losses import AvatarLossWeights
from .config import LoopConfig


@dataclass
class AvatarTrainConfig(LoopConfig):
    """``train_params`` of an avatar config (defaults: the authors')."""

    num_epochs: int = 60
    epoch_milestones: list[int] = field(default_factory=lambda: [40])
    batch_size: int = 1
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    num_pixels: int = 2048
    box_fraction: float = 0.5  # of the rays drawn inside the face box (the authors' half)
    box_margin: float = 0.1  # the face box: the tracked landmarks' box grown by this fraction per side
    refine_frames: bool = False  # also learn per-frame expression and pose corrections (own Adam)
    lr_frames: float = 1e-4  # the authors' learning_rate_cam
    hold_out_every: int = 0  # > 0: frames i with i % n == 0 are not trained on (an interpolation test split)
    deformation_warmup_steps: int = 0  # > 0: fit the deformation network to the rig first (avatar_rig_prior)
    rig_prior_points: int = 1024  # samples around the template per step for loss_weights.rig_prior
    lr_decay: float = 0.5  # supp. 2.5: halved at the milestone
    precise_bn_batches: int = 0
    num_workers: int = 0
    loss_weights: AvatarLossWeights = field(default_factory=AvatarLossWeights)

    SECTIONS: ClassVar[dict[str, type]] = {"loss_weights": AvatarLossWeights}

    def validate(self) -> None:
        super().validate()
        if self.num_pixels < 2:
            raise ValueError(f"num_pixels must be at least 2, got {self.num_pixels}")
        if not 0 <= self.box_fraction <= 1:
            raise ValueError(f"box_fraction must be in [0, 1], got {self.box_fraction}")
        if self.hold_out_every < 0 or self.hold_out_every == 1:
            raise ValueError(f"hold_out_every must be 0 (off) or at least 2, got {self.hold_out_every}")
        if self.deformation_warmup_steps < 0 or self.rig_prior_points < 1:
            raise ValueError("deformation_warmup_steps must be >= 0 and rig_prior_points >= 1")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {self.betas}")


__all__ = ["AvatarTrainConfig"]
