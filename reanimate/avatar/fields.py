"""IMavatar's three neural fields (Zheng et al. 2022, Sec. 3 and supplement Sec. 2.2, Fig. 7).

- :class:`GeometryField` ``f_sigma_f``: canonical point -> occupancy value and a feature vector.
- :class:`TextureField` ``c_sigma_c``: canonical point, deformed normal, geometry feature and a
  bottleneck of (expression, jaw pose) -> RGB.
- :class:`DeformationField` ``d_sigma_d``: canonical point -> per-point expression blendshapes,
  pose correctives and linear-blend-skinning weights (FLAME-like, plus an optional ghost bone).

Default sizes are those of the paper's released configuration (``IMavatar_supervised.conf``
in the authors' code), which Fig. 7 of the supplement draws.

Occupancy convention (:data:`SURFACE_LEVEL`)
--------------------------------------------
The geometry network's scalar output ``o(x)`` is kept as the authors use it (IDR-style, but
trained as an occupancy field without the Eikonal term, supplement Sec. 2.3):

- the surface is the level set ``o(x) == SURFACE_LEVEL == 0``;
- INSIDE (occupied) is ``o < 0``, OUTSIDE is ``o > 0``; the geometric initialisation makes
  ``o(x) ~ |x| - radius`` (a sphere at the origin, outside positive);
- the occupancy *probability* is ``sigmoid(sharpness * (SURFACE_LEVEL - o))``
  (:func:`occupancy_probability`; the authors' mask loss uses sharpness ``alpha = 50``), so the
  surface is where the probability is 0.5;
- where a deformed point has several canonical correspondences, its occupancy value is the
  minimum over them (the most inside one, supplement Sec. 2.4);
- ``grad o`` points outward, so normals computed from it point outward.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

#: the occupancy value of the surface; inside is below it, outside above (see the module docstring)
SURFACE_LEVEL = 0.0


def occupancy_probability(occupancy: Tensor, sharpness: float) -> Tensor:
    """The probability of being inside, ``sigmoid(sharpness * (SURFACE_LEVEL - occupancy))``
    (0.5 on the surface, -> 1 inside). ``sharpness`` is the mask loss's ``alpha`` (50 in the
    authors' configuration)."""
    return torch.sigmoid(sharpness * (SURFACE_LEVEL - occupancy))


def _tuple(values, name: str) -> tuple[int, ...]:
    if isinstance(values, int) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a list of integers, got {values!r}")
    return tuple(values)


def _check_positive(config, names: tuple[str, ...], allow_zero: tuple[str, ...] = ()) -> None:
    where = type(config).__name__
    for name in names:
        value = getattr(config, name)
        zero_ok = name in allow_zero
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (value == 0 and not zero_ok):
            raise ValueError(f"{where}.{name} must be a number {'>= 0' if zero_ok else '> 0'}, got {value!r}")


def _linear(in_dim: int, out_dim: int, use_weight_norm: bool, init=None) -> nn.Module:
    """A linear layer, initialised by ``init(layer)`` before weight normalisation (so the
    normalised layer computes the same function at initialisation)."""
    layer = nn.Linear(in_dim, out_dim)
    if init is not None:
        with torch.no_grad():
            init(layer)
    return _weight_norm(layer) if use_weight_norm else layer


def _he_normal(layer: nn.Linear, zero_columns: slice | None = None) -> None:
    """Zero bias, weights ~ N(0, 2 / out_dim) (the IDR/SAL geometric initialisation of hidden
    layers); ``zero_columns`` of the weight are set to 0."""
    nn.init.zeros_(layer.bias)
    nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0) / math.sqrt(layer.out_features))
    if zero_columns is not None:
        layer.weight[:, zero_columns] = 0.0


def fibonacci_sphere(num: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(num, 3)`` unit vectors spread evenly over the sphere (a Fibonacci lattice; deterministic)."""
    index = torch.arange(num, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * index / num
    angle = math.pi * (3.0 - math.sqrt(5.0)) * index
    ring = torch.sqrt(1.0 - z * z)
    return torch.stack([ring * torch.cos(angle), ring * torch.sin(angle), z], dim=-1).to(dtype)


class PositionalEncoding(nn.Module):
    """NeRF positional encoding that keeps the input:
    ``x -> [x, sin(x), cos(x), sin(2x), cos(2x), ..., sin(2^(F-1) x), cos(2^(F-1) x)]``
    (no factor pi, as the IMavatar/IDR code). ``(..., D) -> (..., out_dim)``, ``out_dim = D (1 + 2F)``;
    the first ``D`` outputs are the input itself, which the geometric initialisation relies on."""

    def __init__(self, num_frequencies: int, input_dim: int = 3):
        super().__init__()
        if num_frequencies < 0:
            raise ValueError(f"num_frequencies must be >= 0, got {num_frequencies}")
        self.num_frequencies = num_frequencies
        self.input_dim = input_dim
        self.out_dim = input_dim * (1 + 2 * num_frequencies)

    def forward(self, x: Tensor) -> Tensor:
        assert x.shape[-1] == self.input_dim, f"expected (..., {self.input_dim}), got {tuple(x.shape)}"
        if self.num_frequencies == 0:
            return x
        frequencies = 2.0 ** torch.arange(self.num_frequencies, device=x.device, dtype=x.dtype)
        scaled = x.unsqueeze(-2) * frequencies[:, None]  # (..., F, D)
        periodic = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # (..., F, 2, D)
        return torch.cat([x, periodic.flatten(-3)], dim=-1)


@dataclass
class GeometryConfig:
    """The geometry (occupancy) network. Defaults: the authors' ``geometry_network`` section.

    ``skip_layers``: indices ``l`` of the linear layers whose input is the previous activation
    concatenated with the network input (encoded point and condition), divided by sqrt(2);
    layer 0 is the first. ``radius``: the sphere of the geometric initialisation (the
    authors' ``bias``). ``condition_dim``: size of a per-frame latent code concatenated to
    the encoded point (the paper's text mentions a 32-d code; the released configuration
    uses none)."""

    hidden_dims: tuple[int, ...] = (512,) * 8
    skip_layers: tuple[int, ...] = (4,)
    feature_dim: int = 256
    num_frequencies: int = 6
    radius: float = 0.6
    condition_dim: int = 0
    softplus_beta: float = 100.0
    geometric_init: bool = True
    weight_norm: bool = True

    def __post_init__(self):
        self.hidden_dims = _tuple(self.hidden_dims, "GeometryConfig.hidden_dims")
        self.skip_layers = _tuple(self.skip_layers, "GeometryConfig.skip_layers")
        _check_positive(
            self,
            ("feature_dim", "num_frequencies", "radius", "condition_dim", "softplus_beta"),
            allow_zero=("feature_dim", "num_frequencies", "condition_dim"),
        )
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise ValueError(f"GeometryConfig.hidden_dims must be positive widths, got {self.hidden_dims}")
        in_dim = self.input_dim
        for layer in self.skip_layers:
            if not 1 <= layer <= len(self.hidden_dims):
                raise ValueError(
                    f"GeometryConfig.skip_layers: {layer} is not a layer after the first (1..{len(self.hidden_dims)})"
                )
            if self.hidden_dims[layer - 1] <= in_dim:
                raise ValueError(
                    f"GeometryConfig.skip_layers: layer {layer}'s input width {self.hidden_dims[layer - 1]} "
                    f"must exceed the network input's {in_dim} it concatenates"
                )

    @property
    def input_dim(self) -> int:
        """Width of the network input: the encoded point and the condition."""
        return 3 * (1 + 2 * self.num_frequencies) + self.condition_dim


class GeometryField(nn.Module):
    """Canonical points -> (occupancy value, feature): an MLP with Softplus(beta) activations,
    weight normalisation, skip connections and the geometric initialisation of IDR/SAL
    (Atzmon & Lipman 2020) so that at initialisation ``occupancy ~ |x| - radius``: a sphere
    at the origin with the surface at :data:`SURFACE_LEVEL`, inside negative."""

    def __init__(self, config: GeometryConfig | None = None):
        super().__init__()
        self.config = config = config or GeometryConfig()
        self.encoding = PositionalEncoding(config.num_frequencies)
        in_dim = config.input_dim
        widths = [in_dim, *config.hidden_dims, 1 + config.feature_dim]
        num_linear = len(widths) - 1
        layers = []
        for index in range(num_linear):
            out_dim = widths[index + 1]
            if index + 1 in config.skip_layers:
                out_dim -= in_dim  # the next layer concatenates the input to this output
            init = None
            if config.geometric_init:
                init = self._geometric_init(index, num_linear, in_dim)
            layers.append(_linear(widths[index], out_dim, config.weight_norm, init))
        self.layers = nn.ModuleList(layers)
        self.activation = nn.Softplus(beta=config.softplus_beta)
        if config.geometric_init:
            self._centre_on_radius()

    @torch.no_grad()
    def _centre_on_radius(self) -> None:
        """Shift the occupancy bias so that the mean occupancy on the sphere of ``radius`` is 0.
        Softplus(beta=100) is ``relu + log(2) / beta`` near 0 and these offsets add up through
        the layers: with the authors' initialisation alone the paper-size network's surface
        lies at ~0.75 ``radius`` (their ``bias`` 0.6 gives a sphere of ~0.45). This shift is
        our addition, so that ``radius`` is the radius of the initial surface."""
        points = fibonacci_sphere(256, dtype=self.layers[-1].bias.dtype)[None] * self.config.radius
        condition = points.new_zeros(1, self.config.condition_dim) if self.config.condition_dim else None
        occupancy, _ = self(points, condition)
        self.layers[-1].bias[0] -= occupancy.mean()

    def _geometric_init(self, index: int, num_linear: int, in_dim: int):
        radius = self.config.radius
        skip = index in self.config.skip_layers
        if index == num_linear - 1:
            # Last layer: ~ sqrt(pi / width) * (sum of activations) - radius ~ |x| - radius (SAL, Thm. 1).
            def init(layer: nn.Linear) -> None:
                nn.init.normal_(layer.weight, math.sqrt(math.pi) / math.sqrt(layer.in_features), 1e-4)
                nn.init.constant_(layer.bias, -radius)
                if skip:
                    layer.weight[:, layer.in_features - in_dim :] = 0.0

        elif index == 0:
            # Only the raw xyz reaches the first layer at initialisation: encodings and condition start at 0.
            def init(layer: nn.Linear) -> None:
                _he_normal(layer, zero_columns=slice(3, None))

        elif skip:
            # Of the re-injected input, only xyz (its first 3 columns) is seen at initialisation.
            def init(layer: nn.Linear) -> None:
                _he_normal(layer, zero_columns=slice(layer.in_features - in_dim + 3, None))

        else:

            def init(layer: nn.Linear) -> None:
                _he_normal(layer)

        return init

    def forward(self, points: Tensor, condition: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``points (B, N, 3)``, ``condition (B, C)`` (when ``condition_dim`` > 0) ->
        ``(occupancy (B, N), feature (B, N, F))``."""
        assert points.dim() == 3 and points.shape[-1] == 3, f"points must be (B, N, 3), got {tuple(points.shape)}"
        net_input = self.encoding(points)
        if self.config.condition_dim:
            batch, num = points.shape[:2]
            assert condition is not None and condition.shape == (batch, self.config.condition_dim), (
                f"condition must be ({batch}, {self.config.condition_dim}), got "
                f"{None if condition is None else tuple(condition.shape)}"
            )
            net_input = torch.cat([net_input, condition[:, None].expand(batch, num, -1)], dim=-1)
        x = net_input
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            if index in self.config.skip_layers:
                x = torch.cat([x, net_input], dim=-1) / math.sqrt(2.0)
            x = layer(x)
            if index < last:
                x = self.activation(x)
        return x[..., 0], x[..., 1:]

    def gradient(self, points: Tensor, condition: Tensor | None = None, create_graph: bool = False) -> Tensor:
        """``d occupancy / d points``, ``(B, N, 3)`` (outward). With ``create_graph`` the result
        can be differentiated again (e.g. w.r.t. the parameters); works under ``no_grad``."""
        with torch.enable_grad():
            x = points if points.requires_grad else points.detach().requires_grad_(True)
            occupancy, _ = self(x, condition)
            (grad,) = torch.autograd.grad(occupancy.sum(), x, create_graph=create_graph)
        return grad


@dataclass
class TextureConfig:
    """The texture (rendering) network. Defaults: the authors' ``rendering_network`` section.

    Inputs, as the authors': the canonical point (positional encoding with
    ``point_frequencies``), the deformed-space normal (``normal_frequencies``, 0 = raw),
    the geometry feature, and the concatenated (expression (E), jaw pose (3)) through a
    linear bottleneck to ``bottleneck_dim`` (0 = no conditioning at all, as in their code)."""

    hidden_dims: tuple[int, ...] = (512,) * 4
    feature_dim: int = 256
    num_expressions: int = 50
    bottleneck_dim: int = 8
    point_frequencies: int = 4
    normal_frequencies: int = 0
    weight_norm: bool = True

    def __post_init__(self):
        self.hidden_dims = _tuple(self.hidden_dims, "TextureConfig.hidden_dims")
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise ValueError(f"TextureConfig.hidden_dims must be positive widths, got {self.hidden_dims}")
        names = ("feature_dim", "num_expressions", "bottleneck_dim", "point_frequencies", "normal_frequencies")
        _check_positive(self, names, allow_zero=names)

    @property
    def condition_dim(self) -> int:
        """Expression and jaw pose: ``E + 3`` (53 for FLAME's 50 expressions)."""
        return self.num_expressions + 3


class TextureField(nn.Module):
    """``(canonical point, deformed normal, geometry feature, expression, jaw pose) -> RGB in
    [0, 1]``: a ReLU MLP with weight normalisation. The authors end with tanh for images in
    [-1, 1]; here ``(tanh + 1) / 2`` (= sigmoid(2x)) gives the same function for [0, 1] images."""

    def __init__(self, config: TextureConfig | None = None):
        super().__init__()
        self.config = config = config or TextureConfig()
        self.point_encoding = PositionalEncoding(config.point_frequencies)
        self.normal_encoding = PositionalEncoding(config.normal_frequencies)
        self.bottleneck = nn.Linear(config.condition_dim, config.bottleneck_dim) if config.bottleneck_dim else None
        in_dim = self.point_encoding.out_dim + self.normal_encoding.out_dim + config.bottleneck_dim + config.feature_dim
        widths = [in_dim, *config.hidden_dims, 3]
        self.layers = nn.ModuleList(
            _linear(widths[i], widths[i + 1], config.weight_norm) for i in range(len(widths) - 1)
        )

    def forward(self, points: Tensor, normals: Tensor, feature: Tensor, expression: Tensor, jaw_pose: Tensor) -> Tensor:
        """``points (B, N, 3)`` canonical, ``normals (B, N, 3)`` deformed-space unit normals,
        ``feature (B, N, F)``, ``expression (B, E)``, ``jaw_pose (B, 3)`` axis-angle -> ``rgb (B, N, 3)``."""
        batch, num = points.shape[:2]
        config = self.config
        assert normals.shape == points.shape == (batch, num, 3), (
            f"points and normals must be (B, N, 3), got {tuple(points.shape)} and {tuple(normals.shape)}"
        )
        assert feature.shape == (batch, num, config.feature_dim), (
            f"feature must be ({batch}, {num}, {config.feature_dim}), got {tuple(feature.shape)}"
        )
        assert expression.shape == (batch, config.num_expressions) and jaw_pose.shape == (batch, 3), (
            f"expression must be ({batch}, {config.num_expressions}) and jaw_pose ({batch}, 3), "
            f"got {tuple(expression.shape)} and {tuple(jaw_pose.shape)}"
        )
        parts = [self.point_encoding(points), self.normal_encoding(normals)]
        if self.bottleneck is not None:
            code = self.bottleneck(torch.cat([expression, jaw_pose], dim=-1))  # (B, bottleneck)
            parts.append(code[:, None].expand(batch, num, -1))
        x = torch.cat([*parts, feature], dim=-1)
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < last:
                x = torch.relu(x)
        return (torch.tanh(x) + 1.0) / 2.0


@dataclass
class DeformationConfig:
    """The deformation network. Defaults: the authors' ``deformer_network`` section (FLAME:
    5 joints global, neck, jaw, eyes; a ghost bone for the shoulders; 50 expressions; 36 =
    9 x 4 pose-corrective features).

    ``skinning_scale``: the skinning logits are multiplied by it before the softmax (an
    inverse temperature; the authors' 20). ``ghost_bone``: one more weight, column 0, for a
    bone that never moves."""

    hidden_dims: tuple[int, ...] = (128,) * 4
    num_frequencies: int = 0
    num_expressions: int = 50
    num_joints: int = 5
    ghost_bone: bool = True
    num_pose_dirs: int = 36
    skinning_scale: float = 20.0
    softplus_beta: float = 100.0
    weight_norm: bool = True

    def __post_init__(self):
        self.hidden_dims = _tuple(self.hidden_dims, "DeformationConfig.hidden_dims")
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise ValueError(f"DeformationConfig.hidden_dims must be positive widths, got {self.hidden_dims}")
        _check_positive(
            self,
            ("num_frequencies", "num_expressions", "num_joints", "num_pose_dirs", "skinning_scale", "softplus_beta"),
            allow_zero=("num_frequencies", "num_expressions", "num_pose_dirs"),
        )

    @property
    def num_weights(self) -> int:
        """Skinning weights per point: the joints and the ghost bone."""
        return self.num_joints + int(self.ghost_bone)


class DeformationOutput(NamedTuple):
    weights: Tensor  # (B, N, J + ghost), softmax: non-negative, summing to 1; ghost bone first
    expression_dirs: Tensor  # (B, N, 3, E)
    pose_dirs: Tensor  # (B, N, 3, P)


class DeformationField(nn.Module):
    """Canonical points -> :class:`DeformationOutput` (skinning weights, expression blendshapes,
    pose correctives). A Softplus MLP trunk; the blendshape head and the last skinning layer
    start at zero (supplement Sec. 2.2), so at initialisation every offset is exactly 0 and
    every weight exactly ``1 / (J + ghost)``. The skinning head has one more hidden layer of
    the trunk's width."""

    def __init__(self, config: DeformationConfig | None = None):
        super().__init__()
        self.config = config = config or DeformationConfig()
        self.encoding = PositionalEncoding(config.num_frequencies)
        widths = [self.encoding.out_dim, *config.hidden_dims]
        self.trunk = nn.ModuleList(
            _linear(widths[i], widths[i + 1], config.weight_norm, lambda layer: _he_normal(layer, slice(3, None)))
            if i == 0
            else _linear(widths[i], widths[i + 1], config.weight_norm, _he_normal)
            for i in range(len(widths) - 1)
        )
        width = widths[-1]
        num_dirs = 3 * (config.num_expressions + config.num_pose_dirs)
        # Plain (not weight-normalised) zero layers: weight normalisation of a zero weight is undefined.
        self.blendshapes = _linear(width, num_dirs, False, _zero)
        self.skinning_hidden = _linear(width, width, config.weight_norm, _he_normal)
        self.skinning = _linear(width, config.num_weights, False, _zero)
        self.activation = nn.Softplus(beta=config.softplus_beta)

    def forward(self, points: Tensor) -> DeformationOutput:
        """``points (B, N, 3)`` canonical -> weights ``(B, N, J')``, expression_dirs ``(B, N, 3, E)``,
        pose_dirs ``(B, N, 3, P)``."""
        assert points.dim() == 3 and points.shape[-1] == 3, f"points must be (B, N, 3), got {tuple(points.shape)}"
        x = self.encoding(points)
        for layer in self.trunk:
            x = self.activation(layer(x))
        config = self.config
        dirs = self.blendshapes(x).unflatten(-1, (3, config.num_expressions + config.num_pose_dirs))
        logits = self.skinning(self.activation(self.skinning_hidden(x)))
        weights = torch.softmax(config.skinning_scale * logits, dim=-1)
        return DeformationOutput(weights, dirs[..., : config.num_expressions], dirs[..., config.num_expressions :])


def _zero(layer: nn.Linear) -> None:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


#: ``AvatarFieldsConfig.from_dict`` section -> (attribute, config class)
SECTIONS = {
    "geometry": GeometryConfig,
    "texture": TextureConfig,
    "deformation": DeformationConfig,
}


def strict_config(config_class, params: Any, where: str):
    """A config dataclass from a mapping; an unknown key or a wrong type is a one-line ValueError."""
    if not isinstance(params, dict):
        raise ValueError(f"{where} must be a mapping, got {type(params).__name__}")
    names = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(names)})")
    try:
        return config_class(**params)
    except TypeError as exc:  # e.g. a list where a number belongs
        raise ValueError(f"{where}: {exc}") from None


@dataclass
class AvatarFieldsConfig:
    """The three networks' configs. Defaults (:meth:`paper`) are the authors' sizes;
    :meth:`tiny` is a fast preset for tests. The texture network's ``feature_dim`` must be
    the geometry's, and its ``num_expressions`` the deformation's."""

    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    deformation: DeformationConfig = field(default_factory=DeformationConfig)

    def __post_init__(self):
        if self.texture.feature_dim != self.geometry.feature_dim:
            raise ValueError(
                f"texture.feature_dim {self.texture.feature_dim} != geometry.feature_dim {self.geometry.feature_dim}"
            )
        if self.texture.num_expressions != self.deformation.num_expressions:
            raise ValueError(
                f"texture.num_expressions {self.texture.num_expressions} != "
                f"deformation.num_expressions {self.deformation.num_expressions}"
            )

    @classmethod
    def paper(cls) -> AvatarFieldsConfig:
        return cls()

    @classmethod
    def tiny(cls, num_expressions: int = 4, num_joints: int = 5, ghost_bone: bool = True) -> AvatarFieldsConfig:
        """Small widths and few frequencies (fast on a CPU); the rig sizes are options.
        ``num_pose_dirs`` is FLAME's ``9 (J - 1)``."""
        return cls(
            geometry=GeometryConfig(hidden_dims=(32,) * 4, skip_layers=(2,), feature_dim=8, num_frequencies=2),
            texture=TextureConfig(
                hidden_dims=(16, 16),
                feature_dim=8,
                num_expressions=num_expressions,
                bottleneck_dim=4,
                point_frequencies=2,
            ),
            deformation=DeformationConfig(
                hidden_dims=(16, 16),
                num_expressions=num_expressions,
                num_joints=num_joints,
                ghost_bone=ghost_bone,
                num_pose_dirs=9 * (num_joints - 1),
            ),
        )

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> AvatarFieldsConfig:
        """From ``{geometry: {...}, texture: {...}, deformation: {...}}`` (each optional, the
        rest defaults); unknown sections or keys raise a one-line ValueError naming them."""
        if not isinstance(params, dict):
            raise ValueError(f"the fields config must be a mapping, got {type(params).__name__}")
        unknown = sorted(set(params) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
        return cls(**{name: strict_config(SECTIONS[name], params.get(name) or {}, name) for name in SECTIONS})

    def to_dict(self) -> dict[str, Any]:
        """The mapping :meth:`from_dict` reads (lists for tuples, YAML-friendly)."""
        out = {}
        for name in SECTIONS:
            section = dataclasses.asdict(getattr(self, name))
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
        return out
