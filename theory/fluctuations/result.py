"""The result of ``theory.fluctuations``: leading-order ``N * Var`` of every observable."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .interface import Problem, Solution, SolverError, Status, check_fields

FIELDS = ("loss", "loss_cov", "f_train", "f_test", "ntk", "phi", "g")


@dataclass(frozen=True)
class Spread:
    """Predicted standard deviations at one width (same fields as :class:`Fluctuations`;
    ``loss_cov`` is the covariance at that width)."""

    width: int
    loss: torch.Tensor
    loss_cov: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor
    phi: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]


@dataclass(frozen=True, eq=False)
class Fluctuations:
    """Leading-order finite-width fluctuations of a :class:`theory.Problem`.

    T = steps, P train points, Q test points, P_all = P + Q, L = depth; every tensor is
    ``N * Var`` over initialisations (float64, CPU):

    loss:     (T+1,)               training MSE at each step
    loss_cov: (T+1, T+1)           ``N * Cov[loss(t), loss(s)]``
    f_train:  (T+1, P)             centred outputs on training points
    f_test:   (T+1, Q) or None     centred outputs on test points
    ntk:      (T+1, P_all, P_all)  every NTK entry ``K(t, t)``
    phi, g:   tuples of L tensors (T+1, P_all, P_all): ``Phi^{l+1}(t, t)``, ``G^{l+1}(t, t)``
    solution: the infinite-width :class:`theory.Solution` it linearised around
    status, iterations, residual: convergence of the linearised solves (``residual`` is the last
              relative change); ``info`` holds the method, sample counts, standard errors of
              sampled estimates (``info["standard_error"]``, same shapes, absolute) and timings.
    """

    problem: Problem
    solution: Solution
    method: str
    loss: torch.Tensor
    loss_cov: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor
    phi: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    status: Status
    iterations: int
    residual: float
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T1, Pa = self.problem.steps + 1, self.problem.n_points
        check_fields(self, {"loss_cov": (T1, T1)}, kernel=(T1, Pa, Pa))
        object.__setattr__(self, "status", Status(self.status))

    @property
    def ok(self) -> bool:
        return self.status.ok

    def raise_for_status(self) -> "Fluctuations":
        if not self.ok:
            raise SolverError(
                f"fluctuations ({self.method}) of {self.problem!r} ended with status "
                f"{self.status.value!r}" + (f": {self.info['reason']}" if "reason" in self.info else ""))
        return self

    def std(self, width: int) -> Spread:
        """Predicted standard deviations at ``width`` (``sqrt(field / width)``)."""
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width: must be an integer >= 1, got {width!r}")
        sd = lambda t: None if t is None else (t.clamp(min=0.0) / width).sqrt()  # noqa: E731
        return Spread(width=width, loss=sd(self.loss), loss_cov=self.loss_cov / width,
                      f_train=sd(self.f_train), f_test=sd(self.f_test), ntk=sd(self.ntk),
                      phi=tuple(sd(t) for t in self.phi), g=tuple(sd(t) for t in self.g))


def nan_result(problem: Problem, solution: Solution, method: str) -> Fluctuations:
    """NaN fields with the solution's status: there is nothing to linearise around."""
    T1, P, Q, Pa, L = problem.steps + 1, problem.n_train, problem.n_test, problem.n_points, problem.depth
    nan = lambda *s: torch.full(s, math.nan, dtype=torch.float64)  # noqa: E731
    return Fluctuations(
        problem=problem, solution=solution, method=method, loss=nan(T1), loss_cov=nan(T1, T1),
        f_train=nan(T1, P), f_test=nan(T1, Q) if Q else None, ntk=nan(T1, Pa, Pa),
        phi=tuple(nan(T1, Pa, Pa) for _ in range(L)), g=tuple(nan(T1, Pa, Pa) for _ in range(L)),
        status=solution.status, iterations=0, residual=math.inf,
        info={"reason": f"the infinite-width solution has status {solution.status.value!r}"})


def assemble(solution: Solution, method: str, var: dict, loss_cov: torch.Tensor, *, status: Status,
             iterations: int, residual: float, info: dict) -> Fluctuations:
    """Build :class:`Fluctuations` from accumulated variances ``var`` (keys loss, f, ntk, phi, g)."""
    pr = solution.problem
    P, L = pr.n_train, pr.depth
    f = var["f"]
    return Fluctuations(
        problem=pr, solution=solution, method=method, loss=var["loss"], loss_cov=loss_cov,
        f_train=f[:, :P], f_test=f[:, P:] if pr.n_test else None, ntk=var["ntk"],
        phi=tuple(var["phi"][l] for l in range(L)), g=tuple(var["g"][l] for l in range(L)),
        status=status, iterations=iterations, residual=residual, info=info)
