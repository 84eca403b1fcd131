"""Alternating Monte Carlo solver of the nonlinear DMFT (THEORY.md sections 2 and 5).

Loop (section 2, "The alternating Monte Carlo solver"):
1. start from the lazy kernels (constant in time), ``A = B = 0``, ``Delta`` from the lazy NTK;
2. per layer: factor the source covariances once (eigh with clipping), draw ``S`` samples, step
   the fields forward in time for all samples at once, estimate ``Phi``, ``G`` with the lazy
   control variates, and the responses by exact pathwise Jacobians of a subset of samples;
3. march the outputs in time (``theory.mc_outputs``);
4. mix with damping ``beta``; stop when the change is at the Monte Carlo noise floor, then
   average a few more iterations (running mean) to lower the noise (``theory.mc_loop``, which
   also holds the stopping rule and the statuses);
5. if iterating whole trajectories does not converge (``march="auto"``), march in time instead
   (``theory.mc_march``): accept the solution block by block, in independent replicas.

Responses are returned as ``response_a[l-1] = A^l`` and ``response_b[l-1] = B^l`` for
``l = 1 .. L-1``, each of shape ``(T+1, P_all, T+1, P_all)`` indexed ``[k, mu, s, nu]`` =
``d phi(h^l(k,mu)) / d r^l(s,nu)`` (strictly causal, ``s < k``) and
``d g^{l+1}(k,mu) / d u^{l+1}(s,nu)`` (``s <= k``).
"""

from __future__ import annotations

import math

import torch

from .mc_loop import Core, LoopOptions, check_choice, check_int, run_iterations
from .mc_march import BLOCKS, REPLICAS, solve_marching
from .problem import Problem
from .solution import Solution, Status

SCHEMES = ("dmft", "gia", "perturbative")
MARCH = ("auto", "never", "always")
#: Sample schedule: the first iterations use these fractions of ``samples`` and
#: ``response_samples`` (cheap early iterations far from the fixed point); convergence is only
#: declared at full samples.
WARMUP = (0.25, 0.5)
#: Full-sample iterations refresh the response Jacobians every this many iterations (and always
#: on the first one, after a likely-converged iteration, and before convergence is declared).
RESPONSE_EVERY = 2
#: ``march="auto"`` marches only up to this many (time, point) pairs ``(T+1) P_all``: a march
#: costs several whole-trajectory solves, hours for the paper's T = 100 on a CPU
#: (``march="always"`` forces it at any size).
AUTO_MARCH_MAX_N = 512


def solve_mc(
    problem: Problem,
    *,
    scheme: str = "dmft",
    update: str = "exact",
    samples: int = 4000,
    response_samples: int = 64,
    damping: float = 1.0,
    tol: float | None = None,
    max_iterations: int = 30,
    average_iterations: int = 2,
    control_variate: str = "auto",
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    progress: bool = False,
    gauss_seidel: bool = True,
    warmup: tuple[float, ...] = WARMUP,
    perturbative_step: float = 0.1,
    response_every: int = RESPONSE_EVERY,
    response_average: bool = True,
    march: str = "auto",
    march_replicas: int = REPLICAS,
    march_blocks: int = BLOCKS,
) -> Solution:
    """Self-consistent DMFT of ``problem`` by alternating Monte Carlo (THEORY.md section 2).

    scheme: "dmft" (with responses), "gia" (``A = B = 0``), "perturbative" (``q(0) + gamma0^2 q_2``
        with ``q_2`` from common random numbers, see :func:`theory.mc_perturbative.solve_perturbative`).
    update: "exact" (discrete-time gradient descent, default) or "first_order" (gradient flow).
    samples: Monte Carlo samples per layer and iteration (kernels); response_samples: samples
        whose exact pathwise Jacobians give the responses (``<= samples``).
    damping: mixing weight ``beta`` of the new estimate, in (0, 1].
    tol: relative change at which to stop, at most ``theory.mc_loop.RESIDUAL_MAX``; None stops at
        the Monte Carlo noise floor.
    average_iterations: extra iterations averaged (running mean) after convergence.
    control_variate: "linearized" (fields linearised in the sources with the previous
        iteration's mean Jacobians; exact for linear networks), "lazy" (the gamma0 = 0 fields),
        "none"; "auto" is "linearized". See ``theory.mc_control``.
    perturbative_step: the step ``h`` in gamma0 of the symmetric difference of
        ``scheme="perturbative"`` (``theory.mc_perturbative``).
    warmup: fractions of ``samples`` / ``response_samples`` used by the first iterations
        (a growing sample schedule); ``()`` uses full samples throughout.
    response_every: after the warm-up and the first full-sample iteration, the response
        Jacobians (and the linearized control variate) are re-estimated every
        ``response_every`` iterations and reused in between (1: every iteration). They are
        always re-estimated on the iteration after one whose residual was within twice the
        stopping floor, and convergence is only declared on an iteration that re-estimated
        them AND found them unchanged within their own noise (split-half standard error).
    response_average: after the warm-up, consecutive response refreshes that agree with the
        stored responses within their noise are averaged (running mean, reset by any refresh
        that disagrees), so the response noise keeps falling near the fixed point instead of
        staying at the ``response_samples`` level; False replaces them at every refresh.
    march: "auto" (default) iterates whole trajectories and, if that ends without converging,
        marches in time (``theory.mc_march``: block by block, ``march_replicas`` independent
        replicas, the first try in ``march_blocks`` blocks) when ``(T+1) P_all`` is at most
        ``AUTO_MARCH_MAX_N``; "never" / "always" force one way. A march costs several
        whole-trajectory solves (``info["march"]`` says what it did).
    Returns a :class:`theory.Solution` (statuses and reasons: ``theory.mc_loop``); ``info``
    holds ``standard_error`` (relative Frobenius errors of "loss", "f_train", "f_test", "ntk"
    and per layer "phi", "g": ``theory.mc_errors``), ``response_refreshes``, the ``history``,
    samples and timings, and ``diverged_step`` when the status is DIVERGED.
    """
    scheme = check_choice("scheme", scheme, SCHEMES)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected theory.Problem, got {type(problem).__name__}")
    if problem.gamma0 <= 0:
        raise ValueError("gamma0: the Monte Carlo solver needs gamma0 > 0 (use solve() for the lazy limit)")
    opts = LoopOptions(update=update, samples=samples, response_samples=response_samples,
                       damping=damping, tol=tol, max_iterations=max_iterations,
                       average_iterations=average_iterations, control_variate=control_variate,
                       seed=seed, device=device, dtype=dtype, progress=progress,
                       gauss_seidel=gauss_seidel, warmup=warmup, response_every=response_every,
                       response_average=response_average)
    march = check_choice("march", march, MARCH)
    check_int("march_replicas", march_replicas, 1)
    check_int("march_blocks", march_blocks, 1)
    if not (isinstance(perturbative_step, (int, float)) and perturbative_step > 0):
        raise ValueError(f"perturbative_step: must be a positive number, got {perturbative_step!r}")

    def run(gamma0: float, scheme: str, march: str = march) -> Core:
        if march == "always":
            return solve_marching(problem, gamma0=gamma0, scheme=scheme, options=opts,
                                  replicas=march_replicas, blocks=march_blocks)
        core = run_iterations(problem, gamma0=gamma0, scheme=scheme, options=opts)
        if march == "never" or core.status.ok:
            return core
        n = (problem.steps + 1) * problem.n_points
        if n > AUTO_MARCH_MAX_N:
            core.info["reason"] = (f"{core.info['reason']}; time-marching not tried at "
                                   f"(T+1) P_all = {n} > {AUTO_MARCH_MAX_N} (march='always' forces it)")
            return core
        marched = solve_marching(problem, gamma0=gamma0, scheme=scheme, options=opts,
                                 replicas=march_replicas, blocks=march_blocks)
        whole = {"status": core.status.value, "residual": core.residual,
                 "iterations": core.iterations, "reason": core.info.get("reason")}
        if marched.status.ok or marched.status is Status.DIVERGED:
            marched.info["whole_trajectory"] = whole
            return marched
        # the march did not get through either: keep the (finite) whole-trajectory answer
        core.info["march"] = {"status": marched.status.value, "reason": marched.info["reason"]}
        core.info["reason"] = f"{core.info['reason']}; time-marching failed too: {marched.info['reason']}"
        return core

    if scheme == "perturbative":
        from .mc_perturbative import solve_perturbative_mc

        # both runs iterate whole trajectories: common random numbers need the same path
        return solve_perturbative_mc(problem, lambda g0: run(g0, "dmft", "never"),
                                     step=float(perturbative_step), dtype=dtype, device=device)
    return assemble(problem, scheme, run(problem.gamma0, scheme))


def assemble(problem: Problem, scheme: str, core: Core) -> Solution:
    """Build the :class:`Solution` from a :class:`theory.mc_loop.Core`; a DIVERGED solve has NaN
    from ``info["diverged_step"]`` on (kernels: where either time is at or past it)."""
    t1, pa, p = problem.steps + 1, problem.n_points, problem.n_train
    to4 = lambda m: m.reshape(t1, pa, t1, pa)  # noqa: E731
    f, ntk = core.f, core.ntk
    phi, g = [to4(m) for m in core.phi], [to4(m) for m in core.g]
    resp_a = resp_b = None
    if scheme == "dmft":
        resp_a = tuple(to4(a) for a in core.a)
        resp_b = tuple(to4(b) for b in core.b)
    k = core.info.get("diverged_step")
    if core.status is Status.DIVERGED and k is not None:
        f, ntk = f.clone(), ntk.clone()
        f[k:], ntk[k:] = math.nan, math.nan
        phi, g = [_nan_from(m, k) for m in phi], [_nan_from(m, k) for m in g]
    y = problem.y_train.to(f)
    return Solution(
        problem=problem, scheme=scheme, t=problem.times.to(f), loss=((f[:, :p] - y) ** 2).mean(-1),
        f_train=f[:, :p], f_test=f[:, p:] if problem.n_test else None, ntk=ntk,
        phi=tuple(phi), g=tuple(g), status=core.status, iterations=core.iterations,
        residual=core.residual, response_a=resp_a, response_b=resp_b, info=core.info,
    )


def _nan_from(m: torch.Tensor, k: int) -> torch.Tensor:
    """(t1, pa, t1, pa) copy with NaN wherever either time is >= k."""
    m = m.clone()
    m[k:] = math.nan
    m[:, :, k:] = math.nan
    return m
