"""Networks: parameter counts of the shipped configs, shapes, ranges and invariants."""

import copy
import logging

import pytest
import torch

from reanimate.geometry import coordinate_grid
from reanimate.models import ModelConfig, build_model, builtin_configs, count_parameters, load_config
from reanimate.motion import Keypoints

# Trainable parameters of the reference implementation for each shipped config:
# (keypoint detector, generator incl. dense motion, dense motion, discriminator).
REFERENCE_COUNTS = {
    "vox-256": (14_215_368, 45_575_391, 37_730_268, 2_758_849),
    "vox-adv-256": (14_215_368, 45_575_391, 37_730_268, 2_769_089),
    "taichi-256": (14_215_368, 45_575_391, 37_730_268, 2_758_849),
    "taichi-adv-256": (14_215_368, 45_575_391, 37_730_268, 2_769_089),
    "mgif-256": (14_153_592, 45_575_391, 37_730_268, 2_758_849),
    "bair-256": (14_215_368, 45_575_391, 37_730_268, 2_758_849),
    "nemo-256": (14_215_368, 45_575_391, 37_730_268, 2_758_849),
    "fashion-256": (14_215_368, 45_575_391, 37_730_268, 2_758_849),
}


def test_every_official_config_is_shipped():
    assert set(REFERENCE_COUNTS) <= set(builtin_configs())


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_parameter_counts_equal_the_reference(name):
    model = build_model(load_config(name), with_discriminator=True)
    counts = (
        count_parameters(model.kp_detector),
        count_parameters(model.generator),
        count_parameters(model.generator.dense_motion_network),
        count_parameters(model.discriminator),
    )
    assert counts == REFERENCE_COUNTS[name]


def test_config_defaults_follow_the_reference_constructors():
    cfg = ModelConfig.from_yaml_text(
        """
model_params:
  common_params: {num_kp: 4, num_channels: 3}
  kp_detector_params: {temperature: 0.1, block_expansion: 8, max_features: 16, num_blocks: 2}
  generator_params: {block_expansion: 8, max_features: 16, num_down_blocks: 1, num_bottleneck_blocks: 1}
  discriminator_params: {}
"""
    )
    assert cfg.kp_detector.scale_factor == 1 and not cfg.kp_detector.estimate_jacobian
    assert cfg.generator.dense_motion_params is None and not cfg.generator.estimate_occlusion_map
    assert cfg.discriminator.scales == [] and cfg.align_corners is True
    assert cfg.image_size == (256, 256)


def test_unknown_config_keys_are_reported_not_fatal(caplog):
    text = """
model_params:
  common_params: {num_kp: 4, num_channels: 3, not_a_key: 1}
  kp_detector_params: {temperature: 0.1}
  generator_params: {}
"""
    with caplog.at_level(logging.WARNING):
        ModelConfig.from_yaml_text(text)
    assert "not_a_key" in caplog.text


def test_keypoint_detector_outputs(tiny_model):
    image = torch.rand(3, 3, 64, 64)
    kp, heatmap = tiny_model.kp_detector(image, return_heatmap=True)
    assert kp.value.shape == (3, 5, 2) and kp.jacobian.shape == (3, 5, 2, 2)
    assert kp.value.abs().max() <= 1
    assert torch.allclose(heatmap.sum(dim=(2, 3)), torch.ones(3, 5), atol=1e-5)


def test_fresh_jacobian_head_predicts_identity(tiny_config):
    model = build_model(tiny_config).eval()
    kp = model.kp_detector(torch.rand(2, 3, 64, 64))
    assert torch.allclose(kp.jacobian, torch.eye(2).expand(2, 5, 2, 2), atol=1e-6)


def test_single_jacobian_map(tiny_config):
    raw = copy.deepcopy(tiny_config.raw)
    raw["model_params"]["kp_detector_params"]["single_jacobian_map"] = True
    cfg = ModelConfig.from_dict(raw)
    model = build_model(cfg)
    assert model.kp_detector.jacobian.out_channels == 4
    assert model.kp_detector(torch.rand(1, 3, 64, 64)).jacobian.shape == (1, 5, 2, 2)


def test_generator_outputs_shapes_and_ranges(tiny_model):
    src, drv = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = tiny_model.generator(src, tiny_model.kp_detector(drv), tiny_model.kp_detector(src))
    assert out.prediction.shape == (2, 3, 64, 64)
    assert 0 <= out.prediction.min() and out.prediction.max() <= 1
    assert out.mask.shape == (2, 6, 32, 32)
    assert torch.allclose(out.mask.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    assert out.occlusion_map.shape == (2, 1, 32, 32)
    assert 0 <= out.occlusion_map.min() and out.occlusion_map.max() <= 1
    assert out.sparse_deformed.shape == (2, 6, 3, 32, 32)
    assert out.deformation.shape == (2, 32, 32, 2) and out.deformed.shape == (2, 3, 64, 64)


def test_source_encoded_once_gives_the_same_frames_as_the_full_forward(tiny_model):
    src, drv = torch.rand(1, 3, 64, 64), torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        kp_s, kp_d = tiny_model.kp_detector(src), tiny_model.kp_detector(drv)
        encoding = tiny_model.generator.encode(src)
        batched = tiny_model.generator.decode(encoding, kp_d, kp_s).prediction
        for i in range(4):
            single = tiny_model.generator(src, kp_d[i], kp_s).prediction
            assert torch.allclose(batched[i : i + 1], single, atol=1e-5)


@pytest.mark.parametrize("align_corners", [True, False])
def test_identity_motion_reproduces_the_source_only_with_aligned_corners(tiny_config, align_corners):
    model = build_model(tiny_config.with_align_corners(align_corners)).eval()
    src = torch.rand(1, 3, 64, 64)
    kp = Keypoints(torch.rand(1, 5, 2) * 1.6 - 0.8, torch.eye(2).expand(1, 5, 2, 2) * 1.3)
    with torch.no_grad():
        out = model.generator(src, kp, kp)
    grid = coordinate_grid((32, 32))
    assert torch.allclose(out.deformation[0], grid, atol=1e-6)
    small = torch.rand(1, 3, 32, 32)
    error = (model.generator.warp(small, out.deformation) - small).abs().max().item()
    if align_corners:
        assert error < 1e-5
    else:
        assert error > 1e-3  # the half-pixel convention resamples even the identity


def test_discriminator_with_and_without_keypoints(tiny_config):
    image = torch.rand(2, 3, 64, 64)
    # (its own model: a spectral-norm forward with gradients leaves a computed weight that
    # cannot be deep-copied, which would break later users of the shared tiny_model)
    out = build_model(tiny_config, with_discriminator=True).discriminator({1: image})
    features, prediction = out[1]
    assert len(features) == 4 and prediction.shape[:2] == (2, 1)
    raw = copy.deepcopy(tiny_config.raw)
    raw["model_params"]["discriminator_params"].update(use_kp=True, scales=[1, 0.5])
    model = build_model(ModelConfig.from_dict(raw), with_discriminator=True)
    kp = Keypoints(torch.rand(2, 5, 2) * 2 - 1)
    out = model.discriminator({1: torch.rand(2, 3, 128, 128), 0.5: image}, kp)
    assert set(out) == {1, 0.5}
    assert model.discriminator.discs["1"].down_blocks[0].conv.in_channels == 3 + 5
    assert "0-5" in model.discriminator.discs  # the reference checkpoints' key


def test_keypoints_container():
    kp = Keypoints(torch.rand(4, 3, 2), torch.rand(4, 3, 2, 2))
    assert kp[1].batch_size == 1 and kp[-1].value.shape == (1, 3, 2)
    assert Keypoints.cat([kp[0], kp[1:]]).value.shape == (4, 3, 2)
    assert kp[0].expand(5).value.shape == (5, 3, 2)
    assert set(kp.as_dict()) == {"value", "jacobian"}
    with pytest.raises(ValueError, match="does not match"):  # survives python -O
        Keypoints(torch.rand(4, 3, 2), torch.rand(4, 2, 2, 2))
