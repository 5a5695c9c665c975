"""``animate --precision`` (fp32, bf16, fp16), channels-last convolutions and the default
batch size, on the tiny FOMM config (seconds on a CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG
from PIL import Image

from reanimate import precision as precision_module
from reanimate.animators import fomm as fomm_module
from reanimate.animators.base import Transfer
from reanimate.animators.fomm import FommAnimator
from reanimate.cli import main
from reanimate.errors import ReanimateError
from reanimate.models import ModelConfig, build_model
from reanimate.models.inference import fold_batch_norms, subpixel_upsampling
from reanimate.pipelines import animate
from reanimate.pipelines.animate import default_batch_size
from reanimate.precision import resolve_precision

#: bf16 against fp32, in uint8 levels of the frames: bfloat16 keeps 8 significant bits,
#: so every product is within 0.4% of float32's. The tiny random network measures a mean
#: of 0.3 and a maximum of 1 level (vox-256: README, "Precision")
BF16_MEAN_LEVELS = 1.0
BF16_MAX_LEVELS = 8


def frames(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]).astype(float)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def bf16_units(monkeypatch):
    """This CPU has bfloat16 units, whatever the machine running the test has (oneDNN
    emulates them where absent: slower, the same products)."""
    monkeypatch.setattr(precision_module, "cpu_bf16_units", lambda: ("avx512_bf16",))


def test_bf16_animates_end_to_end_close_to_fp32(
    tmp_path, source_image, driving_video, tiny_checkpoint, bf16_units, capsys
):
    common = [source_image, driving_video, "--checkpoint", tiny_checkpoint, "--device", "cpu", "--stats"]
    args = ["animate", *common[:2], "-o"]
    assert main([str(a) for a in [*args, tmp_path / "fp32", *common[2:]]]) == 0
    assert "precision fp32, batch 1" in capsys.readouterr().out
    assert main([str(a) for a in [*args, tmp_path / "bf16", *common[2:], "--precision", "bf16"]]) == 0
    captured = capsys.readouterr()
    assert "precision bf16, batch 1" in captured.out and ", bf16, reference frame" in captured.err
    a, b = frames(tmp_path / "fp32"), frames(tmp_path / "bf16")
    assert a.shape == b.shape == (16, 64, 64, 3)
    difference = np.abs(a - b)
    assert 0 < difference.mean() < BF16_MEAN_LEVELS and difference.max() <= BF16_MAX_LEVELS


def test_bf16_without_units_runs_fp32_with_a_note(tmp_path, source_image, driving_video, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_bf16_units", lambda: ())
    common = dict(checkpoint=tiny_checkpoint, device="cpu", progress=False)
    full = animate(source_image, driving_video, tmp_path / "a", **common)
    asked = animate(source_image, driving_video, tmp_path / "b", precision="bf16", **common)
    assert asked.precision == "fp32" and np.array_equal(frames(full.output), frames(asked.output))
    (note,) = [n for n in asked.notes if "--precision bf16" in n]
    assert "no bfloat16 units" in note and precision_module.cpu_name() in note


def test_bf16_weights_held_in_bfloat16_give_the_autocast_products(tiny_model, bf16_units, monkeypatch):
    """set_precision("bf16") holds conv weights in bfloat16 (autocast casts them the same
    way on every call): the same products as plain bfloat16 autocast of the float32
    model. In the same memory layout, so that the same kernels run."""
    monkeypatch.setitem(fomm_module.CHANNELS_LAST, ("cpu", "bf16"), False)
    rewritten = clone(tiny_model).eval()
    fold_batch_norms(rewritten)  # what set_precision does first, in float32
    subpixel_upsampling(rewritten.generator.up_blocks)
    autocast_only = FommAnimator(rewritten, device="cpu", autocast_dtype=torch.bfloat16)
    prepared = FommAnimator(clone(tiny_model), device="cpu")
    prepared.set_precision("bf16")
    assert prepared.precision == "bf16"
    assert prepared.model.generator.final.weight.dtype == torch.bfloat16
    assert prepared.model.generator.up_blocks[0].conv.weight.dtype == torch.bfloat16  # a SubpixelUpConv
    assert prepared.model.generator.bottleneck[0].norm1.weight.dtype == torch.float32  # normalisation stays float32
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for a, b in zip(animate_tensors(autocast_only, images), animate_tensors(prepared, images)):
        assert torch.allclose(a, b, atol=1e-6), float((a - b).abs().max())


def tiny_transformer_model() -> torch.nn.Module:
    """The tiny config with a small motion transformer (stem backbone, one layer)."""
    text = TINY_CONFIG.replace(
        "kp_detector_params: {", "motion_estimator: transformer\n  kp_detector_params: {"
    ).replace(
        "temperature: 0.1, block_expansion: 8, max_features: 32, scale_factor: 0.5, num_blocks: 3",
        "backbone: stem, dim: 32, depth: 1, heads: 2",
    )
    config = ModelConfig.from_yaml_text(text, name="tiny-transformer")
    assert config.motion_estimator == "transformer"
    return build_model(config, seed=0).eval()


def clone(model: torch.nn.Module) -> torch.nn.Module:
    """A copy through the state dict: ``copy.deepcopy`` refuses a model that a previous
    test ran, once a module holds a cached tensor with a graph."""
    twin = build_model(model.config, with_discriminator=getattr(model, "discriminator", None) is not None)
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def animate_tensors(animator: FommAnimator, images: torch.Tensor) -> list[torch.Tensor]:
    """Keypoints, Jacobians, prediction and occlusion map of ``images`` (the first is the source)."""
    x = animator.to_model(images)
    kp = animator.detect(x)
    out = animator.generate(animator.encode(x[:1]), kp, kp[:1], Transfer())
    return [kp.value, kp.jacobian, out.prediction.float(), out.occlusion_map.float()]


@pytest.mark.parametrize("estimator", ["keypoint_detector", "transformer"])
def test_channels_last_keeps_fp32_outputs(tiny_model, estimator, monkeypatch):
    """Channels-last is a memory layout: float32 outputs equal to float tolerance."""
    model = tiny_model if estimator == "keypoint_detector" else tiny_transformer_model()
    monkeypatch.setitem(fomm_module.CHANNELS_LAST, ("cpu", "fp32"), True)
    plain = FommAnimator(clone(model), device="cpu")
    nhwc = FommAnimator(clone(model), device="cpu")
    nhwc.set_precision("fp32")
    assert nhwc.memory_format == torch.channels_last
    assert nhwc.model.generator.final.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for a, b in zip(animate_tensors(plain, images), animate_tensors(nhwc, images)):
        assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())


def test_bf16_runs_the_motion_transformer(bf16_units):
    """Its linear layers and attention in bfloat16 (weights held so), LayerNorm in float32."""
    model = tiny_transformer_model()
    full = FommAnimator(clone(model), device="cpu")
    half = FommAnimator(clone(model), device="cpu")
    half.set_precision("bf16")
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    kp, jacobian, prediction, occlusion = (
        float((a - b).abs().max()) for a, b in zip(animate_tensors(full, images), animate_tensors(half, images))
    )
    assert 0 < kp < 0.05 and 0 < prediction < 0.05 and jacobian < 0.05 and occlusion < 0.05


def test_fp16_on_the_cpu_is_one_line(tmp_path, source_image, driving_video, tiny_checkpoint, capsys):
    out = tmp_path / "o.mp4"
    args = ["animate", source_image, driving_video, "-o", out, "--checkpoint", tiny_checkpoint, "--device", "cpu"]
    assert main([str(a) for a in [*args, "--precision", "fp16"]]) == 2
    assert "--precision fp16 needs a CUDA device" in one_line(capsys)
    assert main([str(a) for a in [*args, "--fp16"]]) == 2  # the older spelling
    assert "--fp16 needs a CUDA device" in one_line(capsys)
    assert main([str(a) for a in [*args, "--fp16", "--precision", "bf16"]]) == 2
    assert "disagree" in one_line(capsys)
    assert not out.exists()
    with pytest.raises(ReanimateError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))


def test_the_landmark_animator_refuses_bf16(tmp_path, source_image, driving_video, capsys):
    out = tmp_path / "o.mp4"
    assert main(["animate", str(source_image), str(driving_video), "-o", str(out), "--precision", "bf16"]) == 2
    assert "no bfloat16 path" in one_line(capsys) and not out.exists()


def test_default_batch_size_is_one_on_the_cpu(tmp_path, source_image, driving_video, tiny_checkpoint):
    result = animate(
        source_image, driving_video, tmp_path / "a", checkpoint=tiny_checkpoint, device="cpu", progress=False
    )
    assert result.batch_size == 1 and result.precision == "fp32"
    assert default_batch_size("cpu") == 1 and default_batch_size("cuda") == 4
    given = animate(
        source_image,
        driving_video,
        tmp_path / "b",
        checkpoint=tiny_checkpoint,
        device="cpu",
        batch_size=3,
        progress=False,
    )
    assert given.batch_size == 3


def test_allocator_settings_leave_the_users_alone():
    """The malloc thresholds are raised (glibc; in a child: they last for the process),
    never over a user's ``MALLOC_*`` environment; giving free memory back is harmless."""
    from reanimate import device

    code = "from reanimate import device; device.release_free_memory(); print(device.tune_cpu_allocator())"
    env = {k: v for k, v in os.environ.items() if k not in device.MALLOC_ENVIRONMENT}
    run = lambda extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert run({"MALLOC_ARENA_MAX": "2"}) == "False"
    assert run({}) == str(device._glibc() is not None)


def test_bf16_units_are_read_from_the_cpu_flags(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision_module, "_CPUINFO", cpuinfo)
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx512f amx_bf16 avx512_bf16\n\n")
    assert precision_module.cpu_bf16_units() == ("avx512_bf16", "amx_bf16")
    assert precision_module.cpu_name() == "Some Xeon"
    assert resolve_precision("bf16", torch.device("cpu")).dtype == torch.bfloat16
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Old Xeon\nflags\t\t: fpu avx2 avx512f\n")
    chosen = resolve_precision("bf16", torch.device("cpu"))
    assert chosen.name == "fp32" and chosen.dtype is None and "Old Xeon" in chosen.note
    cpuinfo.unlink()  # not Linux: the flags are unknown, bf16 runs as asked
    assert precision_module.cpu_bf16_units() is None
    assert resolve_precision("bf16", torch.device("cpu")).name == "bf16"
