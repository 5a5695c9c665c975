"""VGG-Face for MMFA's perceptual loss: loading Albanie's ``vgg_face_dag.pth`` layout,
one-line errors for bad files, the ``vgg_face`` term of the training step, and the
trainer's fallback without weights."""

import logging

import pytest
import torch
from mmfa_tiny import tiny_document

from reanimate.errors import CheckpointError
from reanimate.models.mmfa import MMFAConfig, build_mmfa
from reanimate.models.mmfa.generator import GeneratorOutputs
from reanimate.training.mmfa_config import MMFATrainConfig
from reanimate.training.mmfa_objective import MMFAGeneratorObjective
from reanimate.training.mmfa_trainer import vgg_face_network
from reanimate.training.vgg_face import FEATURE_LAYERS, VGG_FACE_FILE, VggFaceFeatures, load_vgg_face

#: (name, out, in) of the 13 convolutions of vgg_face_dag (VGG-16).
_CONVS = [
    ("conv1_1", 64, 3),
    ("conv1_2", 64, 64),
    ("conv2_1", 128, 64),
    ("conv2_2", 128, 128),
    ("conv3_1", 256, 128),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv4_1", 512, 256),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
]
#: (name, out, in) of its classifier: 2622 identities.
_FCS = [("fc6", 4096, 25088), ("fc7", 4096, 4096), ("fc8", 2622, 4096)]
#: The convolutions the trunk keeps (up to relu5_1).
_KEPT = [name for name, _, _ in _CONVS[: _CONVS.index(("conv5_1", 512, 512)) + 1]]


def _fake_vgg_face_state() -> dict[str, torch.Tensor]:
    """Random tensors under the real key names and shapes. The fc layers (130 M values)
    are zero-stride views of one element: torch.save stores only that element, so the
    file stays small while the loaded tensors have the real shapes."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, out, inp in _CONVS:
        state[f"{name}.weight"] = torch.randn(out, inp, 3, 3, generator=generator) * (2 / (9 * inp)) ** 0.5
        state[f"{name}.bias"] = torch.randn(out, generator=generator) * 0.01
    for name, out, inp in _FCS:
        state[f"{name}.weight"] = torch.zeros(()).expand(out, inp)
        state[f"{name}.bias"] = torch.zeros(()).expand(out)
    return state


@pytest.fixture(scope="module")
def fake_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg_face") / VGG_FACE_FILE
    state = _fake_vgg_face_state()
    torch.save(state, path)
    return path, state


def _assert_loaded(model: VggFaceFeatures, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert set(loaded) == {f"layers.{name}.{p}" for name in _KEPT for p in ("weight", "bias")}
    for key, value in loaded.items():
        assert torch.equal(value, state[key[len("layers.") :]]), key


def test_loads_the_vgg_face_dag_layout_and_gives_the_documented_features(fake_file):
    path, state = fake_file
    assert path.stat().st_size < 80e6  # the fc layers are not stored in full
    model, source = load_vgg_face(path)
    assert source == f"file {path}"
    _assert_loaded(model, state)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training  # a measuring instrument stays in eval mode
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 224, 224))
    assert len(feats) == len(FEATURE_LAYERS) == 5
    assert [tuple(f.shape) for f in feats] == [
        (1, 64, 224, 224),
        (1, 128, 112, 112),
        (1, 256, 56, 56),
        (1, 512, 28, 28),
        (1, 512, 14, 14),
    ]
    assert all(float(f.min()) >= 0 for f in feats)  # after ReLUs


def test_input_is_resized_and_brought_to_the_pixel_scale_and_mean():
    model = VggFaceFeatures(seed=0)
    small = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = model(small)
        resized = torch.nn.functional.interpolate(small, size=(224, 224), mode="bilinear", align_corners=False)
        expected = model.layers["relu1_1"](
            model.layers["conv1_1"](
                resized * 255 - torch.tensor([129.186279296875, 104.76238250732422, 93.59396362304688]).view(1, 3, 1, 1)
            )
        )
    assert tuple(feats[-1].shape) == (1, 512, 14, 14)
    torch.testing.assert_close(feats[0], expected)


def test_tolerates_the_dataparallel_prefix(tmp_path, fake_file):
    _, state = fake_file
    path = tmp_path / "vgg_face_dp.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    model, _ = load_vgg_face(path)
    _assert_loaded(model, state)


def _one_line_error(path, match: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_vgg_face(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and match in message, message
    return message


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path, fake_file):
    _, state = fake_file
    path = tmp_path / "bad_shape.pth"
    torch.save({**state, "conv3_2.weight": torch.zeros(256, 128, 3, 3)}, path)
    message = _one_line_error(path, "'conv3_2.weight'")
    assert "(256, 128, 3, 3)" in message and "(256, 256, 3, 3)" in message


def test_missing_key_garbage_and_other_layouts_give_one_line_errors(tmp_path, fake_file):
    _, state = fake_file
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if k != "conv5_3.bias"}, partial)
    _one_line_error(partial, "'conv5_3.bias' is missing")
    torchvision_layout = tmp_path / "vgg16.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, torchvision_layout)
    _one_line_error(torchvision_layout, "'conv1_1.weight' is missing")
    extra = tmp_path / "extra.pth"
    torch.save({**state, "conv6_1.weight": torch.zeros(1)}, extra)
    _one_line_error(extra, "unexpected key 'conv6_1.weight'")
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    _one_line_error(not_a_dict, "got a list")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch file\n")
    _one_line_error(junk, "not a torch weights file")
    _one_line_error(tmp_path / "absent.pth", "no such weights file")


def _tiny_mmfa_config(**loss_weights) -> tuple[MMFAConfig, MMFATrainConfig]:
    """A small MMFA at 64x64 whose step computes only the given losses."""
    doc = tiny_document(face=False)
    off = {
        "perceptual": [0, 0, 0, 0, 0],
        "vgg_face": 0,
        "ms_ssim": 0,
        "generator_gan": 0,
        "feature_matching": [0, 0],
        "equivariance": 0,
        "keypoint_prior": 0,
        "deformation_prior": 0,
        "expression": 0,
        "canonical": 0,
        "head_pose": 0,
        "landmark": {"face": 0, "mouth": 0, "pupil": 0},
    }
    doc["train_params"] = {"scales": [1, 0.5], "loss_weights": {**off, **loss_weights}}
    config = MMFAConfig.from_document(doc, name="tiny")
    return config, MMFATrainConfig.from_dict(config.raw["train_params"])


def test_mmfa_step_adds_the_vgg_face_term_on_the_full_size_output(monkeypatch):
    config, tc = _tiny_mmfa_config(vgg_face=10)
    model = build_mmfa(config, with_discriminator=False, seed=0)
    objective = MMFAGeneratorObjective(model, tc, vgg=None, vgg_face=VggFaceFeatures(seed=0))
    generator = torch.Generator().manual_seed(1)
    source, driving = torch.rand(2, 2, 3, 64, 64, generator=generator)  # batch 2: BatchNorm trains
    poses = torch.zeros(2, 3)

    losses, out = objective(source, driving, poses, poses)
    assert set(losses) == {"vgg_face"}
    assert float(losses["vgg_face"].detach()) > 0
    losses["vgg_face"].backward()  # the term trains the generator
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())

    # A generator that reproduces the driving frame: the term vanishes.
    perfect = GeneratorOutputs({32: torch.nn.functional.avg_pool2d(driving, 2), 64: driving.clone()})
    monkeypatch.setattr(model.generator, "forward", lambda *args, **kwargs: perfect)
    with torch.no_grad():
        losses, out = objective(source, driving, poses, poses)
    assert torch.equal(out.prediction, driving)
    assert float(losses["vgg_face"]) == 0.0


def test_zero_weight_keeps_the_term_out():
    config, tc = _tiny_mmfa_config(vgg_face=0, keypoint_prior=1)
    model = build_mmfa(config, with_discriminator=False, seed=0)
    objective = MMFAGeneratorObjective(model, tc, vgg=None, vgg_face=VggFaceFeatures(seed=0))
    assert objective.vgg_face is None


def test_trainer_leaves_the_term_out_with_one_warning_without_weights(caplog, fake_file):
    logger = "reanimate.training.mmfa_trainer"
    with caplog.at_level(logging.WARNING, logger=logger):
        network, source = vgg_face_network(10.0, None)
    assert network is None and source.startswith("left out")
    warnings = [r for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    message = warnings[0].getMessage()
    assert "\n" not in message and "--vgg-face-weights" in message and "left out" in message

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=logger):
        assert vgg_face_network(10.0, None, warn=False) == (None, "left out: no --vgg-face-weights")
        assert vgg_face_network(0.0, None) == (None, "not used")  # no network built, nothing to say
    assert not caplog.records

    path, state = fake_file
    network, source = vgg_face_network(10.0, str(path))
    assert isinstance(network, VggFaceFeatures) and source == f"file {path}"
    _assert_loaded(network, state)
    with pytest.raises(CheckpointError):
        vgg_face_network(10.0, str(path.with_name("absent.pth")))
