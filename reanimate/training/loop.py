"""The training loop every model family shares (``reanimate train``).

:class:`TrainingLoop` owns what does not depend on the networks: the distributed
context, the seeded data order, mixed precision, Adam optimisers with step-decay
schedules, the weight average (EMA), precise BatchNorm statistics, atomic checkpoints and
exact resumption, logging, Ctrl-C / time / step limits. A family subclasses it and
supplies its networks, optimiser groups and one training step
(:class:`reanimate.training.trainer.Trainer` for FOMM,
:class:`reanimate.training.mmfa_trainer.MMFATrainer` for MMFA); :func:`train` and
:func:`resume` pick the subclass from the config's ``model_params.family``.

Reproducibility: every random draw of a step is a function of (seed, epoch, position)
for the data (:class:`~reanimate.data.frames.SeededSampler`) and of (seed, step, rank)
for the step's own randomness (:meth:`TrainingLoop.step_generator`), not of a global RNG
stream. So a run stopped after any step and resumed with ``--resume`` computes exactly
the losses an uninterrupted run would (on CPU; CUDA kernels may not be bitwise
deterministic).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .. import checkpoint as model_checkpoint
from ..data.frames import FramesDataset, RepeatedDataset, SeededSampler
from ..device import autocast, select_device
from ..errors import InputError, ReanimateError
from . import distributed
from .batchnorm import recompute_batchnorm_statistics
from .checkpoints import EMA_FILE, TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from .ema import ema_decay_at, update_ema
from .logger import TrainLogger
from .run_options import AMP_DTYPES, CONFIG_FILE, RUN_FILE, RUN_SETTINGS, TrainOptions, TrainResult

log = logging.getLogger(__name__)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of one step's random draws on one rank."""
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


class TrainingLoop:
    """The shared loop. Subclasses set, in :meth:`build` (called by ``__init__``):

    - ``self.model``: the networks, with ``parts()`` and ``config.to_yaml()`` (the own
      checkpoint format, :mod:`reanimate.checkpoint`);
    - ``self.ema``: None or a second model of the same kind (``train_params.ema_decay``),
      averaged over :meth:`averaged_networks`;
    - ``self.optimizers``: name -> ``torch.optim.Optimizer`` (step-decayed together);
    - ``self.vgg_source``: what the perceptual loss measures with (for the run's summary);

    and implement :meth:`train_step`, :meth:`averaged_networks`, :meth:`inference_forward`
    (precise BatchNorm statistics) and :meth:`log_images`. ``train_config`` needs the
    fields of :class:`reanimate.training.config.LoopConfig`.
    """

    def __init__(self, config, run_dir: str | os.PathLike, options: TrainOptions, train_config):
        self.config = config
        self.run_dir = Path(run_dir)
        self.options = options
        self.context = distributed.init_distributed(select_device(options.device))
        self.device = self.context.device
        self.train_config = tc = train_config
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

        self.dataset = RepeatedDataset(self.training_samples(), tc.num_repeats)
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
                self.data_root,
                f"{len(self.dataset)} training samples per epoch (videos x num_repeats) "
                f"make no batch of {tc.batch_size}; lower --batch-size or raise num_repeats",
            )

        self.model: nn.Module
        self.ema: nn.Module | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.vgg_source = "not used"
        self.build()
        if self.ema is not None:
            update_ema(self.averaged_networks(self.ema), self.averaged_networks(self.model), 0.0)
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(opt, tc.epoch_milestones, gamma=tc.lr_decay)
            for name, opt in self.optimizers.items()
        }
        use_scaler = self.autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None
        self.state = TrainingState()

    # -- what a family supplies ---------------------------------------------------
    def training_samples(self) -> Dataset:
        """The samples of one pass (before ``num_repeats``); sets ``self.data_root`` (for
        error messages). Default: the config's videos (``dataset_params``), wrapped by
        :meth:`wrap_dataset`."""
        dataset_params = self.config.raw.get("dataset_params") or {}
        videos = FramesDataset.from_config(dataset_params, is_train=True, root_dir=self.options.data_root)
        self.data_root = videos.root
        return self.wrap_dataset(videos)

    def wrap_dataset(self, videos: FramesDataset) -> Dataset:
        """The dataset of training samples built on the config's videos (default: as is)."""
        return videos

    def build(self) -> None:
        """Set ``model``, ``ema``, ``optimizers`` and ``vgg_source`` (see the class doc)."""
        raise NotImplementedError

    def initialise(self) -> None:
        """A new run's warm start, before its first step (not called on resume: the
        checkpoint holds its result). Default: nothing."""

    @staticmethod
    def averaged_networks(model: nn.Module) -> nn.ModuleList:
        """The networks of ``model`` that the weight average follows."""
        raise NotImplementedError

    def inference_forward(self, models: list[nn.Module], batch: dict) -> None:
        """Run each of ``models`` on ``batch`` as at inference (for BatchNorm statistics)."""
        raise NotImplementedError

    def train_step(self, batch: dict) -> tuple[dict[str, float], Any, torch.Tensor, torch.Tensor]:
        """One optimisation step: ``(loss values, what was generated, source, driving)``."""
        raise NotImplementedError

    def log_images(self, logger: TrainLogger, generated: Any, source: torch.Tensor, driving: torch.Tensor) -> None:
        """Write the image grid of a step."""
        raise NotImplementedError

    # -- helpers for families -----------------------------------------------------
    def step_generator(self) -> torch.Generator:
        """The CPU generator of this step's random draws (a function of seed, step and rank)."""
        return torch.Generator().manual_seed(step_seed(self.options.seed, self.state.step, self.context.rank))

    def adam(self, parameters, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        return torch.optim.Adam(parameters, lr=lr, betas=betas)

    def update_average(self) -> None:
        if self.ema is not None:
            decay = ema_decay_at(self.train_config.ema_decay, self.state.step)
            update_ema(self.averaged_networks(self.ema), self.averaged_networks(self.model), decay)

    def check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise ReanimateError(
                f"the loss became {loss.item()} at step {self.state.step}; lower the learning rate or try without --amp"
            )

    def generator_update(self, losses: dict[str, torch.Tensor], optimizers: list[str]) -> dict[str, float]:
        """Backpropagate the sum of ``losses``, step the named optimisers, clear every
        gradient and update the weight average. Returns the loss values."""
        loss = sum(losses.values())
        self.check_finite(loss)
        self._backward(loss)
        for name in optimizers:
            self._optimizer_step(name)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.update_average()
        return {k: float(v.detach()) for k, v in losses.items()}

    def discriminator_update(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """The discriminator's step on its losses (G/D alternation). Returns their values."""
        self._backward(sum(losses.values()))
        self._optimizer_step("discriminator")
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        return {k: float(v.detach()) for k, v in losses.items()}

    def end_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def _check_amp(self, amp: str | None):
        if amp in (None, "", "none"):
            return None
        if amp not in AMP_DTYPES:
            raise ReanimateError(f"--amp must be bf16, fp16 or none, got {amp!r}")
        if amp == "fp16" and self.device.type != "cuda":
            raise ReanimateError("--amp fp16 needs a CUDA device (use bf16 on CPU)")
        return AMP_DTYPES[amp]

    # -- state --------------------------------------------------------------------
    def restore(self, path: Path) -> None:
        self.state = load_checkpoint(path, self.model, self.optimizers, self.schedulers, self.scaler)
        if self.ema is not None:
            if (path / EMA_FILE).is_file():
                model_checkpoint.load_own_into(path / EMA_FILE, self.ema)
            else:
                log.warning("%s has no %s; the weight average starts again from the current weights", path, EMA_FILE)
                update_ema(self.averaged_networks(self.ema), self.averaged_networks(self.model), 0.0)
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
        inference (:meth:`inference_forward`) on one pass over a fixed, seeded choice of
        training batches, drawn apart from the training stream so that a resumed run still
        matches an uninterrupted one."""
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
            with self._autocast():
                self.inference_forward(list(models), batch)

        networks = nn.ModuleList([self.averaged_networks(model) for model in models])
        used = recompute_batchnorm_statistics(networks, forward, itertools.islice(loader, count))
        if used and self.context.is_main:
            log.info("BatchNorm statistics recomputed over %d batches", used)
        return used

    def lrs(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    # -- loop ---------------------------------------------------------------------
    def _autocast(self):
        return autocast(self.device, self.autocast_dtype)

    def _to_device(self, image: torch.Tensor) -> torch.Tensor:
        image = image.to(self.device, non_blocking=True)
        if self.options.channels_last and image.dim() == 4:
            image = image.contiguous(memory_format=torch.channels_last)
        return image

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
                            self.log_images(logger, generated, source, driving)
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


# -- runs ---------------------------------------------------------------------------


def _trainer_class(doc: dict):
    """The :class:`TrainingLoop` subclass of a config document's family."""
    family = (doc.get("model_params") or {}).get("family", "fomm")
    if family == "fomm":
        from .trainer import Trainer

        return Trainer
    if family == "mmfa":
        from .mmfa_trainer import MMFATrainer

        return MMFATrainer
    if family == "avatar":
        from .avatar_trainer import AvatarTrainer

        return AvatarTrainer
    raise ReanimateError(f"model_params.family {family!r}: this family cannot be trained (known: fomm, mmfa, avatar)")


def _load_run_config(config, name: str = "model"):
    """A config object of its family from a path, built-in name, document or object."""
    if isinstance(config, dict):
        return _trainer_class(config).config_from_document(config, name)
    if isinstance(config, (str, os.PathLike)):
        from ..models.config import load_config_document, resolve_config_path

        path = resolve_config_path(config)
        doc = load_config_document(path)
        try:
            return _trainer_class(doc).config_from_document(doc, path.stem)
        except (ValueError, TypeError) as exc:
            raise InputError(path, f"not a model config: {exc}") from None
    return config


def _write_run_files(run_dir: Path, config, options: TrainOptions) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(config.to_yaml())
    settings = {k: getattr(options, k) for k in RUN_SETTINGS}
    (run_dir / RUN_FILE).write_text(json.dumps(settings, indent=1))


def train(config, run_dir: str | os.PathLike, options: TrainOptions | None = None) -> TrainResult:
    """Start a new run in ``run_dir`` (which must not hold a run already). ``config``: a
    path, built-in name or loaded config of any trainable family."""
    options = options or TrainOptions()
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILE).exists():
        raise InputError(run_dir, "already holds a training run; continue it with --resume or choose a new folder")
    config = _load_run_config(config)
    if "train_params" not in config.raw:
        raise InputError(config.name, "the config has no train_params section")
    trainer = _trainer_class(config.raw)(config, run_dir, options)
    try:
        trainer.initialise()
        if trainer.ema is not None:
            update_ema(trainer.averaged_networks(trainer.ema), trainer.averaged_networks(trainer.model), 0.0)
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
    config = _load_run_config(doc, Path(run_dir).name)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise InputError(run_dir, "has no checkpoint yet; start it again with train")
    trainer = _trainer_class(doc)(config, run_dir, options)
    try:
        trainer.restore(checkpoint)
        distributed.barrier(trainer.context)
        return trainer.fit()
    finally:
        distributed.shutdown(trainer.context)


__all__ = ["TrainOptions", "TrainResult", "TrainingLoop", "resume", "step_seed", "train"]
