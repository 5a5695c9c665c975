"""The training loop of ``reanimate train`` (the official ``run.py --mode train``).

One step (reference ``train.py``): the keypoint detector and generator minimise the
weighted sum of their losses (:class:`GeneratorObjective`) with Adam, then, for the
``-adv`` configs, the discriminator takes its own step (:class:`DiscriminatorObjective`).
Learning rates decay by 0.1 at the config's epoch milestones. An epoch is one pass over
the training videos repeated ``num_repeats`` times.

Reproducibility: every random draw of a step is a function of (seed, epoch, position)
for the data (:class:`~reanimate.data.frames.SeededSampler`) and of (seed, step, rank)
for the equivariance transform, not of a global RNG stream. So a run stopped after any
step and resumed with ``--resume`` computes exactly the losses an uninterrupted run
would (on CPU; CUDA kernels may not be bitwise deterministic).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import checkpoint as model_checkpoint
from ..data.frames import FramesDataset, RepeatedDataset, SeededSampler
from ..device import select_device
from ..errors import InputError, ReanimateError
from ..geometry.tps import ThinPlateSpline
from ..models import ModelConfig, build_model, load_config
from . import distributed
from .batchnorm import recompute_batchnorm_statistics
from .checkpoints import EMA_FILE, TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import ADAM_BETAS, LR_DECAY, TrainConfig
from .ema import ema_decay_at, update_ema
from .logger import TrainLogger, image_grid
from .objectives import DiscriminatorObjective, GeneratorObjective
from .run_options import AMP_DTYPES, CONFIG_FILE, RUN_FILE, RUN_SETTINGS, TrainOptions, TrainResult
from .vgg import load_vgg19

log = logging.getLogger(__name__)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank, 0x7E5]).generate_state(1)[0])


class _StopRequest:
    """First Ctrl-C: finish the current step, checkpoint and stop; second: abort."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("interrupt: stopping after this step and writing a checkpoint (Ctrl-C again to abort)")

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Builds everything a run needs from a :class:`ModelConfig` (with ``train_params``
    and ``dataset_params``) and trains. Use :func:`train` / :func:`resume`."""

    def __init__(self, config: ModelConfig, run_dir: str | os.PathLike, options: TrainOptions):
        self.config = config
        self.run_dir = Path(run_dir)
        self.options = options
        self.context = distributed.init_distributed(select_device(options.device))
        self.device = self.context.device
        self.train_config = tc = TrainConfig.from_dict(config.raw.get("train_params"))
        if options.batch_size:
            tc.batch_size = options.batch_size
        if options.num_epochs:
            tc.num_epochs = options.num_epochs
        if options.num_repeats:
            tc.num_repeats = options.num_repeats
        if tc.batch_size % self.context.world_size:
            raise ReanimateError(
                f"batch size {tc.batch_size} is not divisible by the {self.context.world_size} processes"
            )
        self.batch_per_rank = tc.batch_size // self.context.world_size
        self.autocast_dtype = self._check_amp(options.amp)

        dataset_params = config.raw.get("dataset_params") or {}
        videos = FramesDataset.from_config(dataset_params, is_train=True, root_dir=options.data_root)
        self.dataset = RepeatedDataset(videos, tc.num_repeats)
        self.sampler = SeededSampler(
            len(self.dataset),
            seed=options.seed,
            shuffle=True,
            rank=self.context.rank,
            world_size=self.context.world_size,
        )
        self.steps_per_epoch = len(self.sampler) // self.batch_per_rank
        if self.steps_per_epoch == 0:
            raise InputError(
                videos.root,
                f"{len(self.dataset)} training samples per epoch (videos x num_repeats) "
                f"make no batch of {tc.batch_size}; lower --batch-size or raise num_repeats",
            )

        self.model = build_model(config, with_discriminator=tc.uses_gan, seed=options.seed)
        if options.backbone_weights:
            self._load_backbone(options.backbone_weights)
        if options.init:
            self._init_from(options.init)
        self.model.to(self.device)
        if options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        kp_detector = distributed.sync_batchnorm(self.model.kp_detector, self.context)
        generator = distributed.sync_batchnorm(self.model.generator, self.context)
        self.model.kp_detector, self.model.generator = kp_detector, generator
        self.ema = None  # the averaged networks (train_params.ema_decay)
        if tc.ema_decay:
            self.ema = build_model(config, seed=options.seed).to(self.device)
            if options.channels_last:
                self.ema.to(memory_format=torch.channels_last)
            update_ema(self._networks(self.ema), self._networks(self.model), 0.0)

        vgg, self.vgg_source = (None, "not used")
        if any(w != 0 for w in tc.loss_weights.perceptual):
            vgg, self.vgg_source = load_vgg19(options.vgg_weights)
            vgg.to(self.device)
        imagenet = vgg is not None and not self.vgg_source.startswith("random")
        ms_ssim = tc.loss_weights.ms_ssim_weight(imagenet)
        if ms_ssim and self.context.is_main:
            log.warning("adding 1 - MS-SSIM with weight %g to the loss (loss_weights.ms_ssim)", ms_ssim)
        self.generator_objective = GeneratorObjective(
            kp_detector, generator, self.model.discriminator, tc, vgg, ms_ssim, config.align_corners
        ).to(self.device)
        self.generator_step = distributed.wrap(self.generator_objective, self.context)
        self.discriminator_step = None
        if tc.uses_gan:
            self.discriminator_step = distributed.wrap(
                DiscriminatorObjective(self.model.discriminator, tc).to(self.device), self.context
            )

        self.optimizers = {
            "generator": torch.optim.Adam(generator.parameters(), lr=tc.lr_generator, betas=ADAM_BETAS),
            "kp_detector": torch.optim.Adam(kp_detector.parameters(), lr=tc.lr_kp_detector, betas=ADAM_BETAS),
        }
        if tc.uses_gan:
            self.optimizers["discriminator"] = torch.optim.Adam(
                self.model.discriminator.parameters(), lr=tc.lr_discriminator, betas=ADAM_BETAS
            )
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(opt, tc.epoch_milestones, gamma=LR_DECAY)
            for name, opt in self.optimizers.items()
        }
        use_scaler = self.autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None
        self.state = TrainingState()

    def _check_amp(self, amp: str | None):
        if amp in (None, "", "none"):
            return None
        if amp not in AMP_DTYPES:
            raise ReanimateError(f"--amp must be bf16, fp16 or none, got {amp!r}")
        if amp == "fp16" and self.device.type != "cuda":
            raise ReanimateError("--amp fp16 needs a CUDA device (use bf16 on CPU)")
        return AMP_DTYPES[amp]

    def _load_backbone(self, path: str) -> None:
        """ImageNet weights for the motion transformer's HRNet backbone (MoTrans Sec. 4)."""
        from ..models.hrnet import load_imagenet_backbone
        from ..models.motion_transformer import MotionTransformer

        estimator = self.model.kp_detector
        if not isinstance(estimator, MotionTransformer) or not estimator.config.backbone.startswith("hrnet"):
            raise ReanimateError(
                "--backbone-weights needs a config with motion_estimator: transformer and an hrnet backbone"
            )
        count = load_imagenet_backbone(estimator.backbone, path, estimator.config.backbone)
        if self.context.is_main:
            log.info("motion transformer backbone: %d tensors from %s", count, path)

    def _init_from(self, path: str) -> None:
        """Fine-tuning: networks from a checkpoint, everything else fresh."""
        loaded = model_checkpoint.load(path, self.config, with_discriminator=True)
        for name, module in self.model.parts().items():
            source = loaded.parts().get(name)
            if source is None:
                log.warning("%s has no %s weights; it starts from a random init", path, name)
                continue
            module.load_state_dict(source.state_dict())

    # -- state --------------------------------------------------------------------
    @staticmethod
    def _networks(model) -> nn.ModuleList:
        """What is trained by the generator's optimisers: detector and generator."""
        return nn.ModuleList([model.kp_detector, model.generator])

    def restore(self, path: Path) -> None:
        self.state = load_checkpoint(path, self.model, self.optimizers, self.schedulers, self.scaler)
        if self.ema is not None:
            if (path / EMA_FILE).is_file():
                model_checkpoint.load_own_into(path / EMA_FILE, self.ema)
            else:
                log.warning("%s has no %s; the weight average starts again from the current weights", path, EMA_FILE)
                update_ema(self._networks(self.ema), self._networks(self.model), 0.0)
        log.info("resumed from %s (epoch %d, step %d)", path, self.state.epoch, self.state.step)

    def save(self) -> Path | None:
        path = None
        models = [self.model] if self.ema is None else [self.model, self.ema]
        self.recompute_batchnorm(*models)
        for model in models:
            distributed.average_buffers(model, self.context)
        if self.context.is_main:
            path = save_checkpoint(
                self.run_dir, self.model, self.optimizers, self.schedulers, self.scaler, self.state, self.ema
            )
        distributed.barrier(self.context)
        return path

    def recompute_batchnorm(self, *models) -> int:
        """Precise BatchNorm statistics for the checkpoint (``train_params.precise_bn_batches``):
        the networks of each of ``models`` (the trained one, the weight average) run as at
        inference (keypoints of source and driving, then the generator) on one pass over a
        fixed, seeded choice of training batches, drawn apart from the training stream so
        that a resumed run still matches an uninterrupted one."""
        count = min(self.train_config.precise_bn_batches, self.steps_per_epoch)
        if count == 0:
            return 0
        salt = int(np.random.SeedSequence([self.options.seed, 0xB17C4]).generate_state(1)[0] >> 1)
        sampler = SeededSampler(
            len(self.dataset), seed=salt, shuffle=True, rank=self.context.rank, world_size=self.context.world_size
        )
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_per_rank,
            sampler=sampler,
            drop_last=True,
            num_workers=self._num_workers,
            generator=torch.Generator().manual_seed(salt),
        )

        def forward(batch: dict) -> None:
            source, driving = self._to_device(batch["source"]), self._to_device(batch["driving"])
            with self._autocast():
                for model in models:
                    model.generator(
                        source,
                        kp_driving=model.kp_detector(driving),
                        kp_source=model.kp_detector(source),
                        return_deformed=False,
                        driving=driving,
                    )

        networks = nn.ModuleList([self._networks(model) for model in models])
        used = recompute_batchnorm_statistics(networks, forward, itertools.islice(loader, count))
        if used and self.context.is_main:
            log.info("BatchNorm statistics recomputed over %d batches", used)
        return used

    def lrs(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    # -- loop ---------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _to_device(self, image: torch.Tensor) -> torch.Tensor:
        image = image.to(self.device, non_blocking=True)
        if self.options.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return image

    def train_step(self, batch: dict) -> tuple[dict[str, float], object, torch.Tensor, torch.Tensor]:
        tc = self.train_config
        source, driving = self._to_device(batch["source"]), self._to_device(batch["driving"])
        gen = torch.Generator().manual_seed(_step_seed(self.options.seed, self.state.step, self.context.rank))
        t = tc.transform_params
        transform = ThinPlateSpline.random(
            source.shape[0], t.sigma_affine, t.sigma_tps, t.points_tps, generator=gen
        ).to(self.device)
        bg_transform = None
        if tc.loss_weights.bg_equivariance != 0:  # drawn after the TPS: runs without it are unchanged
            bg_transform = ThinPlateSpline.random(source.shape[0], t.sigma_bg_affine, generator=gen).to(self.device)
        with self.generator_objective.frozen_discriminator(), self._autocast():
            losses, generated = self.generator_step(source, driving, transform, bg_transform)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise ReanimateError(
                f"the loss became {loss.item()} at step {self.state.step}; lower the learning rate or try without --amp"
            )
        self._backward(loss)
        self._optimizer_step("generator")
        if tc.lr_kp_detector != 0:  # as the reference: a zero rate freezes the detector
            self._optimizer_step("kp_detector")
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            update_ema(
                self._networks(self.ema), self._networks(self.model), ema_decay_at(tc.ema_decay, self.state.step)
            )
        values = {k: float(v.detach()) for k, v in losses.items()}
        if self.discriminator_step is not None:
            with self._autocast():
                d_losses = self.discriminator_step(driving, generated.output.prediction, generated.kp_driving)
            self._backward(sum(d_losses.values()))
            self._optimizer_step("discriminator")
            self.optimizers["discriminator"].zero_grad(set_to_none=True)
            values.update({k: float(v.detach()) for k, v in d_losses.items()})
        if self.scaler is not None:
            self.scaler.update()
        return values, generated, source, driving

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _optimizer_step(self, name: str) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizers[name])
        else:
            self.optimizers[name].step()

    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        self.sampler.set_epoch(epoch, skip=skip_batches * self.batch_per_rank)
        return DataLoader(
            self.dataset,
            batch_size=self.batch_per_rank,
            sampler=self.sampler,
            drop_last=True,
            num_workers=self._num_workers,
            pin_memory=self.device.type == "cuda",
        )

    @property
    def _num_workers(self) -> int:
        """Data-loading processes per rank: ``--workers``, else ``train_params.num_workers``."""
        return self.options.num_workers if self.options.num_workers is not None else self.train_config.num_workers

    def fit(self) -> TrainResult:
        tc, opts, context = self.train_config, self.options, self.context
        total_steps = tc.num_epochs * self.steps_per_epoch
        if opts.max_steps is not None:
            total_steps = min(total_steps, opts.max_steps)
        logger = TrainLogger(self.run_dir, enabled=context.is_main, tensorboard=opts.tensorboard)
        bar = tqdm(
            total=total_steps,
            initial=min(self.state.step, total_steps),
            unit="step",
            dynamic_ncols=True,
            disable=not (opts.progress and context.is_main),
        )
        start = time.monotonic()
        history: list[dict[str, float]] = []
        window: dict[str, list[float]] = {}
        checkpoint, stop_reason = None, None
        self.model.train()
        try:
            with _StopRequest() as stop:
                while self.state.epoch < tc.num_epochs and stop_reason is None:
                    for batch in self._loader(self.state.epoch, self.state.batch_in_epoch):
                        if self.state.step >= total_steps:
                            stop_reason = "max_steps"
                            break
                        values, generated, source, driving = self.train_step(batch)
                        self.state.step += 1
                        self.state.batch_in_epoch += 1
                        history.append(values)
                        for k, v in values.items():
                            window.setdefault(k, []).append(v)
                        bar.update(1)
                        bar.set_postfix(loss=f"{sum(values.values()):.4f}", epoch=self.state.epoch, refresh=False)
                        if self.state.step % tc.log_freq == 0:
                            means = distributed.mean_over_ranks(
                                {k: float(np.mean(v)) for k, v in window.items()}, context
                            )
                            logger.scalars(self.state.step, self.state.epoch, means, self.lrs())
                            window.clear()
                        if context.is_main and tc.image_freq and self.state.step % tc.image_freq == 0:
                            with torch.no_grad():
                                deformed = self.model.generator.warp(source, generated.output.deformation)
                            generated.output.deformed = deformed
                            logger.images(self.state.step, image_grid(source, driving, generated))
                        if tc.checkpoint_steps and self.state.step % tc.checkpoint_steps == 0:
                            checkpoint = self.save()
                        minutes_up = opts.max_minutes is not None and time.monotonic() - start > 60 * opts.max_minutes
                        if distributed.any_rank(stop.requested or minutes_up, context):
                            stop_reason = "interrupt" if stop.requested else "max_minutes"
                            break
                    else:
                        self._end_epoch()
                        last = self.state.epoch == tc.num_epochs
                        if last or self.state.epoch % tc.checkpoint_freq == 0:
                            checkpoint = self.save()
                        continue
                    break
                if stop_reason is not None:
                    checkpoint = self.save()
        finally:
            bar.close()
            logger.close()
        finished = self.state.epoch >= tc.num_epochs
        return TrainResult(
            self.run_dir,
            self.state,
            finished,
            stop_reason == "interrupt",
            checkpoint,
            history,
            time.monotonic() - start,
            self.vgg_source,
        )

    def _end_epoch(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.state.epoch += 1
        self.state.batch_in_epoch = 0


def _write_run_files(run_dir: Path, config: ModelConfig, options: TrainOptions) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(config.to_yaml())
    settings = {k: getattr(options, k) for k in RUN_SETTINGS}
    (run_dir / RUN_FILE).write_text(json.dumps(settings, indent=1))


def train(
    config: str | os.PathLike | ModelConfig, run_dir: str | os.PathLike, options: TrainOptions | None = None
) -> TrainResult:
    """Start a new run in ``run_dir`` (which must not hold a run already)."""
    options = options or TrainOptions()
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILE).exists():
        raise InputError(run_dir, "already holds a training run; continue it with --resume or choose a new folder")
    config = config if isinstance(config, ModelConfig) else load_config(config)
    if "train_params" not in config.raw:
        raise InputError(config.name, "the config has no train_params section")
    trainer = Trainer(config, run_dir, options)
    try:
        if trainer.context.is_main:
            _write_run_files(run_dir, config, options)
        distributed.barrier(trainer.context)
        return trainer.fit()
    finally:
        distributed.shutdown(trainer.context)


def resume(run_dir: str | os.PathLike, options: TrainOptions | None = None) -> TrainResult:
    """Continue a run from its latest checkpoint with the same config and settings.
    Only the options not in ``RUN_SETTINGS`` (device, workers, limits, progress) are
    taken from ``options``."""
    run_dir = Path(run_dir)
    try:
        settings = json.loads((run_dir / RUN_FILE).read_text())
        doc = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise InputError(run_dir, f"not a training run folder (no {RUN_FILE} / {CONFIG_FILE})") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(run_dir, f"unreadable run files ({exc.__class__.__name__})") from None
    options = dataclasses.replace(options or TrainOptions(), **{k: settings.get(k) for k in RUN_SETTINGS})
    options.init = options.backbone_weights = None  # the checkpoint replaces the initial weights
    config = ModelConfig.from_dict(doc, name=Path(run_dir).name)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise InputError(run_dir, "has no checkpoint yet; start it again with train")
    trainer = Trainer(config, run_dir, options)
    try:
        trainer.restore(checkpoint)
        distributed.barrier(trainer.context)
        return trainer.fit()
    finally:
        distributed.shutdown(trainer.context)


__all__ = ["TrainOptions", "TrainResult", "Trainer", "resume", "train"]
