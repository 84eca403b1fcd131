"""Alternating Monte Carlo solver of the nonlinear DMFT (docs/theory.md sections 2 and 5).

Loop (section 2, "The alternating Monte Carlo solver"):
1. start from the lazy kernels (constant in time), ``A = B = 0``, ``Delta`` from the lazy NTK;
2. per layer: factor the source covariances once (eigh with clipping), draw ``S`` samples, step
   the fields forward in time for all samples at once, estimate ``Phi``, ``G`` with the lazy
   control variates, and the responses by exact pathwise Jacobians of a subset of samples;
3. march the outputs in time (``theory.montecarlo.outputs``);
4. mix with damping ``beta``; stop when the change is at the Monte Carlo noise floor, then
   average a few more iterations (running mean) to lower the noise (``theory.montecarlo.loop``, which
   also holds the stopping rule and the statuses);
5. if iterating whole trajectories does not converge (``march="auto"``), march in time instead
   (``theory.montecarlo.march``): accept the solution block by block, in independent replicas.

Responses come back in the layout every solver shares (:class:`theory.Solution`): the loop's
flat ``(n, n)`` matrices reshaped to ``(T+1, P_all, T+1, P_all)``.
"""

from __future__ import annotations

from .loop import Core, LoopOptions, run_iterations
from .march import BLOCKS, REPLICAS, solve_marching
from ..problem import Problem
from ..solution import Solution, Status, build_solution

#: ``march="auto"`` marches only up to this many (time, point) pairs ``(T+1) P_all``: a march
#: costs several whole-trajectory solves, hours for the paper's T = 100 on a CPU
#: (``march="always"`` forces it at any size).
AUTO_MARCH_MAX_N = 512
#: The values of the ``march`` option.
MARCH = ("auto", "never", "always")


def solve_mc(problem: Problem, *, gia: bool, options: LoopOptions, march: str = "auto",
             replicas: int = REPLICAS, blocks: int = BLOCKS) -> Solution:
    """Self-consistent DMFT ("dmft", or "gia" with ``A = B = 0``) by alternating Monte Carlo.

    Options arrive validated (``theory.solve`` is the front door; the meaning of each is in its
    option table). march: "auto" iterates whole trajectories and, if that ends without
    converging, marches in time (``theory.montecarlo.march``: block by block, ``replicas``
    independent replicas, the first try in ``blocks`` blocks) when ``(T+1) P_all`` is at most
    ``AUTO_MARCH_MAX_N``; "never" / "always" force one way. Statuses and reasons:
    ``theory.montecarlo.loop``; ``info`` holds ``standard_error`` (``theory.montecarlo.errors``),
    ``tolerance``, ``response_refreshes``, the ``history``, samples and timings, and what a
    march did (``march``, ``whole_trajectory``).
    """
    scheme = "gia" if gia else "dmft"
    core = run_dmft(problem, problem.gamma0, scheme, options, march, replicas, blocks)
    resp = None if gia else core.a
    return build_solution(problem, scheme, f=core.f, ntk=core.ntk, phi=core.phi, g=core.g,
                          status=core.status, iterations=core.iterations, residual=core.residual,
                          info=core.info, response_a=resp, response_b=None if gia else core.b)


def run_dmft(problem: Problem, gamma0: float, scheme: str, options: LoopOptions, march: str,
             replicas: int, blocks: int) -> Core:
    """The loop's answer at coupling ``gamma0``, with the ``march`` policy of :func:`solve_mc`."""
    if march == "always":
        return solve_marching(problem, gamma0=gamma0, scheme=scheme, options=options,
                              replicas=replicas, blocks=blocks)
    core = run_iterations(problem, gamma0=gamma0, scheme=scheme, options=options)
    if march == "never" or core.status.ok:
        return core
    n = (problem.steps + 1) * problem.n_points
    if n > AUTO_MARCH_MAX_N:
        core.info["reason"] = (f"{core.info['reason']}; time-marching not tried at "
                               f"(T+1) P_all = {n} > {AUTO_MARCH_MAX_N} (march='always' forces it)")
        return core
    marched = solve_marching(problem, gamma0=gamma0, scheme=scheme, options=options,
                             replicas=replicas, blocks=blocks)
    if marched.status.ok or marched.status is Status.DIVERGED:
        marched.info["whole_trajectory"] = {"status": core.status.value, "residual": core.residual,
                                            "iterations": core.iterations,
                                            "reason": core.info.get("reason")}
        return marched
    # the march did not get through either: keep the (finite) whole-trajectory answer
    core.info["march"] = {"status": marched.status.value, "reason": marched.info["reason"]}
    core.info["reason"] = f"{core.info['reason']}; time-marching failed too: {marched.info['reason']}"
    return core
