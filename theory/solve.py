"""The front door of ``theory``: ``solve(problem, scheme=...)``, the only place that validates
the options and dispatches method x scheme.

Schemes (docs/theory.md section 5):
    "dmft"          the self-consistent solution (exact algebra for linear networks,
                    alternating Monte Carlo otherwise);
    "gia"           the same with the response functions set to zero;
    "ntk"           the lazy (gamma0 = 0) kernels with the lazy dynamics;
    "perturbative"  leading-order perturbation theory ``q(0) + gamma0^2 q_2``.
Methods: "ntk" (the lazy closed form: ``scheme="ntk"`` or ``gamma0 = 0``), "linear" (exact
algebra, ``theory.linear``, for linear networks) and "mc" (Monte Carlo, ``theory.montecarlo``;
``method="montecarlo"`` forces it on a linear network too, as a cross-check).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

import torch

from . import linear, montecarlo
from .lazy import lazy_dynamics, lazy_kernels
from .problem import Problem
from .solution import Solution, Status, build_solution, constant_in_time


class Scheme(str, Enum):
    DMFT = "dmft"
    GIA = "gia"
    NTK = "ntk"
    PERTURBATIVE = "perturbative"


class Update(str, Enum):
    """Output update per time step (docs/theory.md section 2)."""

    EXACT = "exact"  # exact infinite-width limit of gradient descent with step eta (default)
    FIRST_ORDER = "first_order"  # Delta(k+1) = Delta(k) - eta/P K(k) Delta(k): gradient flow, Euler


def _enum(cls, value, field: str):
    try:
        return cls(value.value if isinstance(value, Enum) else str(value).lower())
    except ValueError:
        raise ValueError(
            f"{field}: unknown value {value!r}; valid values are {[m.value for m in cls]}"
        ) from None


# ---------------------------------------------------------------------- option checks
def _int(lo: int) -> Callable:
    def check(name, v):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
        return v
    return check


def _number(lo: float, hi: float = float("inf"), *, open_lo: bool = True) -> Callable:
    def check(name, v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and float(v) <= hi and (
            float(v) > lo if open_lo else float(v) >= lo)
        if not ok:
            left = "(" if open_lo else "["
            raise ValueError(f"{name}: must be a number in {left}{lo:g}, {hi:g}], got {v!r}")
        return float(v)
    return check


def _choice(*values: str) -> Callable:
    def check(name, v):
        s = str(getattr(v, "value", v)).lower()
        if s not in values:
            raise ValueError(f"{name}: unknown value {v!r}; valid values are {list(values)}")
        return s
    return check


def _optional(inner: Callable) -> Callable:
    return lambda name, v: None if v is None else inner(name, v)


def _bool(name, v):
    if not isinstance(v, bool):
        raise ValueError(f"{name}: must be True or False, got {v!r}")
    return v


def _fractions(name, v):
    if not (isinstance(v, (tuple, list)) and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 < w <= 1.0 for w in v)):
        raise ValueError(f"{name}: must be a tuple of fractions in (0, 1], got {v!r}")
    return tuple(float(w) for w in v)


def check_dtype(name, dtype) -> torch.dtype:
    """``dtype`` if it is a supported torch floating dtype, else a ValueError naming the field."""
    if not isinstance(dtype, torch.dtype) or dtype not in DTYPES:
        raise ValueError(f"{name}: must be a torch floating dtype (torch.float64, torch.float32), got {dtype!r}")
    return dtype


def check_device(name, device) -> torch.device:
    """``device`` parsed and available (same wording as ``simulate.train``), else a ValueError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name}: cannot parse {device!r}; use 'cpu' or 'cuda[:i]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}: CUDA was requested but torch.cuda.is_available() is False; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}: {dev.type!r} is not supported; valid values are 'cpu' and 'cuda'")
    return dev


#: Floating dtypes the solvers support.
DTYPES = (torch.float64, torch.float32)


@dataclass(frozen=True)
class Option:
    """One keyword of :func:`solve`: the methods that use it, its default, its check, its meaning."""

    methods: tuple[str, ...]
    default: Any
    check: Callable[[str, Any], Any]
    doc: str


_ALL, _EXACT, _MC = ("ntk", "linear", "mc"), ("linear",), ("mc",)
#: Every keyword option of :func:`solve`. An option of another method is accepted (and checked)
#: but ignored, so one set of options serves a sweep over activations and gamma0; an unknown
#: name is a TypeError listing these.
OPTIONS: dict[str, Option] = {
    "method": Option(_ALL, "auto", _choice("auto", "montecarlo"),
                     "'auto' or 'montecarlo' (the sampler also on a linear network: a cross-check)"),
    "dtype": Option(_ALL, torch.float64, check_dtype, "torch.float64 (default) or torch.float32"),
    "device": Option(_ALL, "cpu", check_device, "'cpu' (default) or 'cuda[:i]'"),
    "tol": Option(("linear", "mc"), None, _optional(_number(0.0)),
                  "residual bound (None: linear 1e-10 in float64, mc the noise floor; mc <= 0.1)"),
    "max_iterations": Option(_MC, 30, _int(1), "iteration budget of the fixed-point loop"),
    "blowup": Option(_EXACT, linear.BLOWUP, _number(1.0), "growth of loss / NTK taken as divergence"),
    "threads": Option(_EXACT, 1, _optional(_int(1)), "torch intra-op threads (None: leave alone)"),
    "samples": Option(_MC, 4000, _int(4), "Monte Carlo samples per layer and iteration"),
    "response_samples": Option(_MC, 64, _int(1), "samples whose pathwise Jacobians give the responses"),
    "damping": Option(_MC, 1.0, _number(0.0, 1.0), "mixing weight of each new estimate, in (0, 1]"),
    "average_iterations": Option(_MC, 2, _int(0), "iterations averaged after convergence"),
    "control_variate": Option(_MC, "auto", _choice("auto", "linearized", "lazy", "none"),
                              "'auto' (= 'linearized'), 'linearized', 'lazy' or 'none'"),
    "seed": Option(_MC, 0, _int(0), "random seed of the sampler"),
    "progress": Option(_MC, False, _bool, "print one line per iteration"),
    "gauss_seidel": Option(_MC, True, _bool, "layer l sees this sweep's estimates of layer l - 1"),
    "warmup": Option(_MC, (0.25, 0.5), _fractions, "fractions of the samples of the first iterations"),
    "perturbative_step": Option(_MC, montecarlo.STEP, _number(0.0),
                                "finite-difference step in gamma0 (scheme 'perturbative')"),
    "response_every": Option(_MC, 2, _int(1), "re-estimate the responses every this many iterations"),
    "response_average": Option(_MC, True, _bool, "running mean over agreeing response refreshes"),
    "march": Option(_MC, "auto", _choice(*montecarlo.MARCH),
                    "'auto' (march in time when whole trajectories fail), 'never', 'always'"),
    "march_replicas": Option(_MC, montecarlo.REPLICAS, _int(1),
                             "independent time-marching replicas (their spread is the error)"),
    "march_blocks": Option(_MC, montecarlo.BLOCKS, _int(1), "blocks of the first time-marching try"),
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

    Keyword options (``theory.solve.OPTIONS``; each is checked, used by the methods in brackets
    and ignored by the others; an unknown keyword is a TypeError listing these):

    {table}
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected theory.Problem, got {type(problem).__name__}")
    scheme = _enum(Scheme, scheme, "scheme")
    update = _enum(Update, update, "update")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"solve: unknown option(s) {unknown}; valid options are {sorted(OPTIONS)}")
    o = {name: opt.default for name, opt in OPTIONS.items()}
    o.update({name: OPTIONS[name].check(name, value) for name, value in options.items()})
    if scheme is Scheme.NTK or problem.gamma0 == 0.0:
        sol = _solve_ntk(problem, scheme.value, o)
    elif problem.activation.is_linear and o["method"] == "auto":
        sol = _solve_linear(problem, scheme, update, o)
    else:
        sol = _solve_mc(problem, scheme, update, o)
    if strict:
        sol.raise_for_status()
    return sol


if solve.__doc__:  # None under python -OO
    solve.__doc__ = solve.__doc__.replace("{table}", "\n    ".join(
        f"{name:<19} [{', '.join(opt.methods)}] {opt.doc}" for name, opt in OPTIONS.items()))


def _solve_ntk(problem: Problem, scheme: str, o: dict) -> Solution:
    """Lazy (static NTK) solution: kernels fixed at their initial values (docs/theory.md section 3).
    This is also the exact answer of every scheme at ``gamma0 = 0``."""
    kw = dict(dtype=o["dtype"], device=o["device"])
    lk = lazy_kernels(problem.kx.to(**kw), problem.depth, problem.activation)
    _, f = lazy_dynamics(lk.ntk, problem.y_train.to(**kw), problem.eta, problem.steps)
    t1 = problem.steps + 1
    return build_solution(problem, scheme, f=f, ntk=lk.ntk[None].expand(t1, *lk.ntk.shape),
                          phi=[constant_in_time(k, t1) for k in lk.phi],
                          g=[constant_in_time(k, t1) for k in lk.g], status=Status.EXACT)


def _solve_linear(problem: Problem, scheme: Scheme, update: Update, o: dict) -> Solution:
    exact = update is Update.EXACT
    if scheme is Scheme.PERTURBATIVE:
        return linear.solve_perturbative(problem, exact_update=exact, dtype=o["dtype"],
                                         device=o["device"])
    return linear.solve_linear(problem, gia=scheme is Scheme.GIA, exact_update=exact, tol=o["tol"],
                               dtype=o["dtype"], device=o["device"], blowup=o["blowup"],
                               threads=o["threads"])


def _solve_mc(problem: Problem, scheme: Scheme, update: Update, o: dict) -> Solution:
    if o["tol"] is not None and o["tol"] > montecarlo.RESIDUAL_MAX:
        raise ValueError(f"tol: the Monte Carlo solver needs tol <= {montecarlo.RESIDUAL_MAX:g} "
                         f"(RESIDUAL_MAX), got {o['tol']!r}")
    opts = montecarlo.LoopOptions(
        update=update.value, samples=o["samples"],
        response_samples=min(o["response_samples"], o["samples"]), damping=o["damping"],
        tol=o["tol"], max_iterations=o["max_iterations"],
        average_iterations=o["average_iterations"],
        control_variate="linearized" if o["control_variate"] == "auto" else o["control_variate"],
        seed=o["seed"], device=o["device"], dtype=o["dtype"], progress=o["progress"],
        gauss_seidel=o["gauss_seidel"], warmup=o["warmup"], response_every=o["response_every"],
        response_average=o["response_average"])
    if scheme is Scheme.PERTURBATIVE:
        return montecarlo.solve_perturbative_mc(problem, options=opts, step=o["perturbative_step"])
    return montecarlo.solve_mc(problem, gia=scheme is Scheme.GIA, options=opts, march=o["march"],
                               replicas=o["march_replicas"], blocks=o["march_blocks"])
