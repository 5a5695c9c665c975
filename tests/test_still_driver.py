"""More inputs for ``animate``: a still image as the driver (one output frame: the source
with the driver's pose and expression) and ``--faces all`` (every face of a group photo
animated by the same driver and pasted back)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mediapipe")

from reanimate.animators.landmarks import mouth_openness  # noqa: E402
from reanimate.cli import main  # noqa: E402
from reanimate.faces import FaceMesh, head_pose, square_box  # noqa: E402
from reanimate.io import open_frames, open_writer, read_image  # noqa: E402
from reanimate.pipelines import animate  # noqa: E402
from reanimate.pipelines.animate import face_masks  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def portrait():
    return read_image(EXAMPLES / "source.png")


@pytest.fixture(scope="module")
def stills(tmp_path_factory):
    """Frames of the bundled driving clip as images: 0 (its start), 76 (mouth wide
    open), 126 (head turned about 12 degrees)."""
    folder = tmp_path_factory.mktemp("stills")
    with open_frames(EXAMPLES / "driving.mp4") as reader:
        for i, frame in enumerate(reader):
            if i in (0, 76, 126):
                Image.fromarray(frame).save(folder / f"{i}.png")
            if i == 126:
                break
    return folder


@pytest.fixture(scope="module")
def group(tmp_path_factory, portrait):
    """Two faces whose crops overlap: the portrait and a two-thirds copy beside it."""
    small = cv2.resize(portrait, (portrait.shape[1] * 2 // 3, portrait.shape[0] * 2 // 3), interpolation=cv2.INTER_AREA)
    canvas = np.full((portrait.shape[0], portrait.shape[1] + small.shape[1] - 60, 3), 90, np.uint8)
    canvas[:, : portrait.shape[1]] = portrait
    canvas[-small.shape[0] :, portrait.shape[1] - 60 :] = small
    path = tmp_path_factory.mktemp("group") / "group.png"
    Image.fromarray(canvas).save(path)
    return path


@pytest.fixture(scope="module")
def short_driving(tmp_path_factory):
    path = tmp_path_factory.mktemp("driving") / "short.mp4"
    with open_frames(EXAMPLES / "driving.mp4") as reader, open_writer(path, reader.fps) as writer:
        for i, frame in enumerate(reader):
            if i > 100:
                break
            if i in (0, 76, 100):
                writer.write(frame[None])
    return path


def detect(image):
    with FaceMesh(max_faces=4) as mesh:
        faces = mesh.detect(image)
    assert faces, "no face in the output"
    return faces


# -- a still driving image ------------------------------------------------------------------


def test_the_source_as_its_own_still_driver_gives_the_source(tmp_path, portrait):
    out = tmp_path / "same.png"
    result = animate(EXAMPLES / "source.png", EXAMPLES / "source.png", out, progress=False)
    assert result.frames == 1 and out.is_file()
    image = read_image(out)
    assert image.shape == portrait.shape
    # (the crop is resampled to the animator's size and back)
    assert np.abs(image.astype(int) - portrait).mean() < 2.0


def test_a_still_driver_gives_its_pose_and_expression(tmp_path, portrait, stills):
    source = detect(portrait)[0].landmarks
    opened = tmp_path / "open.jpg"
    assert main(["animate", str(EXAMPLES / "source.png"), str(stills / "76.png"), "-o", str(opened), "-q"]) == 0
    found = detect(read_image(opened))[0].landmarks
    driver = detect(read_image(stills / "76.png"))[0].landmarks
    assert read_image(opened).shape == portrait.shape
    assert mouth_openness(found) > mouth_openness(source) + 0.5 * (mouth_openness(driver) - mouth_openness(source))
    # the turned driver turns the source by its own yaw (relative to the source, not to
    # another frame of the clip)
    turned = tmp_path / "turned.png"
    assert main(["animate", str(EXAMPLES / "source.png"), str(stills / "126.png"), "-o", str(turned), "-q"]) == 0
    yaw = head_pose(detect(read_image(turned))[0].landmarks[None])[0].yaw
    want = head_pose(detect(read_image(stills / "126.png"))[0].landmarks[None])[0].yaw
    assert abs(yaw - want) < 0.4 * abs(want), (yaw, want)


def test_a_still_driver_writes_a_one_frame_video_or_folder(tmp_path, stills):
    video = tmp_path / "one.mp4"
    assert main(["animate", str(EXAMPLES / "source.png"), str(stills / "76.png"), "-o", str(video), "-q"]) == 0
    with open_frames(video) as reader:
        assert len(list(reader)) == 1
    folder = tmp_path / "frames"
    assert main(["animate", str(EXAMPLES / "source.png"), str(stills / "76.png"), "-o", str(folder), "-q"]) == 0
    assert [p.name for p in folder.iterdir()] == ["000000.png"]


def test_still_driver_errors_are_one_line(tmp_path, stills, short_driving, capsys):
    source = str(EXAMPLES / "source.png")
    cases = [
        ([source, str(short_driving), "-o", str(tmp_path / "x.png")], "an image is written only for a still"),
        ([source, str(stills / "76.png"), "-o", str(tmp_path / "y.png"), "--best-frame", "3"], "--best-frame"),
    ]
    noface = tmp_path / "noface.png"
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(noface)
    cases.append(([source, str(noface), "-o", str(tmp_path / "z.png")], "no face found in the driving image"))
    for argv, message in cases:
        assert main(["animate", *argv, "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not Path(argv[3]).exists()


def test_a_fomm_face_model_takes_a_still_driver(tmp_path, stills, portrait):
    from conftest import TINY_CONFIG

    from reanimate.animators.fomm import FommAnimator
    from reanimate.models import ModelConfig, build_model
    from reanimate.pipelines import AnimationPipeline

    face_config = TINY_CONFIG.replace("model_params:\n", "model_params:\n  face: true\n")
    model = build_model(ModelConfig.from_yaml_text(face_config, name="tiny"), seed=0)
    out = tmp_path / "fomm.png"
    result = AnimationPipeline(FommAnimator(model, device="cpu")).animate(
        EXAMPLES / "source.png", stills / "76.png", out, progress=False
    )
    assert result.frames == 1 and read_image(out).shape == portrait.shape


# -- every face of a group photo --------------------------------------------------------------


def test_face_masks_give_each_pixel_to_the_nearest_face():
    faces = [(100, 100, 200, 200), (180, 120, 260, 200)]
    crops = [square_box(b, (400, 400), 0.45) for b in faces]
    masks = face_masks(faces, crops, 64)
    assert all(m.shape == (64, 64) and m.dtype == np.float32 for m in masks)

    def at(index, x, y):
        """mask ``index`` at the image point (x, y)."""
        x0, y0, x1, y1 = crops[index]
        u, v = ((x - x0) / (x1 - x0) * 64, (y - y0) / (y1 - y0) * 64)
        return float(masks[index][int(v), int(u)])

    assert at(0, 150, 150) > 0.9 and at(1, 150, 150) < 0.05  # the first face's centre
    assert at(1, 225, 165) > 0.9 and at(0, 225, 165) < 0.05  # the second's
    for x in range(150, 230, 10):  # in between, the shares add up to 1 at most (up to the 64-pixel grids)
        assert at(0, x, 160) + at(1, x, 160) <= 1.05
    # one face alone: the plain feathered mask
    from reanimate.faces import feather_mask

    assert np.allclose(face_masks(faces[:1], crops[:1], 64)[0], feather_mask(64, 0.1))


def test_faces_all_animates_every_face(tmp_path, group, short_driving, stills):
    source = read_image(group)
    outputs = {}
    for faces in ("one", "all"):
        out = tmp_path / faces
        result = animate(group, short_driving, out, progress=False, faces=faces)
        assert result.frames == 3
        outputs[faces] = [read_image(p) for p in sorted(out.glob("*.png"))]
    boxes = sorted((f.box for f in detect(source)), key=lambda b: b[0])  # the large face first (left)

    def change(frames, box):
        x0, y0, x1, y1 = (int(v) for v in box)
        return max(np.abs(f[y0:y1, x0:x1].astype(int) - frames[0][y0:y1, x0:x1]).mean() for f in frames[1:])

    # one: only the largest face moves; all: both do, and the large one as with one
    assert change(outputs["one"], boxes[0]) > 3 and change(outputs["one"], boxes[1]) < 0.5
    assert change(outputs["all"], boxes[0]) > 3 and change(outputs["all"], boxes[1]) > 2
    x0, y0, x1, y1 = (int(v) for v in boxes[0])
    for a, b in zip(outputs["one"], outputs["all"]):
        assert np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1]).mean() < 1.0
    # a still driver opens both mouths
    still = tmp_path / "still.png"
    animate(group, stills / "76.png", still, progress=False, faces="all")
    before = sorted(detect(source), key=lambda f: f.box[0])
    after = sorted(detect(read_image(still)), key=lambda f: f.box[0])
    assert len(after) == 2
    for b, a in zip(before, after):
        assert mouth_openness(a.landmarks) > mouth_openness(b.landmarks) + 0.1


def test_faces_all_option_errors_are_one_line(tmp_path, group, short_driving, capsys):
    base = ["animate", str(group), str(short_driving), "-o", str(tmp_path / "o.mp4"), "-q", "--faces", "all"]
    for extra, message in (
        (["--face-index", "1"], "drop --face-index"),
        (["--paste-back", "false"], "drop --paste-back false"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]


def test_mmfa_takes_a_still_driver_with_its_own_framing(tmp_path, stills, portrait):
    from mmfa_tiny import tiny_checkpoint

    checkpoint = tiny_checkpoint(tmp_path / "mmfa.safetensors")
    out = tmp_path / "mmfa.png"
    argv = ["animate", str(EXAMPLES / "source.png"), str(stills / "126.png"), "-o", str(out), "-q"]
    assert main([*argv, "--checkpoint", str(checkpoint)]) == 0
    assert read_image(out).shape == portrait.shape
