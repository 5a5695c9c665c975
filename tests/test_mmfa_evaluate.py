"""The evaluation pipelines (reconstruct, animate-pairs, evaluate) with a tiny random-weight
MMFA checkpoint: they run through the Animator interface, same-identity with absolute head
transfer, and give a face-mesh rotation model the landmarks of every frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from media import make_frames_folder
from mmfa_tiny import SIZE, tiny_checkpoint

from reanimate.animators.mmfa import MMFAAnimator
from reanimate.animators.registry import build_animator
from reanimate.cli import main
from reanimate.data.frames import FramesDataset
from reanimate.io import open_frames, open_writer
from reanimate.pipelines.reconstruct import reconstruct

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("mmfa") / "mmfa.safetensors")


@pytest.fixture(scope="module")
def mesh_checkpoint(tmp_path_factory) -> Path:
    """Rotation from the face mesh: the animator asks for every frame's landmarks."""
    return tiny_checkpoint(tmp_path_factory.mktemp("mmfa") / "mesh.safetensors", learn_rotation=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """ROOT/train and ROOT/test of generated 64 x 64 videos (PNG frames): two moving test
    videos and a still one (every frame the first)."""
    root = tmp_path_factory.mktemp("videos")
    make_frames_folder(root / "train" / "t0", num_frames=2, size=(SIZE, SIZE))
    make_frames_folder(root / "test" / "moving0", num_frames=3, size=(SIZE, SIZE))
    make_frames_folder(root / "test" / "moving1", num_frames=2, size=(SIZE, SIZE), pattern="noise")
    make_frames_folder(root / "test" / "still", num_frames=4, size=(SIZE, SIZE), pattern="static")
    return root


def _only(root: Path, name: str, tmp_path: Path) -> FramesDataset:
    """The test split of ``root`` with only the video ``name`` (linked)."""
    (tmp_path / "one" / "train").mkdir(parents=True)
    (tmp_path / "one" / "test").mkdir()
    (tmp_path / "one" / "test" / name).symlink_to(root / "test" / name)
    return FramesDataset(tmp_path / "one", frame_shape=(SIZE, SIZE, 3), is_train=False)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """ROOT/train and ROOT/test of 4-frame face clips of the bundled driving video at 64 x 64."""
    root = tmp_path_factory.mktemp("faces")
    with open_frames(EXAMPLES / "driving.mp4") as reader:
        frames = [frame for _, frame in zip(range(24), reader)]
    for folder, start in (("train/c", 0), ("test/clip_a", 0), ("test/clip_b", 12)):
        (root / folder).parent.mkdir(parents=True, exist_ok=True)
        with open_writer(root / folder, 25) as writer:
            writer.write(np.stack([_resize(f) for f in frames[start : start + 12 : 3]]))
    return root


def _resize(frame: np.ndarray) -> np.ndarray:
    from reanimate.io import fit_to_shape

    return fit_to_shape(frame, (SIZE, SIZE))[0]


def _frames(path: Path) -> np.ndarray:
    with open_frames(path) as reader:
        return np.stack(list(reader))


class Calls:
    """The DrivingBatches the MMFA animator estimates and the Transfers it renders with."""

    def __init__(self, monkeypatch):
        self.batches, self.transfers = [], []
        estimate, render = MMFAAnimator.estimate, MMFAAnimator.render

        def spy_estimate(animator, batch):
            self.batches.append(batch)
            return estimate(animator, batch)

        def spy_render(animator, source, motion, reference, transfer):
            self.transfers.append(transfer)
            return render(animator, source, motion, reference, transfer)

        monkeypatch.setattr(MMFAAnimator, "estimate", spy_estimate)
        monkeypatch.setattr(MMFAAnimator, "render", spy_render)

    def clear(self) -> None:
        self.batches.clear()
        self.transfers.clear()

    def all_have_landmarks(self) -> bool:
        return bool(self.batches) and all(
            b.landmarks is not None and b.landmarks.shape == (len(b), 478, 3) for b in self.batches
        )


def test_reconstruct_and_animate_pairs_commands_run_an_mmfa_checkpoint(checkpoint, dataset, tmp_path, capsys):
    out = tmp_path / "recon"
    args = ["--checkpoint", str(checkpoint), "--data", str(dataset), "-o", str(out), "--format", "png", "-q"]
    assert main(["reconstruct", *args]) == 0
    assert "over 9 frames of 3 videos" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["l1"] < 1 and [v["name"] for v in metrics["per_video"]] == ["moving0", "moving1", "still"]
    assert _frames(out / "moving0").shape == (3, SIZE, SIZE, 3)
    # the flow and keypoint measures are FOMM's: a one-line error, not a crash
    assert main(["reconstruct", *args[:-3], "--format", "none", "--gt-flow", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--gt-flow" in err and "mmfa" in err and "\n" not in err

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,driving\nmoving0,moving1\nstill,moving0\n")
    out = tmp_path / "pairs"
    assert main(["animate-pairs", *args[:4], "--pairs", str(pairs), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.glob("*.mp4")) == ["moving0-still.mp4", "moving1-moving0.mp4"]


def test_reconstruction_of_a_still_video_renders_the_source_head(checkpoint, dataset, tmp_path, monkeypatch):
    calls = Calls(monkeypatch)
    animator = build_animator(checkpoint, device="cpu")
    videos = _only(dataset, "still", tmp_path)
    result = reconstruct(animator, videos, tmp_path / "out", save="png", batch_size=3, progress=False)
    assert result.frames == 4
    assert calls.transfers and all(not t.relative for t in calls.transfers)  # absolute head transfer
    predicted = _frames(tmp_path / "out" / "still").astype(float)
    real = _frames(dataset / "test" / "still")
    source = animator.encode_source(real[0])
    expected = animator.render_heads(source, animator.source_head(source)).frames.astype(float)
    # Each frame's own head (rotation, scale, translation, expression) on the source's
    # identity is the source's head: the rendering of the source head, up to rounding.
    assert np.abs(predicted - expected).mean() / 255 < 1e-3 and np.abs(predicted - expected).max() <= 2
    # (random weights: the rendering itself is far from the input image)
    assert result.l1 > 10 * np.abs(predicted - expected).mean() / 255


def test_evaluate_runs_both_protocols_on_an_mmfa_checkpoint(checkpoint, faces, tmp_path, capsys, monkeypatch):
    pytest.importorskip("mediapipe", reason="evaluation of faces needs mediapipe")
    calls = Calls(monkeypatch)
    common = ["--checkpoint", str(checkpoint), "--no-identity", "--cache", str(tmp_path / "cache"), "-q"]
    out = tmp_path / "same"
    assert main(["evaluate", "same-identity", "--data", str(faces), "-o", str(out), *common]) == 0
    assert "| same | same-identity | 2 |" in capsys.readouterr().out
    result = json.loads((out / "metrics.json").read_text(), parse_constant=float)
    assert result["metrics"]["videos"] == 2 and result["metrics"]["frames"] == 8
    assert 0 < result["metrics"]["l1"] < 1 and result["metrics"]["psnr"] > 0
    assert {"akd", "mkr", "apd"} <= set(result["metrics"])
    assert _frames(out / "generated" / "clip_a").shape == (4, SIZE, SIZE, 3)  # whole frames, not pasted back
    assert calls.transfers and all(not t.relative for t in calls.transfers)
    calls.clear()

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"source,driving\n{EXAMPLES / 'source.png'},{faces / 'test' / 'clip_b'}\n")
    out = tmp_path / "cross"
    assert main(["evaluate", "cross-identity", "--pairs", str(pairs), "-o", str(out), *common]) == 0
    result = json.loads((out / "metrics.json").read_text(), parse_constant=float)
    assert result["metrics"]["videos"] == 1 and result["metrics"]["l1"] is None
    assert result["per_video"][0]["name"] == "clip_b-source" and result["per_video"][0]["frames"] == 4
    assert calls.transfers and all(t.relative for t in calls.transfers)


def test_a_face_mesh_rotation_model_gets_the_landmarks_of_every_frame(mesh_checkpoint, faces, tmp_path, monkeypatch):
    pytest.importorskip("mediapipe", reason="face landmarks need mediapipe")
    from reanimate.pipelines.animate import build_pipeline
    from reanimate.pipelines.evaluate import generate

    calls = Calls(monkeypatch)
    animator = build_animator(mesh_checkpoint, device="cpu")
    assert animator.requirements.driving_landmarks
    videos = _only(faces, "clip_a", tmp_path)
    assert reconstruct(animator, videos, save=None, batch_size=3, progress=False).frames == 4
    assert calls.all_have_landmarks()

    calls.clear()
    clip = faces / "test" / "clip_b"
    outputs = generate(build_pipeline(mesh_checkpoint, device="cpu"), [("b", clip, clip)], tmp_path, progress=False)
    assert _frames(outputs["b"]).shape == (4, SIZE, SIZE, 3)
    assert calls.all_have_landmarks()


def test_a_face_mesh_rotation_model_on_videos_without_faces_is_a_one_line_error(
    mesh_checkpoint, dataset, tmp_path, capsys
):
    pytest.importorskip("mediapipe", reason="face landmarks need mediapipe")
    args = ["--checkpoint", str(mesh_checkpoint), "--data", str(dataset), "--format", "none", "--num-videos", "1"]
    assert main(["reconstruct", *args, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no face" in err and "moving0" in err and "\n" not in err
