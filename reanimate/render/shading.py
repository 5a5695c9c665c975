"""Shading of rasterised images: Lambert diffuse with Blinn-Phong highlights, compositing
over a background, and box-filter downsampling for supersampled anti-aliasing.

Images are channels-last ``(N, H, W, C)`` floats in ``[0, 1]``; directions are in camera
coordinates (``x`` right, ``y`` down, ``z`` away from the camera), so ``(0, 0, -1)``
points from the scene towards the camera.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Direction from the surface to a distant viewer on the optical axis.
_TOWARDS_CAMERA = (0.0, 0.0, -1.0)


def _coefficient(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar, ``(N,)`` or per-pixel ``(N, H, W)`` coefficient, shaped to broadcast over
    ``(N, H, W, 3)`` images."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value[..., None] if value.dim() == 3 else value.reshape(-1, 1, 1, 1)


def _unit(vectors: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(eps)


def lambert(
    albedo: torch.Tensor,
    normals: torch.Tensor,
    light_direction: torch.Tensor,
    ambient: float | torch.Tensor,
    diffuse: float | torch.Tensor,
    specular: float | torch.Tensor = 0.0,
    shininess: float = 20.0,
    view: torch.Tensor | None = None,
    two_sided: bool = False,
) -> torch.Tensor:
    """Lambert diffuse shading plus a white Blinn-Phong highlight, clipped to ``[0, 1]``.

    ``colour = albedo * (ambient + diffuse * max(0, n.l)) + specular * max(0, n.h) ** shininess``,
    with ``h`` the unit half vector of ``l`` and the view direction; the highlight is
    zero where ``n.l <= 0``.

    Args:
        albedo: ``(N, H, W, 3)`` surface colour.
        normals: ``(N, H, W, 3)`` camera-space normals (e.g. interpolated vertex normals);
            normalised here, so they need not be unit. Zero normals (background) get the
            ambient term only.
        light_direction: ``(N, 3)`` or ``(3,)`` unit vector pointing from the surface
            towards the light, i.e. the direction the light comes from; ``(0, 0, -1)``
            is a light at the camera.
        ambient, diffuse, specular: scalars, ``(N,)`` per frame or ``(N, H, W)`` per pixel
            (e.g. an interpolated specular map).
        shininess: Blinn-Phong exponent.
        view: ``(N, H, W, 3)`` unit vectors from the surface towards the camera; ``None``
            assumes a distant viewer, ``(0, 0, -1)`` everywhere (exact for orthographic
            cameras; for perspective pass ``-points / |points|`` of the interpolated
            camera-space positions).
        two_sided: flip normals that face away from the viewer (for open meshes whose
            inside shows).

    Returns:
        ``(N, H, W, 3)`` colours in ``[0, 1]``.
    """
    if albedo.shape[-1] != 3 or normals.shape != albedo.shape:
        raise ValueError(
            f"lambert expects albedo and normals (N, H, W, 3), got {tuple(albedo.shape)} and {tuple(normals.shape)}"
        )
    n_frames = albedo.shape[0]
    # The normals are not normalised in memory: each dot product with them is divided by
    # their length instead, and those with per-frame vectors are batched matrix products.
    rows = normals.reshape(n_frames, -1, 3)
    inverse_length = torch.linalg.vector_norm(normals, dim=-1, keepdim=True).clamp_min_(1e-12).reciprocal_()
    light = _unit(torch.as_tensor(light_direction, dtype=albedo.dtype, device=albedo.device).reshape(-1, 3))
    light = light.expand(n_frames, 3)
    towards = torch.tensor(_TOWARDS_CAMERA, dtype=albedo.dtype, device=albedo.device)

    def dot(vectors: torch.Tensor) -> torch.Tensor:  # unit normal . vectors, (N, H, W, 1)
        if vectors.dim() == 2:  # (N, 3), one vector per frame
            product = torch.bmm(rows, vectors[:, :, None].contiguous())
        else:
            product = (normals * vectors).sum(-1, keepdim=True)
        return product.view(inverse_length.shape) * inverse_length

    n_dot_l = dot(light)
    flip = None
    if two_sided:  # normals facing away from the viewer are flipped: so are their dot products
        n_dot_v = -normals[..., 2:] if view is None else (normals * view).sum(-1, keepdim=True)
        flip = torch.where(n_dot_v < 0, -1.0, 1.0).to(albedo.dtype)
        n_dot_l = n_dot_l * flip
    colour = albedo * (_coefficient(ambient, albedo) + _coefficient(diffuse, albedo) * n_dot_l.clamp_min(0))
    spec = _coefficient(specular, albedo)
    if bool((spec != 0).any()):
        half = _unit(light + towards) if view is None else _unit(light.reshape(-1, 1, 1, 3) + view)
        n_dot_h = dot(half)
        if flip is not None:
            n_dot_h = n_dot_h * flip
        colour = colour + spec * n_dot_h.clamp_min(0).pow(shininess) * (n_dot_l > 0)
    return colour.clamp(0.0, 1.0)


def composite(foreground: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Foreground over background: ``mask * foreground + (1 - mask) * background``.

    Args:
        foreground, background: ``(N, H, W, C)``.
        mask: ``(N, H, W)`` bool or float coverage in ``[0, 1]`` (soft masks blend).

    Returns:
        ``(N, H, W, C)``.
    """
    if mask.shape != foreground.shape[:-1]:
        raise ValueError(f"composite expects mask {tuple(foreground.shape[:-1])}, got {tuple(mask.shape)}")
    alpha = mask.to(foreground.dtype)[..., None]
    return foreground * alpha + background * (1 - alpha)


def downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Box-filter downsampling by an integer factor, for anti-aliasing by supersampling.

    Render at ``factor`` times the size (a :class:`~reanimate.render.camera.Camera` with
    ``width * factor``, ``height * factor``, ``focal * factor`` and principal point
    ``cx * factor + (factor - 1) / 2``, which the default centred one is) and reduce:
    each output pixel averages a ``factor x factor`` block centred on its own centre.

    Args:
        image: ``(N, H, W, C)`` or ``(N, H, W)`` (e.g. a float mask), ``H`` and ``W``
            multiples of ``factor``.
        factor: integer >= 1.

    Returns:
        ``(N, H / factor, W / factor, C)`` or ``(N, H / factor, W / factor)``.
    """
    if factor < 1 or image.shape[1] % factor or image.shape[2] % factor:
        raise ValueError(f"downsample needs H and W {tuple(image.shape[1:3])} to be multiples of factor {factor}")
    if factor == 1:
        return image
    planar = image[..., None] if image.dim() == 3 else image
    if not planar.is_floating_point():
        planar = planar.to(torch.get_default_dtype())
    out = F.avg_pool2d(planar.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)
    return out[..., 0] if image.dim() == 3 else out
