"""``reanimate ui`` in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright against a server started as a user would, one server and one browser for the
module. The camera is Chromium's fake device playing a clip made from the bundled driver.

Skipped (with the reason) without Playwright, Gradio or Chromium, unless
``REANIMATE_BROWSER_TESTS=require`` (CI) turns that into a failure. ``REANIMATE_CHROMIUM``
names another Chromium binary.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from media import make_video
from PIL import Image
from test_ui import cli_error, walk_files

from reanimate.io import open_frames
from reanimate.ui import jobs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHROMIUM = os.environ.get("REANIMATE_CHROMIUM") or shutil.which("chromium") or "chromium"
REQUIRED = os.environ.get("REANIMATE_BROWSER_TESTS") == "require"
#: keep Chromium off the network (a closed network otherwise stalls it) and give it a fake camera
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
UPLOAD_MB = 3
CHECKPOINT_MB = 5
CAMERA_FRAMES = 40


def missing() -> str | None:
    for module in ("playwright", "gradio"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium ({CHROMIUM}): apt-get install chromium, or set REANIMATE_CHROMIUM"
    return None


@pytest.fixture(scope="module")
def requirements():
    reason = missing()
    if reason and REQUIRED:
        pytest.fail(f"REANIMATE_BROWSER_TESTS=require: {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """``frames`` ``(H, W, 3)`` uint8 RGB (even sides) as a YUV4MPEG2 file, 4:2:0 (what
    Chromium's fake camera plays, in a loop)."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            ycc = np.asarray(Image.fromarray(frame).convert("YCbCr"), dtype=np.float32)
            out.write(b"FRAME\n" + ycc[..., 0].round().astype(np.uint8).tobytes())
            for channel in (1, 2):  # chroma averaged over 2x2 blocks
                half = ycc[..., channel].reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
                out.write(half.round().astype(np.uint8).tobytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``reanimate ui`` process whose temporary files go to ``temp``, with ``options``."""

    def __init__(self, temp: Path, log: Path, options=()):
        self.temp, self.log = temp, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ, TMPDIR=str(temp), OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
        command = [sys.executable, "-m", "reanimate", "ui", "--port", str(self.port)]
        command += ["--max-upload-mb", str(UPLOAD_MB), "--max-checkpoint-mb", str(CHECKPOINT_MB)]
        command += ["--max-seconds", "10", *map(str, options)]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"reanimate ui did not start:\n{log.read_text()}") from None
                time.sleep(0.3)
        (self.root,) = temp.glob("reanimate-ui-*")

    def leftovers(self) -> list[str]:
        """Files of the server's folder that are not the examples (uploads, results). The
        server removes files while this looks: what vanishes meanwhile is not left over."""
        found = []
        for folder, _, names in os.walk(self.root):  # os.walk skips folders that vanish
            if Path(folder).name == "examples":
                continue
            for name in names:
                try:
                    if (Path(folder) / name).stat().st_size > 0:
                        found.append(str((Path(folder) / name).relative_to(self.root)))
                except FileNotFoundError:
                    pass
        return sorted(found)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """A tiny MMFA checkpoint, two expression images and a VAE (``test_ui.walk_files``)."""
    return walk_files(tmp_path_factory.mktemp("walk"), EXAMPLES / "driving.mp4")


@pytest.fixture(scope="module")
def server(requirements, tmp_path_factory, walk):
    temp = tmp_path_factory.mktemp("ui-temp")
    mmfa, _, _, vae = walk
    options = ["--checkpoint", mmfa, "--vae", vae, "--device", "cpu"]
    running = Server(temp, tmp_path_factory.mktemp("ui-log") / "server.log", options)
    yield running
    running.stop()
    assert list(temp.iterdir()) == [], "the server's folder outlived it"


@pytest.fixture(scope="module")
def browser(requirements, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with open_frames(EXAMPLES / "driving.mp4") as reader:
        frames = [frame for _, frame in zip(range(CAMERA_FRAMES), reader)]
    clip = write_y4m(tmp_path_factory.mktemp("camera") / "clip.y4m", frames)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={clip}"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(server, browser):
    """A fresh browser session on the app; when the test is done, the tab is closed and
    the session's files must go (its folder, its uploads)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.goto(server.url)
    tab.wait_for_selector("#animate-run")
    yield tab
    context.close()
    deadline = time.monotonic() + 20
    while server.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.leftovers() == []


def drop(page, elem_id: str, file) -> None:
    """Upload ``file`` (a path, or Playwright's name/mimeType/buffer) into a drop zone."""
    clear = page.locator(f"#{elem_id} button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator(f"#{elem_id} input[type=file]").set_input_files(file)


def screenshot(page, name: str) -> None:
    """The whole page as ``<name>.png`` in the folder ``REANIMATE_SCREENSHOTS`` names, if any."""
    if folder := os.environ.get("REANIMATE_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def status(page, tab: str) -> str:
    return page.locator(f"#{tab}-status textarea").input_value()


def wait_status(page, tab: str, start: str, timeout: float = 30) -> str:
    page.wait_for_function(
        "([id, start]) => document.querySelector(`#${id} textarea`).value.startsWith(start)",
        arg=[f"{tab}-status", start],
        timeout=timeout * 1000,
    )
    return status(page, tab)


def fetch(page, url: str) -> bytes:
    response = page.request.get(url)
    assert response.ok, url
    return response.body()


def picture(page, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(fetch(page, url))).convert("RGB")).astype(int)


def drag(page, elem_id: str, to: float) -> None:
    """Drag the slider ``elem_id`` from its middle to the fraction ``to`` of its track."""
    slider = page.locator(f"#{elem_id} input[type=range]")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * to, y, steps=4)
    page.mouse.up()  # the preview renders on release


def new_preview(page, before: str | None) -> str:
    """The Edit tab's preview once it is another picture than ``before`` (None: once there is one)."""
    page.wait_for_function(
        "src => { const img = document.querySelector('#edit-preview img'); return img !== null && img.src !== src; }",
        arg=before,
        timeout=30000,
    )
    return page.locator("#edit-preview img").get_attribute("src")


def test_animate_downloads_a_playable_video(page, tmp_path):
    drop(page, "animate-source", EXAMPLES / "source.png")
    drop(page, "animate-driving", EXAMPLES / "driving.mp4")
    page.wait_for_selector("#animate-driving-preview video")  # checked on upload
    page.click("#animate-run")
    page.get_by_text(re.compile(r"\d+/150 frame")).first.wait_for()  # the pipeline's progress, shown
    line = wait_status(page, "animate", "wrote", timeout=120)
    assert line.startswith("wrote source-animated-0.mp4 (150 frames")
    video = page.locator("#animate-result video")
    duration = video.evaluate(
        "v => new Promise(done => v.readyState >= 1 ? done(v.duration) : v.addEventListener('loadedmetadata', () => done(v.duration)))"
    )
    assert duration == pytest.approx(6.0, abs=0.1)  # the browser reads it: 150 frames at 25 frames/s
    saved = tmp_path / "result.mp4"
    saved.write_bytes(fetch(page, video.get_attribute("src")))
    with open_frames(saved) as reader:
        frames = list(reader)
        assert reader.fps == pytest.approx(25)
    assert len(frames) == 150 and frames[0].shape == (600, 512, 3)
    screenshot(page, "animate")


def test_edit_preview_follows_the_slider(page):
    page.get_by_role("tab", name="Edit").click()
    drop(page, "edit-source", EXAMPLES / "source.png")
    preview = page.locator("#edit-preview img")
    preview.wait_for()
    before = preview.get_attribute("src")
    still = picture(page, before)  # (the server removes a preview once the next one is made)
    drag(page, "edit-yaw", 0.6)
    new_preview(page, before)
    yaw = float(page.locator("#edit-yaw input[type=number]").input_value())
    assert 0 < yaw <= 15
    change = np.abs(picture(page, preview.get_attribute("src")) - still).mean()
    assert change > 0.3, change
    screenshot(page, "edit")


def test_edit_walks_between_two_expressions(page, walk):
    mmfa, a, b, _ = walk
    page.get_by_role("tab", name="Edit").click()
    assert not page.locator("#edit-walk-t").is_visible()  # the default animator has no expression latent
    page.locator("#edit-model input").click()
    page.get_by_role("option", name=mmfa.name).click()
    page.locator("#edit-walk-t").wait_for(state="visible")
    drop(page, "edit-source", EXAMPLES / "source.png")
    still = new_preview(page, None)
    first = picture(page, still)  # the portrait's own expression: A's (A is the portrait)
    drop(page, "edit-walk-a", a)
    drop(page, "edit-walk-b", b)
    new_preview(page, still)  # the walk at t = 0 (both images are in)
    drag(page, "edit-walk-t", 1.2)
    assert float(page.locator("#edit-walk-t input[type=number]").input_value()) == 1
    deadline = time.monotonic() + 30  # (a late preview of t = 0 may come first)
    while True:
        response = page.request.get(page.locator("#edit-preview img").get_attribute("src"))
        if response.ok and np.mean(np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB")) != first) > 0.01:
            break
        assert time.monotonic() < deadline, "the preview did not walk to B's expression"
        page.wait_for_timeout(200)
    assert status(page, "edit") == ""
    screenshot(page, "edit-walk")


#: the Live tab's animated frame, drawn at SAMPLE x SAMPLE: its pixels, size and the page's frame count
SAMPLE = 96
SAMPLE_JS = f"""img => {{
  if (!img.complete || !img.naturalWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = {SAMPLE};
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0, {SAMPLE}, {SAMPLE});
  return {{count: Number(img.dataset.frames || 0), size: [img.naturalHeight, img.naturalWidth],
          pixels: Array.from(context.getImageData(0, 0, {SAMPLE}, {SAMPLE}).data)}};
}}"""
FIGURES = re.compile(r"^(\d+\.\d) frames/s, round trip (\d+) ms \(server (\d+) ms; medians of (\d+)\)$")


def test_live_animates_the_camera(page):
    page.get_by_role("tab", name="Live").click()
    drop(page, "live-source", EXAMPLES / "source.png")
    in_flight, most = set(), [0]  # frames posted and not answered yet: never more than one

    def sent(request):
        if request.url.endswith("/reanimate/live"):
            in_flight.add(request)
            most[0] = max(most[0], len(in_flight))

    def answered(request):
        in_flight.discard(request)

    page.on("request", sent)
    page.on("requestfinished", answered)
    page.on("requestfailed", answered)
    page.click("#live-camera .live-start")
    animated = page.locator("#live-camera .live-animated")
    frames, counts = [], set()
    deadline = time.monotonic() + 60
    while len(frames) < 12 and time.monotonic() < deadline:
        sample = animated.evaluate(SAMPLE_JS)
        if sample and sample["count"] not in counts:
            counts.add(sample["count"])
            frames.append(sample)
        time.sleep(0.05)
    line = page.locator("#live-camera .live-figures").inner_text()
    assert len(frames) >= 12, f"{len(frames)} frames came back; the page says {line!r}"
    height, width = Image.open(EXAMPLES / "source.png").size[::-1]  # the portrait, 384 on its longer side
    assert {tuple(f["size"]) for f in frames} == {(384, round(width * 384 / height))}
    pixels = [np.asarray(f["pixels"], dtype=int) for f in frames]
    assert max(np.abs(pixels[0] - p).mean() for p in pixels[1:]) > 0.2  # it moves
    figures = FIGURES.match(line)
    assert figures, line
    rate, trip, server, count = float(figures[1]), int(figures[2]), int(figures[3]), int(figures[4])
    assert rate > 0 and trip > 0 and trip >= server and count >= 2
    assert most[0] == 1  # one frame at a time: the next only once the last came back
    screenshot(page, "live")
    page.click("#live-camera .live-stop")
    print(f"live: {line}")


def test_animate_with_an_uploaded_checkpoint(page, tiny_checkpoint, source_image, driving_video):
    """The Animate tab's checkpoint upload: the model switches to it, and it animates."""
    page.get_by_role("button", name="Options").click()
    drop(page, "animate-checkpoint", tiny_checkpoint)
    page.wait_for_function("value => document.querySelector('#animate-model input').value === value", arg=jobs.UPLOADED)
    drop(page, "animate-source", source_image)
    drop(page, "animate-driving", driving_video)
    page.wait_for_selector("#animate-driving-preview video")
    page.click("#animate-run")
    assert (
        wait_status(page, "animate", "note", timeout=60)
        .splitlines()[-1]
        .startswith("wrote source-animated-0.mp4 (16 frames")
    )
    screenshot(page, "animate-checkpoint")


def test_bad_inputs_show_the_clis_line(page, server, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a picture")
    make_video(tmp_path / "noface.mp4", num_frames=10, size=(96, 96))
    (tmp_path / "source.png").write_bytes((EXAMPLES / "source.png").read_bytes())

    drop(page, "animate-source", tmp_path / "notes.txt")
    expected = cli_error(capsys, tmp_path, "animate", "notes.txt", "noface.mp4", "-o", "out.mp4")
    assert wait_status(page, "animate", "error") == f"error: {expected}"

    drop(page, "animate-source", {"name": "../../passwd", "mimeType": "text/plain", "buffer": b"root:x:0:0\n"})
    (tmp_path / "passwd").write_bytes(b"root:x:0:0\n")
    expected = cli_error(capsys, tmp_path, "animate", "passwd", "noface.mp4", "-o", "out.mp4")
    page.wait_for_function("() => document.querySelector('#animate-status textarea').value.includes('passwd')")
    assert status(page, "animate") == f"error: {expected}"  # by its name alone

    drop(page, "animate-source", tmp_path / "source.png")
    drop(page, "animate-driving", tmp_path / "noface.mp4")
    page.wait_for_selector("#animate-source-preview img")
    page.click("#animate-run")
    expected = cli_error(capsys, tmp_path, "animate", "source.png", "noface.mp4", "-o", "out.mp4")
    assert wait_status(page, "animate", "error", timeout=60) == f"error: {expected}"
    screenshot(page, "errors")

    # media over --max-upload-mb reach the server (Gradio's one limit is the larger, for
    # checkpoints) and are refused there; over both, Gradio refuses them in the page
    (tmp_path / "big.png").write_bytes(b"\0" * (UPLOAD_MB * 2**20 + 1))
    drop(page, "animate-driving", tmp_path / "big.png")
    assert wait_status(page, "animate", "error: big") == (
        f"error: big.png: 3.0 MB, over this server's upload limit of {UPLOAD_MB} MB (reanimate ui --max-upload-mb)"
    )
    (tmp_path / "huge.png").write_bytes(b"\0" * (CHECKPOINT_MB * 2**20 + 1))
    drop(page, "animate-driving", tmp_path / "huge.png")
    toast = page.get_by_text("exceed the maximum allowed size")
    toast.wait_for()
    assert "huge.png" in toast.inner_text()
    page.wait_for_timeout(400)  # (the toast slides in)
    screenshot(page, "upload-limit")
    # nothing reached the server's folder but this page's own uploads, none outside it
    assert all(not name.endswith("huge.png") for name in server.leftovers())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "big.png",
        "huge.png",
        "noface.mp4",
        "notes.txt",
        "passwd",
        "source.png",
    ]
    assert not any(server.temp.glob("passwd")) and not any(server.root.parent.parent.glob("passwd"))
