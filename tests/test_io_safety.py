"""User-data safety of reanimate.io (issue 17): outputs that would clobber folders are
refused, every failure to write is a one-line error that leaves no temporary behind,
frame folders of mixed sizes are read, and huge photos are read and searched for faces."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from media import make_frames_folder, synthetic_frames
from PIL import Image

from reanimate.errors import InputError, OutputError
from reanimate.io import open_frames, open_writer, read_image

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc and rlimits")


def leftovers(folder: Path) -> list[str]:
    """Temporaries of atomic writes (``.NAME.partial-*``, ``.NAME.old-*``) in ``folder``."""
    return [name for name in os.listdir(folder) if ".partial-" in name or ".old-" in name]


def assert_one_line(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(excinfo.value)
    assert str(path) in message and "\n" not in message, message
    for word in words:
        assert word in message.lower(), message


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------------------
# Outputs in the way
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.mp4", "clip.GIF", "result.webm"])
def test_video_onto_an_existing_folder_is_refused(tmp_path, name):
    target = make_frames_folder(tmp_path / name, num_frames=2, size=(8, 8))
    before = snapshot(target)
    with pytest.raises(OutputError) as excinfo:
        open_writer(target, fps=25)
    assert_one_line(excinfo, target, "existing folder")
    assert isinstance(excinfo.value, InputError)  # what callers caught before
    assert snapshot(target) == before and leftovers(tmp_path) == []


def test_non_empty_frame_folder_needs_overwrite(tmp_path):
    folder = make_frames_folder(tmp_path / "frames", num_frames=3, size=(8, 8))
    (folder / "notes.txt").write_text("mine")
    before = snapshot(folder)
    with pytest.raises(OutputError) as excinfo:
        open_writer(folder, fps=25)
    assert_one_line(excinfo, folder, "not empty", "overwrite")
    assert snapshot(folder) == before

    # A failure while replacing keeps the old folder.
    with pytest.raises(RuntimeError):
        with open_writer(folder, fps=25, overwrite=True) as writer:
            writer.write(synthetic_frames(2, (8, 8)))
            raise RuntimeError("interrupted")
    assert snapshot(folder) == before and leftovers(tmp_path) == []

    with open_writer(folder, fps=25, overwrite=True) as writer:
        writer.write(synthetic_frames(2, (8, 8)))
    assert sorted(os.listdir(folder)) == ["000000.png", "000001.png"]
    assert leftovers(tmp_path) == []


def test_empty_folder_and_existing_file_are_replaced_without_asking(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with open_writer(empty, fps=25) as writer:
        writer.write(synthetic_frames(1, (8, 8)))
    assert os.listdir(empty) == ["000000.png"]

    video = tmp_path / "out.mp4"
    video.write_bytes(b"an older result")
    with open_writer(video, fps=25) as writer:
        writer.write(synthetic_frames(3, (16, 16)))
    assert open_frames(video).frame_count == 3
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------
# Failures to write
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.mp4", "frames"])
def test_missing_output_folder(tmp_path, name):
    target = tmp_path / "nowhere" / name
    with pytest.raises(OutputError) as excinfo:
        open_writer(target, fps=25)
    assert_one_line(excinfo, target, "does not exist")
    assert os.listdir(tmp_path) == []


@linux_only
@pytest.mark.parametrize("name", ["x.mp4", "frames"])
def test_output_in_proc_is_a_user_error(name):
    target = Path("/proc") / name
    with pytest.raises(OutputError) as excinfo:
        open_writer(target, fps=25)
    assert_one_line(excinfo, target, "cannot create")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("name", ["out.mp4", "frames"])
def test_read_only_output_folder(tmp_path, name):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError) as excinfo:
            open_writer(folder / name, fps=25)
        assert_one_line(excinfo, folder / name, "permission denied")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


@contextlib.contextmanager
def file_size_limit(size: int):
    """Files of this process cannot grow past ``size`` bytes inside the block (EFBIG, as a
    full disk gives ENOSPC). Restored at the block's end, inside the test: pytest writes
    its report (to a terminal or a file that may be larger) before fixture teardown."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills us
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@linux_only
@pytest.mark.parametrize(
    "name, frames, size, limit, failing",
    [
        ("out.mp4", 3, 64, 1000, "close"),  # x264 holds the frames until the flush in close()
        ("out.mp4", 80, 128, 20000, "write"),
        ("out.gif", 3, 64, 1000, "close"),
        ("frames", 3, 64, 4000, "write"),  # one noise PNG is ~12 kB
    ],
)
def test_disk_full_is_a_user_error_and_leaves_nothing(tmp_path, name, frames, size, limit, failing):
    noise = np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    target = tmp_path / name
    writer = open_writer(target, fps=25)
    step = "write"
    with file_size_limit(limit), pytest.raises(OutputError) as excinfo:
        for frame in noise:
            writer.write(frame)
        step = "close"
        writer.close()
    assert step == failing
    assert_one_line(excinfo, target, "writing failed", "nothing was saved")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------
# Reading: mixed frame sizes, huge images
# --------------------------------------------------------------------------------------


def test_frames_of_other_sizes_are_resized_to_the_first_with_one_warning(tmp_path, caplog):
    folder = make_frames_folder(tmp_path / "mixed", num_frames=3, size=(16, 12))
    Image.new("RGB", (32, 24), (200, 30, 60)).save(folder / "000003.png")  # shrunk
    Image.new("RGB", (8, 6), (10, 220, 90)).save(folder / "000004.png")  # enlarged
    with caplog.at_level(logging.WARNING, logger="reanimate.io"):
        reader = open_frames(folder)
        frames = np.stack(list(reader))
        again = np.stack(list(reader))
        single = reader.read_frame(4)
    assert frames.shape == (5, 12, 16, 3) and reader.size == (16, 12)
    np.testing.assert_array_equal(frames[:3], synthetic_frames(3, (16, 12)))
    assert (frames[3] == (200, 30, 60)).all() and (frames[4] == (10, 220, 90)).all()
    np.testing.assert_array_equal(again, frames)
    np.testing.assert_array_equal(single, frames[4])
    assert reader.resized == 5  # counted over both passes and read_frame
    warnings_logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1 and str(folder) in warnings_logged[0]


def test_big_photo_reads_without_decompression_bomb_warning(tmp_path, capfd):
    path = tmp_path / "big.png"
    # 12000 x 7500 = 90 Mpx: above Pillow's warning threshold (89.5 Mpx).
    Image.new("L", (12000, 7500), 200).save(path, compress_level=1)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(path)
    assert image.shape == (7500, 12000, 3) and image[0, 0].tolist() == [200, 200, 200]
    assert [w.category.__name__ for w in caught] == []
    assert capfd.readouterr().err == ""


def test_image_over_pillows_error_limit_is_read_and_limit_restored(tmp_path, monkeypatch):
    # Pillow refuses more than twice its MAX_IMAGE_PIXELS; shrink that instead of
    # writing a 180 Mpx file.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_image(path)
    assert image.shape == (30, 40, 3) and Image.MAX_IMAGE_PIXELS == 100


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` RGB and whose data is missing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_absurd_image_size_is_a_one_line_input_error(tmp_path):
    path = tmp_path / "absurd.png"
    path.write_bytes(png_header(40000, 30000))  # 1.2e9 pixels
    with pytest.raises(InputError) as excinfo:
        read_image(path)
    assert_one_line(excinfo, path, "pixels", "downscale")


@pytest.fixture(scope="module")
def mesh():
    pytest.importorskip("mediapipe", reason="face landmarks need mediapipe")
    from reanimate.faces import FaceMesh

    with FaceMesh(max_faces=1) as detector:
        yield detector


def test_face_in_a_huge_photo_is_found_in_its_pixels(mesh):
    cv2 = pytest.importorskip("cv2")
    matplotlib = pytest.importorskip("matplotlib")
    portrait = read_image(Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    factor = 10  # 512 x 600 -> 5120 x 6000, above the 2048 px detection size
    height, width = portrait.shape[:2]
    huge = cv2.resize(portrait, (width * factor, height * factor), interpolation=cv2.INTER_LINEAR)
    [small_face] = mesh.detect(portrait)
    [huge_face] = mesh.detect(huge)
    face_size = small_face.box[2] - small_face.box[0]
    np.testing.assert_allclose(huge_face.box / factor, small_face.box, atol=0.05 * face_size)
    error = np.abs(huge_face.landmarks / factor - small_face.landmarks).mean(axis=0)
    assert (error < 0.03 * face_size).all(), error  # x, y and z in the huge photo's pixels
