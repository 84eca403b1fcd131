"""Time-marching of the Monte Carlo DMFT (docs/theory.md section 2: "march in time instead").

Every coupling is causal, so the solution up to step ``k`` does not depend on later times. Near
the edge of stability (a catapult: the loss spikes and recovers) iterating whole trajectories
does not settle: noise at early times is re-drawn every iteration and amplified at later ones.
Marching accepts the solution block by block instead:

1. solve the horizon ``[0, k1]`` (the loop of ``theory.montecarlo.loop``); accept it when CONVERGED;
2. extend to ``[0, k2]``: the accepted times stay fixed (``Setup.frozen``), the new times start
   from the last accepted one, and the loop converges the new block only;
3. a block that fails is retried: at ``BOOST`` x the samples (and response samples) when its
   noise floor was too high (NOISE_LIMITED; adaptive sample count, up to ``MAX_BOOST`` and
   ``MAX_SAMPLE_ELEMENTS``), at half the length otherwise; a one-step block that still fails
   ends the march with that block's status (DIVERGED with its step, NOISE_LIMITED, ...).

Errors accepted in one block are carried, not re-drawn, into the later ones, so the loop's
own noise estimates miss them. The march is therefore run ``replicas`` times with independent
seeds; the solution is their mean and its standard errors include the replicas' spread
(``sd / sqrt(replicas)``), which holds every propagated error.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .. import divergence
from .errors import IterateSpread, observables
from .loop import Core, LoopOptions, run_iterations
from ..problem import Problem
from ..solution import Status

#: Default number of replicas and of blocks of the first try.
REPLICAS = 4
BLOCKS = 10
#: Seed offset between replicas and between blocks (independent draws).
SEED_STRIDE = 7919
#: Sample growth per noise-limited retry, its cap (over the caller's samples), and the cap on
#: samples x (T+1) P_all (one (S, n) field array: 2^24 float64 numbers = 128 MiB).
BOOST = 4
MAX_BOOST = 16
#: Iterations averaged (running mean) before a block is accepted: its noise is carried into
#: every later block, so it pays to lower it further than a whole-trajectory solve does.
AVERAGE = 6
MAX_SAMPLE_ELEMENTS = 2**24


def solve_marching(problem: Problem, *, gamma0: float, scheme: str, options: LoopOptions,
                   replicas: int = REPLICAS, blocks: int = BLOCKS) -> Core:
    """The mean of ``replicas`` independent marches (module docstring); the first one that fails
    is returned instead, with its status and reason."""
    runs = []
    for rep in range(replicas):
        opts = dataclasses.replace(options, seed=options.seed + SEED_STRIDE * (rep + 1) * 1000)
        core = march_once(problem, gamma0=gamma0, scheme=scheme, options=opts, blocks=blocks)
        if not core.status.ok:
            core.info["reason"] = f"time-marching (replica {rep + 1} of {replicas}): {core.info['reason']}"
            return core
        runs.append(core)
    return combine(problem, runs)


def march_once(problem: Problem, *, gamma0: float, scheme: str, options: LoopOptions,
               blocks: int) -> Core:
    """One march over ``problem.steps`` in blocks of ``ceil(steps / blocks)`` steps (halved on a
    failure). Returns the full-horizon core, or the failing block's padded with NaN."""
    steps = problem.steps
    base = max(1, math.ceil(steps / blocks))
    block, done, state, log, core, boost, accepted = base, 0, None, [], None, 1, None
    cap = max(1, min(MAX_BOOST, MAX_SAMPLE_ELEMENTS // (options.samples * (steps + 1) * problem.n_points)))
    while done < steps:
        target = min(steps, done + block)
        opts = dataclasses.replace(options, seed=options.seed + SEED_STRIDE * target,
                                   samples=boost * options.samples,
                                   response_samples=boost * options.response_samples,
                                   average_iterations=max(AVERAGE, options.average_iterations),
                                   warmup=options.warmup if state is None else ())
        core = run_iterations(problem.replace(steps=target), gamma0=gamma0, scheme=scheme,
                              options=opts, init=state, frozen=0 if state is None else done + 1)
        log.append({"steps": (done + 1, target), "status": core.status.value, "samples": opts.samples,
                    "iterations": core.iterations, "residual": core.residual})
        if core.status.ok:
            state, done, accepted = core.state, target, core
            block = min(base, 2 * block)
        elif core.status is Status.NOISE_LIMITED and boost * BOOST <= cap:
            boost *= BOOST
        elif block > 1:
            block = max(1, block // 2)
        else:
            return _failed(problem, core, accepted, done, log)
    core.info["march"] = {"blocks": log}
    return core


def _failed(problem: Problem, core: Core, accepted: Core | None, done: int, log: list) -> Core:
    """The failed block's status and reason with the accepted steps ``0..done`` (from the last
    accepted block; step 0 of the failed one when none was accepted), NaN after them."""
    t1, pa = problem.steps + 1, problem.n_points
    n, keep = t1 * pa, (done + 1) * pa
    src = accepted if accepted is not None else core

    def kern(m):
        out = torch.full((n, n), math.nan, dtype=m.dtype, device=m.device)
        out[:keep, :keep] = m[:keep, :keep]
        return out

    def rows(m):
        out = torch.full((t1, *m.shape[1:]), math.nan, dtype=m.dtype, device=m.device)
        out[: done + 1] = m[: done + 1]
        return out

    core.info["reason"] = f"stopped at step {done + 1} (steps 0..{done} accepted): {core.info['reason']}"
    core.info["march"] = {"blocks": log}
    if core.status is Status.DIVERGED:  # a march diverges with the dynamics, not the iteration
        step = core.info.get("diverged_step", done + 1)
        core.info["diverged_step"] = step
        core.info["reason"] = f"stopped at step {done + 1} (steps 0..{done} accepted): {divergence.reason(step)}"
    return dataclasses.replace(
        core, phi=[kern(m) for m in src.phi], g=[kern(m) for m in src.g],
        a=[kern(m) for m in src.a], b=[kern(m) for m in src.b],
        f=rows(src.f), ntk=rows(src.ntk), state=None)


def combine(problem: Problem, runs: list[Core]) -> Core:
    """Mean of replica cores; standard errors = max(replica spread, mean split-half / sqrt(R))."""
    p, depth, r = problem.n_train, problem.depth, len(runs)
    y = problem.y_train.to(runs[0].f)
    mean = lambda seq: sum(seq) / r  # noqa: E731
    phi = [mean([c.phi[l] for c in runs]) for l in range(depth)]
    g = [mean([c.g[l] for c in runs]) for l in range(depth)]
    spread = IterateSpread()
    for c in runs:
        spread.add(observables(c.phi, c.g, c.f, c.ntk, y, p))
    se = {}
    for key, val in runs[0].info["standard_error"].items():
        if isinstance(val, list):
            se[key] = [max(max(c.info["standard_error"][key][l] for c in runs) / math.sqrt(r),
                           spread.relative_se(f"{key}{l}") or 0.0) for l in range(len(val))]
        else:
            se[key] = max(max(c.info["standard_error"][key] for c in runs) / math.sqrt(r),
                          spread.relative_se(key) or 0.0)
    info = {**runs[0].info, "standard_error": se, "standard_error_window": r,
            "tolerance": max(c.info["tolerance"] for c in runs),
            "march": {"replicas": r, "runs": [c.info["march"] for c in runs]},
            "response_refreshes": sum(c.info["response_refreshes"] for c in runs)}
    return Core(phi=phi, g=g, a=[mean([c.a[l] for c in runs]) for l in range(depth - 1)],
                b=[mean([c.b[l] for c in runs]) for l in range(depth - 1)],
                f=mean([c.f for c in runs]), ntk=mean([c.ntk for c in runs]),
                status=Status.CONVERGED, iterations=sum(c.iterations for c in runs),
                residual=max(c.residual for c in runs), info=info, state=None)
