"""``reanimate live`` and the live session under it, on the bundled example."""

import importlib.util
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mediapipe")

from conftest import example_clip  # noqa: E402
from media import make_image, synthetic_frames  # noqa: E402

from reanimate.animators.registry import build_animator  # noqa: E402
from reanimate.cli import main  # noqa: E402
from reanimate.errors import InputError, ReanimateError  # noqa: E402
from reanimate.io import open_frames, read_image  # noqa: E402
from reanimate.io.camera import CameraInput, CaptureThread, LatestFrame, VideoInput  # noqa: E402
from reanimate.io.display import LiveOutput, Recording  # noqa: E402
from reanimate.pipelines.animate import AnimationOptions, AnimationPipeline  # noqa: E402
from reanimate.pipelines.live import LiveSession, LiveStats, default_threads, run_live, scaled_to  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: options that exercise smoothing and retargeting, as a user of ``animate`` would give them
OPTIONS = AnimationOptions(smooth="one-euro", head=0.5, lips=1.5, blinks="suppress")


@pytest.fixture(scope="module")
def pipeline():
    return AnimationPipeline(build_animator())


@pytest.fixture(scope="module")
def portrait():
    return read_image(EXAMPLES / "source.png")


@pytest.fixture(scope="module")
def driving(tmp_path_factory):
    """The first 24 frames of the bundled driving clip as a folder of PNGs (lossless:
    ``animate`` and the session see the same pixels), and the frames."""
    path = example_clip(tmp_path_factory.mktemp("live") / "driving", 24)
    with open_frames(path) as reader:
        return path, list(reader)


def run(session: LiveSession, frames) -> list[np.ndarray]:
    return [session.step(frame) for frame in frames]


def test_session_equals_animate(pipeline, portrait, driving, tmp_path):
    path, frames = driving
    pipeline.animate(EXAMPLES / "source.png", path, tmp_path / "out", OPTIONS, progress=False)
    with open_frames(tmp_path / "out") as reader:
        expected = list(reader)
    with LiveSession(pipeline, portrait, OPTIONS, size=None) as session:
        got = run(session, frames)
        assert session.face_found and session.output_shape == portrait.shape
    assert len(got) == len(expected) == 24
    for n, (a, b) in enumerate(zip(got, expected)):
        assert np.array_equal(a, b), f"frame {n}: max difference {np.abs(a.astype(int) - b).max()}"
    assert max(np.abs(a.astype(int) - portrait).max() for a in got) > 50  # it moved


def test_session_equals_animate_for_a_learned_model(tiny_checkpoint, source_image, driving_video, tmp_path):
    # a FOMM model on whole frames (no face, no crop): no landmarks, every frame used
    pipeline = AnimationPipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    options = AnimationOptions(crop="none", smooth="kalman")
    pipeline.animate(source_image, driving_video, tmp_path / "out", options, progress=False)
    with open_frames(tmp_path / "out") as reader:
        expected = list(reader)
    with open_frames(driving_video) as reader:
        frames = list(reader)
    with LiveSession(pipeline, read_image(source_image), options, size=None) as session:
        got = run(session, frames)
        assert session.face_found
    assert len(got) == len(expected) == 16
    for a, b in zip(got, expected):
        assert np.array_equal(a, b)


def test_output_size_and_reset(pipeline, portrait, driving):
    frames = driving[1][::3]
    with LiveSession(pipeline, portrait, OPTIONS, size=256) as session:
        assert session.output_shape == (256, 218, 3)  # 600x512 -> longer side 256
        run(session, frames[:4])
        session.reset()
        after_reset = run(session, frames[4:])
    with LiveSession(pipeline, portrait, OPTIONS, size=256) as fresh:
        from_start = run(fresh, frames[4:])
    assert all(f.shape == (256, 218, 3) for f in after_reset)
    # the first frame after the reset is the reference (its own motion: none) and the
    # smoothing starts afresh: as a new session given the same frames
    for a, b in zip(after_reset, from_start):
        assert np.array_equal(a, b)


def test_frames_without_a_face(pipeline, portrait, driving):
    frames = driving[1][::3]
    blank = np.zeros_like(frames[0])
    with LiveSession(pipeline, portrait, OPTIONS, size=None) as session:
        before = session.step(blank)
        assert not session.face_found
        assert np.array_equal(before, portrait)  # the source before any face
        first, second = run(session, frames[2:4])
        assert session.face_found
        held = session.step(blank)
        assert not session.face_found and np.array_equal(held, second)
        held[:] = 0  # the caller's copy: the session's next one is untouched
        assert np.array_equal(session.step(blank), second)
    with LiveSession(pipeline, portrait, OPTIONS, size=None) as fresh:
        # the blank frame did not become the reference: the first face frame did
        assert np.array_equal(run(fresh, frames[2:4])[1], second)


def test_source_without_a_face(pipeline):
    with pytest.raises(InputError, match=r"^portrait\.png: no face found \(the default animator needs a face"):
        LiveSession(pipeline, synthetic_frames(1, (96, 80))[0], source_name="portrait.png")


@pytest.mark.parametrize(
    "options, size, message",
    [
        (AnimationOptions(find_best_frame=True), 512, "--find-best-frame: a live session's reference"),
        (AnimationOptions(visualize=True), 512, "--visualize"),
        (AnimationOptions(), 0, "--size 0: expected a whole number of pixels"),
        (AnimationOptions(relative=False), 512, "drop --absolute"),
    ],
)
def test_refused_options(pipeline, portrait, options, size, message):
    with pytest.raises(ReanimateError, match=message):
        LiveSession(pipeline, portrait, options, size=size)


def test_scaled_to_keeps_the_aspect_ratio():
    image = np.zeros((600, 512, 3), np.uint8)
    assert scaled_to(image, 512).shape == (512, 437, 3)  # 512 * 512 / 600 = 436.9
    assert scaled_to(image, 1200).shape == (1200, 1024, 3)
    assert scaled_to(image, None) is image


# -- the latest-frame holder ------------------------------------------------------------


def test_latest_frame_keeps_the_newest_and_counts_the_dropped():
    holder = LatestFrame()
    holder.put(1)
    holder.put(2)  # 1 was never taken: dropped
    assert holder.take() == 2 and holder.dropped == 1
    assert holder.take(timeout=0) is None  # nothing new
    holder.put(3)
    assert holder.take() == 3 and holder.dropped == 1
    for n in (4, 5, 6):
        holder.put(n)
    holder.close()
    assert holder.take() == 6  # what is left after close, then nothing
    assert holder.take() is None and holder.take(timeout=None) is None
    assert (holder.put_count, holder.dropped) == (6, 3)


def test_latest_frame_between_threads():
    holder, taken = LatestFrame(), []

    def produce():
        for n in range(200):
            holder.put(n)
            time.sleep(0.0005)
        holder.close()

    producer = threading.Thread(target=produce)
    producer.start()
    while (item := holder.take()) is not None:
        taken.append(item)
        time.sleep(0.003)  # a slower consumer
    producer.join()
    assert taken == sorted(taken) and taken[-1] == 199  # in order, the last one always seen
    assert len(taken) + holder.dropped == holder.put_count == 200
    assert holder.dropped > 0


def test_wait_taken():
    holder = LatestFrame()
    assert holder.wait_taken(timeout=0)
    holder.put("a")
    assert not holder.wait_taken(timeout=0.01)
    threading.Timer(0.02, holder.take).start()
    assert holder.wait_taken(timeout=5)


# -- inputs and outputs ------------------------------------------------------------------


def test_video_input_plays_in_real_time_and_loops(tmp_path):
    from media import make_video

    clip = make_video(tmp_path / "clip.mp4", num_frames=4, fps=50)
    stop = threading.Event()
    played = []
    source = VideoInput(clip, loop=True)
    for frame, when in source.frames(stop):
        played.append((frame, when))
        if len(played) == 10:
            stop.set()
    source.close()
    times = np.array([when for _, when in played])
    assert np.allclose(np.diff(times), 1 / 50)  # each frame when it is due
    assert np.array_equal(played[0][0], played[4][0]) and np.array_equal(played[3][0], played[7][0])  # looped
    assert time.perf_counter() >= times[-1]  # none given before it was due


def test_recording_places_frames_on_the_capture_timeline(tmp_path):
    frames = synthetic_frames(4, (16, 16))
    # at 10 frames/s: slots 0, 1, then 4 (two dropped: the later frame fills them), then
    # slot 4 again (kept: the first)
    times = [5.0, 5.1, 5.42, 5.44]
    with Recording(tmp_path / "rec", 10) as recording:
        for frame, when in zip(frames, times):
            recording.show(frame, when)
    with open_frames(tmp_path / "rec") as reader:
        written = list(reader)
    expected = [frames[0], frames[1], frames[2], frames[2], frames[2]]
    assert len(written) == len(expected) and all(np.array_equal(a, b) for a, b in zip(written, expected))


def test_a_failed_or_empty_recording_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), Recording(tmp_path / "a.mp4", 25) as recording:
        recording.show(synthetic_frames(1, (16, 16))[0], 0.0)
        raise RuntimeError("failed")
    with Recording(tmp_path / "b.mp4", 25):
        pass
    assert list(tmp_path.iterdir()) == []


class _StopAfter(LiveOutput):
    """Raises ``error`` when shown frame ``count``, as Ctrl-C would arrive."""

    def __init__(self, count: int, error: type[BaseException]):
        self.count, self.error, self.shown = count, error, 0

    def show(self, frame, captured_at):
        self.shown += 1
        if self.shown == self.count:
            raise self.error()


class _Terminated(KeyboardInterrupt):
    """As the CLI's SIGTERM: a KeyboardInterrupt that is not Ctrl-C."""


@pytest.mark.parametrize("overlap", [False, True])
def test_ctrl_c_ends_a_run_cleanly_and_sigterm_unwinds(pipeline, portrait, tmp_path, overlap):
    clip = example_clip(tmp_path / "clip.mp4", 6)
    with LiveSession(pipeline, portrait, size=128) as session:
        with CaptureThread(VideoInput(clip)) as capture:
            stats = run_live(session, capture, [_StopAfter(3, KeyboardInterrupt)], overlap=overlap)
        assert stats.interrupted and stats.shown == 3 and len(stats.latencies) == 3
        session.reset()
        with CaptureThread(VideoInput(clip)) as capture, pytest.raises(_Terminated):
            run_live(session, capture, [_StopAfter(2, _Terminated)], overlap=overlap)


@pytest.mark.parametrize("overlap", [False, True])
def test_run_live_to_the_end_of_a_clip(pipeline, portrait, tmp_path, overlap):
    clip = example_clip(tmp_path / "clip.mp4", 8)
    with LiveSession(pipeline, portrait, size=128) as session:
        with CaptureThread(VideoInput(clip)) as capture:
            stats = run_live(session, capture, [], overlap=overlap)
    assert stats.shown + stats.dropped == 8 and not stats.interrupted
    assert stats.shown >= 1 and all(0 < t < 5 for t in stats.latencies)


# -- reanimate live ----------------------------------------------------------------------

SUMMARY = re.compile(
    r"^live: (\d+) frames shown, (\d+) dropped, [\d.]+ frames/s, latency median \d+ ms, 95th percentile \d+ ms"
)


def test_live_on_a_clip_as_the_camera(tmp_path, capsys):
    clip = example_clip(tmp_path / "clip.mp4", 25)
    out = tmp_path / "out.mp4"
    args = ["live", EXAMPLES / "source.png", "--video", clip, "--no-window", "--output", out, "--size", 256]
    threads = torch.get_num_threads()
    assert main([str(a) for a in args + ["--threads", 1]]) == 0
    assert torch.get_num_threads() == threads  # given back
    err = capsys.readouterr().err
    summary = [m for line in err.splitlines() if (m := SUMMARY.match(line))]
    assert len(summary) == 1, err
    shown, dropped = (int(v) for v in summary[0].groups())
    assert shown + dropped <= 25 and shown >= 1
    with open_frames(out) as reader:
        frames = list(reader)
        assert reader.fps == 25
    assert 1 <= len(frames) <= 25 and frames[0].shape[0] == 256  # 256 x 218 (+1: H.264's even width)
    assert f"wrote {out} ({len(frames)} frames)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]


@pytest.fixture
def faceless(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("faceless") / "faceless.png", size=(96, 80))


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("missing file", ["--video", "{work}/nope.mp4", "--no-window"], "{work}/nope.mp4: not found"),
        ("missing camera", ["--camera", "{work}/video9", "--no-window"], "{work}/video9: not found"),
        ("no such camera", ["--camera", "37", "--no-window"], "camera 37: cannot be opened"),
        ("no face", ["--video", "{clip}", "--no-window"], "{faceless}: no face found"),
        ("no display", ["--video", "{clip}"], "no display ($DISPLAY is not set): use --no-window"),
        ("loop a camera", ["--loop", "--no-window"], "--loop replays a --video file"),
        ("no threads", ["--video", "{clip}", "--threads", "0", "--no-window"], "--threads must be positive, got 0"),
        ("no pyvirtualcam", ["--video", "{clip}", "--virtual-camera", "--no-window"], "--virtual-camera needs"),
    ],
)
def test_live_errors_are_one_line_and_leave_nothing(case, args, message, tmp_path, faceless, capsys, monkeypatch):
    if case == "no pyvirtualcam" and importlib.util.find_spec("pyvirtualcam"):
        pytest.skip("pyvirtualcam is installed")
    if case == "no display" and not importlib.util.find_spec("tkinter"):
        pytest.skip("no tkinter: the window's error is that one")
    monkeypatch.delenv("DISPLAY", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    names = {"work": work, "faceless": faceless, "clip": example_clip(tmp_path / "clip.mp4", 3)}
    source = faceless if case == "no face" else EXAMPLES / "source.png"
    code = main(["live", str(source), *(a.format(**names) for a in args), "--output", str(work / "out.mp4")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"reanimate: error: {message.format(**names)}"), err
    assert list(work.iterdir()) == []  # no output, no temporary


def test_camera_input_reads_rgb_frames(tmp_path):
    # OpenCV opens a video file as it opens a device path: the camera's code path,
    # its colour order included, on frames whose content is known.
    clip = example_clip(tmp_path / "clip.mp4", 5)
    with open_frames(clip) as reader:
        expected = list(reader)
    camera = CameraInput(str(clip))
    got = [frame for frame, _ in camera.frames(threading.Event())]
    camera.close()
    assert len(got) == 5 and got[0].shape == expected[0].shape
    for a, b in zip(got, expected):  # two decoders' YUV to RGB conversions: a level or two apart
        assert np.abs(a.astype(int) - b).mean() < 2


def test_window_shows_frames_status_and_keys():
    tkinter = pytest.importorskip("tkinter")
    try:
        tkinter.Tk().destroy()
    except tkinter.TclError:
        pytest.skip("no display")
    from reanimate.io.display import Window

    pressed = []
    window = Window(on_key={"r": lambda: pressed.append("r")})
    frame = synthetic_frames(1, (40, 30))[0]
    window.show(frame, 0.0)
    assert (window._image.width(), window._image.height()) == (40, 30)
    assert window._image.get(5, 7) == tuple(int(v) for v in frame[7, 5])  # RGB as given
    window.status("25.0 frames/s, latency 40 ms")
    assert window._root.title() == "reanimate live: 25.0 frames/s, latency 40 ms"
    window._root.focus_force()  # key events go to the focused window
    window.poll()
    window._root.event_generate("<Key>", keysym="r", when="now")
    assert pressed == ["r"] and window.poll()
    window._root.event_generate("<Key>", keysym="q", when="now")
    assert not window.poll()  # q closed it


def test_default_threads_leave_half_the_cores():
    assert [default_threads(n) for n in (1, 2, 3, 8)] == [1, 1, 1, 4]


def test_ctrl_c_in_the_command_keeps_the_recording(tmp_path):
    clip = example_clip(tmp_path / "clip.mp4", 10)
    out = tmp_path / "out.mp4"
    command = [sys.executable, "-m", "reanimate", "live", str(EXAMPLES / "source.png"), "--video", str(clip)]
    command += ["--loop", "--no-window", "--output", str(out), "--seconds", "60", "--size", "128"]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        # a background process may inherit SIGINT ignored; a terminal's Ctrl-C is not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in process.stderr:  # the first status line: frames are being shown
        if line.startswith("live: ") and "frames/s, latency" in line:
            break
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 0, err
    assert any(SUMMARY.match(line) for line in err.splitlines()), err
    with open_frames(out) as reader:
        assert sum(1 for _ in reader) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]


def test_summary_line():
    stats = LiveStats(shown=3, dropped=2, no_face=1, seconds=0.1)
    stats.latencies.extend([0.020, 0.030, 0.100])
    assert stats.summary() == (
        "3 frames shown, 2 dropped, 20.0 frames/s, latency median 30 ms, 95th percentile 93 ms, 1 without a face"
    )
    assert LiveStats(dropped=4).summary() == "no frames shown, 4 dropped"
