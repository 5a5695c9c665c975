"""``reanimate`` end to end on generated media, and its error cases."""

import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from media import make_video
from PIL import Image
from test_checkpoint import save_official

from reanimate.animators.fomm import FommAnimator
from reanimate.cli import main
from reanimate.io import open_frames
from reanimate.pipelines import AnimationOptions, AnimationPipeline, animate


def run_cli(*args):
    return main([str(a) for a in args])


def streams(path):
    with av.open(str(path)) as c:
        return {s.type for s in c.streams}


def test_animate_to_mp4_keeps_fps_frames_and_audio(tmp_path, source_image, driving_video, tiny_checkpoint, capsys):
    out = tmp_path / "out.mp4"
    assert run_cli("animate", source_image, driving_video, "-o", out, "--checkpoint", tiny_checkpoint, "--quiet") == 0
    with open_frames(out) as reader:
        frames = list(reader)
        assert reader.fps == pytest.approx(25)
    assert len(frames) == 16 and frames[0].shape == (64, 64, 3)
    assert streams(out) == {"video", "audio"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary left


def test_animate_to_png_folder_matches_the_python_function(tmp_path, source_image, driving_video, tiny_checkpoint):
    out = tmp_path / "frames"
    assert run_cli("animate", source_image, driving_video, "-o", out, "--checkpoint", tiny_checkpoint, "-q") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(16)]
    result = animate(source_image, driving_video, tmp_path / "api", checkpoint=tiny_checkpoint, progress=False)
    assert result.frames == 16
    for name in names:  # lossless PNG: identical
        assert np.array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(tmp_path / "api" / name)))


def test_frames_are_independent_of_batch_size(tmp_path, source_image, driving_video, tiny_checkpoint):
    a = animate(source_image, driving_video, tmp_path / "a", checkpoint=tiny_checkpoint, batch_size=1, progress=False)
    b = animate(source_image, driving_video, tmp_path / "b", checkpoint=tiny_checkpoint, batch_size=5, progress=False)
    for name in sorted(p.name for p in a.output.iterdir()):
        x = np.asarray(Image.open(a.output / name)).astype(int)
        y = np.asarray(Image.open(b.output / name)).astype(int)
        assert np.abs(x - y).max() <= 1


def test_driving_folder_input_and_visualize(tmp_path, source_image, driving_video, tiny_checkpoint):
    out = tmp_path / "vis.mp4"
    with open_frames(driving_video) as reader:
        folder = tmp_path / "driving"
        folder.mkdir()
        for i, frame in enumerate(reader):
            Image.fromarray(frame).save(folder / f"f{i}.png")
    code = run_cli(
        "animate", source_image, folder, "-o", out, "--checkpoint", tiny_checkpoint, "--visualize", "-q", "--fps", 10
    )
    assert code == 0
    with open_frames(out) as reader:
        assert reader.size == (4 * 64, 64)  # source | driving | result | occlusion
        assert reader.fps == pytest.approx(10)


def test_relative_motion_from_a_still_driving_video_reproduces_the_source_animation(
    tmp_path, source_image, tiny_checkpoint
):
    """With a static driver every frame is the same image, whatever the reference frame."""
    still = make_video(tmp_path / "still.mp4", num_frames=6, size=(64, 64), pattern="static")
    pipe = AnimationPipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    out = pipe.animate(source_image, still, tmp_path / "o", AnimationOptions(best_frame=3), progress=False)
    frames = [np.asarray(Image.open(p)).astype(int) for p in sorted(out.output.iterdir())]
    assert out.reference_frame == 3
    assert max(np.abs(f - frames[0]).max() for f in frames) <= 2


def test_best_frame_and_absolute_and_adapt_scale_options(
    tmp_path, source_image, driving_video, tiny_checkpoint, capsys
):
    for extra in (["--best-frame", 7], ["--find-best-frame", "--adapt-scale"], ["--absolute"]):
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        assert run_cli("animate", source_image, driving_video, "-o", out, "--checkpoint", tiny_checkpoint, *extra) == 0
        assert len(list(out.iterdir())) == 16
    err = capsys.readouterr().err
    assert "reference frame 7" in err
    assert "centre-cropped" in err  # the 72x64 source and 80x64 driving are not square


def test_official_checkpoint_with_config_and_align_corners_option(
    tmp_path, source_image, driving_video, tiny_model, tiny_config_path
):
    ref = save_official(tmp_path / "m.pth.tar", tiny_model)
    outs = {}
    for flag in ("true", "false"):
        out = tmp_path / f"o-{flag}"
        assert (
            run_cli(
                "animate",
                source_image,
                driving_video,
                "-o",
                out,
                "--checkpoint",
                ref,
                "--config",
                tiny_config_path,
                "--align-corners",
                flag,
                "-q",
            )
            == 0
        )
        outs[flag] = np.asarray(Image.open(out / "000005.png")).astype(int)
    assert np.abs(outs["true"] - outs["false"]).max() > 0


def test_convert_and_init_checkpoint_commands(tmp_path, tiny_model, tiny_config_path):
    ref = save_official(tmp_path / "m.pth.tar", tiny_model)
    assert run_cli("convert", ref, "--config", tiny_config_path, "-o", tmp_path / "m.safetensors") == 0
    assert run_cli("init-checkpoint", "--config", tiny_config_path, "-o", tmp_path / "r.safetensors") == 0
    assert (tmp_path / "m.safetensors").is_file() and (tmp_path / "r.safetensors").is_file()


def test_model_info_prints_reference_counts(capsys):
    assert run_cli("model-info", "vox-256") == 0
    out = capsys.readouterr().out
    assert "14,215,368" in out and "45,575,391" in out and "37,730,268" in out and "2,758,849" in out
    # MACs at 256x256: the figures of the motion transformer paper's Table 1 for FOMM.
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["kp_detector"][2] == "1.28" and rows["generator"][2] == "53.64"


def test_model_info_of_the_motion_transformer(capsys):
    assert run_cli("model-info", "motrans/vox-256") == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    # Table 1: 12.23 M parameters; 7.54 GMACs (conv + linear 7.49 here, plus 0.35 in the
    # attention products that common counters leave out).
    assert rows["kp_detector"][1] == "12,234,310" and rows["kp_detector"][2] == "7.84"
    assert rows["generator"][1] == "45,575,391"


def expect_error(capsys, *args, contains):
    code = run_cli(*args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("reanimate: error: ")
    for text in contains:
        assert str(text) in err, err
    return err


def test_error_cases_are_one_line_and_leave_no_output(
    tmp_path, source_image, driving_video, tiny_checkpoint, tiny_model, capsys
):
    out = tmp_path / "out.mp4"
    base = ["--checkpoint", tiny_checkpoint, "-q"]
    expect_error(capsys, "animate", tmp_path / "nope.png", driving_video, "-o", out, *base, contains=["nope.png"])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    expect_error(capsys, "animate", corrupt, driving_video, "-o", out, *base, contains=["corrupt.png"])
    expect_error(capsys, "animate", source_image, tmp_path / "nope.mp4", "-o", out, *base, contains=["nope.mp4"])
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"this is not a video at all" * 100)
    expect_error(capsys, "animate", source_image, bad_video, "-o", out, *base, contains=["bad.mp4"])
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(capsys, "animate", source_image, empty, "-o", out, *base, contains=["empty"])
    expect_error(
        capsys,
        "animate",
        source_image,
        driving_video,
        "-o",
        tmp_path / "missing" / "o.mp4",
        *base,
        contains=["missing", "does not exist"],
    )
    expect_error(capsys, "animate", source_image, driving_video, "-o", out, *base, "--best-frame", 99, contains=["99"])
    # A checkpoint whose shapes do not match the config it is loaded with.
    vox = tmp_path / "vox.pth.tar"
    save_official(vox, tiny_model)
    expect_error(
        capsys,
        "animate",
        source_image,
        driving_video,
        "-o",
        out,
        "--checkpoint",
        vox,
        "--config",
        "vox-256",
        "-q",
        contains=["vox.pth.tar", "kp_detector.", "in the checkpoint but"],
    )
    expect_error(
        capsys,
        "animate",
        source_image,
        driving_video,
        "-o",
        out,
        "--checkpoint",
        tmp_path / "x.pth.tar",
        "--config",
        "vox-256",
        contains=["x.pth.tar"],
    )
    expect_error(
        capsys, "animate", source_image, driving_video, "-o", out, *base, "--device", "cuda", contains=["cuda"]
    ) if not torch.cuda.is_available() else None
    expect_error(capsys, "animate", source_image, driving_video, "-o", tmp_path / "o.xyz", *base, contains=["o.xyz"])
    expect_error(
        capsys,
        "convert",
        vox,
        "--config",
        "no-such-config",
        "-o",
        tmp_path / "c.safetensors",
        contains=["no-such-config"],
    )
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["bad.mp4", "corrupt.png", "empty", "vox.pth.tar"], leftovers


def test_truncated_driving_video_leaves_no_output(tmp_path, source_image, tiny_checkpoint, capsys):
    video = make_video(tmp_path / "v.mp4", num_frames=40, size=(64, 64))
    data = video.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    code = run_cli(
        "animate", source_image, truncated, "-o", tmp_path / "out.mp4", "--checkpoint", tiny_checkpoint, "-q"
    )
    err = capsys.readouterr().err
    if code == 0:  # some decoders recover the frames before the cut; then the output must be complete
        assert (tmp_path / "out.mp4").is_file()
    else:
        assert "truncated.mp4" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_console_script_runs(tmp_path, source_image, driving_video, tiny_checkpoint):
    out = tmp_path / "o.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reanimate",
            "animate",
            str(source_image),
            str(driving_video),
            "-o",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reanimate",
            "animate",
            "x.png",
            str(driving_video),
            "-o",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "x.png" in proc.stderr


def test_mixed_precision_path_matches_float32(tmp_path, source_image, driving_video, tiny_checkpoint):
    """The autocast path (float16 on CUDA) keeps geometry in float32; checked here with
    bfloat16 autocast, which runs on the CPU."""
    from reanimate import checkpoint

    model = checkpoint.load(tiny_checkpoint)
    full = AnimationPipeline(FommAnimator(model, device="cpu")).animate(
        source_image, driving_video, tmp_path / "a", progress=False
    )
    half = AnimationPipeline(FommAnimator(model, device="cpu", autocast_dtype=torch.bfloat16)).animate(
        source_image, driving_video, tmp_path / "b", progress=False
    )
    a = np.stack([np.asarray(Image.open(p)) for p in sorted(full.output.iterdir())]).astype(float)
    b = np.stack([np.asarray(Image.open(p)) for p in sorted(half.output.iterdir())]).astype(float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 3.0
    with pytest.raises(Exception, match="CUDA"):
        FommAnimator(model, device="cpu", fp16=True)


def test_found_best_frame_animates_like_giving_that_frame(tmp_path, source_image, driving_video, tiny_checkpoint):
    found = animate(
        source_image,
        driving_video,
        tmp_path / "found",
        checkpoint=tiny_checkpoint,
        find_best_frame=True,
        progress=False,
    )
    given = animate(
        source_image,
        driving_video,
        tmp_path / "given",
        checkpoint=tiny_checkpoint,
        best_frame=found.reference_frame,
        progress=False,
    )
    for name in sorted(p.name for p in found.output.iterdir()):
        x = np.asarray(Image.open(found.output / name)).astype(int)
        y = np.asarray(Image.open(given.output / name)).astype(int)
        assert np.abs(x - y).max() <= 1  # batch composition may differ in the last float bit


@pytest.mark.parametrize("user_threads", [None, "2"])
def test_animate_runs_the_default_animator_on_one_torch_thread(monkeypatch, capsys, tmp_path, user_threads):
    """The landmark animator asks for one torch thread on the CPU (Requirements.cpu_threads):
    `animate` sets it for the run and gives the caller's back; a user's OMP_NUM_THREADS wins."""
    from reanimate.errors import ReanimateError

    if user_threads is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", user_threads)
    seen = []

    def record(self, *args, **kwargs):
        seen.append((torch.get_num_threads(), self.requirements.cpu_threads))
        raise ReanimateError("stopped by the test")

    monkeypatch.setattr(AnimationPipeline, "animate", record)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["animate", "a.png", "b.mp4", "-o", str(tmp_path / "o.mp4")]) == 2
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(before)
    assert "stopped by the test" in capsys.readouterr().err
    assert seen == [(1 if user_threads is None else 2, 1)]
