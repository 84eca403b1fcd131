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


#: Every keyword option of :func:`solve`: name -> (methods that use it, meaning). The method is
#: "ntk" (closed-form lazy solution: ``scheme="ntk"`` or ``gamma0 = 0``), "linear" (the exact
#: solver of linear networks, ``theory.linear``) or "mc" (the Monte Carlo solver of nonlinear
#: networks, ``theory.montecarlo``). An option of another method is accepted and ignored (so one
#: set of options serves a sweep over activations and gamma0); an unknown name is a TypeError.
OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "dtype": (("ntk", "linear", "mc"), "torch.float64 (default) or torch.float32"),
    "device": (("ntk", "linear", "mc"), "'cpu' (default) or 'cuda[:i]'"),
    "tol": (("linear", "mc"), "stopping tolerance on the residual (None: the method's default)"),
    "max_iterations": (("linear", "mc"), "iteration budget (linear: sweeps per time step)"),
    "blowup": (("linear",), "growth of loss / NTK over their start taken as divergence"),
    "threads": (("linear",), "torch intra-op threads during the solve (None: leave alone)"),
    "samples": (("mc",), "Monte Carlo samples per layer and iteration (default 4000)"),
    "response_samples": (("mc",), "samples whose pathwise Jacobians give the responses"),
    "damping": (("mc",), "mixing weight of each new estimate, in (0, 1]"),
    "average_iterations": (("mc",), "iterations averaged after convergence"),
    "control_variate": (("mc",), "'auto', 'linearized', 'lazy' or 'none'"),
    "seed": (("mc",), "random seed of the sampler"),
    "progress": (("mc",), "print one line per iteration"),
    "gauss_seidel": (("mc",), "layer l sees this sweep's estimates of layer l - 1"),
    "warmup": (("mc",), "fractions of the samples used by the first iterations"),
    "perturbative_step": (("mc",), "finite-difference step in gamma0 (scheme 'perturbative')"),
    "response_every": (("mc",), "re-estimate the responses every this many iterations"),
    "response_average": (("mc",), "running mean over agreeing response refreshes"),
    "march": (("mc",), "'auto' (march in time when whole trajectories fail), 'never', 'always'"),
    "march_replicas": (("mc",), "independent time-marching replicas (their spread is the error)"),
    "march_blocks": (("mc",), "blocks of the first time-marching try"),
}


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
    default; "first_order" for the gradient-flow/Euler update). With ``strict=True`` a solve
    whose status is not ok (see :class:`theory.Status`) raises :class:`theory.SolverError`;
    otherwise the status and ``info["reason"]`` are on the solution.

    Keyword options (``theory.solve.OPTIONS``; each is used by the methods in brackets and
    ignored by the others; an unknown keyword is a TypeError listing these):

    {table}
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected theory.Problem, got {type(problem).__name__}")
    scheme = _enum(Scheme, scheme, "scheme")
    update = _enum(Update, update, "update")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"solve: unknown option(s) {unknown}; valid options are {sorted(OPTIONS)}")
    if "dtype" in options:
        options["dtype"] = check_dtype(options["dtype"])
    if "device" in options:
        options["device"] = check_device(options["device"])
    if scheme is Scheme.NTK or problem.gamma0 == 0.0:
        sol = solve_ntk(problem, scheme=scheme.value, **_for("ntk", options))
    elif problem.activation.is_linear:
        from .linear import solve_linear

        sol = solve_linear(problem, scheme=scheme.value, update=update.value, **_for("linear", options))
    else:
        from .montecarlo import solve_mc

        sol = solve_mc(problem, scheme=scheme.value, update=update.value, **_for("mc", options))
    if strict:
        sol.raise_for_status()
    return sol


if solve.__doc__:  # None under python -OO
    solve.__doc__ = solve.__doc__.replace("{table}", "\n    ".join(
        f"{name:<19} [{', '.join(methods)}] {text}" for name, (methods, text) in OPTIONS.items()))


def _for(method: str, options: dict) -> dict:
    """The options that ``method`` uses (the others are ignored by design)."""
    return {k: v for k, v in options.items() if method in OPTIONS[k][0]}


#: Floating dtypes the solvers support.
DTYPES = (torch.float64, torch.float32)


def check_dtype(dtype) -> torch.dtype:
    """``dtype`` if it is a supported torch floating dtype, else a ValueError naming the field."""
    if not isinstance(dtype, torch.dtype) or dtype not in DTYPES:
        raise ValueError(f"dtype: must be a torch floating dtype (torch.float64, torch.float32), got {dtype!r}")
    return dtype


def check_device(device) -> torch.device:
    """``device`` parsed and available (same wording as ``simulate.train``), else a ValueError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: cannot parse {device!r}; use 'cpu' or 'cuda[:i]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but torch.cuda.is_available() is False; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: {dev.type!r} is not supported; valid values are 'cpu' and 'cuda'")
    return dev


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
