"""Speed and memory for large sources: the video writer's ``crf``/``preset`` options, its
encoder thread, YUV conversion of only the changed boxes, and the cached-canvas
paste-back that gives the same pixels as pasting into a fresh copy of the source."""

import gc
import os
import threading

import numpy as np
import pytest

from reanimate.cli import build_parser
from reanimate.errors import OutputError, ReanimateError
from reanimate.faces import PasteCanvas, feather_mask, paste_back_into
from reanimate.io import open_frames, open_writer, writing
from reanimate.io.writing import DEFAULT_CRF, DEFAULT_PRESET, X264_PRESETS, _Yuv420Canvas
from reanimate.pipelines.animate import AnimationOptions, _check_output, face_masks


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def blocky(frames: int, height: int, width: int, seed=0) -> np.ndarray:
    """Frames of 8x8 blocks of colour: compressible, so lossless encodes stay small."""
    small = noise((frames, (height + 7) // 8, (width + 7) // 8, 3), seed)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 8, 1), 8, 2)[:, :height, :width])


def decode(path) -> np.ndarray:
    with open_frames(path) as reader:
        return np.stack(list(reader))


# -- options ---------------------------------------------------------------------------


@pytest.mark.parametrize("preset, cabac", [("ultrafast", b"cabac=0"), ("medium", b"cabac=1")])
def test_preset_and_crf_reach_x264(tmp_path, preset, cabac):
    path = tmp_path / "out.mp4"
    with open_writer(path, fps=25, crf=23, preset=preset) as writer:
        writer.write(blocky(3, 64, 64))
    data = path.read_bytes()  # x264 writes its settings into the stream (an SEI message)
    assert cabac in data and b"crf=23.0" in data


def test_default_preset_and_crf_are_documented_values(tmp_path):
    assert (DEFAULT_PRESET, DEFAULT_CRF) == ("veryfast", 18) and DEFAULT_PRESET in X264_PRESETS
    path = tmp_path / "out.mp4"
    with open_writer(path, fps=25) as writer:
        writer.write(blocky(2, 32, 32))
    assert b"crf=18.0" in path.read_bytes() and b"subme=2" in path.read_bytes()  # veryfast's subme


def test_bad_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="preset must be one of"):
        open_writer(tmp_path / "out.mp4", fps=25, preset="quick")
    assert os.listdir(tmp_path) == []


def test_cli_options_reach_the_pipeline_options():
    parser = build_parser()
    args = parser.parse_args(["animate", "s.png", "d.mp4", "-o", "o.mp4"])
    assert (args.crf, args.preset) == (DEFAULT_CRF, DEFAULT_PRESET)
    args = parser.parse_args(["animate", "s.png", "d.mp4", "-o", "o.mp4", "--crf", "23", "--preset", "medium"])
    assert (args.crf, args.preset) == (23, "medium")
    with pytest.raises(SystemExit):
        parser.parse_args(["animate", "s.png", "d.mp4", "-o", "o.mp4", "--preset", "quick"])


@pytest.mark.parametrize(
    "output, options, message",
    [
        ("o.mp4", {"crf": 52}, "--crf 52: expected an integer from 0 to 51"),
        ("o.webm", {"crf": 64}, "--crf 64: expected an integer from 0 to 63"),
        ("o.mp4", {"crf": -1}, "--crf -1"),
        ("o.mp4", {"preset": "quick"}, "--preset quick: expected one of ultrafast"),
    ],
)
def test_bad_crf_or_preset_is_a_one_line_error(tmp_path, output, options, message):
    with pytest.raises(ReanimateError, match=message) as excinfo:
        _check_output(tmp_path / output, False, AnimationOptions(**options))
    assert "\n" not in str(excinfo.value)
    _check_output(tmp_path / "o.webm", False, AnimationOptions(crf=63))  # VP9's range


# -- YUV conversion of the changed boxes -----------------------------------------------------


@pytest.mark.parametrize("height, width", [(48, 64), (33, 65)])
def test_converting_changed_boxes_equals_converting_the_whole_frame(height, width):
    first = noise((height, width, 3), 1)
    second = first.copy()
    boxes = [(7, 5, 31, 20), (40, 25, width + 9, height + 3), (-3, -2, 4, 3)]  # odd corners, outside
    for x0, y0, x1, y1 in boxes:
        second[max(y0, 0) : y1, max(x0, 0) : x1] = noise((height, width, 3), 2)[max(y0, 0) : y1, max(x0, 0) : x1]
    canvas_h, canvas_w = height + height % 2, width + width % 2
    partly = _Yuv420Canvas(canvas_h, canvas_w)
    partly.update(first)
    partly.update(second, boxes)
    whole = _Yuv420Canvas(canvas_h, canvas_w)
    whole.update(second)
    for a, b in zip(partly.planes, whole.planes):
        np.testing.assert_array_equal(a, b)


def test_yuv_is_bt709_limited_range():
    grey_white_red = np.array([[[128, 128, 128], [255, 255, 255]], [[255, 0, 0], [255, 0, 0]]], np.uint8)
    canvas = _Yuv420Canvas(2, 2)
    canvas.update(grey_white_red)
    luma, cb, cr = canvas.planes
    # Y = 16 + 219 (0.2126 R + 0.7152 G + 0.0722 B) / 255 (ITU-R BT.709)
    assert luma.tolist() == [[126, 235], [63, 63]]
    # chroma of the 2x2 mean: R 223.25, G 95.75, B 95.75
    assert cb.tolist() == [[round(128 + 224 / 255 * (95.75 - (0.2126 * 223.25 + 0.7874 * 95.75)) / 1.8556)]]
    assert cr.tolist() == [[round(128 + 224 / 255 * (223.25 - (0.2126 * 223.25 + 0.7874 * 95.75)) / 1.5748)]]


def test_writing_changed_boxes_gives_the_same_video(tmp_path):
    base = blocky(1, 96, 128)[0]
    frames, boxes = [], [(20, 12, 70, 60), (90, 50, 128, 96)]
    for n in range(6):
        frame = base.copy()
        for x0, y0, x1, y1 in boxes:
            frame[y0:y1, x0:x1] = blocky(1, y1 - y0, x1 - x0, seed=10 + n)[0]
        frames.append(frame)
    with open_writer(tmp_path / "all.mkv", fps=25, crf=0) as writer:
        writer.write(np.stack(frames))
    with open_writer(tmp_path / "boxes.mkv", fps=25, crf=0) as writer:
        canvas = base.copy()  # one buffer, changed in place between writes
        for frame in frames:
            for x0, y0, x1, y1 in boxes:
                canvas[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
            writer.write(canvas, changed=boxes)
    np.testing.assert_array_equal(decode(tmp_path / "boxes.mkv"), decode(tmp_path / "all.mkv"))


def test_the_caller_may_reuse_its_buffer_at_once(tmp_path):
    buffer = np.zeros((32, 32, 3), np.uint8)
    path = tmp_path / "out.mkv"
    with open_writer(path, fps=25, crf=0) as writer:
        for value in (0, 250, 0, 250):
            buffer[...] = value
            writer.write(buffer)
    means = decode(path).mean(axis=(1, 2, 3))
    assert np.allclose(means, [0, 250, 0, 250], atol=3)


# -- the encoder thread ------------------------------------------------------------------


def encoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "reanimate-encode"]


@pytest.mark.parametrize("error, raised", [(OSError("disk on fire"), OutputError), (RuntimeError("bug"), RuntimeError)])
def test_an_error_in_the_encoder_thread_is_raised_and_nothing_is_left(tmp_path, monkeypatch, error, raised):
    encode = writing._VideoFileWriter._encode
    calls = []

    def failing(self, item):
        calls.append(item[0])
        if item[0] == 2:
            raise error
        encode(self, item)

    monkeypatch.setattr(writing._VideoFileWriter, "_encode", failing)
    target = tmp_path / "out.mp4"
    with pytest.raises(raised) as excinfo:
        with open_writer(target, fps=25) as writer:
            for frame in blocky(40, 64, 64):
                writer.write(frame)
    assert os.listdir(tmp_path) == []
    assert calls[-1] == 2  # nothing encoded after the failure
    assert str(error) in str(excinfo.value)
    if raised is OutputError:
        assert "\n" not in str(excinfo.value) and "nothing was saved" in str(excinfo.value)
    assert not encoder_threads()


def test_an_error_at_the_last_frame_is_raised_by_close(tmp_path, monkeypatch):
    encode = writing._VideoFileWriter._encode

    def failing(self, item):
        if item[0] == 2:
            raise OSError("no space left")
        encode(self, item)

    monkeypatch.setattr(writing._VideoFileWriter, "_encode", failing)
    target = tmp_path / "out.mp4"
    writer = open_writer(target, fps=25)
    writer.write(blocky(3, 32, 32))  # the third frame fails in the worker, after write returned
    with pytest.raises(OutputError, match="no space left"):
        writer.close()
    assert os.listdir(tmp_path) == [] and not encoder_threads()


def test_a_dropped_writer_ends_its_thread_and_leaves_nothing(tmp_path):
    writer = open_writer(tmp_path / "out.mp4", fps=25)
    writer.write(blocky(3, 32, 32))
    [thread] = encoder_threads()
    del writer
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert os.listdir(tmp_path) == []


def test_unthreaded_writer_gives_the_same_video(tmp_path):
    frames = blocky(5, 48, 48)
    for threaded in (True, False):
        with open_writer(tmp_path / f"{threaded}.mkv", fps=25, crf=0, threaded=threaded) as writer:
            writer.write(frames)
    np.testing.assert_array_equal(decode(tmp_path / "True.mkv"), decode(tmp_path / "False.mkv"))


# -- paste-back into a cached canvas -----------------------------------------------------


def pasted_afresh(source, crops, boxes, masks):
    """What paste-back gave before the canvas: every face pasted into a copy of the source."""
    out = source.copy()
    for crop, box, mask in zip(crops, boxes, masks):
        paste_back_into(out, crop, box, mask)
    return out


@pytest.mark.parametrize("faces", [1, 3])
def test_canvas_paste_equals_pasting_into_a_fresh_copy(faces):
    source = noise((300, 280, 3), 3)
    face_boxes = [(40, 50, 120, 140), (150, 120, 250, 230), (200, -10, 290, 70)][:faces]
    crop_boxes = [np.array(b) + [-25, -25, 25, 25] for b in face_boxes]  # reach outside the image
    masks = [feather_mask(64, 0.1)] if faces == 1 else face_masks(face_boxes, crop_boxes, 64)
    canvas = PasteCanvas(source, crop_boxes, masks)
    for n in range(4):
        crops = [noise((64, 64, 3), 10 * n + i) for i in range(faces)]
        np.testing.assert_array_equal(canvas.paste(crops), pasted_afresh(source, crops, crop_boxes, masks))
    height, width = source.shape[:2]
    changed = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in canvas.changed:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        changed[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(canvas.image[~changed], source[~changed])  # the rest never moves


def test_canvas_works_in_place_only_when_asked():
    source = noise((64, 64, 3), 4)
    kept = source.copy()
    PasteCanvas(source, [(8, 8, 40, 40)], [None]).paste([noise((16, 16, 3), 5)])
    np.testing.assert_array_equal(source, kept)
    canvas = PasteCanvas(source, [(8, 8, 40, 40)], [None], copy=False)
    assert canvas.paste([noise((16, 16, 3), 5)]) is source and not np.array_equal(source, kept)
