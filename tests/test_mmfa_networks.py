"""MMFA networks: shapes at a tiny size, the invariants the training relies on (no motion
gives the identity grid, the expression decoder uses both inputs, every parameter gets a
gradient), the strict config and the shipped configs."""

import dataclasses
import math

import pytest
import torch

from reanimate.errors import InputError
from reanimate.geometry import coordinate_grid, euler_to_rotation, heatmap_to_keypoints, keypoints_to_gaussian
from reanimate.models.blocks import ConvBlock, Hourglass, ResBlock
from reanimate.models.mmfa import (
    ANGLE_BIN_CENTRES,
    MMFAConfig,
    angles_from_logits,
    build_mmfa,
    load_mmfa_config,
)
from reanimate.models.mmfa.model import PART_NAMES

K = 4
TINY = {
    "family": "mmfa",
    "common_params": {"num_kp": K, "num_channels": 3, "feature_channels": 4, "depth": 2},
    "appearance_params": {"block_expansion": 8, "max_features": 16, "num_res_blocks": 1},
    "canonical_kp_params": {"block_expansion": 4, "max_features": 16, "num_blocks": 2, "heatmap_depth": 2},
    "head_pose_params": {"stem_features": 8, "widths": [8, 16], "blocks": [1, 1], "learn_rotation": True},
    "expression_encoder_params": {"stem_features": 8, "widths": [8, 8], "blocks": [1, 1], "feature_dim": 16},
    "expression_decoder_params": {"feature_dim": 16, "hidden_features": [16]},
    "dense_motion_params": {"compress": 2, "block_expansion": 4, "max_features": 16, "num_blocks": 2},
    "generator_params": {"features": 16, "num_scales": 3},
    "discriminator_params": {"block_expansion": 8, "max_features": 16, "num_blocks": 2},
}
SIZE = 64


@pytest.fixture(scope="module")
def tiny():
    return build_mmfa(MMFAConfig.from_dict(TINY, image_size=(SIZE, SIZE)), with_discriminator=True, seed=0)


def images(batch=2, seed=0):
    return torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def head_keypoints(model, image, canonical):
    """Eq. 5: ``R f (p_C + delta) + t`` (t moves x and y)."""
    pose = model.head_pose(image)
    delta = model.expression_decoder(model.expression_encoder(image), canonical)
    angles = pose.angles
    rotation = euler_to_rotation(angles[:, 0], angles[:, 1], angles[:, 2])
    points = pose.scale[:, None, None] * (canonical + delta) @ rotation.transpose(1, 2)
    return torch.cat([points[..., :2] + pose.translation[:, None], points[..., 2:]], dim=-1)


def test_every_network_has_the_documented_shapes(tiny):
    image = images()
    volume = tiny.appearance(image)
    assert volume.shape == (2, 4, 2, SIZE // 4, SIZE // 4)
    kp, heatmap = tiny.canonical(image, return_heatmap=True)
    assert kp.shape == (2, K, 3) and kp.abs().max() <= 1
    assert heatmap.shape == (2, K, 2, 16, 16)
    torch.testing.assert_close(heatmap.flatten(2).sum(-1), torch.ones(2, K))
    pose = tiny.head_pose(image)
    assert pose.scale.shape == (2,) and (pose.scale > 0).all()
    assert pose.translation.shape == (2, 2) and pose.angle_logits.shape == (2, 3, 66)
    assert pose.angles.shape == (2, 3)
    f = tiny.expression_encoder(image)
    assert f.shape == (2, 16)
    assert tiny.expression_decoder(f, kp).shape == (2, K, 3)
    motion = tiny.dense_motion(volume, kp, kp + 0.1)
    assert motion.deformation.shape == (2, 2, 16, 16, 3)
    assert motion.occlusion.shape == (2, 1, 16, 16) and 0 <= motion.occlusion.min() <= motion.occlusion.max() <= 1
    assert motion.mask.shape == (2, K + 1, 2, 16, 16)
    out = tiny.generator(volume, motion.deformation, motion.occlusion, return_deformed=True)
    assert {s: tuple(x.shape) for s, x in out.images.items()} == {
        16: (2, 3, 16, 16),
        32: (2, 3, 32, 32),
        64: (2, 3, 64, 64),
    }
    assert out.prediction is out.images[64] and 0 <= out.prediction.min() <= out.prediction.max() <= 1
    assert out.deformed.shape == volume.shape
    scores = tiny.discriminator({1: out.prediction})
    assert scores[1][1].shape[:2] == (2, 1)


SKIPS = {**TINY, "generator_params": {**TINY["generator_params"], "skip_features": 4}}


def test_generator_skips_warp_the_source_features_with_the_depth_averaged_grid():
    model = build_mmfa(MMFAConfig.from_dict(SKIPS, image_size=(SIZE, SIZE)), seed=0).eval()
    generator = model.generator
    image = images(batch=1)
    with torch.no_grad():
        skips = generator.encode_source(image)
        assert [tuple(x.shape) for x in skips] == [(1, 4, 64, 64), (1, 8, 32, 32), (1, 16, 16, 16)]
        # the identity grid (no motion) samples every skip at its own pixels
        identity = coordinate_grid((2, 16, 16)).expand(2, 2, 16, 16, 3)
        flow = identity[..., :2].mean(dim=1).permute(0, 3, 1, 2)
        for skip in skips:
            torch.testing.assert_close(generator._warped_skip(skip, flow, None, 2), skip.expand(2, -1, -1, -1))
        # a grid shifted right by 4 px of the 64-px skip (align_corners: 2 / 63 per px)
        shifted = identity.clone()
        shifted[..., 0] += 4 * 2 / 63
        flow = shifted[..., :2].mean(dim=1).permute(0, 3, 1, 2)
        warped = generator._warped_skip(skips[0], flow, torch.full((2, 1, 16, 16), 0.5), 2)
        torch.testing.assert_close(warped[..., 10:50, 10:50], 0.5 * skips[0][..., 10:50, 14:54].expand(2, -1, -1, -1))
        volume = model.appearance(image)
        kp = model.canonical(image)
        motion = model.dense_motion(volume, kp, kp + 0.05)
        out = generator(volume, motion.deformation, motion.occlusion, skips)
        assert out.prediction.shape == (1, 3, SIZE, SIZE)
        # the skips reach the output
        other = [torch.zeros_like(x) for x in skips]
        assert not torch.allclose(
            generator(volume, motion.deformation, motion.occlusion, other).prediction, out.prediction
        )
    with pytest.raises(ValueError, match="has 2-D skips: pass skips=encode_source"):
        generator(volume, motion.deformation, motion.occlusion)
    with pytest.raises(ValueError, match="has no 2-D skips"):
        build_mmfa(MMFAConfig.from_dict(TINY, image_size=(SIZE, SIZE)), seed=0).generator(
            volume, motion.deformation, motion.occlusion, skips
        )


def test_head_pose_without_rotation_bins_has_no_angle_logits():
    params = {**TINY, "head_pose_params": {**TINY["head_pose_params"], "learn_rotation": False}}
    model = build_mmfa(MMFAConfig.from_dict(params, image_size=(SIZE, SIZE)), seed=0)
    pose = model.head_pose(images())
    assert pose.angle_logits is None and pose.angles is None and pose.scale.shape == (2,)


def test_no_keypoint_motion_gives_the_identity_grid(tiny):
    volume = tiny.appearance(images())
    kp = tiny.canonical(images(seed=1))
    motion = tiny.dense_motion(volume, kp, kp)
    identity = coordinate_grid((2, 16, 16)).expand(2, 2, 16, 16, 3)
    torch.testing.assert_close(motion.deformation, identity, atol=1e-6, rtol=0)
    # ... even though the masks give the keypoints' own motions much of the weight
    assert motion.mask[:, 1:].sum(1).mean() > 0.5
    torch.testing.assert_close(motion.mask.sum(1), torch.ones(2, 2, 16, 16))


def test_each_sparse_motion_translates_by_its_keypoint_offset(tiny):
    volume = tiny.appearance(images())
    kp_source = torch.rand(2, K, 3, generator=torch.Generator().manual_seed(3)) - 0.5
    kp_driving = kp_source + torch.tensor([0.2, -0.1, 0.3])
    motion = tiny.dense_motion(volume, kp_source, kp_driving)
    grid = coordinate_grid((2, 16, 16))
    torch.testing.assert_close(motion.sparse_motion[:, 0], grid.expand(2, *grid.shape))
    expected = grid - torch.tensor([0.2, -0.1, 0.3])
    torch.testing.assert_close(motion.sparse_motion[:, 1:], expected.expand(2, K, *grid.shape))


def test_expression_decoder_depends_on_the_feature_and_the_canonical_keypoints(tiny):
    decoder = tiny.expression_decoder.eval()
    try:
        gen = torch.Generator().manual_seed(0)
        f, kp = torch.randn(2, 16, generator=gen), torch.rand(2, K, 3, generator=gen) * 2 - 1
        base = decoder(f, kp)
        assert not torch.allclose(decoder(f + 0.5, kp), base)
        assert not torch.allclose(decoder(f, kp.flip(1)), base)
    finally:
        decoder.train()


def test_gradients_reach_every_parameter_of_a_full_forward_pass(tiny):
    tiny.zero_grad(set_to_none=True)
    source, driving = images(seed=0), images(seed=1)
    volume = tiny.appearance(source)
    canonical = tiny.canonical(source)
    kp_source = head_keypoints(tiny, source, canonical)
    kp_driving = head_keypoints(tiny, driving, canonical)
    motion = tiny.dense_motion(volume, kp_source, kp_driving)
    out = tiny.generator(volume, motion.deformation, motion.occlusion)
    loss = sum((image - 0.5).square().mean() for image in out.images.values())
    loss.backward()
    missing = [
        f"{part}.{name}"
        for part in PART_NAMES
        for name, p in getattr(tiny, part).named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


def test_angles_are_the_softmax_expectation_of_the_bin_centres():
    assert ANGLE_BIN_CENTRES.shape == (66,)
    assert ANGLE_BIN_CENTRES[0] == -97.5 and ANGLE_BIN_CENTRES[-1] == 97.5
    logits = torch.full((2, 3, 66), -1e4)
    logits[0, 0, 10] = logits[0, 1, 33] = logits[0, 2, 65] = 0
    logits[1] = 0  # uniform: the middle of the range
    angles = angles_from_logits(logits)
    torch.testing.assert_close(angles[0], torch.tensor([-97.5 + 30, 1.5, 97.5]))
    torch.testing.assert_close(angles[1], torch.zeros(3), atol=1e-4, rtol=0)
    # two equal bins: halfway between their centres
    two = torch.full((1, 3, 66), -1e4)
    two[..., 40] = two[..., 41] = 0
    torch.testing.assert_close(angles_from_logits(two), torch.full((1, 3), -97.5 + 3 * 40.5))


def test_heatmap_functions_work_on_volumes():
    """3-D keypoints index (D, H, W) volumes as grid_sample's (x, y, z)."""
    heatmap = torch.zeros(1, 1, 3, 5, 7)
    heatmap[0, 0, 2, 1, 6] = 1  # depth 2 of 3, row 1 of 5, column 6 of 7
    torch.testing.assert_close(heatmap_to_keypoints(heatmap), torch.tensor([[[1.0, -0.5, 1.0]]]))
    gaussian = keypoints_to_gaussian(torch.tensor([[[1.0, -0.5, 1.0]]]), (3, 5, 7), variance=0.1)
    assert gaussian.shape == (1, 1, 3, 5, 7) and gaussian[0, 0, 2, 1, 6] == 1
    # one voxel away along x (2/6 normalised units)
    torch.testing.assert_close(gaussian[0, 0, 2, 1, 5], torch.tensor(math.exp(-0.5 * (1 / 3) ** 2 / 0.1)))
    # the keypoint samples its own voxel
    volume = torch.arange(3 * 5 * 7, dtype=torch.float32).view(1, 1, 3, 5, 7)
    sampled = torch.nn.functional.grid_sample(
        volume, torch.tensor([1.0, -0.5, 1.0]).view(1, 1, 1, 1, 3), align_corners=True
    )
    assert sampled.item() == volume[0, 0, 2, 1, 6]


def test_volume_blocks_resample_height_and_width_only():
    x = torch.rand(2, 3, 4, 8, 8)
    assert ConvBlock(3, 5, resample="down", dims=3)(x).shape == (2, 5, 4, 4, 4)
    assert ConvBlock(3, 5, resample="up", dims=3)(x).shape == (2, 5, 4, 16, 16)
    assert ResBlock(3, dims=3)(x).shape == x.shape
    hourglass = Hourglass(4, 3, num_blocks=2, max_features=8, dims=3, final_block=True)
    assert hourglass(x).shape == (2, hourglass.out_filters, 4, 8, 8)
    # the 2-D hourglass keeps FOMM's parameter names
    assert "decoder.final.conv.weight" not in Hourglass(4, 3, num_blocks=2).state_dict()


def test_config_rejects_unknown_and_misplaced_keys():
    with pytest.raises(ValueError, match="unknown key.*colour"):
        MMFAConfig.from_dict({**TINY, "colour": 1}, image_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="common_params: unknown key.*num_kps"):
        MMFAConfig.from_dict({**TINY, "common_params": {"num_kps": 3}}, image_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="generator_params: unknown key.*num_resblocks"):
        MMFAConfig.from_dict({**TINY, "generator_params": {"num_resblocks": 2}}, image_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="num_kp belong.*common_params"):
        MMFAConfig.from_dict({**TINY, "canonical_kp_params": {"num_kp": 3}}, image_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="not a config of the mmfa family"):
        MMFAConfig.from_dict({**TINY, "family": "fomm"})
    with pytest.raises(
        ValueError, match="largest image would be 32 high, not 64: set generator_params.num_scales to 3"
    ):
        MMFAConfig.from_dict({**TINY, "generator_params": {"features": 16, "num_scales": 2}}, image_size=(SIZE, SIZE))


def test_config_defaults_are_the_paper_model():
    config = MMFAConfig.from_dict({})
    assert dataclasses.replace(config, raw={}) == MMFAConfig()
    assert config.num_kp == 15 and config.volume_size == (16, 64, 64) and config.image_size == (256, 256)
    assert config.generator.features == 256 and config.expression_encoder.feature_dim == 256


def test_the_shipped_configs_build():
    small = load_mmfa_config("mmfa/heads-64")
    assert small.image_size == (64, 64) and not small.face
    model = build_mmfa(small, seed=0).eval()
    with torch.no_grad():
        image = torch.rand(1, 3, 64, 64)
        volume = model.appearance(image)
        kp = model.canonical(image)
        motion = model.dense_motion(volume, kp, kp)
        skips = model.generator.encode_source(image)
        assert [tuple(x.shape) for x in skips] == [(1, 16, 64, 64), (1, 32, 32, 32), (1, 64, 16, 16)]
        assert sorted(model.generator(volume, motion.deformation, motion.occlusion, skips).images) == [16, 32, 64]
    vox = load_mmfa_config("mmfa/vox-256")
    assert vox == MMFAConfig(face=True, name="vox-256", raw=vox.raw)
    with torch.device("meta"):
        model = build_mmfa(vox, with_discriminator=True)
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in model.parts().items()}
    # face-vid2vid's networks, counted from the reference implementation's constructors
    assert counts["appearance"] == 843_904  # its generator's encoder part
    assert counts["canonical"] == 41_940_047  # KPDetector
    assert counts["dense_motion"] == 43_545_549  # DenseMotionNetwork
    assert counts["head_pose"] == 29_750_784 + 2_049 + 4_098  # HEEstimator's trunk, our scale and translation heads


def test_a_missing_config_is_a_user_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model_params:\n  family: mmfa\n  generator_params: {wings: 2}\n")
    with pytest.raises(InputError, match="not an MMFA config.*wings"):
        load_mmfa_config(path)
