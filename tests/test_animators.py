"""The Animator interface and the family registry: a new family plugs in without touching
the pipeline; checkpoints and configs pick their family and face behaviour themselves."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from reanimate.animators.base import Animator, DrivingBatch, Motion, Rendered, Requirements, Source, Transfer
from reanimate.animators.registry import Family, build_animator, families, register_family, unregister_family
from reanimate.checkpoint import save
from reanimate.cli import main
from reanimate.io import fit_to_shape, read_image
from reanimate.models import ModelConfig, build_model
from reanimate.motion import Keypoints
from reanimate.pipelines import animate
from reanimate.pipelines.animate import build_pipeline

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PIPELINES = ROOT / "reanimate" / "pipelines"


class StillAnimator(Animator):
    """A toy family: every output frame is the source, unmoved; its keypoint is the
    mean colour's position (for the pipeline's smoothing and jitter)."""

    family = "still"

    def __init__(self, face: bool = False, size: int = 48):
        self.face = face
        self.size = size
        self.estimated = 0

    @property
    def requirements(self) -> Requirements:
        return Requirements(size=(self.size, self.size), face=self.face, crop_increase=0.2)

    def encode_source(self, image, landmarks=None) -> Source:
        return Source(image, Keypoints(torch.zeros(1, 1, 2)))

    def estimate(self, batch: DrivingBatch) -> Motion:
        crops = batch.crops()
        assert crops.shape[1:] == (self.size, self.size, 3)
        assert batch.landmarks is None  # it did not ask for per-frame landmarks
        self.estimated += len(batch)
        return Motion(Keypoints(torch.zeros(len(batch), 1, 2)))

    def render(self, source: Source, motion: Motion, reference, transfer: Transfer) -> Rendered:
        return Rendered(np.repeat(source.image[None], len(motion), axis=0))


@pytest.fixture
def still_family():
    made = []

    def build(request):
        animator = StillAnimator(face=request.config == "face")
        made.append(animator)
        return animator

    register_family(Family("still", "the source, unmoved (test)", build=build, uses_checkpoint=False))
    yield made
    unregister_family("still")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """6 frames of the bundled driving clip."""
    from conftest import example_clip

    return example_clip(tmp_path_factory.mktemp("clip") / "short.mp4", 6)


def test_a_new_family_animates_the_example_through_the_registry(still_family, short_clip, tmp_path):
    assert "still" in families() and {"fomm", "landmarks"} <= set(families())
    result = animate(EXAMPLES / "source.png", short_clip, tmp_path / "out", model="still", progress=False)
    assert result.frames == 6 and still_family[0].estimated == 6 + 1  # the frames and the reference frame
    expected = fit_to_shape(read_image(EXAMPLES / "source.png"), (48, 48))[0]
    frames = sorted((tmp_path / "out").glob("*.png"))
    assert len(frames) == 6
    for path in frames:
        assert np.array_equal(read_image(path), expected)
    assert "landmarks" not in result.timings  # no per-frame face landmarks were computed


def test_a_face_family_is_cropped_and_pasted_back_without_per_frame_landmarks(still_family, short_clip, tmp_path):
    pipeline = build_pipeline(model="still")
    pipeline.animator.face, pipeline.animator.size = True, 256
    result = pipeline.animate(EXAMPLES / "source.png", short_clip, tmp_path / "out", progress=False)
    source = read_image(EXAMPLES / "source.png")
    frame = read_image(sorted((tmp_path / "out").glob("*.png"))[0])
    assert frame.shape == source.shape  # pasted back at the source's resolution
    assert np.abs(frame.astype(int) - source).mean() < 2  # the unmoved crop blends back to the source
    assert "landmarks" not in result.timings


def test_a_family_name_can_not_be_taken_twice(still_family):
    with pytest.raises(ValueError, match="already registered"):
        register_family(Family("still", "again", build=lambda r: None))


def test_unknown_family_is_a_one_line_error(tmp_path, capsys):
    code = main(
        [
            "animate",
            str(EXAMPLES / "source.png"),
            str(EXAMPLES / "driving.mp4"),
            "-o",
            str(tmp_path / "o.mp4"),
            "--model",
            "nope",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unknown model family" in err and "landmarks" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_no_model_type_branches_in_the_pipelines():
    """The pipelines ask the animator's requirements, never its class or config name."""
    for path in PIPELINES.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"isinstance\([^)]*(Animator|FirstOrderModel|LandmarkAnimator)", text), path.name
        assert 'startswith("vox' not in text and "uses_landmarks" not in text, path.name


def _face_config_text(tiny_text: str, face: str | None, root: str | None = None) -> str:
    text = tiny_text
    if face is not None:
        text = text.replace("model_params:\n", f"model_params:\n  face: {face}\n")
    if root is not None:
        text = text.replace("dataset_params:\n", f"dataset_params:\n  root_dir: {root}\n")
    return text


@pytest.mark.parametrize(
    "face, root, expected",
    [
        ("true", None, True),
        ("false", "data/vox-png", False),
        (None, "data/vox-png", True),
        (None, None, False),
    ],
)
def test_an_own_checkpoint_carries_whether_it_is_a_face_model(tmp_path, face, root, expected):
    from conftest import TINY_CONFIG

    config = ModelConfig.from_yaml_text(_face_config_text(TINY_CONFIG, face, root), name="whatever")
    path = save(tmp_path / "model.safetensors", build_model(config, seed=0))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config.to_yaml())
    without = build_pipeline(path, device="cpu")
    with_config = build_pipeline(path, config=str(config_file), device="cpu")
    assert without.requirements.face is expected and with_config.requirements.face is expected
    assert without.animator.family == "fomm"


def test_shipped_face_configs_say_so():
    from reanimate.models import load_config

    assert load_config("vox-256").face and load_config("vox-adv-256").face and load_config("motrans/vox-256").face
    assert not load_config("taichi-256").face and not load_config("mgif-256").face


def test_transfer_is_relative_with_jacobians_by_default():
    assert Transfer() == Transfer(relative=True, adapt_scale=False, relative_jacobian=True)


def test_build_animator_picks_the_checkpoint_family(tiny_checkpoint):
    animator = build_animator(tiny_checkpoint, device="cpu")
    assert animator.family == "fomm" and animator.requirements.size == (64, 64)
    assert build_animator().family == "landmarks"
