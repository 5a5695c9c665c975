"""A video as the source (video-to-video, dubbing): reanimate.pipelines.video_source."""

from pathlib import Path

import numpy as np
import pytest

from reanimate.cli import main
from reanimate.io import open_frames, open_writer, read_image, write_image
from reanimate.pipelines import animate
from reanimate.pipelines.video_source import paired_by_time

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def frames_of(path) -> np.ndarray:
    with open_frames(path) as reader:
        return np.stack(list(reader))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The bundled portrait as a still 12-frame source video, and 8 frames of the bundled
    driving clip (every 10th, so that the expression changes)."""
    folder = tmp_path_factory.mktemp("v2v")
    still = read_image(EXAMPLES / "source.png")
    with open_writer(folder / "source.mp4", 25, crf=0) as writer:
        for _ in range(12):
            writer.write(still[None])
    with open_frames(EXAMPLES / "driving.mp4") as reader, open_writer(folder / "driver.mp4", 25) as writer:
        for i, frame in enumerate(reader):
            if i % 10 == 0:
                writer.write(frame[None])
            if i == 70:
                break
    return folder


def test_frames_are_paired_by_time():
    # a 30 fps source under a 25 fps driver: every sixth source frame is skipped
    assert list(paired_by_time(range(12), 30, 25)) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    # a 25 fps source under a 50 fps driver: each source frame twice; ends with the source
    assert list(paired_by_time(range(3), 25, 50)) == [0, 0, 1, 1, 2, 2]
    assert list(paired_by_time(range(4), 25, 25)) == [0, 1, 2, 3]
    assert list(paired_by_time([], 25, 25)) == []


def test_a_still_source_video_animates_like_the_still_with_its_head_kept(media):
    """Every frame of a still video is the same portrait, so each output frame is what
    animating the still with --head 0 gives (its own head, the driver's expression)."""
    video = animate(media / "source.mp4", media / "driver.mp4", media / "v2v", progress=False)
    write_image(media / "still.png", frames_of(media / "source.mp4")[0])  # the frames as decoded
    expected = animate(media / "still.png", media / "driver.mp4", media / "ref", head=0.0, progress=False)
    assert video.frames == expected.frames == 8  # the driver's 8 frames (the source has 12)
    got, want = frames_of(media / "v2v").astype(int), frames_of(media / "ref").astype(int)
    assert np.abs(got - want).max() <= 1
    # and the expression did change: the frames differ from the source
    assert np.abs(got - got[0]).max() > 40


def test_the_output_ends_with_a_shorter_source_and_says_so(tmp_path, media, capsys):
    with open_frames(media / "source.mp4") as reader, open_writer(tmp_path / "short.mp4", 25) as writer:
        for i, frame in enumerate(reader):
            if i == 5:
                break
            writer.write(frame[None])
    assert main(["animate", str(tmp_path / "short.mp4"), str(media / "driver.mp4"), "-o", str(tmp_path / "o.mp4")]) == 0
    assert len(frames_of(tmp_path / "o.mp4")) == 5
    assert "short.mp4: ends after 5 of the driver's frames" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--head", "0.5"], "--head and --lips-only: a video source keeps its own head motion"),
        (["--faces", "all"], "--faces all: a video source animates one face"),
        (["--crop", "none"], "a video source is animated in the crop of its face"),
    ],
)
def test_what_a_video_source_cannot_do_is_one_line(tmp_path, media, capsys, extra, message):
    out = tmp_path / "o.mp4"
    assert main(["animate", str(media / "source.mp4"), str(media / "driver.mp4"), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_still_driver_or_a_model_without_head_control_is_refused(tmp_path, media, capsys, tiny_checkpoint):
    out = tmp_path / "o.mp4"
    assert main(["animate", str(media / "source.mp4"), str(EXAMPLES / "source.png"), "-o", str(out)]) == 2
    assert "a video source needs a driving video" in capsys.readouterr().err
    args = ["animate", str(media / "source.mp4"), str(media / "driver.mp4"), "-o", str(out)]
    assert main([*args, "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "model cannot tell from the expression; use the default animator or mmfa" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_each_source_frame_keeps_its_own_head_motion(tmp_path):
    """The portrait moving 4 px a frame under a driver that does not move: each output
    frame is its own source frame (the driver adds no expression), not the first one."""
    still = read_image(EXAMPLES / "source.png")
    with open_frames(EXAMPLES / "driving.mp4") as reader:
        first = next(iter(reader))
    moving = [np.roll(still, 4 * i, axis=1) for i in range(6)]
    with open_writer(tmp_path / "moving.mp4", 25, crf=0) as writer:
        for frame in moving:
            writer.write(frame[None])
    with open_writer(tmp_path / "still_driver.mp4", 25, crf=0) as writer:
        for _ in range(6):
            writer.write(first[None])
    animate(tmp_path / "moving.mp4", tmp_path / "still_driver.mp4", tmp_path / "out", progress=False)
    got = frames_of(tmp_path / "out").astype(int)
    source = frames_of(tmp_path / "moving.mp4").astype(int)
    errors = [np.abs(got[i] - source[i]).mean() for i in range(6)]
    assert max(errors) < 1.5, errors
    assert np.abs(got[5] - source[0]).mean() > 3 * max(errors)  # it did move
