"""The MMFA family end to end with random weights: animate (all and some attributes),
edit, the animator's consistency, and model-info."""

from pathlib import Path

import numpy as np
import pytest
import torch
from mmfa_tiny import tiny_checkpoint, tiny_config
from PIL import Image

from reanimate.animators.base import HeadControl, Transfer
from reanimate.animators.mmfa import MMFAAnimator, load_mmfa
from reanimate.animators.registry import build_animator
from reanimate.cli import main
from reanimate.io.clips import iter_frames
from reanimate.models.mmfa import build_mmfa
from reanimate.models.mmfa.head_pose import HeadPoseConfig
from reanimate.motion import HEAD_ATTRIBUTES, relative_head_motion

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("mmfa") / "mmfa.safetensors")


@pytest.fixture(scope="module")
def driving(tmp_path_factory):
    folder = tmp_path_factory.mktemp("driving")
    for i, frame in enumerate(iter_frames(EXAMPLES / "driving.mp4", (256, 256, 3))):
        if i == 6:
            break
        Image.fromarray(np.round(frame * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_the_checkpoint_names_its_family_and_loads(checkpoint):
    animator = build_animator(checkpoint)
    assert isinstance(animator, MMFAAnimator) and isinstance(animator, HeadControl)
    assert animator.requirements.head_attributes == HEAD_ATTRIBUTES
    assert animator.requirements.size == (64, 64) and not animator.requirements.driving_landmarks
    reloaded = load_mmfa(checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), animator.model.state_dict().values()))


def test_mesh_rotation_models_ask_for_landmarks():
    animator = MMFAAnimator(build_mmfa(tiny_config(learn_rotation=False), seed=0), device="cpu")
    assert animator.requirements.driving_landmarks
    # learnt bins, but animating with the face mesh's rotation (mmfa/heads-64)
    config = tiny_config(learn_rotation=True)
    config.head_pose.animate_rotation = "mesh"
    animator = MMFAAnimator(build_mmfa(config, seed=0), device="cpu")
    assert animator.requirements.driving_landmarks and not animator.learned_rotation
    with pytest.raises(ValueError, match="animate_rotation: learned needs learn_rotation: true"):
        HeadPoseConfig(learn_rotation=False, animate_rotation="learned")
    with pytest.raises(ValueError, match="must be auto, learned or mesh"):
        HeadPoseConfig(animate_rotation="bins")


def test_a_still_driver_renders_the_source_head_and_attributes_are_chosen(checkpoint):
    animator = build_animator(checkpoint, device="cpu")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    other = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    source = animator.encode_source(image)
    head = animator.source_head(source)
    assert head.canonical.shape == (1, 6, 3) and head.translation.shape == (1, 2)
    still = animator.render_heads(source, head).frames
    from reanimate.animators.base import DrivingBatch

    batch = DrivingBatch([image, other], (64, 64))
    motion = animator.estimate(batch)
    reference = motion[0]
    # the reference frame itself drives the source to its own head
    same = animator.render(source, motion[0], reference, Transfer()).frames
    assert np.abs(same.astype(int) - still.astype(int)).max() <= 1
    # with only the rotation transferred, scale, translation and expression stay the source's
    heads = animator.heads(source, motion)
    target = relative_head_motion(head, heads, animator.heads(source, reference), ("rotation",))
    assert torch.equal(target.scale, head.scale.expand(2)) and torch.equal(target.expression[1], head.expression[0])
    only = animator.render(source, motion, reference, Transfer(attributes=("rotation",))).frames
    assert only.shape == (2, 64, 64, 3)
    # an edit of the expression from another image changes the rendered face
    expression = animator.expression_from(source, other)
    assert expression.shape == head.expression.shape
    assert not torch.allclose(expression, head.expression)


def test_cli_animate_and_edit_with_a_random_weight_checkpoint(checkpoint, driving, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    source = str(EXAMPLES / "source.png")
    assert main(["animate", source, str(driving), "-o", str(out), "--checkpoint", str(checkpoint), "-q"]) == 0
    assert out.is_file() and out.stat().st_size > 0
    part = tmp_path / "rotation.mp4"
    args = ["animate", source, str(driving), "-o", str(part), "--checkpoint", str(checkpoint), "--transfer", "rotation"]
    assert main([*args, "-q"]) == 0 and part.is_file()
    edited = tmp_path / "edit.png"
    assert main(["edit", source, "-o", str(edited), "--checkpoint", str(checkpoint), "--yaw", "15", "-q"]) == 0
    assert Image.open(edited).size == Image.open(source).size


def test_model_info_prints_every_network(capsys):
    assert main(["model-info", "mmfa/heads-64"]) == 0
    printed = capsys.readouterr().out
    for name in ("appearance", "canonical", "head_pose", "expression_encoder", "dense_motion", "generator"):
        assert name in printed
