"""Implicit-function-theorem gradients of surface and non-surface points (IMavatar Sec. 3.4).

Every gradient is compared with central finite differences of re-solving the defining
equations exactly (Newton in float64 with finite-difference Jacobians, independent of the
autograd Jacobians of the code under test), on a toy ellipsoid occupancy with an affine or a
nonlinear learnable deformation, and on the real (tiny) geometry and deformation networks."""

from __future__ import annotations

import pytest
import torch

from reanimate.avatar.fields import SURFACE_LEVEL, AvatarFieldsConfig, DeformationField, GeometryField
from reanimate.avatar.implicit import (
    deformed_normals,
    nonsurface_canonical_points,
    point_jacobian,
    surface_canonical_points,
)

DT = torch.float64
B, N = 2, 5


# --- toy fields -------------------------------------------------------------------------


def toy_params(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g, dtype=DT) * 2 - 1
    return {
        "centre": (0.1 * rand(3)).requires_grad_(),
        "axes": (torch.tensor([0.6, 0.5, 0.7], dtype=DT) + 0.05 * rand(3)).requires_grad_(),
        "A": (torch.eye(3, dtype=DT) + 0.15 * rand(3, 3)).requires_grad_(),
        "b": (torch.tensor([0.0, 0.1, 3.0], dtype=DT) + 0.1 * rand(3)).requires_grad_(),
        "M": (1.5 * rand(3, 3)).requires_grad_(),
    }


def ellipsoid(params, x):
    """(..., 3) -> (...): |(x - c) / a| - 1, negative inside (the SURFACE_LEVEL convention)."""
    return (((x - params["centre"]) / params["axes"]) ** 2).sum(-1).sqrt() - 1.0


def warp(params, x, kind):
    """canonical (..., 3) -> deformed (..., 3): affine, or affine plus a tanh bump."""
    y = x @ params["A"].T + params["b"]
    if kind == "nonlinear":
        y = y + 0.1 * torch.tanh(x @ params["M"].T)
    return y


def newton(residual_fn, u, iters=30, h=1e-7):
    """Roots of a pointwise residual (B, N, K) -> (B, N, K) near u, with central-difference Jacobians."""
    u = u.detach().clone()
    with torch.no_grad():
        for _ in range(iters):
            r = residual_fn(u)
            if r.abs().max() < 1e-14:
                break
            cols = []
            for k in range(u.shape[-1]):
                e = torch.zeros_like(u)
                e[..., k] = h
                cols.append((residual_fn(u + e) - residual_fn(u - e)) / (2 * h))
            u = u - torch.linalg.solve(torch.stack(cols, -1), r[..., None])[..., 0]
        assert residual_fn(u).abs().max() < 1e-11
    return u


def front_rays(params, kind, seed=1):
    """Canonical points on the front of the ellipsoid (facing the camera at the origin, z
    away from it), and rays (origin (B, 3), direction (B, N, 3) of random lengths) through
    their deformed images: an exact surface solution with depth 1 / scale."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(B, N, 3, generator=g, dtype=DT) * 0.4
    directions[..., 2] = -1.0
    directions = directions / directions.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        x_c = params["centre"] + params["axes"] * directions
        origin = 0.05 * torch.randn(B, 3, generator=g, dtype=DT)
        scale = 0.5 + torch.rand(B, N, 1, generator=g, dtype=DT)
        ray_dir = (warp(params, x_c, kind) - origin[:, None]) * scale
    return x_c, origin, ray_dir


def finite_difference(tensors, loss_fn, h=1e-6):
    """Central differences of loss_fn() w.r.t. every entry of every tensor (changed in place)."""
    grads = []
    with torch.no_grad():
        for tensor in tensors:
            grad = torch.zeros_like(tensor)
            flat, gflat = tensor.view(-1), grad.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + h
                up = loss_fn()
                flat[i] = old - h
                down = loss_fn()
                flat[i] = old
                gflat[i] = (up - down) / (2 * h)
            grads.append(grad)
    return grads


def loss_weights(seed=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, N, 3, generator=g, dtype=DT), torch.randn(B, N, 3, generator=g, dtype=DT)]


# --- tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["affine", "nonlinear"])
def test_surface_points_values_and_gradients_match_resolving_the_intersection(kind):
    params = toy_params()
    x_c, origin, ray_dir = front_rays(params, kind)
    origin.requires_grad_(True)
    ray_dir.requires_grad_(True)
    occupancy_fn = lambda x: ellipsoid(params, x)
    deform_fn = lambda x: warp(params, x, kind)
    w_c, w_d = loss_weights()

    out = surface_canonical_points(x_c, origin, ray_dir, occupancy_fn, deform_fn, level=SURFACE_LEVEL)
    assert out.canonical.shape == (B, N, 3) and out.deformed.shape == (B, N, 3) and out.depth.shape == (B, N)
    # values unchanged: the solution itself, depth 1 / scale, the deformed point on the ray
    torch.testing.assert_close(out.canonical, x_c, rtol=0, atol=1e-14)
    torch.testing.assert_close(out.deformed, warp(params, x_c, kind), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.deformed, origin[:, None] + out.depth[..., None] * ray_dir, rtol=0, atol=1e-14)
    loss = (w_c * out.canonical).sum() + (w_d * out.deformed).sum() + out.depth.sum()
    inputs = [params[k] for k in ("centre", "axes", "A", "b", "M")] + [origin, ray_dir]
    analytic = torch.autograd.grad(loss, inputs, allow_unused=True)

    start = torch.cat([x_c, torch.ones(B, N, 1, dtype=DT)], -1)

    def resolved_loss():
        def residual(u):
            x, t = u[..., :3], u[..., 3:]
            return torch.cat([warp(params, x, kind) - origin[:, None] - t * ray_dir, occupancy_fn(x)[..., None]], -1)

        u = newton(residual, start)
        x, t = u[..., :3], u[..., 3]
        return ((w_c * x).sum() + (w_d * (origin[:, None] + t[..., None] * ray_dir)).sum() + t.sum()).item()

    numeric = finite_difference(inputs, resolved_loss)
    for name, a, n in zip(["centre", "axes", "A", "b", "M", "origin", "dir"], analytic, numeric):
        if name == "M" and kind == "affine":
            assert a is None
            continue
        assert n.abs().max() > 1e-3, name  # the parameter matters
        torch.testing.assert_close(a, n, rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("kind", ["affine", "nonlinear"])
def test_nonsurface_points_gradients_match_inverting_the_deformation(kind):
    params = toy_params(seed=4)
    g = torch.Generator().manual_seed(5)
    x_c = torch.randn(B, N, 3, generator=g, dtype=DT) * 0.5
    with torch.no_grad():
        x_d = warp(params, x_c, kind)
    x_d.requires_grad_(True)  # e.g. o + t d with a learnable camera
    w_c, _ = loss_weights()
    w_o = torch.randn(B, N, generator=g, dtype=DT)

    out = nonsurface_canonical_points(x_c, x_d, lambda x: warp(params, x, kind))
    assert out.shape == (B, N, 3)
    torch.testing.assert_close(out, x_c, rtol=0, atol=0)
    # a mask-loss-like use: the canonical occupancy at the differentiable correspondence
    loss = (w_c * out).sum() + (w_o * ellipsoid(params, out)).sum()
    inputs = [params[k] for k in ("centre", "axes", "A", "b", "M")] + [x_d]
    analytic = torch.autograd.grad(loss, inputs, allow_unused=True)

    def resolved_loss():
        x = newton(lambda x: warp(params, x, kind) - x_d, x_c)
        return ((w_c * x).sum() + (w_o * ellipsoid(params, x)).sum()).item()

    numeric = finite_difference(inputs, resolved_loss)
    for name, a, n in zip(["centre", "axes", "A", "b", "M", "x_d"], analytic, numeric):
        if name == "M" and kind == "affine":
            assert a is None
            continue
        torch.testing.assert_close(a, n, rtol=1e-6, atol=1e-7, msg=name)


def test_deformed_normals_are_the_deformed_ellipsoids_outward_normals():
    params = toy_params(seed=6)
    x_c, _, _ = front_rays(params, "affine")
    normals = deformed_normals(x_c, lambda x: ellipsoid(params, x), lambda x: warp(params, x, "affine"))
    assert normals.shape == (B, N, 3)
    # The deformed surface is the quadric |(A^-1 (y - b) - c) / a| = 1: its gradient in y.
    y = warp(params, x_c, "affine").detach().requires_grad_(True)
    inverse = torch.linalg.solve(params["A"], (y - params["b"]).unsqueeze(-1)).squeeze(-1)
    (expected,) = torch.autograd.grad(ellipsoid(params, inverse).sum(), y)
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(normals, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(B, N, dtype=DT))
    centre_d = params["centre"] @ params["A"].T + params["b"]
    assert ((y - centre_d) * normals).sum(-1).min() > 0  # outward


def test_deformed_normals_of_a_nonlinear_deformation_match_finite_differences_in_deformed_space():
    params = toy_params(seed=7)
    x_c, _, _ = front_rays(params, "nonlinear")
    normals = deformed_normals(x_c, lambda x: ellipsoid(params, x), lambda x: warp(params, x, "nonlinear"))
    y = warp(params, x_c, "nonlinear").detach()

    def deformed_occupancy(points):
        return ellipsoid(params, newton(lambda x: warp(params, x, "nonlinear") - points, x_c))

    h = 1e-6
    columns = []
    for k in range(3):
        e = torch.zeros_like(y)
        e[..., k] = h
        columns.append((deformed_occupancy(y + e) - deformed_occupancy(y - e)) / (2 * h))
    expected = torch.stack(columns, -1)
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(normals.detach(), expected, rtol=0, atol=1e-7)


def test_normals_at_differentiable_surface_points_carry_the_full_gradient():
    """Normals of the differentiable surface points (as the texture network receives them):
    d(loss on normals)/d(params) includes the surface point's motion and second derivatives."""
    kind = "nonlinear"
    params = toy_params(seed=8)
    x_c, origin, ray_dir = front_rays(params, kind)
    occupancy_fn = lambda x: ellipsoid(params, x)
    deform_fn = lambda x: warp(params, x, kind)
    w_n, _ = loss_weights(seed=9)
    surface = surface_canonical_points(x_c, origin, ray_dir, occupancy_fn, deform_fn)
    loss = (w_n * deformed_normals(surface.canonical, occupancy_fn, deform_fn)).sum()
    inputs = [params[k] for k in ("centre", "axes", "A", "M")]
    analytic = torch.autograd.grad(loss, inputs)
    start = torch.cat([x_c, torch.ones(B, N, 1, dtype=DT)], -1)

    def resolved_loss():
        def residual(u):
            x, t = u[..., :3], u[..., 3:]
            return torch.cat([deform_fn(x) - origin[:, None] - t * ray_dir, occupancy_fn(x)[..., None]], -1)

        x = newton(residual, start)[..., :3]
        return (w_n * deformed_normals(x, occupancy_fn, deform_fn, create_graph=False)).sum().item()

    numeric = finite_difference(inputs, resolved_loss)
    for a, n in zip(analytic, numeric):
        torch.testing.assert_close(a, n, rtol=1e-5, atol=1e-6)


def test_gradients_reach_both_networks_like_resolving_the_intersection():
    """The real tiny networks: geometry as the occupancy and a deformation built from the
    deformation field's outputs (blendshapes times an expression, skinning weights times
    per-bone translations); gradients for a sample of parameters of both networks."""
    torch.manual_seed(0)
    config = AvatarFieldsConfig.tiny(num_expressions=3, num_joints=3)
    geometry = GeometryField(config.geometry).double()
    deformation = DeformationField(config.deformation).double()
    with torch.no_grad():  # leave the zero initialisation so that every head matters
        for p in (*deformation.blendshapes.parameters(), *deformation.skinning.parameters()):
            p.normal_(0.0, 0.3)
    expression = torch.tensor([0.5, -0.3, 0.8], dtype=DT)
    translations = torch.tensor([[0, 0, 3.0], [0.1, 0, 3.0], [0, -0.2, 3.1], [0.05, 0.05, 2.9]], dtype=DT)

    def deform_fn(x):
        out = deformation(x)
        return x + out.expression_dirs @ expression + out.weights @ translations

    occupancy_fn = lambda x: geometry(x)[0]
    # canonical surface points along front directions, by bisection on the radius
    g = torch.Generator().manual_seed(2)
    directions = torch.randn(B, N, 3, generator=g, dtype=DT) * 0.3
    directions[..., 2] = -1.0
    directions = directions / directions.norm(dim=-1, keepdim=True)
    low, high = torch.full((B, N, 1), 0.05, dtype=DT), torch.full((B, N, 1), 2.0, dtype=DT)
    with torch.no_grad():
        assert (occupancy_fn(directions * low) < 0).all() and (occupancy_fn(directions * high) > 0).all()
        for _ in range(60):
            mid = (low + high) / 2
            inside = occupancy_fn(directions * mid)[..., None] < 0
            low, high = torch.where(inside, mid, low), torch.where(inside, high, mid)
        x_c = directions * (low + high) / 2
        origin = torch.zeros(B, 3, dtype=DT)
        ray_dir = deform_fn(x_c)
    w_c, w_d = loss_weights()
    surface = surface_canonical_points(x_c, origin, ray_dir, occupancy_fn, deform_fn)
    loss = (w_c * surface.canonical).sum() + (w_d * surface.deformed).sum()
    layers = [geometry.layers[0], geometry.layers[-1], deformation.trunk[0], deformation.blendshapes]
    layers += [deformation.skinning]
    inputs = [p for layer in layers for p in layer.parameters()]
    analytic = torch.autograd.grad(loss, inputs)
    assert min(a.abs().max().item() for a in analytic) > 1e-3  # every sampled layer matters
    start = torch.cat([x_c, torch.ones(B, N, 1, dtype=DT)], -1)
    # finite differences on a sample of entries of each parameter
    picks = [torch.randperm(p.numel(), generator=g)[:3] for p in inputs]

    def resolved_loss():
        def residual(u):
            x, t = u[..., :3], u[..., 3:]
            return torch.cat([deform_fn(x) - t * ray_dir, occupancy_fn(x)[..., None]], -1)

        u = newton(residual, start)
        return ((w_c * u[..., :3]).sum() + (w_d * u[..., 3:] * ray_dir).sum()).item()

    h = 1e-6
    with torch.no_grad():
        for p, a, pick in zip(inputs, analytic, picks):
            flat = p.view(-1)
            for i in pick.tolist():
                old = flat[i].item()
                flat[i] = old + h
                up = resolved_loss()
                flat[i] = old - h
                down = resolved_loss()
                flat[i] = old
                assert abs(a.view(-1)[i].item() - (up - down) / (2 * h)) < 1e-6 + 1e-5 * abs(a.view(-1)[i].item())


def test_point_jacobian_of_a_linear_map_and_works_under_no_grad():
    A = torch.randn(3, 3, dtype=DT)
    with torch.no_grad():  # the tracer's context: the functions turn gradients on themselves
        x_c = torch.randn(B, N, 3, dtype=DT)
        out = nonsurface_canonical_points(x_c, x_c @ A.T, lambda x: x @ A.T)
        normals = deformed_normals(x_c, lambda x: x.norm(dim=-1) - 1.0, lambda x: x @ A.T, create_graph=False)
    assert out.shape == normals.shape == (B, N, 3)
    x = x_c.clone().requires_grad_(True)
    torch.testing.assert_close(point_jacobian(x @ A.T, x), A.expand(B, N, 3, 3))
