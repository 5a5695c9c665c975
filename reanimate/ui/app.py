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
#: the Live tab's camera loop (the js_on_load of its gr.HTML), the longest side of a
#: camera frame it sends, and the frames its figures are medians of
LIVE_JS = Path(__file__).with_name("live.js")
LIVE_MAX_SIDE = 640
LIVE_WINDOW = 30
LIVE_HTML = """
<div class="live-buttons">
  <button class="live-start lg primary">Start the camera</button>
  <button class="live-stop lg secondary">Stop</button>
</div>
<div class="live-views">
  <figure><video class="live-webcam" autoplay muted playsinline></video><figcaption>Webcam</figcaption></figure>
  <figure><img class="live-animated" alt=""><figcaption>Animated</figcaption></figure>
</div>
<p class="live-figures" aria-live="polite"></p>
"""
LIVE_CSS = """
.live-buttons { display: flex; gap: 8px; margin-bottom: 8px; }
.live-buttons button { padding: 6px 16px; border-radius: 6px; border: 1px solid #d4d4d8; cursor: pointer; }
.live-start { background: #f97316; color: white; }
.live-views { display: flex; gap: 12px; align-items: flex-start; }
.live-views figure { flex: 1; margin: 0; min-height: 200px; background: #f4f4f5; border-radius: 6px; }
.live-views video, .live-views img { width: 100%; display: block; border-radius: 6px; }
.live-views figcaption { font-size: 0.85em; color: #71717a; padding: 2px 6px; }
.live-figures { font-family: ui-monospace, monospace; min-height: 1.5em; }
"""
#: fonts the page asks for (the default theme's come from Google: a closed network stalls on them)
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]


def build_app(workspace: Workspace, models: jobs.Models, frames: live.LiveFrames) -> gr.Blocks:
    """The page, serving ``models`` with files in ``workspace`` (Gradio's upload folder:
    ``GRADIO_TEMP_DIR`` must name ``workspace.root`` before this is called); ``frames``:
    the Live tab's server side, whose route (:func:`~reanimate.ui.live.frame_route`) the
    app must serve."""
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
                camera = _live_tab(models, session, examples, frames)

        def token(request: gr.Request) -> str:
            return frames.token(session(request))

        demo.load(token, None, camera)

        def end(request: gr.Request) -> None:
            frames.end(workspace.sessions.get(request.session_hash))
            workspace.end_session(request.session_hash)

        demo.unload(end)
    return demo


def theme() -> gr.Theme:
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=["ui-monospace", "monospace"])


def _model_choice(models: jobs.Models, elem_id: str, uploads: bool = False) -> gr.Dropdown:
    """The model dropdown; ``uploads``: with the entry for a checkpoint the user uploads."""
    choices = [*models.choices, jobs.UPLOADED] if uploads else models.choices
    return gr.Dropdown(choices, value=jobs.DEFAULT_MODEL, label="Model", elem_id=elem_id)


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
            model = _model_choice(models, "animate-model", uploads=True)
            motion = gr.Radio(["relative", "absolute"], value="relative", label="Motion")
            smooth = gr.Dropdown(["none", "one-euro", "kalman"], value="none", label="Smoothing")
        with gr.Row():
            checkpoint = gr.File(
                label="Your checkpoint (reanimate .safetensors, or an official FOMM .pth.tar)",
                elem_id="animate-checkpoint",
            )
            config = gr.Dropdown(
                jobs.config_choices(),
                value=jobs.CONFIG_FROM_FILE,
                label="Its config (a .pth.tar's: found from its tensors, or choose it)",
                elem_id="animate-config",
            )
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

    def controls(label, file, config_, request: gr.Request):
        out, shown = jobs.model_controls(models, session(request), jobs.Choice(label, file, config_))
        return [gr.update(visible=name in shown) for name in (*factors, "blinks")] + [out.status]

    def uploaded(file, label, config_, request: gr.Request):
        if file is None:  # (cleared: back to the default model, whose change updates the controls)
            back = gr.update(value=jobs.DEFAULT_MODEL if label == jobs.UPLOADED else label)
            return [back, *(gr.update() for _ in controlled)]
        return [gr.update(value=jobs.UPLOADED), *controls(jobs.UPLOADED, file, config_, request)]

    # (Gradio tracks the pipeline's progress bar for a gr.Progress given as a default value)
    def animate(
        label,
        file,
        config_,
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
        choice = jobs.Choice(label, file, config_)
        out = jobs.animate_job(models, session(request), choice, src, drv, settings, progress)
        return out.video, gr.update(value=out.image, visible=out.image is not None), out.status

    source.change(show_source, source, [source_preview, status])
    driving.change(show_driving, driving, [driving_preview, status])
    controlled = [*factors.values(), blinks, status]
    model.change(controls, [model, checkpoint, config], controlled)
    checkpoint.change(uploaded, [checkpoint, model, config], [model, *controlled])
    config.change(controls, [model, checkpoint, config], controlled)
    inputs = [model, checkpoint, config, source, driving, motion, paste_back, faces, face_index, smooth]
    inputs += [*factors.values(), blinks]
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


def _live_tab(models: jobs.Models, session, examples: list[Path], frames: live.LiveFrames) -> gr.HTML:
    """The Live tab; its camera (live.js), whose value is the page's token (given on load)."""
    with gr.Row():
        with gr.Column(scale=1):
            portrait = gr.File(label="Portrait", elem_id="live-source")
            model = _model_choice(models, "live-model")
            reset = gr.Button("New reference (look straight at the camera)", elem_id="live-reset")
            status = _status("live-status")
        with gr.Column(scale=2):
            camera = gr.HTML(
                "",
                html_template=LIVE_HTML,
                css_template=LIVE_CSS,
                js_on_load=LIVE_JS.read_text(),
                elem_id="live-camera",
                route=live.FRAME_ROUTE,
                max_side=LIVE_MAX_SIDE,
                window=LIVE_WINDOW,
            )
    if examples:
        gr.Examples([[str(examples[0])]], [portrait], label="Example")

    def bind(path, label, request: gr.Request):
        return frames.bind(models, session(request), label, path)

    def again(request: gr.Request):
        live.reset(session(request))

    gr.on([portrait.change, model.change], bind, [portrait, model], status, concurrency_id="live")
    reset.click(again, None, None)
    return camera
