"""Box coordinates (reanimate.geometry.grid): pixels of a crop box <-> [-1, 1]."""

import torch

from reanimate.geometry import box_to_normalized, normalized_to_box, normalized_to_pixel, pixel_to_normalized


def test_box_corners_map_to_minus_one_and_one():
    # A 101-pixel crop at (20, 30) of a frame: its first and last pixel centres.
    points = torch.tensor([[20.0, 30.0], [120.0, 130.0], [70.0, 55.0]], dtype=torch.float64)
    out = box_to_normalized(points, (20.0, 30.0), 100.0)
    assert out.tolist() == [[-1.0, -1.0], [1.0, 1.0], [0.0, -0.5]]
    assert torch.allclose(normalized_to_box(out, (20.0, 30.0), 100.0), points)


def test_box_with_per_axis_side_and_batch():
    points = torch.tensor([[[0.0, 0.0], [63.0, 31.0]], [[10.5, 7.25], [1.0, 2.0]]])
    out = box_to_normalized(points, 0.0, torch.tensor([63.0, 31.0]))
    assert out[0].tolist() == [[-1.0, -1.0], [1.0, 1.0]]
    assert torch.allclose(normalized_to_box(out, 0.0, torch.tensor([63.0, 31.0])), points)


def test_image_conversion_is_the_box_at_the_origin():
    side = torch.tensor([63.0, 31.0], dtype=torch.float64)  # (W - 1, H - 1) of a 32x64 image
    points = torch.rand(5, 2, dtype=torch.float64) * 63
    assert torch.equal(pixel_to_normalized(points, (32, 64)), box_to_normalized(points, 0.0, side))
    norm = torch.rand(5, 2, dtype=torch.float64) * 2 - 1
    assert torch.allclose(normalized_to_pixel(norm, (32, 64)), normalized_to_box(norm, (0.0, 0.0), side))
