"""Head avatars (IMavatar, Zheng et al. 2022) as whole jobs on files: track a video into
a track folder, fit an avatar to it, render the avatar with other frames' parameters,
and extract its surface as a mesh (``reanimate avatar track|fit|render|mesh``).

An *avatar folder* is a training run of the shared loop (:mod:`reanimate.training.loop`:
``config.yaml``, ``run.json`` whose ``data_root`` is the track folder, ``checkpoints/``,
``log.jsonl``) plus ``avatar.json``: what rendering needs besides the weights, the
training track's camera, mean head translation and frame rate, so that an avatar still
renders once its track folder is gone.

Frame parameters (:class:`~reanimate.avatar.model.FrameBatch`) come from

* a track folder (:func:`track_motion`): its own expressions, poses, translations and
  camera, e.g. a test clip of the avatar's person tracked like its training video;
* a driving video (:func:`video_motion`), tracked here with the avatar's rig: the
  driver's expression, jaw and head rotation; the avatar keeps its own shape (the
  driver's fitted shape is not used) and camera, and the head its training track's mean
  translation, so that it stays framed;
* a sweep (:func:`sweep_motion`) from the avatar's neutral (the rig's canonical
  expression and pose: IMavatar's canonical space, jaw slightly open) to given
  expression weights, head angles and jaw opening.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
import yaml
from PIL import Image
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from ..avatar.config import AvatarConfig, build_avatar
from ..avatar.fields import SURFACE_LEVEL
from ..avatar.model import FrameBatch, ImplicitAvatar
from ..avatar.rig import Rig, axis_angle_to_matrix, matrix_to_axis_angle
from ..avatar.rigs import load_rig
from ..avatar.tracking import (
    JAW_JOINT,
    TrackConfig,
    TrackFolder,
    Tracking,
    crop_box,
    crop_frames,
    fit_tracking,
    load_tracking,
    save_tracking,
    to_crop,
    track_to_folder,
    video_landmarks,
)
from ..checkpoint import load_own_into
from ..device import select_device
from ..errors import CheckpointError, InputError, OutputError, ReanimateError
from ..faces.crop import crop_face
from ..faces.multipie import NUM_MULTIPIE
from ..geometry.rotation import euler_to_rotation
from ..io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, atomic_path, list_frame_files, open_writer
from ..io.files import check_output_folder, write_text_atomic
from ..render.camera import Camera
from ..training.checkpoints import EMA_FILE, latest_checkpoint
from ..training.loop import resume, train
from ..training.run_options import CONFIG_FILE, RUN_FILE, TrainOptions, TrainResult

log = logging.getLogger(__name__)

#: the shipped config of ``reanimate avatar fit`` (the paper's settings)
DEFAULT_CONFIG = "avatar/imavatar"
#: what an avatar folder keeps for rendering besides the weights
AVATAR_FILE = "avatar.json"
AVATAR_FORMAT = "reanimate-avatar"
#: frame rate of expression sweeps
SWEEP_FPS = 25.0
#: frames of an expression sweep written to a video when ``frames`` is not given
SWEEP_FRAMES = 25
#: smallest track crop (pixels) the tracker accepts
MIN_TRACK_SIZE = 16
#: rays traced together when rendering (memory grows with it: Broyden per ray)
RAYS_PER_CHUNK = 4096
#: grid points evaluated together when meshing
MESH_CHUNK = 65536
MIN_MESH_RESOLUTION = 8
#: PIL's keyword arguments per still-image suffix (JPEG: near-lossless quality)
_IMAGE_SAVE = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}}


# -- rigs -------------------------------------------------------------------------------


def rig_spec(rig: str, flame_landmarks: str | os.PathLike | None = None) -> str | dict:
    """The config form of ``--rig``: ``ict``, ``procedural``, or a FLAME ``.pkl`` file
    (with its landmark embedding ``.npy``, when given)."""
    if rig in ("ict", "procedural"):
        return rig
    if rig.lower().endswith(".pkl"):
        spec: dict = {"flame": str(Path(rig).expanduser().resolve())}
        if flame_landmarks is not None:
            spec["landmarks"] = str(Path(flame_landmarks).expanduser().resolve())
        return spec
    raise ReanimateError(f"--rig {rig}: expected ict, procedural or a FLAME model file (generic_model.pkl)")


def expression_names(rig: Rig) -> tuple[str, ...] | None:
    """The names of a rig's expression coefficients, where it has names (ICT-FaceKit's
    ARKit-style shapes); other rigs' coefficients are known by index."""
    if rig.name == "ict":
        from ..heads.model import load_head_model

        names = load_head_model().expression_names
        if len(names) == rig.num_expressions:
            return names
    return None


def parse_expression(text: str | None, rig: Rig) -> dict[int, float]:
    """``NAME=W,NAME=W`` (names of :func:`expression_names`, or indices) -> {index: weight}.

    Raises:
        ReanimateError: one line naming the bad part and some valid names.
    """
    if not text:
        return {}
    names = expression_names(rig)
    count = rig.num_expressions
    chosen: dict[int, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not math.isfinite(weight):
            raise ReanimateError(f"--expression expects NAME=WEIGHT pairs such as jawOpen=0.5, got {part!r}")
        if names is not None and name in names:
            chosen[names.index(name)] = weight
        elif name.isdigit() and int(name) < count:
            chosen[int(name)] = weight
        else:
            if names is not None:
                known = f"e.g. {', '.join(names[:6])}, ... ({count} names, or indices 0-{count - 1})"
            else:
                known = f"its coefficients are indices 0-{count - 1}"
            raise ReanimateError(f"--expression: {name!r} is not an expression of the {rig.name} rig; {known}")
    return chosen


def _check_video_rig(rig: Rig) -> None:
    if rig.num_landmarks != NUM_MULTIPIE:
        raise ReanimateError(
            f"rig {rig.name} has {rig.num_landmarks} landmarks; tracking a video needs a rig with the "
            f"{NUM_MULTIPIE} Multi-PIE landmarks (ict, or FLAME with its landmark embedding)"
        )


# -- track ------------------------------------------------------------------------------


@dataclass
class TrackResult:
    folder: TrackFolder
    masks: str  # where the masks came from

    @property
    def frames(self) -> int:
        return len(self.folder)

    @property
    def visible(self) -> int:
        return int(self.folder.tracking.visible.sum())

    @property
    def error_px(self) -> float:
        return self.folder.tracking.mean_error_px


def _check_input(path: Path, what: str = "video") -> None:
    if not path.exists():
        raise InputError(path, f"no such {what} file or frame folder")


def _mask_crops(files: list[Path], box: np.ndarray, size: int, source_size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The masks cut to the track's crop box, as uint8 ``(size, size)``."""
    for file in files:
        mask = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise InputError(file, "cannot be read as a mask image")
        if mask.shape != tuple(source_size):
            raise InputError(
                file, f"is {mask.shape[1]}x{mask.shape[0]} but the video's frames are {source_size[1]}x{source_size[0]}"
            )
        yield crop_face(mask, box, size)


def track(
    video: str | os.PathLike,
    output: str | os.PathLike,
    rig: str = "ict",
    size: int = 256,
    masks: str | os.PathLike | None = None,
    flame_landmarks: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    focal: float | None = None,
) -> TrackResult:
    """Track ``video`` (a file or frame folder) into the track folder ``output``
    (:mod:`reanimate.avatar.tracking`). ``masks``: a folder of foreground mask images, one
    per frame at the video's size (255 = person), used instead of the selfie segmentation."""
    video, output = Path(video), Path(output)
    _check_input(video)
    if size < MIN_TRACK_SIZE:
        raise ReanimateError(f"--size {size}: the crops must be at least {MIN_TRACK_SIZE} pixels")
    if not output.parent.is_dir():
        raise OutputError(output, f"output folder {output.parent} does not exist")
    check_output_folder(output, overwrite)
    mask_files = None
    if masks is not None:
        masks = Path(masks)
        if not masks.is_dir():
            raise InputError(masks, "--masks: no such folder of mask images")
        mask_files = list_frame_files(masks)
        if not mask_files:
            raise InputError(masks, "--masks: the folder has no images")
    the_rig = load_rig(rig_spec(rig, flame_landmarks))
    _check_video_rig(the_rig)
    config = TrackConfig(size=size, focal=focal)
    if mask_files is None:
        return TrackResult(track_to_folder(video, output, the_rig, config, overwrite, progress), "selfie segmentation")
    found = video_landmarks(video, progress)
    if len(mask_files) != len(found.landmarks):
        raise InputError(masks, f"has {len(mask_files)} mask images for the video's {len(found.landmarks)} frames")
    box = crop_box(found, config.crop_increase, video)
    tracking = fit_tracking(the_rig, to_crop(found.landmarks, box, size), size, config, found.visible)
    crops = crop_frames(video, box, size)
    cut = _mask_crops(mask_files, box, size, found.source_size)
    save_tracking(output, tracking, crops, cut, box, found.source_size, found.fps, config, overwrite)
    return TrackResult(load_tracking(output), str(masks))


# -- fit --------------------------------------------------------------------------------


def _view_of(folder: TrackFolder) -> dict:
    t = folder.tracking
    visible = t.visible if bool(t.visible.any()) else torch.ones_like(t.visible)
    return {
        "format": AVATAR_FORMAT,
        "track": str(folder.path.resolve()),
        "rig": t.rig_name,
        "image_size": int(t.image_size),
        "focal": float(t.focal),
        "translation": [float(v) for v in t.translation[visible].mean(0)],
        "fps": float(folder.fps),
        "frames": len(folder),
    }


def _write_view(avatar_dir: Path, folder: TrackFolder) -> None:
    write_text_atomic(avatar_dir / AVATAR_FILE, json.dumps(_view_of(folder), indent=1))


def fit(
    track_dir: str | os.PathLike,
    output: str | os.PathLike,
    config: str | os.PathLike = DEFAULT_CONFIG,
    rig: str | None = None,
    flame_landmarks: str | os.PathLike | None = None,
    options: TrainOptions | None = None,
) -> TrainResult:
    """Fit a new avatar to a track folder: a training run in ``output`` (the shared loop,
    family ``avatar``); ``rig`` replaces the config's (e.g. the FLAME file the track used)."""
    from ..models.config import load_config_document, resolve_config_path

    track_dir, output = Path(track_dir), Path(output)
    folder = load_tracking(track_dir)
    if (output / RUN_FILE).exists():
        raise InputError(output, "already holds an avatar; continue it with --resume, or choose a new folder")
    if not output.parent.is_dir():
        raise OutputError(output, f"output folder {output.parent} does not exist")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise OutputError(output, "exists and is not an empty folder; choose a new avatar folder")
    path = resolve_config_path(config)
    doc = load_config_document(path)
    if rig is not None:
        doc["model_params"]["rig"] = rig_spec(rig, flame_landmarks)
    try:
        avatar_config = AvatarConfig.from_document(doc, name=path.stem)
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"not an avatar config: {exc}") from None
    options = options or TrainOptions()
    options.data_root = str(folder.path.resolve())
    result = train(avatar_config, output, options)
    _write_view(output, folder)
    return result


def resume_fit(avatar_dir: str | os.PathLike, options: TrainOptions | None = None) -> TrainResult:
    """Continue an avatar's fit from its latest checkpoint (the run's own settings)."""
    avatar_dir = Path(avatar_dir)
    if not avatar_dir.is_dir():
        raise InputError(avatar_dir, "no such avatar folder (make one with reanimate avatar fit)")
    result = resume(avatar_dir, options)
    if not (avatar_dir / AVATAR_FILE).is_file():
        _write_view(avatar_dir, load_tracking(_run_track(avatar_dir)))
    return result


# -- loading an avatar -------------------------------------------------------------------


@dataclass
class Avatar:
    """A fitted avatar ready to render: the model (eval mode, on its device), the training
    track's camera and mean head translation ``(3,)`` (rig units), its frame rate."""

    model: ImplicitAvatar
    camera: Camera
    translation: torch.Tensor
    fps: float
    folder: Path
    checkpoint: Path
    track: Path | None

    @property
    def rig(self) -> Rig:
        return self.model.rig

    @property
    def device(self) -> torch.device:
        return self.model.shape.device


def _run_track(avatar_dir: Path) -> Path:
    try:
        root = json.loads((avatar_dir / RUN_FILE).read_text()).get("data_root")
    except (OSError, ValueError) as exc:
        raise InputError(avatar_dir / RUN_FILE, f"cannot be read ({exc.__class__.__name__})") from None
    if not root:
        raise InputError(avatar_dir / RUN_FILE, "names no track folder (data_root)")
    return Path(root)


def _read_view(avatar_dir: Path) -> dict:
    """``avatar.json``, or the same read from the training track (an avatar whose fit
    was stopped before it was written)."""
    file = avatar_dir / AVATAR_FILE
    if file.is_file():
        try:
            view = json.loads(file.read_text())
            if view.get("format") != AVATAR_FORMAT:
                raise ValueError(f"format {view.get('format')!r}")
            Camera(view["image_size"], view["image_size"], view["focal"])
            assert len(view["translation"]) == 3
            return view
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
            raise InputError(file, f"is not an avatar description ({exc})") from None
    track_dir = _run_track(avatar_dir)
    if not (track_dir / "track.npz").is_file():
        raise InputError(avatar_dir, f"has no {AVATAR_FILE} and its track folder {track_dir} is gone")
    return _view_of(load_tracking(track_dir))


def _subject_shape(weights: Path) -> torch.Tensor:
    try:
        with safe_open(str(weights), framework="pt") as f:
            return f.get_tensor("subject.shape").float()
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(weights, f"has no avatar subject shape ({str(exc)[:120]})") from None


def load_avatar(avatar_dir: str | os.PathLike, device: str = "auto") -> Avatar:
    """The avatar of an avatar folder at its latest checkpoint (the averaged weights when
    the run keeps them), rebuilt from the run's ``config.yaml``.

    Raises:
        InputError: naming the folder or file (missing, not an avatar, no checkpoint yet).
    """
    folder = Path(avatar_dir)
    if not folder.is_dir():
        raise InputError(folder, "no such avatar folder (make one with reanimate avatar fit)")
    if not (folder / CONFIG_FILE).is_file() or not (folder / RUN_FILE).is_file():
        raise InputError(folder, f"is not an avatar folder (no {CONFIG_FILE} / {RUN_FILE}; see reanimate avatar fit)")
    try:
        doc = yaml.safe_load((folder / CONFIG_FILE).read_text())
        config = AvatarConfig.from_document(doc, name=folder.name)
    except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(folder / CONFIG_FILE, f"not an avatar config ({str(exc)[:160]})") from None
    checkpoint = latest_checkpoint(folder)
    if checkpoint is None:
        raise InputError(folder, "has no checkpoint yet; fit it longer (reanimate avatar fit --resume)")
    weights = checkpoint / EMA_FILE if (checkpoint / EMA_FILE).is_file() else checkpoint / "model.safetensors"
    view = _read_view(folder)
    rig = load_rig(config.rig)
    if view["rig"] != rig.name:
        raise InputError(folder, f"its track uses the {view['rig']} rig but its config the {rig.name} rig")
    model = build_avatar(config, _subject_shape(weights), rig=rig)
    load_own_into(weights, model)
    model = model.to(select_device(device)).eval()
    size = int(view["image_size"])
    camera = Camera(size, size, float(view["focal"]))
    translation = torch.tensor(view["translation"], dtype=torch.float32)
    track_dir = Path(view["track"]) if view.get("track") else None
    return Avatar(model, camera, translation, float(view["fps"]), folder, checkpoint, track_dir)


# -- frame parameters --------------------------------------------------------------------


class Motion(NamedTuple):
    """What to render: ``frames`` (``T`` frames' rig parameters, CPU), the camera they
    are seen with, the frame rate, and where they came from (for messages)."""

    frames: FrameBatch
    camera: Camera
    fps: float
    source: str


def _first(frames: FrameBatch, count: int | None) -> FrameBatch:
    return frames if count is None else FrameBatch(*(x[:count] for x in frames))


def _check_rig(path: Path, tracking: Tracking, rig: Rig) -> None:
    if tracking.rig_name != rig.name or tracking.expression.shape[1] != rig.num_expressions:
        raise InputError(path, f"was tracked with the {tracking.rig_name} rig but the avatar uses {rig.name}")


def track_motion(avatar: Avatar, track_dir: str | os.PathLike, frames: int | None = None) -> Motion:
    """The parameters of a track folder's frames, as they were tracked (its translations
    and camera): for a clip of the avatar's person this re-renders its frames."""
    folder = load_tracking(track_dir)
    t = folder.tracking
    _check_rig(folder.path, t, avatar.rig)
    batch = FrameBatch(t.expression.float(), t.pose.float(), t.translation.float())
    return Motion(_first(batch, frames), t.camera, folder.fps, str(folder.path))


def video_motion(avatar: Avatar, video: str | os.PathLike, frames: int | None = None, progress: bool = True) -> Motion:
    """A driving video tracked with the avatar's rig: its expressions, jaw and head
    rotations, at the avatar's training track's mean translation and camera."""
    video = Path(video)
    _check_input(video)
    rig = avatar.rig.to("cpu")
    _check_video_rig(rig)
    found = video_landmarks(video, progress)
    size = avatar.camera.width
    config = TrackConfig(size=size)
    box = crop_box(found, config.crop_increase, video)
    tracking = fit_tracking(rig, to_crop(found.landmarks, box, size), size, config, found.visible)
    count = len(tracking)
    batch = FrameBatch(tracking.expression, tracking.pose, avatar.translation.expand(count, 3).clone())
    return Motion(_first(batch, frames), avatar.camera, found.fps, str(video))


def sweep_frames(
    rig: Rig,
    translation: torch.Tensor,
    expression: dict[int, float] | None = None,
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    jaw: float | None = None,
    frames: int = 1,
) -> FrameBatch:
    """``frames`` rig parameters from the neutral (the canonical expression and pose) to
    the target (t = 1; one frame: the target alone), linearly in the expression, the jaw
    and the head angles.

    Target: the canonical expression with ``expression``'s coefficients replaced; the
    root joint turned by ``yaw``, ``pitch``, ``roll`` degrees
    (:func:`reanimate.geometry.rotation.euler_to_rotation`: the signs of ``reanimate
    faces`` and ``reanimate edit``); the jaw opened by ``jaw`` degrees about the axis of
    the canonical opening (``None``: as the canonical space). A rig whose jaw opening is
    an expression too (the canonical expression is not zero, ICT-FaceKit's ``jawOpen``)
    keeps the two paired as its tracking does: the jaw follows that expression, and
    ``jaw`` sets the expression to match.
    """
    rig = rig.to("cpu", torch.float32)
    neutral = rig.canonical_expression.clone()
    target = neutral.clone()
    for index, weight in (expression or {}).items():
        target[index] = weight
    t = torch.linspace(0, 1, frames) if frames > 1 else torch.ones(1)
    pose = rig.canonical_pose.expand(len(t), -1, -1).clone()
    turn = euler_to_rotation(t * yaw, t * pitch, t * roll)
    pose[:, 0] = matrix_to_axis_angle(turn @ axis_angle_to_matrix(rig.canonical_pose[0]))
    values = None
    if JAW_JOINT in rig.joint_names:
        index = rig.joint_index(JAW_JOINT)
        opening = rig.canonical_pose[index]
        paired = rig.canonical_expression
        paired_norm = float(paired.square().sum())
        if paired_norm > 0 and float(opening.norm()) > 0:
            if jaw is not None:  # the expression's component along the paired one, set to the angle
                wanted = math.radians(jaw) / float(opening.norm())
                target = target + (wanted - float(target @ paired) / paired_norm) * paired
            values = neutral + t[:, None] * (target - neutral)
            pose[:, index] = (values @ paired / paired_norm)[:, None] * opening
        elif jaw is not None:
            unit = opening / opening.norm() if float(opening.norm()) > 0 else torch.tensor([1.0, 0.0, 0.0])
            pose[:, index] = opening + t[:, None] * (math.radians(jaw) * unit - opening)
    if values is None:
        values = neutral + t[:, None] * (target - neutral)
    return FrameBatch(values, pose, translation.float().cpu().expand(len(t), 3).clone())


def sweep_motion(
    avatar: Avatar,
    expression: str | None = None,
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    jaw: float | None = None,
    frames: int = 1,
) -> Motion:
    """:func:`sweep_frames` of the avatar (``expression`` as ``NAME=W,...``), at its
    training track's mean translation and camera."""
    weights = parse_expression(expression, avatar.rig)
    batch = sweep_frames(avatar.rig, avatar.translation, weights, yaw, pitch, roll, jaw, frames)
    what = f"sweep to {expression or 'the neutral expression'} (yaw {yaw:g}, pitch {pitch:g}, roll {roll:g})"
    return Motion(batch, avatar.camera, SWEEP_FPS, what)


# -- render -----------------------------------------------------------------------------


@dataclass
class RenderResult:
    output: Path
    frames: int
    size: int
    source: str


def check_render_output(output: str | os.PathLike, frames: int | None) -> Path:
    """Refuse an output that cannot be written before any work: a missing folder, an
    unknown suffix, a still image for several frames."""
    output = Path(output)
    suffix = output.suffix.lower()
    if not output.parent.is_dir():
        raise OutputError(output, f"output folder {output.parent} does not exist")
    if suffix in IMAGE_EXTENSIONS:
        if frames is not None and frames > 1:
            raise OutputError(output, f"--frames {frames} writes a video: use .mp4 (or .mov, .mkv, .webm, .gif)")
    elif suffix not in VIDEO_EXTENSIONS:
        raise OutputError(output, "expected a video (.mp4, .mov, .mkv, .webm, .gif) or an image (.png, .jpg)")
    if output.is_dir():
        raise OutputError(output, "is a folder; give a file name")
    return output


def scaled_camera(camera: Camera, size: int | None) -> Camera:
    """The camera of a square image resized to ``size`` pixels (the same view)."""
    if size is None or size == camera.width:
        return camera
    scale = size / camera.width
    return Camera(
        size,
        round(camera.height * scale),
        camera.focal * scale,
        (camera.cx + 0.5) * scale - 0.5,
        (camera.cy + 0.5) * scale - 0.5,
    )


def render_frames(
    avatar: Avatar, motion: Motion, size: int | None = None, progress: bool = True, rays: int = RAYS_PER_CHUNK
) -> Iterator[np.ndarray]:
    """The motion's frames rendered one at a time: uint8 ``(H, W, 3)`` RGB, white where
    no surface is hit (never all held)."""
    camera = scaled_camera(motion.camera, size)
    model = avatar.model
    count = motion.frames.pose.shape[0]
    bar = tqdm(range(count), unit="frame", desc="render", disable=None if progress else True)
    with bar:
        for i in bar:
            frame = FrameBatch(*(x[i : i + 1].to(avatar.device) for x in motion.frames))
            out = model.render_image(frame, camera, rays_per_chunk=rays)
            rgb = out.rgb[0].reshape(camera.height, camera.width, 3).clamp(0, 1)
            yield (rgb * 255).round().byte().cpu().numpy()


def render(
    avatar: Avatar,
    motion: Motion,
    output: str | os.PathLike,
    size: int | None = None,
    progress: bool = True,
) -> RenderResult:
    """Render ``motion`` to a video (streamed, atomic) or a still image (its first frame)."""
    output = check_render_output(output, None)
    if size is not None and size < 2:
        raise ReanimateError(f"--size {size}: expected at least 2 pixels")
    still = output.suffix.lower() in IMAGE_EXTENSIONS
    if still:
        motion = motion._replace(frames=_first(motion.frames, 1))
    count, side = 0, 0
    if still:
        (image,) = render_frames(avatar, motion, size, progress)
        with atomic_path(output, suffix=output.suffix) as temp:
            try:
                Image.fromarray(image).save(temp, **_IMAGE_SAVE.get(output.suffix.lower(), {}))
            except OSError as exc:
                raise OutputError(output, f"cannot be written ({exc.strerror or exc})") from None
        count, side = 1, image.shape[0]
    else:
        with open_writer(output, motion.fps) as writer:
            for image in render_frames(avatar, motion, size, progress):
                writer.write(image)
                count, side = count + 1, image.shape[0]
    return RenderResult(output, count, side, motion.source)


# -- mesh -------------------------------------------------------------------------------


@dataclass
class MeshResult:
    output: Path
    vertices: np.ndarray  # (V, 3) rig units, camera-free
    faces: np.ndarray  # (F, 3) int, 0-based, counter-clockwise seen from outside
    posed: bool


def _marching_cubes():
    try:
        from skimage.measure import marching_cubes
    except ImportError:
        raise ReanimateError("avatar mesh needs scikit-image: pip install scikit-image") from None
    return marching_cubes


@torch.no_grad()
def occupancy_grid(model: ImplicitAvatar, resolution: int, chunk: int = MESH_CHUNK, progress: bool = True):
    """The canonical geometry on a ``resolution^3`` grid over the bounding sphere's cube
    (model space): ``(values (R, R, R) float32 indexed [x, y, z], axis (R,))``. Points
    outside the sphere count as outside (the ray tracer never looks there), so the
    surface is closed."""
    radius = model.tracing.bounding_radius
    axis = torch.linspace(-radius, radius, resolution)
    values = np.empty((resolution,) * 3, dtype=np.float32)
    flat = values.reshape(-1)
    total = resolution**3
    device = model.shape.device
    ys, zs = torch.meshgrid(axis, axis, indexing="ij")
    plane = torch.stack([ys.flatten(), zs.flatten()], -1)  # one x slice's (y, z)
    per_slice = resolution * resolution
    slices = max(1, chunk // per_slice)
    bar = tqdm(total=total, unit="pt", unit_scale=True, desc="geometry", disable=None if progress else True)
    with bar:
        for start in range(0, resolution, slices):
            xs = axis[start : start + slices]
            points = torch.cat([torch.cat([x.expand(per_slice, 1), plane], 1) for x in xs])
            value = model.occupancy(points[None].to(device))[0].float().cpu()
            outside = points.norm(dim=1) > radius
            value = torch.where(outside, value.clamp_min(SURFACE_LEVEL + 1e-3), value)
            flat[start * per_slice : start * per_slice + len(points)] = value.numpy()
            bar.update(len(points))
    return values, axis


@torch.no_grad()
def _deform(model: ImplicitAvatar, vertices: torch.Tensor, frame: FrameBatch, chunk: int) -> torch.Tensor:
    deform = model.deformer(frame)
    parts = [deform(vertices[None, i : i + chunk])[0] for i in range(0, len(vertices), chunk)]
    return torch.cat(parts) if parts else vertices


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A Wavefront OBJ of ``v`` and ``f`` lines (1-based), atomically."""
    with atomic_path(path, suffix=path.suffix) as temp:
        try:
            with open(temp, "w") as f:
                f.write(f"# reanimate avatar mesh: {len(vertices)} vertices, {len(faces)} faces\n")
                np.savetxt(f, vertices, fmt="v %.6f %.6f %.6f")
                np.savetxt(f, faces + 1, fmt="f %d %d %d")
        except OSError as exc:
            raise OutputError(path, f"cannot be written ({exc.strerror or exc})") from None


def check_mesh_output(output: str | os.PathLike, resolution: int) -> Path:
    """Refuse a mesh output or resolution that cannot work, before any work."""
    output = Path(output)
    if output.suffix.lower() != ".obj":
        raise OutputError(output, "expected an .obj file")
    if not output.parent.is_dir():
        raise OutputError(output, f"output folder {output.parent} does not exist")
    if output.is_dir():
        raise OutputError(output, "is a folder; give a file name")
    if resolution < MIN_MESH_RESOLUTION:
        raise ReanimateError(f"--resolution {resolution}: expected at least {MIN_MESH_RESOLUTION}")
    _marching_cubes()
    return output


def mesh(
    avatar: Avatar,
    output: str | os.PathLike,
    resolution: int = 128,
    frame: FrameBatch | None = None,
    progress: bool = True,
    chunk: int = MESH_CHUNK,
) -> MeshResult:
    """The avatar's surface as an OBJ mesh: marching cubes of the canonical geometry at
    its surface level; with ``frame`` (one frame's parameters), that canonical surface's
    vertices deformed forward by the learnt deformation and the rig (how IMavatar makes
    its posed meshes). Vertices in rig units without the camera: model space ``/ k + c``
    (:mod:`reanimate.avatar.model`)."""
    output = check_mesh_output(output, resolution)
    marching_cubes = _marching_cubes()
    model = avatar.model
    values, axis = occupancy_grid(model, resolution, chunk, progress)
    if not (values.min() < SURFACE_LEVEL < values.max()):
        raise InputError(avatar.folder, "the avatar's geometry has no surface inside its bounding sphere")
    step = float(axis[1] - axis[0])
    # with inside below the level, scikit-image's default "descent" winds the faces
    # counter-clockwise seen from outside (normals out; the tests check the signed volume)
    verts, faces, _, _ = marching_cubes(values, level=SURFACE_LEVEL, spacing=(step,) * 3, gradient_direction="descent")
    points = torch.from_numpy(np.ascontiguousarray(verts)).float() + float(axis[0])
    if frame is not None:
        device_frame = FrameBatch(*(x[:1].to(avatar.device) for x in frame))
        points = _deform(model, points.to(avatar.device), device_frame, chunk).cpu()
    rig_points = points / model.scale + model.centre.cpu()
    vertices = rig_points.double().numpy()
    write_obj(output, vertices, faces.astype(np.int64))
    return MeshResult(output, vertices, faces.astype(np.int64), frame is not None)


__all__ = [
    "AVATAR_FILE",
    "DEFAULT_CONFIG",
    "Avatar",
    "MeshResult",
    "Motion",
    "RenderResult",
    "TrackResult",
    "check_mesh_output",
    "check_render_output",
    "expression_names",
    "fit",
    "load_avatar",
    "mesh",
    "occupancy_grid",
    "parse_expression",
    "render",
    "render_frames",
    "resume_fit",
    "rig_spec",
    "scaled_camera",
    "sweep_frames",
    "sweep_motion",
    "track",
    "track_motion",
    "video_motion",
    "write_obj",
]
