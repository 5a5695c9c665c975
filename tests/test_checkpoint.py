"""Checkpoints: the reference layout, the own format, conversion, mismatch errors."""

import contextlib
import copy
import os
import pickle
import stat
import weakref

import pytest
import torch
from conftest import randomize
from safetensors.torch import load_file

from reanimate import checkpoint as ckpt
from reanimate.errors import CheckpointError
from reanimate.models import ModelConfig, build_model


def official_layout(model, legacy=False, prefix=""):
    """A dict as the reference ``train.py`` saves it."""
    data = {
        "kp_detector": {prefix + k: v for k, v in model.kp_detector.state_dict().items()},
        "generator": {prefix + k: v for k, v in model.generator.state_dict().items()},
        "discriminator": model.discriminator.state_dict(),
        "optimizer_generator": torch.optim.Adam(model.generator.parameters(), lr=2e-4).state_dict(),
        "optimizer_kp_detector": torch.optim.Adam(model.kp_detector.parameters(), lr=2e-4).state_dict(),
        "epoch": 99,
    }
    return data


def save_official(path, model, legacy=False, **kw):
    torch.save(official_layout(model, **kw), path, _use_new_zipfile_serialization=not legacy)
    return path


def outputs(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    src, drv = torch.rand(2, 3, 64, 64, generator=gen), torch.rand(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        return model.generator(src, model.kp_detector(drv), model.kp_detector(src)).prediction


@pytest.mark.parametrize("legacy", [False, True])
def test_official_layout_loads_and_reproduces_outputs(tmp_path, tiny_model, tiny_config, legacy):
    path = save_official(tmp_path / "model.pth.tar", tiny_model, legacy=legacy)
    model, data = ckpt.load_official(path, tiny_config, with_discriminator=True)
    assert data["epoch"] == 99
    assert torch.equal(outputs(model), outputs(tiny_model))
    for key, value in tiny_model.discriminator.state_dict().items():
        assert torch.equal(model.discriminator.state_dict()[key], value)


def test_dataparallel_prefix_and_missing_batchnorm_counters_are_accepted(tmp_path, tiny_model, tiny_config):
    data = official_layout(tiny_model, prefix="module.")
    data["generator"] = {k: v for k, v in data["generator"].items() if not k.endswith("num_batches_tracked")}
    torch.save(data, tmp_path / "dp.pth.tar")
    model, _ = ckpt.load_official(tmp_path / "dp.pth.tar", tiny_config)
    assert torch.equal(outputs(model), outputs(tiny_model))


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path, tiny_model, tiny_config):
    data = official_layout(tiny_model)
    data["generator"]["first.conv.weight"] = torch.zeros(16, 3, 7, 7)
    torch.save(data, tmp_path / "bad.pth.tar")
    with pytest.raises(CheckpointError) as err:
        ckpt.load_official(tmp_path / "bad.pth.tar", tiny_config)
    msg = str(err.value)
    assert "bad.pth.tar" in msg and "generator.first.conv.weight" in msg
    assert "(16, 3, 7, 7)" in msg and "(8, 3, 7, 7)" in msg and "\n" not in msg


def test_missing_and_unexpected_keys(tmp_path, tiny_model, tiny_config):
    data = official_layout(tiny_model)
    del data["kp_detector"]["kp.bias"]
    torch.save(data, tmp_path / "missing.pth.tar")
    with pytest.raises(CheckpointError, match=r"'kp_detector.kp.bias' is missing"):
        ckpt.load_official(tmp_path / "missing.pth.tar", tiny_config)
    data = official_layout(tiny_model)
    data["kp_detector"]["extra.weight"] = torch.zeros(1)
    torch.save(data, tmp_path / "extra.pth.tar")
    with pytest.raises(CheckpointError, match=r"unexpected key 'kp_detector.extra.weight'"):
        ckpt.load_official(tmp_path / "extra.pth.tar", tiny_config)


def test_a_config_of_another_size_is_rejected(tmp_path, tiny_model, tiny_config):
    raw = copy.deepcopy(tiny_config.raw)
    raw["model_params"]["common_params"]["num_kp"] = 7
    path = save_official(tmp_path / "m.pth.tar", tiny_model)
    with pytest.raises(CheckpointError, match=r"shape .* in the checkpoint but .* in the config"):
        ckpt.load_official(path, ModelConfig.from_dict(raw))


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_non_checkpoints_are_rejected_safely(tmp_path, tiny_config, capsys):
    (tmp_path / "junk.pth.tar").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="junk.pth.tar: not a readable PyTorch checkpoint"):
        ckpt.load_official(tmp_path / "junk.pth.tar", tiny_config)
    with open(tmp_path / "evil.pth.tar", "wb") as f:
        pickle.dump({"kp_detector": Payload(), "generator": {}}, f)
    with pytest.raises(CheckpointError, match="evil.pth.tar"):
        ckpt.load_official(tmp_path / "evil.pth.tar", tiny_config)
    assert "code ran" not in capsys.readouterr().out  # weights_only: nothing executed
    torch.save({"state_dict": {}}, tmp_path / "other.pth.tar")
    with pytest.raises(CheckpointError, match="not a FOMM checkpoint"):
        ckpt.load_official(tmp_path / "other.pth.tar", tiny_config)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        ckpt.load_official(tmp_path / "absent.pth.tar", tiny_config)


def test_own_format_round_trip(tmp_path, tiny_model):
    path = ckpt.save(tmp_path / "m.safetensors", tiny_model, {"note": "test"})
    meta = ckpt.read_own_metadata(path)
    assert meta["format"] == "reanimate.fomm" and meta["note"] == "test"
    model = ckpt.load(path, with_discriminator=True)  # config comes from the file
    assert model.config.raw == tiny_model.config.raw
    assert torch.equal(outputs(model), outputs(tiny_model))
    tensors = load_file(str(path))
    assert any(k.startswith("discriminator.") for k in tensors)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


def test_own_format_is_read_tensor_by_tensor_in_any_stored_type(tmp_path, tiny_model, monkeypatch):
    """Weights stored in bfloat16 load into the float32 model as their exact values, and
    the loader never holds the file's tensors all at once: each is read as it is copied,
    by plain reads (no memory map of the file)."""
    half = copy.deepcopy(tiny_model).to(torch.bfloat16)
    path = ckpt.save(tmp_path / "half.safetensors", half)
    alive = []  # per read: how many tensors read before it are still held
    returned = []
    real_states = ckpt._own_states

    @contextlib.contextmanager
    def watched_states(where):
        with real_states(where) as (states, read):

            def watched(net, key):
                alive.append(sum(ref() is not None for ref in returned))
                tensor = read(net, key)
                returned.append(weakref.ref(tensor))
                return tensor

            yield states, watched

    monkeypatch.setattr(ckpt, "_own_states", watched_states)
    model = ckpt.load(path)
    assert model.generator.first.conv.weight.dtype == torch.float32
    for name in ("kp_detector", "generator"):
        expected = getattr(half, name).state_dict()
        for key, value in getattr(model, name).state_dict().items():
            assert torch.equal(value, expected[key].to(value.dtype)), key
    stored = load_file(str(path))
    assert len(alive) == len(stored) - sum(k.startswith("discriminator.") for k in stored)
    assert max(alive) == 0
    # a tensor's bytes cut off: one line naming the file
    data = path.read_bytes()
    header = int.from_bytes(data[:8], "little")
    (tmp_path / "cut.safetensors").write_bytes(data[: 8 + header + 16])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        ckpt.load(tmp_path / "cut.safetensors")


@pytest.fixture
def umask_027():
    """The process umask set to 027 (group: no write; others: nothing) for one test."""
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def test_checkpoints_follow_the_umask(tmp_path, tiny_model, umask_027):
    """Checkpoints are outputs like any other: their modes come from the umask, not
    from the private temporary they are written under (which used to give 0600/0700)."""
    from reanimate.training.checkpoints import TrainingState, save_checkpoint

    path = ckpt.save(tmp_path / "m.safetensors", tiny_model)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    folder = save_checkpoint(tmp_path / "run", tiny_model, {}, {}, None, TrainingState(step=3))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    files = sorted(folder.iterdir()) + [folder.parent / "latest.json"]
    assert [(f.name, stat.S_IMODE(f.stat().st_mode)) for f in files] == [(f.name, 0o640) for f in files]
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]


def test_convert_official_to_own(tmp_path, tiny_model, tiny_config):
    src = save_official(tmp_path / "m.pth.tar", tiny_model)
    out = ckpt.convert(src, tiny_config, tmp_path / "m.safetensors")
    assert ckpt.read_own_metadata(out)["epoch"] == "99"
    assert torch.equal(outputs(ckpt.load(out)), outputs(tiny_model))


def test_reference_checkpoint_of_no_shipped_config_needs_a_config(tmp_path, tiny_model):
    path = save_official(tmp_path / "m.pth.tar", tiny_model)
    with pytest.raises(CheckpointError, match="match no shipped config.*--config"):
        ckpt.load(path)


def test_seeded_build_is_reproducible(tiny_config):
    a = build_model(tiny_config, seed=3).state_dict()
    b = build_model(tiny_config, seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = randomize(build_model(tiny_config), seed=1).state_dict()
    assert not torch.equal(a["kp_detector.kp.weight"], c["kp_detector.kp.weight"])
