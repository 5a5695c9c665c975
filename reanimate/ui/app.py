"""The web app's page: three tabs (Animate, Edit, Live) whose widgets call
:mod:`reanimate.ui.jobs` and :mod:`reanimate.ui.live` for the browser's session.

Layout and wiring only: what a button does is in those modules. Inputs are file drop
zones (``gr.File``): every upload reaches the library's readers, so a bad file gets the
CLI's own one-line message in the tab's status box, never a stack trace.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import jobs, live
from .files import Workspace

#: the repository's bundled example media (absent in an installed wheel: no examples then)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: slider ranges of the Edit tab: degrees, a factor, fractions of the face crop's width
TURN = 30.0
SCALE = (0.5, 1.5)
MOVE = 0.3
#: the Live tab: seconds between webcam frames sent to the server
LIVE_EVERY = 0.04
#: fonts the page asks for (the default theme's come from Google: a closed network stalls on them)
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]


def build_app(workspace: Workspace, models: jobs.Models) -> gr.Blocks:
    """The page, serving ``models`` with files in ``workspace`` (Gradio's upload folder:
    ``GRADIO_TEMP_DIR`` must name ``workspace.root`` before this is called)."""
    examples = workspace.add_examples(EXAMPLES / "source.png", EXAMPLES / "driving.mp4")

    def session(request: gr.Request):
        return workspace.session(request.session_hash)

    with gr.Blocks(title="reanimate", analytics_enabled=False) as demo:
        gr.Markdown("# reanimate\nBring a portrait to life with the motion of a driving video or your webcam.")
        with gr.Tabs():
            with gr.Tab("Animate", id="animate"):
                _animate_tab(models, session, examples)
            with gr.Tab("Edit", id="edit"):
                _edit_tab(models, session, examples)
            with gr.Tab("Live", id="live"):
                _live_tab(models, session, examples)

        def end(request: gr.Request) -> None:
            live.close(workspace.sessions.get(request.session_hash))
            workspace.end_session(request.session_hash)

        demo.unload(end)
    return demo


def theme() -> gr.Theme:
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=["ui-monospace", "monospace"])


def _model_choice(models: jobs.Models, elem_id: str) -> gr.Dropdown:
    return gr.Dropdown(models.choices, value=jobs.DEFAULT_MODEL, label="Model", elem_id=elem_id)


def _status(elem_id: str) -> gr.Textbox:
    return gr.Textbox(label="Status", interactive=False, lines=2, elem_id=elem_id)


def _factor(label: str, elem_id: str) -> gr.Slider:
    return gr.Slider(0.0, 2.0, value=1.0, step=0.05, label=label, elem_id=elem_id)


def _animate_tab(models: jobs.Models, session, examples: list[Path]) -> None:
    with gr.Row():
        with gr.Column():
            source = gr.File(label="Source image (or video)", elem_id="animate-source")
            source_preview = gr.Image(label="Source", interactive=False, height=240, elem_id="animate-source-preview")
        with gr.Column():
            driving = gr.File(label="Driving video (or image)", elem_id="animate-driving")
            driving_preview = gr.Video(label="Driver", interactive=False, height=240, elem_id="animate-driving-preview")
        with gr.Column():
            result = gr.Video(label="Result", interactive=False, elem_id="animate-result")
            result_image = gr.Image(label="Result", interactive=False, visible=False, elem_id="animate-result-image")
            status = _status("animate-status")
    run = gr.Button("Animate", variant="primary", elem_id="animate-run")
    with gr.Accordion("Options", open=False):
        with gr.Row():
            model = _model_choice(models, "animate-model")
            motion = gr.Radio(["relative", "absolute"], value="relative", label="Motion")
            smooth = gr.Dropdown(["none", "one-euro", "kalman"], value="none", label="Smoothing")
        with gr.Row():
            faces = gr.Radio(["one", "all"], value="one", label="Faces")
            face_index = gr.Number(0, precision=0, minimum=0, label="Face index (0: the largest)")
            paste_back = gr.Checkbox(True, label="Paste back into the full picture")
        with gr.Row():
            factors = {name: _factor(name, f"animate-{name}") for name in ("head", "expression", "eyes", "lips")}
            blinks = gr.Checkbox(False, label="suppress blinks", elem_id="animate-blinks")
    if examples:
        gr.Examples([[str(p) for p in examples]], [source, driving], label="Example")

    def show_source(path, request: gr.Request):
        out = jobs.check_source(session(request), path)
        return out.image, out.status

    def show_driving(path, request: gr.Request):
        out = jobs.check_driver(session(request), path)
        return out.video, out.status

    def controls(label, request: gr.Request):
        out, shown = jobs.model_controls(models, session(request), label)
        return [gr.update(visible=name in shown) for name in (*factors, "blinks")] + [out.status]

    # (Gradio tracks the pipeline's progress bar for a gr.Progress given as a default value)
    def animate(
        label,
        src,
        drv,
        motion_,
        paste,
        faces_,
        index,
        smooth_,
        head,
        expr,
        eyes,
        lips,
        suppress,
        request: gr.Request,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):
        settings = jobs.AnimateSettings(
            motion_ == "relative", paste, faces_, index, smooth_, head, expr, eyes, lips, suppress
        )
        out = jobs.animate_job(models, session(request), label, src, drv, settings, progress)
        return out.video, gr.update(value=out.image, visible=out.image is not None), out.status

    source.change(show_source, source, [source_preview, status])
    driving.change(show_driving, driving, [driving_preview, status])
    model.change(controls, model, [*factors.values(), blinks, status])
    inputs = [model, source, driving, motion, paste_back, faces, face_index, smooth, *factors.values(), blinks]
    run.click(
        animate,
        inputs,
        [result, result_image, status],
        concurrency_id="render",
        concurrency_limit=1,
    )


def _edit_tab(models: jobs.Models, session, examples: list[Path]) -> None:
    with gr.Row():
        with gr.Column():
            source = gr.File(label="Source image", elem_id="edit-source")
            reference = gr.File(label="Expression from (optional image)", elem_id="edit-reference")
            model = _model_choice(models, "edit-model")
        with gr.Column():
            preview = gr.Image(label="Preview", interactive=False, elem_id="edit-preview")
            status = _status("edit-status")
    with gr.Row():
        yaw = gr.Slider(-TURN, TURN, value=0, step=1, label="yaw (degrees)", elem_id="edit-yaw")
        pitch = gr.Slider(-TURN, TURN, value=0, step=1, label="pitch (degrees)", elem_id="edit-pitch")
        roll = gr.Slider(-TURN, TURN, value=0, step=1, label="roll (degrees)", elem_id="edit-roll")
    with gr.Row():
        scale = gr.Slider(*SCALE, value=1.0, step=0.01, label="scale", elem_id="edit-scale")
        move_x = gr.Slider(-MOVE, MOVE, value=0, step=0.01, label="move x (crop widths)", elem_id="edit-x")
        move_y = gr.Slider(-MOVE, MOVE, value=0, step=0.01, label="move y (crop widths)", elem_id="edit-y")
        blend = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="expression blend", elem_id="edit-blend")
    with gr.Row():
        frames = gr.Slider(2, 250, value=50, step=1, label="sweep frames", elem_id="edit-frames")
        export = gr.Button("Export sweep video", elem_id="edit-export")
    # MMFA Sec. 4.4 (`reanimate interpolate`): shown for a model with expression control on a server with --vae
    with gr.Group(visible=False, elem_id="edit-walk") as walk:
        gr.Markdown(
            "**Expression walk** (the server's expression VAE): the source keeps its own pose, its expression "
            "moves along the latent line from A's expression to B's"
        )
        with gr.Row():
            walk_a = gr.File(label="Expression A (image)", elem_id="edit-walk-a")
            walk_b = gr.File(label="Expression B (image)", elem_id="edit-walk-b")
        with gr.Row():
            walk_t = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="t (0: A, 1: B)", elem_id="edit-walk-t")
            walk_export = gr.Button("Export walk video (sweep frames)", elem_id="edit-walk-export")
    video = gr.Video(label="Exported video", interactive=False, elem_id="edit-video")
    if examples:
        gr.Examples([[str(examples[0])]], [source], label="Example")

    sliders = [yaw, pitch, roll, scale, move_x, move_y, blend]

    # (Gradio hands gr.Request only to a parameter before any *args: the sliders are spelt out)
    def show(label, src, ref, yaw_, pitch_, roll_, scale_, x, y, blend_, request: gr.Request):
        if src is None:
            return None, ""
        settings = jobs.EditSettings(yaw_, pitch_, roll_, scale_, x, y, blend_)
        out = jobs.edit_preview(models, session(request), label, src, ref, settings)
        return out.image, out.status

    def sweep(
        label,
        src,
        ref,
        count,
        yaw_,
        pitch_,
        roll_,
        scale_,
        x,
        y,
        blend_,
        request: gr.Request,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):
        settings = jobs.EditSettings(yaw_, pitch_, roll_, scale_, x, y, blend_)
        out = jobs.edit_export(models, session(request), label, src, ref, settings, count)
        return out.video, out.status

    def controls(label, request: gr.Request):
        out, shown = jobs.model_controls(models, session(request), label, "edit")
        return gr.update(visible="walk" in shown), out.status or gr.update()  # (the preview's status stays)

    def show_walk(label, src, a, b, t, request: gr.Request):
        if src is None or a is None or b is None:
            return gr.update(), ""
        out = jobs.walk_preview(models, session(request), label, src, a, b, t)
        return out.image, out.status

    def walk_video(label, src, a, b, count, request: gr.Request, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        out = jobs.walk_export(models, session(request), label, src, a, b, count)
        return out.video, out.status

    inputs = [model, source, reference, *sliders]
    for trigger in (source.change, reference.change, model.change, *(s.release for s in sliders)):
        trigger(show, inputs, [preview, status], concurrency_id="preview", trigger_mode="always_last")
    export.click(sweep, [model, source, reference, frames, *sliders], [video, status], concurrency_id="render")
    model.change(controls, model, [walk, status])
    walk_inputs = [model, source, walk_a, walk_b, walk_t]
    for trigger in (walk_a.change, walk_b.change, walk_t.release):
        trigger(show_walk, walk_inputs, [preview, status], concurrency_id="preview", trigger_mode="always_last")
    walk_export.click(walk_video, [model, source, walk_a, walk_b, frames], [video, status], concurrency_id="render")


def _live_tab(models: jobs.Models, session, examples: list[Path]) -> None:
    with gr.Row():
        with gr.Column():
            portrait = gr.File(label="Portrait", elem_id="live-source")
            model = _model_choice(models, "live-model")
            reset = gr.Button("New reference (look straight at the camera)", elem_id="live-reset")
        with gr.Column():
            camera = gr.Image(sources=["webcam"], streaming=True, label="Webcam", elem_id="live-camera")
        with gr.Column():
            output = gr.Image(label="Animated", interactive=False, elem_id="live-output")
            stats = _status("live-status")
    if examples:
        gr.Examples([[str(examples[0])]], [portrait], label="Example")

    def step(frame, path, label, request: gr.Request):
        return live.step(models, session(request), label, path, frame)

    def again(request: gr.Request):
        live.reset(session(request))

    camera.stream(step, [camera, portrait, model], [output, stats], stream_every=LIVE_EVERY, concurrency_id="live")
    reset.click(again, None, None)
