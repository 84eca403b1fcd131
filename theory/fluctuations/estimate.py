"""Estimators of ``N Cov`` from propagated noise directions (``docs/finite_width.md`` sections 4, 9).

Exact bases add ``w o o^T``; sampled directions give unbiased sample covariances per layer, either
plain or two-level (a cheap control level on every sampled site, the full model on a prefix of
them), with first-order standard errors from the squared deviations.
"""

from __future__ import annotations

import torch


class Accumulator:
    """Running ``N Var`` of each observable entry and ``N Cov`` of the loss over time.

    Exact directions add ``w o o^T``. Sampled ones are kept per group (layer) and combined at
    the end: the unbiased sample covariance, or, when a cheap control level solved every
    direction and the full model only the first ``J1`` of a group, the two-level estimator

        V = S2(c; J) + S2(o; J1) - S2(c; J1)

    (``S2``: unbiased sample covariance; ``c`` the control's observables, ``o`` the full
    model's). Each term is unbiased, so ``V`` is an unbiased estimate of the full model's
    covariance whatever the control; a control close to ``o`` only makes its error small.
    Standard errors of the variances are first order in the squared deviations
    ``a = (c - mean c)^2`` and ``d = (o - mean o)^2 - (c - mean c)^2`` (on ``J1``):
    ``se^2 = Var(a) / J + Var(d) / J1 + 2 Cov(a, d) / J``; without a control ``se^2 = Var(a) / J``
    with ``a`` the full model's squared deviations.
    """

    def __init__(self) -> None:
        self.exact: dict[str, torch.Tensor] = {}
        self.exact_loss_cov: torch.Tensor | None = None
        self.groups: dict[int, dict[str, list]] = {}

    def add(self, obs: dict[str, torch.Tensor] | None, d, control: dict | None = None) -> None:
        """Add a chunk's full-model observables ``obs`` (None when only the control solved it)
        and, for a two-level estimate, the control's observables of the whole chunk; ``d`` is
        its :class:`theory.fluctuations.propagate.Directions` (weight, group, centred)."""
        w = d.weight
        if not d.centred:
            for k, v in obs.items():
                val = torch.einsum("c,c...->...", w, v * v)
                self.exact[k] = self.exact.get(k, 0.0) + val
            lc = torch.einsum("c,ca,cb->ab", w, obs["loss"], obs["loss"])
            self.exact_loss_cov = lc if self.exact_loss_cov is None else self.exact_loss_cov + lc
            return
        g = self.groups.setdefault(d.group, {"full": [], "control": []})
        if obs is not None:
            g["full"].append(obs)
        if control is not None:
            g["control"].append(control)

    def full_count(self, group: int) -> int:
        """Full-model directions accumulated so far in ``group``."""
        return sum(v_count(o) for o in self.groups.get(group, {"full": []})["full"])

    def finish(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """``(variances, loss_cov, standard_errors)``; standard errors are 0 for exact parts."""
        var = {k: v.clone() for k, v in self.exact.items()}
        se2: dict[str, torch.Tensor] = {k: torch.zeros_like(v) for k, v in var.items()}
        cov = None if self.exact_loss_cov is None else self.exact_loss_cov.clone()
        for g in self.groups.values():
            full = stack(g["full"])
            ctrl = stack(g["control"]) if g["control"] else None
            for k, o in full.items():
                v, s2 = two_level_variance(o, None if ctrl is None else ctrl[k])
                var[k] = var.get(k, 0.0) + v
                se2[k] = se2.get(k, torch.zeros_like(v)) + s2
            c = two_level_cov(full["loss"], None if ctrl is None else ctrl["loss"])
            cov = c if cov is None else cov + c
        return var, cov, {k: v.sqrt() for k, v in se2.items()}


def stack(chunks: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def _dev2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased sample variance of ``x`` (J, ...) over its first axis and squared deviations."""
    if x.shape[0] < 2:
        raise ValueError("samples: need at least 2 sampled noise directions per layer")
    a = (x - x.mean(0)) ** 2
    return a.sum(0) / (x.shape[0] - 1), a


def two_level_variance(o: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Variance estimate and its squared standard error (see :class:`Accumulator`); ``o`` the
    full model's observables (J1, ...), ``c`` the control's (J, ...) whose first J1 pair with ``o``."""
    v_o, a_o = _dev2(o)
    if c is None:
        return v_o, a_o.var(0, unbiased=False) / o.shape[0]
    j1 = o.shape[0]
    v_c, a = _dev2(c)
    v_c1, a_c1 = _dev2(c[:j1])
    d = a_o - a_c1
    cross = ((a[:j1] - a[:j1].mean(0)) * (d - d.mean(0))).mean(0)
    s2 = a.var(0, unbiased=False) / c.shape[0] + d.var(0, unbiased=False) / j1 + 2 * cross / c.shape[0]
    return v_c + v_o - v_c1, s2.clamp(min=0.0)


def _cov(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(0)
    return x.T @ x / (x.shape[0] - 1)


def two_level_cov(o: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """Covariance over time (m, m) of loss tangents (J1, m), two-level as :func:`_two_level`."""
    if c is None:
        return _cov(o)
    return _cov(c) + _cov(o) - _cov(c[: o.shape[0]])


def v_count(obs: dict[str, torch.Tensor]) -> int:
    return next(iter(obs.values())).shape[0]
