"""MMFA training: head-pose pseudo-labels, the step's losses, loss falling on tiny data,
exact resume, and the run's checkpoint."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mmfa_tiny import tiny_document
from PIL import Image
from two_ranks import fit_on_two_ranks

from reanimate.data.frames import FramesDataset
from reanimate.data.head_poses import (
    HeadPoseLabels,
    augmented_angles,
    cache_pose_labels,
    fill_missing,
    load_pose_labels,
    pose_label_path,
)
from reanimate.errors import InputError
from reanimate.heads.dataset import HeadsConfig, load_truth, make_heads
from reanimate.models.mmfa import MMFAConfig, build_mmfa
from reanimate.training.checkpoints import latest_checkpoint
from reanimate.training.loop import resume, train
from reanimate.training.mmfa_config import MMFATrainConfig
from reanimate.training.mmfa_objective import MMFAGeneratorObjective
from reanimate.training.run_options import TrainOptions

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "source.png"

pytest.importorskip("mediapipe", reason="head-pose labels come from MediaPipe's face mesh")


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    make_heads(root, HeadsConfig(size=64, frames=6, train=2, test=1, seed=3), workers=1, progress=False)
    return root


def tiny_doc(**train_params):
    doc = tiny_document(face=False)
    doc["train_params"] = {
        "num_epochs": 2,
        "num_repeats": 2,
        "batch_size": 2,
        "lr": 1e-3,
        "lr_discriminator": 1e-3,
        "log_freq": 1,
        "image_freq": 0,
        "num_workers": 0,
        "precise_bn_batches": 1,
        "scales": [1, 0.5],
        "loss_weights": {
            "perceptual": [1, 1, 0, 0, 0],
            "ms_ssim": 0,
            "deformation_prior": 10,
            "feature_matching": [10, 10],
        },
        **train_params,
    }
    return doc


def options(root, **kw):
    return TrainOptions(data_root=str(root), progress=False, tensorboard=False, num_workers=0, **kw)


def test_fill_missing_and_augmented_angles():
    angles = np.array([[1, 0, 0], [9, 9, 9], [3, 0, 0], [9, 9, 9], [9, 9, 9]], dtype=np.float32)
    found = np.array([True, False, True, False, False])
    assert fill_missing(angles, found)[:, 0].tolist() == [1, 1, 3, 3, 3]
    out = augmented_angles(np.array([[10.0, 5.0, 20.0]]), mirrored=True, rotation=15.0)
    assert out.tolist() == [[-10.0, 5.0, -35.0]]
    assert augmented_angles(np.array([[0.0, 0.0, 170.0]]), False, -20.0)[0, 2] == pytest.approx(-170.0)


def test_pose_labels_are_cached_and_follow_the_true_yaw(heads):
    videos = FramesDataset(heads, frame_shape=(64, 64, 3), is_train=True)
    assert cache_pose_labels(videos, progress=False) == 2
    assert cache_pose_labels(videos, progress=False) == 0  # computed once
    for name in videos.videos:
        angles = load_pose_labels(heads / "train" / name)
        truth = load_truth(heads / "train" / f"{name}.truth.npz")
        assert angles.shape == (6, 3)
        # the face mesh's yaw and roll follow the exact ones (its pitch has a constant offset)
        assert np.abs(angles[:, 0] - truth["yaw"]).max() < 5
        assert np.abs(angles[:, 2] - truth["roll"]).max() < 5
    sample = HeadPoseLabels(videos, progress=False)[(0, 7)]
    labels = load_pose_labels(heads / "train" / sample["name"])
    assert torch.allclose(sample["source_pose"], torch.from_numpy(labels[int(sample["indices"][0])]))
    damaged = pose_label_path(heads / "train" / videos.videos[0])
    damaged.write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable head-pose labels"):
        HeadPoseLabels(videos, progress=False)[(0, 1)]
    damaged.unlink()  # the next run computes it again
    assert cache_pose_labels(videos, progress=False) == 1


def test_a_few_steps_lower_the_loss_on_one_batch():
    config = MMFAConfig.from_document(tiny_doc(), name="tiny")
    tc = MMFATrainConfig.from_dict(config.raw["train_params"])
    tc.loss_weights.generator_gan = 0
    tc.loss_weights.reconstruction = 10
    torch.manual_seed(0)
    model = build_mmfa(config, seed=0)
    objective = MMFAGeneratorObjective(model, tc, vgg=None, ms_ssim_weight=0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    blob = lambda cx: torch.exp(-((xx - cx) ** 2 + yy**2) / 0.1)  # noqa: E731
    source = torch.stack([blob(-0.2), 0.5 * blob(-0.2), 1 - blob(-0.2)])[None].repeat(2, 1, 1, 1)
    driving = torch.stack([blob(0.2), 0.5 * blob(0.2), 1 - blob(0.2)])[None].repeat(2, 1, 1, 1)
    poses = torch.zeros(2, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = last = None
    for step in range(25):
        losses, out = objective(source, driving, poses, poses, _transform(step), _augment(step))
        reconstruction = (out.prediction - driving).abs().mean()
        # loss_weights.reconstruction: the pixel L1 of the full-size output, weighted
        assert torch.allclose(losses["reconstruction"], 10 * reconstruction)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        last = float(reconstruction.detach())
        first = last if first is None else first
    assert set(losses) >= {
        "keypoint_prior",
        "deformation_prior",
        "canonical",
        "equivariance",
        "expression",
        "head_pose",
        "reconstruction",
    }
    assert last < 0.6 * first


def _transform(step):
    from reanimate.geometry.tps import ThinPlateSpline

    return ThinPlateSpline.random(2, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(step))


def _augment(step):
    from reanimate.geometry.tps import ThinPlateSpline

    return ThinPlateSpline.random_similarity(2, 15, 0.1, 0.1, generator=torch.Generator().manual_seed(step))


def test_training_resumes_exactly_and_writes_a_loadable_checkpoint(heads, tmp_path):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_doc()))
    full = train(config_path, tmp_path / "full", options(heads, max_steps=4))
    assert full.state.step == 4 and len(full.losses) == 4
    assert {"perceptual", "generator_gan", "discriminator_gan", "head_pose"} <= set(full.losses[0])

    split = train(config_path, tmp_path / "split", options(heads, max_steps=2))
    assert split.state.step == 2
    rest = resume(tmp_path / "split", options(heads, max_steps=4))
    assert [round(v, 6) for d in split.losses + rest.losses for v in d.values()] == [
        round(v, 6) for d in full.losses for v in d.values()
    ]
    a = latest_checkpoint(tmp_path / "full") / "model.safetensors"
    b = latest_checkpoint(tmp_path / "split") / "model.safetensors"
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(k.startswith("expression_decoder.") for k in ta)


def test_the_landmark_loss_runs_the_differentiable_face_mesh():
    from reanimate.faces.landmark_net import LANDMARK_GROUPS, FaceLandmarkNet

    doc = tiny_doc(loss_weights={"perceptual": [0, 0, 0, 0, 0], "landmark": {"face": 1.0, "mouth": 2.0, "pupil": 0}})
    config = MMFAConfig.from_document(doc, name="tiny")
    tc = MMFATrainConfig.from_dict(config.raw["train_params"])
    tc.loss_weights.generator_gan = 0
    model = build_mmfa(config, seed=0)
    net = FaceLandmarkNet.from_mediapipe()
    objective = MMFAGeneratorObjective(model, tc, vgg=None, landmark_net=net, landmark_groups=LANDMARK_GROUPS)
    image = torch.from_numpy(np.array(Image.open(EXAMPLE).convert("RGB").resize((64, 64)))).permute(2, 0, 1)
    frames = (image.float() / 255)[None].repeat(2, 1, 1, 1)
    losses, _ = objective(frames, frames, torch.zeros(2, 3), torch.zeros(2, 3), _transform(0), _augment(0))
    assert {"landmark_face", "landmark_mouth"} <= set(losses) and "landmark_pupil" not in losses
    (losses["landmark_face"] + losses["landmark_mouth"]).backward()
    assert model.generator.to_image[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_two_process_ddp_keeps_ranks_identical(heads, tmp_path):
    """torchrun with 2 CPU processes (gloo), GAN on: after 2 steps both ranks hold the same
    weights, discriminator included."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_doc(precise_bn_batches=0, batch_size=4)))  # 2 per rank: BatchNorm1d
    stdout, a, b = fit_on_two_ranks(
        tmp_path,
        f"""
        from reanimate.training.loop import _load_run_config
        from reanimate.training.mmfa_trainer import MMFATrainer
        from reanimate.training.run_options import TrainOptions
        trainer = MMFATrainer(_load_run_config({str(config)!r}), {str(tmp_path / "run")!r},
                              TrainOptions(data_root={str(heads)!r}, max_steps=2, progress=False,
                                           tensorboard=False, num_workers=0))
        """,
    )
    assert stdout.count("steps 2 batch 2") == 2
    assert a.keys() == b.keys() and any(k.startswith("discriminator.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_autocast_and_the_weight_average(heads, tmp_path):
    from reanimate.animators.mmfa import load_mmfa

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_doc(ema_decay=0.9, batch_size=2)))
    result = train(config, tmp_path / "run", options(heads, max_steps=2, amp="bf16"))
    assert result.state.step == 2 and all(np.isfinite(v) for d in result.losses for v in d.values())
    averaged = latest_checkpoint(tmp_path / "run") / "model_ema.safetensors"
    ema, trained = load_mmfa(averaged), load_mmfa(averaged.with_name("model.safetensors"))
    differ = [
        k for k, v in ema.state_dict().items() if v.is_floating_point() and not torch.equal(v, trained.state_dict()[k])
    ]
    assert differ  # the average lags the trained weights
