"""On-disk cache of :class:`~reanimate.evaluation.features.VideoFeatures`.

:class:`FeatureCache` stores the measurements of a video under the digest of the input
file's bytes (:func:`file_digest`) and the extractor's
:attr:`~reanimate.evaluation.extractor.FeatureExtractor.version`, so that re-evaluating a
model only measures its new (generated) videos.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from reanimate.errors import InputError
from reanimate.evaluation.extractor import FeatureExtractor, Progress
from reanimate.evaluation.features import VideoFeatures
from reanimate.io import is_image_path, open_frames, read_image
from reanimate.io.files import list_frame_files

__all__ = ["FeatureCache", "file_digest", "iterate_frames"]

_HASH_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in chunks. For a folder of frames: of
    its frame images' names (in natural order) and bytes, other files ignored.

    Raises:
        InputError: the path is missing or cannot be read, or a folder has no images.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "not found")
    digest = hashlib.sha256()
    if not path.is_dir():
        _hash_file(digest, path)
        return digest.hexdigest()
    files = list_frame_files(path)
    if not files:
        raise InputError(path, "folder contains no frame images")
    for file in files:  # each name and its bytes' digest: no two folders give the same stream
        name = file.name.encode("utf-8", "surrogateescape")
        digest.update(len(name).to_bytes(8, "little") + name)
        content = hashlib.sha256()
        _hash_file(content, file)
        digest.update(content.digest())
    return digest.hexdigest()


def _hash_file(digest, path: Path) -> None:
    """Feed the bytes of ``path`` to ``digest``, a chunk at a time."""
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None


def iterate_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of a video file, a frame folder or a single image, one at a time."""
    path = Path(path)
    if is_image_path(path) and not path.is_dir():
        yield read_image(path)
        return
    with open_frames(path) as reader:
        yield from reader


class FeatureCache:
    """:class:`VideoFeatures` stored in ``directory``, one ``.npz`` per (input, extractor).

    The key is the sha256 of the input's bytes (:func:`file_digest`) together with
    :attr:`FeatureExtractor.version` (code version, detectors, kind and options): a file
    whose bytes change, or an extractor that measures differently, misses; renaming or
    moving a file does not. Files are named ``<digest>-<version hash>.npz`` and written
    atomically. ``hits`` and ``misses`` count the :meth:`get` calls of each kind.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def path_for(self, path: str | os.PathLike, extractor: FeatureExtractor) -> Path:
        """Where the features of ``path`` by ``extractor`` are (or would be) stored."""
        version = hashlib.sha256(extractor.version.encode()).hexdigest()[:16]
        return self.directory / f"{file_digest(path)}-{version}.npz"

    def get(
        self, path: str | os.PathLike, extractor: FeatureExtractor, progress: Progress | None = None
    ) -> VideoFeatures:
        """The features of the video file, frame folder or image at ``path``: from the
        cache, or measured with ``extractor`` (``progress`` as in its call) and stored.

        Raises:
            InputError: ``path`` cannot be read or decoded, or the cache folder cannot be
                written.
        """
        stored = self.path_for(path, extractor)
        if stored.is_file():
            try:
                features = VideoFeatures.load(stored)
            except InputError:
                pass  # a damaged entry: measure again and replace it
            else:
                self.hits += 1
                return features
        self.misses += 1
        with contextlib.closing(iterate_frames(path)) as frames:
            features = extractor(frames, progress)
        self._store(stored, features)
        return features

    def _store(self, stored: Path, features: VideoFeatures) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            features.save(stored)
        except OSError as exc:
            raise InputError(self.directory, f"cannot write the feature cache ({exc.strerror or exc})") from None
