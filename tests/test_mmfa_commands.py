"""``reanimate canonical``, ``train-vae`` and ``interpolate`` (MMFA Sec. 3.3, 4.3-4.4)
with a random-weight tiny MMFA checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmfa_tiny import tiny_checkpoint as tiny_mmfa_checkpoint
from PIL import Image

from reanimate.animators.base import HeadControl
from reanimate.animators.expression import ExpressionControl
from reanimate.animators.registry import build_animator
from reanimate.cli import main
from reanimate.errors import ReanimateError
from reanimate.io import list_frame_files, read_image
from reanimate.io.clips import iter_frames
from reanimate.pipelines.expressions import FEATURES_FILE, ExpressionPipeline, chosen_frames, load_features
from reanimate.training.expression_vae import load_expression_vae

pytest.importorskip("mediapipe")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SOURCE = EXAMPLES / "source.png"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reanimate: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def mmfa(tmp_path_factory) -> Path:
    return tiny_mmfa_checkpoint(tmp_path_factory.mktemp("mmfa") / "mmfa.safetensors")


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> tuple[Path, Path]:
    """Two frames of the example clip (one face each) as expression images."""
    folder = tmp_path_factory.mktemp("faces")
    frames = [np.round(f * 255).astype(np.uint8) for f in iter_frames(EXAMPLES / "driving.mp4", (256, 256, 3))]
    paths = folder / "a.png", folder / "b.png"
    Image.fromarray(frames[0]).save(paths[0])
    Image.fromarray(frames[-1]).save(paths[1])
    return paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """train/: 2 videos of 4 frames (folders of PNG), test/: one of 2 frames, 64x64."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, videos, count in (("train", 2, 4), ("test", 1, 2)):
        for v in range(videos):
            folder = root / split / f"video{v}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def vae_run(mmfa, dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vae") / "run"
    args = ["train-vae", "--checkpoint", str(mmfa), "--data", str(dataset), "-o", str(run)]
    assert main([*args, "--steps", "3", "--batch-size", "4", "--frames-per-video", "3", "-q"]) == 0
    return run


def test_mmfa_has_expression_control(mmfa):
    animator = build_animator(mmfa, device="cpu")
    assert isinstance(animator, ExpressionControl) and isinstance(animator, HeadControl)


def test_canonical_writes_the_source_size_deterministically(mmfa, tmp_path, capsys):
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    for out in outs:
        assert main(["canonical", str(SOURCE), "-o", str(out), "--checkpoint", str(mmfa), "--device", "cpu", "-q"]) == 0
    first, second = (read_image(p) for p in outs)
    assert first.shape == read_image(SOURCE).shape
    assert np.array_equal(first, second)
    assert not np.array_equal(first, read_image(SOURCE))  # the face was rendered
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_train_vae_caches_features_and_resumes(mmfa, dataset, vae_run, capsys):
    features, info = load_features(vae_run / FEATURES_FILE)
    assert features.shape == (2 * 3, 32) and torch.isfinite(features).all()
    assert info["frames_per_video"] == "3"
    assert len(chosen_frames(4, 3, 0, 1)) == 3 and np.array_equal(chosen_frames(4, 3, 0, 1), chosen_frames(4, 3, 0, 1))
    vae = load_expression_vae(vae_run)
    assert vae.config.feature_dim == 32
    # --resume reuses the cached features (the dataset is not read again) and continues
    args = ["train-vae", "--checkpoint", str(mmfa), "--data", str(dataset / "gone"), "-o", str(vae_run), "--resume"]
    capsys.readouterr()
    assert main([*args, "--steps", "5"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("step-00000005/model.safetensors") and "6 cached features" in err
    assert torch.equal(load_features(vae_run / FEATURES_FILE)[0], features)
    # without --resume the run is not overwritten
    args = ["train-vae", "--checkpoint", str(mmfa), "--data", str(dataset), "-o", str(vae_run), "--steps", "2", "-q"]
    assert main(args) == 2
    assert "--resume" in one_line_error(capsys)


def test_interpolate_starts_at_the_first_expression(mmfa, faces, vae_run, tmp_path, capsys):
    a, b = faces
    folder = tmp_path / "frames"  # lossless PNG frames, to compare exactly
    args = ["interpolate", str(SOURCE), str(a), str(b), "--checkpoint", str(mmfa), "--vae", str(vae_run)]
    assert main([*args, "-o", str(folder), "--frames", "5", "--device", "cpu", "-q"]) == 0
    written = [read_image(p) for p in list_frame_files(folder)]
    assert len(written) == 5 and written[0].shape == read_image(SOURCE).shape

    # the ends: the source's head with the decoded posterior means of EXPR_A's and EXPR_B's features
    pipe = ExpressionPipeline(build_animator(mmfa, device="cpu"))
    vae = load_expression_vae(vae_run)
    face = pipe.open_source(SOURCE)
    head = pipe.animator.source_head(face.source)
    f_a, f_b = pipe.features_of(face, a), pipe.features_of(face, b)
    with torch.no_grad():
        ends = [pipe.animator.expression(vae.decode(vae.encode(f)[0]), head.canonical) for f in (f_a, f_b)]
    for frame, expression in zip((written[0], written[-1]), ends):
        expected = pipe.render(face, head.with_(expression=expression), [0])[0]
        assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1

    # in between, only the expression moves (the random-weight encoder tells the two faces apart only a little)
    heads = pipe.interpolated_heads(face, vae, f_a, f_b, 5)
    torch.testing.assert_close(heads.expression[0], ends[0][0])
    torch.testing.assert_close(heads.expression[-1], ends[1][0])
    assert not torch.equal(heads.expression[0], heads.expression[-1])
    for name in ("rotation", "scale", "translation", "canonical"):
        assert torch.equal(getattr(heads, name), getattr(head, name).expand_as(getattr(heads, name)))

    video = tmp_path / "walk.mp4"
    assert main([*args, "-o", str(video), "--frames", "3", "--device", "cpu", "-q"]) == 0
    assert len(list(iter_frames(video, (64, 64, 3)))) == 3


def test_errors_are_one_line(mmfa, faces, vae_run, tiny_checkpoint, tmp_path, capsys):
    a, b = map(str, faces)
    out, source, run = str(tmp_path / "o.mp4"), str(SOURCE), str(vae_run)
    model = ["--checkpoint", str(mmfa), "--device", "cpu", "-q"]
    fomm = ["--checkpoint", str(tiny_checkpoint), "-q"]
    cases = [
        (["interpolate", str(tmp_path / "nope.png"), a, b, "-o", out, "--vae", run, *model], "nope.png"),
        (["interpolate", source, a, b, "-o", out, "--vae", str(tmp_path / "novae"), *model], "novae"),
        (["interpolate", source, a, b, "-o", out, "--vae", source, *model], "--vae takes"),
        (["interpolate", source, a, b, "-o", str(tmp_path / "o.png"), "--vae", run, *model], "o.png"),
        (["interpolate", source, a, b, "-o", out, "--vae", run, "--frames", "1", *model], "--frames"),
        (["interpolate", source, a, b, "-o", out, "--vae", run, *fomm], "the fomm model"),
        (["canonical", source, "-o", str(tmp_path / "c.mp4"), *model], "c.mp4"),
        (["canonical", source, "-o", str(tmp_path / "missing" / "c.png"), *model], "does not exist"),
        (["canonical", source, "-o", str(tmp_path / "c.png"), *fomm], "the fomm model"),
        (["canonical", source, "-o", str(tmp_path / "c.png"), "-q"], "the landmarks model"),
        (["train-vae", "--data", str(tmp_path), "-o", str(tmp_path / "run"), *fomm], "the fomm model"),
    ]
    for args, expected in cases:
        assert main(args) == 2, args
        line = one_line_error(capsys)
        assert expected in line, args
    assert not list(tmp_path.iterdir())
    with pytest.raises(ReanimateError, match="MMFA checkpoint"):
        ExpressionPipeline(build_animator())


def test_a_face_missing_from_an_expression_image_is_one_line(mmfa, vae_run, faces, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((128, 128, 3), 127, np.uint8)).save(blank)
    out = tmp_path / "o.mp4"
    args = ["interpolate", str(SOURCE), str(blank), str(faces[1]), "-o", str(out), "--vae", str(vae_run)]
    assert main([*args, "--checkpoint", str(mmfa), "--device", "cpu", "-q"]) == 2
    assert "blank.png: no face found" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.png"]
