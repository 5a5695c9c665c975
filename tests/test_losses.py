"""Training losses and the VGG-19 feature network, on small constructed cases."""

from __future__ import annotations

import logging

import pytest
import torch

from reanimate.errors import CheckpointError
from reanimate.geometry.grid import coordinate_grid
from reanimate.geometry.tps import ThinPlateSpline
from reanimate.models.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from reanimate.motion import Keypoints
from reanimate.training.losses import (
    ImagePyramid,
    discriminator_gan_loss,
    equivariance_jacobian_loss,
    equivariance_value_loss,
    feature_matching_loss,
    generator_gan_loss,
    ms_ssim,
    ms_ssim_loss,
    ms_ssim_plan,
    perceptual_loss,
    transform_frame,
)
from reanimate.training.vgg import TORCHVISION_VGG19_FILE, Vgg19Features, load_vgg19

# --------------------------------------------------------------------------------------
# VGG-19
# --------------------------------------------------------------------------------------

# torchvision's vgg19().features: (index, out_channels, in_channels) of every convolution.
_CONVS = [
    (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
    (14, 256, 256), (16, 256, 256), (19, 512, 256), (21, 512, 512), (23, 512, 512),
    (25, 512, 512), (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512),
]  # fmt: skip
_USED = [c for c in _CONVS if c[0] <= 28]


def _fake_torchvision_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """A torchvision-format VGG-19 state dict with random values. The layers the trunk
    does not use (features.30+ and the classifier) get small placeholders: they must be
    ignored whatever they hold."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, out_ch, in_ch in _USED:
        state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g) * 0.05
        state[f"features.{index}.bias"] = torch.randn(out_ch, generator=g) * 0.1
    for index in (30, 32, 34):
        state[f"features.{index}.weight"] = torch.zeros(1)
        state[f"features.{index}.bias"] = torch.zeros(1)
    for index in (0, 3, 6):
        state[f"classifier.{index}.weight"] = torch.zeros(2, 2)
        state[f"classifier.{index}.bias"] = torch.zeros(2)
    return state


@pytest.fixture(scope="module")
def fake_vgg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / TORCHVISION_VGG19_FILE
    state = _fake_torchvision_state()
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def random_vgg() -> Vgg19Features:
    return Vgg19Features(seed=0)


def _assert_loaded(model: Vgg19Features, state: dict[str, torch.Tensor]):
    loaded = model.state_dict()
    assert set(loaded) == {f"features.{i}.{p}" for i, _, _ in _USED for p in ("weight", "bias")}
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key


def test_vgg_loads_torchvision_file_bit_exactly(fake_vgg_file):
    path, state = fake_vgg_file
    model, source = load_vgg19(path, search_hub_cache=False)
    assert source == f"file {path}"
    _assert_loaded(model, state)


def test_vgg_tolerates_dataparallel_prefix(tmp_path, fake_vgg_file):
    _, state = fake_vgg_file
    path = tmp_path / "vgg_dp.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    model, _ = load_vgg19(path)
    _assert_loaded(model, state)


def _one_line_error(path, match: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_vgg19(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and match in message, message
    return message


def test_vgg_wrong_shape_names_key_and_shapes(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3), "features.0.bias": torch.zeros(64)}, path)
    message = _one_line_error(path, "'features.0.weight'")
    assert "(64, 1, 3, 3)" in message and "(64, 3, 3, 3)" in message


def test_vgg_missing_key_and_non_torch_file(tmp_path):
    path = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, path)
    _one_line_error(path, "'features.2.weight' is missing")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch file\n")
    _one_line_error(junk, "not a torch weights file")
    _one_line_error(tmp_path / "absent.pth", "no such")


def test_vgg_found_in_hub_cache(tmp_path, monkeypatch, fake_vgg_file):
    src, state = fake_vgg_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / TORCHVISION_VGG19_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(src.read_bytes())
    model, source = load_vgg19()
    assert source == f"torch hub cache {cached}"
    _assert_loaded(model, state)
    # Not searched when told not to.
    _, source = load_vgg19(search_hub_cache=False)
    assert source == "random init (seed 0)"


def test_vgg_random_init_reproducible_and_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    rng = torch.get_rng_state()
    with caplog.at_level(logging.WARNING, logger="reanimate.training.vgg"):
        a, source = load_vgg19()
    assert torch.equal(torch.get_rng_state(), rng), "the global RNG must not be touched"
    assert source == "random init (seed 0)"
    assert any("random" in r.message and "--vgg-weights" in r.message for r in caplog.records)
    b, _ = load_vgg19(seed=0)
    c, _ = load_vgg19(seed=1)
    w = a.features[0].weight
    assert torch.equal(w, b.features[0].weight) and not torch.equal(w, c.features[0].weight)
    # torchvision's init: N(0, 2 / fan_out) weights, zero biases.
    deep = a.features[28].weight
    assert abs(deep.std().item() - (2 / (512 * 9)) ** 0.5) < 1e-3 and not a.features[28].bias.any()


def test_vgg_frozen_features(random_vgg):
    assert not any(p.requires_grad for p in random_vgg.parameters())
    assert not random_vgg.train().training
    assert {"mean", "std"} <= {n for n, _ in random_vgg.named_buffers()}
    # The normalisation is inside: a flat image of the ImageNet mean becomes zeros, so
    # the first activation is relu(bias) everywhere.
    x = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(2, 3, 32, 32)
    feats = random_vgg(x)
    assert [f.shape[1:] for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    bias = random_vgg.features[0].bias.clamp(min=0).view(1, 64, 1, 1)
    assert torch.allclose(feats[0], bias.expand_as(feats[0]), atol=1e-6)


# --------------------------------------------------------------------------------------
# Pyramid and perceptual loss
# --------------------------------------------------------------------------------------


def test_image_pyramid_shapes():
    x = torch.rand(2, 3, 64, 64)
    pyramid = ImagePyramid([1, 0.5, 0.25, 0.125], 3)(x)
    assert pyramid[1] is x
    assert {s: tuple(t.shape) for s, t in pyramid.items()} == {
        1: (2, 3, 64, 64),
        0.5: (2, 3, 32, 32),
        0.25: (2, 3, 16, 16),
        0.125: (2, 3, 8, 8),
    }
    # The low-pass keeps a flat image flat away from the zero-padded border.
    flat = ImagePyramid([0.25], 1)(torch.full((1, 1, 64, 64), 0.7))[0.25]
    assert torch.allclose(flat[..., 3:-3, 3:-3], torch.tensor(0.7), atol=1e-5)


@pytest.fixture(scope="module")
def image_pair():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(2, 3, 32, 32, generator=g)
    generated = (real + 0.1 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    pyramid = ImagePyramid([1, 0.5], 3)
    return pyramid, generated, real


def test_perceptual_zero_for_identical_positive_otherwise(random_vgg, image_pair):
    pyramid, generated, real = image_pair
    weights = [10, 10, 10, 10, 10]
    same = perceptual_loss(random_vgg, pyramid(real), pyramid(real.clone()), weights)
    assert same.item() == 0.0
    assert perceptual_loss(random_vgg, pyramid(generated), pyramid(real), weights).item() > 0


def test_perceptual_linear_in_layer_weights(random_vgg, image_pair):
    pyramid, generated, real = image_pair
    gen, ref = pyramid(generated), pyramid(real)
    per_layer = [perceptual_loss(random_vgg, gen, ref, [float(i == j) for i in range(5)]) for j in range(5)]
    assert all(v > 0 for v in per_layer)
    weights = [1.0, 2.0, 0.0, 0.5, 3.0]
    combined = perceptual_loss(random_vgg, gen, ref, weights)
    expected = sum(w * v for w, v in zip(weights, per_layer))
    assert torch.allclose(combined, expected, rtol=1e-5)
    doubled = perceptual_loss(random_vgg, gen, ref, [2 * w for w in weights])
    assert torch.allclose(doubled, 2 * combined, rtol=1e-5)


def test_perceptual_skips_network_when_weights_zero(image_pair):
    pyramid, generated, real = image_pair
    calls = []

    def features(x):
        calls.append(x.shape)
        return [x]

    loss = perceptual_loss(features, pyramid(generated), pyramid(real), [0, 0, 0, 0, 0])
    assert loss.item() == 0.0 and calls == []


def test_perceptual_gradient_reaches_generated_only(random_vgg, image_pair):
    pyramid, generated, real = image_pair
    generated = generated.clone().requires_grad_(True)
    real = real.clone().requires_grad_(True)
    perceptual_loss(random_vgg, pyramid(generated), pyramid(real), [1, 1, 1, 1, 1]).backward()
    assert torch.isfinite(generated.grad).all() and generated.grad.abs().sum() > 0
    assert real.grad is None
    assert all(p.grad is None for p in random_vgg.parameters())


# --------------------------------------------------------------------------------------
# MS-SSIM
# --------------------------------------------------------------------------------------


def test_ms_ssim_plan_rule():
    assert ms_ssim_plan(256, 256) == (5, 11, 1.5)
    assert ms_ssim_plan(161, 200)[0] == 5 and ms_ssim_plan(160, 200)[0] == 4
    assert ms_ssim_plan(64, 64)[0] == 3 and ms_ssim_plan(32, 32)[0] == 2 and ms_ssim_plan(16, 16)[0] == 1
    scales, window, sigma = ms_ssim_plan(8, 8)
    assert (scales, window) == (1, 7) and sigma == pytest.approx(1.5 * 7 / 11)


@pytest.mark.parametrize("size", [64, 32, 8])
def test_ms_ssim_identity_and_noise_order(size):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, size, size, generator=g)
    noise = torch.randn(2, 3, size, size, generator=g)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-6)
    values = [ms_ssim(x, (x + s * noise).clamp(0, 1)) for s in (0.02, 0.1, 0.3)]
    assert values[0].shape == (2,)
    assert ((values[0] < 1) & (values[0] > values[1]) & (values[1] > values[2])).all(), values
    assert ms_ssim_loss(x, x).abs().item() < 1e-6
    assert ms_ssim_loss(x, (x + 0.1 * noise).clamp(0, 1)).item() > 0


def test_ms_ssim_matches_reference_single_scale():
    """At one scale MS-SSIM is SSIM; compare with scikit-image's Gaussian-window SSIM."""
    metrics = pytest.importorskip("skimage.metrics", reason="the reference is scikit-image (the test extra)")
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 20, 18, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    reference = metrics.structural_similarity(
        x[0, 0].numpy(), y[0, 0].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )  # fmt: skip
    assert ms_ssim(x, y).item() == pytest.approx(reference, abs=1e-10)


def test_ms_ssim_gradients_finite_even_for_anticorrelated_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g).requires_grad_(True)
    y = 1 - x.detach()  # negative contrast-structure at every scale
    value = ms_ssim(x, y)
    assert torch.isfinite(value).all()
    ms_ssim_loss(x, y).backward()
    assert torch.isfinite(x.grad).all()
    x.grad = None
    ms_ssim_loss(x, (x.detach() + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------
# Equivariance
# --------------------------------------------------------------------------------------


def _tps(seed: int, batch: int = 2, affine_only: bool = False) -> ThinPlateSpline:
    """A random FOMM B.2 transform (sigma_affine 0.05, sigma_tps 0.005, 5x5 grid) in float64."""
    g = torch.Generator().manual_seed(seed)
    if affine_only:
        tps = ThinPlateSpline.random(batch, 0.05, generator=g)
        return ThinPlateSpline(tps.affine.double())
    tps = ThinPlateSpline.random(batch, 0.05, 0.005, 5, generator=g)
    return ThinPlateSpline(tps.affine.double(), tps.control_points.double(), tps.weights.double(), tps.norm)


def _invert_points(tps: ThinPlateSpline, target: torch.Tensor, steps: int = 20) -> torch.Tensor:
    """Solve T(p) = target by Newton iterations with the analytic Jacobian."""
    p = target.clone()
    for _ in range(steps):
        residual = tps.warp_points(p) - target
        p = p - torch.linalg.solve(tps.jacobian(p), residual.unsqueeze(-1)).squeeze(-1)
    return p


def _driving_keypoints(seed: int, batch: int = 2, num_kp: int = 5) -> Keypoints:
    g = torch.Generator().manual_seed(seed)
    value = (torch.rand(batch, num_kp, 2, generator=g, dtype=torch.float64) * 2 - 1) * 0.7
    noise = torch.randn(batch, num_kp, 2, 2, generator=g, dtype=torch.float64)
    jacobian = torch.eye(2, dtype=torch.float64) + 0.3 * noise
    return Keypoints(value, jacobian)


def test_equivariance_losses_vanish_for_equivariant_detector():
    tps = _tps(seed=0)
    kp_driving = _driving_keypoints(seed=1)
    # What an exactly equivariant detector finds in the transformed frame:
    # p = T^{-1}(kp_X) and J_Y = dT(p)^{-1} J_X.
    p = _invert_points(tps, kp_driving.value)
    kp_transformed = Keypoints(p, torch.linalg.solve(tps.jacobian(p), kp_driving.jacobian))
    assert equivariance_value_loss(kp_driving, kp_transformed, tps).item() < 1e-4
    assert equivariance_jacobian_loss(kp_driving, kp_transformed, tps).item() < 1e-4
    # A detector that ignores the warp (same keypoints in both frames) is penalised.
    assert equivariance_value_loss(kp_driving, kp_driving, tps).item() > 1e-2
    assert equivariance_jacobian_loss(kp_driving, kp_driving, tps).item() > 1e-2


def test_equivariance_jacobian_loss_hand_case():
    """T = 2 p (pure scaling), J_X = I, J_Y = I: |I - 2 I| averages to 2/4."""
    tps = ThinPlateSpline(torch.tensor([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]]))
    kp = Keypoints(torch.zeros(1, 1, 2), torch.eye(2).view(1, 1, 2, 2))
    assert equivariance_jacobian_loss(kp, kp, tps).item() == pytest.approx(0.5)
    half = Keypoints(torch.full((1, 1, 2), 0.25), 0.5 * torch.eye(2).view(1, 1, 2, 2))
    assert equivariance_jacobian_loss(kp, half, tps).item() == pytest.approx(0.0)
    # kp_X = 0 and T(0.25) = 0.5: value loss 0.5.
    assert equivariance_value_loss(kp, half, tps).item() == pytest.approx(0.5)


def _centroid(image: torch.Tensor) -> torch.Tensor:
    """Intensity centroid (B, 1, 2) in normalised coordinates of a (B, 1, H, W) image."""
    grid = coordinate_grid(image.shape[2:], dtype=image.dtype)  # (H, W, 2)
    mass = image[:, 0].unsqueeze(-1)
    return ((mass * grid).sum(dim=(1, 2)) / mass.sum(dim=(1, 2))).unsqueeze(1)


def test_transform_frame_centroid_is_equivariant_under_affine():
    """The centroid of a blob moves with an affine warp, so as a keypoint detector it
    is equivariant: the value loss on real images is small."""
    tps = _tps(seed=2, affine_only=True)
    grid = coordinate_grid((64, 64), dtype=torch.float64)
    centre = torch.tensor([[0.2, -0.1], [-0.3, 0.15]], dtype=torch.float64)
    blob = torch.exp(-((grid[None] - centre[:, None, None]) ** 2).sum(-1) / (2 * 0.12**2)).unsqueeze(1)
    warped = transform_frame(blob, tps)
    assert warped.shape == blob.shape
    kp_x, kp_y = Keypoints(_centroid(blob)), Keypoints(_centroid(warped))
    loss = equivariance_value_loss(kp_x, kp_y, tps).item()
    baseline = equivariance_value_loss(kp_x, kp_x, tps).item()
    assert loss < 1e-3 and baseline > 10 * loss, (loss, baseline)  # align_corners=False gives 3e-3


def test_transform_frame_identity():
    frame = torch.rand(2, 3, 16, 16)
    assert torch.allclose(transform_frame(frame, ThinPlateSpline.identity(2, points_tps=5)), frame, atol=1e-5)


# --------------------------------------------------------------------------------------
# GAN and feature matching
# --------------------------------------------------------------------------------------


def _outputs(prediction_values: dict[float, float], features=None):
    features = features or [torch.zeros(2, 4, 8, 8), torch.zeros(2, 8, 4, 4)]
    return {s: ([f.clone() for f in features], torch.full((2, 1, 3, 3), v)) for s, v in prediction_values.items()}


def test_gan_losses_hand_values():
    ones, zeros = _outputs({1: 1.0, 0.5: 1.0}), _outputs({1: 0.0, 0.5: 0.0})
    assert generator_gan_loss(ones).item() == 0.0
    assert generator_gan_loss(zeros).item() == 2.0  # (1 - 0)^2 at two scales
    assert generator_gan_loss(_outputs({1: 0.5})).item() == 0.25
    assert discriminator_gan_loss(ones, zeros).item() == 0.0  # a perfect discriminator
    assert discriminator_gan_loss(zeros, ones).item() == 4.0  # 1 + 1 per scale
    half = _outputs({1: 0.5, 0.5: 0.5})
    assert discriminator_gan_loss(half, half).item() == 1.0  # 0.25 + 0.25 per scale


def test_feature_matching_zero_identical_and_skips_zero_weights():
    g = torch.Generator().manual_seed(0)
    features = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 8, 4, 4, generator=g)]
    real = _outputs({1: 0.0, 0.5: 0.0}, features)
    assert feature_matching_loss(real, _outputs({1: 1.0, 0.5: 1.0}, features), [10, 10]).item() == 0.0
    fake = _outputs({1: 0.0, 0.5: 0.0}, [features[0] + 1.0, features[1] + 3.0])
    assert feature_matching_loss(real, fake, [1, 1]).item() == pytest.approx(2 * (1 + 3))
    assert feature_matching_loss(real, fake, [2, 0]).item() == pytest.approx(2 * 2 * 1)
    # A zero-weight layer is never evaluated, even if it would be NaN.
    fake[1][0][1].fill_(float("nan"))
    assert feature_matching_loss(real, fake, [0.5, 0]).item() == pytest.approx(2 * 0.5 * 1)


def test_gan_losses_with_discriminator_outputs():
    torch.manual_seed(0)
    config = DiscriminatorConfig(scales=[1, 0.5], block_expansion=4, max_features=16, num_blocks=3, sn=True)
    discriminator = MultiScaleDiscriminator(config)
    pyramid = ImagePyramid(config.scales, 3)
    real = torch.rand(2, 3, 64, 64)
    fake = torch.rand(2, 3, 64, 64, requires_grad=True)
    real_out, fake_out = discriminator(pyramid(real)), discriminator(pyramid(fake))
    loss = generator_gan_loss(fake_out) + feature_matching_loss(real_out, fake_out, [10, 10, 10])
    loss = loss + discriminator_gan_loss(real_out, fake_out)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_delicate_losses_run_in_float32_under_autocast():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    y = (x + 0.05 * torch.randn(2, 3, 64, 64, generator=gen)).clamp(0, 1)
    reference = ms_ssim_loss(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = ms_ssim_loss(x.bfloat16(), y.bfloat16())
    assert value.dtype == torch.float32
    # Only the inputs' rounding to bf16 differs (the loss itself is computed in fp32).
    assert value.item() == pytest.approx(reference.item(), rel=0.05)
