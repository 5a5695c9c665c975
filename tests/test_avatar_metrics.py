"""Avatar evaluation metrics (reanimate.avatar.metrics) against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reanimate.avatar.metrics import (
    MetricsTable,
    composite_on_white,
    face_interior_mask,
    image_metrics,
    keypoint_error,
    mask_iou,
    mesh_normals_image,
    normal_angular_error,
    normal_consistency,
)
from reanimate.evaluation.lpips import LPIPS
from reanimate.evaluation.metrics import ssim
from reanimate.render.camera import Camera


def random_image(height=24, width=20, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (height, width, 3))


def rectangle(height, width, rows, cols):
    mask = np.zeros((height, width), dtype=bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def test_identical_images_are_perfect():
    image = random_image()
    mask = rectangle(24, 20, (4, 20), (3, 17))
    prediction = composite_on_white(image, mask)  # the render: white outside the head
    m = image_metrics(prediction, image, mask)
    assert m["l1"] == 0 and m["l1_mask"] == 0
    assert m["psnr"] == math.inf and m["psnr_mask"] == math.inf
    assert m["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert m["ssim_mask"] == pytest.approx(1.0, abs=1e-12)
    assert set(image_metrics(image, image)) == {"l1", "psnr", "ssim"}


def test_constant_offset_gives_known_l1_and_psnr():
    prediction = np.full((16, 16, 3), 0.5)
    target = np.full((16, 16, 3), 0.6)
    m = image_metrics(prediction, target)
    assert m["l1"] == pytest.approx(0.1, abs=1e-12)
    assert m["psnr"] == pytest.approx(20.0, abs=1e-9)  # 10 log10(1 / 0.1^2)
    # uint8 is scaled by 255, torch tensors are accepted
    m8 = image_metrics(torch.full((16, 16, 3), 100, dtype=torch.uint8), np.full((16, 16, 3), 125, np.uint8))
    assert m8["l1"] == pytest.approx(25 / 255, abs=1e-12)
    assert m8["psnr"] == pytest.approx(20 * math.log10(255 / 25), abs=1e-9)


def test_target_is_composited_on_white_and_masked_variants():
    height, width = 16, 20
    mask = rectangle(height, width, (2, 10), (5, 15))  # 80 pixels
    prediction = np.full((height, width, 3), 0.5)
    target = np.full((height, width, 3), 0.6)
    m = image_metrics(prediction, target, mask.astype(np.uint8) * 255)
    n, total = mask.sum(), height * width
    # inside |0.5 - 0.6|, outside |0.5 - 1| (the target is white there)
    assert m["l1"] == pytest.approx((n * 0.1 + (total - n) * 0.5) / total, abs=1e-12)
    assert m["psnr"] == pytest.approx(10 * math.log10(total / (n * 0.01 + (total - n) * 0.25)), abs=1e-9)
    assert m["l1_mask"] == pytest.approx(0.1, abs=1e-12)
    assert m["psnr_mask"] == pytest.approx(20.0, abs=1e-9)
    # SSIM inside the mask: both images black outside it (the authors' convention)
    black = mask[..., None]
    assert m["ssim_mask"] == pytest.approx(ssim(prediction * black, target * black), abs=1e-12)
    assert m["ssim_mask"] != pytest.approx(m["ssim"])
    # errors outside the mask count in l1 only
    wrong_outside = target * black
    m2 = image_metrics(wrong_outside, target, mask)
    assert m2["l1_mask"] == 0 and m2["l1"] == pytest.approx((total - n) / total)
    # an empty mask leaves nothing to compare
    empty = image_metrics(prediction, target, np.zeros((height, width), bool))
    assert math.isnan(empty["l1_mask"]) and math.isnan(empty["psnr_mask"]) and math.isnan(empty["ssim_mask"])


def test_lpips_whole_and_masked():
    network = LPIPS("alex", seed=0)
    image = random_image(32, 32, seed=1)
    mask = rectangle(32, 32, (4, 28), (6, 26))
    same = image_metrics(composite_on_white(image, mask), image, mask, lpips=network)
    assert same["lpips"] == pytest.approx(0.0, abs=1e-6) and same["lpips_mask"] == pytest.approx(0.0, abs=1e-6)

    other = random_image(32, 32, seed=2)
    m = image_metrics(other, image, mask, lpips=network)
    white = composite_on_white(image, mask)

    def direct(a, b):
        to = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float()
        return float(network(to(a), to(b)))

    assert m["lpips"] == pytest.approx(direct(other, white), rel=1e-5)
    black = mask[..., None]
    assert m["lpips_mask"] == pytest.approx(direct(other * black, white * black), rel=1e-5)
    assert m["lpips"] > 0


def test_face_interior_mask_is_the_filled_hull():
    landmarks = np.array([[2, 2], [6, 2], [6, 6], [2, 6], [4, 4], [np.nan, np.nan]], dtype=np.float64)
    mask = face_interior_mask(landmarks, 10, 12)
    assert mask.shape == (10, 12)
    assert np.array_equal(mask, rectangle(10, 12, (2, 7), (2, 7)))  # boundary pixels included
    assert not face_interior_mask(landmarks[:2], 10, 12).any()


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        image_metrics(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="mask"):
        image_metrics(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), np.zeros((8, 9), bool))


# --------------------------------------------------------------------------------------
# Masks, normals, landmarks
# --------------------------------------------------------------------------------------


def test_mask_iou_of_two_rectangles():
    a = rectangle(20, 20, (0, 10), (0, 10))
    b = rectangle(20, 20, (5, 15), (5, 15))
    assert mask_iou(a, b) == pytest.approx(25 / 175)
    assert mask_iou(torch.from_numpy(a), a) == 1.0
    assert mask_iou(a, ~a) == 0.0
    assert math.isnan(mask_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)))


def test_normal_consistency_and_angle():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(6, 5, 3))
    normals[0] = 0  # undefined row (background) is skipped
    scaled = normals * rng.uniform(0.5, 2.0, size=(6, 5, 1))  # lengths do not matter
    assert normal_consistency(normals, scaled) == pytest.approx(1.0)
    assert normal_angular_error(normals, scaled) == pytest.approx(0.0, abs=1e-5)
    assert normal_consistency(normals, -normals) == pytest.approx(-1.0)
    assert normal_angular_error(normals, -normals) == pytest.approx(180.0)
    # half the pixels flipped: mean cosine 0, mean angle 90
    half = np.where(np.arange(6)[:, None, None] < 3, normals, -normals)
    mask = np.zeros((6, 5), bool)
    mask[1:5] = True  # rows 1, 2 equal, rows 3, 4 flipped
    assert normal_consistency(normals, half, mask) == pytest.approx(0.0, abs=1e-12)
    assert normal_angular_error(normals, half, mask) == pytest.approx(90.0)
    # perpendicular
    x = np.tile([1.0, 0.0, 0.0], (2, 2, 1))
    y = np.tile([0.0, 0.0, -1.0], (2, 2, 1))
    assert normal_consistency(x, torch.from_numpy(y)) == pytest.approx(0.0)
    assert math.isnan(normal_consistency(np.zeros((2, 2, 3)), y))


def test_keypoint_error_of_a_known_shift():
    target = np.random.default_rng(0).uniform(0, 256, (68, 2))
    assert keypoint_error(target + [3.0, 4.0], target) == pytest.approx(5.0)
    predicted = target.copy()
    predicted[:10] += 10.0  # wrong, but not visible in the target
    visible = np.ones(68, bool)
    visible[:10] = False
    assert keypoint_error(predicted, target, visible) == pytest.approx(0.0)
    predicted[10] = np.nan  # not detected: skipped
    assert keypoint_error(predicted, torch.from_numpy(target), visible) == pytest.approx(0.0)


# --------------------------------------------------------------------------------------
# Ground-truth normals of a mesh
# --------------------------------------------------------------------------------------


def test_flat_square_facing_the_camera():
    camera = Camera(width=32, height=32, focal=32.0)  # cx = cy = 15.5
    # a 1 x 1 square at depth 2: projected to u, v in (7.5, 23.5), pixel centres 8..23
    vertices = torch.tensor([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.5, 0.5, 2.0], [-0.5, 0.5, 2.0]])
    away = torch.tensor([[0, 1, 2], [0, 2, 3]])  # (b - a) x (c - a) = +z: wound facing away
    expected_mask = torch.from_numpy(rectangle(32, 32, (8, 24), (8, 24)))
    toward = torch.tensor([0.0, 0.0, -1.0])
    for faces in (away, away.flip(1)):
        for smooth in (True, False):
            normals, mask = mesh_normals_image(vertices, faces, camera, smooth=smooth)
            assert torch.equal(mask, expected_mask)
            assert torch.allclose(normals[mask], toward.expand(int(mask.sum()), 3), atol=1e-6)
            assert normals[~mask].abs().max() == 0
    # keeping the winding's orientation
    normals, mask = mesh_normals_image(vertices, away, camera, face_camera=False)
    assert torch.allclose(normals[mask], -toward.expand(int(mask.sum()), 3), atol=1e-6)
    # scaled orthographic: the same square, the same normals
    ortho = Camera(width=32, height=32, focal=32.0, orthographic=True, z_ref=2.0)
    normals, mask = mesh_normals_image(vertices, away, ortho)
    assert torch.equal(mask, expected_mask)
    assert torch.allclose(normals[mask], toward.expand(int(mask.sum()), 3), atol=1e-6)


def uv_sphere(radius, centre, rings=48, segments=96):
    """A closed latitude-longitude sphere, faces wound outward."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    points = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]])
    faces = []
    for j in range(segments):
        k = (j + 1) % segments
        faces.append([0, 1 + j, 1 + k])
        last = 1 + (rings - 2) * segments
        faces.append([len(points) - 1, last + k, last + j])
        for i in range(rings - 2):
            a, b = 1 + i * segments + j, 1 + i * segments + k
            c, d = a + segments, b + segments
            faces += [[a, c, d], [a, d, b]]
    faces = np.array(faces)
    corners = points[faces]
    outward = np.einsum(
        "fi,fi->f", np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), corners.mean(1)
    )
    faces[outward < 0] = faces[outward < 0][:, ::-1]
    vertices = torch.from_numpy(points * radius + np.asarray(centre)).double()
    return vertices, torch.from_numpy(faces.copy())


def test_sphere_normals_match_the_analytic_ones():
    camera = Camera(width=48, height=48, focal=60.0)
    centre, radius = np.array([0.1, -0.05, 3.0]), 0.8
    vertices, faces = uv_sphere(radius, centre)
    normals, mask = mesh_normals_image(vertices, faces, camera)
    assert normals.dtype == torch.float64
    # a closed outward-wound mesh: its visible faces face the camera already
    assert torch.equal(normals, mesh_normals_image(vertices, faces, camera, face_camera=False)[0])

    # analytic: the first intersection of each pixel's ray with the sphere
    v, u = np.mgrid[0:48, 0:48].astype(np.float64)
    rays = np.stack([(u - camera.cx) / camera.focal, (v - camera.cy) / camera.focal, np.ones_like(u)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    along = rays @ centre
    disc = along**2 - (centre @ centre - radius**2)
    hit = disc > 0
    distance = along - np.sqrt(np.where(hit, disc, 0))
    analytic = (rays * distance[..., None] - centre) / radius
    # the facets' silhouette lies inside the sphere's: compare well inside it
    inside = disc > 0.05 * radius**2
    assert mask.numpy()[inside].all() and not mask.numpy()[~hit].any()
    cos = (normals.numpy() * analytic).sum(-1)[inside]
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.5  # about 0.2 with 48 x 96 facets
    assert cos.mean() > 0.9999
    # a few pixels by hand: the centre's normal points straight back at the camera
    row, col = np.unravel_index(np.argmin(np.where(hit, distance, np.inf)), distance.shape)
    assert normals[row, col, 2] < -0.99
    assert normal_consistency(normals, analytic, torch.from_numpy(inside)) == pytest.approx(1.0, abs=1e-4)


# --------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------


def test_metrics_table_split_means_and_markdown():
    table = MetricsTable()
    table.add({"l1": 0.1, "psnr": 20.0}, "interpolation")
    table.add({"l1": 0.3, "psnr": 30.0}, "interpolation")
    table.add({"l1": 0.5, "psnr": 10.0, "keypoint": math.nan}, "extrapolation")
    table.add({"l1": 0.7, "psnr": 12.0, "keypoint": 2.0}, "extrapolation")
    assert table.splits == ["interpolation", "extrapolation"]
    assert table.keys == ["l1", "psnr", "keypoint"]
    assert table.frames("interpolation") == 2 and table.frames("missing") == 0
    means = table.means()
    assert means["interpolation"]["l1"] == pytest.approx(0.2)
    assert means["interpolation"]["psnr"] == pytest.approx(25.0)
    assert math.isnan(means["interpolation"]["keypoint"])
    assert means["extrapolation"] == pytest.approx({"l1": 0.6, "psnr": 11.0, "keypoint": 2.0})
    assert np.isnan(table.values("extrapolation", "keypoint")[0])
    assert table.markdown() == (
        "| split | frames | l1 ↓ | psnr ↑ | keypoint ↓ |\n"
        "|---|---:|---:|---:|---:|\n"
        "| interpolation | 2 | 0.2 | 25 | - |\n"
        "| extrapolation | 2 | 0.6 | 11 | 2 |\n"
    )
    assert table.markdown(["l1_mask", "psnr"], digits=2).splitlines()[0] == "| split | frames | l1_mask ↓ | psnr ↑ |"
    table.add({"psnr": math.inf}, "identical")
    assert table.mean("identical", "psnr") == math.inf
