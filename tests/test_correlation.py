"""Cost volume, sub-cell matching and robust affine fitting
(:mod:`reanimate.geometry.correlation`) on hand-made cases."""

from __future__ import annotations

import torch

from reanimate.geometry.correlation import (
    displacements,
    fit_affine_robust,
    local_correlation,
    windowed_soft_argmax,
)


def test_displacement_order_is_x_first_with_dy_slowest():
    offsets = displacements(1)
    assert offsets.shape == (9, 2)
    assert offsets[0].tolist() == [-1, -1] and offsets[1].tolist() == [0, -1] and offsets[3].tolist() == [-1, 0]
    assert offsets[4].tolist() == [0, 0] and offsets[8].tolist() == [1, 1]


def test_correlation_values_and_outside_offsets():
    target = torch.zeros(1, 2, 3, 4)
    reference = torch.zeros(1, 2, 3, 4)
    target[0, :, 1, 1] = torch.tensor([1.0, 2.0])
    reference[0, :, 1, 2] = torch.tensor([3.0, -1.0])  # one cell right of the target's cell
    cost = local_correlation(target, reference, radius=1)
    assert cost.shape == (1, 9, 3, 4)
    right = displacements(1).tolist().index([1, 0])
    assert cost[0, right, 1, 1] == 3.0 * 1.0 + (-1.0) * 2.0
    assert cost[0, :, 1, 1].abs().sum() == 1.0  # every other offset sees zeros
    up_left = displacements(1).tolist().index([-1, -1])
    assert cost[0, up_left, 0, 0] == -1e4 and cost[0, up_left, 1, 1] == 0  # leaves the reference / inside


def test_correlation_finds_a_known_shift():
    g = torch.Generator().manual_seed(0)
    reference = torch.nn.functional.normalize(
        torch.randn(2, 8, 12, 12, generator=g), dim=1
    )  # unit: the true match is the largest
    target = torch.roll(reference, shifts=(-1, 2), dims=(2, 3))  # target(y, x) = reference(y + 1, x - 2)
    cost = local_correlation(target, reference, radius=3)
    best = displacements(3)[cost.argmax(1)]  # (B, H, W, 2)
    assert (best[:, 2:-2, 3:-3] == torch.tensor([-2.0, 1.0])).all()


def test_soft_argmax_averages_within_the_window_only():
    offsets = displacements(3)
    cost = torch.zeros(1, len(offsets), 1, 1)
    cost[0, offsets.tolist().index([2, -1])] = 1.0
    cost[0, offsets.tolist().index([3, -1])] = 1.0  # tie next to it: the mean lies between
    offset, confidence = windowed_soft_argmax(cost, 3, temperature=50.0)
    assert torch.allclose(offset[0, 0, 0], torch.tensor([2.5, -1.0]), atol=1e-4)
    assert confidence.item() > 0.999
    cost[0, offsets.tolist().index([-3, -3])] = 0.95  # a far decoy: no pull in the window mean
    decoy, confidence = windowed_soft_argmax(cost, 3, temperature=50.0)
    assert torch.allclose(decoy, offset, atol=1e-4)
    # hand-computed share of the softmax in the window: 2 e^50 / (2 e^50 + e^47.5 + 46)
    share = 2 / (2 + torch.exp(torch.tensor(-2.5)).item() + 46 * torch.exp(torch.tensor(-50.0)).item())
    assert abs(confidence.item() - share) < 1e-5


def test_soft_argmax_passes_gradients_to_the_costs():
    cost = torch.randn(1, 9, 4, 4, requires_grad=True)
    offset, confidence = windowed_soft_argmax(cost, 1, temperature=5.0)
    (offset.sum() + confidence.sum()).backward()
    assert cost.grad.abs().sum() > 0


def random_points(n: int, seed: int) -> torch.Tensor:
    return torch.rand(1, n, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def apply(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return points @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]


def test_affine_fit_is_exact_without_noise_and_ridge():
    truth = torch.tensor([[[1.1, -0.2, 0.05], [0.15, 0.9, -0.1]]])
    points = random_points(50, 1)
    fitted = fit_affine_robust(points, apply(truth, points), torch.ones(1, 50), iterations=1, ridge=0.0)
    assert torch.allclose(fitted, truth, atol=1e-5)
    # the ridge pulls towards the identity, and with no weight at all returns it
    empty = fit_affine_robust(points, apply(truth, points), torch.zeros(1, 50), iterations=1)
    assert torch.allclose(empty, torch.eye(2, 3)[None], atol=1e-6)


def test_robust_fit_ignores_a_differently_moving_third():
    truth = torch.tensor([[[1.0, 0.1, 0.2], [-0.1, 1.0, 0.0]]])
    points = random_points(90, 2)
    targets = apply(truth, points)
    targets[:, :30] += torch.tensor([0.6, -0.5])  # a figure that moves on its own
    weights = torch.ones(1, 90)
    plain = fit_affine_robust(points, targets, weights, iterations=1, ridge=0.0)
    robust = fit_affine_robust(points, targets, weights, iterations=8, scale=0.05, ridge=0.0)
    assert (plain - truth).abs().max() > 0.1
    assert (robust - truth).abs().max() < 0.01
    # weights alone can also exclude them
    masked = weights.clone()
    masked[:, :30] = 0
    assert torch.allclose(fit_affine_robust(points, targets, masked, iterations=1, ridge=0.0), truth, atol=1e-5)


def test_translation_only_fit_is_the_weighted_mean_shift():
    points = random_points(4, 3)
    targets = points + torch.tensor([[[0.1, 0.0]], [[0.3, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]).view(1, 4, 2)
    weights = torch.tensor([[1.0, 3.0, 0.0, 0.0]])
    fitted = fit_affine_robust(points, targets, weights, iterations=1, ridge=0.0, translation_only=True)
    assert torch.allclose(fitted, torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, 0.0]]]), atol=1e-6)  # (0.1 + 0.9) / 4
