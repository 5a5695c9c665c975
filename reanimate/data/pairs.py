"""Source/driving pairs for evaluating animation (the reference ``PairedDataset``).

The pairs come from the dataset's ``pairs_list`` CSV (columns ``source`` and ``driving``
hold video names, e.g. the reference ``data/taichi256.csv``), or, without one, are drawn
at random from the first videos of the test split.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from reanimate.data.frames import FramesDataset
from reanimate.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["read_pairs_csv", "PairedDataset"]

_PAIR_COLUMNS = ("source", "driving")


def read_pairs_csv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The ``(source, driving)`` video names of a pairs CSV, in file order.

    The header must name a ``source`` and a ``driving`` column (any order; other columns
    such as ``distance`` and ``frame`` are ignored). Blank lines are skipped.

    Raises:
        InputError: the file is missing or unreadable, lacks one of the columns, or a
            row has an empty name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "pairs list not found" if not path.exists() else "pairs list is not a file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = [column.strip() for column in next(reader, [])]
            missing = [column for column in _PAIR_COLUMNS if column not in header]
            if missing:
                found = ", ".join(header) if header else "no header"
                raise InputError(
                    path,
                    f"pairs list needs columns 'source' and 'driving' in its "
                    f"header line (missing {', '.join(missing)}; found {found})",
                )
            source_at, driving_at = header.index("source"), header.index("driving")
            pairs = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                cells = [cell.strip() for cell in row]
                source = cells[source_at] if source_at < len(cells) else ""
                driving = cells[driving_at] if driving_at < len(cells) else ""
                if not source or not driving:
                    raise InputError(path, f"line {reader.line_num}: empty source or driving name")
                pairs.append((source, driving))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read the pairs list ({exc})") from None
    return pairs


class PairedDataset(Dataset):
    """Source/driving pairs of videos of a test-split :class:`FramesDataset`.

    With the dataset's ``pairs_list``: its rows whose two names are both videos of the
    dataset, the first ``num_pairs`` of them in file order. Without: ``num_pairs``
    distinct random (driving, source) pairs among the first ``min(num_pairs, len)``
    videos (a video may be paired with itself), drawn with ``seed``, as the reference.

    Attributes:
        dataset: the test dataset.
        pairs: ``(source_index, driving_index)`` into ``dataset``, one per item.

    Items: ``{"source_name", "source_path", "driving_name", "driving_path"}`` (strings).
    """

    def __init__(self, dataset: FramesDataset, num_pairs: int, seed: int = 0):
        if dataset.is_train:
            raise ValueError("PairedDataset needs a test-split FramesDataset (is_train=False)")
        if num_pairs < 0:
            raise ValueError(f"num_pairs must be >= 0, got {num_pairs}")
        self.dataset = dataset
        self.pairs: list[tuple[int, int]]
        if dataset.pairs_list is not None:
            index_of = {name: index for index, name in enumerate(dataset.videos)}
            rows = read_pairs_csv(dataset.pairs_list)
            kept = [
                (index_of[source], index_of[driving])
                for source, driving in rows
                if source in index_of and driving in index_of
            ]
            self.pairs = kept[:num_pairs]
            logger.info(
                "%s: %d of %d pairs are videos of %s; using %d",
                dataset.pairs_list,
                len(kept),
                len(rows),
                dataset.root,
                len(self.pairs),
            )
        else:
            count = min(num_pairs, len(dataset))
            # Distinct cells of the count x count grid of (driving, source) indices.
            cells = np.random.default_rng(seed).choice(count * count, min(num_pairs, count * count), replace=False)
            self.pairs = [(int(cell % count), int(cell // count)) for cell in cells]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        source, driving = self.pairs[idx]
        source_path = self.dataset.video_path(source)
        driving_path = self.dataset.video_path(driving)
        return {
            "source_name": source_path.name,
            "source_path": str(source_path),
            "driving_name": driving_path.name,
            "driving_path": str(driving_path),
        }
