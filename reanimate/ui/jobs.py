"""What the web app's buttons and sliders do, as plain functions on the library's
pipelines (no logic the CLI lacks: the widgets' values become
:class:`~reanimate.pipelines.animate.AnimationOptions` and
:class:`~reanimate.pipelines.edit.EditOptions`; the Edit tab's expression walk is
:class:`~reanimate.pipelines.expressions.ExpressionPipeline`'s ``interpolate`` in pieces).

Every job returns a :class:`Outcome`: the files made and one status line. A
:class:`~reanimate.errors.ReanimateError` becomes ``error: <the CLI's line>`` with the
user's file names (:meth:`~reanimate.ui.files.Session.public`); anything else is logged
with its traceback and shown as one generic line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..animators.registry import families
from ..errors import InputError, ReanimateError
from ..io import is_video_path, read_image, write_image
from ..models.config import builtin_configs, config_family
from ..pipelines.animate import AnimationOptions, AnimationPipeline, build_pipeline, is_still_image
from ..pipelines.edit import EditOptions, EditPipeline, HeadPipeline, check_edit, sweep
from ..pipelines.expressions import ExpressionPipeline, check_interpolation, has_expression_control, read_vae
from .files import Session

log = logging.getLogger(__name__)

#: the model dropdown's first entry: the zero-shot animator (no weights)
DEFAULT_MODEL = "default (face landmarks, no weights)"
#: the Animate tab's model entry for a checkpoint file the user uploads
UPLOADED = "your checkpoint (upload it below)"
#: the config dropdown's first entry: the config a checkpoint carries (or that its tensors identify)
CONFIG_FROM_FILE = "from the checkpoint"
#: what the page shows for an unexpected exception (the traceback goes to the server's log)
UNEXPECTED = "error: something went wrong on the server (see its log); try other inputs or reload the page"
#: frames of the edit pipeline's sweep rendered per call (EditOptions.batch_size)
EDIT_BATCH = 4


@dataclass
class Outcome:
    """A job's files (None where it made none) and its status line(s)."""

    status: str
    video: Path | None = None
    image: Path | None = None


@dataclass(frozen=True)
class Choice:
    """The model a tab's widgets choose: one the server offers, by ``label``, or (label
    :data:`UPLOADED`) the ``checkpoint`` the user uploaded, read with the built-in
    ``config`` (:data:`CONFIG_FROM_FILE` or None: the file's own, as ``animate`` without
    ``--config``)."""

    label: str = DEFAULT_MODEL
    checkpoint: str | None = None
    config: str | None = None


@dataclass
class Loaded:
    """A pipeline built for one model and one use, and the lock its animator is used under."""

    pipeline: AnimationPipeline
    lock: threading.Lock = field(default_factory=threading.Lock)


class Models:
    """The models a server offers: the default animator and each ``--checkpoint`` file,
    by label (the file's name); each built on first use, once per use ("animate",
    "edit"), so that one tab's job does not wait for the other's. A checkpoint a user
    uploads (:meth:`uploaded`) is built the same way and kept in the user's session.

    ``vae``: an expression VAE (``reanimate ui --vae``, read at once: a file that does not
    load is the CLI's one line before anything starts), offered with every model that has
    expression control; one whose features are another size gets ``interpolate``'s line
    when the walk is used."""

    def __init__(self, checkpoints=(), device: str = "auto", vae=None):
        self.device = device
        if vae is not None and not checkpoints:
            raise ReanimateError("--vae: give the MMFA model it was trained for with --checkpoint")
        self.vae = None if vae is None else read_vae(vae)
        self.files: dict[str, Path | None] = {DEFAULT_MODEL: None}
        for checkpoint in checkpoints:
            path = Path(checkpoint)
            if not path.exists():
                raise InputError(path, "--checkpoint: no such file")
            label, n = path.name, 2
            while label in self.files:
                label, n = f"{path.name} ({n})", n + 1
            self.files[label] = path
        self._loaded: dict[tuple[str, str], Loaded] = {}
        self._lock = threading.Lock()

    @property
    def choices(self) -> list[str]:
        return list(self.files)

    def get(self, label: str, use: str = "animate") -> Loaded:
        """The pipeline of ``label`` for ``use``, built on first use (the CLI's one-line
        errors for a checkpoint that does not load)."""
        if label not in self.files:
            raise ReanimateError(f"unknown model {label!r}; choose one of {', '.join(self.files)}")
        with self._lock:
            key = (label, use)
            if key not in self._loaded:
                self._loaded[key] = Loaded(build_pipeline(self.files[label], device=self.device))
            return self._loaded[key]

    def uploaded(self, session: Session, checkpoint, config: str | None = None) -> Loaded:
        """The pipeline of a ``checkpoint`` the session uploaded (within the checkpoint size
        limit), built as ``animate --checkpoint FILE [--config NAME]`` builds it, once per
        file and config: kept in the session, so gone with it."""
        upload = session.upload(checkpoint, "checkpoint", checkpoint=True)
        config = None if config in (None, "", CONFIG_FROM_FILE) else config
        key = (str(upload), config)
        with session.loading:
            cached = session.cache.get("checkpoint")
            if cached is None or cached[0] != key:
                session.cache.pop("checkpoint", None)  # (the previous model's memory first)
                session.cache["checkpoint"] = (key, Loaded(build_pipeline(upload, config=config, device=self.device)))
            return session.cache["checkpoint"][1]

    def chosen(self, session: Session, model: str | Choice, use: str = "animate") -> Loaded:
        """The pipeline of a tab's :class:`Choice` (or a label) for ``use``."""
        choice = model if isinstance(model, Choice) else Choice(model)
        if choice.label == UPLOADED:
            return self.uploaded(session, choice.checkpoint, choice.config)
        return self.get(choice.label, use)

    def controls(self, session: Session, model: str | Choice, use: str = "animate") -> tuple[str, ...]:
        """The controls the model honours on a tab: for "animate" the retargeting ones
        (``Requirements.retarget``), for "edit" ``("walk",)`` where the expression walk is
        offered (a model with expression control, and the server's VAE)."""
        if use == "edit":
            animator = self.chosen(session, model, "edit").pipeline.animator
            return ("walk",) if self.vae is not None and has_expression_control(animator) else ()
        return self.chosen(session, model).pipeline.requirements.retarget


def config_choices() -> list[str]:
    """The config dropdown: :data:`CONFIG_FROM_FILE`, then the built-in configs of the
    registered families that load checkpoints, by their full names (``fomm/vox-256``),
    what ``animate --config`` takes."""
    known = {name for name, family in families().items() if family.uses_checkpoint}
    names = [name for name in builtin_configs() if "/" in name and config_family(name) in known]
    return [CONFIG_FROM_FILE, *names]


@contextlib.contextmanager
def job(session: Session, what: str) -> Iterator[None]:
    """One job of ``session`` at a time: a second one while the first runs is refused."""
    if not session.job.acquire(blocking=False):
        raise ReanimateError(f"{what}: another job of this page is still running; wait for it to finish")
    try:
        yield
    finally:
        session.job.release()


def guarded(session: Session, work: Callable[[], Outcome]) -> Outcome:
    """``work()``, with errors turned into a status line (see the module's docstring)."""
    try:
        return work()
    except ReanimateError as exc:
        return Outcome(f"error: {session.public(str(exc))}")
    except Exception:
        log.exception("reanimate ui: unexpected error")
        return Outcome(UNEXPECTED)


# -- uploads ---------------------------------------------------------------------------


def check_image(session: Session, path) -> Outcome:
    """An uploaded image, read as ``animate`` reads a source (its errors at once): the
    upload to show, or the error line."""
    if path in (None, ""):
        return Outcome("")

    def work() -> Outcome:
        upload = session.upload(path, "image")
        read_image(upload)
        return Outcome("", image=upload)

    return guarded(session, work)


def check_source(session: Session, path) -> Outcome:
    """An uploaded Animate source: an image as :func:`check_image`, or a video (each of
    its frames keeps its own head motion: :mod:`~reanimate.pipelines.video_source`) with
    its length checked against the limit; the image to show, or a note, or the error."""
    if path in (None, ""):
        return Outcome("")

    def work() -> Outcome:
        upload = session.upload(path, "source image or video")
        if not is_video_path(upload):
            return check_image(session, path)
        session.check_duration(upload)
        return Outcome("a video source: each frame keeps its own head motion and takes the driver's expression")

    return guarded(session, work)


def check_driver(session: Session, path) -> Outcome:
    """An uploaded driver: a still image read, a video opened and its length checked
    against the limit; the video to show, or the error line."""
    if path in (None, ""):
        return Outcome("")

    def work() -> Outcome:
        upload = session.upload(path, "driving video or image")
        if is_still_image(upload):
            read_image(upload)
            return Outcome("")
        session.check_duration(upload)
        return Outcome("", video=upload)

    return guarded(session, work)


def model_controls(
    models: Models, session: Session, model: str | Choice, use: str = "animate"
) -> tuple[Outcome, tuple[str, ...]]:
    """The controls ``model`` honours on the tab ``use`` (:meth:`Models.controls`; the
    model is loaded to find out) and a status line: empty, or the error that loading it gave."""
    shown: tuple[str, ...] = ()

    def work() -> Outcome:
        nonlocal shown
        shown = models.controls(session, model, use)
        return Outcome("")

    return guarded(session, work), shown


# -- animate ---------------------------------------------------------------------------


@dataclass
class AnimateSettings:
    """The Animate tab's widgets (retargeting factors 0..2; ``face_index`` None: the
    largest face; ``faces`` "one" or "all"; ``smooth`` "none", "one-euro" or "kalman")."""

    relative: bool = True
    paste_back: bool = True
    faces: str = "one"
    face_index: int | None = None
    smooth: str = "none"
    head: float = 1.0
    expression: float = 1.0
    eyes: float = 1.0
    lips: float = 1.0
    suppress_blinks: bool = False

    def options(self, controls: tuple[str, ...]) -> AnimationOptions:
        """The pipeline's options. Retargeting factors count only where the model has
        the control (the page shows only those): ``eyes`` and ``lips`` otherwise follow
        ``expression``, as when ``animate`` is not given ``--eyes``/``--lips``."""

        def factor(name: str, value: float, default: float | None) -> float | None:
            return value if name in controls else default

        return AnimationOptions(
            relative=self.relative,
            paste_back=self.paste_back,
            faces=self.faces,
            face_index=None if self.face_index is None else int(self.face_index),
            smooth=None if self.smooth == "none" else self.smooth,
            head=factor("head", self.head, 1.0),
            expression=factor("expression", self.expression, 1.0),
            eyes=factor("eyes", self.eyes, None),
            lips=factor("lips", self.lips, None),
            blinks="suppress" if self.suppress_blinks and "blinks" in controls else "keep",
        )


def animate_job(
    models: Models,
    session: Session,
    model: str | Choice,
    source,
    driving,
    settings: AnimateSettings,
    progress: Callable | None = None,
) -> Outcome:
    """Animate the uploaded ``source`` with the uploaded ``driving`` video (or image):
    a video (an image for a still driver) in the session's folder."""

    def work() -> Outcome:
        with job(session, "animate"):
            source_path = session.upload(source, "source image or video")
            driving_path = session.upload(driving, "driving video or image")
            still = is_still_image(driving_path)
            for path in (source_path, driving_path):
                if is_video_path(path):
                    session.check_duration(path)
            if progress is not None:
                progress(0.0, desc="loading the model")
            loaded = models.chosen(session, model)
            options = settings.options(loaded.pipeline.requirements.retarget)
            output = session.output(f"{source_path.stem}-animated", ".png" if still else ".mp4")
            session.names[str(output)] = output.name
            with loaded.lock:
                result = loaded.pipeline.animate(source_path, driving_path, output, options, progress=True)
            lines = [f"note: {session.public(note)}" for note in result.notes]
            lines.append(
                f"wrote {output.name} ({result.frames} frame{'s' if result.frames > 1 else ''}, "
                f"{result.frames_per_second:.1f} frames/s)"
            )
            status = "\n".join(lines)
            return Outcome(status, image=output) if still else Outcome(status, video=output)

    return guarded(session, work)


# -- edit ------------------------------------------------------------------------------


@dataclass
class EditSettings:
    """The Edit tab's sliders, as :class:`~reanimate.pipelines.edit.EditOptions` reads them."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 1.0
    move_x: float = 0.0
    move_y: float = 0.0
    expression_scale: float = 1.0

    def options(self, expression_from: Path | None, frames: int = 1, fps: float = 25.0) -> EditOptions:
        return EditOptions(
            yaw=self.yaw,
            pitch=self.pitch,
            roll=self.roll,
            scale=self.scale,
            translate=(self.move_x, self.move_y),
            expression_from=expression_from,
            expression_scale=self.expression_scale,
            frames=int(frames),
            fps=fps,
            batch_size=EDIT_BATCH,
        )


def _edit_source(loaded: Loaded, pipeline: HeadPipeline, session: Session, model: str, source):
    """The encoded source and its head, once per upload and model (kept in the session,
    with what was worked out for it: a reference's expression, the walk's features)."""
    source_path = session.upload(source, "source image")
    key = ("edit", model, str(source_path))
    if session.cache.get("edit-key") != key:
        for name in ("edit-key", "face", "head", "expression-key", "expression", "walk-key", "walk"):
            session.cache.pop(name, None)
        with loaded.lock:
            face = pipeline.open_source(source_path)
            session.cache.update({"edit-key": key, "face": face, "head": pipeline.animator.source_head(face.source)})
    return session.cache["face"], session.cache["head"]


def _edit_heads(models: Models, session: Session, model: str, source, reference, options: EditOptions):
    """The edit pipeline, the encoded source and the heads from the source's to the
    edited one (``options.frames``)."""
    loaded = models.get(model, "edit")
    pipeline = EditPipeline(loaded.pipeline.animator)
    face, head = _edit_source(loaded, pipeline, session, model, source)
    expression = None
    if options.expression_from is not None:
        if session.cache.get("expression-key") != options.expression_from:
            with loaded.lock:
                crop, landmarks = pipeline.crop_like(face, options.expression_from)
                found = pipeline.animator.expression_from(face.source, crop, landmarks)
            session.cache.update({"expression-key": options.expression_from, "expression": found})
        expression = session.cache["expression"]
    heads = sweep(head, pipeline.target_head(head, options, expression), options.frames)
    return loaded, pipeline, face, heads


def _reference(session: Session, reference) -> Path | None:
    return None if reference in (None, "") else session.upload(reference, "expression image")


def _preview(session: Session, loaded: Loaded, pipeline: HeadPipeline, face, heads, output: Path) -> Path:
    """The first of ``heads`` rendered into the image ``output``; the previous preview is
    removed."""
    with loaded.lock:
        frame = pipeline.render(face, heads, [0])[0]
    write_image(output, frame)
    previous, session.cache["preview"] = session.cache.get("preview"), output
    if previous is not None:
        previous.unlink(missing_ok=True)
    return output


def _video(session: Session, source, stem: str) -> Path:
    """A fresh video path in the session's folder named after the uploaded source."""
    source_path = session.upload(source, "source image")
    output = session.output(f"{source_path.stem}-{stem}", ".mp4")
    session.names[str(output)] = output.name
    return output


def _write(loaded: Loaded, pipeline: HeadPipeline, face, heads, output: Path, fps: float, desc: str) -> Outcome:
    with loaded.lock:
        count = pipeline.write(output, face, heads, fps, EDIT_BATCH, progress=True, desc=desc)
    return Outcome(f"wrote {output.name} ({count} frames)", video=output)


def edit_preview(models: Models, session: Session, model: str, source, reference, settings: EditSettings) -> Outcome:
    """The edited still (an image in the session's folder; the previous preview is
    removed). The source is encoded once per upload."""

    def work() -> Outcome:
        output = session.output("preview", ".png")
        options = settings.options(_reference(session, reference))
        check_edit(options, output)
        loaded, pipeline, face, heads = _edit_heads(models, session, model, source, reference, options)
        _preview(session, loaded, pipeline, face, heads, output)
        warning = pipeline.check_turn(options)
        return Outcome(f"warning: {warning}" if warning else "", image=output)

    return guarded(session, work)


def edit_export(
    models: Models,
    session: Session,
    model: str,
    source,
    reference,
    settings: EditSettings,
    frames: int,
    fps: float = 25.0,
) -> Outcome:
    """A video of ``frames`` frames sweeping from the source's head to the edited one."""

    def work() -> Outcome:
        with job(session, "export"):
            output = _video(session, source, "edit")
            options = settings.options(_reference(session, reference), frames, fps)
            check_edit(options, output)
            loaded, pipeline, face, heads = _edit_heads(models, session, model, source, reference, options)
            return _write(loaded, pipeline, face, heads, output, options.fps, "edit")

    return guarded(session, work)


# -- the expression walk (MMFA Sec. 4.4: `reanimate interpolate`) ----------------------


def _walk(models: Models, session: Session, model: str, source, expression_a, expression_b):
    """The expression pipeline on the Edit tab's model, the encoded source and the
    expression features of the two images (once per pair, kept in the session)."""
    if models.vae is None:
        raise ReanimateError("this server has no expression VAE; start it with reanimate ui --vae RUN")
    loaded = models.get(model, "edit")
    pipeline = ExpressionPipeline(loaded.pipeline.animator)
    face, _ = _edit_source(loaded, pipeline, session, model, source)
    paths = [
        session.upload(image, f"expression image {end}") for image, end in ((expression_a, "A"), (expression_b, "B"))
    ]
    key = tuple(map(str, paths))
    if session.cache.get("walk-key") != key:
        with loaded.lock:
            ends = pipeline.expression_ends(face, models.vae, *paths)
        session.cache.update({"walk-key": key, "walk": ends})
    return loaded, pipeline, face, session.cache["walk"]


def walk_preview(models: Models, session: Session, model: str, source, expression_a, expression_b, t: float) -> Outcome:
    """The source, with its own pose, its expression the point ``t`` (0: A's, 1: B's) of
    the VAE's latent line between the two images' expressions (an image in the session's
    folder, as :func:`edit_preview`'s)."""

    def work() -> Outcome:
        loaded, pipeline, face, (f_a, f_b) = _walk(models, session, model, source, expression_a, expression_b)
        with loaded.lock:
            heads = pipeline.heads_at(face, models.vae, f_a, f_b, torch.tensor([float(t)]))
        return Outcome("", image=_preview(session, loaded, pipeline, face, heads, session.output("preview", ".png")))

    return guarded(session, work)


def walk_export(
    models: Models, session: Session, model: str, source, expression_a, expression_b, frames: int, fps: float = 25.0
) -> Outcome:
    """``reanimate interpolate``'s video: ``frames`` frames from A's expression to B's."""

    def work() -> Outcome:
        with job(session, "export"):
            output = _video(session, source, "walk")
            check_interpolation(output, int(frames), fps, EDIT_BATCH, ())
            loaded, pipeline, face, (f_a, f_b) = _walk(models, session, model, source, expression_a, expression_b)
            with loaded.lock:
                heads = pipeline.interpolated_heads(face, models.vae, f_a, f_b, int(frames))
            return _write(loaded, pipeline, face, heads, output, fps, "interpolate")

    return guarded(session, work)
