"""``reanimate crop`` and ``reanimate faces`` on a short synthetic video of a moving,
growing public-domain portrait (skipped without mediapipe)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from media import make_video

from reanimate.cli import main
from reanimate.io import open_frames, open_writer, read_image
from reanimate.pipelines.crop import crop_video

pytest.importorskip("mediapipe", reason="face tools need mediapipe (pip install mediapipe)")
cv2 = pytest.importorskip("cv2", reason="face tools need opencv-python-headless")

FPS = 25
FRAMES = 40
FACE_FRAMES = 30  # the face leaves after this many frames


def portrait_path() -> str:
    example = Path(__file__).parent.parent / "examples" / "portrait.png"
    if example.exists():
        return str(example)
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")


def portrait_frames(size=(256, 192), frames=FRAMES, face_frames=FACE_FRAMES) -> np.ndarray:
    """``(frames, H, W, 3)``: the portrait's face moves right and grows over a gradient,
    then is gone for the last ``frames - face_frames`` frames."""
    portrait = read_image(portrait_path())
    x0, y0, x1, y1 = _face_box(portrait)
    pad = 0.35 * (x1 - x0)
    head = portrait[max(0, int(y0 - pad)) : int(y1 + pad / 2), max(0, int(x0 - pad)) : int(x1 + pad)]
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([40 + 0.5 * xx, 60 + 0.5 * yy, np.full_like(xx, 90)], -1).clip(0, 255).astype(np.uint8)
    out = np.repeat(background[None], frames, axis=0)
    for index in range(face_frames):
        t = index / (face_frames - 1)
        scale = (0.75 + 0.15 * t) * height / head.shape[0]
        resized = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = resized.shape[:2]
        left = int(5 + t * (width - w - 10))
        top = (height - h) // 2
        out[index, top : top + h, left : left + w] = resized
    return out


def _face_box(image: np.ndarray) -> np.ndarray:
    from reanimate.faces import detect_faces

    return detect_faces(image)[0].box


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    """A 40-frame 25 fps H.264 video with a sine-wave audio track; a face in frames 0..29."""
    folder = tmp_path_factory.mktemp("faces")
    sound = make_video(folder / "sound.mp4", num_frames=FRAMES, fps=FPS, audio=True)
    path = folder / "talk.mp4"
    with open_writer(path, FPS, audio_from=sound) as writer:
        writer.write(portrait_frames())
    return path


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
        return sum(f.samples for f in frames) / frames[0].sample_rate


def test_crop_writes_one_square_video_per_face_track(face_video, tmp_path, capsys):
    out = tmp_path / "crops"
    code = main(
        ["crop", str(face_video), "-o", str(out), "--min-frames", "20", "--image-shape", "64,64", "--no-progress"]
    )
    assert code == 0
    written = out / "talk_track0.mp4"
    assert capsys.readouterr().out.split() == [str(written)]
    assert sorted(os.listdir(out)) == ["talk_track0.mp4"]  # no temporaries left
    with open_frames(written) as reader:
        frames = list(reader)
        assert reader.fps == pytest.approx(FPS) and reader.has_audio
    assert len(frames) == FACE_FRAMES and frames[0].shape == (64, 64, 3)
    assert audio_seconds(written) == pytest.approx(FACE_FRAMES / FPS, abs=0.06)


def test_crop_follows_the_face(face_video, tmp_path):
    from reanimate.faces import detect_faces

    [path] = crop_video(face_video, tmp_path, image_shape=(128, 128), min_frames=20, progress=False)
    with open_frames(path) as reader:
        frames = list(reader)
    centres = []
    for frame in frames[::7]:
        faces = detect_faces(frame)
        assert len(faces) == 1
        centres.append(faces[0].center / 128)
        assert 0.55 < (faces[0].box[2] - faces[0].box[0]) / 128 < 0.95  # the face fills the crop
    assert np.ptp(np.array(centres), axis=0).max() < 0.08  # stays put in the crop while moving in the frame


def test_crop_keeps_tracks_of_two_faces_apart(tmp_path):
    frames = portrait_frames(size=(256, 192), frames=12, face_frames=0)
    small = cv2.resize(read_image(portrait_path()), (96, 112), interpolation=cv2.INTER_AREA)
    frames[:, 40:152, 10:106] = small
    frames[4:, 40:152, 150:246] = small  # a second face from frame 4 on
    video = tmp_path / "two.mp4"
    with open_writer(video, FPS) as writer:
        writer.write(frames)
    paths = crop_video(video, tmp_path / "out", image_shape=(32, 32), min_frames=5, progress=False)
    assert [p.name for p in paths] == ["two_track0.mp4", "two_track1.mp4"]
    lengths = []
    for path in paths:
        with open_frames(path) as reader:
            lengths.append(len(list(reader)))
            assert not reader.has_audio
    assert lengths == [12, 8]


def test_crop_without_a_long_enough_face_track_writes_nothing(face_video, tmp_path, capsys):
    empty = make_video(tmp_path / "disc.mp4", num_frames=10, size=(96, 64))
    out = tmp_path / "crops"
    assert main(["crop", str(empty), "-o", str(out), "--min-frames", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(empty) in err[0] and "no face" in err[0]
    assert main(["crop", str(face_video), "-o", str(out), "--no-progress"]) == 2  # 30 < 150 frames
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "150" in err[0] and "--min-frames" in err[0]
    assert not out.exists()
    assert main(["crop", str(tmp_path / "missing.mp4"), "-o", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_faces_describes_each_frame_as_a_json_line(face_video, tmp_path, capsys):
    out = tmp_path / "faces.jsonl"
    assert main(["faces", str(face_video), "-o", str(out), "--max-faces", "2"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert all(len(r["faces"]) == 1 for r in records[:FACE_FRAMES])
    assert all(r["faces"] == [] for r in records[FACE_FRAMES:])
    face = records[0]["faces"][0]
    assert set(face) == {"box", "yaw", "pitch", "roll", "landmarks"}
    assert len(face["box"]) == 4 and np.array(face["landmarks"]).shape == (478, 3)
    assert abs(face["yaw"]) < 10 and abs(face["roll"]) < 10
    assert records[FACE_FRAMES - 1]["faces"][0]["box"][0] > face["box"][0] + 50  # moved right
    assert sorted(os.listdir(tmp_path)) == ["faces.jsonl"]


def test_faces_prints_an_image_and_reports_errors(tmp_path, capsys):
    assert main(["faces", portrait_path()]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["frame"] == 0 and len(json.loads(lines[0])["faces"]) == 1
    assert main(["faces", str(tmp_path / "nope.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.png" in err[0]
    assert main(["faces", portrait_path(), "-o", str(tmp_path / "missing" / "x.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
