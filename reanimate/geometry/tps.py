"""Thin-plate-spline (TPS) transforms.

Used by the equivariance losses (FOMM supplementary A.2/B.2): random TPS warps with an
affine part drawn from N(I, sigma_affine^2) and control-point weights from
N(0, sigma_tps^2) on a uniform ``points x points`` control grid.

``T(p) = A p + t + sum_i w_i U(|p - c_i|)`` with the TPS radial basis
``U(r) = r^2 log r``. The official FOMM code measures ``r`` with the L1 norm and uses one
weight per control point for both output coordinates; ``norm="l1"`` with weights of
shape ``(B, N, 1)`` reproduces that exactly, ``norm="l2"`` is the textbook TPS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .grid import coordinate_grid

_LOG_EPS = 1e-6  # keeps log(r) finite at the control points, as in the reference code


@dataclass
class ThinPlateSpline:
    """Parameters of a batch of TPS transforms of 2-D points.

    Attributes:
        affine: ``(B, 2, 3)`` ``[A | t]``.
        control_points: ``(N, 2)`` in [-1, 1].
        weights: ``(B, N, 1)`` (shared by x and y) or ``(B, N, 2)``.
        norm: ``"l1"`` or ``"l2"`` distance in the radial basis.
    """

    affine: torch.Tensor
    control_points: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    norm: str = "l1"

    @classmethod
    def random(
        cls,
        batch: int,
        sigma_affine: float,
        sigma_tps: float | None = None,
        points_tps: int | None = None,
        norm: str = "l1",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> ThinPlateSpline:
        """Sample random transforms as in FOMM B.2."""
        noise = torch.randn(batch, 2, 3, generator=generator, device=device) * sigma_affine
        affine = noise + torch.eye(2, 3, device=device)
        if sigma_tps is None or points_tps is None:
            return cls(affine=affine, norm=norm)
        control = coordinate_grid((points_tps, points_tps), device=device).view(-1, 2)
        weights = torch.randn(batch, points_tps**2, 1, generator=generator, device=device) * sigma_tps
        return cls(affine=affine, control_points=control, weights=weights, norm=norm)

    @classmethod
    def random_similarity(
        cls,
        batch: int,
        rotation: float,
        scale: float,
        translation: float,
        generator: torch.Generator | None = None,
    ) -> ThinPlateSpline:
        """Random similarities ``p -> s R(a) p + t`` with ``a`` uniform in +-``rotation``
        degrees, ``s`` in ``1 +- scale`` and each of ``t`` in +-``translation`` (MMFA's
        augmented copy ``D'`` of Eq. 7)."""
        u = torch.rand(batch, 4, generator=generator) * 2 - 1
        angle = torch.deg2rad(u[:, 0] * rotation)
        s = 1 + u[:, 1] * scale
        cos, sin = s * torch.cos(angle), s * torch.sin(angle)
        affine = torch.stack(
            [torch.stack([cos, -sin, u[:, 2] * translation], -1), torch.stack([sin, cos, u[:, 3] * translation], -1)],
            dim=-2,
        )
        return cls(affine=affine)

    @classmethod
    def identity(cls, batch: int = 1, points_tps: int | None = None) -> ThinPlateSpline:
        return cls.random(batch, 0.0, 0.0 if points_tps else None, points_tps)

    def to(self, device: torch.device | str) -> ThinPlateSpline:
        """A copy with its tensors on ``device``."""

        def move(x):
            return None if x is None else x.to(device)

        return ThinPlateSpline(move(self.affine), move(self.control_points), move(self.weights), self.norm)

    def _distances(self, points: torch.Tensor) -> torch.Tensor:
        diff = points.unsqueeze(-2) - self.control_points.to(points)  # (B, P, N, 2)
        if self.norm == "l1":
            return diff.abs().sum(-1), diff
        if self.norm == "l2":
            return diff.pow(2).sum(-1).sqrt(), diff
        raise ValueError(f"unknown TPS norm {self.norm!r}")

    def warp_points(self, points: torch.Tensor) -> torch.Tensor:
        """Transform points.

        Args:
            points: ``(B, P, 2)`` or ``(1, P, 2)`` (broadcast over the batch).

        Returns:
            ``(B, P, 2)``.
        """
        affine = self.affine.to(points)
        out = torch.einsum("bij,bpj->bpi", affine[:, :, :2], points.expand(affine.shape[0], -1, -1))
        out = out + affine[:, None, :, 2]
        if self.weights is not None:
            r, _ = self._distances(points)
            basis = r**2 * torch.log(r + _LOG_EPS)  # (B, P, N)
            out = out + torch.einsum("bpn,bnc->bpc", basis, self.weights.to(points))
        return out

    def jacobian(self, points: torch.Tensor) -> torch.Tensor:
        """Analytic Jacobian ``dT/dp`` at the points.

        Args:
            points: ``(B, P, 2)`` or ``(1, P, 2)``.

        Returns:
            ``(B, P, 2, 2)`` with ``[..., i, j] = d T_i / d p_j``.
        """
        affine = self.affine.to(points)
        b = affine.shape[0]
        jac = affine[:, None, :, :2].expand(b, points.shape[1], 2, 2)
        if self.weights is None:
            return jac.clone()
        r, diff = self._distances(points)
        # d/dr [r^2 log(r + eps)] = 2 r log(r + eps) + r^2 / (r + eps)
        dbasis_dr = 2 * r * torch.log(r + _LOG_EPS) + r**2 / (r + _LOG_EPS)
        if self.norm == "l1":
            dr_dp = torch.sign(diff)
        else:
            dr_dp = diff / r.clamp(min=1e-12).unsqueeze(-1)
        dbasis_dp = dbasis_dr.unsqueeze(-1) * dr_dp  # (B, P, N, 2)
        weights = self.weights.to(points).expand(b, -1, 2) if self.weights.shape[-1] == 1 else self.weights.to(points)
        return jac + torch.einsum("bnc,bpnj->bpcj", weights, dbasis_dp)

    def warp_grid(self, spatial_size: tuple[int, int], dtype=None, device=None) -> torch.Tensor:
        """Sampling grid ``(B, H, W, 2)`` for :func:`torch.nn.functional.grid_sample`."""
        h, w = spatial_size
        grid = coordinate_grid((h, w), dtype=dtype, device=device).view(1, h * w, 2)
        return self.warp_points(grid).view(-1, h, w, 2)
