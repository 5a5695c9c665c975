"""Measures of ``heads_gt.py``: an animation's frames against the exact ground truth of a
``reanimate make-heads --pairs`` set (see that script's docstring for the definitions).

Plain functions on numpy arrays; frames are ``uint8 (T, H, W, 3)`` RGB, landmarks pixels
``(x, y)`` (x right, y down; MediaPipe's z in the x scale). Every per-frame measure comes
back as a ``(T,)`` (or ``(T, k)``) float64 array, NaN where it cannot be measured (no face
detected, an empty mask), so that callers average with ``nanmean`` and count the NaNs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reanimate.faces.multipie import MEDIAPIPE_68, PARTS_68, RIGID_68  # noqa: F401 (re-exported)
from reanimate.faces.pose import head_pose
from reanimate.geometry import euler_to_rotation, fit_similarity, rotation_angle
from reanimate.imageops import SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW, gaussian_window

#: PSNR of a frame identical to its reference (MSE 0), in dB: a finite value keeps the
#: means finite. 100 dB is an MSE of 6.5e-6 grey levels squared, far below any real error.
PSNR_CAP_DB = 100.0
GREY_LEVELS = 255.0

# The MediaPipe-to-Multi-PIE map (MEDIAPIPE_68) and the point groups (RIGID_68,
# PARTS_68) live in the library: reanimate.faces.multipie, with how the map was chosen.

# Multi-PIE indices used by the measures.
OUTER_EYE_CORNERS = (36, 45)
RIGHT_EYE_68 = {"corners": (36, 39), "lids": ((37, 41), (38, 40))}
LEFT_EYE_68 = {"corners": (42, 45), "lids": ((43, 47), (44, 46))}
INNER_LIP_GAPS = ((61, 67), (62, 66), (63, 65))


def mesh_to_68(landmarks: np.ndarray) -> np.ndarray:
    """``(..., 478, D)`` MediaPipe landmarks -> ``(..., 68, D)`` Multi-PIE points."""
    landmarks = np.asarray(landmarks)
    assert landmarks.shape[-2] >= 468, f"expected (..., 478, D) MediaPipe landmarks, got {landmarks.shape}"
    return landmarks[..., MEDIAPIPE_68, :]


# ---------------------------------------------------------------------------------------
# Pixels: L1, PSNR, SSIM, whole frame and inside a mask.


def _check_frames(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> None:
    assert output.shape == target.shape and output.ndim == 4 and output.shape[-1] == 3, (
        f"expected two (T, H, W, 3) videos of the same shape, got {output.shape} and {target.shape}"
    )
    assert mask is None or mask.shape == output.shape[:3], f"mask {mask.shape} does not fit frames {output.shape}"


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-frame mean of ``(T, H, W)`` values over ``(T, H, W)`` mask pixels; NaN if empty."""
    count = mask.sum(axis=(1, 2))
    total = np.where(mask, values, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def l1_error(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean ``|output - target|`` in grey levels (0..255) per frame, over all channels and
    the whole frame, or over the pixels where ``mask`` ``(T, H, W)`` is True."""
    _check_frames(output, target, mask)
    error = np.abs(output.astype(np.float64) - target.astype(np.float64)).mean(axis=-1)
    return error.mean(axis=(1, 2)) if mask is None else _masked_mean(error, mask)


def psnr(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``10 log10(255^2 / MSE)`` dB per frame (MSE over channels and the frame or the mask's
    pixels), at most :data:`PSNR_CAP_DB`."""
    _check_frames(output, target, mask)
    squared = ((output.astype(np.float64) - target.astype(np.float64)) ** 2).mean(axis=-1)
    mse = squared.mean(axis=(1, 2)) if mask is None else _masked_mean(squared, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 10.0 * np.log10(GREY_LEVELS**2 / mse)
    return np.where(np.isnan(mse), np.nan, np.minimum(value, PSNR_CAP_DB))


_SSIM_CHUNK = 16  # frames per convolution, bounding the memory of long videos


def ssim_map(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SSIM map ``(T, H - 10, W - 10)``, averaged over the channels.

    Wang et al. (2004) with the constants of :mod:`reanimate.imageops` (11x11 Gaussian
    window, sigma 1.5, K1 0.01, K2 0.03, population statistics) and the project's border
    convention: one value per window lying entirely inside the frame ("valid"), so the
    map's pixel ``(i, j)`` is the window centred on frame pixel ``(i + 5, j + 5)``. Its
    mean is :func:`reanimate.evaluation.metrics.ssim` (which returns only the mean), to
    about 1e-6: the map is computed in float32 (float64 convolutions are 6x slower on CPU).
    """
    _check_frames(output, target, None)
    assert min(output.shape[1:3]) >= SSIM_WINDOW, f"SSIM needs frames of at least {SSIM_WINDOW} px, got {output.shape}"
    window = gaussian_window(SSIM_WINDOW, SSIM_SIGMA, torch.float32, "cpu")
    channels = 5 * output.shape[-1]  # x, y, x^2, y^2, xy of each colour channel
    rows = window.view(1, 1, 1, -1).expand(channels, 1, 1, SSIM_WINDOW)
    columns = window.view(1, 1, -1, 1).expand(channels, 1, SSIM_WINDOW, 1)
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    maps = []
    for start in range(0, len(output), _SSIM_CHUNK):
        x, y = (
            torch.from_numpy(np.ascontiguousarray(v[start : start + _SSIM_CHUNK])).permute(0, 3, 1, 2).float() / 255
            for v in (output, target)
        )
        stats = F.conv2d(F.conv2d(torch.cat([x, y, x * x, y * y, x * y], 1), rows, groups=channels), columns,
                         groups=channels)  # fmt: skip
        mu_x, mu_y, xx, yy, xy = stats.chunk(5, dim=1)
        sigma_xx, sigma_yy, sigma_xy = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
        value = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_xx + sigma_yy + c2))
        maps.append(value.mean(dim=1).double().numpy())
    return np.concatenate(maps)


def ssim(
    output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, values: np.ndarray | None = None
) -> np.ndarray:
    """Per-frame SSIM: the mean of :func:`ssim_map` (or of ``values``, that map computed
    before), or its mean over the mask's pixels (the mask cut by the window's half width
    on each side, to line up with the map)."""
    values = ssim_map(output, target) if values is None else values
    if mask is None:
        return values.mean(axis=(1, 2))
    _check_frames(output, target, mask)
    half = SSIM_WINDOW // 2
    return _masked_mean(values, mask[:, half:-half, half:-half])


def image_errors(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Every pixel measure per frame: ``l1, psnr, ssim`` and ``*_mask`` (inside ``mask``)."""
    ssim_values = ssim_map(output, target)
    return {
        "l1": l1_error(output, target),
        "l1_mask": l1_error(output, target, mask),
        "psnr": psnr(output, target),
        "psnr_mask": psnr(output, target, mask),
        "ssim": ssim(output, target, values=ssim_values),
        "ssim_mask": ssim(output, target, mask, values=ssim_values),
    }


# ---------------------------------------------------------------------------------------
# Landmarks: error, expression, identity.


def _distance(points: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(points[..., a, :2] - points[..., b, :2], axis=-1)


def interocular(points68: np.ndarray) -> np.ndarray:
    """Distance of the outer eye corners (36, 45) of ``(..., 68, D)`` points, in the image plane."""
    return _distance(points68, *OUTER_EYE_CORNERS)


def mouth_opening(points68: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the inter-ocular distance: the mean 2-D distance of the three
    facing inner-lip pairs (61-67, 62-66, 63-65) over :func:`interocular`. ``(..., 68, D)`` -> ``(...)``."""
    gap = np.mean([_distance(points68, a, b) for a, b in INNER_LIP_GAPS], axis=0)
    return gap / interocular(points68)


def eye_opening(points68: np.ndarray) -> np.ndarray:
    """Lid gap over eye width, the mean of both eyes: per eye, the mean 2-D distance of its
    two facing lid pairs (37-41 and 38-40; 43-47 and 44-46) over its corners' distance
    (36-39; 42-45). ``(..., 68, D)`` -> ``(...)``."""
    ratios = []
    for eye in (RIGHT_EYE_68, LEFT_EYE_68):
        gap = np.mean([_distance(points68, a, b) for a, b in eye["lids"]], axis=0)
        ratios.append(gap / _distance(points68, *eye["corners"]))
    return np.mean(ratios, axis=0)


def landmark_error(detected68: np.ndarray, exact68: np.ndarray, points: tuple[int, ...] | None = None) -> np.ndarray:
    """Mean 2-D distance in pixels between ``(..., 68, >=2)`` point sets (all 68 points, or
    ``points``); NaN where ``detected68`` is NaN."""
    index = list(points) if points is not None else slice(None)
    difference = detected68[..., index, :2] - exact68[..., index, :2]
    return np.linalg.norm(difference, axis=-1).mean(axis=-1)


def identity_drift(moving: np.ndarray, fixed: np.ndarray, points: tuple[int, ...] = RIGID_68) -> np.ndarray:
    """Shape difference of two ``(T, 68, D)`` point sets once pose and size are taken out.

    The ``points`` (default :data:`RIGID_68`) of ``moving`` are put onto those of ``fixed``
    by the least-squares similarity (Umeyama; ``fit_similarity``: rotation, scale,
    translation, in D = 2 or 3 dimensions); the result is the RMS distance of the aligned
    points over ``fixed``'s inter-ocular distance (outer eye corners, the image-plane
    distance). 0 for a similarity-transformed copy. ``(T,)``, NaN where either set has NaNs.
    """
    moving, fixed = np.asarray(moving, np.float64), np.asarray(fixed, np.float64)
    assert moving.shape == fixed.shape and moving.ndim == 3 and moving.shape[1] == 68, (
        f"expected two (T, 68, D) point sets of the same shape, got {moving.shape} and {fixed.shape}"
    )
    index = list(points)
    a, b = moving[:, index], fixed[:, index]
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
    result = np.full(len(moving), np.nan)
    if not ok.any():
        return result
    ta, tb = torch.from_numpy(a[ok]), torch.from_numpy(b[ok])
    scale, rotation, translation = fit_similarity(ta, tb)
    aligned = scale[:, None, None] * ta @ rotation.transpose(-1, -2) + translation[:, None, :]
    rms = ((aligned - tb) ** 2).sum(dim=-1).mean(dim=-1).sqrt().numpy()
    corners = fixed[ok][:, OUTER_EYE_CORNERS]
    result[ok] = rms / np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1)
    return result


# ---------------------------------------------------------------------------------------
# Head pose.


def landmark_pose(landmarks: np.ndarray) -> np.ndarray:
    """``(T, 478, 3)`` MediaPipe landmarks (NaN rows: no face) -> ``(T, 3)`` yaw, pitch,
    roll in degrees from :func:`reanimate.faces.head_pose`, NaN where there is no face."""
    angles = np.full((len(landmarks), 3), np.nan)
    found = np.isfinite(landmarks).all(axis=(1, 2))
    if found.any():
        angles[found] = [pose.as_tuple() for pose in head_pose(landmarks[found])]
    return angles


def pose_errors(estimated: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute angle errors ``(T, 3)`` (yaw, pitch, roll; wrapped to [0, 180]) and the
    geodesic angle ``(T,)`` of the rotation between the two poses, in degrees (the
    rotations are :func:`reanimate.geometry.euler_to_rotation` of the angles). NaN where
    ``estimated`` is NaN."""
    estimated, truth = np.asarray(estimated, np.float64), np.asarray(truth, np.float64)
    absolute = np.abs(np.mod(estimated - truth + 180.0, 360.0) - 180.0)
    geodesic = np.full(len(estimated), np.nan)
    ok = np.isfinite(estimated).all(axis=1)
    if ok.any():
        a, b = (torch.from_numpy(x[ok]) for x in (estimated, truth))
        geodesic[ok] = rotation_angle(euler_to_rotation(*a.T), euler_to_rotation(*b.T)).numpy()
    return absolute, geodesic


def motion_error(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Error of the head's motion since frame 0, in degrees ``(T,)``: the geodesic angle
    between the estimated rotation since frame 0, ``R_t R_0^T`` (camera frame), and the
    true one. A fixed bias of the estimator (a rotation in the head's own frame, such as
    a wrong neutral pitch) cancels; a video that holds the right motion from another
    starting pose (the driver) scores as well as the target. All NaN when frame 0 has no
    estimate."""
    estimated, truth = np.asarray(estimated, np.float64), np.asarray(truth, np.float64)
    result = np.full(len(estimated), np.nan)
    ok = np.isfinite(estimated).all(axis=1)
    if not ok[0]:
        return result
    a, b = (euler_to_rotation(*torch.from_numpy(x).T) for x in (estimated[ok], truth[ok]))
    moved_a, moved_b = a @ a[:1].transpose(-1, -2), b @ b[:1].transpose(-1, -2)
    result[ok] = rotation_angle(moved_a, moved_b).numpy()
    return result


# ---------------------------------------------------------------------------------------
# One video against the truth.


def detect_landmarks(frames: np.ndarray, mesh) -> np.ndarray:
    """``(T, 478, 3)`` landmarks of the largest face of each frame (a fresh detection per
    frame: ``mesh`` is a :class:`reanimate.faces.FaceMesh` with ``video=False``); NaN
    rows where no face is found."""
    result = np.full((len(frames), 478, 3), np.nan)
    for index, frame in enumerate(frames):
        faces = mesh.detect(np.ascontiguousarray(frame))
        if faces:
            result[index] = faces[0].landmarks
    return result


def face_errors(landmarks: np.ndarray, truth: dict[str, np.ndarray], target_landmarks: np.ndarray) -> dict:
    """The landmark measures of one video per frame.

    Args:
        landmarks: ``(T, 478, 3)`` MediaPipe landmarks of the frames (NaN: no face).
        truth: the pair's truth (``load_truth``): ``target_landmarks``, ``target_yaw``,
            ``target_pitch``, ``target_roll``.
        target_landmarks: ``(T, 478, 3)`` MediaPipe landmarks of the ground-truth target
            frames (the reference of :func:`identity_drift`).
    """
    exact = truth["target_landmarks"].astype(np.float64)
    detected = mesh_to_68(landmarks)
    target_detected = mesh_to_68(target_landmarks)
    found = np.isfinite(landmarks).all(axis=(1, 2))
    angles = landmark_pose(landmarks)
    true_angles = np.stack([truth["target_yaw"], truth["target_pitch"], truth["target_roll"]], axis=1)
    absolute, geodesic = pose_errors(angles, true_angles)
    return {
        "detected": found.astype(np.float64),
        "landmarks": landmark_error(detected, exact),
        "yaw": absolute[:, 0],
        "pitch": absolute[:, 1],
        "roll": absolute[:, 2],
        "geodesic": geodesic,
        "motion": motion_error(angles, true_angles),
        "mouth": np.abs(mouth_opening(detected) - mouth_opening(exact)),
        "eyes": np.abs(eye_opening(detected) - eye_opening(exact)),
        "identity": identity_drift(detected, target_detected),
        **{f"landmarks_{part}": landmark_error(detected, exact, points) for part, points in PARTS_68.items()},
    }
