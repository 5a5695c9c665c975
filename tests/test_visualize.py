"""``--visualize``: source | driving with keypoints | result | occlusion map (where the
model has one), for every source size, with paste-back on or off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reanimate.io import read_image
from reanimate.pipelines import animate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def three_frames(tmp_path_factory) -> Path:
    from conftest import example_clip

    return example_clip(tmp_path_factory.mktemp("clip") / "three.mp4", 3)


def frames_of(folder: Path) -> list[np.ndarray]:
    return [read_image(p) for p in sorted(folder.glob("*.png"))]


@pytest.mark.parametrize("paste_back", [True, False])
def test_landmark_animator_on_the_bundled_example(three_frames, tmp_path, paste_back):
    """The example's source (512x600) is not the crop's size: panels are all the crop's."""
    out = tmp_path / "vis"
    animate(EXAMPLES / "source.png", three_frames, out, visualize=True, paste_back=paste_back, progress=False)
    frames = frames_of(out)
    assert len(frames) == 3
    size = frames[0].shape[0]
    assert frames[0].shape == (size, 3 * size, 3)  # no occlusion map: three panels
    # The driving panel shows the driver's crop with landmarks drawn: it differs from the source panel.
    source_panel, driving_panel = frames[0][:, :size], frames[0][:, size : 2 * size]
    assert np.abs(source_panel.astype(int) - driving_panel).mean() > 5


def test_fomm_shows_keypoints_and_its_occlusion_map(three_frames, tmp_path, tiny_checkpoint):
    out = tmp_path / "vis"
    animate(
        EXAMPLES / "source.png",
        three_frames,
        out,
        checkpoint=tiny_checkpoint,
        visualize=True,
        device="cpu",
        progress=False,
    )
    frames = frames_of(out)
    assert frames[0].shape == (64, 4 * 64, 3)  # the tiny config estimates an occlusion map
    occlusion = frames[0][:, 3 * 64 :]
    assert np.array_equal(occlusion[..., 0], occlusion[..., 1])  # a grey map
    # Keypoints are drawn in saturated colours on the driving panel.
    driving = frames[0][:, 64:128].astype(int)
    assert (driving.max(axis=-1) - driving.min(axis=-1) > 200).any()
