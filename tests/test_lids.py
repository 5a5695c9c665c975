"""Closed-lid layer (reanimate.faces.lids) and the eye-opening rescaling, on synthetic images."""

import cv2
import numpy as np
import pytest

from reanimate.animators.landmarks import eye_opening_ratio, eye_openness
from reanimate.faces.lids import distance_to_polyline, draw_closed_lid, lid_layer, smooth_fill

SKIN = np.array([200.0, 150.0, 130.0])


def test_smooth_fill_keeps_known_pixels_and_fills_a_constant():
    image = np.tile(SKIN.astype(np.float32), (40, 50, 1))
    image[10:30, 15:35] = 0.0  # the hole's own values must not leak in
    known = np.ones((40, 50), np.float32)
    known[10:30, 15:35] = 0.0
    for iterations in (0, 20):
        out = smooth_fill(image, known, iterations)
        assert out.shape == image.shape and out.dtype == np.float32
        np.testing.assert_allclose(out[known == 1], image[known == 1])
        np.testing.assert_allclose(out[10:30, 15:35], np.broadcast_to(SKIN, (20, 20, 3)), atol=1e-3)


def test_smooth_fill_with_laplace_passes_reproduces_a_ramp():
    # A linear ramp is harmonic: Laplace's equation with its values on the rim gives it back.
    x = np.arange(60, dtype=np.float32)
    image = np.tile((2.0 * x)[None, :, None], (30, 1, 1))
    known = np.ones((30, 60), np.float32)
    known[8:22, 20:40] = 0.0
    rough = smooth_fill(image, known, 0)
    exact = smooth_fill(image, known, 400)
    hole = known == 0
    assert np.all((rough[hole] >= 0) & (rough[hole] <= 2 * 59))  # push-pull stays within the values
    assert np.abs(exact[hole] - image[hole]).max() < 0.5
    assert np.abs(exact[hole] - image[hole]).mean() < np.abs(rough[hole] - image[hole]).mean()


def _eye_image():
    """Skin with a white-and-dark eye whose iris reaches above the eye's contour (as
    when landmarks sit low), a dark lash line above it and a dark bar (a glasses frame)
    higher up, 120 x 120."""
    image = np.tile(SKIN.astype(np.uint8), (120, 120, 1))
    image[55:70, 35:85] = (240, 240, 235)  # sclera
    image[44:70, 52:68] = (40, 30, 30)  # iris, 11 px of it above the contour
    image[52:55, 35:85] = (20, 15, 15)  # lashes on the upper margin
    image[34:38, 20:100] = (10, 10, 10)  # frame, inside the lid band
    opening = np.array([[35, 55], [85, 55], [85, 70], [35, 70]], np.float64)
    band = np.array([[35, 55], [85, 55], [85, 30], [35, 30]], np.float64)
    margin = np.array([[40, 53], [60, 53], [80, 53]], np.float64)
    return image, opening, band, margin


def test_lid_layer_paints_the_eye_over_with_skin_and_keeps_dark_structures():
    image, opening, band, margin = _eye_image()
    layer = lid_layer(image, [opening], [band], [margin], grow=4.0, feather=1.0)
    assert layer.image.shape == image.shape and layer.image.dtype == np.uint8
    # Sclera, iris (also above the contour) and lashes are gone: skin, from the skin
    # around (not the frame's black).
    eye = layer.image[50:72, 36:84].reshape(-1, 3).astype(float)
    assert np.abs(eye - SKIN).max() < 12, np.abs(eye - SKIN).max()
    assert np.abs(layer.image[44:50, 52:68].astype(float) - SKIN).max() < 12
    # The frame in the band stays, and so does everything away from the eye.
    np.testing.assert_array_equal(layer.image[34:38, 20:100], image[34:38, 20:100])
    np.testing.assert_array_equal(layer.image[90:], image[90:])
    assert layer.weight[62, 60] > 0.99 and layer.weight[36, 60] < 0.5 and layer.weight[100, 60] == 0
    # The lash colour is the dark of the margin.
    np.testing.assert_allclose(layer.lash, (20, 15, 15), atol=1)


def test_draw_closed_lid_shows_the_layer_outside_the_opening_and_a_lash_line():
    image, opening, band, margin = _eye_image()
    layer = lid_layer(image, [opening], [band], [margin], grow=4.0, feather=1.0)
    s = image.shape[0]
    grid = np.arange(s, dtype=np.float32)
    map_x, map_y = np.tile(grid[None, :], (s, 1)), np.tile(grid[:, None], (1, s))  # identity flow
    still_open = np.array([[35, 64], [85, 64], [85, 70], [35, 70]], np.float64)  # lower part stays open
    lash_line = np.array([[35, 62], [60, 62], [85, 62]], np.float64)

    untouched = image.copy()
    draw_closed_lid(untouched, layer, map_x, map_y, still_open, lash_line, 0.0, 2.0, 20)
    np.testing.assert_array_equal(untouched, image)

    full = image.copy()
    draw_closed_lid(full, layer, map_x, map_y, still_open, lash_line, 1.0, 2.0, 20)
    assert np.abs(full[56:59, 40:80].astype(float) - SKIN).max() < 12  # the lid covers the eye's top
    np.testing.assert_array_equal(full[66:69, 40:80], image[66:69, 40:80])  # inside the opening: the eye
    assert full[62, 45:75].mean() < 60  # the lash line
    np.testing.assert_array_equal(full[100:], image[100:])

    half = image.copy()
    draw_closed_lid(half, layer, map_x, map_y, still_open, lash_line, 0.5, 0.0, 20)
    expected = 0.5 * (image[57, 60].astype(float) + layer.image[57, 60])
    np.testing.assert_allclose(half[57, 60], expected, atol=1.5)


def _eyes(gap: float) -> np.ndarray:
    """478 landmarks with both eyes 40 px wide and every lid pair ``gap`` px apart."""
    from reanimate.faces import topology

    points = np.zeros((478, 3))
    for corners, pairs, x0 in (
        (topology.RIGHT_EYE_CORNERS, topology.RIGHT_EYE_LID_PAIRS, 0.0),
        (topology.LEFT_EYE_CORNERS, topology.LEFT_EYE_LID_PAIRS, 100.0),
    ):
        points[corners[0], :2] = (x0, 0)
        points[corners[1], :2] = (x0 + 40, 0)
        for k, (up, low) in enumerate(pairs):
            points[up, :2] = (x0 + 5 + 5 * k, -gap)
            points[low, :2] = (x0 + 5 + 5 * k, 0)
    return points


@pytest.mark.parametrize("gap, expected", [(1.0, 0.0), (0.5, 0.0), (5.5, 0.5), (10.0, 1.0), (12.0, 1.2)])
def test_eye_opening_ratio_rescales_so_that_closed_reads_zero(gap, expected):
    reference = _eyes(10.0)
    np.testing.assert_allclose(eye_openness(reference), [0.25, 0.25])
    np.testing.assert_allclose(eye_opening_ratio(_eyes(gap), reference, closed=0.1), [expected] * 2, atol=1e-9)
    np.testing.assert_allclose(eye_opening_ratio(_eyes(gap), reference), [gap / 10.0] * 2, atol=1e-9)


def test_distance_to_polyline_hand_computed():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    points = np.array([[5.0, 3.0], [-4.0, 3.0], [13.0, 5.0], [12.0, 14.0]])
    np.testing.assert_allclose(distance_to_polyline(points, line), [3.0, 5.0, 3.0, np.hypot(2.0, 4.0)])


def test_borrowed_detail_lays_the_skin_texture_below_the_hole_over_it():
    from reanimate.faces.lids import borrowed_detail

    rng = np.random.default_rng(0)
    image = np.full((40, 30, 3), 120.0, np.float32)
    image += rng.normal(0, 12, (40, 30, 1)).astype(np.float32)  # a fine texture
    hole = np.zeros((40, 30), bool)
    hole[10:18, 5:25] = True
    skin = ~hole
    skin[18:, 20:] = False  # below the right part is not skin: that part borrows from above
    detail = borrowed_detail(image, hole, skin)
    assert (detail[~hole] == 0).all()
    fine = image - cv2.GaussianBlur(image, (0, 0), 1.5)
    # the hole is 8 rows high: row y takes row y + 8 (below) or y - 8 (above)
    np.testing.assert_allclose(detail[10:18, 5:20], fine[18:26, 5:20])
    np.testing.assert_allclose(detail[10:18, 20:25], fine[2:10, 20:25])
    assert detail[hole].std() > 5
