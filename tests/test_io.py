"""Tests for reanimate.io: image reading/fitting, tensor conversion, video/folder I/O."""

from __future__ import annotations

import gc
import os
import struct
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import (
    make_audio_file,
    make_empty_video,
    make_frames_folder,
    make_image,
    make_video,
    synthetic_frames,
)
from PIL import Image

from reanimate.errors import InputError, ReanimateError
from reanimate.io import (
    FrameReader,
    FrameWriter,
    fit_to_shape,
    frames_to_tensor,
    is_image_path,
    is_video_path,
    natural_sort_key,
    open_frames,
    open_writer,
    read_image,
    tensor_to_frames,
)

H264_EXTS = [".mp4", ".mov", ".mkv", ".avi"]
VIDEO_EXTS = H264_EXTS + [".webm"]


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def assert_input_error(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    """The error is one line that names ``path`` and contains ``words``."""
    message = str(excinfo.value)
    assert str(path) in message
    assert "\n" not in message
    for word in words:
        assert word in message.lower(), message


def streams_of(path: Path) -> tuple[list[str], list[str]]:
    """(video codec names, audio codec names) of a media file."""
    with av.open(str(path)) as container:
        return (
            [s.codec_context.name for s in container.streams.video],
            [s.codec_context.name for s in container.streams.audio],
        )


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found")


# --------------------------------------------------------------------------------------
# read_image
# --------------------------------------------------------------------------------------


def test_read_rgb_png_is_exact(tmp_path):
    expected = synthetic_frames(1, (40, 30))[0]
    path = make_image(tmp_path / "rgb.png", array=expected, mode="RGB")
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (30, 40, 3)
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize(
    "mode, name",
    [
        ("RGB", "x.jpg"),
        ("RGBA", "x.png"),
        ("LA", "x.png"),
        ("L", "x.png"),
        ("1", "x.png"),
        ("P", "x.png"),
        ("I;16", "x.png"),
        ("I;16B", "x.tif"),
        ("I", "x.tif"),
        ("F", "x.tif"),
        ("CMYK", "x.jpg"),
        ("CMYK", "x.tif"),
        ("RGB", "x.bmp"),
        ("RGB", "x.webp"),
    ],
)
def test_read_image_any_mode_gives_rgb_uint8(tmp_path, mode, name):
    path = make_image(tmp_path / name, size=(40, 30), mode=mode)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (30, 40, 3)
    assert image.flags["C_CONTIGUOUS"]
    assert image.std() > 5  # real content, not a blank conversion


@pytest.mark.parametrize("mode, name", [("I;16", "g.png"), ("I;16B", "g.tif"), ("I;16", "g.tif")])
def test_16bit_grey_scales_to_8bit(tmp_path, mode, name):
    values = np.array([[0, 65535, 257, 128, 129, 32896]], dtype=np.uint16)
    path = make_image(tmp_path / name, mode=mode, array=values)
    with Image.open(path) as img:
        assert img.mode.startswith("I;16")
    image = read_image(path)
    assert image.shape == (1, 6, 3)
    np.testing.assert_array_equal(image[0, :, 0], [0, 255, 1, 0, 1, 128])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_32bit_int_image_is_taken_as_16bit(tmp_path):
    values = np.array([[0, 65535, 70000, -5]], dtype=np.int32)
    path = make_image(tmp_path / "i.tif", mode="I", array=values)
    np.testing.assert_array_equal(read_image(path)[0, :, 1], [0, 255, 255, 0])


def test_float_image_unit_range(tmp_path):
    values = np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32)
    path = make_image(tmp_path / "f.tif", mode="F", array=values)
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 128, 255, 64])


def test_rgba_composited_over_white(tmp_path):
    rgba = np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [255, 0, 0, 128]]], dtype=np.uint8)
    path = make_image(tmp_path / "a.png", mode="RGBA", array=rgba)
    image = read_image(path)
    np.testing.assert_array_equal(image[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(image[0, 1], [10, 20, 30])
    np.testing.assert_array_equal(image[0, 2], [255, 127, 127])


def test_la_and_palette_transparency_over_white(tmp_path):
    la = np.array([[[40, 0], [40, 255]]], dtype=np.uint8)
    path = make_image(tmp_path / "la.png", mode="LA", array=la)
    np.testing.assert_array_equal(read_image(path)[0], [[255, 255, 255], [40, 40, 40]])

    palette = Image.new("P", (2, 1))
    palette.putpalette([200, 0, 0, 0, 0, 200])
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png", transparency=1)
    np.testing.assert_array_equal(read_image(tmp_path / "p.png")[0], [[200, 0, 0], [255, 255, 255]])


def test_grey_bilevel_palette_cmyk_values(tmp_path):
    grey = make_image(tmp_path / "l.png", mode="L", array=np.array([[7, 200]], dtype=np.uint8))
    np.testing.assert_array_equal(read_image(grey)[0], [[7, 7, 7], [200, 200, 200]])

    bilevel = Image.new("1", (2, 1))
    bilevel.putpixel((1, 0), 1)
    bilevel.save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0], [[0, 0, 0], [255, 255, 255]])

    cmyk = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 0, 0, 255))
    cmyk.save(tmp_path / "c.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif")[0], [[255, 255, 255], [0, 0, 0]])


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((30, 40, 3), dtype=np.uint8)
    stored[:5, :5] = [255, 0, 0]  # red marker at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "o.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "o.jpg")
    assert image.shape == (40, 30, 3)
    assert image[1, -2, 0] > 200 and image[1, 1, 0] < 50  # marker now top-right


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(InputError) as excinfo:
        read_image(tmp_path / "missing.png")
    assert_input_error(excinfo, tmp_path / "missing.png", "not found")

    with pytest.raises(InputError) as excinfo:
        read_image(tmp_path)
    assert_input_error(excinfo, tmp_path, "folder")

    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(InputError) as excinfo:
        read_image(text)
    assert_input_error(excinfo, text, "not an image")


@pytest.mark.parametrize("name", ["t.png", "t.jpg"])
def test_truncated_image_is_input_error(tmp_path, name):
    full = make_image(tmp_path / f"full_{name}", size=(64, 48))
    data = full.read_bytes()
    truncated = tmp_path / name
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as excinfo:
        read_image(truncated)
    assert_input_error(excinfo, truncated, "truncated")


# --------------------------------------------------------------------------------------
# fit_to_shape
# --------------------------------------------------------------------------------------


def marked_image(width: int, height: int) -> np.ndarray:
    """Grey image, green 4x4 centre marker, red left and blue right edge columns."""
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    cy, cx = height // 2, width // 2
    image[cy - 2 : cy + 2, cx - 2 : cx + 2] = [0, 255, 0]
    image[:, :4] = [255, 0, 0]
    image[:, -4:] = [0, 0, 255]
    return image


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(ys.mean()), float(xs.mean())


def test_fit_crop_keeps_centre_and_drops_sides():
    image = marked_image(80, 60)
    fitted, note = fit_to_shape(image, (32, 32), mode="crop")
    assert fitted.shape == (32, 32, 3) and fitted.dtype == np.uint8
    assert note is not None and "80x60" in note and "60x60" in note and "32x32" in note
    assert "\n" not in note
    green = (fitted[..., 1] > 150) & (fitted[..., 0] < 100)
    assert centroid(green) == pytest.approx((15.5, 15.5), abs=0.6)
    # The red/blue side columns were cropped away.
    assert fitted[..., 0].max() < 200 and fitted[..., 2].max() < 200


def test_fit_pad_letterboxes_with_black_bars():
    image = marked_image(80, 40)
    fitted, note = fit_to_shape(image, (32, 32), mode="pad")
    assert fitted.shape == (32, 32, 3)
    assert note is not None and "80x40" in note and "32x32" in note
    np.testing.assert_array_equal(fitted[:8], 0)
    np.testing.assert_array_equal(fitted[24:], 0)
    assert fitted[8:24].min(axis=2).mean() > 50  # content fills the middle band
    green = (fitted[..., 1] > 150) & (fitted[..., 0] < 100)
    assert centroid(green) == pytest.approx((15.5, 15.5), abs=0.6)
    assert fitted[8:24, :2, 0].mean() > 200 and fitted[8:24, -2:, 2].mean() > 200  # sides kept


def test_fit_pad_pillarbox_for_tall_images():
    fitted, note = fit_to_shape(marked_image(20, 40), (32, 64), mode="pad")
    assert fitted.shape == (32, 64, 3) and note is not None
    np.testing.assert_array_equal(fitted[:, :24], 0)
    np.testing.assert_array_equal(fitted[:, 40:], 0)


def test_fit_same_shape_is_untouched_and_same_aspect_has_no_note():
    image = marked_image(64, 48)
    same, note = fit_to_shape(image, (48, 64))
    assert same is image and note is None
    smaller, note = fit_to_shape(image, (24, 32), mode="crop")
    assert smaller.shape == (24, 32, 3) and note is None
    padded, note = fit_to_shape(image, (24, 32), mode="pad")
    assert note is None
    np.testing.assert_array_equal(padded, smaller)


def test_fit_resize_is_antialiased():
    stripes = np.zeros((64, 64, 3), dtype=np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes: nearest/unfiltered would alias to 0 or 255
    small, _ = fit_to_shape(stripes, (16, 16))
    assert abs(float(small.mean()) - 127.5) < 3 and small.std() < 5


def test_fit_rejects_bad_arguments():
    image = marked_image(8, 8)
    with pytest.raises(ValueError):
        fit_to_shape(image, (4, 4), mode="stretch")
    with pytest.raises(ValueError):
        fit_to_shape(image.astype(np.float32), (4, 4))
    with pytest.raises(ValueError):
        fit_to_shape(image, (0, 4))


# --------------------------------------------------------------------------------------
# tensor conversion
# --------------------------------------------------------------------------------------


def test_frames_to_tensor_shapes_and_values():
    frames = synthetic_frames(3, (10, 6))
    tensor = frames_to_tensor(frames)
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (3, 3, 6, 10)
    assert tensor.is_contiguous()
    assert float(tensor[1, 2, 4, 7]) == pytest.approx(frames[1, 4, 7, 2] / 255)
    assert torch.equal(frames_to_tensor(list(frames)), tensor)
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    np.testing.assert_array_equal(tensor_to_frames(tensor), frames)


def test_tensor_to_frames_rounds_and_clamps():
    values = torch.tensor([10.4, 10.6, -3.0, 300.0, 254.51, float("nan")]) / 255
    tensor = values.reshape(1, 1, 1, 6).expand(1, 3, 1, 6)
    frames = tensor_to_frames(tensor)
    assert frames.dtype == np.uint8 and frames.shape == (1, 1, 6, 3)
    np.testing.assert_array_equal(frames[0, 0, :, 0], [10, 11, 0, 255, 255, 0])


def test_tensor_conversion_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        frames_to_tensor(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        frames_to_tensor(np.zeros((1, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        tensor_to_frames(torch.zeros(3, 4, 4))


# --------------------------------------------------------------------------------------
# reading videos and folders
# --------------------------------------------------------------------------------------


def test_extension_helpers_and_natural_sort():
    assert is_video_path("a/B.MP4") and is_video_path("x.gif") and not is_video_path("x.png")
    assert is_image_path("x.JPEG") and is_image_path("x.tif") and not is_image_path("x.mov")
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame100.png", "a.png"]
    assert sorted(names, key=natural_sort_key) == ["a.png", "Frame1.png", "frame2.png", "frame10.png", "frame100.png"]


@pytest.mark.parametrize("ext, max_error", [(e, 5.0) for e in VIDEO_EXTS] + [(".gif", 25.0)])
def test_read_video_formats(tmp_path, ext, max_error):
    path = make_video(tmp_path / f"in{ext}", num_frames=16, size=(64, 48), fps=25)
    with open_frames(path) as reader:
        assert isinstance(reader, FrameReader)
        assert reader.path == path
        assert reader.fps == pytest.approx(25.0)
        assert reader.size == (64, 48)
        assert reader.has_audio is False
        assert reader.frame_count in (16, None)
        frames = list(reader)
    assert len(frames) == 16
    assert all(f.dtype == np.uint8 and f.shape == (48, 64, 3) for f in frames)
    assert mean_abs_error(np.stack(frames), synthetic_frames(16, (64, 48))) < max_error


def test_mp4_reader_metadata_iteration_and_read_frame(tmp_path):
    path = make_video(tmp_path / "in.mp4", num_frames=12, fps=Fraction(30000, 1001), audio=True)
    reader = open_frames(path)
    assert reader.frame_count == 12
    assert reader.fps == pytest.approx(30000 / 1001, abs=1e-9)
    assert reader.has_audio is True
    first = np.stack(list(reader))
    second = np.stack(list(reader))  # a second pass starts again from the first frame
    assert first.shape == (12, 48, 64, 3)
    np.testing.assert_array_equal(first, second)
    assert mean_abs_error(first[1], first[0]) > 1  # the frames differ
    np.testing.assert_array_equal(reader.read_frame(5), first[5])
    np.testing.assert_array_equal(reader.read_frame(11), first[11])
    with pytest.raises(InputError) as excinfo:
        reader.read_frame(12)
    assert_input_error(excinfo, path, "frame 12", "out of range")


def test_reader_close_stops_iterations(tmp_path):
    path = make_video(tmp_path / "in.mkv", num_frames=8)
    with open_frames(path) as reader:
        frames = iter(reader)
        next(frames)
    assert next(frames, None) is None


def test_read_rotated_video(tmp_path):
    """A display matrix (phone video) is applied: 90 degrees clockwise here."""
    path = make_video(tmp_path / "in.mp4", num_frames=2, size=(64, 48))
    data = bytearray(path.read_bytes())
    tkhd = data.find(b"tkhd")
    assert data[tkhd + 4] == 0  # version 0 box: the matrix starts 36 bytes after the flags
    matrix_at = tkhd + 8 + 36
    data[matrix_at : matrix_at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    rotated_path = tmp_path / "rotated.mp4"
    rotated_path.write_bytes(data)
    reader = open_frames(rotated_path)
    assert reader.size == (48, 64)
    rotated = reader.read_frame(0)
    upright = open_frames(path).read_frame(0)
    assert rotated.shape == (64, 48, 3)
    np.testing.assert_array_equal(rotated, np.rot90(upright, -1))


def test_folder_natural_order_and_fps(tmp_path):
    colours = {"1.png": 10, "2.png": 20, "10.png": 100, "frame_3.jpg": None}
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, value in colours.items():
        if value is not None:
            Image.fromarray(np.full((6, 8, 3), value, dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.png").write_bytes(b"resource fork junk")
    (folder / "sub.png").mkdir()  # a folder with an image-like name is ignored too
    reader = open_frames(folder)
    assert reader.frame_count == 3 and reader.fps == 25.0 and reader.size == (8, 6)
    assert reader.has_audio is False
    assert [int(f[0, 0, 0]) for f in reader] == [10, 20, 100]
    assert int(reader.read_frame(2)[0, 0, 0]) == 100
    assert open_frames(folder, fps=12.5).fps == 12.5


def test_folder_fps_must_be_positive(tmp_path):
    folder = make_frames_folder(tmp_path / "f", num_frames=2, size=(8, 8))
    for bad_fps in [0, -1, float("nan")]:
        with pytest.raises(ReanimateError, match="frame rate") as excinfo:
            open_frames(folder, fps=bad_fps)
        assert str(folder) in str(excinfo.value)


def test_folder_frames_are_exact(tmp_path):
    folder = make_frames_folder(tmp_path / "f", num_frames=5, size=(33, 17))
    frames = np.stack(list(open_frames(folder)))
    np.testing.assert_array_equal(frames, synthetic_frames(5, (33, 17)))


def test_folder_with_corrupt_frame_names_file_and_index(tmp_path):
    folder = make_frames_folder(tmp_path / "f", num_frames=3, size=(16, 12))
    (folder / "000001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError) as excinfo:
        list(open_frames(folder))
    assert_input_error(excinfo, folder / "000001.png", "frame 1")


def test_reader_errors(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "missing.mp4", "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["empty folder"] = (empty, "no frame images")
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("x")
    cases["no images"] = (texts, "no frame images")
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    cases["text as mp4"] = (fake, "cannot be opened")
    audio_only = make_audio_file(tmp_path / "sound.m4a")
    cases["audio only"] = (audio_only, "no video stream")
    image = make_image(tmp_path / "still.png")
    cases["image"] = (image, "is an image")
    for name, (path, words) in cases.items():
        with pytest.raises(InputError) as excinfo:
            open_frames(path)
        assert_input_error(excinfo, path, words)


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_zero_frame_video_is_input_error(tmp_path, ext):
    path = make_empty_video(tmp_path / f"empty{ext}")
    with pytest.raises(InputError) as excinfo:
        open_frames(path)
    assert_input_error(excinfo, path)


def test_truncated_video_without_index_fails_at_open(tmp_path):
    full = make_video(tmp_path / "full.mp4", num_frames=30, size=(64, 48), pattern="noise")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # index is at the end
    with pytest.raises(InputError) as excinfo:
        open_frames(truncated)
    assert_input_error(excinfo, truncated)


def test_truncated_faststart_video_fails_while_reading(tmp_path):
    full = tmp_path / "full.mp4"
    with open_writer(full, fps=25) as writer:  # our writer puts the index first
        writer.write(synthetic_frames(30, (64, 48), pattern="noise"))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    reader = open_frames(truncated)
    assert reader.frame_count == 30
    with pytest.raises(InputError) as excinfo:
        list(reader)
    assert_input_error(excinfo, truncated, "frame", "truncated")


def test_corrupt_video_data_names_frame(tmp_path):
    full = make_video(tmp_path / "full.mp4", num_frames=40, size=(64, 48), pattern="noise")
    data = bytearray(full.read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = np.random.default_rng(0).integers(0, 256, third, np.uint8).tobytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(InputError) as excinfo:
        list(open_frames(corrupt))
    assert_input_error(excinfo, corrupt, "frame")


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", VIDEO_EXTS)
@pytest.mark.parametrize("fps", [25, 30000 / 1001])
def test_video_round_trip(tmp_path, ext, fps):
    frames = synthetic_frames(16, (96, 64))
    path = tmp_path / f"out{ext}"
    with open_writer(path, fps=fps) as writer:
        assert isinstance(writer, FrameWriter)
        for frame in frames:
            writer.write(frame)
    assert sorted(os.listdir(tmp_path)) == [path.name]
    reader = open_frames(path)
    assert reader.fps == pytest.approx(fps, rel=1e-9)
    assert reader.size == (96, 64)
    decoded = np.stack(list(reader))
    assert decoded.shape == frames.shape
    assert mean_abs_error(decoded, frames) < 2.5
    expected_codec = "vp9" if ext == ".webm" else "h264"
    assert streams_of(path) == ([expected_codec], [])


def test_fps_is_kept_exactly(tmp_path):
    for fps, expected in [
        (29.97, Fraction(2997, 100)),
        (30000 / 1001, Fraction(30000, 1001)),
        (Fraction(24000, 1001), Fraction(24000, 1001)),
        (12.5, Fraction(25, 2)),
    ]:
        path = tmp_path / "out.mp4"
        with open_writer(path, fps=fps) as writer:
            writer.write(synthetic_frames(4, (32, 32)))
        with av.open(str(path)) as container:
            assert container.streams.video[0].average_rate == expected


def test_gif_round_trip(tmp_path):
    frames = synthetic_frames(16, (64, 48))
    path = tmp_path / "out.gif"
    with open_writer(path, fps=25, audio_from=make_video(tmp_path / "a.mp4", audio=True)) as w:
        w.write(frames)
    reader = open_frames(path)
    assert reader.fps == pytest.approx(25)
    decoded = np.stack(list(reader))
    assert decoded.shape == frames.shape
    assert mean_abs_error(decoded, frames) < 6


def test_png_folder_round_trip_is_exact(tmp_path):
    frames = synthetic_frames(12, (37, 21))
    out = tmp_path / "frames"
    with open_writer(out, fps=10, audio_from=make_video(tmp_path / "a.mp4", audio=True)) as w:
        w.write(frames[:5])  # a batch
        for frame in frames[5:]:
            w.write(frame)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(12)]
    np.testing.assert_array_equal(np.stack(list(open_frames(out))), frames)
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "frames"]


def test_odd_size_h264_is_padded_by_edge_replication(tmp_path):
    frames = synthetic_frames(8, (63, 47))
    path = tmp_path / "odd.mp4"
    # medium: the bounds below were set with it (the default veryfast gives 3.07 here)
    with open_writer(path, fps=25, preset="medium") as writer:
        writer.write(frames)
    decoded = np.stack(list(open_frames(path)))
    assert decoded.shape == (8, 48, 64, 3)
    assert mean_abs_error(decoded[:, :47, :63], frames) < 3
    assert mean_abs_error(decoded[:, :47, 63], frames[:, :, 62]) < 4
    assert mean_abs_error(decoded[:, 47, :63], frames[:, 46, :]) < 4


@pytest.mark.parametrize(
    "ext, audio_codec", [(".mp4", "aac"), (".mkv", "aac"), (".mov", "aac"), (".avi", "aac"), (".webm", "opus")]
)
def test_audio_is_taken_from_source(tmp_path, ext, audio_codec):
    source = make_video(tmp_path / "driving.mp4", num_frames=25, fps=25, audio=True)
    out = tmp_path / f"out{ext}"
    with open_writer(out, fps=25, audio_from=source) as writer:
        writer.write(synthetic_frames(10, (64, 48)))  # shorter than the source audio
    assert streams_of(out) == (["vp9" if ext == ".webm" else "h264"], [audio_codec])
    reader = open_frames(out)
    assert reader.has_audio and len(list(reader)) == 10
    with av.open(str(out)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        rate = container.streams.audio[0].codec_context.sample_rate
    assert 0.25 < samples / rate < 0.4 + 0.1  # cut near the 0.4 s of video, not 1 s
    if audio_codec == "aac":  # copied, not re-encoded: the packets are the source's
        with av.open(str(source)) as src, av.open(str(out)) as dst:
            first = [bytes(p) for p in src.demux(audio=0) if p.size][:5]
            copied = [bytes(p) for p in dst.demux(audio=0) if p.size][:5]
        assert copied == first


@pytest.mark.parametrize("ext", [".mp4", ".webm"])  # AAC copied; Opus transcoded
def test_audio_range_takes_that_part_of_the_source_audio(tmp_path, ext):
    source = make_video(tmp_path / "long.mp4", num_frames=75, fps=25, audio=True)  # 3 s
    out = tmp_path / f"clip{ext}"
    with open_writer(out, fps=25, audio_from=source, audio_range=(1.0, 1.4)) as writer:
        writer.write(synthetic_frames(20, (64, 48)))  # 0.8 s of video, longer than the range
    with av.open(str(out)) as container:
        frames = list(container.decode(audio=0))
        rate = container.streams.audio[0].codec_context.sample_rate
    assert 0 <= frames[0].time < 0.03  # begins with the video, not 1 s later
    assert 0.3 < sum(f.samples for f in frames) / rate < 0.45  # the 0.4 s range only
    if ext == ".mp4":  # copied packets: the source's, from 1 s on
        with av.open(str(source)) as src:
            later = [p for p in src.demux(audio=0) if p.size and p.pts * p.time_base >= 1]
        with av.open(str(out)) as dst:
            copied = [bytes(p) for p in dst.demux(audio=0) if p.size]
        assert copied == [bytes(p) for p in later[: len(copied)]]
    for bad in [(1.0, 1.0), (-1, 2), (2, 1), ("a", 1)]:
        with pytest.raises(ValueError, match="audio_range"):
            open_writer(tmp_path / "bad.mp4", fps=25, audio_from=source, audio_range=bad)


def test_unreadable_audio_source_is_input_error(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(InputError) as excinfo:
        open_writer(tmp_path / "out.mp4", fps=25, audio_from=fake)
    assert_input_error(excinfo, fake, "audio")
    assert os.listdir(tmp_path) == ["fake.mp4"]


def test_no_audio_when_source_has_none(tmp_path):
    silent = make_video(tmp_path / "silent.mp4", num_frames=8)
    out = tmp_path / "out.mp4"
    with open_writer(out, fps=25, audio_from=silent) as writer:
        writer.write(synthetic_frames(8, (64, 48)))
    assert streams_of(out) == (["h264"], [])
    folder = make_frames_folder(tmp_path / "frames", num_frames=2, size=(8, 8))
    with open_writer(tmp_path / "out2.mp4", fps=25, audio_from=folder) as writer:
        writer.write(synthetic_frames(2, (64, 48)))
    assert streams_of(tmp_path / "out2.mp4") == (["h264"], [])


def test_writer_open_errors(tmp_path):
    missing_parent = tmp_path / "nope" / "out.mp4"
    with pytest.raises(InputError) as excinfo:
        open_writer(missing_parent, fps=25)
    assert_input_error(excinfo, missing_parent, "does not exist")

    for name in ["out.xyz", "out.png"]:
        with pytest.raises(InputError) as excinfo:
            open_writer(tmp_path / name, fps=25)
        assert_input_error(excinfo, tmp_path / name, "unsupported")

    with pytest.raises(InputError) as excinfo:
        open_writer(tmp_path / "out.mp4", fps=25, audio_from=tmp_path / "gone.mp4")
    assert_input_error(excinfo, tmp_path / "gone.mp4", "not found")

    file_in_the_way = tmp_path / "frames"
    file_in_the_way.write_text("x")
    with pytest.raises(InputError):
        open_writer(file_in_the_way, fps=25)

    for bad_fps in [0, -5, 1e-9, float("nan"), float("inf"), "fast"]:
        with pytest.raises(ReanimateError, match="frame rate"):
            open_writer(tmp_path / "out.mp4", fps=bad_fps)

    with pytest.raises(ValueError):
        open_writer(tmp_path / "out.mp4", fps=25, crf=52)
    assert sorted(os.listdir(tmp_path)) == ["frames"]  # nothing created by failed opens


def test_writer_rejects_bad_frames(tmp_path):
    with open_writer(tmp_path / "out.mp4", fps=25) as writer:
        writer.write(np.zeros((16, 16, 3), dtype=np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((16, 18, 3), dtype=np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((16, 16, 3), dtype=np.float32))
        with pytest.raises(ValueError):
            writer.write(np.zeros((16, 16), dtype=np.uint8))
    assert writer.frames_written == 1
    with pytest.raises(ValueError):
        writer.write(np.zeros((16, 16, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "out.webm", "frames"])
def test_exception_in_with_leaves_nothing(tmp_path, name):
    source = make_video(tmp_path / "driving.mp4", audio=True)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / name
    with pytest.raises(RuntimeError, match="boom"):
        with open_writer(target, fps=25, audio_from=source) as writer:
            writer.write(synthetic_frames(5, (32, 32)))
            raise RuntimeError("boom")
    assert os.listdir(out_dir) == []


def test_failed_write_keeps_old_output_and_audio_source(tmp_path):
    source = make_video(tmp_path / "driving.mp4", num_frames=5, audio=True)
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old result")
    with pytest.raises(KeyboardInterrupt):
        with open_writer(target, fps=25, audio_from=source) as writer:
            writer.write(synthetic_frames(5, (32, 32)))
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old result"
    assert sorted(os.listdir(tmp_path)) == ["driving.mp4", "out.mp4"]


def test_abort_and_empty_close_and_garbage_collection(tmp_path):
    writer = open_writer(tmp_path / "a.mp4", fps=25)
    writer.write(synthetic_frames(3, (32, 32)))
    writer.abort()
    writer.close()  # no-op after abort
    assert os.listdir(tmp_path) == []

    writer = open_writer(tmp_path / "b.mp4", fps=25)
    with pytest.raises(ValueError, match="no frames"):
        writer.close()
    assert os.listdir(tmp_path) == []

    writer = open_writer(tmp_path / "frames", fps=25)
    writer.write(synthetic_frames(2, (8, 8)))
    del writer
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_success_replaces_existing_file_and_folder(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    with open_writer(target, fps=25) as writer:
        writer.write(synthetic_frames(3, (32, 32)))
    assert open_frames(target).frame_count == 3

    folder = make_frames_folder(tmp_path / "frames", num_frames=6, size=(8, 8))
    (folder / "stale.txt").write_text("from an older run")
    with open_writer(folder, fps=25, overwrite=True) as writer:  # an existing folder, even with a suffix-less name
        writer.write(synthetic_frames(2, (8, 8)))
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png"]
    assert sorted(os.listdir(tmp_path)) == ["frames", "out.mp4"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_writing_and_reading_memory_is_bounded(tmp_path):
    base = synthetic_frames(1, (256, 256))[0]

    def frame(index: int) -> np.ndarray:
        return np.roll(base, (index * 3) % 256, axis=1)

    def measure(index: int, at: dict[int, int]) -> None:
        if index + 1 in (30, 165, 300):
            gc.collect()
            at[index + 1] = rss_bytes()

    # 270 more frames of 256x256 RGB are 53 MB (135 are 26 MB): streaming must not keep
    # them. Encoder/decoder buffers (x264 look-ahead, threads) fill up during the first
    # frames, so the second half must be nearly flat.
    path = tmp_path / "long.mp4"
    written: dict[int, int] = {}
    with open_writer(path, fps=25) as writer:
        for index in range(300):
            writer.write(frame(index))
            measure(index, written)
    assert written[300] - written[30] < 32 * 2**20
    assert written[300] - written[165] < 8 * 2**20

    reader = open_frames(path)
    assert reader.frame_count == 300
    read: dict[int, int] = {}
    for index, decoded in enumerate(reader):
        measure(index, read)
    assert index == 299
    assert read[300] - read[30] < 32 * 2**20
    assert read[300] - read[165] < 8 * 2**20


def test_prefetched_keeps_order_raises_in_place_and_stops_early():
    import threading

    from reanimate.io.prefetch import prefetched

    assert list(prefetched(range(10), depth=1)) == list(range(10))
    assert list(prefetched([])) == []

    def failing():
        yield 1
        yield 2
        raise ValueError("bad frame 2")

    got = []
    with pytest.raises(ValueError, match="bad frame 2"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1, 2]  # the items before the failure arrive first

    made = []

    def counting():
        for i in range(1000):
            made.append(i)
            yield i

    stream = prefetched(counting(), depth=2)
    assert next(stream) == 0
    stream.close()  # the consumer stops: the worker stops within a few items
    assert len(made) <= 4
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(ValueError, match="depth"):
        next(prefetched([1], depth=0))
