"""Training and evaluation data: the official FOMM dataset layout, augmentations,
source/driving pairs and the synthetic benchmark with ground-truth motion."""

from .augmentation import Augmentation
from .frames import (
    FramesDataset,
    RepeatedDataset,
    SeededSampler,
    count_frames,
    frames_to_batch,
    iter_frames,
    read_frames,
)
from .pairs import PairedDataset, read_pairs_csv
from .synthetic import SyntheticConfig, flow_path, load_flow, make_synthetic, render_video

__all__ = [
    "Augmentation",
    "FramesDataset",
    "PairedDataset",
    "RepeatedDataset",
    "SeededSampler",
    "SyntheticConfig",
    "count_frames",
    "flow_path",
    "frames_to_batch",
    "iter_frames",
    "load_flow",
    "make_synthetic",
    "read_frames",
    "read_pairs_csv",
    "render_video",
]
