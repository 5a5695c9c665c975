"""Ray tracing of an occupancy field (IMavatar supp. Sec. 2.3, after IDR).

IMavatar traces rays like IDR but without sphere tracing: an occupancy field deformed
non-rigidly is no distance field, so steps by its value could overshoot. Each ray is
clipped to a bounding sphere, sampled uniformly between its entry and exit, the first
sample inside the surface brackets the hit with the sample before it, and a few secant
steps refine it. Rays that never enter report the most-inside sample instead (the
point the mask loss pushes; IDR's "minimal SDF point").

Facts from the authors' code (``model/ray_tracing.py``, ``confs/IMavatar_*.conf``):
bounding sphere radius 1.2 (FLAME x 4 units) centred at the origin, 100 uniform samples
(``linspace`` from the entry to the exit distance, both included), 8 secant
(regula falsi) steps, sphere tracing disabled. The surface is the zero level of the
geometry network's raw output ``s``, *negative inside* (hit: the first sample with
``s < 0``; their mask loss reads ``sigmoid(-50 s)`` as the probability of being
inside). Rays that miss but cross the sphere get the sample with the smallest ``s``; in
training they do the same for rays the network hits outside the ground-truth mask, so
:class:`Trace` reports that point for every ray. Rays that miss the sphere get the
point of the ray nearest the sphere's centre.

Here ``inside_above`` chooses the convention: ``False`` (default) for the authors' raw
``s``, inside below ``level`` (0; :data:`reanimate.avatar.fields.SURFACE_LEVEL` keeps
it), ``True`` for values above ``level`` inside (e.g. probabilities, level 0.5). Hits
are refined with the Illinois variant of regula falsi (it does not stall on one end of
the bracket as the authors' plain regula falsi does on curved surfaces), bisecting where
a value is infinite (a point without canonical correspondence, "surely outside").

Coordinates are the project's camera frame (``x`` right, ``y`` down, ``z`` away from
the camera; :mod:`reanimate.render.camera`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from reanimate.avatar.broyden import masked_apply
from reanimate.render.camera import Camera, unproject

# IMavatar's ray tracer settings (confs/IMavatar_supervised.conf), radius in FLAME x 4 units.
BOUNDING_RADIUS = 1.2
NUM_SAMPLES = 100
SECANT_STEPS = 8
# Points per call of the occupancy function (the authors evaluate 100000 at a time).
CHUNK = 100_000


class Trace(NamedTuple):
    """Ray-traced surface of ``B x R`` rays.

    Attributes:
        points: ``(B, R, 3)`` the surface point where ``hit``, else ``min_points``.
        t: ``(B, R)`` distance along the ray (in units of ``|dir|``) of ``points``.
        hit: ``(B, R)`` bool, the ray enters the surface inside the bounding sphere.
        min_points: ``(B, R, 3)`` the most-inside uniform sample of each ray (smallest
            occupancy, or largest with ``inside_above=True``); for rays that miss the
            bounding sphere, the ray's point nearest its centre.
        min_t: ``(B, R)`` distance of ``min_points``.
        in_sphere: ``(B, R)`` bool, the ray crosses the bounding sphere.
    """

    points: Tensor
    t: Tensor
    hit: Tensor
    min_points: Tensor
    min_t: Tensor
    in_sphere: Tensor


def ray_sphere(
    origins: Tensor,
    dirs: Tensor,
    radius: float,
    centre: Sequence[float] | Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Where rays enter and leave a sphere.

    Args:
        origins: ``(B, R, 3)`` ray origins.
        dirs: ``(B, R, 3)`` directions (need not be unit; distances are in units of ``|dir|``).
        radius: sphere radius.
        centre: ``(3,)`` sphere centre; ``None`` for the origin.

    Returns:
        ``near, far, hit``: ``(B, R)`` distances of entry and exit, ``near`` clamped to 0
        for origins inside the sphere; ``hit`` is True where the ray's line crosses the
        sphere (not just touches it) in front of the origin (``far > 0``). Both
        distances are 0 where ``hit`` is False.
    """
    assert origins.shape == dirs.shape and origins.shape[-1] == 3, (
        f"origins and dirs must both be (B, R, 3), got {tuple(origins.shape)} and {tuple(dirs.shape)}"
    )
    offset = _centred(origins, centre)
    # |o + t d - c|^2 = r^2  <=>  a t^2 + 2 b t + c = 0
    a = (dirs * dirs).sum(-1)
    b = (dirs * offset).sum(-1)
    c = (offset * offset).sum(-1) - radius**2
    disc = b * b - a * c
    root = torch.sqrt(disc.clamp_min(0))
    near = (-b - root) / a
    far = (-b + root) / a
    hit = (disc > 0) & (far > 0)
    zero = torch.zeros_like(near)
    return torch.where(hit, near.clamp_min(0), zero), torch.where(hit, far, zero), hit


def _centred(origins: Tensor, centre: Sequence[float] | Tensor | None) -> Tensor:
    if centre is None:
        return origins
    return origins - torch.as_tensor(centre, dtype=origins.dtype, device=origins.device)


def trace(
    occupancy: Callable[[Tensor], Tensor],
    origins: Tensor,
    dirs: Tensor,
    level: float = 0.0,
    radius: float = BOUNDING_RADIUS,
    num_samples: int = NUM_SAMPLES,
    secant_steps: int = SECANT_STEPS,
    chunk: int = CHUNK,
    *,
    centre: Sequence[float] | Tensor | None = None,
    inside_above: bool = False,
    entry_inside_hits: bool = False,
) -> Trace:
    """First entry of rays into the surface ``occupancy = level`` (no autograd).

    Args:
        occupancy: ``(B, M, 3)`` points to ``(B, M)`` occupancy (batch ``b`` is frame ``b``).
        origins: ``(B, R, 3)`` ray origins.
        dirs: ``(B, R, 3)`` ray directions (unit for distances in scene units).
        level: the surface's occupancy value.
        radius: bounding sphere radius; nothing outside it is seen.
        num_samples: uniform samples per ray between the sphere's entry and exit (>= 2).
        secant_steps: refinement steps of the bracketed hit.
        chunk: most points per call of ``occupancy`` (per batch element).
        centre: bounding sphere centre, ``None`` for the origin.
        inside_above: occupancy above ``level`` is inside; ``False`` (default, the
            authors' and :mod:`reanimate.avatar.fields`' convention) for below.
        entry_inside_hits: a ray whose first sample (its entry into the bounding sphere)
            is already inside hits there, at ``t = near`` (as IDR's sphere tracer, which
            stops at once where the value is below the level). Fitting needs it: when the
            shape grows to the sphere, such rays would otherwise count as misses, and the
            mask loss would push their most-inside points further in (the shape floods
            the sphere); as hits, the background ones are pushed back out.

    Returns:
        :class:`Trace`. A ray that never gets inside does not hit; nor, without
        ``entry_inside_hits``, one whose first sample is already inside.
    """
    assert num_samples >= 2, f"num_samples must be at least 2, got {num_samples}"
    batch, rays = origins.shape[:2]
    sign = 1.0 if inside_above else -1.0

    def inside_value(points: Tensor, mask: Tensor) -> Tensor:
        # > 0 inside, < 0 outside, whatever the convention; -inf for rays not in ``mask``.
        values = masked_apply(occupancy, points, mask, fill=-torch.inf, chunk=chunk)
        return torch.where(mask.view(*mask.shape, *[1] * (values.dim() - 2)), sign * (values - level), values)

    with torch.no_grad():
        origins, dirs = origins.detach(), dirs.detach()
        near, far, in_sphere = ray_sphere(origins, dirs, radius, centre)
        fractions = torch.linspace(0, 1, num_samples, dtype=origins.dtype, device=origins.device)
        t_samples = near.unsqueeze(-1) + fractions * (far - near).unsqueeze(-1)  # (B, R, K)
        samples = origins.unsqueeze(2) + t_samples.unsqueeze(-1) * dirs.unsqueeze(2)  # (B, R, K, 3)
        # NaN (undefined occupancy) counts as outside.
        values = torch.nan_to_num(
            inside_value(samples, in_sphere).to(origins.dtype), nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf
        )
        inside = values > 0

        first = inside.to(torch.uint8).argmax(-1, keepdim=True)  # first inside sample, 0 if none
        hit = in_sphere & inside.any(-1) & (first.squeeze(-1) > 0)

        # Most-inside sample; the point nearest the centre for rays that miss the sphere.
        min_t = t_samples.gather(-1, values.argmax(-1, keepdim=True)).squeeze(-1)
        closest = (-(dirs * _centred(origins, centre)).sum(-1) / (dirs * dirs).sum(-1)).clamp_min(0)
        min_t = torch.where(in_sphere, min_t, closest)

        entry = in_sphere & inside[..., 0] if entry_inside_hits else torch.zeros_like(hit)
        t = min_t
        if bool(hit.any()):
            before = (first - 1).clamp_min(0)
            bracket_t = (t_samples.gather(-1, before).squeeze(-1), t_samples.gather(-1, first).squeeze(-1))
            bracket_v = (values.gather(-1, before).squeeze(-1), values.gather(-1, first).squeeze(-1))
            t_hit = _refine(inside_value, origins, dirs, hit, bracket_t, bracket_v, secant_steps)
            t = torch.where(hit, t_hit, min_t)
        t = torch.where(entry, near, t)
        hit = hit | entry
        points = origins + t.unsqueeze(-1) * dirs
        min_points = origins + min_t.unsqueeze(-1) * dirs
        return Trace(points=points, t=t, hit=hit, min_points=min_points, min_t=min_t, in_sphere=in_sphere)


def _refine(
    inside_value: Callable[[Tensor, Tensor], Tensor],
    origins: Tensor,
    dirs: Tensor,
    mask: Tensor,
    bracket_t: tuple[Tensor, Tensor],
    bracket_v: tuple[Tensor, Tensor],
    steps: int,
) -> Tensor:
    """Illinois regula falsi on brackets ``t_out < t_in`` (values ``<= 0`` and ``> 0``) of the rays in ``mask``.

    All tensors ``(B, R)``; returns the refined distances (meaningless outside ``mask``)."""
    t_lo, t_hi = bracket_t
    f_lo, f_hi = bracket_v

    def interpolate() -> Tensor:
        t = t_lo - f_lo * (t_hi - t_lo) / (f_hi - f_lo)
        # Non-finite values (an end infinitely far outside): bisect instead.
        ok = torch.isfinite(t) & (t >= torch.minimum(t_lo, t_hi)) & (t <= torch.maximum(t_lo, t_hi))
        return torch.where(ok, t, 0.5 * (t_lo + t_hi))

    t = interpolate()
    side = torch.zeros_like(t)  # +1: the last step moved the inner end, -1: the outer end
    for _ in range(steps):
        f = inside_value(origins + t.unsqueeze(-1) * dirs, mask).to(t.dtype)
        to_outer = mask & (f < 0)
        to_inner = mask & (f > 0)
        # Illinois: an end kept twice in a row has its value halved, so it moves next time.
        f_hi = torch.where(to_outer & (side < 0), 0.5 * f_hi, f_hi)
        f_lo = torch.where(to_inner & (side > 0), 0.5 * f_lo, f_lo)
        t_lo, f_lo = torch.where(to_outer, t, t_lo), torch.where(to_outer, f, f_lo)
        t_hi, f_hi = torch.where(to_inner, t, t_hi), torch.where(to_inner, f, f_hi)
        side = torch.where(to_outer, -1.0, torch.where(to_inner, 1.0, side))
        t = torch.where(f == 0, t, interpolate())
    return t


def render_chunks(fn: Callable[..., Any], rays: Tensor | Sequence[Tensor], chunk: int) -> Any:
    """Run ``fn`` on at most ``chunk`` rays at a time and join the results along the ray axis.

    Args:
        fn: called as ``fn(*parts)`` with each ``rays`` tensor cut to ``(B, <=chunk, ...)``
            (``fn(part)`` for a single tensor); returns a tensor, a tuple/NamedTuple, a
            dict or a dataclass of ``(B, <=chunk, ...)`` tensors (``None`` fields stay ``None``).
        rays: ``(B, R, ...)`` tensor or a sequence of them (e.g. ``(origins, dirs)``).
        chunk: rays per call.

    Returns:
        ``fn``'s result for all ``R`` rays, same structure.
    """
    single = isinstance(rays, Tensor)
    tensors = [rays] if single else list(rays)
    total = tensors[0].shape[1]
    assert all(x.shape[1] == total for x in tensors), f"rays disagree on R: {[tuple(x.shape) for x in tensors]}"
    step = max(int(chunk), 1)
    outputs = [fn(*[x[:, start : start + step] for x in tensors]) for start in range(0, total, step)]
    return _join(outputs)


def _join(parts: list[Any]) -> Any:
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, Tensor):
        return torch.cat(parts, dim=1)
    if isinstance(first, dict):
        return {key: _join([p[key] for p in parts]) for key in first}
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return dataclasses.replace(
            first, **{f.name: _join([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(first)}
        )
    if isinstance(first, tuple):
        joined = [_join([p[i] for p in parts]) for i in range(len(first))]
        return type(first)(*joined) if hasattr(first, "_fields") else tuple(joined)
    raise TypeError(f"render_chunks cannot join results of type {type(first).__name__}")


def camera_rays(
    camera: Camera,
    rotation: Tensor | None = None,
    translation: Tensor | None = None,
    pixels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """World-space rays through pixel centres.

    The pose maps world points into the camera, ``x_cam = rotation @ x_world + translation``
    (the project's convention: the rotation's columns are the world axes in the camera).

    Args:
        camera: intrinsics (pinhole or scaled orthographic).
        rotation: ``(B, 3, 3)`` world-to-camera rotation; ``None`` for the identity.
        translation: ``(B, 3)`` world-to-camera translation; ``None`` for zero.
        pixels: ``(B, R, 2)`` pixel coordinates ``(u, v)``; ``None`` for every pixel
            centre in row-major order (``R = H * W``, reshape to ``(B, H, W)``).

    Returns:
        ``origins, dirs``: ``(B, R, 3)`` each, ``dirs`` unit. A perspective camera's rays
        start at its centre; a scaled orthographic camera's start on its image plane
        ``z = 0`` and all point along its ``+z``.
    """
    tensors = [x for x in (rotation, translation, pixels) if x is not None]
    dtype = tensors[0].dtype if tensors else torch.get_default_dtype()
    device = tensors[0].device if tensors else None
    batch = tensors[0].shape[0] if tensors else 1
    if pixels is None:
        v, u = torch.meshgrid(
            torch.arange(camera.height, dtype=dtype, device=device),
            torch.arange(camera.width, dtype=dtype, device=device),
            indexing="ij",
        )
        pixels = torch.stack([u, v], dim=-1).reshape(1, -1, 2).expand(batch, -1, 2)
    assert pixels.dim() == 3 and pixels.shape[-1] == 2, f"pixels must be (B, R, 2), got {tuple(pixels.shape)}"
    pixels = pixels.to(dtype)
    ones = torch.ones(pixels.shape[:-1], dtype=dtype, device=pixels.device)
    on_plane = unproject(pixels, ones, camera)  # the pixel at depth 1 (z_ref-scaled if orthographic)
    if camera.orthographic:
        origins = on_plane * torch.tensor([1.0, 1.0, 0.0], dtype=dtype, device=pixels.device)
        dirs = torch.zeros_like(origins)
        dirs[..., 2] = 1
    else:
        origins = torch.zeros_like(on_plane)
        dirs = on_plane / torch.linalg.vector_norm(on_plane, dim=-1, keepdim=True)
    if translation is not None:
        origins = origins - translation.to(dtype).unsqueeze(1)
    if rotation is not None:
        # x_world = R^T (x_cam - t); row vectors: x_world = (x_cam - t) @ R.
        rotation = rotation.to(dtype)
        origins = origins @ rotation
        dirs = dirs @ rotation
    return origins, dirs
