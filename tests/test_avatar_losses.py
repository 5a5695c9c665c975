"""IMavatar's losses on constructed pixels: which pixels each term uses, its value by hand,
the normalisation by the number of sampled pixels."""

import math

import pytest
import torch

from reanimate.training.avatar_losses import AvatarLossWeights, mask_loss, nearest_vertices, pseudo_gt_loss, rgb_loss


def test_rgb_loss_uses_hit_foreground_pixels_and_divides_by_all_samples():
    rgb = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.2, 0.2], [0.0, 0.0, 0.0]])
    target = torch.zeros(4, 3)
    hit = torch.tensor([True, True, False, True])
    in_mask = torch.tensor([True, False, True, True])
    # pixel 0 (1.5) and pixel 3 (0): pixel 1 is background, pixel 2 missed
    assert rgb_loss(rgb, target, hit, in_mask).item() == pytest.approx(1.5 / 4)
    assert rgb_loss(rgb, target, torch.zeros(4, dtype=torch.bool), in_mask).item() == 0


def test_mask_loss_is_the_cross_entropy_of_the_soft_occupancy():
    alpha = 50.0
    value = torch.tensor([0.01, -0.02, 0.0, 0.3])
    hit = torch.tensor([False, False, True, False])
    in_mask = torch.tensor([True, False, True, False])
    valid = torch.tensor([True, True, True, False])
    # pixel 2 is hit and foreground (the RGB loss's), pixel 3 has no correspondence
    p0 = 1 / (1 + math.exp(alpha * 0.01))  # sigmoid(-alpha s): the occupancy of a foreground miss
    p1 = 1 / (1 + math.exp(-alpha * 0.02))  # a background ray that passes inside the head
    expected = (-math.log(p0) - math.log(1 - p1)) / alpha / 4
    assert mask_loss(value, hit, in_mask, valid, alpha).item() == pytest.approx(expected, rel=1e-5)
    # a background ray far outside and a foreground ray deep inside cost almost nothing
    small = mask_loss(
        torch.tensor([1.0, -1.0]),
        torch.zeros(2, dtype=torch.bool),
        torch.tensor([False, True]),
        torch.ones(2, dtype=torch.bool),
        alpha,
    )
    assert small.item() < 1e-20


def test_mask_loss_gradient_pushes_the_surface_towards_the_mask():
    value = torch.tensor([0.05, -0.05], requires_grad=True)
    loss = mask_loss(
        value, torch.zeros(2, dtype=torch.bool), torch.tensor([True, False]), torch.ones(2, dtype=torch.bool), 50.0
    )
    loss.backward()
    # the foreground miss wants a smaller value (inside), the background hit a larger one
    assert value.grad[0] > 0 and value.grad[1] < 0


def test_nearest_vertices_and_the_gated_pseudo_ground_truth():
    vertices = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    points = torch.tensor([[0.9, 0.1, 0.0], [0.0, 1.5, 0.0], [0.1, 0.0, 0.2]])
    distance, index = nearest_vertices(points, vertices, chunk=2)
    assert index.tolist() == [1, 2, 0]
    torch.testing.assert_close(distance, torch.tensor([0.02, 0.25, 0.05]))
    prediction = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]])
    target = torch.zeros(3, 2)
    near = distance < 0.1
    # rows 0 and 2 with the x10 scale of the authors' blendshape terms, over N = 8 pixels
    assert pseudo_gt_loss(prediction, target, near, 8, scale=10).item() == pytest.approx(100 * (5 + 18) / 8)


def test_weights_are_the_authors_and_checked():
    w = AvatarLossWeights()
    assert (w.rgb, w.mask, w.alpha, w.lbs) == (1, 100, 50, 1)
    with pytest.raises(ValueError, match="loss_weights.mask must be >= 0"):
        AvatarLossWeights(mask=-1)
