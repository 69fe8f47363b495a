"""The search space: one typed configuration and the grid an agent moves on.

A :class:`HyperParams` is what one fine-tuning trial needs. It validates itself, so a
configuration that exists is a configuration that can be trained. The :data:`SPACE` holds,
for every hyperparameter, the grid of values that the environment's ``delta`` and
``single`` actions step along and that ``direct`` actions are decoded onto. Grids are
centred on LexGLUE's fine-tuning recipe (learning rate 3e-5, batch size 8).
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from legal_hpo_env.checks import is_number

__all__ = ["HyperParams", "Dimension", "SearchSpace", "SPACE", "DEFAULT_RECIPE", "HyperParamError"]


class HyperParamError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter: its valid range and the grid agents move on.

    Attributes:
        name: field name in :class:`HyperParams`.
        grid: ordered values an agent steps through (low to high).
        low: smallest valid value (numeric dimensions).
        high: largest valid value (numeric dimensions).
        log: whether the dimension is naturally log-scaled (for normalisation).
        help: one line for error messages and ``legal-hpo tasks``.
    """

    name: str
    grid: tuple[Any, ...]
    low: float | None = None
    high: float | None = None
    log: bool = False
    help: str = ""

    @property
    def categorical(self) -> bool:
        return self.low is None

    def normalise(self, value: Any) -> float:
        """Map a value to [0, 1] (log-scaled where the dimension is)."""
        if self.categorical:
            return self.grid.index(value) / max(1, len(self.grid) - 1)
        lo, hi, v = float(self.grid[0]), float(self.grid[-1]), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        if hi == lo:  # a fixed dimension
            return 0.0
        return min(1.0, max(0.0, (v - lo) / (hi - lo)))

    def nearest_index(self, value: Any) -> int:
        """Index of the grid value closest to ``value`` (in log space where log-scaled)."""
        if self.categorical:
            # a value this (sub-)grid lacks snaps to its first value: categories have no order
            return self.grid.index(value) if value in self.grid else 0
        key = (lambda x: math.log(float(x))) if self.log else float
        target = key(value)
        return min(range(len(self.grid)), key=lambda i: abs(key(self.grid[i]) - target))

    def check(self, value: Any) -> None:
        if self.categorical:
            if value not in self.grid:
                raise HyperParamError(f"{self.name}={value!r} is not valid: choose one of {list(self.grid)}.")
            return
        assert self.low is not None and self.high is not None  # numeric: both bounds set
        if not is_number(value):
            raise HyperParamError(f"{self.name}={value!r} must be a number in [{self.low:g}, {self.high:g}].")
        if not math.isfinite(float(value)) or not (self.low <= value <= self.high):
            raise HyperParamError(
                f"{self.name}={value!r} is out of range: it must lie in [{self.low:g}, {self.high:g}] ({self.help})."
            )


@dataclass(frozen=True)
class HyperParams:
    """One fine-tuning configuration. Defaults are LexGLUE's recipe.

    Attributes:
        learning_rate: peak learning rate of AdamW (linear warmup, then linear decay to 0).
        batch_size: examples per optimisation step.
        weight_decay: AdamW decoupled weight decay (not applied to biases and LayerNorm).
        warmup_ratio: fraction of the steps spent warming the learning rate up from 0.
        epochs: passes over the training set; the dev metric is read after each.
        dropout: dropout probability set on the model config (hidden and attention).
        class_weighting: ``"none"`` (plain cross-entropy) or ``"balanced"`` (weights
            inversely proportional to class frequency, as scikit-learn's ``balanced``).
    """

    learning_rate: float = 3e-5
    batch_size: int = 8
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    epochs: int = 3
    dropout: float = 0.1
    class_weighting: str = "none"

    def __post_init__(self) -> None:
        # Native Python types only, so that configs hash, compare and serialise the same
        # whether they came from numpy, JSON or a user.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _INT_FIELDS:
                value = _as_int(f.name, value)
            elif f.name in _FLOAT_FIELDS:
                value = _as_float(f.name, value)
            elif isinstance(value, str):
                value = str(value)  # numpy.str_ -> str
            object.__setattr__(self, f.name, value)
        for dim in SPACE.dimensions:
            dim.check(getattr(self, dim.name))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HyperParams:
        """Build from a mapping, naming any unknown key and the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HyperParamError(f"unknown hyperparameter(s) {unknown}: valid names are {sorted(known)}.")
        return cls(**values)

    @functools.cached_property
    def values(self) -> tuple[Any, ...]:
        """The values in field order: a cheap, hashable key (computed once per instance)."""
        return tuple(getattr(self, name) for name in _FIELD_NAMES)

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: its deep copy costs more than an env step (values are scalars)
        return dict(zip(_FIELD_NAMES, self.values))

    def replace(self, **changes: Any) -> HyperParams:
        return HyperParams.from_dict({**self.to_dict(), **changes})


_FIELD_NAMES = tuple(f.name for f in fields(HyperParams))
_INT_FIELDS = ("batch_size", "epochs")
_FLOAT_FIELDS = ("learning_rate", "weight_decay", "warmup_ratio", "dropout")


def _valid_range(name: str) -> str:
    dim = SPACE[name]
    return f"[{dim.low:g}, {dim.high:g}]"


def _as_float(name: str, value: Any) -> float:
    if not is_number(value):
        raise HyperParamError(
            f"{name}={value!r} must be a real number in {_valid_range(name)}, not {type(value).__name__}."
        )
    return float(value)


def _as_int(name: str, value: Any) -> int:
    if not is_number(value):
        raise HyperParamError(
            f"{name}={value!r} must be an integer in {_valid_range(name)}, not {type(value).__name__}."
        )
    if isinstance(value, numbers.Integral):
        return int(value)
    if math.isfinite(float(value)) and float(value).is_integer():
        return int(float(value))
    raise HyperParamError(f"{name}={value!r} must be a whole number in {_valid_range(name)}.")


class SearchSpace:
    """The ordered dimensions of :class:`HyperParams` with encode/decode helpers."""

    def __init__(self, dimensions: Sequence[Dimension]) -> None:
        self.dimensions = tuple(dimensions)
        self.names = tuple(d.name for d in self.dimensions)
        # Grid points are validated once, then reused: the env's step path builds one per step.
        self._points: dict[tuple[int, ...], HyperParams] = {}
        self._normalised: dict[tuple[Any, ...], list[float]] = {}

    def __len__(self) -> int:
        return len(self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(f"no hyperparameter {name!r}: valid names are {list(self.names)}")

    def to_indices(self, config: HyperParams) -> tuple[int, ...]:
        """Grid indices of the grid point nearest to ``config``."""
        return tuple(d.nearest_index(getattr(config, d.name)) for d in self.dimensions)

    def from_indices(self, indices: Sequence[int]) -> HyperParams:
        """The configuration at grid indices; indices past an end are clipped to it."""
        point = self._points.get(tuple(indices))  # the step path's case: valid, seen before
        if point is not None:
            return point
        if len(indices) != len(self.dimensions):
            raise ValueError(f"{len(indices)} indices for {len(self.dimensions)} hyperparameters {list(self.names)}.")
        key = tuple(min(max(int(i), 0), len(d.grid) - 1) for d, i in zip(self.dimensions, indices))
        point = self._points.get(key)
        if point is None:
            point = self._points[key] = HyperParams(**{d.name: d.grid[i] for d, i in zip(self.dimensions, key)})
        return point

    def normalise(self, config: HyperParams) -> list[float]:
        """Each hyperparameter mapped to [0, 1], in dimension order."""
        cached = self._normalised.get(config.values)
        if cached is None:
            cached = self._normalised[config.values] = [d.normalise(getattr(config, d.name)) for d in self.dimensions]
        return list(cached)

    def decode_unit(self, unit: Sequence[float]) -> HyperParams:
        """Decode a point of [-1, 1]^k onto the grid (the ``direct`` action mode)."""
        indices = []
        for d, u in zip(self.dimensions, unit, strict=True):
            u = min(1.0, max(-1.0, float(u)))
            indices.append(int(round((u + 1.0) / 2.0 * (len(d.grid) - 1))))
        return self.from_indices(indices)

    def size(self) -> int:
        return math.prod(len(d.grid) for d in self.dimensions)

    def grid_points(self) -> list[HyperParams]:
        """Every configuration of the grid (use on small spaces only)."""
        return [self.from_indices(ix) for ix in itertools.product(*(range(len(d.grid)) for d in self.dimensions))]

    def restricted(self, configs: Sequence[HyperParams]) -> SearchSpace:
        """The sub-grid spanned by ``configs`` (each dimension keeps the values they use)."""
        dims = []
        for d in self.dimensions:
            used = {getattr(c, d.name) for c in configs}
            grid = tuple(v for v in d.grid if v in used) if d.categorical else tuple(sorted(used))
            dims.append(Dimension(d.name, grid, d.low, d.high, d.log, d.help))
        return SearchSpace(dims)


SPACE = SearchSpace(
    [
        Dimension(
            "learning_rate",
            (1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0),
            1e-7,
            1.0,
            log=True,
            help="peak AdamW learning rate, log scale",
        ),
        Dimension("batch_size", (4, 8, 16, 32, 64), 1, 4096, log=True, help="examples per step"),
        Dimension("weight_decay", (0.0, 0.01, 0.1), 0.0, 1.0, help="AdamW weight decay"),
        Dimension("warmup_ratio", (0.0, 0.06, 0.1, 0.2), 0.0, 0.5, help="fraction of steps of linear warmup"),
        Dimension("epochs", (1, 2, 3, 5, 8), 1, 100, help="passes over the training set"),
        Dimension("dropout", (0.0, 0.1, 0.2, 0.3), 0.0, 0.9, help="dropout probability on the model"),
        Dimension("class_weighting", ("none", "balanced"), help="loss weighting of imbalanced classes"),
    ]
)

#: LexGLUE's fine-tuning recipe, the ``default`` baseline.
DEFAULT_RECIPE = HyperParams()
