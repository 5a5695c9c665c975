"""The training/evaluation data: reading dataset videos, the datasets, sampling, augmentation
and evaluation pairs. Tiny synthetic videos of flat-coloured frames, written per test."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from reanimate.data.augmentation import Augmentation
from reanimate.data.frames import (
    FramesDataset,
    RepeatedDataset,
    SeededSampler,
    count_frames,
    iter_frames,
    read_frames,
)
from reanimate.data.pairs import PairedDataset, read_pairs_csv
from reanimate.errors import InputError, ReanimateError
from reanimate.io import open_writer

SIZE = 16  # frames are SIZE x SIZE
SHAPE = (SIZE, SIZE, 3)
NUM_FRAMES = 12
#: H.264 (yuv420p) reproduces a flat colour within a few levels.
MP4_TOLERANCE = 6 / 255


def colours(num_frames: int = NUM_FRAMES, offset: int = 0) -> np.ndarray:
    """One distinct flat colour per frame, uint8 ``(N, 3)``, >= 10 levels apart."""
    i = np.arange(num_frames) + offset
    return (np.stack([10 + 15 * i, 200 - 10 * i, 40 + 12 * i], axis=1) % 256).astype(np.uint8)


def flat_frames(palette: np.ndarray, size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` frames, frame ``i`` filled with ``palette[i]``."""
    height, width = size
    return np.ascontiguousarray(np.broadcast_to(palette[:, None, None, :], (len(palette), height, width, 3)))


def write_folder(path: Path, frames: np.ndarray) -> Path:
    """PNG frames named 1.png, 2.png, ... 10.png (natural order differs from plain sort),
    plus a file that is not a frame."""
    path.mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(path / f"{index + 1}.png")
    (path / "notes.txt").write_text("not a frame")
    return path


def write_mp4(path: Path, frames: np.ndarray) -> Path:
    with open_writer(path, fps=25) as writer:
        writer.write(frames)
    return path


def write_stacked(path: Path, frames: np.ndarray) -> Path:
    Image.fromarray(np.concatenate(list(frames), axis=1)).save(path)
    return path


WRITERS = {"folder": ("", write_folder), "mp4": (".mp4", write_mp4), "png": (".png", write_stacked)}


def make_video(kind: str, folder: Path, name: str, frames: np.ndarray) -> Path:
    suffix, write = WRITERS[kind]
    return write(folder / f"{name}{suffix}", frames)


def frame_colours(frames: np.ndarray) -> np.ndarray:
    """Mean colour of each ``(N, H, W, 3)`` frame (or ``(3, H, W)`` tensor)."""
    return frames.reshape(len(frames), -1, 3).mean(axis=1, dtype=np.float64)


def colour_index(frame: np.ndarray, palette: np.ndarray) -> int:
    """Index of the palette colour closest to a flat ``(3, H, W)`` / ``(H, W, 3)`` frame."""
    if frame.shape[0] == 3:
        frame = frame.transpose(1, 2, 0)
    mean = frame.reshape(-1, 3).mean(axis=0) * 255
    return int(np.argmin(np.abs(palette.astype(float) - mean).sum(axis=1)))


# --------------------------------------------------------------------------------------
# Reading videos
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_read_frames_gives_the_requested_frames_of_each_kind(tmp_path, kind):
    palette = colours()
    path = make_video(kind, tmp_path, "video", flat_frames(palette))
    tolerance = MP4_TOLERANCE if kind == "mp4" else 1e-6

    assert count_frames(path, SHAPE) == NUM_FRAMES
    indices = [9, 0, 9, 3, 11]  # unsorted, repeated, crossing the 2 < 10 sort trap
    frames = read_frames(path, indices, SHAPE)
    assert frames.dtype == np.float32 and frames.shape == (5, SIZE, SIZE, 3)
    np.testing.assert_allclose(frame_colours(frames), palette[indices] / 255, atol=tolerance)
    assert read_frames(path, [], SHAPE).shape == (0, SIZE, SIZE, 3)

    streamed = list(iter_frames(path, SHAPE))
    assert len(streamed) == NUM_FRAMES
    np.testing.assert_allclose(frame_colours(np.stack(streamed)), palette / 255, atol=tolerance)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_frames_are_resized_to_frame_shape(tmp_path, kind):
    palette = colours(4)
    path = make_video(kind, tmp_path, "video", flat_frames(palette, size=(32, 32)))
    # A side-by-side image is cut into frame_shape[1]-wide frames, then fitted in height.
    for shape in [(16, 32, 3), (48, 32, 3)] if kind == "png" else [(16, 8, 3), (40, 48, 3)]:
        frames = read_frames(path, [2, 1], shape)
        assert frames.shape == (2, shape[0], shape[1], 3)
        tolerance = MP4_TOLERANCE if kind == "mp4" else 1e-5
        np.testing.assert_allclose(
            frames, np.broadcast_to(palette[[2, 1], None, None] / 255, frames.shape), atol=tolerance
        )


def test_grey_and_rgba_frames_become_rgb(tmp_path):
    folder = tmp_path / "grey"
    folder.mkdir()
    Image.fromarray(np.full((SIZE, SIZE), 100, np.uint8)).save(folder / "0.png")
    Image.fromarray(np.full((SIZE, SIZE, 4), (255, 0, 0, 255), np.uint8)).save(folder / "1.png")
    frames = read_frames(folder, [0, 1], SHAPE)
    np.testing.assert_allclose(frames[0], 100 / 255, atol=1e-6)
    np.testing.assert_allclose(frames[1, 0, 0], [1, 0, 0])


def test_reading_errors_name_the_file(tmp_path):
    path = write_stacked(tmp_path / "stacked.png", flat_frames(colours(3)))
    with pytest.raises(InputError, match=r"stacked\.png.*not a multiple of the frame width 10"):
        count_frames(path, (SIZE, 10, 3))
    with pytest.raises(InputError, match=r"stacked\.png: frame 3 is out of range"):
        read_frames(path, [0, 3], SHAPE)
    mp4 = write_mp4(tmp_path / "clip.mp4", flat_frames(colours(3)))
    with pytest.raises(InputError, match=r"clip\.mp4: frame 5 is out of range"):
        read_frames(mp4, [5], SHAPE)
    with pytest.raises(InputError, match="missing.mp4: not found"):
        read_frames(tmp_path / "missing.mp4", [0], SHAPE)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="notes.txt: not a video"):
        count_frames(tmp_path / "notes.txt", SHAPE)
    with pytest.raises(ReanimateError, match="frame_shape"):
        count_frames(path, (SIZE, SIZE, 4))


# --------------------------------------------------------------------------------------
# FramesDataset
# --------------------------------------------------------------------------------------


def make_dataset_folder(folder: Path, names: list[str], kind: str = "folder", num_frames: int = NUM_FRAMES) -> Path:
    """Videos ``names`` in ``folder``, video ``k`` with the colours ``colours(n, 3 * k)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        make_video(kind, folder, name, flat_frames(colours(num_frames, offset=3 * k)))
    return folder


def test_train_and_test_folders_are_used(tmp_path):
    make_dataset_folder(tmp_path / "train", ["a", "b", "c"])
    make_dataset_folder(tmp_path / "test", ["x", "y"], kind="mp4")
    (tmp_path / "test" / "readme.txt").write_text("ignored")

    train = FramesDataset(tmp_path, SHAPE, is_train=True)
    test = FramesDataset(tmp_path, SHAPE, is_train=False)
    assert (train.videos, train.root, len(train)) == (["a", "b", "c"], tmp_path / "train", 3)
    assert (test.videos, test.root) == (["x.mp4", "y.mp4"], tmp_path / "test")

    item = test[1]
    assert item == {"name": "y.mp4", "path": str(tmp_path / "test" / "y.mp4"), "num_frames": NUM_FRAMES}
    assert test.video_path(0) == tmp_path / "test" / "x.mp4" and test.name(0) == "x.mp4"
    with pytest.raises(IndexError):
        test[2]


def test_train_item_is_two_frames_of_the_video_in_time_order(tmp_path):
    make_dataset_folder(tmp_path / "train", ["a"], kind="png")
    (tmp_path / "test").mkdir()
    dataset = FramesDataset(tmp_path, SHAPE, is_train=True)
    palette = colours()
    pairs = set()
    for seed in range(30):
        item = dataset[(0, seed)]
        assert item["name"] == "a.png"
        for key in ("source", "driving"):
            tensor = item[key]
            assert tensor.dtype == torch.float32 and tensor.shape == (3, SIZE, SIZE)
            assert 0 <= tensor.min() and tensor.max() <= 1
        source = colour_index(item["source"].numpy(), palette)
        driving = colour_index(item["driving"].numpy(), palette)
        assert source <= driving
        pairs.add((source, driving))
    assert len(pairs) > 10  # the frames are drawn, not fixed


def test_random_split_is_seeded_and_complete(tmp_path):
    names = [f"v{i}" for i in range(10)]
    make_dataset_folder(tmp_path, names, num_frames=2)
    train = FramesDataset(tmp_path, SHAPE, is_train=True, random_seed=0)
    test = FramesDataset(tmp_path, SHAPE, is_train=False, random_seed=0)
    assert (len(train), len(test)) == (8, 2)
    assert sorted(train.videos + test.videos) == sorted(names)
    assert train.root == tmp_path
    assert FramesDataset(tmp_path, SHAPE, is_train=False, random_seed=0).videos == test.videos
    other = [FramesDataset(tmp_path, SHAPE, is_train=False, random_seed=s).videos for s in range(1, 6)]
    assert any(videos != test.videos for videos in other)


def test_id_sampling_draws_videos_of_the_id(tmp_path):
    make_dataset_folder(tmp_path / "train", ["alice#1", "alice#2", "bob#1"], num_frames=3)
    make_video("mp4", tmp_path / "train", "bob#2", flat_frames(colours(3)))
    make_dataset_folder(tmp_path / "test", ["carol#1"], num_frames=3)
    dataset = FramesDataset(tmp_path, SHAPE, id_sampling=True, is_train=True)
    assert dataset.videos == ["alice", "bob"]
    assert dataset.video_path(1) == tmp_path / "train" / "bob#1"
    seen = {"alice": set(), "bob": set()}
    for seed in range(20):
        for index, identity in enumerate(dataset.videos):
            seen[identity].add(dataset[(index, seed)]["name"])
    assert seen == {"alice": {"alice#1", "alice#2"}, "bob": {"bob#1", "bob#2.mp4"}}
    # The test split lists videos, not ids.
    assert FramesDataset(tmp_path, SHAPE, id_sampling=True, is_train=False).videos == ["carol#1"]


def test_seeded_items_are_reproducible(tmp_path):
    make_dataset_folder(tmp_path, [f"v{i}" for i in range(5)])
    dataset = FramesDataset(
        tmp_path,
        SHAPE,
        augmentation_params={
            "flip_param": {"horizontal_flip": True, "time_flip": True},
            "jitter_param": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
        },
    )
    first, again = dataset[(1, 123)], dataset[(1, 123)]
    assert torch.equal(first["source"], again["source"])
    assert torch.equal(first["driving"], again["driving"])
    others = [dataset[(1, seed)] for seed in range(5)]
    assert any(not torch.equal(first["source"], o["source"]) for o in others)
    assert dataset[1]["source"].shape == (3, SIZE, SIZE)  # unseeded works too


def test_dataset_errors_name_the_folder(tmp_path):
    with pytest.raises(InputError, match="nowhere: dataset folder not found"):
        FramesDataset(tmp_path / "nowhere", SHAPE)
    make_dataset_folder(tmp_path / "half" / "train", ["a"], num_frames=2)
    with pytest.raises(InputError, match="half: has a train/ folder but no test/ folder"):
        FramesDataset(tmp_path / "half", SHAPE)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "list.csv").write_text("not a video")
    with pytest.raises(InputError, match="empty: no videos for the train split"):
        FramesDataset(tmp_path / "empty", SHAPE)


def test_from_config(tmp_path, caplog):
    make_dataset_folder(tmp_path / "data", [f"v{i}" for i in range(5)], num_frames=3)
    params = {
        "root_dir": str(tmp_path / "elsewhere"),
        "frame_shape": [8, 8, 3],
        "id_sampling": False,
        "pairs_list": None,
        "colour": "blue",
        "augmentation_params": {
            "flip_param": {"horizontal_flip": True, "time_flip": True},
            "crop_param": {"size": [4, 6]},
        },
    }
    with caplog.at_level(logging.WARNING):
        dataset = FramesDataset.from_config(params, is_train=True, root_dir=tmp_path / "data")
    assert "'colour'" in caplog.text
    assert dataset.frame_shape == (8, 8, 3) and len(dataset) == 4
    assert dataset[(0, 0)]["source"].shape == (3, 4, 6)
    with pytest.raises(InputError, match="elsewhere: dataset folder not found"):
        FramesDataset.from_config(params, is_train=False)
    with pytest.raises(InputError, match="root_dir is not set"):
        FramesDataset.from_config({}, is_train=True)


def test_corrupt_video_is_skipped_with_one_warning(tmp_path, caplog):
    root = make_dataset_folder(tmp_path / "train", ["a", "c"], kind="mp4")
    (root / "b.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    empty = root / "d"
    empty.mkdir()  # a folder without frames is unreadable too
    (tmp_path / "test").mkdir()
    dataset = FramesDataset(tmp_path, SHAPE)
    assert dataset.videos == ["a.mp4", "b.mp4", "c.mp4", "d"]
    bad = dataset.videos.index("b.mp4")
    with caplog.at_level(logging.WARNING, logger="reanimate.data.frames"):
        item = dataset[(bad, 7)]
        again = dataset[(bad, 7)]
        last = dataset[(dataset.videos.index("d"), 3)]
    assert item["name"] == "c.mp4" and last["name"] == "a.mp4"  # the next readable video
    assert item["source"].shape == (3, SIZE, SIZE) and torch.isfinite(item["source"]).all()
    assert torch.equal(item["source"], again["source"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "b.mp4" in warnings[0] and str(empty) in warnings[1]


def test_video_shorter_than_declared_still_gives_samples(tmp_path):
    root = make_dataset_folder(tmp_path, ["a", "b", "c", "d", "e"], kind="mp4")
    dataset = FramesDataset(tmp_path, SHAPE)
    path = dataset.video_path(0)
    dataset._frame_counts[path] = NUM_FRAMES + 8  # as if the container over-declared
    names = {dataset[(0, seed)]["name"] for seed in range(10)}
    assert names == {path.name} and dataset._frame_counts[path] == NUM_FRAMES
    assert root == dataset.root


def test_all_videos_corrupt_raises(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"):
        (root / name).write_bytes(b"\x00garbage" * 50)
    dataset = FramesDataset(root, SHAPE)
    with pytest.raises(InputError, match="bad: none of the 4 training videos can be read"):
        dataset[(0, 0)]


def test_dataloader_workers_give_the_same_batches(tmp_path):
    make_dataset_folder(tmp_path, [f"v{i}" for i in range(6)], num_frames=5)
    dataset = RepeatedDataset(
        FramesDataset(
            tmp_path,
            SHAPE,
            augmentation_params={
                "flip_param": {"horizontal_flip": True, "time_flip": True},
                "jitter_param": {"hue": 0.2},
            },
        ),
        num_repeats=2,
    )
    assert len(dataset) == 8

    def batches(workers):
        sampler = SeededSampler(len(dataset), seed=3)
        sampler.set_epoch(1)
        loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=workers)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 4
    for one, two in zip(serial, parallel):
        assert one["name"] == two["name"]
        assert one["source"].shape == (2, 3, SIZE, SIZE)
        assert torch.equal(one["source"], two["source"])
        assert torch.equal(one["driving"], two["driving"])


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------


def test_sampler_shards_cover_every_index_with_shared_seeds():
    ranks = [SeededSampler(5, seed=1, rank=r, world_size=2) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(4)
    lists = [list(sampler) for sampler in ranks]
    assert [len(items) for items in lists] == [3, 3] == [len(s) for s in ranks]
    assert {index for items in lists for index, _ in items} == set(range(5))
    # A global position has the same seed whatever the number of ranks.
    single = SeededSampler(5, seed=1)
    single.set_epoch(4)
    merged = [lists[p % 2][p // 2] for p in range(5)]
    assert list(single) == merged
    seeds = [seed for items in lists for _, seed in items]
    assert len(set(seeds)) == 6


def test_sampler_epochs_skip_and_order():
    sampler = SeededSampler(20, seed=5)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert sorted(i for i, _ in epoch0) == list(range(20))
    assert list(sampler) == epoch0 == list(SeededSampler(20, seed=5))
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert [i for i, _ in epoch1] != [i for i, _ in epoch0]
    assert not {s for _, s in epoch0} & {s for _, s in epoch1}
    sampler.set_epoch(1, skip=7)
    assert list(sampler) == epoch1[7:] and len(sampler) == 13
    ordered = SeededSampler(4, shuffle=False)
    assert [i for i, _ in ordered] == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        SeededSampler(4, rank=2, world_size=2)


def test_repeated_dataset_maps_onto_the_dataset():
    class Echo(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, item):
            return item

    repeated = RepeatedDataset(Echo(), num_repeats=4)
    assert len(repeated) == 12
    assert repeated[7] == 1 and repeated[(11, 99)] == (2, 99)
    with pytest.raises(IndexError):
        repeated[12]


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------


def random_clip(seed: int = 0, frames: int = 2, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).random((frames, size, size, 3), dtype=np.float32)


def outcomes(augmentation: Augmentation, clip: np.ndarray, seeds=range(16)) -> list[np.ndarray]:
    return [augmentation(clip, np.random.default_rng(seed)) for seed in seeds]


def test_no_augmentation_and_zero_jitter_are_identity():
    clip = random_clip()
    zero = Augmentation(jitter_param={"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0})
    for augmentation in (Augmentation(), Augmentation.from_config(None), zero):
        out = augmentation(clip, np.random.default_rng(0))
        assert out.dtype == np.float32 and np.array_equal(out, clip) and out is not clip


def test_flips_mirror_or_reverse_the_whole_clip():
    clip = random_clip(frames=3)
    mirror = outcomes(Augmentation(flip_param={"horizontal_flip": True}), clip)
    assert all(np.array_equal(o, clip) or np.array_equal(o, clip[:, :, ::-1]) for o in mirror)
    assert any(np.array_equal(o, clip[:, :, ::-1]) for o in mirror)
    assert any(np.array_equal(o, clip) for o in mirror)
    reverse = outcomes(Augmentation(flip_param={"time_flip": True}), clip)
    assert all(np.array_equal(o, clip) or np.array_equal(o, clip[::-1]) for o in reverse)
    assert any(np.array_equal(o, clip[::-1]) for o in reverse)


def test_time_flip_swaps_source_and_driving(tmp_path):
    make_dataset_folder(tmp_path / "train", ["a"])
    (tmp_path / "test").mkdir()
    palette = colours()
    plain = FramesDataset(tmp_path, SHAPE)
    flipping = FramesDataset(tmp_path, SHAPE, augmentation_params={"flip_param": {"time_flip": True}})
    swapped = 0
    for seed in range(20):
        before, after = plain[(0, seed)], flipping[(0, seed)]
        order = [colour_index(before[k].numpy(), palette) for k in ("source", "driving")]
        flipped = [colour_index(after[k].numpy(), palette) for k in ("source", "driving")]
        assert flipped in (order, order[::-1])
        swapped += order[0] != order[1] and flipped == order[::-1]
    assert swapped > 0


def test_jitter_changes_colours_within_range():
    clip = random_clip(frames=2) * 0.5 + 0.25
    jitter = Augmentation(jitter_param={"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.3})
    for out in outcomes(jitter, clip, range(8)):
        assert out.shape == clip.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
        assert not np.allclose(out, clip, atol=1e-3)
    # Brightness alone scales every pixel by one factor, the same for all frames.
    out = Augmentation(jitter_param={"brightness": 0.3})(clip, np.random.default_rng(1))
    ratio = out / clip
    assert np.ptp(ratio) < 1e-5 and abs(ratio.mean() - 1) > 1e-3
    # A hue shift keeps each pixel's brightest channel (V in HSV).
    out = Augmentation(jitter_param={"hue": 0.5})(clip, np.random.default_rng(2))
    np.testing.assert_allclose(out.max(axis=-1), clip.max(axis=-1), atol=1e-5)


def test_rotation_resize_and_crop_geometry():
    clip = random_clip(frames=2)
    quarter = Augmentation(rotation_param={"degrees": [90, 90]})(clip, np.random.default_rng(0))
    np.testing.assert_allclose(quarter, np.rot90(clip, 1, axes=(1, 2)), atol=1e-6)  # CCW
    double = Augmentation(resize_param={"ratio": [2, 2]}, crop_param={"size": 32})
    assert double(clip, np.random.default_rng(0)).shape == (2, 32, 32, 3)
    crop = Augmentation(crop_param={"size": [5, 7]})
    for out in outcomes(crop, clip, range(4)):
        assert out.shape == (2, 5, 7, 3)
        # The same window of both frames: find it in the first, check the second.
        hits = [
            (y, x)
            for y in range(SIZE - 4)
            for x in range(SIZE - 6)
            if np.array_equal(clip[0, y : y + 5, x : x + 7], out[0])
        ]
        assert len(hits) == 1
        y, x = hits[0]
        assert np.array_equal(clip[1, y : y + 5, x : x + 7], out[1])
    everything = Augmentation.from_config(
        {
            "flip_param": {"horizontal_flip": True, "time_flip": True},
            "rotation_param": {"degrees": 15},
            "resize_param": {"ratio": [0.9, 1.1]},
            "crop_param": {"size": [12, 12]},
            "jitter_param": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
        }
    )
    for out in outcomes(everything, clip, range(4)):
        assert out.shape == (2, 12, 12, 3) and 0 <= out.min() and out.max() <= 1


def test_augmentation_config_errors_and_warnings(caplog):
    with caplog.at_level(logging.WARNING):
        Augmentation.from_config({"flip_param": {"horizontal_flip": True, "vertical": True}, "blur_param": {}})
    assert "'vertical'" in caplog.text and "'blur_param'" in caplog.text
    with pytest.raises(ReanimateError, match="hue must be in"):
        Augmentation(jitter_param={"hue": 0.7})
    with pytest.raises(ReanimateError, match="crop_param.size"):
        Augmentation(crop_param={"size": [0, 4]})
    with pytest.raises(ReanimateError, match="brightness must be >= 0"):
        Augmentation(jitter_param={"brightness": -1})


# --------------------------------------------------------------------------------------
# Evaluation pairs
# --------------------------------------------------------------------------------------


def test_read_pairs_csv(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("distance,driving,frame,source\n1.5,b.mp4,0,a.mp4\n\n2,c.mp4,0,d.mp4\n")
    assert read_pairs_csv(path) == [("a.mp4", "b.mp4"), ("d.mp4", "c.mp4")]
    bad = tmp_path / "bad.csv"
    bad.write_text("src,driving\na,b\n")
    with pytest.raises(InputError, match=r"bad\.csv: pairs list needs columns .*missing source"):
        read_pairs_csv(bad)
    with pytest.raises(InputError, match=r"none\.csv: pairs list not found"):
        read_pairs_csv(tmp_path / "none.csv")


def test_paired_dataset_filters_the_pairs_list(tmp_path):
    make_dataset_folder(tmp_path / "train", ["t"], num_frames=2)
    make_dataset_folder(tmp_path / "test", ["a", "b", "c"], num_frames=2)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,driving\na,b\nzzz,a\nc,a\nb,b\na,c\n")
    test = FramesDataset(tmp_path, SHAPE, is_train=False, pairs_list=pairs)
    paired = PairedDataset(test, num_pairs=3)
    assert [(p["source_name"], p["driving_name"]) for p in paired] == [("a", "b"), ("c", "a"), ("b", "b")]
    assert paired[0]["driving_path"] == str(tmp_path / "test" / "b")
    with pytest.raises(ValueError):
        PairedDataset(FramesDataset(tmp_path, SHAPE, is_train=True), num_pairs=1)


def test_paired_dataset_random_pairs(tmp_path):
    make_dataset_folder(tmp_path / "train", ["t"], num_frames=2)
    make_dataset_folder(tmp_path / "test", [f"v{i}" for i in range(6)], num_frames=2)
    test = FramesDataset(tmp_path, SHAPE, is_train=False)
    paired = PairedDataset(test, num_pairs=4, seed=1)
    assert len(paired) == 4 and len(set(paired.pairs)) == 4
    assert all(s < 4 and d < 4 for s, d in paired.pairs)  # among the first num_pairs videos
    assert PairedDataset(test, num_pairs=4, seed=1).pairs == paired.pairs
    assert len(PairedDataset(test, num_pairs=100)) == 36  # every (driving, source) of 6 videos
