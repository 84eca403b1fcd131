"""The shared engine: propagate single-site noise through the linearised DMFT and accumulate.

``docs/finite_width.md`` section 2. The order parameters ``q`` of a width-``N`` network obey
``q = F(q) + xi / sqrt(N)`` to first order, where ``F`` is the DMFT map (single-site averages as a
function of the kernels, responses and outputs that drive the sites) and ``xi`` the sampling
noise of ``N`` i.i.d. sites. Hence ``N Cov(q) = (I - D)^{-1} kappa (I - D)^{-T}`` with
``D = dF/dq`` and ``kappa`` the single-site covariance of the integrands.

A method supplies a :class:`Model`: noise *directions* ``xi_j`` with weights ``w_j`` such that
``kappa = sum_j w_j xi_j xi_j^T`` (an exact basis) or fresh single-site draws (a sample, centred
per layer), the matrix-free ``D``, and the observables as linear functions of a tangent. This
module solves ``(I - D) t_j = xi_j`` for a chunk of directions at once and accumulates
``N Cov(o) = sum_j w_j o(t_j) o(t_j)^T`` (``theory.fluctuations.estimate``); sampled directions may
go through a chain of :class:`Level` s, cheap ones on every direction and the full model on a few
(the multilevel estimate, ``docs/finite_width.md`` section 9).

The solve iterates the whole-trajectory map (``t <- D t + xi``, layer by layer upwards with each
layer's new tangent used at once: Gauss-Seidel) except for the outputs, which are
marched in time with the NTK as preconditioner (the defect correction of the Monte Carlo solver):
the first-order response of the outputs to their own error is exact in the march, and only the
small remainder is left to the iteration. Iterating the outputs directly would grow like
``(1 + eta lambda / P)^T`` before converging (transient growth).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator, Protocol

import torch

from .estimate import Accumulator, stack, v_count


@dataclass
class Directions:
    """A chunk of noise directions: ``state`` blocks (leading axis c), weights (c,), and the
    layer they come from (``group``; 0: several layers, for exact ones); ``centred`` for sampled
    directions (covariance about the group's sample mean) rather than an exact basis."""

    state: dict[str, torch.Tensor]
    weight: torch.Tensor
    group: int
    centred: bool


#: Tangents are resolved down to this fraction of the base observables' scale (see solve_tangent).
FLOOR = 1e-3


class Model(Protocol):
    """What a fluctuation method provides to :func:`propagate`."""

    scales: dict[str, float]  # base size of each observable (norm of loss, f, ntk, phi, g)
    ntk: torch.Tensor  # (m, P_all, P_all) base NTK, the preconditioner of the output march
    delta: torch.Tensor  # (m, P) base training error
    step: float  # eta / P
    exact_update: bool
    # optional: ``march.solve(xi)`` solves ``t = D t + xi`` exactly in one pass (None or absent:
    # solved by sweeps); see ``theory.fluctuations.march``

    def directions(self) -> Iterator[Directions]: ...

    def apply(self, state: dict, xi: dict) -> dict: ...

    def ntk_tangent(self, state: dict) -> torch.Tensor: ...

    def observables(self, state: dict) -> dict[str, torch.Tensor]: ...


def march_outputs(model: Model, site: torch.Tensor, old: torch.Tensor, state: dict) -> torch.Tensor:
    """New output tangent (c, m, P_all) from the map's output ``site`` and the previous ``old``.

    Exact update: ``df(k+1) = df(k) + site(k+1) - site(k) + (eta/P) K(k) (dDelta(k) - dDelta_old(k))``
    (defect correction; at the fixed point ``df = site``). First-order update:
    ``df(k+1) = df(k) + (eta/P) (dK(k) Delta(k) + K(k) dDelta(k))`` with ``dK`` from ``state``.
    """
    p = model.delta.shape[1]
    k_tr = model.ntk[:, :, :p]  # (m, Pa, P)
    m = k_tr.shape[0]
    df = torch.zeros_like(old)
    if model.exact_update:
        for k in range(m - 1):
            corr = -(df[:, k, :p] - old[:, k, :p])
            df[:, k + 1] = df[:, k] + site[:, k + 1] - site[:, k] + model.step * corr @ k_tr[k].T
        return df
    dk = model.ntk_tangent(state)[:, :, :, :p]  # (c, m, Pa, P)
    drive = model.step * torch.einsum("ckab,kb->cka", dk, model.delta)
    for k in range(m - 1):
        df[:, k + 1] = df[:, k] + drive[:, k] + model.step * (-df[:, k, :p]) @ k_tr[k].T
    return df


def sweep(model: Model, t: dict, xi: dict) -> dict:
    """One sweep ``t <- D t + xi`` with the outputs marched (:func:`march_outputs`)."""
    new = model.apply(t, xi)
    new["f"] = march_outputs(model, new["f"], t["f"], new)
    return new


def relative_change(model: Model, new: dict, old: dict, c: int) -> float:
    """Largest change between two sets of observables of ``c`` directions, relative to their size
    or to ``FLOOR`` times the model's base scale of that observable per direction."""
    change = 0.0
    for k, v in new.items():
        scale = max(float(v.norm()), FLOOR * model.scales[k] * math.sqrt(c))
        if scale > 0:
            change = max(change, float((v - old[k]).norm()) / scale)
    return change


def solve_tangent(model: Model, xi: dict, *, tol: float, max_iterations: int, start: dict | None = None):
    """Solve ``t = D t + xi`` for one chunk. Returns ``(t, iterations, last relative change)``.

    Convergence is judged on the observables (what is reported): the largest change, over the
    chunk, of any observable's tangent relative to its size, or to ``FLOOR`` times the model's
    base scale of that observable per direction (``model.scales``) when the chunk's directions
    are weak (a weak direction cannot be resolved below the arithmetic's floor of the base).
    ``start``: the first iterate (default ``xi``).
    """
    t = {k: v.clone() for k, v in (xi if start is None else start).items()}
    obs = model.observables(t)
    c = next(iter(xi.values())).shape[0]
    change = math.inf
    for it in range(1, max_iterations + 1):
        new = sweep(model, t, xi)
        new_obs = model.observables(new)
        change = relative_change(model, new_obs, obs, c)
        t, obs = new, new_obs
        if change <= tol:
            return t, it, change
    return t, max_iterations, change


#: Random combinations of a chunk's solutions that :func:`probe` checks.
PROBES = 2


def probe(model: Model, t: dict, xi: dict, seed: int = 0) -> float:
    """Check solutions ``t`` of ``t = D t + xi`` (a chunk) with one sweep of ``model`` itself.

    The map is linear, so any combination ``sum_j a_j t_j`` solves the system for
    ``sum_j a_j xi_j``; for ``PROBES`` combinations with standard normal ``a_j`` this returns the
    relative change of one sweep (:func:`relative_change`), the quantity :func:`solve_tangent`
    converges on, at the cost of ``PROBES`` directions instead of the chunk.
    """
    c = next(iter(xi.values())).shape[0]
    a = torch.randn(PROBES, c, generator=torch.Generator().manual_seed(seed), dtype=xi["f"].dtype)
    mix = lambda s: {k: torch.einsum("pc,c...->p...", a, v) for k, v in s.items()}  # noqa: E731
    tp, xp = mix(t), mix(xi)
    return relative_change(model, model.observables(sweep(model, tp, xp)), model.observables(tp), PROBES)


@dataclass
class Report:
    """Convergence of the tangent solves: worst iteration count and last change over chunks."""

    iterations: int = 0
    change: float = 0.0
    directions: int = 0
    converged: bool = True


@dataclass
class Level:
    """One level of a multilevel estimate of sampled noise (``docs/finite_width.md`` section 9).

    ``model``: a model of the same map (the full one, or a cheaper one with a smaller
    population) that takes the full model's noise states as they are; ``count``: the sampled
    directions per group it solves (a prefix of them); ``sweeps``: a fixed number of sweeps, or
    None to solve to the tolerance; ``chunk``: directions solved together.
    """

    model: Model
    count: int
    sweeps: int | None
    chunk: int


def propagate(model: Model, *, tol: float, max_iterations: int, levels: list[Level] | None = None,
              progress: bool = False):
    """Run every chunk of ``model.directions()``. Returns ``(variances, loss_cov, se, Report)``.

    ``levels`` (cheapest first, the full model last, counts decreasing) turn sampled directions
    into the multilevel estimate of :class:`Accumulator`: each level solves the first ``count``
    directions of each group. Exact directions, and every direction without ``levels``, are
    solved by the full model alone. The report covers the full model's solves. ``progress``
    prints one line per solved chunk (layer, level, directions so far, sweeps, change, time)."""
    acc, rep = Accumulator(), Report()
    t0, solved = time.perf_counter(), {}

    def solve(level: Level, state: dict, d: Directions) -> dict:
        budget = max_iterations if level.sweeps is None else level.sweeps
        direct = getattr(level.model, "march", None) if level.sweeps is None else None
        if direct is not None:  # one exact pass over time (theory.fluctuations.march)
            t, it, change = direct.solve(state), 1, 0.0
            if getattr(direct, "checked", False):  # verified by the model's own map
                change = probe(level.model, t, state)
                if change > tol:  # polish by sweeps from there
                    t, more, change = solve_tangent(level.model, state, tol=tol, max_iterations=budget, start=t)
                    it += more
        else:
            t, it, change = solve_tangent(level.model, state, tol=tol if level.sweeps is None else 0.0,
                                          max_iterations=budget)
        if level.model is model:
            rep.iterations = max(rep.iterations, it)
            rep.change = max(rep.change, change)
            rep.converged = rep.converged and change <= tol
            rep.directions += v_count(state)
        if progress:
            kind = "control" if level.model is not model else "sampled" if d.centred else "exact"
            solved[d.group, kind] = solved.get((d.group, kind), 0) + v_count(state)
            count = f"{solved[d.group, kind]}" + (f"/{level.count}" if level.count else "")
            how = (f"{it} fixed sweeps" if level.sweeps is not None else
                   f"one-pass march, checked change {change:.1e}" if direct is not None and it == 1 and change else
                   "one-pass march" if direct is not None and it == 1 else
                   f"{it} sweeps, change {change:.1e} (tol {tol:.0e})")
            where = f"layer {d.group}" if d.group else "all layers"
            print(f"[fluctuations] {where} {kind} {count} directions: {how}, "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
        return level.model.observables(t)

    for d in model.directions():
        if not levels or not d.centred:
            acc.add([solve(Level(model, 0, None, 0), d.state, d)], d)
            continue
        done = acc.counts(d.group, len(levels))
        obs = []
        for level, have in zip(levels, done):
            need = min(level.count - have, v_count(d.state))
            parts = [solve(level, {k: v[s0 : min(s0 + level.chunk, need)] for k, v in d.state.items()}, d)
                     for s0 in range(0, max(need, 0), level.chunk)]
            obs.append(stack(parts) if parts else None)
        acc.add(obs, d)
    var, cov, se = acc.finish()
    return var, cov, se, rep
