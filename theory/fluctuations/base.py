"""The front door ``fluctuations(problem, method=...)`` (``docs/finite_width.md``).

Every field is ``N * Var`` (or ``N * Cov``) over random initialisations of a width-``N`` network,
to leading order in ``1/N``: the standard deviation at width ``N`` is ``sqrt(field / N)``
(:meth:`Fluctuations.std`). Methods:

    "lazy"        gamma0 -> 0: static random kernels, closed forms (``theory.fluctuations.lazy``)
    "linear"      exact for deep linear networks (``theory.fluctuations.linear``)
    "montecarlo"  nonlinear networks, sampled sites (``theory.fluctuations.montecarlo``)
    "auto"        lazy at gamma0 = 0, linear for linear networks, montecarlo otherwise
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

import torch

from .interface import Problem, Solution, solve
from .result import Fluctuations, nan_result


#: Default relative tolerances of the linearised solve. The Monte Carlo estimate carries sampling
#: errors of a few per cent; at 1e-3 the tangents are within ~5e-4 of a 1e-9 solve (measured,
#: deep tanh), two sweeps fewer than 1e-4. The linear method's sweeps go to 1e-8; its one-pass
#: march is checked by a sweep of the closed-form map on random combinations of the solutions
#: (measured change 3e-5 to 2e-4 at L = 2, 3, T = 8, 16; the variances agree with the sweeps'
#: to 6e-5 at T = 8 and 9e-4 at T = 16, a limit set by the near-singular kernels of linear
#: networks, whose smallest eigenvalues both solvers cut at 1e-10), and polished by sweeps
#: where that change passes 1e-3.
TOL_EXACT, TOL_MC, TOL_MARCH = 1e-8, 1e-3, 1e-3


class Method(str, Enum):
    AUTO = "auto"
    LAZY = "lazy"
    LINEAR = "linear"
    MONTECARLO = "montecarlo"


def _method(value) -> Method:
    try:
        return Method(value.value if isinstance(value, Enum) else str(value).lower())
    except ValueError:
        raise ValueError(f"method: unknown value {value!r}; valid values are {[m.value for m in Method]}") from None


def resolve_method(problem: Problem, method: str | Method = "auto") -> Method:
    """The method ``fluctuations(problem, method)`` runs: "auto" is lazy at ``gamma0 = 0``,
    linear for a linear activation, Monte Carlo otherwise; other values are checked and kept."""
    method = _method(method)
    if method is not Method.AUTO:
        return method
    return (Method.LAZY if problem.gamma0 == 0.0 else
            Method.LINEAR if problem.activation.is_linear else Method.MONTECARLO)


def default_iterations(problem: Problem) -> int:
    """Default sweep budget of the linearised solve: the tangents propagate about one time step
    per sweep, so long trajectories need more (measured: deep linear L = 3 needs 65 sweeps to
    1e-10 at T = 16, where a fixed budget of 60 ended in MAX_ITERATIONS at a change of 9e-7)."""
    return max(60, 6 * (problem.steps + 1))


#: Largest number of entries of one tangent block (chunk, n, n) (256 MiB in double precision):
#: caps ``chunk`` on long trajectories with many points.
STATE_ELEMENTS = 1 << 25
#: ``precision`` values: the dtype of the Monte Carlo population products.
PRECISIONS = {"single": torch.float32, "double": torch.float64}


def _check_int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name}: must be an integer >= {lo}, got {value!r}")
    return value


def fluctuations(
    problem: Problem,
    method: str | Method = "auto",
    *,
    update: str = "exact",
    solution: Solution | None = None,
    samples: int | None = None,
    population: int = 1000,
    tol: float | None = None,
    max_iterations: int | None = None,
    chunk: int = 256,
    seed: int = 0,
    refine: int | None = None,
    coarse_population: int | None = None,
    march: bool | None = None,
    precision: str | None = None,
    strict: bool = False,
    progress: bool = False,
    **solve_options: Any,
) -> Fluctuations:
    """Leading-order ``N * Var`` of every observable of ``problem`` (see the module docstring).

    update: "exact" (gradient descent with step eta, default) or "first_order"; must match the
        solution's. solution: the infinite-width solution to linearise around (default:
        ``theory.solve(problem, update=update, **solve_options)``; the NTK scheme for "lazy").
    samples: sampled single sites per layer for the noise (Monte Carlo default 2000 / L, 1000 at
        L = 2: the standard errors depend on the total over the layers; the linear
        method uses its exact Wick basis unless given). population: Monte Carlo sites per layer
        that estimate the linearised map (default 1000). refine, coarse_population (Monte Carlo
        only): the two-level estimate of the sampled noise (``docs/finite_width.md`` section 9)
        solves every sampled site with a control level of ``coarse_population`` sites (default
        144 or twice the normals per site, up to ``4 n``, n = (T+1) P_all), solved like the full
        model (two fixed sweeps for the first-order update), and the first ``refine`` per layer
        (default 32) with the full model; ``refine >= samples`` solves every site fully. march
        (Monte Carlo and linear): solve the linearised map in one pass over time
        (``docs/finite_width.md`` sections 5 and 9); None (default) where possible (the exact
        update), False iterates sweeps to ``tol`` (the same models, so both agree to the
        tolerance). The linear method's march runs over exact quadrature sites and is checked
        by a sweep of its closed-form map; a chunk whose check fails ``tol`` is polished by sweeps. precision (Monte Carlo only): the arithmetic of the population-sized
        products, "single" (the default for the exact update: 1.3-1.7x faster; the variances move
        by under 1e-3 relative, far below their sampling error) or "double" (the default for the
        first-order update, whose sweeps with the symmetric-root factor stall above ``tol`` in
        single precision at depth 3); kernels, factors, responses and the accumulated tangents
        stay in the solution's precision.
        tol, max_iterations: the linearised solve's relative tolerance (default 1e-3 for Monte
        Carlo, far below its sampling error, and for the linear march's check; 1e-8 for the linear
        sweeps) and iteration budget (default
        ``max(60, 6 (T+1))``), for the solves by sweeps. chunk:
        noise directions solved together (default 256; the Monte Carlo levels take at most 64
        full and 128 control directions at a time, and every chunk is capped so that one
        tangent block holds at most 2^25 entries). seed: random numbers of the sampled parts. With
        ``strict=True`` a result whose status is not ok raises :class:`theory.SolverError`.
        ``progress=True`` prints one line per solved chunk of directions (and the Monte Carlo
        solve's own lines when the solution is computed here).
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected theory.Problem, got {type(problem).__name__}")
    method = resolve_method(problem, method)
    if update not in ("exact", "first_order"):
        raise ValueError(f"update: unknown value {update!r}; valid values are ['exact', 'first_order']")
    if samples is not None:
        _check_int("samples", samples, 2)
    _check_int("population", population, 4)
    if max_iterations is None:
        max_iterations = default_iterations(problem)
    _check_int("max_iterations", max_iterations, 1)
    _check_int("chunk", chunk, 1)
    _check_int("seed", seed, 0)
    if refine is not None:
        _check_int("refine", refine, 2)
    if coarse_population is not None:
        _check_int("coarse_population", coarse_population, 4)
    if march not in (None, True, False):
        raise ValueError(f"march: must be None, True or False, got {march!r}")
    if precision is None:
        precision = "single" if update == "exact" else "double"
    if precision not in PRECISIONS:
        raise ValueError(f"precision: unknown value {precision!r}; valid values are {sorted(PRECISIONS)}")
    if march and update != "exact":
        raise ValueError("march: the one-pass solve needs update='exact'")
    if not isinstance(progress, bool):
        raise ValueError(f"progress: must be True or False, got {progress!r}")
    if tol is not None and not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol > 0):
        raise ValueError(f"tol: must be None or a positive number, got {tol!r}")
    if method is Method.LINEAR and not problem.activation.is_linear:
        raise ValueError(f"method: 'linear' needs activation 'linear', got {problem.activation.name!r}")
    if method is not Method.LAZY and problem.gamma0 == 0.0:
        raise ValueError("method: gamma0 = 0 has static kernels; use method='lazy' (or 'auto')")
    t0 = time.perf_counter()
    if solution is None:
        scheme = "ntk" if method is Method.LAZY else "dmft"
        if progress and method is Method.MONTECARLO:
            solve_options.setdefault("progress", True)
        solution = solve(problem, scheme, **({} if method is Method.LAZY else {"update": update}), **solve_options)
    elif not isinstance(solution, Solution) or solution.problem is not problem and \
            solution.problem.fingerprint() != problem.fingerprint():
        raise ValueError("solution: must be a theory.Solution of this problem")
    if not solution.ok:
        fl = nan_result(problem, solution, method.value)
        return fl.raise_for_status() if strict else fl
    march = update == "exact" if march is None else march
    if tol is None:
        tol = TOL_MC if method is Method.MONTECARLO else TOL_MARCH if method is Method.LINEAR and march else TOL_EXACT
    n = (problem.steps + 1) * problem.n_points  # a tangent block is (chunk, n, n)
    opts = dict(update=update, samples=samples, population=population, tol=float(tol),
                max_iterations=max_iterations, chunk=max(1, min(chunk, STATE_ELEMENTS // n**2)), seed=seed)
    if method is Method.MONTECARLO:
        opts.update(refine=refine, coarse_population=coarse_population, march=march, work=PRECISIONS[precision])
    if method is Method.LINEAR:
        opts.update(march=march)
    if method is not Method.LAZY:  # the lazy closed forms are immediate
        opts["progress"] = progress
    if method is Method.LAZY:
        from .lazy import lazy_fluctuations as run
    elif method is Method.LINEAR:
        from .linear import linear_fluctuations as run
    else:
        from .montecarlo import mc_fluctuations as run
    fl = run(solution, **opts)
    fl.info.setdefault("timings", {})["total"] = time.perf_counter() - t0
    if strict:
        fl.raise_for_status()
    return fl


