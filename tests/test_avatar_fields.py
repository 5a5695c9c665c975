"""IMavatar's fields: positional encoding, the geometry network's geometric initialisation and
occupancy convention, the texture and deformation networks, and their configs."""

from __future__ import annotations

import math

import pytest
import torch

from reanimate.avatar.fields import (
    SURFACE_LEVEL,
    AvatarFieldsConfig,
    DeformationConfig,
    DeformationField,
    GeometryConfig,
    GeometryField,
    PositionalEncoding,
    TextureConfig,
    TextureField,
    fibonacci_sphere,
    occupancy_probability,
)

DT = torch.float64


def test_positional_encoding_by_hand():
    x = torch.tensor([[0.5, -1.0, 2.0]])
    encoding = PositionalEncoding(2)
    assert encoding.out_dim == 15
    expected = torch.cat([x, torch.sin(x), torch.cos(x), torch.sin(2 * x), torch.cos(2 * x)], -1)
    torch.testing.assert_close(encoding(x), expected)
    assert PositionalEncoding(0).out_dim == 3
    torch.testing.assert_close(PositionalEncoding(0)(x), x)
    assert PositionalEncoding(6)(torch.zeros(2, 7, 3)).shape == (2, 7, 39)


def surface_radii(field: GeometryField, directions: torch.Tensor, far: float) -> torch.Tensor:
    """Per direction (1, K, 3), the radius where the occupancy crosses SURFACE_LEVEL (bisection)."""
    low = torch.zeros(directions.shape[:-1], dtype=directions.dtype)
    high = torch.full_like(low, far)
    with torch.no_grad():
        for _ in range(40):
            mid = (low + high) / 2
            inside = field(directions * mid[..., None])[0] < SURFACE_LEVEL
            low, high = torch.where(inside, mid, low), torch.where(inside, high, mid)
    return (low + high) / 2


def random_directions(num: int, seed: int = 1) -> torch.Tensor:
    d = torch.randn(1, num, 3, generator=torch.Generator().manual_seed(seed), dtype=DT)
    return d / d.norm(dim=-1, keepdim=True)


def test_geometry_init_is_a_sphere_of_the_configured_radius_inside_negative():
    config = GeometryConfig(hidden_dims=(128,) * 4, skip_layers=(2,), feature_dim=8, num_frequencies=4, radius=0.5)
    field = GeometryField(config).double()
    directions = random_directions(100)
    with torch.no_grad():
        occupancy_centre = field(torch.zeros(1, 1, 3, dtype=DT))[0]
        occupancy_far = field(directions * 3 * config.radius)[0]
    assert occupancy_centre.item() < SURFACE_LEVEL - 0.2  # inside is below the level
    assert (occupancy_far > SURFACE_LEVEL + 0.2).all()  # outside above
    # one surface crossing per direction, near the radius (finite width makes it lumpy)
    steps = torch.linspace(0, 3 * config.radius, 61, dtype=DT)
    with torch.no_grad():
        along = field((directions[:, :, None] * steps[:, None]).flatten(1, 2))[0].view(100, 61)
    assert ((along[:, 1:] > SURFACE_LEVEL) != (along[:, :-1] > SURFACE_LEVEL)).sum(-1).eq(1).all()
    radii = surface_radii(field, directions, far=3 * config.radius)
    assert abs(radii.mean().item() - config.radius) < 0.12 * config.radius
    assert radii.min() > 0.5 * config.radius and radii.max() < 1.8 * config.radius
    # the occupancy grows outward like a distance: |x| - r
    with torch.no_grad():
        shell = field(directions * 1.2 * config.radius)[0] - field(directions * 0.8 * config.radius)[0]
    assert (shell / (0.4 * config.radius)).mean().item() == pytest.approx(1.0, abs=0.25)


def test_paper_size_geometry_init_and_sizes():
    torch.manual_seed(0)
    config = GeometryConfig()
    field = GeometryField(config)
    # the authors' geometry_network: 8 x 512 softplus(100), skip before layer 4, 6 frequencies, 256 features
    assert [layer.in_features for layer in field.layers] == [39, 512, 512, 512, 512, 512, 512, 512, 512]
    assert [layer.out_features for layer in field.layers] == [512, 512, 512, 512 - 39, 512, 512, 512, 512, 257]
    assert field.activation.beta == 100.0
    radii = surface_radii(field, random_directions(64).float(), far=3 * config.radius)
    assert abs(radii.mean().item() - 0.6) < 0.03
    assert (radii - 0.6).abs().max() < 0.12


def test_geometry_shapes_condition_and_occupancy_probability():
    config = GeometryConfig(hidden_dims=(16,) * 3, skip_layers=(1,), feature_dim=5, num_frequencies=1, condition_dim=4)
    field = GeometryField(config)
    occupancy, feature = field(torch.randn(2, 7, 3), torch.randn(2, 4))
    assert occupancy.shape == (2, 7) and feature.shape == (2, 7, 5)
    # the condition starts with zero weights (geometric init), so it matters only after training
    with torch.no_grad():
        field.layers[0].parametrizations.weight.original1[:, -4:].normal_()
    points = torch.randn(2, 7, 3)
    assert not torch.allclose(field(points, torch.zeros(2, 4))[0], field(points, torch.ones(2, 4))[0])
    with pytest.raises(AssertionError, match="condition"):
        field(points)
    level = torch.tensor([SURFACE_LEVEL, SURFACE_LEVEL - 0.1, SURFACE_LEVEL + 0.1])
    p = occupancy_probability(level, sharpness=50.0)
    assert p[0].item() == 0.5 and p[1] > 0.99 and p[2] < 0.01


def test_geometry_gradient_matches_finite_differences_and_is_differentiable():
    config = AvatarFieldsConfig.tiny().geometry
    field = GeometryField(config).double()
    with torch.no_grad():  # away from the exact initialisation
        for p in field.parameters():
            p.add_(0.05 * torch.randn_like(p))
    points = torch.randn(2, 6, 3, dtype=DT) * 0.5
    grad = field.gradient(points)
    assert grad.shape == (2, 6, 3) and not grad.requires_grad
    h = 1e-6
    with torch.no_grad():
        for k in range(3):
            e = torch.zeros_like(points)
            e[..., k] = h
            numeric = (field(points + e)[0] - field(points - e)[0]) / (2 * h)
            torch.testing.assert_close(grad[..., k], numeric, rtol=1e-6, atol=1e-8)
        grad_no_grad = field.gradient(points)  # works inside no_grad (ray tracing)
    torch.testing.assert_close(grad_no_grad, grad)
    # with create_graph an Eikonal-like term reaches the parameters
    graph = field.gradient(points, create_graph=True)
    (g_bias,) = torch.autograd.grad(graph.norm(dim=-1).sum(), [field.layers[0].bias])
    assert g_bias.abs().max() > 0
    # at initialisation the gradient is roughly radial (a sphere)
    init = GeometryField(config).double()
    directions = random_directions(50)
    radial = (init.gradient(directions * config.radius) * directions).sum(-1) / init.gradient(
        directions * config.radius
    ).norm(dim=-1)
    assert radial.min() > 0.5


@pytest.mark.parametrize("ghost_bone", [True, False])
def test_deformation_init_zero_offsets_and_uniform_weights(ghost_bone):
    config = DeformationConfig(
        hidden_dims=(32, 32), num_expressions=7, num_joints=4, ghost_bone=ghost_bone, num_pose_dirs=27
    )
    field = DeformationField(config)
    out = field(torch.randn(2, 9, 3) * 2)
    joints = 5 if ghost_bone else 4
    assert out.weights.shape == (2, 9, joints)
    assert out.expression_dirs.shape == (2, 9, 3, 7) and out.pose_dirs.shape == (2, 9, 3, 27)
    assert torch.equal(out.expression_dirs, torch.zeros_like(out.expression_dirs))
    assert torch.equal(out.pose_dirs, torch.zeros_like(out.pose_dirs))
    torch.testing.assert_close(out.weights, torch.full_like(out.weights, 1 / joints), rtol=0, atol=1e-7)
    # after training steps: weights stay a distribution, directions move away from zero
    with torch.no_grad():
        for p in field.parameters():
            p.add_(0.3 * torch.randn_like(p))
    out = field(torch.randn(2, 9, 3))
    assert (out.weights >= 0).all()
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(2, 9))
    assert out.expression_dirs.abs().max() > 0 and out.pose_dirs.abs().max() > 0


def test_deformation_paper_sizes_and_skinning_scale():
    config = DeformationConfig()
    field = DeformationField(config)
    assert [layer.out_features for layer in field.trunk] == [128] * 4
    assert field.blendshapes.out_features == 3 * (50 + 36) and field.skinning.out_features == 6
    assert config.skinning_scale == 20.0
    with torch.no_grad():
        field.skinning.bias.copy_(torch.tensor([0.1, 0, 0, 0, 0, 0]))
    weights = field(torch.zeros(1, 1, 3)).weights[0, 0]
    expected = torch.softmax(20 * torch.tensor([0.1, 0, 0, 0, 0, 0]), -1)
    torch.testing.assert_close(weights, expected)


def test_texture_in_unit_range_and_conditioned_on_expression_and_jaw():
    config = AvatarFieldsConfig.tiny(num_expressions=4).texture
    field = TextureField(config)
    b, n = 2, 11
    points, normals = torch.randn(b, n, 3), torch.nn.functional.normalize(torch.randn(b, n, 3), dim=-1)
    feature = torch.randn(b, n, config.feature_dim) * 50
    expression, jaw = torch.randn(b, 4), torch.randn(b, 3)
    rgb = field(points, normals, feature, expression, jaw)
    assert rgb.shape == (b, n, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert not torch.allclose(rgb, field(points, normals, feature, expression + 1, jaw))
    assert not torch.allclose(rgb, field(points, normals, feature, expression, jaw + 1))
    assert not torch.allclose(rgb, field(points, -normals, feature, expression, jaw))
    # the bottleneck is the only path of the condition: without it the authors' network ignores it
    plain = TextureField(TextureConfig(hidden_dims=(8,), feature_dim=4, num_expressions=2, bottleneck_dim=0))
    args = torch.randn(1, 3, 3), torch.randn(1, 3, 3), torch.randn(1, 3, 4)
    torch.testing.assert_close(
        plain(*args, torch.zeros(1, 2), torch.zeros(1, 3)), plain(*args, torch.ones(1, 2), torch.ones(1, 3))
    )
    # paper sizes: 4 x 512 ReLU, canonical point with 4 frequencies + normal + 8-d bottleneck of 53 + 256 features
    paper = TextureField(TextureConfig())
    assert paper.layers[0].in_features == 27 + 3 + 8 + 256
    assert paper.bottleneck.in_features == 53 and paper.bottleneck.out_features == 8
    assert [layer.out_features for layer in paper.layers] == [512, 512, 512, 512, 3]


def test_config_from_dict_round_trip_and_strictness():
    tiny = AvatarFieldsConfig.tiny()
    again = AvatarFieldsConfig.from_dict(tiny.to_dict())
    assert again == tiny
    assert AvatarFieldsConfig.from_dict({}) == AvatarFieldsConfig.paper()
    partial = AvatarFieldsConfig.from_dict({"geometry": {"radius": 0.3, "hidden_dims": [64, 64, 64, 64, 64]}})
    assert partial.geometry.radius == 0.3 and partial.geometry.hidden_dims == (64,) * 5
    assert partial.texture == TextureConfig()
    with pytest.raises(ValueError, match="geometry: unknown key.*raduis"):
        AvatarFieldsConfig.from_dict({"geometry": {"raduis": 0.3}})
    with pytest.raises(ValueError, match="unknown section.*colour"):
        AvatarFieldsConfig.from_dict({"colour": {}})
    with pytest.raises(ValueError, match="feature_dim"):
        AvatarFieldsConfig.from_dict({"texture": {"feature_dim": 12}})
    with pytest.raises(ValueError, match="num_expressions"):
        AvatarFieldsConfig.from_dict({"deformation": {"num_expressions": 10}})
    with pytest.raises(ValueError, match="skip_layers"):
        GeometryConfig(hidden_dims=(64, 64), skip_layers=(3,))
    with pytest.raises(ValueError, match="skip_layers.*exceed"):
        GeometryConfig(hidden_dims=(16, 16), skip_layers=(1,), num_frequencies=6)
    with pytest.raises(ValueError, match="radius"):
        GeometryConfig(radius=0)
    with pytest.raises(ValueError, match="hidden_dims"):
        AvatarFieldsConfig.from_dict({"deformation": {"hidden_dims": 128}})


def test_paper_preset_is_the_authors_configuration():
    config = AvatarFieldsConfig.paper()
    g, t, d = config.geometry, config.texture, config.deformation
    assert (g.hidden_dims, g.skip_layers, g.feature_dim, g.num_frequencies, g.radius) == ((512,) * 8, (4,), 256, 6, 0.6)
    assert (g.softplus_beta, g.weight_norm, g.condition_dim) == (100.0, True, 0)
    assert (t.hidden_dims, t.point_frequencies, t.normal_frequencies, t.bottleneck_dim, t.condition_dim) == (
        (512,) * 4,
        4,
        0,
        8,
        53,
    )
    assert (d.hidden_dims, d.num_expressions, d.num_joints, d.ghost_bone, d.num_pose_dirs) == (
        (128,) * 4,
        50,
        5,
        True,
        36,
    )
    assert d.num_weights == 6


def test_fibonacci_sphere_is_unit_and_balanced():
    points = fibonacci_sphere(200, dtype=DT)
    torch.testing.assert_close(points.norm(dim=-1), torch.ones(200, dtype=DT))
    assert points.mean(0).abs().max() < 0.01
    assert math.isclose(points[:, 2].max().item(), 1 - 1 / 200, rel_tol=1e-9)
