"""Random augmentation of training clips, configured by FOMM's ``augmentation_params``.

A *clip* is a float array ``(T, H, W, 3)`` in ``[0, 1]`` (for training, ``T = 2``: the
source and the driving frame). One set of random draws is made per call and applied to
every frame, so the frames of a clip stay consistent with each other. All randomness
comes from the ``numpy.random.Generator`` passed in: the same generator state gives the
same result, in any process.

The keys and their meaning follow the reference implementation's ``augmentation.py``
(itself from ``torch_videovision``), applied in its order:

``flip_param: {horizontal_flip: bool, time_flip: bool}``
    each enabled flip happens with probability 1/2; a time flip reverses the clip (the
    source and the driving frame swap), a horizontal flip mirrors left and right.
``rotation_param: {degrees: d | [lo, hi]}``
    rotate by an angle drawn uniformly from ``[-d, d]`` (or ``[lo, hi]``) degrees,
    counter-clockwise, about the image centre, bilinear, black outside the image.
``resize_param: {ratio: [lo, hi], interpolation: nearest | bilinear}``
    scale both sides by a factor drawn uniformly from ``ratio`` (default ``[3/4, 4/3]``,
    ``nearest`` by default); the frame size changes, so pair it with ``crop_param``.
``crop_param: {size: s | [h, w]}``
    a random ``h x w`` window, the same for every frame; a frame smaller than the window
    is first padded (edge pixels repeated) around its centre.
``jitter_param: {brightness: b, contrast: c, saturation: s, hue: h}``
    colour jitter with torchvision's definitions: factors drawn from ``[max(0, 1 - b),
    1 + b]`` (likewise ``c``, ``s``) and a hue shift from ``[-h, h]`` turns (``h <= 0.5``);
    the enabled adjustments are applied in a random order. A value of 0 disables one.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from reanimate.errors import ReanimateError
from reanimate.io.image import LUMA_WEIGHTS

logger = logging.getLogger(__name__)

__all__ = ["Augmentation"]

#: Default scale range of ``resize_param`` (torch_videovision's ``RandomResize``).
_DEFAULT_RESIZE_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_INTERPOLATIONS = ("nearest", "bilinear")
#: The largest hue shift, in turns of the colour wheel (torchvision's limit).
_MAX_HUE = 0.5
#: Probability of each enabled flip (reference ``RandomFlip``).
_FLIP_PROBABILITY = 0.5

#: Keys of each group of ``augmentation_params`` (the reference transforms' arguments).
_KEYS = {
    "flip_param": ("horizontal_flip", "time_flip"),
    "rotation_param": ("degrees",),
    "resize_param": ("ratio", "interpolation"),
    "crop_param": ("size",),
    "jitter_param": ("brightness", "contrast", "saturation", "hue"),
}


@dataclass
class AugmentationRecord:
    """What one draw of :meth:`Augmentation.apply` did to a clip's geometry: reversed its
    frames, mirrored them left-right, turned them ``rotation`` degrees counter-clockwise."""

    time_flipped: bool = False
    mirrored: bool = False
    rotation: float = 0.0


class Augmentation:
    """Random flips, rotation, resize, crop and colour jitter of a clip (see module doc).

    Each argument is the dictionary found under the same key of ``augmentation_params``
    in a FOMM config, or ``None`` to disable that augmentation.

    Raises:
        ReanimateError: a value is out of range or of the wrong type.
    """

    def __init__(
        self,
        flip_param: Mapping | None = None,
        jitter_param: Mapping | None = None,
        resize_param: Mapping | None = None,
        rotation_param: Mapping | None = None,
        crop_param: Mapping | None = None,
    ):
        flip = _group("flip_param", flip_param)
        self.horizontal_flip = bool(flip.get("horizontal_flip", False))
        self.time_flip = bool(flip.get("time_flip", False))

        rotation = _group("rotation_param", rotation_param)
        self.rotation_degrees: tuple[float, float] | None = None
        if rotation_param is not None:
            self.rotation_degrees = _degrees(rotation.get("degrees"))

        resize = _group("resize_param", resize_param)
        self.resize_ratio: tuple[float, float] | None = None
        self.resize_interpolation = str(resize.get("interpolation", "nearest"))
        if resize_param is not None:
            self.resize_ratio = _range("resize_param.ratio", resize.get("ratio", _DEFAULT_RESIZE_RATIO), positive=True)
            if self.resize_interpolation not in _INTERPOLATIONS:
                raise ReanimateError(
                    f"augmentation_params.resize_param.interpolation must be "
                    f"one of {', '.join(_INTERPOLATIONS)}, got "
                    f"{self.resize_interpolation!r}"
                )

        crop = _group("crop_param", crop_param)
        self.crop_size: tuple[int, int] | None = None
        if crop_param is not None:
            self.crop_size = _size(crop.get("size"))

        jitter = _group("jitter_param", jitter_param)
        self.brightness = _non_negative("jitter_param.brightness", jitter.get("brightness", 0))
        self.contrast = _non_negative("jitter_param.contrast", jitter.get("contrast", 0))
        self.saturation = _non_negative("jitter_param.saturation", jitter.get("saturation", 0))
        self.hue = _non_negative("jitter_param.hue", jitter.get("hue", 0))
        if self.hue > _MAX_HUE:
            raise ReanimateError(f"augmentation_params.jitter_param.hue must be in [0, {_MAX_HUE}], got {self.hue}")

        if self.resize_ratio is not None and self.crop_size is None:
            logger.warning(
                "augmentation_params: resize_param without crop_param gives frames "
                "of varying size, which cannot be batched; add crop_param"
            )

    @classmethod
    def from_config(cls, params: Mapping[str, Any] | None) -> Augmentation:
        """Build from a config's ``augmentation_params`` (``None``: no augmentation).

        Unknown keys are ignored with a warning.
        """
        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            raise ReanimateError(f"augmentation_params must be a mapping, got {params!r}")
        known = {key: params[key] for key in _KEYS if key in params}
        for key in params:
            if key not in _KEYS:
                logger.warning("augmentation_params: ignoring unknown key %r (known: %s)", key, ", ".join(_KEYS))
        return cls(**known)

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is configured (else calls return the clip unchanged)."""
        return bool(
            self.horizontal_flip
            or self.time_flip
            or self.rotation_degrees
            or self.resize_ratio
            or self.crop_size
            or self._jitter_enabled
        )

    @property
    def _jitter_enabled(self) -> bool:
        return bool(self.brightness or self.contrast or self.saturation or self.hue)

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a clip ``(T, H, W, 3)`` (float, ``[0, 1]``), the same draw for every frame.

        Returns a new array of the input's dtype with values in ``[0, 1]``; its ``H, W``
        differ from the input's only with ``resize_param`` or ``crop_param``. The input is
        never modified.
        """
        return self.apply(frames, rng)[0]

    def apply(self, frames: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, AugmentationRecord]:
        """:meth:`__call__` (the same draws) and what it did to the geometry."""
        assert frames.ndim == 4 and frames.shape[-1] == 3, f"expected a clip (T, H, W, 3), got shape {frames.shape}"
        assert np.issubdtype(frames.dtype, np.floating), f"expected float frames in [0, 1], got {frames.dtype}"
        clip = frames.astype(np.float32, copy=False)
        # Order of the reference AllAugmentationTransform: flip, rotate, resize, crop, jitter.
        record = AugmentationRecord()
        if self.time_flip and rng.random() < _FLIP_PROBABILITY:
            clip = clip[::-1]
            record.time_flipped = True
        if self.horizontal_flip and rng.random() < _FLIP_PROBABILITY:
            clip = clip[:, :, ::-1]
            record.mirrored = True
        if self.rotation_degrees is not None:
            record.rotation = float(rng.uniform(*self.rotation_degrees))
            clip = _rotate(clip, record.rotation)
        if self.resize_ratio is not None:
            clip = _rescale(clip, rng.uniform(*self.resize_ratio), self.resize_interpolation)
        if self.crop_size is not None:
            clip = _random_crop(clip, self.crop_size, rng)
        if self._jitter_enabled:
            clip = self._jitter(clip, rng)
        out = np.clip(clip, 0.0, 1.0)  # a new array: the input is never written to
        return out.astype(frames.dtype, copy=False), record

    def _jitter(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """torchvision ``ColorJitter``: draw the factors, apply them in a random order."""
        adjustments = []
        if self.brightness > 0:
            factor = rng.uniform(max(0.0, 1 - self.brightness), 1 + self.brightness)
            adjustments.append((_adjust_brightness, factor))
        if self.contrast > 0:
            factor = rng.uniform(max(0.0, 1 - self.contrast), 1 + self.contrast)
            adjustments.append((_adjust_contrast, factor))
        if self.saturation > 0:
            factor = rng.uniform(max(0.0, 1 - self.saturation), 1 + self.saturation)
            adjustments.append((_adjust_saturation, factor))
        if self.hue > 0:
            adjustments.append((_adjust_hue, rng.uniform(-self.hue, self.hue)))
        for position in rng.permutation(len(adjustments)):
            adjust, factor = adjustments[position]
            clip = adjust(clip, np.float32(factor))
        return clip

    def __repr__(self) -> str:
        parts = []
        if self.horizontal_flip or self.time_flip:
            parts.append(f"flip(horizontal={self.horizontal_flip}, time={self.time_flip})")
        if self.rotation_degrees is not None:
            parts.append(f"rotation{self.rotation_degrees}")
        if self.resize_ratio is not None:
            parts.append(f"resize({self.resize_ratio}, {self.resize_interpolation})")
        if self.crop_size is not None:
            parts.append(f"crop{self.crop_size}")
        if self._jitter_enabled:
            parts.append(
                f"jitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})"
            )
        return f"Augmentation({', '.join(parts)})"


# --------------------------------------------------------------------------------------
# The transforms, on float32 clips (T, H, W, 3)
# --------------------------------------------------------------------------------------


def _rotate(clip: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate every frame counter-clockwise by ``degrees`` about the centre of the pixel
    grid, ``((W - 1) / 2, (H - 1) / 2)`` as skimage's ``rotate``; zeros outside."""
    height, width = clip.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), float(degrees), 1.0)
    return np.stack(
        [
            cv2.warpAffine(
                np.ascontiguousarray(frame),
                matrix,
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            )
            for frame in clip
        ]
    )


def _rescale(clip: np.ndarray, factor: float, interpolation: str) -> np.ndarray:
    """Scale both sides by ``factor`` (sizes truncated, as the reference does)."""
    height, width = clip.shape[1:3]
    new_height, new_width = max(1, int(height * factor)), max(1, int(width * factor))
    if (new_height, new_width) == (height, width):
        return clip
    if interpolation == "nearest":
        flag = cv2.INTER_NEAREST
    else:  # "bilinear"; area averaging when shrinking stands in for skimage's anti-aliasing
        flag = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.stack(
        [cv2.resize(np.ascontiguousarray(frame), (new_width, new_height), interpolation=flag) for frame in clip]
    )


def _random_crop(clip: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random ``size = (h, w)`` window, padding (edge mode, centred) where too small."""
    crop_h, crop_w = size
    height, width = clip.shape[1:3]
    pad_h = max(0, crop_h - height)
    pad_w = max(0, crop_w - width)
    if pad_h or pad_w:
        clip = np.pad(
            clip, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="edge"
        )
        height, width = clip.shape[1:3]
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return clip[:, top : top + crop_h, left : left + crop_w]


def _grey(clip: np.ndarray) -> np.ndarray:
    """Luma ``(T, H, W, 1)``."""
    return (clip @ LUMA_WEIGHTS)[..., None]


def _blend(clip: np.ndarray, other: np.ndarray, factor: np.float32) -> np.ndarray:
    """``factor * clip + (1 - factor) * other``, clipped to ``[0, 1]`` (torchvision's
    ``_blend``: factor 0 gives ``other``, 1 the clip, above 1 extrapolates)."""
    return np.clip(factor * clip + (1 - factor) * other, 0.0, 1.0)


def _adjust_brightness(clip: np.ndarray, factor: np.float32) -> np.ndarray:
    return np.clip(clip * factor, 0.0, 1.0)


def _adjust_contrast(clip: np.ndarray, factor: np.float32) -> np.ndarray:
    mean = _grey(clip).mean(axis=(1, 2, 3), keepdims=True)  # one grey level per frame
    return _blend(clip, mean, factor)


def _adjust_saturation(clip: np.ndarray, factor: np.float32) -> np.ndarray:
    return _blend(clip, _grey(clip), factor)


def _adjust_hue(clip: np.ndarray, shift: np.float32) -> np.ndarray:
    """Rotate the hue by ``shift`` turns in HSV space (torchvision ``adjust_hue``)."""
    frames, height, width = clip.shape[:3]
    # cvtColor works per pixel, so the whole clip goes through as one tall image. For
    # float32 input OpenCV's HSV has H in degrees [0, 360) and S, V in [0, 1].
    tall = np.ascontiguousarray(clip.reshape(frames * height, width, 3), dtype=np.float32)
    hsv = cv2.cvtColor(tall, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(360.0) * shift, np.float32(360.0))
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(rgb.reshape(frames, height, width, 3), 0.0, 1.0)


# --------------------------------------------------------------------------------------
# Checking the parameters
# --------------------------------------------------------------------------------------


def _group(name: str, params: Mapping | None) -> Mapping:
    """One group of ``augmentation_params``, its unknown keys reported and dropped."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ReanimateError(
            f"augmentation_params.{name} must be a mapping of {', '.join(_KEYS[name])}, got {params!r}"
        )
    for key in params:
        if key not in _KEYS[name]:
            logger.warning(
                "augmentation_params.%s: ignoring unknown key %r (known: %s)", name, key, ", ".join(_KEYS[name])
            )
    return params


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ReanimateError(f"augmentation_params.{name} must be a number, got {value!r}")
    return float(value)


def _non_negative(name: str, value: Any) -> float:
    number = _number(name, value)
    if number < 0:
        raise ReanimateError(f"augmentation_params.{name} must be >= 0, got {value!r}")
    return number


def _range(name: str, value: Any, positive: bool = False) -> tuple[float, float]:
    """A ``[low, high]`` pair with ``low <= high`` (both > 0 when ``positive``)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ReanimateError(f"augmentation_params.{name} must be [low, high], got {value!r}")
    low, high = (_number(name, v) for v in value)
    if low > high or (positive and low <= 0):
        need = "0 < low <= high" if positive else "low <= high"
        raise ReanimateError(f"augmentation_params.{name} must satisfy {need}, got {value!r}")
    return low, high


def _degrees(value: Any) -> tuple[float, float]:
    """``d`` -> ``(-d, d)``; ``[lo, hi]`` as is (reference ``RandomRotation``)."""
    if value is None:
        raise ReanimateError("augmentation_params.rotation_param needs degrees: d or [low, high]")
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        degrees = _non_negative("rotation_param.degrees", value)
        return -degrees, degrees
    return _range("rotation_param.degrees", value)


def _size(value: Any) -> tuple[int, int]:
    """``s`` -> ``(s, s)``; ``[h, w]`` as is; positive integers."""
    sizes = [value, value] if isinstance(value, numbers.Integral) else value
    if (
        isinstance(sizes, (str, bytes))
        or not hasattr(sizes, "__len__")
        or len(sizes) != 2
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        raise ReanimateError(
            f"augmentation_params.crop_param.size must be a positive integer or [height, width], got {value!r}"
        )
    return int(sizes[0]), int(sizes[1])
