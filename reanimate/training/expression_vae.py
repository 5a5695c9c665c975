"""Training MMFA's expression VAE (MMFA paper, Sec. 3.3, Eq. 13) on precomputed features.

The VAE is trained after MMFA, on the 256-d expression features ``f_delta`` MMFA's
expression encoder gives (here a tensor ``(N, 256)``, so this does not depend on the
main model). One step:

1. E_f and G_f (:class:`~reanimate.models.mmfa.expression_vae.ExpressionVAE`) minimise
   ``lambda_f ||f - f_hat||^2 + w(step) lambda_kl KL(N(mu, sigma) || N(0, I))
   + lambda_adv L_adv`` (Eq. 13) with Adam;
2. the :class:`~reanimate.models.mmfa.expression_vae.LatentDiscriminator` takes its own
   Adam step on real features against the (detached) reconstructions.

L_adv is the least-squares GAN loss, as MMFA's image GAN (supp. A.2). The paper adds it
because the KL term converges faster than the reconstruction and the VAE collapses to
the average expression; the optional KL warm-up ``w(step)`` (linear from 0 to 1 over
``kl_warmup_steps``) is the usual second remedy for the same problem.

Losses are in standardised feature units (``ExpressionVAE.normalize``: the training
features' per-dimension mean removed, divided by their overall standard deviation), so
the weights below do not depend on the scale of MMFA's feature.

Reproducibility: the network initialisation is a function of ``seed``; the batch of a
step (a permutation of the features per epoch) and the reparameterisation noise are
functions of (seed, step), not of a global RNG stream. So a run stopped after any step
and resumed computes exactly the losses of an uninterrupted one (on the CPU).

Checkpoint layout inside ``RUN_DIR/checkpoints/`` (as ``training/checkpoints.py``)::

    step-00002000/
        model.safetensors     the VAE (weights, feature standardisation, config in the
                              header): :func:`load_expression_vae` reads it for inference
        state.safetensors     discriminator weights and the optimizers' moments
        state.json            step, training config, features fingerprint, optimizer
                              param groups
    latest.json               {"checkpoint": "step-00002000"}

Each folder is written under a temporary name and renamed when complete, then
``latest.json`` is replaced, so an interruption leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from tqdm import tqdm

from ..checkpoint import follow_umask
from ..errors import CheckpointError, InputError
from ..io.files import atomic_path
from ..models.mmfa.expression_vae import (
    ExpressionVAE,
    ExpressionVAEConfig,
    LatentDiscriminator,
    LatentDiscriminatorConfig,
)
from .checkpoints import LATEST, _join_optimizer, _split_optimizer, _write_json, checkpoint_dir, latest_checkpoint

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
MODEL_FORMAT = "reanimate.expression_vae"
MODEL_FORMAT_VERSION = "1"
STATE_FORMAT = "reanimate.expression_vae_train_state"
STATE_VERSION = 1
# Fields of VAETrainConfig a resumed run may change: they do not alter the steps already done.
RESUMABLE_CHANGES = ("steps", "checkpoint_steps")


# --------------------------------------------------------------------------------------
# Losses of Eq. 13
# --------------------------------------------------------------------------------------


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` in closed form,
    ``0.5 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)``: summed over the latent
    dimensions (the KL of the whole latent vector), averaged over the batch.
    ``mu``, ``logvar``: ``(B, latent_dim)`` -> scalar."""
    assert mu.shape == logvar.shape and mu.ndim == 2, f"mu {tuple(mu.shape)}, logvar {tuple(logvar.shape)}"
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=-1).mean()


def reconstruction_loss(target: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """``||f - f_hat||_2^2`` of Eq. 13: squared error summed over the feature, averaged
    over the batch. ``(B, D)`` each -> scalar."""
    assert target.shape == reconstruction.shape, f"{tuple(target.shape)} vs {tuple(reconstruction.shape)}"
    return (target - reconstruction).square().sum(dim=-1).mean()


def generator_adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN loss of the VAE: ``mean (1 - D(f_hat))^2``."""
    return (1 - fake_scores).square().mean()


def discriminator_adversarial_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN loss of the discriminator: ``mean (1 - D(f))^2 + mean D(f_hat)^2``."""
    return (1 - real_scores).square().mean() + fake_scores.square().mean()


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclass
class VAETrainConfig:
    """Hyper-parameters of the expression VAE's training.

    The paper gives Adam with ``betas = (0.5, 0.9)`` (supp. B.2, "the latent VAE is also
    trained similarly") but not the loss weights. The defaults here are set on features
    standardised to unit average variance per dimension:

    - ``lambda_f`` 1 on the squared error summed over the 256 dimensions;
    - ``lambda_kl`` 0.05: the objective of a Gaussian decoder whose variance is
      ``lambda_kl / 2`` = 2.5% of a standardised dimension's. 1 (the textbook ELBO at unit
      variance) collapses: on the tests' 4-cluster mixture the decodings keep 15% of the
      within-cluster variation (56% with 0.05), the clusters alone stay apart;
    - ``lambda_adv`` 1: the least-squares GAN term is at most ~1 per sample against
      reconstruction errors of 5-50. On the mixture it lowered the reconstruction error
      (5.0 against 8.6 without it, default sizes, 300 steps); 10 or 50 raised it, and no
      weight undid the collapse of ``lambda_kl`` = 1 (the KL weight is what matters there);
    - ``kl_warmup_steps`` 2000 (a tenth of ``steps``): the KL weight rises linearly from 0,
      so the encoder learns distinguishable codes before the prior pulls them together,
      the usual remedy for the collapse the paper describes (0: off). On the mixture it
      lowered the final reconstruction error by 15-30% with small networks;
    - ``lr`` 5e-5 as MMFA's (supp. B.2); on the mixture it trains as well as 2e-4 or 1e-3
      in 2000 steps.

    ``checkpoint_steps``: also write a checkpoint every N steps (one is always written at
    the end). ``vae`` and ``discriminator``: the networks' sizes.
    """

    lambda_f: float = 1.0
    lambda_kl: float = 0.05
    lambda_adv: float = 1.0
    kl_warmup_steps: int = 2000
    lr: float = 5e-5
    betas: tuple[float, float] = (0.5, 0.9)
    batch_size: int = 256
    steps: int = 20000
    seed: int = 0
    checkpoint_steps: int = 2000
    vae: ExpressionVAEConfig = field(default_factory=ExpressionVAEConfig)
    discriminator: LatentDiscriminatorConfig = field(default_factory=LatentDiscriminatorConfig)

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if isinstance(self.vae, dict):
            self.vae = ExpressionVAEConfig(**self.vae)
        if isinstance(self.discriminator, dict):
            self.discriminator = LatentDiscriminatorConfig(**self.discriminator)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAETrainConfig:
        return cls(**data)

    def kl_weight(self, step: int) -> float:
        """The KL warm-up factor ``w(step)`` in [0, 1] for the step numbered ``step`` (0-based)."""
        if self.kl_warmup_steps <= 0:
            return 1.0
        return min(1.0, step / self.kl_warmup_steps)


@dataclass
class VAETrainResult:
    run_dir: Path
    step: int  # optimisation steps done in the run so far
    checkpoint: Path | None  # the last one written
    losses: list[dict[str, float]] = field(default_factory=list)  # per step of this call
    seconds: float = 0.0
    config: VAETrainConfig = field(default_factory=VAETrainConfig)


# --------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------


def save_expression_vae(path: str | os.PathLike, vae: ExpressionVAE, extra: dict[str, str] | None = None) -> Path:
    """Write the VAE (weights, feature standardisation, config in the header) as one
    ``.safetensors`` file, atomically; ``extra`` is added to the header metadata."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(path, f"output folder {path.parent} does not exist")
    tensors = {k: v.detach().cpu().contiguous() for k, v in vae.state_dict().items()}
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "config": json.dumps(dataclasses.asdict(vae.config)),
        **(extra or {}),
    }
    with atomic_path(path) as tmp, follow_umask(tmp):
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _model_file(path: Path) -> Path:
    """A model file, a checkpoint folder or a run folder (its latest checkpoint) -> the file."""
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return path / MODEL_FILE
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise CheckpointError(path, f"no {MODEL_FILE} and no checkpoints/{LATEST}; give an expression VAE file")
        return checkpoint / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(path, "no such expression VAE file")
    return path


def load_expression_vae(path: str | os.PathLike, device: str | torch.device = "cpu") -> ExpressionVAE:
    """The VAE for inference (eval mode) from ``model.safetensors``, a checkpoint folder
    (``.../checkpoints/step-00002000``) or a run folder (its latest checkpoint)."""
    path = _model_file(Path(path))
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({str(exc)[:200]})") from None
    if metadata.get("format") != MODEL_FORMAT:
        raise CheckpointError(path, f"not an expression VAE file (format {metadata.get('format')!r})")
    try:
        config = ExpressionVAEConfig(**json.loads(metadata["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(path, f"embedded config is unusable ({exc})") from None
    vae = ExpressionVAE(config)
    try:
        vae.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not match the embedded config ({str(exc)[:200]})") from None
    return vae.to(device).eval()


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def _seed(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([seed, *keys, 0xE7A]).generate_state(1)[0])


_BATCH_STREAM, _NOISE_STREAM = 1, 2


class _Batches:
    """The feature indices of step ``s``: epoch ``s // per_epoch`` is a permutation of the
    features seeded by (seed, epoch), cut into ``per_epoch`` batches (the remainder of
    ``N / batch`` is left out of that epoch)."""

    def __init__(self, count: int, batch_size: int, seed: int):
        self.count, self.batch_size, self.seed = count, min(batch_size, count), seed
        self.per_epoch = count // self.batch_size
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(_seed(self.seed, _BATCH_STREAM, epoch))
            self._epoch, self._order = epoch, torch.randperm(self.count, generator=generator)
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]


def _fingerprint(features: torch.Tensor) -> str:
    data = features.detach().cpu().contiguous().numpy()
    digest = hashlib.sha256(data.tobytes()).hexdigest()[:16]
    return f"{tuple(data.shape)} {data.dtype} {digest}"


def _check_features(features: torch.Tensor, config: VAETrainConfig) -> None:
    d = config.vae.feature_dim
    if not torch.is_tensor(features) or features.ndim != 2 or features.shape[1] != d:
        shape = tuple(features.shape) if torch.is_tensor(features) else type(features).__name__
        raise InputError(None, f"features: expected a tensor (N, {d}), got {shape}")
    if features.shape[0] < 2:
        raise InputError(None, f"features: need at least 2 feature vectors to train on, got {features.shape[0]}")
    if not torch.isfinite(features).all():
        raise InputError(None, "features: contain NaN or infinite values; recompute them")


def _build(config: VAETrainConfig, device: torch.device) -> tuple[ExpressionVAE, LatentDiscriminator]:
    # The initial weights are a function of the seed alone; the global RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(config.seed, 0))
        vae, discriminator = ExpressionVAE(config.vae), LatentDiscriminator(config.discriminator)
    return vae.to(device), discriminator.to(device)


def _save(
    run_dir: Path,
    vae: ExpressionVAE,
    discriminator: LatentDiscriminator,
    optimizers: dict[str, torch.optim.Optimizer],
    config: VAETrainConfig,
    step: int,
    fingerprint: str,
) -> Path:
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    with atomic_path(root / name, directory=True) as tmp:
        save_expression_vae(tmp / MODEL_FILE, vae, {"step": str(step)})
        tensors = {f"discriminator.{k}": v.detach().cpu().contiguous() for k, v in discriminator.state_dict().items()}
        doc = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step": step,
            "config": config.to_dict(),
            "features": fingerprint,
            "optimizers": {k: _split_optimizer(k, o.state_dict(), tensors) for k, o in optimizers.items()},
        }
        with follow_umask(tmp / "state.safetensors") as state_file:
            save_file(tensors, str(state_file))
        _write_json(tmp / "state.json", doc)
    _write_json(root / LATEST, {"checkpoint": name})
    return root / name


def _read_state(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    try:
        doc = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(path, f"cannot read the training state ({exc.__class__.__name__}: {exc})") from None
    if doc.get("format") != STATE_FORMAT:
        raise CheckpointError(path, f"not an expression VAE training checkpoint (format {doc.get('format')!r})")
    return doc, tensors


def _resumed_config(path: Path, saved: VAETrainConfig, given: VAETrainConfig | None) -> VAETrainConfig:
    if given is None:
        return saved
    changed = [
        f.name
        for f in dataclasses.fields(VAETrainConfig)
        if f.name not in RESUMABLE_CHANGES and getattr(given, f.name) != getattr(saved, f.name)
    ]
    if changed:
        raise InputError(
            path, f"the run was trained with other {', '.join(changed)}; resume with its config or start a new run"
        )
    return given


def train_expression_vae(
    features: torch.Tensor,
    run_dir: str | os.PathLike,
    config: VAETrainConfig | None = None,
    progress: bool = False,
    resume: bool = False,
    device: str | torch.device = "cpu",
) -> VAETrainResult:
    """Train the expression VAE on ``features (N, feature_dim)`` up to ``config.steps``
    steps, writing checkpoints under ``run_dir/checkpoints``.

    ``resume``: continue from the run's latest checkpoint, with the same features (checked
    by fingerprint) and the saved config (``config`` may only change ``steps`` and
    ``checkpoint_steps``; None takes the saved one). Without ``resume`` the folder must not
    hold a run. ``progress``: a tqdm bar. A run killed between checkpoints resumes from
    its last one (every ``checkpoint_steps`` and at the end) and repeats the same steps.
    """
    run_dir, device = Path(run_dir), torch.device(device)
    existing = latest_checkpoint(run_dir)
    if resume:
        if existing is None:
            raise InputError(run_dir, "has no expression VAE checkpoint to resume; start it without resume")
        doc, tensors = _read_state(existing)
        config = _resumed_config(existing, VAETrainConfig.from_dict(doc["config"]), config)
    elif existing is not None:
        raise InputError(run_dir, "already holds an expression VAE run; resume it or choose a new folder")
    config = config or VAETrainConfig()
    _check_features(features, config)
    fingerprint = _fingerprint(features)
    features = features.detach().to(device=device, dtype=torch.float32)

    vae, discriminator = _build(config, device)
    optimizers = {
        "vae": torch.optim.Adam(vae.parameters(), lr=config.lr, betas=config.betas),
        "discriminator": torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=config.betas),
    }
    step = 0
    if resume:
        if doc["features"] != fingerprint:
            raise InputError(existing, f"was trained on other features ({doc['features']}); give the same features")
        resumed = load_expression_vae(existing / MODEL_FILE, device)
        vae.load_state_dict(resumed.state_dict())
        prefix = "discriminator."
        discriminator.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(_join_optimizer(doc["optimizers"][name], tensors))
        step = int(doc["step"])
        log.info("resumed the expression VAE from %s (step %d)", existing, step)
    else:
        # Standardisation (module docstring of models/mmfa/expression_vae.py): per-dimension
        # mean, one overall scale so that near-constant dimensions are not blown up.
        mean = features.mean(dim=0)
        scale = (features - mean).square().mean().sqrt().clamp_min(1e-8)
        vae.set_normalization(mean, scale)

    batches = _Batches(features.shape[0], config.batch_size, config.seed)
    vae.train()
    discriminator.train()
    losses: list[dict[str, float]] = []
    checkpoint = None
    start = time.monotonic()
    bar = tqdm(
        total=config.steps, initial=min(step, config.steps), unit="step", dynamic_ncols=True, disable=not progress
    )
    try:
        while step < config.steps:
            values = _train_step(vae, discriminator, optimizers, features[batches(step).to(device)], config, step)
            step += 1
            losses.append(values)
            bar.update(1)
            bar.set_postfix(rec=f"{values['reconstruction']:.3f}", kl=f"{values['kl']:.2f}", refresh=False)
            if step == config.steps or (config.checkpoint_steps and step % config.checkpoint_steps == 0):
                checkpoint = _save(run_dir, vae, discriminator, optimizers, config, step, fingerprint)
                log.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
        if checkpoint is None:  # resumed at or past config.steps: nothing to train
            checkpoint = existing
    finally:
        bar.close()
    vae.eval()
    return VAETrainResult(
        run_dir=run_dir,
        step=step,
        checkpoint=checkpoint,
        losses=losses,
        seconds=time.monotonic() - start,
        config=config,
    )


def _train_step(
    vae: ExpressionVAE,
    discriminator: LatentDiscriminator,
    optimizers: dict[str, torch.optim.Optimizer],
    f: torch.Tensor,
    config: VAETrainConfig,
    step: int,
) -> dict[str, float]:
    """One step of Eq. 13 on the batch ``f (B, D)``: the VAE, then the discriminator."""
    generator = torch.Generator(device=f.device).manual_seed(_seed(config.seed, _NOISE_STREAM, step))
    out = vae(f, generator=generator)
    real = vae.normalize(f)
    fake = vae.normalize(out.reconstruction)
    reconstruction = reconstruction_loss(real, fake)
    kl = kl_divergence(out.mu, out.logvar)
    kl_weight = config.kl_weight(step)
    discriminator.requires_grad_(False)
    adversarial = generator_adversarial_loss(discriminator(fake)) if config.lambda_adv else torch.zeros(())
    discriminator.requires_grad_(True)
    total = config.lambda_f * reconstruction + kl_weight * config.lambda_kl * kl + config.lambda_adv * adversarial
    optimizers["vae"].zero_grad(set_to_none=True)
    total.backward()
    optimizers["vae"].step()

    values = {"reconstruction": reconstruction.item(), "kl": kl.item(), "kl_weight": kl_weight}
    if config.lambda_adv:
        d_loss = discriminator_adversarial_loss(discriminator(real), discriminator(fake.detach()))
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["discriminator"].step()
        values.update(adversarial=adversarial.item(), discriminator=d_loss.item())
    return values


__all__ = [
    "MODEL_FILE",
    "VAETrainConfig",
    "VAETrainResult",
    "discriminator_adversarial_loss",
    "generator_adversarial_loss",
    "kl_divergence",
    "load_expression_vae",
    "reconstruction_loss",
    "save_expression_vae",
    "train_expression_vae",
]
