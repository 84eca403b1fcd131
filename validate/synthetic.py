"""Synthetic "networks" with known finite-width behaviour, for testing the statistics.

``synthetic_networks(solution, width, seeds)`` returns a Trajectories-like object whose every
field is the theory's value plus a known ``O(1/N)`` bias and ``O(N^{-1/2})`` seed noise
(docs/theory.md section 6):

    X_{N,s} = X_theory * (1 + bias / N + noise / sqrt(N) * (a_s + e_s) / sqrt(2))

with ``a_s`` one standard normal per seed (a common mode) and ``e_s`` independent per element
(multiplicative, so exact zeros such as the centred outputs at t = 0 stay exact).
So the truth is known: the ensemble mean converges to the theory, per-seed errors shrink like
``N^{-1/2}``, and every entry has ``N Var = (noise X_theory)^2`` to leading order, which
:func:`synthetic_predictor` returns as a ``theory.fluctuations`` stand-in. Used by the tests and
by ``benchmarks/bench_fluctuation_checks.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SyntheticTrajectories:
    """Fields as ``simulate.Trajectories``: a leading seed axis on every array but ``t``."""

    problem: Any
    width: int
    t: torch.Tensor
    loss: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor
    phi: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    diverged: torch.Tensor
    diverged_step: torch.Tensor


def synthetic_networks(
    solution: Any,
    width: int,
    seeds: int,
    *,
    noise: float = 1.0,
    bias: float = 1.0,
    seed: int = 0,
) -> SyntheticTrajectories:
    """Fake width-``width`` networks around ``solution`` (a theory.Solution); see module doc."""
    if width < 1 or seeds < 1:
        raise ValueError("synthetic_networks: width and seeds must be >= 1")
    gen = torch.Generator().manual_seed(hash((seed, width)) % (2**63))

    def fake(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        x = x.to(torch.float64)
        common = torch.randn((seeds,) + (1,) * x.ndim, generator=gen, dtype=torch.float64)
        indep = torch.randn((seeds,) + tuple(x.shape), generator=gen, dtype=torch.float64)
        return x * (1 + bias / width + noise / width**0.5 * (common + indep) / 2**0.5)

    sol = solution
    return SyntheticTrajectories(
        problem=sol.problem,
        width=width,
        t=sol.t.clone(),
        loss=fake(sol.loss),
        f_train=fake(sol.f_train),
        f_test=fake(sol.f_test),
        ntk=fake(sol.ntk),
        phi=tuple(fake(p) for p in sol.phi),
        g=tuple(fake(p) for p in sol.g),
        diverged=torch.zeros(seeds, dtype=torch.bool),
        diverged_step=torch.full((seeds,), -1, dtype=torch.long),
    )


def synthetic_trainer(reference_solver, *, noise: float = 1.0, bias: float = 1.0):
    """A ``trainer(problem, width, seeds=, seed=, device=)`` that fakes networks around
    ``reference_solver(problem)`` (what the "true" infinite-width limit is, by construction)."""

    def train(problem, width, seeds=4, *, seed=0, device="cpu", **_):
        return synthetic_networks(reference_solver(problem), width, seeds, noise=noise, bias=bias, seed=seed)

    train.__name__ = "synthetic_trainer"
    return train


@dataclass(frozen=True)
class SyntheticFluctuations:
    """The fields of ``theory.Fluctuations`` that ``validate`` reads (``N Var`` per entry)."""

    method: str
    status: Any
    loss: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor
    phi: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    info: dict


def synthetic_predictor(*, noise: float = 1.0, scale: float = 1.0):
    """A ``predictor(problem, method, solution=..., **options)`` (``validate.Context.predictor``)
    giving the exact leading-order ``N Var`` of :func:`synthetic_networks` around ``solution``,
    ``(noise X)^2`` per entry, times ``scale`` (1: the truth; otherwise a planted fault)."""

    def predict(problem, method="auto", *, solution, **_):
        from theory import Status

        sq = lambda x: None if x is None else scale * noise**2 * x.to(torch.float64) ** 2  # noqa: E731
        L = solution.problem.depth
        return SyntheticFluctuations(
            method="synthetic", status=Status.EXACT, loss=sq(solution.loss), f_train=sq(solution.f_train),
            f_test=sq(solution.f_test), ntk=sq(solution.ntk), phi=tuple(sq(solution.phi_diag(l)) for l in range(L)),
            g=tuple(sq(solution.g_diag(l)) for l in range(L)), info={})

    predict.__name__ = "synthetic_predictor"
    return predict
