"""Declarative problem specifications: the data a suite or a claim file names.

A :class:`ProblemSpec` is plain data (numbers and strings) that builds a ``theory.Problem``;
it is what suites, claim files and the ``dmft solve/simulate`` commands share.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import KW_ONLY, dataclass
from typing import Any

from theory import Problem
from theory.data import gaussian_data


class SpecFields:
    """``from_dict`` and ``replace`` shared by the frozen problem specs of claims and suites."""

    _unknown_field = "unknown problem field"

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        names = cls.field_names()
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{unknown[0]}: {cls._unknown_field}; valid fields are {sorted(names)}")
        return cls(**d)

    @classmethod
    def field_names(cls) -> set[str]:
        """The names of the spec's fields (the keys ``from_dict`` accepts)."""
        return {f.name for f in dataclasses.fields(cls) if f.name != "_"}

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

DATASETS = ("gaussian",)  # image data sets are for CNNs: validate.cnn_spec.CNNSpec
MODELS = ("mlp",)  # model "cnn" is validate.cnn_spec.CNNSpec
TARGETS = ("linear", "sign")


@dataclass(frozen=True)
class ProblemSpec(SpecFields):
    """Data, architecture and schedule of one experiment (docs/theory.md section 1).

    data: "gaussian" (embedded synthetic inputs x ~ N(0, I_D), docs/theory.md section 7);
    n_train P, n_test Q, input_dim D, data_seed, target ("linear" or "sign");
    model "mlp"; depth L; activation name; gamma0; eta; steps T.
    """

    _: KW_ONLY
    data: str = "gaussian"
    n_train: int = 10
    n_test: int = 0
    input_dim: int = 20
    data_seed: int = 0
    target: str = "linear"
    model: str = "mlp"
    depth: int = 2
    activation: str = "linear"
    gamma0: float = 1.0
    eta: float = 0.1
    steps: int = 20

    def __post_init__(self) -> None:
        if self.data not in DATASETS:
            raise ValueError(f"data: unknown value {self.data!r}; valid values are {list(DATASETS)}")
        if self.model not in MODELS:
            raise ValueError(f"model: unknown value {self.model!r}; valid values are {list(MODELS) + ['cnn']} "
                             "('cnn' takes the fields of validate.cnn_spec.CNNSpec)")
        if self.target not in TARGETS:
            raise ValueError(f"target: unknown value {self.target!r}; valid values are {list(TARGETS)}")
        if not isinstance(self.activation, str) or not self.activation:
            raise ValueError(f"activation: must be an activation name (a string), got {self.activation!r}")
        for name in ("n_train", "input_dim", "depth", "steps", "data_seed"):
            v = getattr(self, name)
            lo = 0 if name == "data_seed" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
        if isinstance(self.n_test, bool) or not isinstance(self.n_test, int) or self.n_test < 0:
            raise ValueError(f"n_test: must be an integer >= 0, got {self.n_test!r}")
        for name in ("gamma0", "eta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))

    def build(self) -> Problem:
        """The ``theory.Problem`` (validated there too: eta stability, activation name, ...)."""
        x, y, xt, yt = gaussian_data(
            self.n_train, self.input_dim, self.n_test, seed=self.data_seed, target=self.target
        )
        return Problem(x, y, xt, yt, depth=self.depth, activation=self.activation,
                       gamma0=self.gamma0, eta=self.eta, steps=self.steps)

    def label(self) -> str:
        return (f"{self.activation} L={self.depth} P={self.n_train} D={self.input_dim} "
                f"gamma0={self.gamma0:g} eta={self.eta:g} T={self.steps}")
