"""The avatar end to end on a rendered procedural head: a forward pass reaches every
field, fitting lowers the loss, a resumed fit is exact, "Ours-" (no rig pseudo ground
truth) trains too, and the config refuses what it cannot run."""

import json
import shutil

import pytest
import torch
from avatar_tiny import tiny_document, tiny_track
from safetensors.torch import load_file

from reanimate.avatar.config import AvatarConfig, build_avatar, fields_for_rig
from reanimate.avatar.data import gather_pixels, sample_pixels
from reanimate.avatar.model import FrameBatch
from reanimate.avatar.rigs.procedural import procedural_rig
from reanimate.avatar.tracking import load_tracking
from reanimate.errors import InputError
from reanimate.training.avatar_config import AvatarTrainConfig
from reanimate.training.avatar_losses import AvatarLossWeights
from reanimate.training.avatar_rig_prior import rig_prior_loss, warm_up_deformation
from reanimate.training.avatar_trainer import avatar_losses
from reanimate.training.loop import TrainOptions, resume, train


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    return tiny_track(tmp_path_factory.mktemp("avatar") / "track", frames=4, size=32)


def losses_of(log):
    return [json.loads(line)["losses"] for line in log.read_text().splitlines()]


def test_pixel_sampling_is_half_in_the_face_box():
    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[10.0, 12.0, 19.0, 15.0]])
    pixels = sample_pixels(boxes, 32, 48, 200, 0.5, gen)
    assert pixels.shape == (1, 200, 2) and pixels.dtype == torch.float32
    inside = pixels[0, 100:]
    assert (inside[:, 0] >= 10).all() and (inside[:, 0] <= 19).all()
    assert (inside[:, 1] >= 12).all() and (inside[:, 1] <= 15).all()
    # every pixel of the box can be drawn, and the uniform half covers the whole image
    assert len({tuple(p) for p in inside.tolist()}) > 30
    assert pixels[0, :100, 0].max() > 30 and pixels[0, :100, 1].max() > 20
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    values = gather_pixels(image, torch.tensor([[[4.0, 3.0]], [[0.0, 1.0]]]))
    torch.testing.assert_close(values, torch.stack([image[0, :, 3, 4], image[1, :, 1, 0]])[:, None])


def test_a_forward_pass_reaches_every_field(track):
    folder = load_tracking(track)
    config = AvatarConfig.from_document(tiny_document())
    model = build_avatar(config, folder.tracking.shape)
    t = folder.tracking
    frames = FrameBatch(t.expression[:2], t.pose[:2], t.translation[:2])
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    pixels = torch.stack([xs, ys], -1).reshape(1, -1, 2).expand(2, -1, -1)
    mask = torch.stack([torch.from_numpy(folder.mask(i) > 0.5).flatten() for i in range(2)])
    out = model(pixels, frames, t.camera, mask)
    assert out.rgb.shape == (2, 1024, 3) and out.hit.any() and (~out.hit).any()
    assert out.deformation.weights.shape == (int(out.surface.sum()), 6)
    target = torch.rand(2, 1024, 3)
    losses = avatar_losses(model, out, target, mask, AvatarLossWeights())
    assert set(losses) == {"rgb", "mask", "skinning", "expression_dirs", "pose_dirs"}
    sum(losses.values()).backward()
    for name in ("geometry", "texture", "deformation"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    # the deformation's zero-initialised heads get the rig's pseudo ground truth
    assert model.deformation.blendshapes.weight.grad.abs().sum() > 0


def test_fitting_lowers_the_loss_and_resumes_exactly(track, tmp_path):
    doc = tiny_document()
    options = TrainOptions(data_root=str(track), progress=False, tensorboard=False)
    full = tmp_path / "full"
    train(doc, full, options)
    losses = losses_of(full / "log.jsonl")
    assert len(losses) == 16
    first = sum(sum(v.values()) for v in losses[:4]) / 4
    last = sum(sum(v.values()) for v in losses[-4:]) / 4
    assert last < 0.8 * first
    # stop after 6 steps, resume: the same weights as the uninterrupted run
    part = tmp_path / "part"
    train(doc, part, TrainOptions(data_root=str(track), progress=False, tensorboard=False, max_steps=6))
    resume(part, TrainOptions(progress=False, tensorboard=False))
    x = load_file(full / "checkpoints" / "step-00000016" / "model.safetensors")
    y = load_file(part / "checkpoints" / "step-00000016" / "model.safetensors")
    assert x.keys() == y.keys() and any(k.startswith("geometry.") for k in x) and "subject.shape" in x
    for key in x:
        torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=key)


def test_refined_frames_learn_corrections_and_resume_exactly(track, tmp_path):
    doc = tiny_document()
    doc["train_params"].update(refine_frames=True, lr_frames=1e-2, num_epochs=2)
    options = dict(data_root=str(track), progress=False, tensorboard=False)
    train(doc, tmp_path / "full", TrainOptions(**options))
    train(doc, tmp_path / "part", TrainOptions(**options, max_steps=5))
    resume(tmp_path / "part", TrainOptions(progress=False, tensorboard=False))
    x = load_file(tmp_path / "full" / "checkpoints" / "step-00000008" / "model.safetensors")
    y = load_file(tmp_path / "part" / "checkpoints" / "step-00000008" / "model.safetensors")
    assert x["refinement.expression"].shape == (4, 3) and x["refinement.pose"].shape == (4, 5, 3)
    # every training frame got its own correction
    assert (x["refinement.expression"].abs().sum(1) > 0).all()
    for key in x:
        torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=key)


def test_ours_minus_trains_without_the_rig_losses(track, tmp_path):
    doc = tiny_document()
    doc["train_params"]["loss_weights"] = {"lbs": 0}
    doc["train_params"]["num_epochs"] = 1
    train(doc, tmp_path / "run", TrainOptions(data_root=str(track), progress=False, tensorboard=False))
    assert all(set(v) == {"rgb", "mask"} for v in losses_of(tmp_path / "run" / "log.jsonl"))


def test_config_checks():
    rig = procedural_rig()
    with pytest.raises(ValueError, match="fields.deformation.num_joints is 4 but rig procedural has 5"):
        fields_for_rig({"deformation": {"num_joints": 4}}, rig)
    with pytest.raises(ValueError, match="model_params: unknown key"):
        AvatarConfig.from_document({"model_params": {"family": "avatar", "rigs": "ict"}})
    with pytest.raises(ValueError, match="model_params.rig must be"):
        AvatarConfig.from_document({"model_params": {"family": "avatar", "rig": "smpl"}})
    with pytest.raises(ValueError, match="tracing: unknown key"):
        AvatarConfig.from_document({"model_params": {"family": "avatar", "tracing": {"samples": 3}}})


def test_a_track_of_another_rig_is_refused(track, tmp_path):
    doc = tiny_document()
    doc["model_params"]["rig"] = "ict"
    doc["model_params"]["fields"].pop("deformation")
    copy = tmp_path / "track"
    shutil.copytree(track, copy)
    with pytest.raises(InputError, match="tracked with the procedural rig but the config uses ict"):
        train(doc, tmp_path / "run", TrainOptions(data_root=str(copy), progress=False, tensorboard=False))


def test_the_rig_prior_warm_start_fits_the_deformation_to_the_rig(track):
    folder = load_tracking(track)
    model = build_avatar(AvatarConfig.from_document(tiny_document()), folder.tracking.shape)
    vertices = model.canonical_vertices[None]
    target = model.rig_targets(torch.arange(vertices.shape[1]))

    def weight_error():
        with torch.no_grad():
            return float((model.deformation(vertices).weights[0] - target.weights).abs().sum(-1).mean())

    before = weight_error()
    geometry = {k: v.clone() for k, v in model.geometry.state_dict().items()}
    losses = warm_up_deformation(
        model, 150, AvatarLossWeights(), num_points=256, lr=3e-3, generator=torch.Generator().manual_seed(0)
    )
    assert len(losses) == 150 and sum(losses[-10:]) < 0.3 * sum(losses[:10])
    assert weight_error() < 0.5 * before
    # only the deformation network moves
    for key, value in model.geometry.state_dict().items():
        torch.testing.assert_close(value, geometry[key], rtol=0, atol=0)
    # the per-step term is the same loss, differentiable w.r.t. the deformation network alone
    loss = rig_prior_loss(model, AvatarLossWeights(), 64, torch.Generator().manual_seed(1))
    loss.backward()
    assert model.deformation.skinning.weight.grad is not None
    assert all(p.grad is None for p in model.geometry.parameters())
    assert warm_up_deformation(model, 0, AvatarLossWeights()) == []


def test_a_warm_started_fit_with_the_rig_prior_resumes_exactly(track, tmp_path):
    doc = tiny_document()
    doc["train_params"].update(num_epochs=2, deformation_warmup_steps=20, rig_prior_points=64)
    doc["train_params"]["loss_weights"] = {"rig_prior": 1.0}
    options = dict(data_root=str(track), progress=False, tensorboard=False)
    train(doc, tmp_path / "full", TrainOptions(**options))
    train(doc, tmp_path / "part", TrainOptions(**options, max_steps=3))
    resume(tmp_path / "part", TrainOptions(progress=False, tensorboard=False))
    assert all("rig_prior" in v for v in losses_of(tmp_path / "full" / "log.jsonl"))
    x = load_file(tmp_path / "full" / "checkpoints" / "step-00000008" / "model.safetensors")
    y = load_file(tmp_path / "part" / "checkpoints" / "step-00000008" / "model.safetensors")
    for key in x:
        torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=key)
    with pytest.raises(ValueError, match="deformation_warmup_steps"):
        AvatarTrainConfig.from_dict({"deformation_warmup_steps": -1})
