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
``N Cov(o) = sum_j w_j o(t_j) o(t_j)^T``.

The solve iterates the whole-trajectory map (``t <- D t + xi``, layer by layer upwards with each
layer's new tangent used at once: Gauss-Seidel) except for the outputs, which are
marched in time with the NTK as preconditioner (the defect correction of the Monte Carlo solver):
the first-order response of the outputs to their own error is exact in the march, and only the
small remainder is left to the iteration. Iterating the outputs directly would grow like
``(1 + eta lambda / P)^T`` before converging (transient growth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Protocol

import torch


@dataclass
class Directions:
    """A chunk of noise directions: ``state`` blocks (leading axis c), weights (c,), and the
    layer they come from (``group``); ``centred`` for sampled directions (covariance about the
    group's sample mean) rather than an exact basis."""

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


def solve_tangent(model: Model, xi: dict, *, tol: float, max_iterations: int):
    """Solve ``t = D t + xi`` for one chunk. Returns ``(t, iterations, last relative change)``.

    Convergence is judged on the observables (what is reported): the largest change, over the
    chunk, of any observable's tangent relative to its size, or to ``FLOOR`` times the model's
    base scale of that observable per direction (``model.scales``) when the chunk's directions
    are weak (a weak direction cannot be resolved below the arithmetic's floor of the base).
    """
    t = {k: v.clone() for k, v in xi.items()}
    obs = model.observables(t)
    c = next(iter(xi.values())).shape[0]
    change = math.inf
    for it in range(1, max_iterations + 1):
        new = model.apply(t, xi)
        new["f"] = march_outputs(model, new["f"], t["f"], new)
        new_obs = model.observables(new)
        change = 0.0
        for k, v in new_obs.items():
            scale = max(float(v.norm()), FLOOR * model.scales[k] * math.sqrt(c))
            if scale > 0:
                change = max(change, float((v - obs[k]).norm()) / scale)
        t, obs = new, new_obs
        if change <= tol:
            return t, it, change
    return t, max_iterations, change


class Accumulator:
    """Running ``N Var`` of each observable entry and ``N Cov`` of the loss over time.

    Exact directions add ``w o o^T``; sampled ones are summed per group (layer) and centred at
    the end (unbiased sample covariance). Fourth moments give the standard error of each
    sampled variance, ``sqrt((m4 - s^4) / M)``.
    """

    def __init__(self) -> None:
        self.exact: dict[str, torch.Tensor] = {}
        self.exact_loss_cov: torch.Tensor | None = None
        self.groups: dict[int, dict] = {}

    def add(self, obs: dict[str, torch.Tensor], d: Directions) -> None:
        w = d.weight
        if not d.centred:
            for k, v in obs.items():
                val = torch.einsum("c,c...->...", w, v * v)
                self.exact[k] = self.exact.get(k, 0.0) + val
            lc = torch.einsum("c,ca,cb->ab", w, obs["loss"], obs["loss"])
            self.exact_loss_cov = lc if self.exact_loss_cov is None else self.exact_loss_cov + lc
            return
        g = self.groups.setdefault(d.group, {"count": 0, "moments": {}, "loss": None})
        g["count"] += v_count(obs)
        for k, v in obs.items():
            mom = g["moments"].setdefault(k, [0.0] * 4)
            for j in range(4):
                mom[j] = mom[j] + (v ** (j + 1)).sum(0)
        l1, l2 = obs["loss"].sum(0), obs["loss"].T @ obs["loss"]
        g["loss"] = (l1, l2) if g["loss"] is None else (g["loss"][0] + l1, g["loss"][1] + l2)

    def finish(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """``(variances, loss_cov, standard_errors)``; standard errors are 0 for exact parts."""
        var = {k: v.clone() for k, v in self.exact.items()}
        se2: dict[str, torch.Tensor] = {k: torch.zeros_like(v) for k, v in var.items()}
        cov = None if self.exact_loss_cov is None else self.exact_loss_cov.clone()
        for g in self.groups.values():
            n = g["count"]
            if n < 2:
                raise ValueError("samples: need at least 2 sampled noise directions per layer")
            for k, (s1, s2, s3, s4) in g["moments"].items():
                mu = s1 / n
                v = (s2 - n * mu**2) / (n - 1)
                m4 = s4 / n - 4 * mu * s3 / n + 6 * mu**2 * s2 / n - 3 * mu**4
                var[k] = var.get(k, 0.0) + v
                se2[k] = se2.get(k, torch.zeros_like(v)) + (m4 - v**2).clamp(min=0.0) / n
            l1, l2 = g["loss"]
            c = (l2 - torch.outer(l1, l1) / n) / (n - 1)
            cov = c if cov is None else cov + c
        return var, cov, {k: v.sqrt() for k, v in se2.items()}


def v_count(obs: dict[str, torch.Tensor]) -> int:
    return next(iter(obs.values())).shape[0]


@dataclass
class Report:
    """Convergence of the tangent solves: worst iteration count and last change over chunks."""

    iterations: int = 0
    change: float = 0.0
    directions: int = 0
    converged: bool = True


def propagate(model: Model, *, tol: float, max_iterations: int):
    """Run every chunk of ``model.directions()``. Returns ``(variances, loss_cov, se, Report)``."""
    acc, rep = Accumulator(), Report()
    for d in model.directions():
        t, it, change = solve_tangent(model, d.state, tol=tol, max_iterations=max_iterations)
        rep.iterations = max(rep.iterations, it)
        rep.change = max(rep.change, change)
        rep.converged = rep.converged and change <= tol
        rep.directions += int(d.weight.shape[0])
        acc.add(model.observables(t), d)
    var, cov, se = acc.finish()
    return var, cov, se, rep
