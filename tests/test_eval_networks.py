"""LPIPS and FID networks: loading user weight files in the real third-party layouts.

The weight files written here use the key names and tensor shapes of the real files
(hard-coded below, independently of the modules under test):

* the ``lpips`` package's ``weights/v0.1/alex.pth`` / ``vgg.pth`` (read from the lpips
  0.1.4 wheel: five ``lin{k}.model.1.weight`` entries of shape ``(1, C_k, 1, 1)``);
* torchvision's ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` (the state dicts of
  torchvision's ``AlexNet`` / ``VGG`` ``D``, which torchvision loads strictly; their
  parameter counts are the ``num_params`` torchvision publishes);
* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (torchvision's
  ``Inception3(num_classes=1008, aux_logits=False)`` state dict, which pytorch-fid loads
  strictly; torch-fidelity's converter writes the same keys without
  ``num_batches_tracked``).

The large classifier matrices the metrics ignore are written as expanded (stride-0)
tensors: their real shapes are in the file at the cost of one stored element.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import linalg

from reanimate.errors import CheckpointError, ReanimateError
from reanimate.evaluation import fid
from reanimate.evaluation.fid import (
    FIDInceptionV3,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    load_fid_inception,
)
from reanimate.evaluation.lpips import LPIPS, backbone_spec, head_shapes, load_lpips, read_heads, trunk_shapes

# --------------------------------------------------------------------------------------
# The real layouts
# --------------------------------------------------------------------------------------

#: lpips 0.1.4 wheel, lpips/weights/v0.1/{alex,vgg}.pth (printed with torch.load).
LPIPS_HEADS = {
    "alex": {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))},
    "vgg": {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))},
}

#: torchvision alexnet-owt-7be5be79.pth: AlexNet().state_dict().
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11),
    "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5),
    "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3),
    "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3),
    "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3),
    "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216),
    "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096),
    "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}

#: VGG-16 convolutions: features index -> (out, in) channels.
_VGG16_CONVS = {
    0: (64, 3),
    2: (64, 64),
    5: (128, 64),
    7: (128, 128),
    10: (256, 128),
    12: (256, 256),
    14: (256, 256),
    17: (512, 256),
    19: (512, 512),
    21: (512, 512),
    24: (512, 512),
    26: (512, 512),
    28: (512, 512),
}
_VGG16_FEATURES: dict[str, tuple[int, ...]] = {}
for _i, (_out, _in) in _VGG16_CONVS.items():
    _VGG16_FEATURES[f"features.{_i}.weight"] = (_out, _in, 3, 3)
    _VGG16_FEATURES[f"features.{_i}.bias"] = (_out,)
#: torchvision vgg16-397923af.pth: VGG(make_layers(cfgs["D"])).state_dict().
TORCHVISION_VGG16 = {
    **_VGG16_FEATURES,
    "classifier.0.weight": (4096, 25088),
    "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096),
    "classifier.3.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}

TORCHVISION = {"alex": TORCHVISION_ALEXNET, "vgg": TORCHVISION_VGG16}
#: torchvision's published num_params of the two checkpoints.
TORCHVISION_NUM_PARAMS = {"alex": 61_100_840, "vgg": 138_357_544}

#: The BasicConv2d blocks of the FID Inception, per mixed-block type (torchvision names).
_BRANCHES = {
    "A": "branch1x1 branch5x5_1 branch5x5_2 branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3 branch_pool",
    "B": "branch3x3 branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3",
    "C": "branch1x1 branch7x7_1 branch7x7_2 branch7x7_3 branch7x7dbl_1 branch7x7dbl_2 branch7x7dbl_3 "
    "branch7x7dbl_4 branch7x7dbl_5 branch_pool",
    "D": "branch3x3_1 branch3x3_2 branch7x7x3_1 branch7x7x3_2 branch7x7x3_3 branch7x7x3_4",
    "E": "branch1x1 branch3x3_1 branch3x3_2a branch3x3_2b branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3a "
    "branch3x3dbl_3b branch_pool",
}
_MIXED_TYPES = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C", "Mixed_6c": "C",
                "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}  # fmt: skip
FID_CONV_BLOCKS = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"] + [
    f"{mixed}.{branch}" for mixed, kind in _MIXED_TYPES.items() for branch in _BRANCHES[kind].split()
]

#: An excerpt of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (torchvision's
#: Inception3 shapes with 1008 classes).
FID_EXCERPT = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.weight": (32,),
    "Conv2d_1a_3x3.bn.bias": (32,),
    "Conv2d_1a_3x3.bn.running_mean": (32,),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_2a_3x3.conv.weight": (32, 32, 3, 3),
    "Conv2d_2b_3x3.conv.weight": (64, 32, 3, 3),
    "Conv2d_3b_1x1.conv.weight": (80, 64, 1, 1),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
    "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch_pool.conv.weight": (64, 288, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6a.branch3x3dbl_3.conv.weight": (96, 96, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6b.branch7x7dbl_2.conv.weight": (128, 128, 7, 1),
    "Mixed_6c.branch7x7_1.conv.weight": (160, 768, 1, 1),
    "Mixed_6e.branch7x7_3.conv.weight": (192, 192, 7, 1),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch1x1.conv.weight": (320, 1280, 1, 1),
    "Mixed_7b.branch3x3_2a.conv.weight": (384, 384, 1, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch_pool.bn.running_var": (192,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}
#: Parameters of the FID Inception: torchvision's published 27,161,264 for Inception3
#: (with AuxLogits, 1000 classes), minus the AuxLogits head (3,326,696), plus 8 classes.
FID_NUM_PARAMS = 27_161_264 - 3_326_696 + 8 * 2049


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _ignored_tensor(shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of the real shape stored as one element (for entries the metric ignores)."""
    return torch.full((), 0.01).expand(shape)


def _assert_one_line(err: pytest.ExceptionInfo, path: Path, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert err.value.path == str(path)
    for fragment in fragments:
        assert fragment in message, message


# --------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------


def test_real_layout_tables_are_consistent():
    for net, layout in TORCHVISION.items():
        assert sum(math.prod(shape) for shape in layout.values()) == TORCHVISION_NUM_PARAMS[net]
    assert len(FID_CONV_BLOCKS) == len(set(FID_CONV_BLOCKS)) == 94


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_state_dict_is_the_real_layout(net):
    spec = backbone_spec(net)
    trunk = {k: v for k, v in TORCHVISION[net].items() if k.startswith("features.")}
    assert trunk_shapes(spec) == trunk
    assert head_shapes(spec) == LPIPS_HEADS[net]
    state = _shapes(LPIPS(net).state_dict())
    assert state == {**trunk, **LPIPS_HEADS[net]}
    assert list(state) == list(trunk) + list(LPIPS_HEADS[net])


def _write_lpips_files(tmp_path: Path, net: str, seed: int = 1) -> tuple[Path, Path, LPIPS]:
    """torchvision-format backbone and lpips-format heads files from a random LPIPS."""
    source = LPIPS(net, seed=seed)
    state = source.state_dict()
    trunk = {k: v for k, v in TORCHVISION[net].items() if k.startswith("features.")}
    assert _shapes(state) == {**trunk, **LPIPS_HEADS[net]}
    # The real file: the trunk, then the classifier the metric ignores.
    backbone = {k: (state[k].clone() if k in trunk else _ignored_tensor(s)) for k, s in TORCHVISION[net].items()}
    heads = {k: state[k].clone() for k in LPIPS_HEADS[net]}
    assert _shapes(backbone) == TORCHVISION[net] and _shapes(heads) == LPIPS_HEADS[net]
    backbone_path = tmp_path / backbone_spec(net).torchvision_file
    heads_path = tmp_path / f"{net}.pth"
    torch.save(backbone, backbone_path)
    torch.save(heads, heads_path)
    return backbone_path, heads_path, source


@pytest.mark.parametrize("net,size", [("alex", 64), ("vgg", 32)])
def test_lpips_loads_real_layout_and_measures(tmp_path, net, size):
    backbone_path, heads_path, source = _write_lpips_files(tmp_path, net)
    model = load_lpips(backbone_path, heads_path, net=net)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not model.training and not any(p.requires_grad for p in model.parameters())

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, size, size, generator=gen)
    y = (x + 0.2 * torch.rand(2, 3, size, size, generator=gen)).clamp(0, 1)
    with torch.no_grad():
        d_xy, d_yx, d_xx = model(x, y), model(y, x), model(x, x)
        per_layer = model.layer_distances(x, y)
    assert d_xy.shape == (2,) and per_layer.shape == (2, 5)
    assert torch.isfinite(d_xy).all() and (d_xy > 0).all()
    assert torch.equal(d_xx, torch.zeros(2))
    torch.testing.assert_close(d_xy, d_yx)
    torch.testing.assert_close(per_layer.sum(1), d_xy)


def test_lpips_gradient_reaches_the_input(tmp_path):
    backbone_path, heads_path, _ = _write_lpips_files(tmp_path, "alex")
    model = load_lpips(backbone_path, heads_path)
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    model(x, torch.rand(1, 3, 40, 40)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_lpips_accepts_dataparallel_prefix_and_whole_lpips_state(tmp_path):
    backbone_path, heads_path, _ = _write_lpips_files(tmp_path, "alex")
    prefixed = tmp_path / "prefixed.pth"
    torch.save({f"module.{k}": v for k, v in torch.load(backbone_path, weights_only=True).items()}, prefixed)
    # What lpips' trainer saves: the whole lpips.LPIPS state dict (scaling layer, trunk, heads).
    whole = tmp_path / "whole_lpips.pth"
    heads = torch.load(heads_path, weights_only=True)
    trunk_entries = {"scaling_layer.shift": torch.zeros(1, 3, 1, 1), "net.slice1.0.weight": torch.zeros(64, 3, 11, 11)}
    torch.save({**trunk_entries, **heads}, whole)
    model = load_lpips(prefixed, whole)
    assert torch.equal(model.lin2.model[1].weight, heads["lin2.model.1.weight"])


#: (key, new value or None to delete it, expected message fragment)
BACKBONE_CORRUPTIONS = [
    ("features.6.weight", None, "torchvision AlexNet state dict: key 'features.6.weight' is missing"),
    (
        "features.3.weight",
        torch.zeros(192, 64, 3, 3),
        "'features.3.weight' has shape (192, 64, 3, 3), expected (192, 64, 5, 5)",
    ),
    ("features.1.weight", torch.zeros(64), "unexpected key 'features.1.weight'"),
    ("features.0.bias", [0.0] * 64, "'features.0.bias' is a list, not a tensor"),
    ("features.0.bias", torch.zeros(64, dtype=torch.int64), "'features.0.bias' has dtype torch.int64"),
]


def _edit(state: dict, key: str, value) -> None:
    if value is None:
        del state[key]
    else:
        state[key] = value


@pytest.mark.parametrize("key,value,fragment", BACKBONE_CORRUPTIONS)
def test_lpips_rejects_a_wrong_backbone(tmp_path, key, value, fragment):
    backbone_path, heads_path, _ = _write_lpips_files(tmp_path, "alex")
    state = torch.load(backbone_path, weights_only=True)
    _edit(state, key, value)
    bad = tmp_path / "bad_alexnet.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as err:
        load_lpips(bad, heads_path, net="alex")
    _assert_one_line(err, bad, fragment)


def test_lpips_rejects_wrong_head_files(tmp_path):
    backbone_path, heads_path, _ = _write_lpips_files(tmp_path, "alex")
    vgg_heads = tmp_path / "vgg.pth"
    torch.save({k: torch.zeros(s) for k, s in LPIPS_HEADS["vgg"].items()}, vgg_heads)
    with pytest.raises(CheckpointError) as err:
        load_lpips(backbone_path, vgg_heads, net="alex")
    _assert_one_line(
        err, vgg_heads, "LPIPS v0.1 alex", "'lin1.model.1.weight' has shape (1, 128, 1, 1), expected (1, 192, 1, 1)"
    )

    # The backbone and head files swapped.
    with pytest.raises(CheckpointError) as err:
        load_lpips(heads_path, backbone_path, net="alex")
    _assert_one_line(err, heads_path, "'features.0.weight' is missing")

    extra = tmp_path / "extra.pth"
    torch.save({**torch.load(heads_path, weights_only=True), "lin5.model.1.weight": torch.zeros(1, 512, 1, 1)}, extra)
    with pytest.raises(CheckpointError) as err:
        read_heads(extra, backbone_spec("alex"))
    _assert_one_line(err, extra, "unexpected key 'lin5.model.1.weight'")

    # Heads saved without the dropout in front (model.0) are not the package's files.
    renamed = tmp_path / "renamed.pth"
    heads = torch.load(heads_path, weights_only=True)
    torch.save({k.replace("model.1", "model.0"): v for k, v in heads.items()}, renamed)
    with pytest.raises(CheckpointError) as err:
        load_lpips(backbone_path, renamed)
    _assert_one_line(err, renamed, "'lin0.model.1.weight' is missing")


def test_lpips_rejects_files_that_are_not_state_dicts(tmp_path):
    backbone_path, heads_path, _ = _write_lpips_files(tmp_path, "alex")
    missing = tmp_path / "nowhere" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(CheckpointError) as err:
        load_lpips(missing, heads_path)
    _assert_one_line(err, missing, "no such weights file", "alexnet-owt-7be5be79.pth")

    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointError) as err:
        load_lpips(backbone_path, tensor_file)
    _assert_one_line(err, tensor_file, "expected a LPIPS v0.1 alex linear-head file", "got a Tensor")

    text_file = tmp_path / "notes.pth"
    text_file.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError) as err:
        load_lpips(text_file, heads_path)
    _assert_one_line(err, text_file, "not a torch weights file readable with weights_only=True")


def test_lpips_unknown_net():
    with pytest.raises(ReanimateError, match="unknown LPIPS network 'squeeze'"):
        LPIPS("squeeze")


@pytest.mark.skipif(
    not os.environ.get("REANIMATE_LPIPS_WEIGHTS_DIR"), reason="set REANIMATE_LPIPS_WEIGHTS_DIR to lpips' weights/v0.1"
)
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_real_lpips_head_files(net):
    """Opt-in check against the real files of the lpips package (not shipped here)."""
    path = Path(os.environ["REANIMATE_LPIPS_WEIGHTS_DIR"]) / f"{net}.pth"
    assert _shapes(read_heads(path, backbone_spec(net))) == LPIPS_HEADS[net]


# --------------------------------------------------------------------------------------
# FID Inception
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inception_files(tmp_path_factory):
    """pytorch-fid-layout files of a random FIDInceptionV3: without and with the BatchNorm
    counters, and the source module."""
    source = FIDInceptionV3(resize_input=False, seed=3)
    state = source.state_dict()
    shapes = _shapes(state)
    for key, shape in FID_EXCERPT.items():
        assert shapes[key] == shape, key
    suffixes = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")
    required = {f"{block}.{suffix}" for block in FID_CONV_BLOCKS for suffix in suffixes} | {"fc.weight", "fc.bias"}
    counters = {f"{block}.bn.num_batches_tracked" for block in FID_CONV_BLOCKS}
    assert set(state) == required | counters
    assert sum(v.numel() for k, v in state.items() if k not in counters and "running" not in k) == FID_NUM_PARAMS

    folder = tmp_path_factory.mktemp("fid")
    plain = folder / fid.TORCH_FIDELITY_WEIGHTS_FILE  # the converter's keys: no counters
    torch.save({k: v for k, v in state.items() if k in required}, plain)
    with_counters = folder / fid.FID_WEIGHTS_FILE
    torch.save(state, with_counters)
    plain_shapes = {k: s for k, s in shapes.items() if k in required}
    return SimpleNamespace(
        plain=plain, plain_shapes=plain_shapes, with_counters=with_counters, source=source, folder=folder
    )


def test_fid_inception_loads_real_layout(inception_files):
    expected = inception_files.source.state_dict()
    for path in (inception_files.plain, inception_files.with_counters):
        model = load_fid_inception(path, resize_input=False)
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        loaded = model.state_dict()
        assert list(loaded) == list(expected)
        for key, value in expected.items():
            assert torch.equal(loaded[key], value), key
    # One forward pass (the network is slow on CPU) at the smallest size it takes.
    x = torch.rand(2, 3, 75, 75, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = model(x)
    assert features.shape == (2, fid.FEATURE_DIM) and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])
    assert load_fid_inception(inception_files.plain).resize_input is True


def test_fid_preprocess_resizes_and_rescales():
    model = FIDInceptionV3(seed=None)
    x = torch.rand(2, 3, 40, 56)
    out = model.preprocess(x)
    assert out.shape == (2, 3, 299, 299)
    assert out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(model.preprocess(torch.ones(1, 3, 8, 8)), torch.ones(1, 3, 299, 299))
    with pytest.raises(ValueError):
        model.preprocess(torch.rand(3, 8, 8))


def _corrupted(inception_files, name: str, key: str, value) -> Path:
    # The checks fail before any value is used: store every entry as one element.
    state = {k: _ignored_tensor(shape) for k, shape in inception_files.plain_shapes.items()}
    _edit(state, key, value)
    path = inception_files.folder / name
    torch.save(state, path)
    return path


TV_INCEPTION = "torchvision's ImageNet Inception-v3"
#: (key, new value or None to delete it, expected message fragments)
INCEPTION_CORRUPTIONS = [
    (
        "Mixed_6c.branch7x7dbl_3.bn.running_var",
        None,
        ["FID Inception-v3 state dict", "key 'Mixed_6c.branch7x7dbl_3.bn.running_var' is missing"],
    ),
    (
        "Mixed_5b.branch_pool.conv.weight",
        torch.zeros(64, 192, 1, 1),
        ["'Mixed_5b.branch_pool.conv.weight' has shape (64, 192, 1, 1), expected (32, 192, 1, 1)"],
    ),
    ("fc.weight", torch.zeros(1000, 2048), [TV_INCEPTION, "pt_inception-2015-12-05-6726825d.pth"]),
    ("AuxLogits.fc.weight", torch.zeros(1008, 768), [TV_INCEPTION]),
    ("Mixed_8a.conv.weight", torch.zeros(1), ["unexpected key 'Mixed_8a.conv.weight'"]),
    (
        "Mixed_5b.branch1x1.bn.num_batches_tracked",
        torch.zeros(2),
        ["'Mixed_5b.branch1x1.bn.num_batches_tracked' has shape (2,), expected ()"],
    ),
]


@pytest.mark.parametrize("key,value,fragments", INCEPTION_CORRUPTIONS)
def test_fid_inception_rejects_wrong_files(inception_files, key, value, fragments):
    path = _corrupted(inception_files, "bad_inception.pth", key, value)
    with pytest.raises(CheckpointError) as err:
        load_fid_inception(path)
    _assert_one_line(err, path, *fragments)


def test_fid_inception_rejects_files_that_are_not_state_dicts(tmp_path):
    missing = tmp_path / "pt_inception.pth"
    with pytest.raises(CheckpointError) as err:
        load_fid_inception(missing)
    _assert_one_line(err, missing, "no such weights file", fid.FID_WEIGHTS_FILE)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointError) as err:
        load_fid_inception(listed)
    _assert_one_line(err, listed, "got a list")


# --------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------


def test_frechet_distance_of_identical_statistics_is_zero():
    features = np.random.default_rng(0).normal(size=(300, 8))
    mu, sigma = feature_statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    assert abs(fid_from_features(features, features)) < 1e-9


def test_frechet_distance_closed_forms():
    # Diagonal covariances: |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # One dimension, as scalars: (m1 - m2)^2 + (sd1 - sd2)^2.
    assert frechet_distance(1.0, 4.0, -2.0, 9.0) == pytest.approx(9.0 + 1.0, rel=1e-10)
    # Torch inputs.
    value = frechet_distance(torch.tensor(mu1), torch.diag(torch.tensor(s1)), mu2, np.diag(s2))
    assert value == pytest.approx(expected)


def test_frechet_distance_non_commuting_covariances():
    # tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix (via eigh).
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_feature_statistics_and_fid_from_features():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(500, 4))
    mu, sigma = feature_statistics(torch.tensor(real, dtype=torch.float32))
    assert mu.shape == (4,) and sigma.shape == (4, 4) and mu.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(real.astype(np.float32).astype(np.float64), rowvar=False), rtol=1e-12)
    shifted = rng.normal(size=(500, 4)) + np.array([3.0, 0.0, 0.0, 0.0])
    near, far = fid_from_features(real, rng.normal(size=(500, 4))), fid_from_features(real, shifted)
    assert 0 <= near < 0.2 and far == pytest.approx(9.0, abs=1.0)
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="means"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))


def test_frechet_distance_singular_product_and_imaginary_parts(monkeypatch):
    calls = []

    def failing_once(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else linalg.sqrtm(matrix)

    monkeypatch.setattr(fid, "linalg", SimpleNamespace(sqrtm=failing_once))
    s1, s2 = np.diag([1.0, 0.0]), np.diag([4.0, 0.0])
    with pytest.warns(RuntimeWarning, match="singular"):
        value = frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=1e-6)
    np.testing.assert_allclose(calls[1], (s1 + 1e-6 * np.eye(2)) @ (s2 + 1e-6 * np.eye(2)))
    assert value == pytest.approx(1.0, abs=1e-5)  # (1 - 2)^2 on the first axis, ~0 on the second

    monkeypatch.setattr(fid, "linalg", SimpleNamespace(sqrtm=lambda m: linalg.sqrtm(m) + 1e-6j))
    assert frechet_distance(0.0, 1.0, 0.0, 4.0) == pytest.approx(1.0)
    monkeypatch.setattr(fid, "linalg", SimpleNamespace(sqrtm=lambda m: linalg.sqrtm(m) + 0.5j))
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(0.0, 1.0, 0.0, 4.0)
