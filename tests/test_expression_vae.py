"""MMFA's expression VAE (Sec. 3.3, Eq. 10-13) and its training: losses against hand-computed
values, training on a constructed mixture of expressions, interpolation (Sec. 4.4), exact
resumption and loading a checkpoint for inference."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from reanimate.errors import CheckpointError, InputError
from reanimate.models.mmfa.expression_vae import (
    ExpressionVAE,
    ExpressionVAEConfig,
    LatentDiscriminator,
    LatentDiscriminatorConfig,
    expressions_at,
    interpolate_expressions,
)
from reanimate.training.expression_vae import (
    MODEL_FILE,
    VAETrainConfig,
    discriminator_adversarial_loss,
    generator_adversarial_loss,
    kl_divergence,
    load_expression_vae,
    reconstruction_loss,
    train_expression_vae,
)

D = 256
CLUSTERS = 4


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These networks are too small to gain from a second thread, and lose several times
    over to one when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_config(**changes) -> VAETrainConfig:
    """Narrow networks and small batches: fast on 2 CPU cores."""
    values = dict(
        lr=1e-3,
        batch_size=64,
        steps=300,
        kl_warmup_steps=100,
        checkpoint_steps=0,
        vae=ExpressionVAEConfig(feature_dim=D, latent_dim=16, hidden_dim=128),
        discriminator=LatentDiscriminatorConfig(feature_dim=D, hidden_dim=64),
    )
    values.update(changes)
    return VAETrainConfig(**values)


def mixture(per_cluster: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4 well-separated clusters of 256-d features (centres ~N(0, I), ~22 apart), each
    varying along its own 8-d subspace (std 0.5 per dimension overall) plus small noise.
    Offset and scaled away from unit scale, which the VAE's standardisation must undo."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLUSTERS, D, generator=g)
    features, labels = [], []
    for i in range(CLUSTERS):
        basis = torch.randn(8, D, generator=g) / math.sqrt(8)
        coefficients = 0.5 * torch.randn(per_cluster, 8, generator=g)
        features.append(centres[i] + coefficients @ basis + 0.1 * torch.randn(per_cluster, D, generator=g))
        labels.append(torch.full((per_cluster,), i))
    offset, scale = 3.0, 0.2
    return offset + scale * torch.cat(features), torch.cat(labels), offset + scale * centres


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    features, labels, centres = mixture()
    run_dir = tmp_path_factory.mktemp("vae-run")
    result = train_expression_vae(features, run_dir, small_config())
    return result, load_expression_vae(run_dir), features, labels, centres


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------


def test_kl_is_zero_for_the_prior():
    assert kl_divergence(torch.zeros(3, 8), torch.zeros(3, 8)).item() == 0.0


def test_kl_hand_computed():
    # Sample 1: mu (1, 0), variances (1, 2): 0.5 (1 + 1 - 1 - 0) + 0.5 (0 + 2 - 1 - ln 2);
    # sample 2 is the prior (KL 0); the batch mean halves the sum.
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    expected = (0.5 + 0.5 * (1 - math.log(2.0))) / 2
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected, rel=1e-6)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    prior = torch.distributions.Normal(torch.zeros(5, 7), torch.ones(5, 7))
    expected = torch.distributions.kl_divergence(posterior, prior).sum(-1).mean()
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)


def test_reconstruction_loss():
    f = torch.randn(4, D)
    assert reconstruction_loss(f, f.clone()).item() == 0.0
    # Squared norm of the error per sample, batch mean: rows of ones (3 per row) and twos (12).
    target = torch.zeros(2, 3)
    assert reconstruction_loss(target, torch.tensor([[1.0, 1, 1], [2, 2, 2]])).item() == pytest.approx(7.5)


def test_lsgan_losses():
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert discriminator_adversarial_loss(ones, zeros).item() == 0.0  # a perfect discriminator
    assert discriminator_adversarial_loss(zeros, ones).item() == 2.0  # a perfectly wrong one
    assert generator_adversarial_loss(ones).item() == 0.0  # the discriminator is fooled
    assert generator_adversarial_loss(zeros).item() == 1.0
    fake, real = torch.tensor([0.5, -1.0]), torch.tensor([0.0, 2.0])
    assert generator_adversarial_loss(fake).item() == pytest.approx((0.25 + 4) / 2)
    assert discriminator_adversarial_loss(real, fake).item() == pytest.approx((1 + 1) / 2 + (0.25 + 1) / 2)


# ---------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------


def test_shapes_and_reparameterisation_statistics():
    vae = ExpressionVAE()
    out = vae(torch.randn(5, D))
    assert out.mu.shape == out.logvar.shape == out.z.shape == (5, 64)
    assert out.reconstruction.shape == (5, D)
    assert LatentDiscriminator()(torch.randn(5, D)).shape == (5,)

    n = 200_000
    mu = torch.tensor([1.0, -2.0]).expand(n, 2)
    logvar = torch.log(torch.tensor([0.25, 4.0])).expand(n, 2)  # std 0.5 and 2
    z = ExpressionVAE.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 2.0]), atol=0, rtol=0.01)
    again = ExpressionVAE.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


def test_training_lowers_reconstruction_and_keeps_clusters_apart(trained):
    result, vae, features, labels, centres = trained
    assert result.step == 300 and len(result.losses) == 300
    first = sum(v["reconstruction"] for v in result.losses[:20]) / 20
    last = sum(v["reconstruction"] for v in result.losses[-20:]) / 20
    assert last < 0.25 * first, (first, last)

    with torch.no_grad():
        mu, _ = vae.encode(features)
        decoded = vae.decode(mu)
    # Each decoding is nearest its own cluster's centre...
    assert torch.equal(torch.cdist(decoded, centres).argmin(dim=1), labels)
    # ...and the decodings spread like the data instead of collapsing to the average, also
    # inside each cluster (the collapse of a VAE whose KL weight is too high: 0.15 with
    # lambda_kl = 1 here, ~0.56 with the default 0.05).
    spread = decoded.var(dim=0).sum() / features.var(dim=0).sum()
    assert spread > 0.7, spread

    def within(x):
        return sum((x[labels == i] - x[labels == i].mean(0)).square().sum(-1).mean() for i in range(CLUSTERS))

    assert within(decoded) > 0.35 * within(features), within(decoded) / within(features)
    error = (decoded - features).square().sum(-1).mean() / (features - features.mean(0)).square().sum(-1).mean()
    assert error < 0.2, error


def test_interpolation_walks_between_the_means(trained):
    _, vae, features, labels, _ = trained
    f_a, f_b = features[labels == 0][0], features[labels == 1][0]
    path = interpolate_expressions(vae, f_a, f_b, steps=7)
    assert path.shape == (7, D)
    with torch.no_grad():
        ends = vae.decode(torch.stack([vae.encode(f_a)[0], vae.encode(f_b)[0]]))
    torch.testing.assert_close(path[0], ends[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(path[-1], ends[1], atol=1e-5, rtol=1e-5)
    # The intermediate decodings go from A to B: their positions along A->B increase
    # strictly and lie inside (0, 1).
    direction = path[-1] - path[0]
    t = (path - path[0]) @ direction / direction.square().sum()
    assert torch.all(t[1:] > t[:-1]), t
    assert 0 < t[1] and t[-2] < 1, t

    batch = interpolate_expressions(vae, features[:3], features[-3:], steps=4)
    assert batch.shape == (4, 3, D)
    torch.testing.assert_close(batch[:, 1], interpolate_expressions(vae, features[1], features[-2], 4))
    with pytest.raises(ValueError, match="steps"):
        interpolate_expressions(vae, f_a, f_b, steps=1)


def test_a_point_of_the_line_is_the_decoded_mix_of_the_means(trained):
    _, vae, features, _, _ = trained
    f_a, f_b = features[0], features[-1]
    with torch.no_grad():
        mu_a, mu_b = vae.encode(f_a)[0], vae.encode(f_b)[0]
        expected = vae.decode(torch.stack([0.75 * mu_a + 0.25 * mu_b, mu_b]))
    torch.testing.assert_close(expressions_at(vae, f_a, f_b, torch.tensor([0.25, 1.0])), expected)
    torch.testing.assert_close(
        expressions_at(vae, f_a, f_b, torch.tensor([0.0, 0.5, 1.0])), interpolate_expressions(vae, f_a, f_b, 3)
    )


def test_resume_is_exact(tmp_path):
    features = mixture(per_cluster=25, seed=1)[0]  # 100 features: 6 batches of 16 per epoch
    config = small_config(steps=30, batch_size=16, kl_warmup_steps=20)
    whole = train_expression_vae(features, tmp_path / "whole", config)
    first = train_expression_vae(
        features, tmp_path / "split", small_config(steps=15, batch_size=16, kl_warmup_steps=20)
    )
    second = train_expression_vae(features, tmp_path / "split", config, resume=True)
    assert first.step == 15 and second.step == 30 and len(second.losses) == 15
    assert whole.losses == first.losses + second.losses
    for name in (MODEL_FILE, "state.safetensors"):
        a, b = load_file(str(whole.checkpoint / name)), load_file(str(second.checkpoint / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)


def test_checkpoint_loads_for_inference(trained):
    result, vae, features, _, _ = trained
    assert not vae.training
    for path in (result.checkpoint, result.checkpoint / MODEL_FILE):
        other = load_expression_vae(path)
        for key, value in vae.state_dict().items():
            assert torch.equal(value, other.state_dict()[key]), key
    # The feature standardisation travels with the weights.
    torch.testing.assert_close(vae.feature_mean, features.mean(0))


def test_run_folder_errors(tmp_path):
    features = mixture(per_cluster=8)[0]
    config = small_config(steps=2, batch_size=8)
    train_expression_vae(features, tmp_path / "run", config, progress=True)
    with pytest.raises(InputError, match="already holds"):
        train_expression_vae(features, tmp_path / "run", config)
    with pytest.raises(InputError, match="lr"):
        train_expression_vae(features, tmp_path / "run", small_config(steps=4, batch_size=8, lr=1), resume=True)
    with pytest.raises(InputError, match="other features"):
        train_expression_vae(features + 1, tmp_path / "run", small_config(steps=4, batch_size=8), resume=True)
    with pytest.raises(InputError, match="no expression VAE checkpoint"):
        train_expression_vae(features, tmp_path / "new", config, resume=True)
    with pytest.raises(InputError, match=r"\(N, 256\)"):
        train_expression_vae(features[:, :100], tmp_path / "new", config)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        load_expression_vae(bad)
    with pytest.raises(CheckpointError):
        load_expression_vae(tmp_path / "missing.safetensors")
