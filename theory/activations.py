"""Activation functions as objects with ``phi``, ``dphi`` and ``ddphi`` (docs/theory.md section 1).

Built-ins are looked up by name (:func:`get_activation`); users may pass any object that has
the three callables (and, optionally, a ``name``). Every callable maps a torch tensor to a
tensor of the same shape, elementwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch

Elementwise = Callable[[torch.Tensor], torch.Tensor]


@runtime_checkable
class ActivationLike(Protocol):
    """What a user-supplied activation must provide."""

    def phi(self, h: torch.Tensor) -> torch.Tensor: ...

    def dphi(self, h: torch.Tensor) -> torch.Tensor: ...

    def ddphi(self, h: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity and its first two derivatives.

    ``name`` selects closed-form lazy kernels where they exist (``linear``, ``relu``, ``erf``);
    any other name falls back to quadrature (docs/theory.md section 3).
    """

    name: str
    phi: Elementwise
    dphi: Elementwise
    ddphi: Elementwise

    @property
    def is_linear(self) -> bool:
        return self.name == "linear"

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


_SQRT_PI = math.sqrt(math.pi)


def _tanh_d1(h: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.tanh(h) ** 2


def _tanh_d2(h: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(h)
    return -2.0 * t * (1.0 - t**2)


def _erf_d1(h: torch.Tensor) -> torch.Tensor:
    return (2.0 / _SQRT_PI) * torch.exp(-(h**2))


def _erf_d2(h: torch.Tensor) -> torch.Tensor:
    return (-4.0 / _SQRT_PI) * h * torch.exp(-(h**2))


def _sigmoid_d1(h: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(h)
    return s * (1.0 - s)


def _identity(h: torch.Tensor) -> torch.Tensor:
    return h


def _step(h: torch.Tensor) -> torch.Tensor:
    return (h > 0).to(h.dtype)


# module-level functions (not lambdas) so that problems and results pickle across processes
BUILTIN: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", _identity, torch.ones_like, torch.zeros_like),
        Activation("relu", torch.relu, _step, torch.zeros_like),
        Activation("tanh", torch.tanh, _tanh_d1, _tanh_d2),
        Activation("erf", torch.erf, _erf_d1, _erf_d2),
        Activation("softplus", torch.nn.functional.softplus, torch.sigmoid, _sigmoid_d1),
    )
}


def activation_names() -> list[str]:
    """Names accepted by :func:`get_activation`, sorted."""
    return sorted(BUILTIN)


def get_activation(spec: str | Activation | ActivationLike) -> Activation:
    """Resolve a name or a user object to an :class:`Activation`.

    Raises ``ValueError`` for an unknown name (listing the valid ones) and for an object
    that lacks ``phi``, ``dphi`` or ``ddphi``.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in ("identity", "id"):
            key = "linear"
        if key not in BUILTIN:
            raise ValueError(
                f"activation: unknown name {spec!r}; valid names are {activation_names()} "
                "or an object with phi, dphi and ddphi"
            )
        return BUILTIN[key]
    missing = [m for m in ("phi", "dphi", "ddphi") if not callable(getattr(spec, m, None))]
    if missing:
        raise ValueError(
            f"activation: object {spec!r} lacks callable {missing}; give a name from "
            f"{activation_names()} or an object with phi, dphi and ddphi"
        )
    name = str(getattr(spec, "name", type(spec).__name__))
    if name in BUILTIN:  # a custom object must not borrow a built-in's closed forms
        name = f"custom:{name}"
    return Activation(name, spec.phi, spec.dphi, spec.ddphi)
