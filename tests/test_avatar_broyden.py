"""Broyden root finding and the deformed-to-canonical correspondence search (IMavatar supp. Sec. 2.4)."""

import math

import pytest
import torch

from reanimate.avatar.broyden import broyden, full_precision, masked_apply
from reanimate.avatar.correspondence import (
    bone_jacobian_inverse,
    find_canonical,
    inverse_bone_inits,
    jacobian_inverse,
    lbs_jacobian_inverse,
)


def rigid(angle: float, axis: int, translation) -> torch.Tensor:
    """4x4 rotation by ``angle`` radians about a coordinate axis, then a translation."""
    c, s = math.cos(angle), math.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    transform = torch.eye(4)
    transform[i, i], transform[i, j], transform[j, i], transform[j, j] = c, -s, s, c
    transform[:3, 3] = torch.tensor(translation, dtype=torch.float32)
    return transform


def toy_weights(x_c: torch.Tensor) -> torch.Tensor:
    """Two bones blended smoothly along y: ``(B, M, 3) -> (B, M, 2)``."""
    upper = torch.sigmoid(4.0 * x_c[..., 1])
    return torch.stack([1 - upper, upper], dim=-1)


def toy_lbs(x_c: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """LBS of two bones with point-dependent weights: ``x_d = sum_j w_j(x_c) T_j x_c``."""
    blended = torch.einsum("bmj,bjkl->bmkl", toy_weights(x_c), transforms.to(x_c.dtype))
    return (blended[..., :3, :3] @ x_c.unsqueeze(-1)).squeeze(-1) + blended[..., :3, 3]


def toy_transforms() -> torch.Tensor:
    """(2 frames, 2 bones, 4, 4): a head nodding and a jaw opening, differently per frame."""
    return torch.stack(
        [
            torch.stack([rigid(0.2, 0, [0.0, 0.05, 0.1]), rigid(-0.5, 0, [0.0, 0.1, -0.05])]),
            torch.stack([rigid(-0.3, 1, [0.1, 0.0, 0.0]), rigid(0.4, 2, [-0.05, 0.0, 0.1])]),
        ]
    )


def test_recovers_canonical_points_of_a_blended_lbs():
    torch.manual_seed(0)
    transforms = toy_transforms()
    x_true = torch.rand(2, 200, 3) * 1.6 - 0.8
    x_d = toy_lbs(x_true, transforms)
    deform = lambda x: toy_lbs(x, transforms)

    inits = inverse_bone_inits(x_d, transforms)
    assert inits.shape == (2, 200, 2, 3)
    # IMavatar's initial inverse Jacobian: the blended rotation at the initial guesses.
    J_inv = lbs_jacobian_inverse(toy_weights(inits.reshape(2, -1, 3)).reshape(2, 200, 2, 2), transforms)
    found = find_canonical(x_d, deform, inits, J_inv)

    assert found.candidates.shape == (2, 200, 2, 3) and found.candidate_valid.shape == (2, 200, 2)
    assert found.valid.all()
    assert (found.x_c - x_true).abs().max() < 1e-4
    assert (deform(found.x_c) - x_d).norm(dim=-1).max() < 1e-5
    # Every converged candidate is the (unique) root.
    error = (found.candidates - x_true.unsqueeze(2)).norm(dim=-1)
    assert (error[found.candidate_valid] < 1e-4).all()


def test_pointwise_search_only_evaluates_points_still_being_solved():
    torch.manual_seed(1)
    transforms = toy_transforms()
    x_true = torch.rand(2, 50, 3) - 0.5
    x_d = toy_lbs(x_true, transforms)
    sizes = []

    def deform(x):
        sizes.append(x.shape[1])
        return toy_lbs(x, transforms)

    found = find_canonical(x_d, deform, inverse_bone_inits(x_d, transforms))
    assert found.valid.all() and (found.x_c - x_true).abs().max() < 1e-4
    # the first two calls are the autograd Jacobian and the start residual, on every candidate
    assert sizes[:2] == [100, 100] and sizes[-1] < 100 and sizes[2:] == sorted(sizes[2:], reverse=True)


def test_masked_apply_keeps_each_batch_element_with_its_own_data():
    points = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    offsets = torch.tensor([100.0, 200.0])
    fn = lambda x: x.sum(-1) + offsets[:, None]  # depends on the batch element
    out = masked_apply(fn, points, mask, fill=-1.0, chunk=1)
    expected = torch.where(mask, points.sum(-1) + offsets[:, None], torch.tensor(-1.0))
    assert torch.equal(out, expected)


def test_inverse_bone_inits_undo_each_bone():
    transforms = torch.stack([torch.eye(4), rigid(math.pi / 2, 2, [1.0, 2.0, 3.0])]).unsqueeze(0)
    x_d = torch.tensor([[[1.0, 2.0, 4.0], [0.0, 3.0, 3.0]]])
    inits = inverse_bone_inits(x_d, transforms)
    assert inits.shape == (1, 2, 2, 3)
    assert torch.allclose(inits[:, :, 0], x_d)
    # Rz(90) maps (x, y, z) to (-y, x, z): its inverse of x_d - t is (y', -x', z').
    expected = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    assert torch.allclose(inits[:, :, 1], expected, atol=1e-6)

    jacobians = bone_jacobian_inverse(transforms, num_points=2)
    assert jacobians.shape == (1, 2, 2, 3, 3)
    assert torch.allclose(jacobians[0, 0, 1], transforms[0, 1, :3, :3].T, atol=1e-6)


def test_lbs_jacobian_inverse_is_the_inverse_jacobian_for_constant_weights():
    transforms = toy_transforms()
    weights = torch.tensor([0.3, 0.7]).expand(2, 5, 2)
    x = torch.randn(2, 5, 3, dtype=torch.float64)

    def lbs(points):
        blended = torch.einsum("bmj,bjkl->bmkl", weights.double(), transforms.double())
        return (blended[..., :3, :3] @ points.unsqueeze(-1)).squeeze(-1) + blended[..., :3, 3]

    assert torch.allclose(lbs_jacobian_inverse(weights.double(), transforms), jacobian_inverse(lbs, x), atol=1e-10)


def test_linear_problem_with_exact_inverse_jacobian_converges_in_one_step():
    A = torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.1, 0.0, 3.0]], dtype=torch.float64)
    b = torch.randn(1, 4, 3, dtype=torch.float64)
    result = broyden(lambda x: x @ A.T - b, torch.zeros(1, 4, 3, dtype=torch.float64), torch.linalg.inv(A))
    assert result.steps == 1 and result.converged.all() and not result.diverged.any()
    assert result.x.dtype == torch.float64
    assert torch.allclose(result.x, torch.linalg.solve(A, b.squeeze(0).T).T.unsqueeze(0), atol=1e-12)


def test_broyden_solves_a_nonlinear_problem_from_the_identity():
    target = torch.tensor([[[0.3, -0.2, 0.1]]])
    fn = lambda x: x + 0.3 * torch.sin(3 * x) - target
    result = broyden(fn, torch.zeros(1, 1, 3), max_steps=30, eps=1e-6)
    assert result.converged.all() and result.residual_norm.max() < 1e-6
    assert (fn(result.x).norm(dim=-1) < 1e-6).all()


def test_without_root_nothing_converges():
    # First component x^2 + 0.05 has no real root.
    fn = lambda x: torch.cat([x[..., :1] ** 2 + 0.05, x[..., 1:]], dim=-1)
    result = broyden(fn, torch.full((1, 3, 3), 0.3), max_steps=20)
    assert not result.converged.any()
    assert (result.residual_norm >= 0.05 - 1e-6).all()


def test_divergence_stops_a_point_and_keeps_its_best_iterate():
    target = torch.tensor([[[0.3, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    # A wrong-signed inverse Jacobian doubles the first point's residual (0.3 -> 0.6).
    result = broyden(lambda x: x - target, torch.zeros(1, 2, 3), -torch.eye(3), diverge_threshold=0.5)
    assert result.diverged.tolist() == [[True, False]]
    assert result.converged.tolist() == [[False, True]]
    assert torch.equal(result.x[0, 0], torch.zeros(3)) and result.residual_norm[0, 0] == pytest.approx(0.3)


def test_converged_points_stop_updating():
    seen = []

    def fn(x):
        seen.append(x.clone())
        # Point 0 is linear (exact inverse Jacobian: one step), point 1 is nonlinear.
        return torch.stack([x[:, 0] - 0.5, x[:, 1] + 0.3 * torch.sin(3 * x[:, 1]) - 0.4], dim=1)

    result = broyden(fn, torch.zeros(1, 2, 3), max_steps=20)
    assert result.converged.all() and result.steps > 2
    assert all(torch.equal(x[0, 0], seen[1][0, 0]) for x in seen[1:])
    assert not torch.equal(seen[-1][0, 1], seen[1][0, 1])


def test_solver_runs_in_float32_for_lower_precision_inputs():
    result = broyden(lambda x: x.float() - 0.25, torch.zeros(1, 2, 3, dtype=torch.float16))
    assert result.x.dtype == torch.float32 and result.converged.all()


@pytest.fixture
def restore_tf32():
    cudnn = torch.backends.cudnn
    matmul = torch.backends.cuda.matmul
    saved = (matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision)
    yield
    matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = saved


def test_tf32_is_off_during_the_solve_and_restored(restore_tf32):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    flags = []

    def fn(x):
        flags.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return x - 1

    broyden(fn, torch.zeros(1, 1, 3))
    assert flags and all(f == (False, False) for f in flags)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32

    def failing(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        broyden(failing, torch.zeros(1, 1, 3))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_tf32_guard_with_the_newer_precision_api(restore_tf32):
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = "tf32", "tf32", "ieee"
    with full_precision("cpu"):
        assert (matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision) == ("ieee",) * 3
    assert (matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision) == ("tf32", "tf32", "ieee")


def test_full_precision_turns_autocast_off():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with full_precision("cpu"):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def fold(x_c: torch.Tensor) -> torch.Tensor:
    """``(x, y, z) -> (x^2, y, z)``: two canonical points (+-x) per deformed point."""
    return torch.cat([x_c[..., :1] ** 2, x_c[..., 1:]], dim=-1)


def test_several_roots_choose_the_most_inside_candidate():
    x_d = torch.tensor([[[1.0, 0.2, 0.0], [2.25, -0.1, 0.3]]])
    inits = torch.stack([x_d * torch.tensor([0.5, 1, 1]), x_d * torch.tensor([-0.5, 1, 1])], dim=2)  # +x and -x sides
    occupancy = lambda x: x[..., 0]  # raw value, negative inside: the -x half space is inside

    found = find_canonical(x_d, fold, inits, occupancy_fn=occupancy)
    assert found.candidate_valid.all() and found.valid.all()
    assert torch.allclose(found.candidates[..., 0, 0], torch.tensor([[1.0, 1.5]]), atol=1e-5)
    assert torch.allclose(found.candidates[..., 1, 0], torch.tensor([[-1.0, -1.5]]), atol=1e-5)
    # Minimum of the raw value = most inside: the negative root.
    assert found.index.tolist() == [[1, 1]]
    assert torch.allclose(found.x_c[..., 0], torch.tensor([[-1.0, -1.5]]), atol=1e-5)
    assert torch.allclose(found.occupancy, torch.tensor([[-1.0, -1.5]]), atol=1e-5)

    # Occupancy probabilities (inside above the level): the same rule picks the larger value.
    probability = lambda x: torch.sigmoid(-50 * x[..., 0])
    found = find_canonical(x_d, fold, inits, occupancy_fn=probability, inside_above=True)
    assert found.index.tolist() == [[1, 1]]

    # Without occupancy, the first converged candidate.
    assert find_canonical(x_d, fold, inits).index.tolist() == [[0, 0]]


def test_non_converged_candidates_are_never_chosen():
    x_d = torch.tensor([[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]])  # the second has no root (x^2 = -1)
    # Point 0: the first guess is already a root, the second (more inside) is not and gets no steps.
    inits = torch.tensor([[[[1.0, 0.0, 0.0], [-3.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]]])
    occupancy = lambda x: x[..., 0]
    found = find_canonical(x_d, fold, inits, occupancy_fn=occupancy, max_steps=0)
    assert found.candidate_valid.tolist() == [[[True, False], [False, False]]]
    assert found.valid.tolist() == [[True, False]]
    assert found.index[0, 0] == 0 and found.occupancy[0, 0] == 1.0
    assert found.occupancy[0, 1] == math.inf and found.candidate_occupancy[0, 1].eq(math.inf).all()

    found = find_canonical(x_d, fold, inits, occupancy_fn=occupancy, outside_value=1.0)
    assert not found.valid[0, 1] and found.occupancy[0, 1] == 1.0
    # With no root the closest miss is reported, flagged invalid.
    assert found.index[0, 1] == found.residual_norm[0, 1].argmin()
