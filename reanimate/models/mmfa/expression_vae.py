"""The latent VAE of MMFA's expression features (MMFA paper, Sec. 3.3 and 4.4).

MMFA's expression encoder gives every image a 256-d feature ``f_delta`` (supp. A.1).
After MMFA is trained, a VAE maps those features to a continuous latent space that is
easy to sample and interpolate:

    mu, sigma = E_f(f)               (Eq. 10)
    z = mu + sigma * eps, eps ~ N(0, I)   (Eq. 11)
    f_hat = G_f(z)                   (Eq. 12)

trained with ``lambda_f ||f - f_hat||^2 + lambda_kl KL + lambda_adv L_adv(f, f_hat)``
(Eq. 13, ``reanimate.training.expression_vae``), where a :class:`LatentDiscriminator`
tells real features from reconstructions to keep the VAE from collapsing to the average
expression. The paper does not give the layer sizes; E_f, G_f and the discriminator are
MLPs with LeakyReLU, without normalisation layers so that each sample's output does not
depend on the rest of its batch.

Feature scale: the VAE works on standardised features ``(f - feature_mean) /
feature_scale`` (buffers set from the training features, saved with the weights), so the
balance of the loss weights does not depend on the scale of MMFA's feature; ``encode``
takes and ``decode`` returns features in MMFA's own units.

Shapes: features ``(..., feature_dim)``; ``mu``, ``logvar``, ``z`` ``(..., latent_dim)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn


@dataclass
class ExpressionVAEConfig:
    """Sizes of the encoder E_f and decoder G_f (not given in the paper).

    ``feature_dim`` is MMFA's expression feature (256, supp. A.1). ``latent_dim`` 64: a
    quarter of the feature, enough for the few dozen degrees of freedom of a face's
    expression while keeping the prior easy to fill. Each network has ``num_layers``
    hidden layers of ``hidden_dim`` units (LeakyReLU ``negative_slope``); G_f ends with a
    plain linear layer since the feature is unbounded (a linear layer's output in MMFA).
    """

    feature_dim: int = 256
    latent_dim: int = 64
    hidden_dim: int = 512
    num_layers: int = 2
    negative_slope: float = 0.2


@dataclass
class LatentDiscriminatorConfig:
    """Sizes of the discriminator of L_adv in Eq. 13 (not given in the paper): an MLP of
    ``num_layers`` hidden layers of ``hidden_dim`` units on one feature, one score out."""

    feature_dim: int = 256
    hidden_dim: int = 256
    num_layers: int = 2
    negative_slope: float = 0.2


class VAEOutput(NamedTuple):
    """``mu``, ``logvar``, ``z`` ``(..., latent_dim)``; ``reconstruction`` ``(..., feature_dim)``
    in the units of the input features."""

    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    reconstruction: torch.Tensor


def _mlp(in_dim: int, hidden_dim: int, num_layers: int, out_dim: int, negative_slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_dim), nn.LeakyReLU(negative_slope)]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class ExpressionVAE(nn.Module):
    """E_f and G_f of Eq. 10-12 on MMFA's expression features.

    ``encode(f) -> (mu, logvar)`` with ``sigma = exp(logvar / 2)`` (the log-variance keeps
    sigma positive without a constraint); ``reparameterize`` draws ``z`` (Eq. 11);
    ``decode(z) -> f_hat`` (Eq. 12); ``forward`` does all three (always sampling; for a
    deterministic reconstruction decode ``mu``).
    """

    def __init__(self, config: ExpressionVAEConfig | None = None):
        super().__init__()
        self.config = config = config or ExpressionVAEConfig()
        self.encoder = _mlp(
            config.feature_dim, config.hidden_dim, config.num_layers, 2 * config.latent_dim, config.negative_slope
        )
        self.decoder = _mlp(
            config.latent_dim, config.hidden_dim, config.num_layers, config.feature_dim, config.negative_slope
        )
        # Standardisation of the features (see the module docstring); identity until set.
        self.register_buffer("feature_mean", torch.zeros(config.feature_dim))
        self.register_buffer("feature_scale", torch.ones(()))

    def set_normalization(self, mean: torch.Tensor, scale: torch.Tensor | float) -> None:
        """Standardise features as ``(f - mean) / scale``: ``mean (feature_dim,)``, ``scale`` > 0."""
        d = self.config.feature_dim
        assert mean.shape == (d,), f"mean: expected ({d},), got {tuple(mean.shape)}"
        scale = torch.as_tensor(scale, dtype=self.feature_scale.dtype)
        assert scale.ndim == 0 and float(scale) > 0, f"scale must be one positive number, got {scale}"
        self.feature_mean.copy_(mean)
        self.feature_scale.copy_(scale)

    def normalize(self, f: torch.Tensor) -> torch.Tensor:
        """Features ``(..., feature_dim)`` in MMFA's units -> standardised units."""
        return (f - self.feature_mean) / self.feature_scale

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        return x * self.feature_scale + self.feature_mean

    def encode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 10: ``f (..., feature_dim) -> (mu, logvar)``, each ``(..., latent_dim)``;
        the posterior is ``N(mu, diag(sigma^2))`` with ``sigma = exp(logvar / 2)``."""
        d = self.config.feature_dim
        assert f.shape[-1] == d, f"features: expected (..., {d}), got {tuple(f.shape)}"
        mu, logvar = self.encoder(self.normalize(f)).chunk(2, dim=-1)
        return mu, logvar

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Eq. 11: ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` drawn from
        ``generator`` (on ``mu``'s device; the global RNG when None)."""
        assert mu.shape == logvar.shape, f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ"
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 12: ``z (..., latent_dim) -> f_hat (..., feature_dim)`` in MMFA's units."""
        k = self.config.latent_dim
        assert z.shape[-1] == k, f"latent: expected (..., {k}), got {tuple(z.shape)}"
        return self.denormalize(self.decoder(z))

    def forward(self, f: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.encode(f)
        z = self.reparameterize(mu, logvar, generator)
        return VAEOutput(mu, logvar, z, self.decode(z))


class LatentDiscriminator(nn.Module):
    """The discriminator of L_adv in Eq. 13: ``(..., feature_dim) -> (...)`` one raw score
    per feature (least-squares GAN: no sigmoid). It sees standardised features
    (:meth:`ExpressionVAE.normalize`), real ones and the VAE's reconstructions."""

    def __init__(self, config: LatentDiscriminatorConfig | None = None):
        super().__init__()
        self.config = config = config or LatentDiscriminatorConfig()
        self.net = _mlp(config.feature_dim, config.hidden_dim, config.num_layers, 1, config.negative_slope)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        d = self.config.feature_dim
        assert f.shape[-1] == d, f"features: expected (..., {d}), got {tuple(f.shape)}"
        return self.net(f).squeeze(-1)


def expressions_at(vae: ExpressionVAE, f_a: torch.Tensor, f_b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Decode points of the straight line between the posterior means of two expressions
    (Sec. 4.4): ``z_t = (1 - t) mu_a + t mu_b`` for each ``t`` of ``t`` ``(N,)`` (0: ``mu_a``,
    1: ``mu_b``). ``f_a``, ``f_b``: ``(feature_dim,)`` -> ``(N, feature_dim)``, or a batch
    of pairs ``(B, feature_dim)`` -> ``(N, B, feature_dim)``. No gradients.
    """
    assert f_a.shape == f_b.shape, f"f_a {tuple(f_a.shape)} and f_b {tuple(f_b.shape)} differ"
    assert f_a.ndim in (1, 2), f"features: expected (feature_dim,) or (B, feature_dim), got {tuple(f_a.shape)}"
    assert t.ndim == 1, f"t: expected (N,), got {tuple(t.shape)}"
    with torch.no_grad():
        mu_a, _ = vae.encode(f_a)
        mu_b, _ = vae.encode(f_b)
        t = t.to(mu_a).view(-1, *([1] * mu_a.ndim))
        return vae.decode((1 - t) * mu_a + t * mu_b)


def interpolate_expressions(vae: ExpressionVAE, f_a: torch.Tensor, f_b: torch.Tensor, steps: int) -> torch.Tensor:
    """:func:`expressions_at` for ``steps`` values of ``t`` evenly spaced in [0, 1],
    endpoints included (so the first and last outputs are the decodings of ``mu_a`` and
    ``mu_b``): ``(steps, feature_dim)`` or ``(steps, B, feature_dim)``.
    """
    if steps < 2:
        raise ValueError(f"steps: need at least 2 (both endpoints), got {steps}")
    return expressions_at(vae, f_a, f_b, torch.linspace(0, 1, steps))


__all__ = [
    "ExpressionVAE",
    "ExpressionVAEConfig",
    "LatentDiscriminator",
    "LatentDiscriminatorConfig",
    "VAEOutput",
    "expressions_at",
    "interpolate_expressions",
]
