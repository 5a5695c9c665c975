"""``reanimate evaluate`` on tiny face videos cut from the bundled example (skipped
without mediapipe)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe", reason="evaluation of faces needs mediapipe")

from reanimate.cli import main  # noqa: E402
from reanimate.io import open_frames, open_writer  # noqa: E402
from reanimate.pipelines.evaluate import EvaluationResult, compare, evaluate  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """ROOT/test/ with two 5-frame clips of the bundled driving video (PNG frame folders,
    so that copies decode to identical pixels)."""
    root = tmp_path_factory.mktemp("faces")
    (root / "test").mkdir()
    with open_frames(EXAMPLES / "driving.mp4") as reader:
        frames = [frame for i, frame in zip(range(40), reader)]
    for name, start in (("clip_a", 0), ("clip_b", 20)):
        with open_writer(root / "test" / name, 25) as writer:
            writer.write(np.stack(frames[start : start + 20 : 4]))
    return root


def test_identical_videos_score_perfectly(dataset, tmp_path):
    generated = tmp_path / "generated"
    shutil.copytree(dataset / "test", generated)
    result = evaluate(
        "same-identity", tmp_path / "run", data=dataset, generated=generated, identity=False, progress=False
    )
    m = result.metrics
    assert m["videos"] == 2 and m["frames"] == 10
    assert m["l1"] == 0.0 and m["psnr"] == float("inf") and m["ssim"] == pytest.approx(1.0)
    assert m["akd"] == 0.0 and m["mkr"] == 0.0 and m["apd"] == 0.0
    assert m["jitter"] == pytest.approx(m["jitter_real"])
    assert m["lpips"] == "n/a (weights missing)" and m["fid"] == "n/a (weights missing)"
    assert m["ms_ssim"] == pytest.approx(1.0)
    for name in ("metrics.json", "summary.csv", "per_video.csv", "report.md"):
        assert (tmp_path / "run" / name).is_file()
    rows = (tmp_path / "run" / "per_video.csv").read_text().splitlines()
    assert rows[0].startswith("name,") and len(rows) == 3


def test_identical_videos_have_the_same_identity(dataset, tmp_path):
    from reanimate.errors import ReanimateError
    from reanimate.evaluation.dlib_face import DlibFace

    try:
        DlibFace()
    except ReanimateError as exc:
        pytest.skip(str(exc))
    generated = tmp_path / "generated"
    shutil.copytree(dataset / "test", generated)
    m = evaluate(
        "same-identity", tmp_path / "run", data=dataset, generated=generated, progress=False, num_videos=1
    ).metrics
    assert m["aed"] == 0.0 and m["csim"] == pytest.approx(1.0) and m["akd68"] == 0.0


def test_landmark_model_run_is_measured_and_compared(dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    a = evaluate(
        "same-identity",
        tmp_path / "zero-shot",
        data=dataset,
        pipeline=_landmarks(),
        identity=False,
        cache_dir=cache,
        progress=False,
    )
    assert sorted(p.name for p in (tmp_path / "zero-shot" / "generated").iterdir()) == ["clip_a", "clip_b"]
    m = a.metrics
    # The first frame is the source: a good reconstruction, but not an exact one.
    assert 0 < m["l1"] < 0.1 and m["psnr"] > 20 and 0.5 < m["ssim"] < 1
    assert 0 < m["akd"] < 10 and m["mkr"] == 0.0
    cached = sorted(cache.iterdir())
    # A second run re-measures only the generated videos (the real ones come from the cache).
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "zero-shot" / "generated", copy)
    b = evaluate(
        "same-identity",
        tmp_path / "again",
        data=dataset,
        generated=copy,
        identity=False,
        cache_dir=cache,
        progress=False,
    )
    assert b.metrics["akd"] == pytest.approx(m["akd"])
    assert sorted(cache.iterdir()) == cached  # same bytes, same keys: nothing new measured
    table = compare([tmp_path / "zero-shot", tmp_path / "again" / "metrics.json"])
    assert "| zero-shot |" in table and "| again |" in table and "AKD (px)" in table
    assert main(["evaluate", "--compare", str(tmp_path / "zero-shot"), str(tmp_path / "again")]) == 0
    assert "| again |" in capsys.readouterr().out


def test_cross_identity_pairs(dataset, tmp_path):
    pairs = tmp_path / "pairs.csv"
    shutil.copy(EXAMPLES / "source.png", tmp_path / "portrait.png")
    pairs.write_text(f"source,driving\nportrait.png,{dataset / 'test' / 'clip_a'}\n")
    result = evaluate(
        "cross-identity", tmp_path / "cross", pairs=pairs, pipeline=_landmarks(), identity=False, progress=False
    )
    m = result.metrics
    assert m["videos"] == 1 and m["l1"] is None  # another person drives: no pixel ground truth
    assert m["apd"] is not None and m["apd"] < 20
    assert EvaluationResult.load(tmp_path / "cross").per_video[0]["name"] == "clip_a-portrait"


def test_errors_are_one_line(dataset, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        main(
            [
                "evaluate",
                "same-identity",
                "--data",
                str(dataset),
                "--generated",
                str(empty),
                "-o",
                str(tmp_path / "r"),
                "--no-identity",
                "-q",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "clip_a" in err and str(empty) in err
    assert main(["evaluate", "--compare", str(tmp_path / "nothing")]) == 2
    assert "metrics.json" in capsys.readouterr().err
    assert main(["evaluate", "same-identity", "-o", str(tmp_path / "r2"), "--generated", str(empty)]) == 2
    assert "--data" in capsys.readouterr().err


def test_report_json_round_trip(dataset, tmp_path):
    generated = tmp_path / "generated"
    shutil.copytree(dataset / "test", generated)
    evaluate(
        "same-identity",
        tmp_path / "run",
        data=dataset,
        generated=generated,
        identity=False,
        progress=False,
        num_videos=1,
    )
    data = json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=float)
    assert data["protocol"] == "same-identity" and len(data["per_video"]) == 1
    assert data["per_video"][0]["name"] == "clip_a"


def _landmarks():
    from reanimate.pipelines.animate import build_pipeline

    return build_pipeline(model="landmarks")


def test_body_kind_uses_pose_landmarks(dataset, tmp_path):
    generated = tmp_path / "generated"
    shutil.copytree(dataset / "test", generated)
    result = evaluate(
        "same-identity", tmp_path / "run", data=dataset, generated=generated, kind="body", progress=False, num_videos=1
    )
    m = result.metrics
    assert m["l1"] == 0.0 and m["aed"] is None and m["apd"] is None and m["akd68"] is None
    assert m["akd"] == 0.0 and m["mkr"] == 0.0  # MediaPipe Pose finds the head and shoulders
