"""The videos of a FOMM dataset and the training/evaluation datasets built from them.

Dataset layout (the reference implementation's ``frames_dataset.py``)::

    root/                     root/
      train/                    video-a.mp4
        <video> ...      or     video-b/   (folder of frames)
      test/                     video-c.png (frames side by side)
        <video> ...             ...        (split 80/20 at random, seeded)

A *video* is a folder of frame images (read in natural name order; other files are
ignored), a video file (:data:`reanimate.io.VIDEO_EXTENSIONS`), or one image holding the
frames side by side, each ``frame_shape[1]`` pixels wide. With ``id_sampling``, a video
named ``<id>#<anything>`` belongs to ``<id>`` and the training set has one item per id.

Frames come out as float32 ``(H, W, 3)`` RGB in ``[0, 1]``, resized to ``frame_shape``
where a video's frames have another size; a training sample is a dict of ``(3, H, W)``
tensors (``source``, ``driving``) and the video's ``name``.

Randomness: a sample drawn with ``dataset[(index, seed)]`` is a function of ``(index,
seed)`` only (every draw comes from ``numpy.random.default_rng(seed)``), so
:class:`SeededSampler` makes training data reproducible whatever the number of
DataLoader workers or processes.
"""

from __future__ import annotations

import logging
import math
import operator
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from reanimate.data.augmentation import Augmentation, AugmentationRecord
from reanimate.errors import InputError, ReanimateError
from reanimate.io import is_image_path, is_video_path, natural_sort_key

# The readers of one video live in reanimate.io.clips; re-exported here, where they were.
from reanimate.io.clips import (
    FileClip,
    FrameShape,
    ShortVideoError,
    check_frame_shape,
    count_frames,
    frames_to_batch,
    iter_frames,
    open_clip,
    read_frames,
)

logger = logging.getLogger(__name__)

__all__ = [
    "count_frames",
    "frames_to_batch",
    "read_frames",
    "iter_frames",
    "FramesDataset",
    "RepeatedDataset",
    "SeededSampler",
]

#: Share of the videos held out for testing when the dataset has no train/test folders
#: (the reference implementation's ``train_test_split(..., test_size=0.2)``).
TEST_FRACTION = 0.2
#: Separator between a video's id and the rest of its name (``<id>#<chunk>.mp4``).
ID_SEPARATOR = "#"
#: Keys of a config's ``dataset_params`` that the datasets use.
DATASET_KEYS = ("root_dir", "frame_shape", "id_sampling", "pairs_list", "augmentation_params")

#: Exceptions meaning "this video cannot be used"; training skips such videos.
_UNREADABLE = (InputError, OSError)


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------


def _split_item(item: Any) -> tuple[int, int | None]:
    """``index`` or ``(index, seed)`` -> ``(index, seed or None)``."""
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise TypeError(f"dataset items are index or (index, seed), got {item!r}")
        index, seed = item
        return operator.index(index), None if seed is None else operator.index(seed)
    return operator.index(item), None


def _item_rng(seed: int | None, attempt: int = 0) -> np.random.Generator:
    """The generator of a sample: ``default_rng(seed)``; the ``attempt``-th substitute of
    an unreadable video gets a child seed of the same seed; no seed: fresh entropy."""
    if seed is None:
        return np.random.default_rng()
    if attempt == 0:
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(attempt,)))


def _list_videos(folder: Path) -> list[str]:
    """Names of the videos directly in ``folder`` (natural order; hidden entries and
    files that are neither video nor image ignored)."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    names = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or is_video_path(entry) or is_image_path(entry):
            names.append(entry.name)
        else:
            logger.debug("%s: not a video, ignored", entry)
    return sorted(names, key=natural_sort_key)


def _random_split(names: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Seeded ``(train, test)`` split, ``ceil(TEST_FRACTION * n)`` test videos (as
    scikit-learn's ``train_test_split`` sizes it); each part in name order."""
    count_test = math.ceil(TEST_FRACTION * len(names))
    order = np.random.default_rng(seed).permutation(len(names))
    test = sorted((order[:count_test]).tolist())
    train = sorted((order[count_test:]).tolist())
    return [names[i] for i in train], [names[i] for i in test]


class FramesDataset(Dataset):
    """The videos of one split of a FOMM dataset (layout in the module doc).

    Args:
        root_dir: the dataset folder.
        frame_shape: ``(H, W, 3)`` of the frames given out (and of one frame of a
            side-by-side image).
        id_sampling: training only: one item per id (``name.split("#")[0]``), each sample
            taken from a random video of that id.
        is_train: the training split (samples of two frames) or the test split (videos
            to evaluate, streamed with :func:`iter_frames`).
        random_seed: seed of the 80/20 split of a dataset without ``train/``/``test/``.
        pairs_list: CSV of (source, driving) names for evaluation, kept for
            :class:`reanimate.data.pairs.PairedDataset`.
        augmentation_params: the config's ``augmentation_params`` (training only).

    Items: ``dataset[index]`` or ``dataset[(index, seed)]``. Training: ``{"source",
    "driving"}`` float32 tensors ``(3, H, W)`` in ``[0, 1]`` (two frames drawn uniformly
    with replacement, source the earlier unless a time flip swapped them), ``"name"``,
    the video's file name, ``"indices"`` the two frames' indices (source first),
    ``"mirrored"`` and ``"rotation"`` (:class:`~reanimate.data.augmentation.AugmentationRecord`). Test: ``{"name", "path", "num_frames"}``.

    A training video that cannot be read is reported once (a warning naming it) and the
    sample comes from the next item instead.

    Raises:
        InputError: the folder is missing, has ``train/`` without ``test/``, or the split
            has no videos.
    """

    def __init__(
        self,
        root_dir: str | os.PathLike,
        frame_shape: FrameShape = (256, 256, 3),
        id_sampling: bool = False,
        is_train: bool = True,
        random_seed: int = 0,
        pairs_list: str | os.PathLike | None = None,
        augmentation_params: Mapping[str, Any] | None = None,
    ):
        self.root_dir = Path(root_dir)
        self.frame_shape = (*check_frame_shape(frame_shape), 3)
        self.is_train = bool(is_train)
        self.id_sampling = bool(id_sampling) and self.is_train
        self.pairs_list = None if pairs_list is None else Path(pairs_list)
        self.augmentation = Augmentation.from_config(augmentation_params) if self.is_train else None
        split = "train" if self.is_train else "test"

        if not self.root_dir.is_dir():
            problem = "is not a folder" if self.root_dir.exists() else "dataset folder not found"
            raise InputError(
                self.root_dir, f"{problem} (expected a folder of videos, or train/ and test/ folders of videos)"
            )
        if (self.root_dir / "train").is_dir():
            if not (self.root_dir / "test").is_dir():
                raise InputError(
                    self.root_dir,
                    "has a train/ folder but no test/ folder; add "
                    "test/, or remove train/ to split the videos at random",
                )
            logger.info("%s: using the dataset's own train/test split", self.root_dir)
            self.root = self.root_dir / split
            names = _list_videos(self.root)
        else:
            logger.info(
                "%s: no train/ folder, splitting the videos %g/%g at random (seed %d)",
                self.root_dir,
                100 * (1 - TEST_FRACTION),
                100 * TEST_FRACTION,
                random_seed,
            )
            self.root = self.root_dir
            train, test = _random_split(_list_videos(self.root_dir), random_seed)
            names = train if self.is_train else test
        if not names:
            raise InputError(
                self.root,
                f"no videos for the {split} split (expected folders "
                "of frames, video files or images of frames side by side)",
            )

        self._id_videos: dict[str, list[str]] = {}
        if self.id_sampling:
            for name in names:
                self._id_videos.setdefault(name.split(ID_SEPARATOR)[0], []).append(name)
            self.videos: list[str] = sorted(self._id_videos, key=natural_sort_key)
        else:
            self.videos = names
        self._frame_counts: dict[Path, int] = {}  # video files: counting may need decoding
        self._warned: set[Path] = set()

    @classmethod
    def from_config(
        cls, dataset_params: Mapping[str, Any], is_train: bool, root_dir: str | os.PathLike | None = None
    ) -> FramesDataset:
        """Build from a config's ``dataset_params`` (:data:`DATASET_KEYS`; others are
        ignored with a warning). ``root_dir`` replaces the config's."""
        params = dict(dataset_params or {})
        for key in params:
            if key not in DATASET_KEYS:
                logger.warning("dataset_params: ignoring unknown key %r (known: %s)", key, ", ".join(DATASET_KEYS))
        root = root_dir if root_dir is not None else params.get("root_dir")
        if root is None:
            raise InputError(
                None, "dataset_params.root_dir is not set; give the dataset folder in the config or on the command line"
            )
        return cls(
            root,
            frame_shape=params.get("frame_shape", (256, 256, 3)),
            id_sampling=params.get("id_sampling", False),
            is_train=is_train,
            pairs_list=params.get("pairs_list"),
            augmentation_params=params.get("augmentation_params"),
        )

    def __len__(self) -> int:
        return len(self.videos)

    def name(self, idx: int) -> str:
        """Name of item ``idx``: the video's name, or the id with ``id_sampling``."""
        return self.videos[self._check_index(idx)]

    def video_path(self, idx: int) -> Path:
        """Path of item ``idx``'s video (with ``id_sampling``: the id's first video)."""
        name = self.videos[self._check_index(idx)]
        if self.id_sampling:
            name = self._id_videos[name][0]
        return self.root / name

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = _split_item(item)
        index = self._check_index(index)
        if not self.is_train:
            path = self.video_path(index)
            return {"name": path.name, "path": str(path), "num_frames": self._open(path).num_frames}
        for attempt in range(len(self)):
            current = (index + attempt) % len(self)
            rng = _item_rng(seed, attempt)
            path = self._choose_video(current, rng)
            try:
                return self._sample(path, rng)
            except _UNREADABLE as exc:
                self._report_unreadable(path, exc)
        raise InputError(self.root, f"none of the {len(self)} training videos can be read (see the warnings above)")

    def _check_index(self, idx: int) -> int:
        idx = operator.index(idx)
        if not 0 <= idx < len(self.videos):
            raise IndexError(f"index {idx} out of range for a dataset of {len(self.videos)}")
        return idx

    def _choose_video(self, index: int, rng: np.random.Generator) -> Path:
        name = self.videos[index]
        if self.id_sampling:
            choices = self._id_videos[name]
            name = choices[int(rng.integers(len(choices)))]
        return self.root / name

    def _open(self, path: Path):
        return open_clip(path, self.frame_shape[:2], self._frame_counts.get(path))

    def _sample(self, path: Path, rng: np.random.Generator) -> dict[str, Any]:
        """Two frames drawn uniformly with replacement, in time order, then augmented."""
        video = self._open(path)
        count = video.num_frames
        if isinstance(video, FileClip):
            self._frame_counts[path] = count
        indices = np.sort(rng.integers(0, count, size=2))
        try:
            frames = video.read(indices)
        except ShortVideoError as exc:  # declared more frames than it has: draw again
            self._frame_counts[path] = exc.available
            if exc.available == 0:
                raise InputError(path, "video contains no frames") from None
            indices = np.sort(rng.integers(0, exc.available, size=2))
            frames = video.read(indices)
        record = AugmentationRecord()
        if self.augmentation is not None and self.augmentation.enabled:
            frames, record = self.augmentation.apply(frames, rng)
        if record.time_flipped:
            indices = indices[::-1].copy()
        source, driving = frames_to_batch(frames)
        return {
            "source": source,
            "driving": driving,
            "name": path.name,
            "indices": torch.from_numpy(indices.astype(np.int64)),
            "mirrored": record.mirrored,
            "rotation": record.rotation,
        }

    def _report_unreadable(self, path: Path, exc: Exception) -> None:
        if path in self._warned:
            return
        self._warned.add(path)
        # An InputError names the file at fault (the video, or one frame of a folder).
        named = isinstance(exc, InputError) and exc.path is not None and Path(exc.path) == path
        detail = str(exc) if named else f"{path} ({exc})"
        logger.warning(
            "skipping unreadable training video %s; another video is used in its place (reported once per file)", detail
        )

    def __repr__(self) -> str:
        kind = "ids" if self.id_sampling else "videos"
        split = "train" if self.is_train else "test"
        return f"FramesDataset({str(self.root)!r}, {split}, {len(self)} {kind})"


class RepeatedDataset(Dataset):
    """``num_repeats`` passes over a dataset as one epoch (the config's ``num_repeats``;
    fewer epoch ends, as the reference ``DatasetRepeater``). Items ``i`` and ``(i, seed)``
    are the dataset's ``i % len(dataset)`` with the same seed."""

    def __init__(self, dataset: Dataset, num_repeats: int = 100):
        if isinstance(num_repeats, bool) or operator.index(num_repeats) < 1:
            raise ReanimateError(f"num_repeats must be a positive integer, got {num_repeats!r}")
        self.dataset = dataset
        self.num_repeats = operator.index(num_repeats)

    def __len__(self) -> int:
        return self.num_repeats * len(self.dataset)

    def __getitem__(self, item: int | tuple[int, int]) -> Any:
        index, seed = _split_item(item)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)}")
        index %= len(self.dataset)
        return self.dataset[index if seed is None else (index, seed)]


class SeededSampler(Sampler):
    """Yields ``(index, sample_seed)``: a seeded epoch order, sharded over processes.

    Each epoch is a permutation of ``range(length)`` drawn from ``(seed, epoch)`` (the
    identity when ``shuffle`` is False), padded by wrapping around to a multiple of
    ``world_size`` and dealt ``rank::world_size``, as ``DistributedSampler``. The seed of
    the sample at global position ``p`` of the epoch comes from ``SeedSequence(seed,
    spawn_key=(epoch, p))``: every rank agrees on it and a run resumed with
    ``set_epoch(epoch, skip=k)`` continues exactly where it stopped.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.length = operator.index(length)
        self.seed = operator.index(seed)
        self.shuffle = bool(shuffle)
        self.rank = operator.index(rank)
        self.world_size = operator.index(world_size)
        if self.length < 0 or self.seed < 0:
            raise ValueError(f"length and seed must be >= 0, got {length} and {seed}")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"need world_size >= 1 and 0 <= rank < world_size, got rank {rank}, world_size {world_size}"
            )
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch, leaving out this rank's first ``skip`` samples (resume)."""
        epoch, skip = operator.index(epoch), operator.index(skip)
        if epoch < 0 or skip < 0:
            raise ValueError(f"epoch and skip must be >= 0, got {epoch} and {skip}")
        self.epoch, self.skip = epoch, skip

    @property
    def _per_rank(self) -> int:
        return math.ceil(self.length / self.world_size)

    def __len__(self) -> int:
        return max(0, self._per_rank - self.skip)

    def order(self) -> np.ndarray:
        """This epoch's global order, padded to a multiple of ``world_size``."""
        if self.shuffle:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch,)))
            order = rng.permutation(self.length)
        else:
            order = np.arange(self.length)
        return np.resize(order, self._per_rank * self.world_size)  # wraps around

    def sample_seed(self, position: int) -> int:
        """The seed of the sample at global ``position`` of the current epoch."""
        sequence = np.random.SeedSequence(self.seed, spawn_key=(self.epoch, position))
        return int(sequence.generate_state(1, dtype=np.uint64)[0])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        first = self.rank + self.skip * self.world_size
        for position in range(first, len(order), self.world_size):
            yield int(order[position]), self.sample_seed(position)
