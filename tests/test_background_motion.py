"""Background motion predictor (MRAA), U-Net generator skips and the Motion Transformer's
background losses (Eq. 11-12): identity at init, exact background motion, hand-computed
loss values, training, checkpoints, and the unchanged FOMM networks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from test_training import SIZE, dataset_root, options, transformer_doc  # noqa: F401 (dataset_root: fixture)

from reanimate import checkpoint as ckpt
from reanimate.errors import CheckpointError
from reanimate.geometry import coordinate_grid
from reanimate.geometry.tps import ThinPlateSpline
from reanimate.models import ModelConfig, build_model, count_parameters, load_config
from reanimate.models.background import (
    BackgroundMotionConfig,
    BackgroundMotionPredictor,
    affine_motion,
    identity_affine,
)
from reanimate.models.dense_motion import DenseMotion, DenseMotionConfig
from reanimate.motion import Keypoints
from reanimate.training.config import TrainConfig
from reanimate.training.losses import background_mask_loss, mask_concentration_loss
from reanimate.training.objectives import GeneratorObjective
from reanimate.training.trainer import train
from reanimate.training.vgg import Vgg19Features

TINY_BG = {"block_expansion": 8, "max_features": 32, "num_blocks": 3, "bg_type": "affine"}


def motrans_doc(background: bool = True, skips: bool = True, weight: float = 0.1, **train) -> dict:
    """The tiny training config with the transformer, the background predictor, the
    U-Net generator and the background losses."""
    doc = transformer_doc(**train)
    if background:
        doc["model_params"]["use_bg_predictor"] = True
        doc["model_params"]["bg_predictor_params"] = dict(TINY_BG)
    doc["model_params"]["generator_params"]["skips"] = skips
    doc["train_params"]["loss_weights"].update(bg_fg_mask=weight, fg_mask_concentration=weight)
    return doc


def random_keypoints(batch: int, num_kp: int, seed: int) -> Keypoints:
    g = torch.Generator().manual_seed(seed)
    value = torch.rand(batch, num_kp, 2, generator=g) * 1.6 - 0.8
    jacobian = torch.eye(2) + 0.2 * torch.randn(batch, num_kp, 2, 2, generator=g)
    return Keypoints(value, jacobian)


# --- the predictor --------------------------------------------------------------------


@pytest.mark.parametrize(
    "bg_type,translation", [("affine", "none"), ("affine", "sigmoid"), ("shift", "none"), ("zero", "none")]
)
def test_predictor_starts_at_the_identity(bg_type, translation):
    predictor = BackgroundMotionPredictor(
        BackgroundMotionConfig(**{**TINY_BG, "bg_type": bg_type, "translation_type": translation})
    )
    source, driving = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    out = predictor.train()(source, driving)
    assert out.shape == (3, 2, 3) and torch.equal(out, identity_affine(3))
    assert torch.equal(predictor(source[:1], driving), out)  # a batch-1 source is broadcast
    if bg_type == "zero":
        assert count_parameters(predictor) == 0


def test_predictor_layout_and_size_of_the_paper_config():
    predictor = BackgroundMotionPredictor(BackgroundMotionConfig())  # MRAA / MTIA taichi: 32, 1024, 5, affine
    names = set(predictor.state_dict())
    assert {"encoder.down_blocks.0.conv.weight", "encoder.down_blocks.4.norm.running_var", "fc.weight"} <= names
    assert predictor.encoder.down_blocks[0].conv.in_channels == 6  # [source, driving]
    # convs 6->64->128->256->512->1024 (3x3, bias) + BN (2 x 1984) + Linear(1024, 6)
    assert count_parameters(predictor) == 6_282_438


def test_predictor_learns_a_shift():
    """A few steps fit the horizontal shift between two frames of a texture."""
    torch.manual_seed(0)
    predictor = BackgroundMotionPredictor(BackgroundMotionConfig(**TINY_BG))
    texture = F.interpolate(torch.rand(4, 3, 8, 8), size=(32, 40), mode="bilinear", align_corners=True)
    source, driving = texture[..., 4:36], texture[..., 8:40]  # driving pixel x is source pixel x + 4
    target = torch.tensor([[1.0, 0.0, 8 / 31], [0.0, 1.0, 0.0]]).expand(4, 2, 3)
    opt = torch.optim.Adam(predictor.parameters(), lr=3e-3)
    errors = []
    for _ in range(30):
        loss = (predictor(source, driving) - target).abs().mean()
        errors.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert errors[-1] < 0.5 * errors[0], errors


def test_coordinate_channels_are_appended_and_start_at_the_identity():
    predictor = BackgroundMotionPredictor(BackgroundMotionConfig(**TINY_BG, coordinates=True))
    first = predictor.encoder.down_blocks[0].conv
    assert first.in_channels == 8  # [source, driving, x, y]
    seen = {}
    first.register_forward_hook(lambda module, args, out: seen.update(inputs=args[0]))
    source, driving = torch.rand(2, 3, 16, 24), torch.rand(2, 3, 16, 24)
    assert torch.equal(predictor(source, driving), identity_affine(2))
    inputs = seen["inputs"]
    assert torch.equal(inputs[:, :3], source) and torch.equal(inputs[:, 3:6], driving)
    grid = coordinate_grid((16, 24)).permute(2, 0, 1)
    assert torch.equal(inputs[0, 6:], grid) and torch.equal(inputs[1, 6:], grid)
    assert inputs[0, 6, 0, 0] == -1 and inputs[0, 6, 0, -1] == 1 and inputs[0, 7, -1, 0] == 1  # x right, y down
    doc = motrans_doc()
    doc["model_params"]["bg_predictor_params"]["coordinates"] = True
    assert build_model(ModelConfig.from_dict(doc)).generator.bg_predictor.config.coordinates


def affine_warp(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """The frame whose pixel p shows ``image`` at ``A p + t`` (a backward map, as predicted)."""
    grid = F.affine_grid(matrix, list(image.shape), align_corners=True)
    return F.grid_sample(image, grid, align_corners=True, padding_mode="reflection")


def smooth_texture(batch: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(
        torch.rand(batch, 3, size // 4, size // 4, generator=g), size=(size, size), mode="bicubic", align_corners=True
    ).clamp(0, 1)


def test_correlation_estimator_measures_a_known_camera_motion_untrained():
    predictor = BackgroundMotionPredictor(BackgroundMotionConfig(bg_type="affine", estimator="correlation"))
    assert predictor.predicts and predictor.encoder is None and predictor.fc is None
    source = smooth_texture(2, 64, 0)
    truth = torch.tensor(
        [[[0.97, -0.08, 0.12], [0.08, 0.97, -0.06]], [[1.05, 0.0, -0.1], [0.0, 1.05, 0.08]]]
    )  # 4.5-degree turn, shrink; zoom
    driving = affine_warp(source, truth)
    with torch.no_grad():
        predicted = predictor(source, driving)
        still = predictor(source, source)
    grid = coordinate_grid((64, 64))
    error = ((affine_motion(grid, predicted) - affine_motion(grid, truth)) * 31.5).norm(dim=-1).mean()
    moved = ((grid[None] - affine_motion(grid, truth)) * 31.5).norm(dim=-1).mean()
    assert moved > 3.5 and error < 0.5, (error, moved)  # pixels
    assert torch.allclose(still, identity_affine(2), atol=2e-3)
    shift = BackgroundMotionPredictor(BackgroundMotionConfig(bg_type="shift", estimator="correlation"))
    moved_right = affine_warp(source, torch.tensor([[1.0, 0.0, 0.1], [0.0, 1.0, 0.0]]).expand(2, 2, 3))
    with torch.no_grad():
        out = shift(source, moved_right)
    assert torch.allclose(out[:, :, :2], torch.eye(2).expand(2, 2, 2)) and torch.allclose(
        out[:, :, 2], torch.tensor([0.1, 0.0]).expand(2, 2), atol=0.02
    )  # 0.6 px


def test_correlation_estimator_has_no_weights_and_passes_gradients_to_its_inputs():
    predictor = BackgroundMotionPredictor(BackgroundMotionConfig(bg_type="affine", estimator="correlation"))
    assert list(predictor.parameters()) == [] and predictor.state_dict() == {}
    source = smooth_texture(2, 32, 1)
    target = torch.tensor([[1.0, 0.0, 0.1], [0.0, 1.0, 0.05]]).expand(2, 2, 3)
    driving = affine_warp(source, target).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # runs in float32 inside
        out = predictor(source.to(memory_format=torch.channels_last), driving)
    assert out.dtype == torch.float32 and (out - target).abs().max() < 0.03
    (out - target).abs().sum().backward()
    assert driving.grad.abs().sum() > 0


def test_config_keys_and_errors():
    doc = motrans_doc()
    config = ModelConfig.from_dict(doc)
    assert config.generator.skips and config.generator.bg_predictor_params == BackgroundMotionConfig(**TINY_BG)
    off = copy.deepcopy(doc)
    off["model_params"]["use_bg_predictor"] = False
    assert ModelConfig.from_dict(off).generator.bg_predictor_params is None
    missing = copy.deepcopy(doc)
    del missing["model_params"]["bg_predictor_params"]
    with pytest.raises(ValueError, match="no bg_predictor_params"):
        ModelConfig.from_dict(missing)
    misplaced = copy.deepcopy(doc)
    misplaced["model_params"]["generator_params"]["bg_predictor_params"] = dict(TINY_BG)
    with pytest.raises(ValueError, match="belongs in model_params"):
        ModelConfig.from_dict(misplaced)
    bad = copy.deepcopy(doc)
    bad["model_params"]["bg_predictor_params"]["bg_type"] = "perspective"
    with pytest.raises(ValueError, match="unknown bg_type 'perspective'"):
        ModelConfig.from_dict(bad)
    with pytest.raises(ValueError, match="unknown estimator 'flow'"):
        BackgroundMotionConfig(estimator="flow")
    with pytest.raises(ValueError, match="regression only"):
        BackgroundMotionConfig(estimator="correlation", coordinates=True)
    matching = copy.deepcopy(doc)
    matching["model_params"]["bg_predictor_params"] = {
        "bg_type": "affine",
        "estimator": "correlation",
        "correlation_size": 16,
    }
    predictor = build_model(ModelConfig.from_dict(matching)).generator.bg_predictor
    assert predictor.matcher is not None and predictor.matcher.config.correlation_size == 16
    no_motion = copy.deepcopy(doc)
    del no_motion["model_params"]["generator_params"]["dense_motion_params"]
    with pytest.raises(ValueError, match="need dense_motion_params"):
        build_model(ModelConfig.from_dict(no_motion))


# --- dense motion ---------------------------------------------------------------------


def tiny_dense_motion() -> DenseMotion:
    torch.manual_seed(0)
    config = DenseMotionConfig(num_kp=3, block_expansion=8, max_features=32, num_blocks=2, estimate_occlusion_map=True)
    return DenseMotion(config).eval()


def test_known_background_affine_moves_the_background_component():
    net = tiny_dense_motion()
    source = torch.rand(2, 3, 8, 8)
    kp_s, kp_d = random_keypoints(2, 3, seed=1), random_keypoints(2, 3, seed=2)
    affine = torch.tensor([[0.9, -0.2, 0.1], [0.3, 1.1, -0.05]]).expand(2, 2, 3)
    with torch.no_grad():
        plain = net(source, kp_d, kp_s)
        moved = net(source, kp_d, kp_s, background=affine)
    # Pixel (row 2, column 5) of the 8x8 grid is (x, y) = (3/7, -3/7).
    expected = torch.tensor([0.9 * 3 / 7 + 0.2 * 3 / 7 + 0.1, 0.3 * 3 / 7 - 1.1 * 3 / 7 - 0.05])
    assert torch.allclose(moved.sparse_motion[:, 0, 2, 5], expected.expand(2, 2), atol=1e-6)
    assert torch.equal(moved.sparse_motion[:, 1:], plain.sparse_motion[:, 1:])  # local motions untouched
    assert torch.equal(plain.sparse_motion[:, 0], coordinate_grid((8, 8)).expand(2, 8, 8, 2))  # FOMM: identity
    # The masks combine the moved background into the deformation.
    combined = torch.einsum("bkhw,bkhwc->bhwc", moved.mask, moved.sparse_motion)
    assert torch.allclose(moved.deformation, combined, atol=1e-6)
    assert moved.mask.shape == (2, 4, 8, 8) and torch.allclose(moved.mask.sum(1), torch.ones(2, 8, 8))

    # A one-pixel shift to the right: the background component is the source moved left.
    shift = torch.tensor([[1.0, 0.0, 2 / 7], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    with torch.no_grad():
        shifted = net(source, kp_d, kp_s, background=shift)
    assert torch.allclose(shifted.sparse_deformed[:, 0, :, :, :7], source[..., 1:], atol=1e-5)
    with pytest.raises(ValueError, match=r"background must be \(2, 2, 3\)"):
        net(source, kp_d, kp_s, background=shift[:1])


def test_predictor_at_init_gives_the_deformation_without_it():
    with_bg = ModelConfig.from_dict(motrans_doc(skips=False))
    without = ModelConfig.from_dict(motrans_doc(background=False, skips=False))
    a, b = build_model(with_bg, seed=0).eval(), build_model(without, seed=0).eval()
    # Built last, the predictor leaves the other networks' seeded weights as they were.
    state = {k: v for k, v in a.generator.state_dict().items() if not k.startswith("bg_predictor.")}
    assert all(torch.equal(v, b.generator.state_dict()[k]) for k, v in state.items())
    source, driving = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        kp_s, kp_d = a.kp_detector(source), a.kp_detector(driving)
        out_a = a.generator(source, kp_d, kp_s, driving=driving)
        out_b = b.generator(source, kp_d, kp_s, driving=driving)
    assert torch.equal(out_a.background, identity_affine(2))
    assert out_b.background is None
    assert torch.equal(out_a.deformation, out_b.deformation) and torch.equal(out_a.mask, out_b.mask)
    assert torch.equal(out_a.prediction, out_b.prediction)


# --- generator ------------------------------------------------------------------------


def test_fomm_generator_is_unchanged_and_skips_add_no_parameters():
    """Without skips and background the generator computes FOMM's decoder exactly; the
    skips reuse its weights."""
    doc = motrans_doc(background=False, skips=False)
    fomm = build_model(ModelConfig.from_dict(doc), seed=0).eval()
    doc["model_params"]["generator_params"]["skips"] = True
    unet = build_model(ModelConfig.from_dict(doc), seed=0).eval()
    assert fomm.generator.state_dict().keys() == unet.generator.state_dict().keys()
    unet.generator.load_state_dict(fomm.generator.state_dict())
    g = fomm.generator
    source = torch.rand(2, 3, SIZE, SIZE)
    kp_s, kp_d = random_keypoints(2, 4, seed=3), random_keypoints(2, 4, seed=4)
    with torch.no_grad():
        out = g(source, kp_d, kp_s)
        features = g.first(source)
        for block in g.down_blocks:
            features = block(features)
        motion = g.dense_motion_network(source, kp_d, kp_s)
        flow = F.interpolate(motion.deformation.permute(0, 3, 1, 2), size=features.shape[2:], mode="bilinear")
        x = F.grid_sample(features, flow.permute(0, 2, 3, 1), align_corners=True)
        x = x * F.interpolate(motion.occlusion_map, size=x.shape[2:], mode="bilinear")
        x = g.bottleneck(x)
        for block in g.up_blocks:
            x = block(x)
        assert torch.equal(out.prediction, torch.sigmoid(g.final(x)))
        assert out.deformed.shape == source.shape and out.background is None
        assert not torch.equal(unet.generator(source, kp_d, kp_s).prediction, out.prediction)

        # Fully occluded (O = 0) the skips contribute nothing: FOMM's output.
        for net in (fomm, unet):
            net.generator.dense_motion_network.occlusion.weight.zero_()
            net.generator.dense_motion_network.occlusion.bias.fill_(-200.0)
        assert torch.equal(unet.generator(source, kp_d, kp_s).prediction, fomm.generator(source, kp_d, kp_s).prediction)
        # Nothing occluded (O = 1) and no motion: the skips pass the source through.
        unet.generator.dense_motion_network.occlusion.bias.fill_(200.0)
        still = unet.generator(source, kp_s, kp_s)
        assert torch.allclose(still.prediction, source, atol=1e-5)
        # A source encoded once decodes like forward (the animation path).
        encoding = unet.generator.encode(source[:1])
        assert len(encoding.skips) == 3 and torch.equal(encoding.skips[-1], encoding.features)
        decoded = unet.generator.decode(encoding, kp_d, kp_s[0])
        assert torch.allclose(
            decoded.prediction,
            unet.generator(source[:1].expand(2, -1, -1, -1), kp_d, kp_s[0].expand(2)).prediction,
            atol=1e-6,
        )


# --- losses ---------------------------------------------------------------------------


def test_background_mask_loss_values():
    masks = torch.zeros(2, 3, 4, 4)
    masks[:, 0] = 1
    assert background_mask_loss(masks) == 0  # all background
    masks[:, 0], masks[:, 1] = 0, 1
    assert background_mask_loss(masks) == pytest.approx(2.0)  # all foreground: |0 - 1| + 1
    masks[:, 0], masks[:, 1], masks[:, 2] = 0.5, 0.25, 0.25
    assert background_mask_loss(masks) == pytest.approx(1.0)  # 0.5 + 0.25 + 0.25
    # Half the pixels background, half foreground (mean over pixels and batch): 1.
    masks = torch.zeros(1, 2, 2, 2)
    masks[0, 0, 0], masks[0, 1, 1] = 1, 1
    assert background_mask_loss(masks) == pytest.approx(1.0)
    # Softmax masks: 2 mean(1 - M^0).
    soft = torch.softmax(torch.randn(3, 5, 6, 6), dim=1)
    assert background_mask_loss(soft).item() == pytest.approx(2 * (1 - soft[:, 0]).mean().item(), rel=1e-5)


def test_mask_concentration_loss_values():
    masks = torch.zeros(2, 3, 3, 3)
    masks[:, 0] = torch.rand(3, 3)  # the background is not concentrated: ignored
    masks[:, 1, 1, 2] = 0.7  # one pixel: variance 0
    masks[:, 2, 1, 1] = 1.0
    assert mask_concentration_loss(masks).item() == pytest.approx(0.0, abs=1e-6)
    # Uniform on two pixels (x, y) = (-1, -1) and (1, -1): centroid (0, -1), variance 1.
    masks[0, 2] = 0
    masks[0, 2, 0, 0] = masks[0, 2, 0, 2] = 0.3  # any scale: divided by sum(M^k)
    assert mask_concentration_loss(masks[:1]).item() == pytest.approx(1.0, rel=1e-6)
    # Summed over the foreground masks, averaged over the batch: (1 + 0) / 2.
    assert mask_concentration_loss(masks).item() == pytest.approx(0.5, rel=1e-6)
    # Uniform over the whole 3x3 grid: per axis (2 * 1^2) / 3, both axes 4/3, K = 2 masks.
    uniform = torch.full((1, 3, 3, 3), 1 / 3)
    assert mask_concentration_loss(uniform).item() == pytest.approx(2 * 4 / 3, rel=1e-6)


# --- training and checkpoints ---------------------------------------------------------


def test_objective_with_background_predictor_and_losses_lowers_the_loss():
    doc = motrans_doc(loss_weights={"perceptual": [10, 10, 0, 0, 0]})
    model = build_model(ModelConfig.from_dict(doc), seed=0)
    train_config = TrainConfig.from_dict(doc["train_params"])
    objective = GeneratorObjective(
        model.kp_detector, model.generator, None, train_config, Vgg19Features(seed=0), ms_ssim_weight=10
    )
    torch.manual_seed(0)
    source, driving = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    tps = ThinPlateSpline.random(2, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(0))
    params = list(model.generator.parameters()) + list(model.kp_detector.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    totals = []
    for step in range(8):
        losses, generated = objective(source, driving, tps)
        assert {"bg_fg_mask", "fg_mask_concentration"} <= set(losses)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        if step == 0:
            assert model.generator.bg_predictor.fc.weight.grad.abs().sum() > 0
            mask = generated.output.mask
            assert losses["bg_fg_mask"].item() == pytest.approx(0.1 * background_mask_loss(mask).item(), rel=1e-5)
        opt.step()
        totals.append(total.item())
    assert totals[-1] < totals[0], totals
    assert not torch.equal(generated.output.background, identity_affine(2))  # it moved off the identity

    no_motion = motrans_doc(background=False, skips=False)
    del no_motion["model_params"]["generator_params"]["dense_motion_params"]
    fomm = build_model(ModelConfig.from_dict(no_motion), seed=0)
    with pytest.raises(ValueError, match="need the dense motion network's masks"):
        GeneratorObjective(fomm.kp_detector, fomm.generator, None, train_config, None)
    assert not TrainConfig.from_dict({}).uses_mask_losses  # off by default


def test_background_equivariance_loss_recovers_known_affine_maps():
    """At init the predictor gives the identity whatever it sees, so the loss is
    mean |I - T| by hand; its gradient reaches the head; 30 steps on the same frames and
    maps lower it; it needs a predictor."""
    doc = motrans_doc(
        weight=0,
        loss_weights={
            "perceptual": [0, 0, 0, 0, 0],
            "equivariance_value": 0,
            "equivariance_jacobian": 0,
            "bg_equivariance": 1,
        },
    )
    model = build_model(ModelConfig.from_dict(doc), seed=0)
    train_config = TrainConfig.from_dict(doc["train_params"])
    objective = GeneratorObjective(model.kp_detector, model.generator, None, train_config, None)
    torch.manual_seed(0)
    source, driving = torch.rand(4, 3, SIZE, SIZE), torch.rand(4, 3, SIZE, SIZE)
    maps = ThinPlateSpline.random(4, 0.1, generator=torch.Generator().manual_seed(1))
    losses, _ = objective(source, driving, None, maps)
    assert set(losses) == {"bg_equivariance"}
    assert losses["bg_equivariance"].item() == pytest.approx(
        (torch.eye(2, 3) - maps.affine).abs().mean().item(), rel=1e-5
    )
    opt = torch.optim.Adam(model.generator.bg_predictor.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = objective(source, driving, None, maps)[0]["bg_equivariance"]
        opt.zero_grad()
        loss.backward()
        assert model.generator.bg_predictor.fc.weight.grad.abs().sum() > 0
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
    with pytest.raises(ValueError, match="bg_transform"):
        objective(source, driving, None, None)
    no_background = motrans_doc(background=False, weight=0, loss_weights={"bg_equivariance": 1})
    plain = build_model(ModelConfig.from_dict(no_background), seed=0)
    with pytest.raises(ValueError, match="background motion predictor"):
        GeneratorObjective(
            plain.kp_detector, plain.generator, None, TrainConfig.from_dict(no_background["train_params"]), None
        )
    matching = motrans_doc(weight=0, loss_weights={"bg_equivariance": 1})
    matching["model_params"]["bg_predictor_params"] = {"bg_type": "affine", "estimator": "correlation"}
    weightless = build_model(ModelConfig.from_dict(matching), seed=0)
    with pytest.raises(ValueError, match="predictor with weights"):
        GeneratorObjective(
            weightless.kp_detector, weightless.generator, None, TrainConfig.from_dict(matching["train_params"]), None
        )


def test_training_run_and_checkpoint_round_trip(dataset_root, tmp_path):  # noqa: F811
    doc = motrans_doc(
        num_epochs=10, num_repeats=2, log_freq=1, image_freq=2, loss_weights={"perceptual": [10, 10, 0, 0, 0]}
    )
    result = train(ModelConfig.from_dict(doc), tmp_path / "run", options(dataset_root, max_steps=2))
    assert result.state.step == 2
    assert all({"bg_fg_mask", "fg_mask_concentration"} <= set(step) for step in result.losses)
    trained = ckpt.load(result.checkpoint / "model.safetensors")
    assert trained.generator.bg_predictor is not None and trained.generator.config.skips

    # Own format: save -> load gives the same weights and outputs.
    model = build_model(trained.config, seed=1).eval()
    path = ckpt.save(tmp_path / "model.safetensors", model)
    loaded = ckpt.load(path)
    assert any(k.startswith("bg_predictor.") for k in loaded.generator.state_dict())
    source, driving = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        kp_s, kp_d = model.kp_detector(source), model.kp_detector(driving)
        expected = model.generator(source, kp_d, kp_s, driving=driving).prediction
        assert torch.equal(loaded.generator(source, kp_d, kp_s, driving=driving).prediction, expected)
    # The reference layout (top-level kp_detector / generator dicts) round-trips too.
    torch.save({name: module.state_dict() for name, module in model.parts().items()}, tmp_path / "ref.pth.tar")
    official, _ = ckpt.load_official(tmp_path / "ref.pth.tar", trained.config)
    with torch.no_grad():
        assert torch.equal(official.generator(source, kp_d, kp_s, driving=driving).prediction, expected)
    # A config without the predictor refuses those weights with a one-line error.
    plain = ModelConfig.from_dict(motrans_doc(background=False))
    with pytest.raises(CheckpointError, match="unexpected key 'generator.bg_predictor"):
        ckpt.load(path, config=plain)


# --- shipped configs ------------------------------------------------------------------


def test_fomm_vox_model_info_is_unchanged():
    from reanimate.models.complexity import model_report

    rows = {name.strip(): (params, macs) for name, params, macs in model_report(load_config("fomm/vox-256"))}
    assert rows["kp_detector"][0] == 14_215_368 and round(rows["kp_detector"][1] / 1e9, 2) == 1.28
    assert rows["generator"][0] == 45_575_391 and round(rows["generator"][1] / 1e9, 2) == 53.64
    assert rows["dense_motion"][0] == 37_730_268 and rows["discriminator"][0] == 2_758_849
    config = load_config("fomm/vox-256")
    assert not config.generator.skips and config.generator.bg_predictor_params is None


def test_motion_transformer_configs():
    expected = {  # (frame size, skips, background predictor, lambda) per the authors' configs and Sec. 3.3
        "vox-256": (256, True, False, 0),
        "taichi-256": (256, True, True, 0.1),
        "ted-384": (384, False, False, 0),
        "mgif-256": (256, False, False, 0),
    }
    for name, (size, skips, background, weight) in expected.items():
        config = load_config(f"motrans/{name}")
        assert config.motion_estimator == "transformer" and config.image_size == (size, size), name
        assert config.generator.skips == skips and (config.generator.bg_predictor_params is not None) == background
        weights = TrainConfig.from_dict(config.raw["train_params"]).loss_weights
        assert weights.bg_fg_mask == weights.fg_mask_concentration == weight, name
        assert weights.generator_gan == 0, name  # Eq. 13: no GAN term
    model = build_model(load_config("motrans/taichi-256"))
    assert count_parameters(model.generator) == 45_575_391 + 6_282_438  # FOMM's generator + the predictor


def test_reconstruction_uses_the_background_predictor_and_animation_does_not():
    from reanimate.animators.base import Transfer
    from reanimate.animators.fomm import FommAnimator

    model = build_model(ModelConfig.from_dict(motrans_doc()), seed=0)
    with torch.no_grad():  # the predictor now says: the background moved by (0.2, 0)
        model.generator.bg_predictor.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.2, 0.0, 1.0, 0.0]))
    pipeline = FommAnimator(model, device="cpu")
    gen = torch.Generator().manual_seed(0)
    source, driving = torch.rand(1, 3, SIZE, SIZE, generator=gen), torch.rand(2, 3, SIZE, SIZE, generator=gen)
    state = pipeline.encode(source)
    kp = pipeline.detect(driving)
    absolute = Transfer(relative=False)
    with_background = pipeline.generate(state, kp, None, absolute, driving=driving)
    assert torch.allclose(with_background.background[:, 0, 2], torch.tensor([0.2, 0.2]))
    assert pipeline.generate(state, kp, None, absolute).background is None
