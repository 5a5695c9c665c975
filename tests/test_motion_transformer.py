"""Motion Transformer (MoTrans) estimator and its HRNet backbones."""

import math

import pytest
import torch

from reanimate.models import count_parameters
from reanimate.models.complexity import count_macs
from reanimate.models.hrnet import HRNetBackbone, HRNetConfig, StemBackbone, build_backbone
from reanimate.models.motion_transformer import (
    MotionTransformer,
    MotionTransformerConfig,
    convert_mtia_state_dict,
    sine_position_encoding,
)
from reanimate.motion import Keypoints


def small(**kwargs) -> MotionTransformer:
    """A fast estimator: full HRNet-W32 trunk, 2 transformer layers, 5 keypoints."""
    return MotionTransformer(MotionTransformerConfig(**{"num_kp": 5, "depth": 2, **kwargs}))


# --- parameters -------------------------------------------------------------------

# Trainable parameters at the paper's settings (d = 192, 12 layers, K = 10, 256x256).
# Paper Table 1 / Table 5: 12.23 M (HRNet-W32), 21.30 M (HRNet-W48), 5.56 M (Stem).
# These also equal the authors' code (MTIA pose_tokenpose_b, trainable parameters: its
# fixed sine position table, 49 152 values, is a frozen Parameter and not counted).
PAPER_COUNTS = {"hrnet_w32": 12_234_310, "hrnet_w48": 21_303_654, "stem": 5_561_862}


@pytest.mark.parametrize("backbone", sorted(PAPER_COUNTS))
def test_parameter_count_matches_the_paper(backbone):
    model = MotionTransformer(MotionTransformerConfig(backbone=backbone))
    assert count_parameters(model) == PAPER_COUNTS[backbone]


def test_default_config_is_the_paper_estimator():
    cfg = MotionTransformerConfig()
    assert (cfg.num_kp, cfg.backbone, cfg.patch_size, cfg.dim, cfg.depth) == (10, "hrnet_w32", 4, 192, 12)
    assert cfg.position_encoding == "sine" and cfg.estimate_jacobian
    # HRNet-W32 stages 1-3 alone: 7 685 632 parameters; the transformer part: 4 548 678.
    assert count_parameters(build_backbone("hrnet_w32")) == 7_685_632


def test_macs_at_256_are_close_to_the_paper_flops():
    macs = count_macs(MotionTransformer().eval(), torch.rand(1, 3, 256, 256))
    # Paper Table 1: 7.54 G. Convolutions + linear layers give 7.49 G; the two attention
    # products add 0.35 G (a module-hook counter like thop does not see them).
    assert macs["conv"] + macs["linear"] == pytest.approx(7.49e9, rel=0.005)
    assert macs["attention"] == 12 * 2 * (256 + 20) ** 2 * 192


# --- tokens and shapes ---------------------------------------------------------------


@pytest.fixture(scope="module")
def one_layer_paper_model():
    """The paper's estimator with a single transformer layer (the tokens are the same)."""
    torch.manual_seed(0)
    return MotionTransformer(MotionTransformerConfig(depth=1)).eval()


@pytest.mark.parametrize("size, tokens", [(256, 256), (384, 576)])
def test_token_counts_and_shapes_at_paper_resolutions(one_layer_paper_model, size, tokens):
    image = torch.rand(2, 3, size, size)
    with torch.no_grad():
        image_tokens, grid = one_layer_paper_model.tokenize(image)
        kp, attention = one_layer_paper_model(image, return_attention=True)
    assert image_tokens.shape == (2, tokens, 192)
    assert grid == (size // 16, size // 16)
    assert isinstance(kp, Keypoints)
    assert kp.value.shape == (2, 10, 2) and kp.jacobian.shape == (2, 10, 2, 2)
    assert attention.shape == (2, 1, 10, size // 16, size // 16)


def test_non_square_input_and_size_check():
    model = small().eval()
    with torch.no_grad():
        kp, attention = model(torch.rand(1, 3, 48, 80), return_attention=True)
        assert kp.value.shape == (1, 5, 2) and attention.shape == (1, 2, 5, 3, 5)
        with pytest.raises(AssertionError, match="divisible by 16"):
            model(torch.rand(1, 3, 40, 64))


# --- position encoding ---------------------------------------------------------------


def test_sine_encoding_values():
    pos = sine_position_encoding(16, 16, 192)
    assert pos.shape == (256, 192)
    # Token (row 2, col 5): p_y = 3/16 * 2pi, p_x = 6/16 * 2pi; channel 2m is
    # sin(p / 10000**(2m/96)), channel 2m+1 cos of the same; rows first, then columns.
    token = pos[2 * 16 + 5]
    py, px = 3 / 16 * 2 * math.pi, 6 / 16 * 2 * math.pi
    expected = {
        0: math.sin(py),
        1: math.cos(py),
        2: math.sin(py / 10000 ** (2 / 96)),
        3: math.cos(py / 10000 ** (2 / 96)),
        95: math.cos(py / 10000 ** (94 / 96)),
        96: math.sin(px),
        97: math.cos(px),
        98: math.sin(px / 10000 ** (2 / 96)),
    }
    for channel, value in expected.items():
        assert token[channel].item() == pytest.approx(value, abs=1e-5), channel


@pytest.mark.parametrize("every_layer", [True, False])
def test_position_encoding_changes_the_output(every_layer):
    with_pe = small(position_encoding_every_layer=every_layer).eval()
    without = small(position_encoding="none").eval()
    without.load_state_dict(with_pe.state_dict())  # the encoding has no parameters
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = with_pe(image), without(image)
    assert not torch.allclose(a.value, b.value, atol=1e-6)


def test_position_encoding_every_layer_differs_from_input_only():
    full = small(depth=3).eval()
    input_only = small(depth=3, position_encoding_every_layer=False).eval()
    input_only.load_state_dict(full.state_dict())
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(full(image).value, input_only(image).value, atol=1e-6)


# --- outputs -------------------------------------------------------------------------


def test_keypoints_in_range_and_identity_jacobians_at_init():
    model = small().eval()
    with torch.no_grad():
        kp = model(torch.rand(3, 3, 64, 64))
        assert kp.value.shape == (3, 5, 2) and kp.jacobian.shape == (3, 5, 2, 2)
        assert kp.value.abs().max() <= 1
        assert torch.allclose(kp.jacobian, torch.eye(2).expand(3, 5, 2, 2), atol=1e-6)
        # the squashing keeps even saturated outputs inside [-1, 1]
        model.kp_head[-1].bias.copy_(torch.tensor([1e3, -1e3]))
        value = model(torch.rand(1, 3, 64, 64)).value
    assert value.min() >= -1 and value.max() <= 1
    assert torch.allclose(value, torch.tensor([1.0, -1.0]).expand(1, 5, 2))


def test_one_token_per_part_without_jacobian_tokens():
    model = small(jacobian_tokens=False).eval()
    assert model.motion_tokens.shape == (1, 5, 192)
    with torch.no_grad():
        kp = model(torch.rand(1, 3, 64, 64))
    assert kp.jacobian.shape == (1, 5, 2, 2)
    assert small().motion_tokens.shape == (1, 10, 192)
    assert small(estimate_jacobian=False).motion_tokens.shape == (1, 5, 192)


def test_without_jacobian():
    model = small(estimate_jacobian=False).eval()
    with torch.no_grad():
        kp = model(torch.rand(1, 3, 64, 64))
    assert kp.jacobian is None and kp.value.shape == (1, 5, 2)


# --- attention -----------------------------------------------------------------------


def test_attention_maps():
    model = small().eval()
    image = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        kp, maps = model(image, return_attention=True)
        rows = model.attention(image)
        plain = model(image)
    m, n = 10, 4 * 6  # 2K motion tokens, (64/16) x (96/16) image tokens
    assert maps.shape == (2, 2, 5, 4, 6)
    assert rows.shape == (2, 2, m, m + n)
    assert torch.allclose(rows.sum(-1), torch.ones(2, 2, m), atol=1e-5)
    assert maps.min() >= 0 and (maps.sum((-2, -1)) <= 1 + 1e-5).all()
    assert torch.equal(maps, rows[:, :, :5, m:].reshape(2, 2, 5, 4, 6))
    # the explicit-softmax path equals the fused attention path
    assert torch.allclose(kp.value, plain.value, atol=1e-6)
    assert torch.allclose(kp.jacobian, plain.jacobian, atol=1e-6)


# --- gradients -----------------------------------------------------------------------


def test_gradients_reach_the_first_convolution():
    model = small().train()
    kp = model(torch.rand(2, 3, 64, 64))
    (kp.value.sum() + kp.jacobian.sum()).backward()
    grad = model.backbone.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.motion_tokens.grad.abs().sum() > 0


# --- backbones -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls, channels",
    [("stem", StemBackbone, 256), ("hrnet_w32", HRNetBackbone, 32), ("hrnet_w48", HRNetBackbone, 48)],
)
def test_build_backbone(name, cls, channels):
    backbone = build_backbone(name).eval()
    assert type(backbone) is cls and backbone.out_channels == channels
    with torch.no_grad():
        assert backbone(torch.rand(1, 3, 32, 48)).shape == (1, channels, 8, 12)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'"):
        build_backbone("resnet50")
    with pytest.raises(ValueError):
        MotionTransformer(MotionTransformerConfig(backbone="hrnet_w64"))


def test_hrnet_layout_and_checkpoint_names():
    backbone = build_backbone("hrnet_w32")
    assert len(backbone.stage2) == 1 and len(backbone.stage3) == 4
    assert [len(b) for b in backbone.stage3[0].branches] == [4, 4, 4]
    assert len(backbone.stage3[-1].fuse_layers) == 1  # only the 1/4 branch is fused at the end
    names = set(backbone.state_dict())
    for key in [  # as in the official HRNet ImageNet checkpoints
        "conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer1.3.conv3.weight",
        "transition1.0.0.weight",
        "transition1.1.0.0.weight",
        "transition2.2.0.0.weight",
        "stage2.0.branches.1.3.bn2.running_var",
        "stage2.0.fuse_layers.1.0.0.0.weight",
        "stage3.3.fuse_layers.0.2.1.weight",
    ]:
        assert key in names, key
    assert "transition2.0.0.weight" not in names  # unchanged branches pass through
    # a 4-stage trunk is the same code
    full = HRNetBackbone(HRNetConfig(width=18, stage_modules=(1, 4, 3))).eval()
    with torch.no_grad():
        assert full(torch.rand(1, 3, 64, 64)).shape == (1, 18, 16, 16)


def test_load_pretrained_copies_matching_entries():
    source, target = build_backbone("hrnet_w32"), build_backbone("hrnet_w32")
    state = {**source.state_dict(), "incre_modules.0.weight": torch.zeros(1), "fc.weight": torch.zeros(2)}
    loaded = target.load_pretrained(state)
    assert "fc.weight" not in loaded and len(loaded) == len(target.state_dict())
    assert torch.equal(target.conv1.weight, source.conv1.weight)


def test_convert_mtia_state_dict():
    model = small(depth=1)
    ours = model.state_dict()
    mtia = {"transformer.pos_embedding": torch.zeros(1, 16, 192)}
    renames = {
        "motion_tokens": "transformer.keypoint_token",
        "patch_embed.": "transformer.patch_to_embedding.",
        "layers.0.norm1.": "transformer.transformer.layers.0.0.fn.norm.",
        "layers.0.attn.qkv.": "transformer.transformer.layers.0.0.fn.fn.to_qkv.",
        "layers.0.attn.proj.": "transformer.transformer.layers.0.0.fn.fn.to_out.0.",
        "layers.0.norm2.": "transformer.transformer.layers.0.1.fn.norm.",
        "layers.0.mlp.0.": "transformer.transformer.layers.0.1.fn.fn.net.0.",
        "layers.0.mlp.3.": "transformer.transformer.layers.0.1.fn.fn.net.3.",
        "kp_head.": "transformer.mlp_head.",
        "jacobian_head.": "transformer.mlp_head_jacobian.",
        "backbone.": "pre_feature.",
    }
    for key, value in ours.items():
        prefix = next(p for p in renames if key.startswith(p))
        mtia["module." + renames[prefix] + key[len(prefix) :]] = value
    converted = convert_mtia_state_dict(mtia)
    assert converted.keys() == ours.keys()
    model.load_state_dict(converted, strict=True)


# --- the attention command ------------------------------------------------------------


def test_attention_command_writes_maps_per_layer_and_token(tmp_path, capsys):
    import copy

    import numpy as np
    from PIL import Image

    from reanimate import checkpoint as ckpt
    from reanimate.cli import main
    from reanimate.models import ModelConfig, build_model, load_config

    doc = copy.deepcopy(load_config("synthetic-64").raw)
    doc["model_params"]["motion_estimator"] = "transformer"
    doc["model_params"]["kp_detector_params"] = {"backbone": "stem", "dim": 32, "depth": 2, "heads": 4}
    model = build_model(ModelConfig.from_dict(doc), seed=0)
    weights = ckpt.save(tmp_path / "motrans.safetensors", model, {})
    image = tmp_path / "image.png"
    Image.fromarray((np.random.default_rng(0).random((80, 64, 3)) * 255).astype(np.uint8)).save(image)
    assert main(["attention", str(image), "--checkpoint", str(weights), "-o", str(tmp_path / "att")]) == 0
    files = sorted(p.name for p in (tmp_path / "att").iterdir())
    assert files == sorted(
        ["grid.png", "attention.npz"] + [f"layer{layer:02d}_token{k:02d}.png" for layer in (1, 2) for k in range(10)]
    )
    data = np.load(tmp_path / "att" / "attention.npz")
    assert data["attention"].shape == (2, 10, 4, 4) and data["keypoints"].shape == (10, 2)  # 64/16 = 4 tokens a side
    sums = data["attention"].sum(axis=(2, 3))
    assert (data["attention"] >= 0).all() and (sums <= 1 + 1e-5).all() and (sums > 0).all()
    grid = np.asarray(Image.open(tmp_path / "att" / "grid.png"))
    assert grid.shape == (10 * 64, 3 * 64, 3)
    # A FOMM checkpoint has no attention: one-line error.
    fomm = ckpt.save(tmp_path / "fomm.safetensors", build_model(load_config("synthetic-64"), seed=0), {})
    capsys.readouterr()
    assert main(["attention", str(image), "--checkpoint", str(fomm), "-o", str(tmp_path / "att2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "transformer" in err and not (tmp_path / "att2").exists()


# --- ImageNet backbone weights ------------------------------------------------------------


def test_imagenet_hrnet_checkpoint_loads_into_the_backbone_and_bad_files_fail(tmp_path):
    from reanimate.errors import CheckpointError
    from reanimate.models.hrnet import load_imagenet_backbone

    source = HRNetBackbone(HRNetConfig(width=8))
    state = dict(source.state_dict())
    # What a classification checkpoint has beyond the backbone: the 4th stage, the head.
    state["stage4.0.branches.0.0.conv1.weight"] = torch.zeros(8, 8, 3, 3)
    state["classifier.weight"] = torch.zeros(1000, 2048)
    state["classifier.bias"] = torch.zeros(1000)
    path = tmp_path / "hrnetv2_w8_imagenet_pretrained.pth"
    torch.save(state, path)
    target = HRNetBackbone(HRNetConfig(width=8))
    count = load_imagenet_backbone(target, path)
    assert count == len(source.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))

    del state["layer1.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="'layer1.0.conv1.weight' is missing"):
        load_imagenet_backbone(target, path)
    state["layer1.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"has shape \(1, 1, 1, 1\)"):
        load_imagenet_backbone(target, path)
