"""The web app's handlers without a browser: animate, edit, live on the bundled example,
errors in the CLI's words with the upload's own name, limits, and the private folders."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import example_clip, randomize
from media import make_video
from mmfa_tiny import tiny_checkpoint as tiny_mmfa_checkpoint
from PIL import Image
from test_checkpoint import save_official

from reanimate.animators.registry import build_animator
from reanimate.cli import main
from reanimate.errors import ReanimateError
from reanimate.io import list_frame_files, open_frames, open_writer, read_image
from reanimate.models import build_model, load_config
from reanimate.models.mmfa.expression_vae import ExpressionVAE, ExpressionVAEConfig
from reanimate.pipelines.expressions import ExpressionPipeline, read_vae
from reanimate.training.expression_vae import save_expression_vae
from reanimate.ui import jobs, live
from reanimate.ui.files import Limits, Workspace

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SOURCE = EXAMPLES / "source.png"


def upload(workspace: Workspace, file: Path, name: str | None = None) -> str:
    """``file`` as Gradio stores an upload: ``<root>/<content hash>/<name>``."""
    data = file.read_bytes()
    folder = workspace.root / hashlib.sha256(data).hexdigest()[:20]
    folder.mkdir(exist_ok=True)
    target = folder / (name or file.name)
    target.write_bytes(data)
    return str(target)


def cli_error(capsys, tmp_path: Path, *args) -> str:
    """The line ``reanimate`` prints for ``args`` (run in ``tmp_path``, files by name), without its prefix."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("reanimate: error: ")
    return err.removeprefix("reanimate: error: ")


@pytest.fixture(scope="module")
def models():
    return jobs.Models()


@pytest.fixture
def workspace(tmp_path):
    with Workspace.create(Limits(upload_mb=2, video_seconds=2), parent=tmp_path) as ws:
        yield ws


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return example_clip(tmp_path_factory.mktemp("clip") / "driving.mp4", 12)


def animate_example(models, workspace, session, clip, settings=None, progress=None) -> jobs.Outcome:
    """The bundled portrait animated by ``clip``, both uploaded."""
    source, driving = upload(workspace, SOURCE), upload(workspace, clip)
    return jobs.animate_job(
        models, session, jobs.DEFAULT_MODEL, source, driving, settings or jobs.AnimateSettings(), progress
    )


def frame_count(path) -> int:
    with open_frames(path) as reader:
        return sum(1 for _ in reader)


def test_animate_gives_a_video_with_the_drivers_frames(models, workspace, clip):
    session = workspace.session("a")
    seen = []
    out = animate_example(models, workspace, session, clip, progress=lambda value, desc: seen.append(desc))
    assert out.status.endswith(f"wrote source-animated-0.mp4 (12 frames, {out.status.split('frames, ')[1]}")
    assert out.video.parent == session.folder and frame_count(out.video) == 12
    assert seen == ["loading the model"]
    assert [p.name for p in session.folder.iterdir()] == ["source-animated-0.mp4"]  # no temporary left


def test_a_still_driver_gives_an_image(models, workspace):
    session = workspace.session("a")
    out = jobs.animate_job(
        models,
        session,
        jobs.DEFAULT_MODEL,
        upload(workspace, SOURCE),
        upload(workspace, SOURCE, "me.png"),
        jobs.AnimateSettings(),
    )
    assert out.video is None and out.image.suffix == ".png"
    assert Image.open(out.image).size == Image.open(SOURCE).size


def test_a_video_source_keeps_its_head_and_is_length_checked(models, workspace, clip, tmp_path):
    """A video as the source (video-to-video) through the page's handlers: the note on
    upload, a video with the shorter length, and the video-length limit for it too."""
    still = np.asarray(Image.open(SOURCE).convert("RGB"))
    video = tmp_path / "talking.mp4"
    with open_writer(video, 25) as writer:
        for _ in range(8):
            writer.write(still[None])
    session = workspace.session("a")
    note = jobs.check_source(session, upload(workspace, video))
    assert note.status.startswith("a video source: each frame keeps its own head motion") and note.image is None
    assert jobs.check_source(session, upload(workspace, SOURCE)).image is not None
    out = jobs.animate_job(
        models, session, jobs.DEFAULT_MODEL, upload(workspace, video), upload(workspace, clip), jobs.AnimateSettings()
    )
    assert "talking.mp4: ends after 8 of the driver's frames" in out.status and frame_count(out.video) == 8
    long_video = tmp_path / "long.mp4"
    with open_writer(long_video, 25) as writer:
        for _ in range(60):  # 2.4 s, over the workspace's 2 s
            writer.write(still[None, :64, :64])
    assert "long.mp4" in jobs.check_source(session, upload(workspace, long_video)).status


def test_settings_give_only_the_models_controls():
    settings = jobs.AnimateSettings(head=0.5, expression=0.2, eyes=1.0, lips=0.0, suppress_blinks=True, smooth="kalman")
    every = settings.options(("head", "expression", "eyes", "lips", "blinks"))
    assert (every.head, every.expression, every.eyes, every.lips, every.blinks) == (0.5, 0.2, 1.0, 0.0, "suppress")
    assert every.smooth == "kalman"
    mmfa = settings.options(("head", "expression"))  # hidden eyes and lips follow the expression
    assert (mmfa.head, mmfa.expression, mmfa.eyes, mmfa.lips, mmfa.blinks) == (0.5, 0.2, None, None, "keep")
    fomm = settings.options(())
    assert (fomm.head, fomm.expression, fomm.eyes, fomm.lips) == (1.0, 1.0, None, None)
    assert jobs.AnimateSettings(smooth="none").options(()).smooth is None


def test_the_pipelines_refusal_is_shown_in_its_words(models, workspace, clip):
    out = animate_example(models, workspace, workspace.session("a"), clip, jobs.AnimateSettings(relative=False))
    assert out.status == "error: the landmarks model only transfers relative motion (drop --absolute)"


def test_errors_name_the_upload_as_the_cli_names_the_file(models, workspace, tmp_path, clip, capsys):
    (tmp_path / "notes.txt").write_text("not a picture")
    shutil.copy(clip, tmp_path / "driving.mp4")
    make_video(tmp_path / "noface.mp4", num_frames=8, size=(96, 96))
    session = workspace.session("a")
    text = upload(workspace, tmp_path / "notes.txt")
    source, driving, noface = (
        upload(workspace, p) for p in (SOURCE, tmp_path / "driving.mp4", tmp_path / "noface.mp4")
    )
    settings = jobs.AnimateSettings()

    out = jobs.animate_job(models, session, jobs.DEFAULT_MODEL, text, driving, settings)
    expected = cli_error(capsys, tmp_path, "animate", "notes.txt", "driving.mp4", "-o", "out.mp4")
    assert out.status == f"error: {expected}" and expected.startswith("notes.txt: ")
    assert jobs.check_image(session, text).status == out.status  # already on upload

    shutil.copy(SOURCE, tmp_path / "source.png")
    out = jobs.animate_job(models, session, jobs.DEFAULT_MODEL, source, noface, settings)
    expected = cli_error(capsys, tmp_path, "animate", "source.png", "noface.mp4", "-o", "out.mp4")
    assert out.status == f"error: {expected}" and expected.startswith("noface.mp4: no face")
    assert str(workspace.root) not in out.status
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))
    assert list(session.folder.iterdir()) == []  # nothing left behind


def test_unexpected_errors_are_one_generic_line(workspace, caplog):
    def broken():
        raise ValueError(f"{workspace.root}/secret: shape mismatch")

    out = jobs.guarded(workspace.session("a"), broken)
    assert out.status == jobs.UNEXPECTED and "secret" not in out.status
    assert "shape mismatch" in caplog.text  # the traceback is in the server's log


def test_limits(workspace, tmp_path):
    session = workspace.session("a")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (5 * 2**19 + 1))
    assert jobs.check_image(session, upload(workspace, big)).status == (
        "error: big.png: 2.5 MB, over this server's upload limit of 2 MB (reanimate ui --max-upload-mb)"
    )
    long = make_video(tmp_path / "long.mp4", num_frames=75, size=(64, 64), fps=25)
    assert jobs.check_driver(session, upload(workspace, long)).status == (
        "error: long.mp4: 3.0 s long, over this server's limit of 2 s (reanimate ui --max-seconds); trim the video"
    )
    short = make_video(tmp_path / "short.mp4", num_frames=25, size=(64, 64), fps=25)
    assert jobs.check_driver(session, upload(workspace, short)).video.name == "short.mp4"
    with pytest.raises(Exception, match="--max-upload-mb must be greater than 0"):
        Limits(upload_mb=0)
    with pytest.raises(Exception, match="--max-checkpoint-mb must be greater than 0, got -1"):
        Limits(checkpoint_mb=-1)


def test_checkpoints_have_their_own_size_limit(tmp_path):
    """Gradio's one limit is the larger; media between the two reach the handlers, which
    refuse them (and remove them with the session); so do checkpoints over theirs."""
    limits = Limits(upload_mb=1, checkpoint_mb=3)
    assert limits.largest_bytes == 3 * 2**20 and limits.upload_bytes == 2**20
    with Workspace.create(limits, parent=tmp_path) as workspace:
        session = workspace.session("a")
        (tmp_path / "big.png").write_bytes(b"\0" * (2 * 2**20))
        (tmp_path / "huge.safetensors").write_bytes(b"\0" * (3 * 2**20 + 1))
        big, huge = upload(workspace, tmp_path / "big.png"), upload(workspace, tmp_path / "huge.safetensors")
        assert jobs.check_image(session, big).status == (
            "error: big.png: 2.0 MB, over this server's upload limit of 1 MB (reanimate ui --max-upload-mb)"
        )
        refused = jobs.model_controls(jobs.Models(), session, jobs.Choice(jobs.UPLOADED, huge))[0].status
        assert refused == (
            "error: huge.safetensors: 3.0 MB, over this server's checkpoint limit of 3 MB "
            "(reanimate ui --max-checkpoint-mb)"
        )
        with pytest.raises(ReanimateError, match="not a readable PyTorch checkpoint"):
            jobs.Models().uploaded(session, big)  # within the checkpoint limit: read (and refused as one)
        workspace.end_session("a")
        assert not Path(big).exists() and not Path(huge).exists()


def test_no_server_path_but_uploads_is_opened(workspace, tmp_path):
    secret = tmp_path / "secret.png"
    shutil.copy(SOURCE, secret)
    session = workspace.session("a")
    for path in (str(secret), f"{workspace.root}/../secret.png", str(session.folder / "x.png")):
        out = jobs.check_image(session, path)
        assert out.image is None
        assert (
            out.status.endswith("not a file uploaded to this server; upload it through the page")
            or "gone" in out.status
        )
        assert str(tmp_path) not in out.status
    link = workspace.root / "abc" / "link.png"
    link.parent.mkdir()
    link.symlink_to(secret)
    assert jobs.check_image(session, str(link)).status == (
        "error: link.png: not a file uploaded to this server; upload it through the page"
    )
    assert jobs.animate_job(jobs.Models(), session, jobs.DEFAULT_MODEL, None, None, jobs.AnimateSettings()).status == (
        "error: no source image or video: drop a file on it first"
    )


def test_edit_preview_follows_the_yaw_and_encodes_the_source_once(models, workspace, monkeypatch):
    session = workspace.session("e")
    source = upload(workspace, SOURCE)
    opened = []
    original = jobs.EditPipeline.open_source
    monkeypatch.setattr(
        jobs.EditPipeline, "open_source", lambda self, *a, **k: opened.append(1) or original(self, *a, **k)
    )
    still = jobs.edit_preview(models, session, jobs.DEFAULT_MODEL, source, None, jobs.EditSettings())
    a = np.asarray(Image.open(still.image)).astype(int)
    turned = jobs.edit_preview(models, session, jobs.DEFAULT_MODEL, source, None, jobs.EditSettings(yaw=8))
    b = np.asarray(Image.open(turned.image)).astype(int)
    assert a.shape == b.shape == np.asarray(Image.open(SOURCE)).shape
    assert np.abs(a - b).mean() > 0.5 and turned.status == ""
    assert len(opened) == 1
    assert not still.image.exists()  # the previous preview is removed
    far = jobs.edit_preview(models, session, jobs.DEFAULT_MODEL, source, None, jobs.EditSettings(yaw=40))
    assert far.status.startswith("warning: --yaw 40: beyond what the landmarks model turns a head plausibly")


def test_edit_export_writes_the_sweep(models, workspace):
    session = workspace.session("e")
    out = jobs.edit_export(
        models, session, jobs.DEFAULT_MODEL, upload(workspace, SOURCE), None, jobs.EditSettings(pitch=5), 6
    )
    assert out.status == "wrote source-edit-0.mp4 (6 frames)" and frame_count(out.video) == 6
    bad = jobs.edit_export(
        models, session, jobs.DEFAULT_MODEL, upload(workspace, SOURCE), None, jobs.EditSettings(scale=0), 6
    )
    assert bad.status == "error: --scale must be greater than 0, got 0"


@pytest.fixture
def live_route(workspace):
    """The Live tab's server side and a client of its frame route (Starlette's test
    client, on an app with that route alone)."""
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    frames = live.LiveFrames(workspace)
    with TestClient(Starlette(routes=[live.frame_route(frames)])) as client:
        yield frames, client


def post_frame(client, token: str | None, body: bytes):
    headers = {} if token is None else {live.TOKEN_HEADER: token}
    return client.post(f"/{live.FRAME_ROUTE}", content=body, headers=headers)


def test_the_live_route_animates_the_sessions_portrait(models, workspace, clip, live_route):
    frames, client = live_route
    session = workspace.session("l")
    token = frames.token(session)
    assert frames.token(session) == token and len(token) >= 40  # one per session, unguessable
    with open_frames(clip) as reader:
        camera = [live.encode_jpeg(frame) for frame in reader]
    early = post_frame(client, token, camera[0])
    assert (early.status_code, early.text) == (
        422,
        "error: no portrait to animate: drop one on the left (its status says why, if it failed)",
    )
    assert frames.bind(models, session, jobs.DEFAULT_MODEL, upload(workspace, SOURCE)) == ""
    answers = [post_frame(client, token, frame) for frame in camera]
    assert {(a.status_code, a.headers["content-type"], a.headers[live.FACE_HEADER]) for a in answers} == {
        (200, "image/jpeg", "1")
    }
    assert all(float(a.headers[live.SERVER_MS_HEADER]) > 0 for a in answers)
    images = [np.asarray(Image.open(io.BytesIO(a.content))).astype(int) for a in answers]
    height, width = read_image(SOURCE).shape[:2]  # the portrait, its longer side LIVE_SIZE
    assert images[0].shape == (live.LIVE_SIZE, round(width * live.LIVE_SIZE / height), 3)
    assert max(np.abs(images[0] - i).mean() for i in images[1:]) > 0.2  # it moves
    assert list(session.folder.iterdir()) == []  # frames never touch the disk

    frames.end(session)  # the page closed
    assert "live" not in session.cache
    assert post_frame(client, token, camera[0]).status_code == 403


def test_the_live_route_refuses_other_tokens_and_bad_frames(models, workspace, live_route):
    frames, client = live_route
    session = workspace.session("l")
    token = frames.token(session)
    frames.bind(models, session, jobs.DEFAULT_MODEL, upload(workspace, SOURCE))
    refused = "error: this page's live session is not on the server (ended?); reload the page"
    camera = live.encode_jpeg(read_image(SOURCE)[:480, :480])
    for other in (None, "", token[:-1], frames.token(workspace.session("m"))[:-1] + "x"):
        answer = post_frame(client, other, camera)
        assert (answer.status_code, answer.text) == (403, refused)
    cases = {
        b"not a picture": "error: the camera's frame is not a JPEG, PNG or WebP picture",
        live.encode_jpeg(np.zeros((8, 1921, 3), np.uint8)): (
            "error: the camera's frame is 1921x8, over 1920 pixels on a side"
        ),
        b"\xff" * (2 * 2**20 + 5): (
            "error: the camera's frame is over this server's upload limit of 2 MB (reanimate ui --max-upload-mb)"
        ),
    }
    for body, line in cases.items():
        answer = post_frame(client, token, body)
        assert (answer.status_code, answer.text) == (422, line)
    assert post_frame(client, token, camera).status_code == 200  # the session goes on
    assert frames.bind(models, session, "nope", upload(workspace, SOURCE)).startswith("error: unknown model 'nope'")
    assert "live" not in session.cache


def test_session_end_removes_its_files_and_uploads(models, workspace, clip):
    a, b = workspace.session("a"), workspace.session("b")
    shared = upload(workspace, SOURCE)
    own = upload(workspace, clip)
    assert jobs.check_image(a, shared).image and jobs.check_image(b, shared).image
    jobs.check_driver(a, own)
    (a.folder / "result.mp4").write_bytes(b"x")
    examples = workspace.add_examples(SOURCE)
    assert a.folder.stat().st_mode & 0o777 == 0o700 and workspace.root.stat().st_mode & 0o777 == 0o700
    workspace.end_session("a")
    assert not a.folder.exists() and not Path(own).exists()
    assert Path(shared).exists()  # session b still uses it
    workspace.end_session("b")
    assert not Path(shared).exists() and examples[0].exists()
    assert sorted(p.name for p in workspace.root.iterdir()) == ["examples", "sessions"]
    root = workspace.root
    workspace.close()
    assert not root.exists()


def test_the_page_builds_with_every_tab(tmp_path):
    """(In a process of its own: importing Gradio patches tqdm for the rest of the process.)"""
    pytest.importorskip("gradio")
    script = """
import json, os
from reanimate.ui.files import Workspace
from reanimate.ui.jobs import Models
from reanimate.ui.live import LiveFrames
with Workspace.create() as workspace:
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.root)
    from reanimate.ui.app import build_app
    demo = build_app(workspace, Models(), LiveFrames(workspace))
    print(json.dumps([getattr(b, "elem_id", None) for b in demo.blocks.values()]))
"""
    env = dict(os.environ, TMPDIR=str(tmp_path), GRADIO_ANALYTICS_ENABLED="False")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"animate-run", "animate-checkpoint", "edit-yaw", "edit-preview", "live-camera", "live-status"} <= ids
    assert list(tmp_path.iterdir()) == []  # Gradio kept nothing outside the server's folder


def test_a_checkpoint_model_hides_the_controls_it_lacks(workspace, tiny_checkpoint, source_image, driving_video):
    models = jobs.Models([tiny_checkpoint])
    label = tiny_checkpoint.name
    assert models.choices == [jobs.DEFAULT_MODEL, label]
    session = workspace.session("c")
    outcome, shown = jobs.model_controls(models, session, label)
    assert outcome.status == "" and shown == ()
    settings = jobs.AnimateSettings(relative=False, head=0.3)  # a hidden slider does not count
    out = jobs.animate_job(
        models, session, label, upload(workspace, source_image), upload(workspace, driving_video), settings
    )
    *notes, last = out.status.splitlines()
    assert last.startswith("wrote source-animated-0.mp4 (16 frames") and frame_count(out.video) == 16
    assert notes[0].startswith("note: source.png: 72x64 input centre-cropped")  # the upload's own name
    with pytest.raises(Exception, match="nope.safetensors: --checkpoint: no such file"):
        jobs.Models([workspace.root / "nope.safetensors"])


def test_an_uploaded_checkpoint_animates_and_is_loaded_once_per_session(
    workspace, tiny_checkpoint, source_image, driving_video, monkeypatch
):
    """A checkpoint the user uploads (the Animate tab's "your checkpoint") is built as
    ``animate --checkpoint`` builds it, once per session, kept and removed with the
    session; its frames are those of the same file offered with --checkpoint."""
    built = []
    original = jobs.build_pipeline
    monkeypatch.setattr(jobs, "build_pipeline", lambda *a, **k: built.append(a) or original(*a, **k))
    session = workspace.session("u")
    mine = upload(workspace, tiny_checkpoint, "mine.safetensors")
    choice = jobs.Choice(jobs.UPLOADED, mine, jobs.CONFIG_FROM_FILE)
    assert jobs.model_controls(jobs.Models(), session, choice) == (jobs.Outcome(""), ())
    source, driving = upload(workspace, source_image), upload(workspace, driving_video)
    settings = jobs.AnimateSettings(relative=False)
    out = jobs.animate_job(jobs.Models(), session, choice, source, driving, settings)
    assert out.status.splitlines()[-1].startswith("wrote source-animated-0.mp4 (16 frames")
    assert len(built) == 1 and built[0][0] == Path(mine).resolve()  # loaded once, through animate's builder

    offered = jobs.Models([tiny_checkpoint])
    same = jobs.animate_job(offered, workspace.session("v"), tiny_checkpoint.name, source, driving, settings)
    with open_frames(out.video) as a, open_frames(same.video) as b:
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    workspace.end_session("u")
    assert not Path(mine).exists() and session.cache == {}  # the file and its model
    assert jobs.model_controls(jobs.Models(), workspace.session("w"), jobs.Choice(jobs.UPLOADED))[0].status == (
        "error: no checkpoint: drop a file on it first"
    )


def test_an_official_checkpoint_is_read_with_the_chosen_config(workspace, tmp_path, capsys):
    """An official FOMM ``.pth.tar`` (the reference layout) with a built-in config from
    the dropdown, or found from its tensors; a wrong config and a file that is not a
    checkpoint get ``animate``'s lines."""
    model = randomize(build_model(load_config("fomm/synthetic-64"), with_discriminator=True))
    path = save_official(tmp_path / "fomm.pth.tar", model)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    shutil.copy(SOURCE, tmp_path / "source.png")
    names = jobs.config_choices()
    assert names[0] == jobs.CONFIG_FROM_FILE and {"fomm/synthetic-64", "fomm/vox-256", "mmfa/vox-256"} <= set(names)
    assert not any(name.startswith("avatar/") for name in names)  # (no animator reads those)
    session = workspace.session("o")
    official, source = upload(workspace, path), upload(workspace, SOURCE)
    for config in ("fomm/synthetic-64", jobs.CONFIG_FROM_FILE):
        out = jobs.animate_job(
            jobs.Models(), session, jobs.Choice(jobs.UPLOADED, official, config), source, source, jobs.AnimateSettings()
        )
        assert read_image(out.image).shape == (64, 64, 3), out.status  # the config's frames (not a face model)
    assert "note: fomm.pth.tar: its tensors match the shipped config synthetic-64" in out.status

    def line(checkpoint, config, cli_config):
        out = jobs.animate_job(
            jobs.Models(),
            session,
            jobs.Choice(jobs.UPLOADED, checkpoint, config),
            source,
            source,
            jobs.AnimateSettings(),
        )
        file = Path(checkpoint).name
        args = ["animate", "source.png", "source.png", "-o", "out.png", "--checkpoint", file, *cli_config]
        shutil.copy(checkpoint, tmp_path / file)
        assert out.status == f"error: {cli_error(capsys, tmp_path, *args)}"
        return out.status

    assert "fomm.pth.tar" in line(official, "fomm/vox-256", ["--config", "fomm/vox-256"])
    text = upload(workspace, tmp_path / "notes.txt")
    assert line(text, jobs.CONFIG_FROM_FILE, []).startswith("error: notes.txt: not a readable PyTorch checkpoint")


def test_one_job_at_a_time_per_session(models, workspace, clip):
    session = workspace.session("a")
    with jobs.job(session, "animate"):
        out = animate_example(models, workspace, session, clip)
    assert out.status == "error: animate: another job of this page is still running; wait for it to finish"
    assert jobs.animate_job(
        models, workspace.session("b"), jobs.DEFAULT_MODEL, None, None, jobs.AnimateSettings()
    ).status.startswith("error: no source image")


def test_edit_takes_the_expression_of_another_face(models, workspace, clip, tmp_path):
    with open_frames(clip) as reader:
        smile = Image.fromarray(next(iter(reader)))
    smile.save(tmp_path / "smile.png")
    session = workspace.session("e")
    source, reference = upload(workspace, SOURCE), upload(workspace, tmp_path / "smile.png")
    pictures = []
    for blend in (0.0, 1.0):
        settings = jobs.EditSettings(expression_scale=blend)
        out = jobs.edit_preview(models, session, jobs.DEFAULT_MODEL, source, reference, settings)
        pictures.append(np.asarray(Image.open(out.image)).astype(int))
    plain = jobs.edit_preview(models, session, jobs.DEFAULT_MODEL, source, None, jobs.EditSettings())
    assert np.abs(pictures[0] - np.asarray(Image.open(plain.image)).astype(int)).mean() < 0.05  # blend 0: her own
    assert np.abs(pictures[1] - pictures[0]).mean() > 0.2


# -- the expression walk (reanimate ui --vae: `reanimate interpolate` in the Edit tab) --------


def stretching_vae(path: Path, f_a: torch.Tensor, f_b: torch.Tensor, stretch: float) -> Path:
    """An expression VAE file whose latent line decodes to ``f_a + stretch * t * (f_b - f_a)``
    (``(1, F)`` each): identity-like linear E_f and G_f, so that the walk of a random-weight
    model, whose expression encoder tells faces apart only a little, shows in its frames."""
    dim = f_a.shape[-1]
    vae = ExpressionVAE(ExpressionVAEConfig(feature_dim=dim, latent_dim=dim, num_layers=0))
    with torch.no_grad():
        encoder, decoder = vae.encoder[0], vae.decoder[0]
        encoder.weight.zero_()
        encoder.weight[:dim] = torch.eye(dim)  # mu = f - f_a, logvar = 0
        encoder.bias.zero_()
        encoder.bias[:dim] = -f_a[0]
        decoder.weight.copy_(stretch * torch.eye(dim))
        decoder.bias.copy_(f_a[0])
    return save_expression_vae(path, vae)


def walk_files(folder: Path, clip: Path) -> tuple[Path, Path, Path, Path]:
    """In ``folder``: a tiny MMFA checkpoint, two expression images (the bundled portrait's
    own and ``clip``'s first face) and a VAE that walks between them (:func:`stretching_vae`)."""
    mmfa = tiny_mmfa_checkpoint(folder / "mmfa.safetensors")
    with open_frames(clip) as reader:
        Image.fromarray(next(iter(reader))).save(folder / "b.png")
    a, b = SOURCE, folder / "b.png"
    pipeline = ExpressionPipeline(build_animator(mmfa, device="cpu"))
    face = pipeline.open_source(SOURCE)
    f_a, f_b = pipeline.features_of(face, a), pipeline.features_of(face, b)
    return mmfa, a, b, stretching_vae(folder / "vae.safetensors", f_a, f_b, 1000.0)


@pytest.fixture(scope="module")
def walk(tmp_path_factory, clip):
    return walk_files(tmp_path_factory.mktemp("walk"), clip)


def test_the_walk_preview_is_the_interpolation_at_t(walk, workspace, tmp_path):
    mmfa, a, b, vae = walk
    models = jobs.Models([mmfa], "cpu", vae)
    session = workspace.session("w")
    source, up_a, up_b = (upload(workspace, p) for p in (SOURCE, a, b))
    assert jobs.model_controls(models, session, mmfa.name, "edit") == (jobs.Outcome(""), ("walk",))
    previews = []
    for t in (0.0, 0.5, 1.0):
        out = jobs.walk_preview(models, session, mmfa.name, source, up_a, up_b, t)
        assert out.status == ""
        previews.append(read_image(out.image).astype(int))

    # `reanimate interpolate`'s frames (PNG: exact) on the same files: the preview at t is the frame at t
    pipeline = ExpressionPipeline(build_animator(mmfa, device="cpu"))
    pipeline.interpolate(SOURCE, a, b, read_vae(vae), tmp_path / "frames", frames=3, progress=False)
    frames = [read_image(p).astype(int) for p in list_frame_files(tmp_path / "frames")]
    for preview, frame in zip(previews, frames):
        assert np.abs(preview - frame).max() <= 1 and np.mean(preview != frame) < 1e-3
    assert np.mean(frames[0] != frames[-1]) > 0.01  # the walk shows (not the same picture three times)

    out = jobs.walk_export(models, session, mmfa.name, source, up_a, up_b, 5)
    assert out.status == "wrote source-walk-3.mp4 (5 frames)" and frame_count(out.video) == 5
    with open_frames(out.video) as reader:
        video = [frame.astype(int) for frame in reader]
    for frame, preview in ((video[0], previews[0]), (video[-1], previews[-1])):
        assert np.abs(frame - preview).mean() < 2  # (H.264)


def test_the_walk_shows_only_with_expression_control_and_a_vae(walk, workspace):
    mmfa, _, _, vae = walk
    session = workspace.session("w")
    with_vae, without = jobs.Models([mmfa], "cpu", vae), jobs.Models([mmfa], "cpu")
    assert jobs.model_controls(with_vae, session, jobs.DEFAULT_MODEL, "edit")[1] == ()
    assert jobs.model_controls(without, session, mmfa.name, "edit")[1] == ()
    source = upload(workspace, SOURCE)
    assert jobs.walk_preview(without, session, mmfa.name, source, source, source, 0.5).status == (
        "error: this server has no expression VAE; start it with reanimate ui --vae RUN"
    )
    assert jobs.walk_preview(with_vae, session, jobs.DEFAULT_MODEL, source, source, source, 0.5).status == (
        "error: the landmarks model has no expression features (MMFA paper Sec. 3.2); "
        "give an MMFA checkpoint with --checkpoint"
    )


def test_walk_errors_are_the_clis_lines(walk, workspace, tmp_path, capsys, monkeypatch):
    mmfa, a, b, _ = walk
    other = save_expression_vae(tmp_path / "other.safetensors", ExpressionVAE(ExpressionVAEConfig(feature_dim=16)))
    models = jobs.Models([mmfa], "cpu", other)
    session = workspace.session("w")
    source, up_a, up_b = (upload(workspace, p) for p in (SOURCE, a, b))
    out = jobs.walk_preview(models, session, mmfa.name, source, up_a, up_b, 0.5)
    args = ["interpolate", SOURCE, a, b, "-o", "walk.mp4", "--checkpoint", mmfa, "--vae", other, "--device", "cpu"]
    line = cli_error(capsys, tmp_path, *args, "-q")
    assert out.status == f"error: {line}" and "trained on 16-d features, this mmfa model gives 32-d" in line
    assert jobs.walk_export(models, session, mmfa.name, source, up_a, None, 5).status == (
        "error: no expression image B: drop a file on it first"
    )

    # an unreadable --vae or one without a model: the server does not start
    def no_server(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr("reanimate.ui.server.Workspace.create", no_server)
    bad = tmp_path / "novae"
    cli_line = cli_error(capsys, tmp_path, *args[:-4], "--vae", bad, "--device", "cpu", "-q")
    assert cli_error(capsys, tmp_path, "ui", "--checkpoint", mmfa, "--vae", bad) == cli_line
    assert (
        cli_line
        == f"{bad}: no such expression VAE file; --vae takes a `reanimate train-vae` run folder or its model.safetensors"
    )
    assert cli_error(capsys, tmp_path, "ui", "--vae", other) == (
        "--vae: give the MMFA model it was trained for with --checkpoint"
    )
    with pytest.raises(ReanimateError, match="no such expression VAE file"):
        jobs.Models([mmfa], vae=bad)
