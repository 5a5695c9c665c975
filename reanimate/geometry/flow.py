"""Dense backward maps ("flows") and their error.

A *backward map* (FOMM's dense ``deformation``) gives, for every pixel of a target frame,
the point of the source frame to sample: a ``(B, H, W, 2)`` tensor in normalised
coordinates, x first, ``-1`` and ``1`` the centres of the corner pixels (the
``align_corners=True`` convention of :func:`torch.nn.functional.grid_sample`, see
:mod:`reanimate.geometry.grid`). ``warp(source, flow)`` then renders the target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .grid import coordinate_grid

__all__ = ["end_point_error", "identity_flow", "resize_flow", "warp"]


def identity_flow(
    batch: int,
    height: int,
    width: int,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The map that samples every pixel at its own position (no motion).

    Returns:
        ``(batch, height, width, 2)``, x first, in [-1, 1].
    """
    grid = coordinate_grid((height, width), dtype=dtype, device=device)
    return grid.unsqueeze(0).expand(batch, height, width, 2).clone()


def end_point_error(
    flow: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    spatial_size: Sequence[int] | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """End-point error between two backward maps, in pixels.

    The distance between ``flow`` and ``target`` at each pixel is measured in pixels of an
    image of ``spatial_size = (H, W)``: a normalised difference ``d`` is ``d * (W - 1) / 2``
    pixels along x and ``d * (H - 1) / 2`` along y.

    Args:
        flow, target: ``(B, H, W, 2)`` backward maps in normalised coordinates, x first.
        mask: optional ``(B, H, W)`` (bool or float weights): the mean is taken over the
            masked pixels only (``NaN`` when the mask selects nothing).
        spatial_size: ``(H, W)`` of the image the error is measured in; defaults to the
            maps' own ``(H, W)``.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (the ``(B, H, W)`` per-pixel error;
            ``mask`` is then not applied).

    Returns:
        A scalar tensor, or ``(B, H, W)`` for ``reduction="none"``.
    """
    assert flow.ndim == 4 and flow.shape[-1] == 2, f"flow must be (B, H, W, 2), got {tuple(flow.shape)}"
    assert flow.shape == target.shape, (
        f"flow {tuple(flow.shape)} and target {tuple(target.shape)} must have the same shape"
    )
    assert reduction in ("mean", "none"), f"reduction must be 'mean' or 'none', got {reduction!r}"
    height, width = spatial_size if spatial_size is not None else flow.shape[1:3]
    # (n - 1) / 2 pixels per normalised unit; a size-1 axis has no extent (as in grid.py).
    scale = torch.tensor([max(width - 1, 1) / 2, max(height - 1, 1) / 2], dtype=flow.dtype, device=flow.device)
    error = ((flow - target) * scale).norm(dim=-1)
    if reduction == "none":
        return error
    if mask is None:
        return error.mean()
    assert mask.shape == error.shape, f"mask must be (B, H, W) = {tuple(error.shape)}, got {tuple(mask.shape)}"
    weights = mask.to(error.dtype)
    return (error * weights).sum() / weights.sum()


def resize_flow(flow: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample a backward map to another resolution.

    Bilinear with ``align_corners=True``, so corner pixel centres stay on the corners and an
    affine map (the identity included) is reproduced exactly. The values are normalised
    coordinates and need no rescaling.

    Args:
        flow: ``(B, H, W, 2)``.
        size: ``(h, w)`` of the result.

    Returns:
        ``(B, h, w, 2)``.
    """
    assert flow.ndim == 4 and flow.shape[-1] == 2, f"flow must be (B, H, W, 2), got {tuple(flow.shape)}"
    size = (int(size[0]), int(size[1]))
    if tuple(flow.shape[1:3]) == size:
        return flow
    resized = F.interpolate(flow.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=True)
    return resized.permute(0, 2, 3, 1)


def warp(
    image: torch.Tensor,
    flow: torch.Tensor,
    align_corners: bool = True,
    padding_mode: str = "zeros",
    mode: str = "bilinear",
) -> torch.Tensor:
    """Sample ``image`` at the points of a backward map (:func:`grid_sample`).

    Args:
        image: ``(B, C, H, W)`` source.
        flow: ``(B, h, w, 2)`` backward map into ``image``, normalised, x first.

    Returns:
        ``(B, C, h, w)``.
    """
    assert image.ndim == 4, f"image must be (B, C, H, W), got {tuple(image.shape)}"
    assert flow.ndim == 4 and flow.shape[-1] == 2 and flow.shape[0] == image.shape[0], (
        f"flow must be (B, h, w, 2) with B = {image.shape[0]}, got {tuple(flow.shape)}"
    )
    return F.grid_sample(image, flow.to(image.dtype), mode=mode, padding_mode=padding_mode, align_corners=align_corners)
