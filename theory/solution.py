"""The result of ``theory.solve``: infinite-width trajectories as data (DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch

from .problem import Problem


class Status(str, Enum):
    """Outcome of a solve. ``ok`` is True only for EXACT and CONVERGED; every other status comes
    with ``Solution.info["reason"]`` saying why, in words."""

    EXACT = "exact"  # closed form, no iteration (lazy / NTK; linear perturbation theory)
    CONVERGED = "converged"  # fixed point reached: residual below the tolerance AND small
    MAX_ITERATIONS = "max_iterations"  # budget spent before the residual fell below the tolerance
    NOISE_LIMITED = "noise_limited"  # the Monte Carlo noise floor itself is too large to trust
    DIVERGED = "diverged"  # the dynamics blew up (info["diverged_step"]), past the critical gamma0

    @property
    def ok(self) -> bool:
        return self in (Status.EXACT, Status.CONVERGED)


class SolverError(RuntimeError):
    """Raised by ``solve(..., strict=True)`` when the status is not ok."""


@dataclass(frozen=True, eq=False)
class Solution:
    """Infinite-width prediction for a :class:`Problem` (float64 CPU tensors unless asked otherwise).

    T = problem.steps, P = training points, Q = test points, P_all = P + Q, L = problem.depth.

    t:        (T+1,) times ``k * eta``.
    loss:     (T+1,) training MSE ``mean_mu (f~_mu - y_mu)^2``.
    f_train:  (T+1, P) centred outputs on training points.
    f_test:   (T+1, Q) centred outputs on test points, or None without a test set.
    ntk:      (T+1, P_all, P_all) the NTK ``K(t, t)``, train then test points.
    phi:      tuple of L tensors (T+1, P_all, T+1, P_all): ``phi[l] = Phi^{l+1}(t, s)``.
    g:        tuple of L tensors (T+1, P_all, T+1, P_all): ``g[l] = G^{l+1}(t, s)``.
    response_a, response_b: tuples of the response functions the scheme uses (see the solver's
              docstring for their layout), or None where the scheme has none (ntk, gia).
    status, iterations, residual: convergence report (:class:`Status`); ``residual`` is the
              relative change of the kernels the verdict was based on (0 for exact schemes) and
              ``info["tolerance"]`` the bound an iterative CONVERGED solve met. A status that is
              not ok always comes with ``info["reason"]``; DIVERGED with ``info["diverged_step"]``
              (the fields are NaN from that step on).
    scheme:   "dmft", "gia", "ntk" or "perturbative".
    info:     free-form details (samples used, timings, the Monte Carlo standard errors, ...).

    For ``scheme="perturbative"`` the fields are the truncated expansion
    ``q(0) + gamma0^2 q_2`` and ``info["second_order"]`` holds the ``q_2`` coefficients.
    Constant-in-time kernels (ntk scheme) are broadcast views (``expand``), not copies.
    """

    problem: Problem
    scheme: str
    t: torch.Tensor
    loss: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor
    phi: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    status: Status
    iterations: int
    residual: float
    response_a: tuple[torch.Tensor, ...] | None = None
    response_b: tuple[torch.Tensor, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T1 = self.problem.steps + 1
        P, Q, Pa, L = (
            self.problem.n_train,
            self.problem.n_test,
            self.problem.n_points,
            self.problem.depth,
        )
        expect = {
            "t": (T1,),
            "loss": (T1,),
            "f_train": (T1, P),
            "ntk": (T1, Pa, Pa),
        }
        if Q:
            expect["f_test"] = (T1, Q)
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Solution.{name}: expected shape {shape}, got {got}")
        if (self.f_test is None) != (Q == 0):
            raise ValueError("Solution.f_test: must be given exactly when the problem has test points")
        for name in ("phi", "g"):
            seq = getattr(self, name)
            if len(seq) != L:
                raise ValueError(f"Solution.{name}: expected {L} layers, got {len(seq)}")
            for arr in seq:
                if tuple(arr.shape) != (T1, Pa, T1, Pa):
                    raise ValueError(
                        f"Solution.{name}: expected per-layer shape {(T1, Pa, T1, Pa)}, got {tuple(arr.shape)}"
                    )
        object.__setattr__(self, "status", Status(self.status))
        if not self.status.ok and not self.info.get("reason"):
            raise ValueError(f"Solution.info: status {self.status.value!r} needs a 'reason'")

    @property
    def ok(self) -> bool:
        return self.status.ok

    def raise_for_status(self) -> "Solution":
        """Raise :class:`SolverError` unless the status is ok; return self otherwise."""
        if not self.ok:
            raise SolverError(
                f"{self.scheme} solve of {self.problem!r} ended with status {self.status.value!r} "
                f"after {self.iterations} iterations (residual {self.residual:.3g})"
                + (f": {self.info['reason']}" if "reason" in self.info else "")
            )
        return self

    def phi_diag(self, layer: int) -> torch.Tensor:
        """(T+1, P_all, P_all) equal-time kernel ``Phi^{layer+1}(t, t)``."""
        return _equal_time(self.phi[layer])

    def g_diag(self, layer: int) -> torch.Tensor:
        """(T+1, P_all, P_all) equal-time kernel ``G^{layer+1}(t, t)``."""
        return _equal_time(self.g[layer])


def _equal_time(k: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(k, dim1=0, dim2=2).permute(2, 0, 1)
