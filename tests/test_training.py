"""Training: the step objects, run checkpoints, exact resumption, DDP, the CLI modes."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from two_ranks import fit_on_two_ranks

from reanimate import checkpoint as ckpt
from reanimate.cli import main
from reanimate.errors import InputError, ReanimateError
from reanimate.geometry.tps import ThinPlateSpline
from reanimate.models import ModelConfig, build_model
from reanimate.training.batchnorm import recompute_batchnorm_statistics
from reanimate.training.checkpoints import latest_checkpoint
from reanimate.training.config import TrainConfig
from reanimate.training.ema import ema_decay_at, update_ema
from reanimate.training.objectives import DiscriminatorObjective, GeneratorObjective
from reanimate.training.trainer import TrainOptions, resume, train
from reanimate.training.vgg import Vgg19Features

SIZE = 32

TINY = {
    "dataset_params": {
        "root_dir": "unused",
        "frame_shape": [SIZE, SIZE, 3],
        "id_sampling": False,
        "augmentation_params": {"flip_param": {"horizontal_flip": True, "time_flip": True}},
    },
    "model_params": {
        "common_params": {"num_kp": 4, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {
            "temperature": 0.1,
            "block_expansion": 8,
            "max_features": 32,
            "scale_factor": 1,
            "num_blocks": 3,
        },
        "generator_params": {
            "block_expansion": 8,
            "max_features": 32,
            "num_down_blocks": 2,
            "num_bottleneck_blocks": 1,
            "estimate_occlusion_map": True,
            "dense_motion_params": {"block_expansion": 8, "max_features": 32, "num_blocks": 3, "scale_factor": 1},
        },
        "discriminator_params": {"scales": [1], "block_expansion": 8, "max_features": 32, "num_blocks": 3, "sn": True},
    },
    "train_params": {
        "num_epochs": 2,
        "num_repeats": 2,
        "epoch_milestones": [1],
        "batch_size": 4,
        "scales": [1, 0.5],
        "checkpoint_freq": 1,
        "log_freq": 1,
        "image_freq": 3,
        "num_workers": 0,
        "transform_params": {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5},
        "loss_weights": {
            "generator_gan": 0,
            "discriminator_gan": 1,
            "feature_matching": [10, 10, 10],
            "perceptual": [10, 10, 10, 10, 10],
            "equivariance_value": 10,
            "equivariance_jacobian": 10,
        },
    },
}


def tiny_doc(**train_overrides) -> dict:
    doc = copy.deepcopy(TINY)
    for key, value in train_overrides.items():
        if key == "loss_weights":
            doc["train_params"]["loss_weights"].update(value)
        else:
            doc["train_params"][key] = value
    return doc


def write_video(folder: Path, rng: np.random.Generator, frames: int = 6) -> None:
    """A smooth random texture with a bright square moving over it."""
    folder.mkdir(parents=True)
    base = rng.random((SIZE // 4, SIZE // 4, 3))
    texture = np.kron(base, np.ones((4, 4, 1)))
    start, velocity = rng.integers(2, SIZE // 2, 2), rng.integers(-2, 3, 2)
    for t in range(frames):
        image = texture.copy()
        y, x = np.clip(start + t * velocity, 0, SIZE - 9)
        image[y : y + 8, x : x + 8] = [1.0, 0.9, 0.2]
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{t:03d}.png")


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_dataset")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("test", 2)):
        for i in range(count):
            write_video(root / split / f"video{i}", rng)
    return root


def config_file(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def options(root: Path, **kwargs) -> TrainOptions:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("tensorboard", False)
    return TrainOptions(data_root=str(root), **kwargs)


def test_train_config_reads_official_keys_and_defaults():
    config = TrainConfig.from_dict(yaml.safe_load(Path("configs/fomm/vox-256.yaml").read_text())["train_params"])
    assert config.batch_size == 40 and config.epoch_milestones == [60, 90] and config.num_repeats == 75
    assert config.transform_params.sigma_affine == 0.05 and config.transform_params.points_tps == 5
    assert config.loss_weights.perceptual == [10, 10, 10, 10, 10]
    assert not config.uses_gan
    assert TrainConfig.from_dict({"loss_weights": {"generator_gan": 1}}).uses_gan
    # MS-SSIM joins the loss only when the VGG-19 is not an ImageNet one.
    assert config.loss_weights.ms_ssim_weight(imagenet_vgg=True) == 0
    assert config.loss_weights.ms_ssim_weight(imagenet_vgg=False) == 10
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"batch_size": 0})


def _objective_inputs(doc):
    config = ModelConfig.from_dict(doc)
    model = build_model(config, with_discriminator=True, seed=0)
    train_config = TrainConfig.from_dict(doc["train_params"])
    torch.manual_seed(0)
    source, driving = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    tps = ThinPlateSpline.random(2, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(0))
    return model, train_config, source, driving, tps


def test_generator_objective_terms_and_gradients():
    doc = tiny_doc(loss_weights={"generator_gan": 1})
    model, train_config, source, driving, tps = _objective_inputs(doc)
    objective = GeneratorObjective(
        model.kp_detector, model.generator, model.discriminator, train_config, Vgg19Features(seed=0), ms_ssim_weight=10
    )
    # The discriminator belongs to its own step: not a submodule of this one.
    assert not any(n.startswith("discriminator") for n, _ in objective.named_parameters())
    with objective.frozen_discriminator():
        losses, generated = objective(source, driving, tps)
    assert set(losses) == {
        "perceptual",
        "ms_ssim",
        "generator_gan",
        "feature_matching",
        "equivariance_value",
        "equivariance_jacobian",
    }
    assert all(v.ndim == 0 and torch.isfinite(v) and v >= 0 for v in losses.values())
    assert generated.output.prediction.shape == (2, 3, SIZE, SIZE)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.kp_detector.parameters())
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.requires_grad for p in model.discriminator.parameters())  # unfrozen again

    d_losses = DiscriminatorObjective(model.discriminator, train_config)(
        driving, generated.output.prediction, generated.kp_driving
    )
    d_losses["discriminator_gan"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator.parameters())


def test_zero_weights_switch_terms_off():
    doc = tiny_doc(loss_weights={"perceptual": [0, 0, 0, 0, 0], "equivariance_jacobian": 0})
    model, train_config, source, driving, tps = _objective_inputs(doc)
    objective = GeneratorObjective(model.kp_detector, model.generator, None, train_config, Vgg19Features(seed=0))
    losses, _ = objective(source, driving, tps)
    assert set(losses) == {"equivariance_value"}
    assert objective.vgg is None
    with pytest.raises(ValueError, match="discriminator"):
        GeneratorObjective(
            model.kp_detector,
            model.generator,
            None,
            TrainConfig.from_dict({"loss_weights": {"generator_gan": 1}}),
            None,
        )


def test_precise_batchnorm_statistics_are_the_batch_average():
    """Hand-computed: batch means (1, 2) and (5, 4) average to (3, 3); unbiased batch
    variances (2, 8) and (2, 32) to (2, 20). Momentum, the batch counter, the eval mode
    and the parameters are put back; with no batch, or an error, nothing changes."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    norm = net[1]
    norm.num_batches_tracked.fill_(7)
    weight = net[0].weight.clone()
    batches = [torch.tensor([[0.0, 0.0], [2.0, 4.0]]), torch.tensor([[4.0, 0.0], [6.0, 8.0]])]
    seen = []

    def forward(x):
        seen.append(norm.training)
        net(x)

    assert recompute_batchnorm_statistics(net, forward, batches) == 2
    assert seen == [True, True] and not net.training and not norm.training
    assert torch.allclose(norm.running_mean, torch.tensor([3.0, 3.0]))
    assert torch.allclose(norm.running_var, torch.tensor([2.0, 20.0]))
    assert norm.momentum == 0.1 and norm.num_batches_tracked.item() == 7
    assert torch.equal(net[0].weight, weight)

    assert recompute_batchnorm_statistics(net, forward, []) == 0
    assert torch.allclose(norm.running_var, torch.tensor([2.0, 20.0]))

    def failing(x):
        net(x)
        raise RuntimeError("decode failed")

    with pytest.raises(RuntimeError, match="decode failed"):
        recompute_batchnorm_statistics(net, failing, batches)
    assert torch.allclose(norm.running_mean, torch.tensor([3.0, 3.0])) and norm.momentum == 0.1
    assert recompute_batchnorm_statistics(torch.nn.Linear(2, 2), forward, batches) == 0  # no BatchNorm


def test_weight_average_update_and_warm_up():
    """Hand-computed: 0 moves 1 - 0.9 of the way to 1 (0.1), then to 0.1 + 0.1 * 0.9 =
    0.19; buffers are copied; the decay warms up as (1 + t) / (10 + t)."""
    average, model = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        average.weight.zero_()
        model.weight.fill_(1.0)
        model.running_mean.fill_(5.0)
    update_ema(average, model, 0.9)
    assert torch.allclose(average.weight, torch.full((2,), 0.1))
    update_ema(average, model, 0.9)
    assert torch.allclose(average.weight, torch.full((2,), 0.19))
    assert torch.equal(average.running_mean, model.running_mean)
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1) and ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 10**6) == 0.999
    with pytest.raises(ValueError):
        update_ema(average, torch.nn.Linear(2, 2, bias=False), 0.9)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig.from_dict({"ema_decay": 1.0})


def test_precise_batchnorm_leaves_training_unchanged(dataset_root, tmp_path):
    """Recomputing the statistics at each checkpoint changes only the saved running
    statistics: the same losses and parameters as a run that keeps the moving averages."""
    runs = {}
    for batches in (0, 2):
        doc = tiny_doc(num_epochs=2, precise_bn_batches=batches)
        runs[batches] = train(ModelConfig.from_dict(doc), tmp_path / f"run{batches}", options(dataset_root))
    assert runs[0].losses == runs[2].losses
    kept, precise = (load_file(str(latest_checkpoint(tmp_path / f"run{b}") / "model.safetensors")) for b in (0, 2))
    stats = [k for k in kept if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(kept[k], precise[k]) for k in kept if k not in stats)
    assert any(not torch.equal(kept[k], precise[k]) for k in stats)
    with pytest.raises(ValueError, match="precise_bn_batches"):
        TrainConfig.from_dict({"precise_bn_batches": -1})


def test_thirty_steps_lower_the_loss(dataset_root, tmp_path):
    doc = tiny_doc(num_epochs=100, num_repeats=8, log_freq=5, image_freq=0, lr_generator=1e-3, lr_kp_detector=1e-3)
    result = train(ModelConfig.from_dict(doc), tmp_path / "run", options(dataset_root, max_steps=30))
    assert result.state.step == 30 and not result.finished
    totals = [sum(step.values()) for step in result.losses]
    assert np.mean(totals[-5:]) < 0.8 * np.mean(totals[:5]), totals
    # Stopping at max_steps leaves a checkpoint to continue from, and a readable log.
    assert latest_checkpoint(tmp_path / "run").name == "step-00000030"
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [5, 10, 15, 20, 25, 30]
    assert set(lines[0]["losses"]) >= {"perceptual", "equivariance_value", "equivariance_jacobian"}


def test_resume_gives_the_losses_of_an_uninterrupted_run(dataset_root, tmp_path):
    """Stopped after step 3 (mid-epoch: 2 batches per epoch) and resumed, a run computes
    exactly the losses of a run that never stopped, across the epoch boundary and the
    learning-rate milestone, with the GAN and its discriminator step."""
    doc = tiny_doc(num_epochs=3, num_repeats=2, batch_size=4, loss_weights={"generator_gan": 1}, ema_decay=0.9)
    config = ModelConfig.from_dict(doc)
    full = train(config, tmp_path / "full", options(dataset_root))
    assert full.finished and full.state.step == 6 and full.state.epoch == 3

    first = train(config, tmp_path / "split", options(dataset_root, max_steps=3))
    assert first.state.step == 3 and first.state.batch_in_epoch == 1
    second = resume(tmp_path / "split", options("ignored", progress=False))
    assert second.finished and second.state.step == 6
    assert first.losses + second.losses == full.losses
    final_full = load_file(str(latest_checkpoint(tmp_path / "full") / "model.safetensors"))
    final_split = load_file(str(latest_checkpoint(tmp_path / "split") / "model.safetensors"))
    assert final_full.keys() == final_split.keys()
    assert all(torch.equal(final_full[k], final_split[k]) for k in final_full)
    # So are the averaged weights, restored from the stop's model_ema.safetensors.
    ema_full, ema_split = (
        load_file(str(latest_checkpoint(tmp_path / run) / "model_ema.safetensors")) for run in ("full", "split")
    )
    assert ema_full.keys() == ema_split.keys() and all(torch.equal(ema_full[k], ema_split[k]) for k in ema_full)
    assert any(not torch.equal(ema_full[k], final_full[k]) for k in ema_full if k.endswith("weight"))
    # The learning rate was decayed at the milestone (epoch 1).
    state = json.loads((latest_checkpoint(tmp_path / "split") / "state.json").read_text())
    assert state["optimizers"]["generator"]["param_groups"][0]["lr"] == pytest.approx(2e-5)


def test_checkpoint_model_file_animates_and_converts(dataset_root, tmp_path):
    result = train(ModelConfig.from_dict(tiny_doc()), tmp_path / "run", options(dataset_root, max_steps=1))
    model = ckpt.load(result.checkpoint / "model.safetensors")
    assert model.config.image_size == (SIZE, SIZE)
    assert sorted(p.name for p in result.checkpoint.iterdir()) == [
        "model.safetensors",
        "state.json",
        "state.safetensors",
    ]
    # Nothing half-written is left next to it.
    assert not [p for p in result.checkpoint.parent.iterdir() if p.name.startswith(".")]


def test_interrupted_checkpoint_write_keeps_the_previous_one(dataset_root, tmp_path, monkeypatch):
    from reanimate.training import checkpoints

    run = tmp_path / "run"
    train(ModelConfig.from_dict(tiny_doc(num_epochs=10)), run, options(dataset_root, max_steps=2))

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        resume(run, options("ignored", max_steps=3))
    assert latest_checkpoint(run).name == "step-00000002"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.json", "step-00000002"]


def test_init_fine_tunes_from_a_checkpoint(dataset_root, tmp_path):
    config = ModelConfig.from_dict(tiny_doc())
    start = build_model(config, with_discriminator=True, seed=123)
    ckpt.save(tmp_path / "start.safetensors", start)
    result = train(
        config, tmp_path / "run", options(dataset_root, max_steps=1, init=str(tmp_path / "start.safetensors"))
    )
    trained = ckpt.load(result.checkpoint / "model.safetensors")
    # One small Adam step away from the initial weights, not from a fresh random init.
    a = dict(start.kp_detector.named_parameters())
    for name, value in trained.kp_detector.named_parameters():
        assert (value - a[name]).abs().max() < 1e-3


def test_run_folder_errors(dataset_root, tmp_path):
    config = ModelConfig.from_dict(tiny_doc())
    train(config, tmp_path / "run", options(dataset_root, max_steps=1))
    with pytest.raises(InputError, match="already holds a training run"):
        train(config, tmp_path / "run", options(dataset_root, max_steps=1))
    with pytest.raises(InputError, match="not a training run"):
        resume(tmp_path / "nothing", options(dataset_root))
    with pytest.raises(ReanimateError, match="fp16 needs a CUDA"):
        train(config, tmp_path / "amp", options(dataset_root, amp="fp16"))
    with pytest.raises(InputError, match="no batch"):
        train(config, tmp_path / "big", options(dataset_root, batch_size=64, num_repeats=1))


def test_bf16_autocast_step_on_cpu(dataset_root, tmp_path):
    result = train(
        ModelConfig.from_dict(tiny_doc()),
        tmp_path / "run",
        options(dataset_root, max_steps=2, amp="bf16", channels_last=True),
    )
    assert result.state.step == 2
    assert all(np.isfinite(v) for step in result.losses for v in step.values())


def test_tensorboard_scalars_and_images(dataset_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(ModelConfig.from_dict(tiny_doc()), tmp_path / "run", options(dataset_root, max_steps=3, tensorboard=True))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"loss/perceptual", "loss/equivariance_value", "lr/generator"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/perceptual")] == [1, 2, 3]
    assert tags["images"] == ["samples"]
    grid = np.asarray(Image.open(tmp_path / "run" / "images" / "step-00000003.png"))
    assert grid.shape == (4 * SIZE, 5 * SIZE, 3)  # 4 samples x (source, driving, deformed, occlusion, prediction)


@pytest.mark.parametrize("estimator", ["keypoint_detector", "transformer"])
def test_two_process_ddp_keeps_ranks_identical(dataset_root, tmp_path, estimator):
    """torchrun with 2 CPU processes (gloo): 2 steps, then both ranks hold the same weights
    (and, after the checkpoint averaged them, the same BatchNorm statistics); with FOMM's
    detector and with the motion transformer."""
    doc = tiny_doc(num_epochs=5) if estimator == "keypoint_detector" else transformer_doc(num_epochs=5)
    config = config_file(tmp_path, doc)
    stdout, a, b = fit_on_two_ranks(
        tmp_path,
        f"""
        from reanimate.training.trainer import TrainOptions, Trainer
        from reanimate.models import load_config
        trainer = Trainer(load_config({str(config)!r}), {str(tmp_path / "run")!r},
                          TrainOptions(data_root={str(dataset_root)!r}, max_steps=2, progress=False,
                                       tensorboard=False))
        """,
    )
    assert stdout.count("steps 2 batch 2") == 2
    initial = build_model(ModelConfig.from_dict(doc), seed=0).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], initial[k]) for k in initial if k in a)


def test_cli_train_reconstruct_and_animate_pairs(dataset_root, tmp_path, capsys):
    config = config_file(tmp_path, tiny_doc())
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--data",
                str(dataset_root),
                "-o",
                str(run),
                "--max-steps",
                "2",
                "--no-tensorboard",
                "-q",
            ]
        )
        == 0
    )
    assert "stopped at epoch 1, step 2" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--max-steps", "3", "-q", "--no-tensorboard"]) == 0
    assert latest_checkpoint(run).name == "step-00000003"
    model_file = str(latest_checkpoint(run) / "model.safetensors")

    out = tmp_path / "recon"
    assert main(["reconstruct", "--checkpoint", model_file, "--data", str(dataset_root), "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "reconstruction L1" in printed and "over 12 frames of 2 videos" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["l1"] < 1 and [v["name"] for v in metrics["per_video"]] == ["video0", "video1"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["video0.mp4", "video1.mp4"]

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,driving\nvideo0,video1\nvideo1,video0\nmissing,video0\n")
    out = tmp_path / "pairs"
    assert (
        main(
            [
                "animate-pairs",
                "--checkpoint",
                model_file,
                "--data",
                str(dataset_root),
                "--pairs",
                str(pairs),
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.glob("*.mp4")) == ["video0-video1.mp4", "video1-video0.mp4"]

    assert (
        main(["train", "--config", str(config), "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "r2"), "-q"])
        == 2
    )
    assert "nope" in capsys.readouterr().err


def test_ctrl_c_checkpoints_after_the_current_step_and_resumes(dataset_root, tmp_path, monkeypatch):
    """The first SIGINT lets the running step finish, then writes a checkpoint and stops;
    the run then resumes to the losses of an uninterrupted one."""
    import signal

    from reanimate.training.trainer import Trainer

    config = ModelConfig.from_dict(tiny_doc(num_epochs=2))
    full = train(config, tmp_path / "full", options(dataset_root))

    original = Trainer.train_step

    def step_then_interrupt(self, batch):
        out = original(self, batch)
        if self.state.step == 2:  # counted after this call returns: the 3rd step is running
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "train_step", step_then_interrupt)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup
    first = train(config, tmp_path / "split", options(dataset_root))
    monkeypatch.setattr(Trainer, "train_step", original)
    assert first.interrupted and not first.finished and first.state.step == 3
    assert latest_checkpoint(tmp_path / "split").name == "step-00000003"
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    second = resume(tmp_path / "split", options("ignored"))
    assert first.losses + second.losses == full.losses


def test_reconstruct_gt_flow_measures_against_the_ground_truth(tmp_path):
    from reanimate.data import FramesDataset, SyntheticConfig, make_synthetic
    from reanimate.pipelines.reconstruct import reconstruct

    root = make_synthetic(
        tmp_path / "syn",
        SyntheticConfig(size=SIZE, num_frames=4, num_train=1, num_test=3, camera_motion_fraction=0.5),
        progress=False,
    )
    model = build_model(ModelConfig.from_dict(tiny_doc()), seed=0)
    dataset = FramesDataset(root, frame_shape=(SIZE, SIZE, 3), is_train=False)
    result = reconstruct(model, dataset, save=None, gt_flow=True, progress=False)
    assert result.videos == 3 and result.frames == 12
    # The no-motion baseline is the identity flow: the generator recorded its error per video.
    recorded = [v["no_motion_epe_px"] for v in json.loads((root / "synthetic.json").read_text())["videos"]["test"]]
    # (recorded from float32 maps and rounded; the stored maps are float16)
    assert result.no_motion_epe == pytest.approx(np.mean(recorded), rel=1e-2)
    assert result.flow_epe > 0 and result.flow_epe_visible > 0 and result.keypoint_equivariance >= 0
    # The source frame itself is the no-motion prediction: its L1 on frame 0 is 0.
    assert 0 < result.no_motion_l1 < 1 and 0 < result.l1 < 1


def transformer_doc(**train_overrides) -> dict:
    """TINY with the motion transformer (MoTrans) as the motion estimator."""
    doc = tiny_doc(**train_overrides)
    doc["model_params"]["motion_estimator"] = "transformer"
    doc["model_params"]["kp_detector_params"] = {
        "backbone": "stem",
        "dim": 32,
        "depth": 2,
        "heads": 4,
        "mlp_ratio": 2.0,
    }
    return doc


def test_motion_transformer_trains_and_its_checkpoint_animates(dataset_root, tmp_path):
    from reanimate.data import FramesDataset
    from reanimate.models import MotionTransformer
    from reanimate.pipelines.reconstruct import reconstruct

    doc = transformer_doc(
        num_epochs=100, num_repeats=8, log_freq=5, image_freq=0, lr_generator=1e-3, lr_kp_detector=1e-3
    )
    config = ModelConfig.from_dict(doc)
    assert isinstance(build_model(config).kp_detector, MotionTransformer)
    result = train(config, tmp_path / "run", options(dataset_root, max_steps=30))
    totals = [sum(step.values()) for step in result.losses]
    assert np.mean(totals[-5:]) < 0.8 * np.mean(totals[:5]), totals
    # The equivariance losses go through the transformer.
    assert all(step["equivariance_jacobian"] > 0 for step in result.losses)
    model = ckpt.load(latest_checkpoint(tmp_path / "run") / "model.safetensors")
    assert isinstance(model.kp_detector, MotionTransformer)
    dataset = FramesDataset.from_config(doc["dataset_params"], is_train=False, root_dir=str(dataset_root))
    out = reconstruct(model, dataset, save=None, device="cpu", progress=False)
    assert 0 < out.l1 < 0.5


def test_unknown_motion_estimator_is_a_config_error(tmp_path):
    doc = tiny_doc()
    doc["model_params"]["motion_estimator"] = "nonsense"
    with pytest.raises(ValueError, match="unknown motion_estimator 'nonsense'"):
        ModelConfig.from_dict(doc)


def test_backbone_weights_need_the_transformer(dataset_root, tmp_path):
    with pytest.raises(ReanimateError, match="motion_estimator: transformer"):
        train(
            ModelConfig.from_dict(tiny_doc()),
            tmp_path / "run",
            options(dataset_root, max_steps=1, backbone_weights="hrnet.pth"),
        )
