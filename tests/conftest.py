"""Shared fixtures: a tiny FOMM config (fast on CPU), checkpoints and synthetic media."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from media import make_image, make_video

from reanimate.checkpoint import save
from reanimate.models import ModelConfig, build_model

TINY_CONFIG = """
dataset_params:
  frame_shape: [64, 64, 3]
model_params:
  common_params: {num_kp: 5, num_channels: 3, estimate_jacobian: true}
  kp_detector_params: {temperature: 0.1, block_expansion: 8, max_features: 32, scale_factor: 0.5, num_blocks: 3}
  generator_params:
    block_expansion: 8
    max_features: 32
    num_down_blocks: 2
    num_bottleneck_blocks: 1
    estimate_occlusion_map: true
    dense_motion_params: {block_expansion: 8, max_features: 32, num_blocks: 3, scale_factor: 0.5}
  discriminator_params: {scales: [1], block_expansion: 8, max_features: 32, num_blocks: 4, sn: true}
train_params: {num_epochs: 1}
"""


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return ModelConfig.from_yaml_text(TINY_CONFIG, name="tiny")


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every weight and BatchNorm statistic a non-trivial random value (the
    Jacobian head starts at zero, which would hide errors)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if not value.dtype.is_floating_point or name.endswith("down.weight"):
                continue
            noise = torch.randn(value.shape, generator=gen)
            value.copy_(noise.abs() + 0.5 if "running_var" in name else noise * 0.1)
    return model


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    return randomize(build_model(tiny_config, with_discriminator=True)).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model) -> Path:
    return save(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", tiny_model)


@pytest.fixture(scope="session")
def driving_video(tmp_path_factory) -> Path:
    return make_video(
        tmp_path_factory.mktemp("media") / "driving.mp4", num_frames=16, size=(80, 64), fps=25, audio=True
    )


@pytest.fixture(scope="session")
def source_image(tmp_path_factory) -> Path:
    return make_image(tmp_path_factory.mktemp("media") / "source.png", size=(72, 64))


def example_clip(path: Path, num_frames: int) -> Path:
    """The first ``num_frames`` frames of the bundled driving clip, written to ``path``."""
    from reanimate.io import open_frames, open_writer

    examples = Path(__file__).resolve().parents[1] / "examples"
    with open_frames(examples / "driving.mp4") as reader, open_writer(path, reader.fps) as writer:
        for i, frame in enumerate(reader):
            if i == num_frames:
                break
            writer.write(frame[None])
    return path
