"""Ray tracing an occupancy field: bounding sphere, uniform samples, secant refinement,
the most-inside point of missing rays, chunked rendering and camera rays (IMavatar supp. Sec. 2.3)."""

import math

import torch

from reanimate.avatar.raytrace import Trace, camera_rays, ray_sphere, render_chunks, trace
from reanimate.geometry.rotation import euler_to_rotation
from reanimate.render.camera import Camera, project


def test_ray_sphere_hand_computed():
    origins = torch.tensor(
        [[[0.0, 0.0, -5.0], [0.0, 0.0, 0.0], [0.0, 3.0, -5.0], [0.0, 0.0, 5.0], [0.0, 0.0, -5.0], [0.0, 2.0, -5.0]]]
    )
    dirs = torch.tensor(
        [[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]]]
    )
    near, far, hit = ray_sphere(origins, dirs, radius=2.0)
    # through the centre; from inside (near clamped to 0); passing by; sphere behind; a
    # direction of length 2 (distances halve); tangent (touching is no crossing).
    assert hit.tolist() == [[True, True, False, False, True, False]]
    assert torch.allclose(near, torch.tensor([[3.0, 0.0, 0.0, 0.0, 1.5, 0.0]]))
    assert torch.allclose(far, torch.tensor([[7.0, 2.0, 0.0, 0.0, 3.5, 0.0]]))

    near, far, hit = ray_sphere(origins[:, :1], dirs[:, :1], radius=1.0, centre=(0.0, 0.6, 1.0))
    # distance 0.6 off the axis: half chord 0.8 around z = 1
    assert hit.all() and torch.allclose(near, torch.tensor([[5.2]])) and torch.allclose(far, torch.tensor([[6.8]]))


def sphere_sdf(radii):
    """Raw occupancy, negative inside (the authors' convention): ``|x| - r_b`` per frame."""
    radii = torch.as_tensor(radii, dtype=torch.float32)
    return lambda x: x.norm(dim=-1) - radii[:, None].to(x.dtype)


def first_hit_sphere(origins, dirs, radius):
    near, _, hit = ray_sphere(origins, dirs, radius)
    return near, hit


def camera_fan(batch=1, count=9, spread=0.25):
    """Rays from (0, 0, -3) fanning across the object in x and y."""
    angles = torch.linspace(-spread, spread, count)
    dirs = torch.stack(torch.meshgrid(angles, angles, indexing="ij"), -1).reshape(-1, 2)
    dirs = torch.cat([dirs, torch.ones(len(dirs), 1)], -1)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = torch.tensor([0.0, 0.0, -3.0]).expand_as(dirs)
    return origins.expand(batch, -1, -1).contiguous(), dirs.expand(batch, -1, -1).contiguous()


def test_trace_hits_a_sphere_per_frame():
    origins, dirs = camera_fan(batch=2)
    radii = [0.5, 0.7]
    found = trace(sphere_sdf(radii), origins, dirs, level=0.0, radius=1.2, num_samples=16, secant_steps=8)
    for b, r in enumerate(radii):
        t, hit = first_hit_sphere(origins[b : b + 1], dirs[b : b + 1], r)
        assert torch.equal(found.hit[b], hit[0])
        assert 0 < hit.sum() < hit.numel()
        assert (found.t[b][hit[0]] - t[0][hit[0]]).abs().max() < 1e-4
        assert ((found.points[b][hit[0]].norm(dim=-1) - r).abs() < 1e-4).all()


def test_trace_with_occupancy_probabilities_inside_above_the_level():
    origins, dirs = camera_fan()
    probability = lambda x: torch.sigmoid(-50 * (x.norm(dim=-1) - 0.5))
    found = trace(probability, origins, dirs, level=0.5, radius=1.2, num_samples=16, inside_above=True)
    t, hit = first_hit_sphere(origins, dirs, 0.5)
    assert torch.equal(found.hit, hit)
    assert (found.t[hit] - t[hit]).abs().max() < 1e-4


def ellipsoid_intersection(origins, dirs, axes):
    """First entry distance of rays into ``sum (x_i / a_i)^2 = 1`` and whether they cross it."""
    axes = torch.tensor(axes)
    o, d = origins / axes, dirs / axes
    a, b, c = (d * d).sum(-1), (o * d).sum(-1), (o * o).sum(-1) - 1
    disc = b * b - a * c
    return (-b - disc.clamp_min(0).sqrt()) / a, disc > 0


def test_trace_hits_an_ellipsoid():
    axes = (0.6, 0.35, 0.45)
    occupancy = lambda x: (x / torch.tensor(axes)).norm(dim=-1) - 1  # no distance field, only a level set
    origins, dirs = camera_fan(count=11, spread=0.3)
    # and a few oblique rays from the side
    side_o = torch.tensor([[[2.0, -1.0, -2.0], [2.0, 0.0, 0.0], [-2.0, 0.3, 0.1]]])
    side_d = torch.nn.functional.normalize(-side_o + torch.tensor([0.0, 0.1, 0.0]), dim=-1)
    origins, dirs = torch.cat([origins, side_o], 1), torch.cat([dirs, side_d], 1)

    found = trace(occupancy, origins, dirs, level=0.0, radius=1.0, num_samples=24, secant_steps=8)
    t, hit = ellipsoid_intersection(origins, dirs, axes)
    assert torch.equal(found.hit, hit) and hit[0, -3:].all()
    assert (found.t[hit] - t[hit]).abs().max() < 1e-4


def test_missing_rays_report_the_most_inside_point():
    # Rays passing the sphere of radius 0.3 at distances 0.4 .. 0.9, from various depths.
    offsets = torch.linspace(0.4, 0.9, 6)
    origins = torch.stack([offsets, torch.zeros(6), torch.linspace(-3.0, -1.5, 6)], -1).unsqueeze(0)
    dirs = torch.nn.functional.normalize(torch.tensor([0.0, 0.2, 1.0]), dim=0).expand(1, 6, 3)
    num_samples = 40
    found = trace(sphere_sdf([0.3]), origins, dirs, level=0.0, radius=1.2, num_samples=num_samples)
    assert not found.hit.any() and found.in_sphere.all()
    # |x| along the ray is smallest where the ray is closest to the centre.
    closest = -(origins * dirs).sum(-1)
    near, far, _ = ray_sphere(origins, dirs, 1.2)
    spacing = (far - near) / (num_samples - 1)
    assert ((found.min_t - closest).abs() <= spacing / 2 + 1e-6).all()
    assert torch.allclose(found.t, found.min_t) and torch.allclose(found.points, found.min_points)

    # A ray missing the bounding sphere: the point nearest its centre.
    far_ray = trace(sphere_sdf([0.3]), torch.tensor([[[2.0, 0.0, -3.0]]]), torch.tensor([[[0.0, 0.0, 1.0]]]))
    assert not far_ray.in_sphere.any() and not far_ray.hit.any()
    assert torch.allclose(far_ray.min_points, torch.tensor([[[2.0, 0.0, 0.0]]]))


def test_rays_starting_inside_do_not_hit():
    origins = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, -0.2]]])
    dirs = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    found = trace(sphere_sdf([0.5]), origins, dirs, level=0.0, radius=1.2, num_samples=16)
    assert not found.hit.any()


def test_rays_entering_the_bounding_sphere_inside_the_shape_hit_at_the_entry_when_asked():
    # a shape larger than the bounding sphere: every ray's entry sample is already inside
    origins = torch.tensor([[[0.0, 0.0, -3.0], [0.3, 0.0, -3.0]]])
    dirs = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    assert not trace(sphere_sdf([2.0]), origins, dirs, level=0.0, radius=1.2, num_samples=16).hit.any()
    found = trace(sphere_sdf([2.0]), origins, dirs, level=0.0, radius=1.2, num_samples=16, entry_inside_hits=True)
    assert found.hit.all()
    entry = 3.0 - torch.sqrt(1.2**2 - torch.tensor([0.0, 0.3]) ** 2)
    torch.testing.assert_close(found.t[0], entry)
    # a shape inside the sphere is traced as before
    normal = trace(sphere_sdf([0.5]), origins, dirs, level=0.0, radius=1.2, num_samples=16, entry_inside_hits=True)
    torch.testing.assert_close(
        normal.t, trace(sphere_sdf([0.5]), origins, dirs, level=0.0, radius=1.2, num_samples=16).t
    )


def test_non_finite_outside_values_are_handled():
    # Points without a canonical correspondence are reported as +inf ("surely outside"):
    # here the front cap of the sphere (z < -0.45), so rays enter through the cut or the sphere.
    def occupancy(x):
        value = x.norm(dim=-1) - 0.5
        return torch.where(x[..., 2] < -0.45, torch.full_like(value, math.inf), value)

    origins, dirs = camera_fan(count=5, spread=0.1)
    found = trace(occupancy, origins, dirs, level=0.0, radius=1.2, num_samples=12, secant_steps=16)
    t_sphere, hit = first_hit_sphere(origins, dirs, 0.5)
    t_cut = (-0.45 - origins[..., 2]) / dirs[..., 2]
    assert torch.equal(found.hit, hit) and hit.all()
    assert (t_cut > t_sphere).any() and (t_cut < t_sphere).any()
    assert (found.t - torch.maximum(t_sphere, t_cut)).abs().max() < 1e-4


def test_chunked_tracing_and_rendering_equal_unchunked():
    origins, dirs = camera_fan(batch=2, count=7)
    occupancy = sphere_sdf([0.5, 0.6])
    whole = trace(occupancy, origins, dirs, level=0.0, num_samples=20)
    small_chunks = trace(occupancy, origins, dirs, level=0.0, num_samples=20, chunk=13)
    rendered = render_chunks(lambda o, d: trace(occupancy, o, d, level=0.0, num_samples=20), (origins, dirs), chunk=5)
    assert isinstance(rendered, Trace)
    for a, b, c in zip(whole, small_chunks, rendered):
        assert torch.equal(a, b) and torch.equal(a, c)

    as_dict = render_chunks(lambda o: {"depth": o[..., 2], "none": None}, origins, chunk=4)
    assert torch.equal(as_dict["depth"], origins[..., 2]) and as_dict["none"] is None


def test_camera_rays_through_the_principal_point_look_along_z():
    camera = Camera(width=8, height=6, focal=10.0)
    origins, dirs = camera_rays(camera, pixels=torch.tensor([[[camera.cx, camera.cy]]]))
    assert torch.allclose(dirs, torch.tensor([[[0.0, 0.0, 1.0]]])) and torch.allclose(origins, torch.zeros(1, 1, 3))

    origins, dirs = camera_rays(camera)
    assert origins.shape == dirs.shape == (1, 48, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(1, 48))
    # row-major pixel order: (u, v) = (2, 1) is index 1 * W + 2
    assert torch.allclose(project(dirs[:, 1 * 8 + 2] * 3.0, camera)[..., :2], torch.tensor([[2.0, 1.0]]), atol=1e-5)


def test_camera_rays_with_a_pose_project_back_to_their_pixels():
    camera = Camera(width=16, height=12, focal=20.0)
    rotation = euler_to_rotation(torch.tensor([20.0]), torch.tensor([-10.0]), torch.tensor([5.0]))
    translation = torch.tensor([[0.1, -0.2, 2.5]])
    pixels = torch.tensor([[[0.0, 0.0], [15.0, 11.0], [7.3, 4.2]]])
    origins, dirs = camera_rays(camera, rotation, translation, pixels)
    assert torch.allclose(origins, -(rotation.transpose(1, 2) @ translation.unsqueeze(-1)).squeeze(-1).unsqueeze(1))
    world = origins + 1.7 * dirs
    in_camera = world @ rotation.transpose(1, 2) + translation.unsqueeze(1)
    assert torch.allclose(project(in_camera, camera)[..., :2], pixels, atol=1e-4)

    ortho = Camera(width=16, height=12, focal=20.0, orthographic=True, z_ref=2.0)
    origins, dirs = camera_rays(ortho, rotation, translation, pixels)
    assert torch.allclose(dirs, rotation[:, 2:3, :].expand(1, 3, 3), atol=1e-6)  # R^T e_z
    in_camera = (origins + 0.9 * dirs) @ rotation.transpose(1, 2) + translation.unsqueeze(1)
    assert torch.allclose(project(in_camera, ortho)[..., :2], pixels, atol=1e-4)
