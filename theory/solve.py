"""The front door of ``theory``: ``solve(problem, scheme=...)``.

Schemes (THEORY.md section 5):
    "dmft"          the self-consistent solution (exact algebra for linear networks,
                    alternating Monte Carlo otherwise);
    "gia"           the same with the response functions set to zero;
    "ntk"           the lazy (gamma0 = 0) kernels with the lazy dynamics;
    "perturbative"  leading-order perturbation theory ``q(0) + gamma0^2 q_2``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import torch

from .lazy import lazy_dynamics, lazy_kernels
from .problem import Problem
from .solution import Solution, Status


class Scheme(str, Enum):
    DMFT = "dmft"
    GIA = "gia"
    NTK = "ntk"
    PERTURBATIVE = "perturbative"


class Update(str, Enum):
    """Output update per time step (THEORY.md section 2)."""

    EXACT = "exact"  # exact infinite-width limit of gradient descent with step eta (default)
    FIRST_ORDER = "first_order"  # Delta(k+1) = Delta(k) - eta/P K(k) Delta(k): gradient flow, Euler


def _enum(cls, value, field: str):
    try:
        return cls(value.value if isinstance(value, Enum) else str(value).lower())
    except ValueError:
        raise ValueError(
            f"{field}: unknown value {value!r}; valid values are {[m.value for m in cls]}"
        ) from None


def solve(
    problem: Problem,
    scheme: str | Scheme = "dmft",
    *,
    update: str | Update = "exact",
    strict: bool = False,
    **options: Any,
) -> Solution:
    """Infinite-width prediction for ``problem`` under ``scheme``.

    ``update`` chooses the output update ("exact" for gradient descent with step eta, the
    default; "first_order" for the gradient-flow/Euler update). Further keyword options go to
    the solver (tolerance, iteration budget, and for nonlinear networks samples, damping, seed,
    device, dtype; see :func:`theory.linear.solve_linear` and :func:`theory.montecarlo.solve_mc`).
    With ``strict=True`` a solve that does not converge or diverges raises
    :class:`theory.SolverError`; otherwise the status is on the solution.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected theory.Problem, got {type(problem).__name__}")
    scheme = _enum(Scheme, scheme, "scheme")
    update = _enum(Update, update, "update")
    if scheme is Scheme.NTK or problem.gamma0 == 0.0:
        sol = solve_ntk(problem, scheme=scheme.value, **_only(options, ("dtype", "device")))
    elif problem.activation.is_linear:
        from .linear import solve_linear

        sol = solve_linear(problem, scheme=scheme.value, update=update.value, **options)
    else:
        from .montecarlo import solve_mc

        sol = solve_mc(problem, scheme=scheme.value, update=update.value, **options)
    if strict:
        sol.raise_for_status()
    return sol


def _only(options: dict, allowed: tuple[str, ...]) -> dict:
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise TypeError(f"solve(scheme='ntk'): unexpected options {extra}")
    return options


def solve_ntk(
    problem: Problem,
    *,
    scheme: str = "ntk",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Solution:
    """Lazy (static NTK) solution: kernels fixed at their initial values (THEORY.md section 3).

    This is also the exact answer of every scheme at ``gamma0 = 0``.
    """
    kx = problem.kx.to(dtype=dtype, device=device)
    lk = lazy_kernels(kx, problem.depth, problem.activation)
    y = problem.y_train.to(dtype=dtype, device=device)
    delta, f = lazy_dynamics(lk.ntk, y, problem.eta, problem.steps)
    return assemble_constant(problem, scheme, lk.phi, lk.g, lk.ntk, f, status=Status.EXACT)


def assemble_constant(problem, scheme, phis, gs, ntk, f, *, status, iterations=0, residual=0.0, **kw):
    """Build a :class:`Solution` whose kernels are constant in time (broadcast views)."""
    T1, P = problem.steps + 1, problem.n_train
    expand4 = lambda k: k[None, :, None, :].expand(T1, k.shape[0], T1, k.shape[1])  # noqa: E731
    f_train = f[:, :P]
    y = problem.y_train.to(f)
    return Solution(
        problem=problem,
        scheme=scheme,
        t=problem.times.to(f),
        loss=((f_train - y) ** 2).mean(-1),
        f_train=f_train,
        f_test=f[:, P:] if problem.n_test else None,
        ntk=ntk[None].expand(T1, *ntk.shape),
        phi=tuple(expand4(k) for k in phis),
        g=tuple(expand4(k) for k in gs),
        status=status,
        iterations=iterations,
        residual=residual,
        **kw,
    )
