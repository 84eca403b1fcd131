"""Estimators of ``N Cov`` from propagated noise directions (``docs/finite_width.md`` sections 4, 9).

Exact bases add ``w o o^T``; sampled directions give unbiased sample covariances per layer, either
plain or two-level (a cheap control level on every sampled site, the full model on a prefix of
them), with first-order standard errors from the squared deviations.
"""

from __future__ import annotations

import torch


class Accumulator:
    """Running ``N Var`` of each observable entry and ``N Cov`` of the loss over time.

    Exact directions add ``w o o^T``. Sampled ones are kept per group (layer), one list per
    level, and combined at the end by :func:`multilevel_variance`: with one level the unbiased
    sample covariance, with a chain of levels (cheapest first, each solving a prefix of the
    directions of the one before) the multilevel estimate.
    """

    def __init__(self) -> None:
        self.exact: dict[str, torch.Tensor] = {}
        self.exact_loss_cov: torch.Tensor | None = None
        self.groups: dict[int, list[list[dict]]] = {}

    def add(self, levels: list[dict | None], d) -> None:
        """Add a chunk's observables at each level (None where a level did not solve any of
        it); ``d`` is its :class:`theory.fluctuations.propagate.Directions` (weight, group,
        centred). Exact directions have one level."""
        if not d.centred:
            obs, w = levels[0], d.weight
            for k, v in obs.items():
                val = torch.einsum("c,c...->...", w, v * v)
                self.exact[k] = self.exact.get(k, 0.0) + val
            lc = torch.einsum("c,ca,cb->ab", w, obs["loss"], obs["loss"])
            self.exact_loss_cov = lc if self.exact_loss_cov is None else self.exact_loss_cov + lc
            return
        g = self.groups.setdefault(d.group, [[] for _ in levels])
        for store, obs in zip(g, levels):
            if obs is not None:
                store.append(obs)

    def counts(self, group: int, levels: int) -> list[int]:
        """Directions accumulated so far in ``group`` at each of ``levels`` levels."""
        g = self.groups.get(group, [[] for _ in range(levels)])
        return [sum(v_count(o) for o in store) for store in g]

    def finish(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """``(variances, loss_cov, standard_errors)``; standard errors are 0 for exact parts."""
        var = {k: v.clone() for k, v in self.exact.items()}
        se2: dict[str, torch.Tensor] = {k: torch.zeros_like(v) for k, v in var.items()}
        cov = None if self.exact_loss_cov is None else self.exact_loss_cov.clone()
        for g in self.groups.values():
            levels = [stack(store) for store in g]
            for k in levels[0]:
                v, s2 = multilevel_variance([lv[k] for lv in levels])
                var[k] = var.get(k, 0.0) + v
                se2[k] = se2.get(k, torch.zeros_like(v)) + s2
            c = multilevel_cov([lv["loss"] for lv in levels])
            cov = c if cov is None else cov + c
        return var, cov, {k: v.sqrt() for k, v in se2.items()}


def stack(chunks: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def _dev2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased sample variance of ``x`` (J, ...) over its first axis and squared deviations."""
    if x.shape[0] < 2:
        raise ValueError("samples: need at least 2 sampled noise directions per layer and level")
    a = (x - x.mean(0)) ** 2
    return a.sum(0) / (x.shape[0] - 1), a


def multilevel_variance(levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Multilevel estimate of the variance of the last level and its squared standard error.

    ``levels[k]`` (J_k, ...) are the observables of the same directions under level ``k``
    (cheapest first; ``J_0 >= J_1 >= ...``, level ``k`` solved the first ``J_k``). The estimate

        V = S2(o_0; J_0) + sum_{k>=1} [S2(o_k; J_k) - S2(o_{k-1}; J_k)]

    (``S2``: unbiased sample variance over the first ``J_k``) is a sum of unbiased terms, so it
    is unbiased for the last level's variance whatever the cheaper levels are; levels close to
    the next one only make its error small. The standard error is first order in the squared
    deviations: with ``d_0 = a_0`` and ``d_k = a_k - a_{k-1}`` on the first ``J_k`` (``a``: squared
    deviations from the prefix mean), ``se^2 = sum_k Var(d_k) / J_k + 2 sum_{i<k} Cov(d_i, d_k) / J_i``.
    A single level gives the sample variance and ``Var(a_0) / J_0``.
    """
    total, ds = 0.0, []
    for k, o in enumerate(levels):
        v, a = _dev2(o)
        if k == 0:
            total, d = v, a
        else:
            v_prev, a_prev = _dev2(levels[k - 1][: o.shape[0]])
            total, d = total + v - v_prev, a - a_prev
        ds.append(d)
    s2 = 0.0
    for k, d in enumerate(ds):
        s2 = s2 + d.var(0, unbiased=False) / d.shape[0]
        for i in range(k):
            di = ds[i][: d.shape[0]]
            s2 = s2 + 2 * ((di - di.mean(0)) * (d - d.mean(0))).mean(0) / ds[i].shape[0]
    return total, torch.as_tensor(s2).clamp(min=0.0)


def _cov(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(0)
    return x.T @ x / (x.shape[0] - 1)


def multilevel_cov(levels: list[torch.Tensor]) -> torch.Tensor:
    """Covariance over time (m, m) of loss tangents, multilevel as :func:`multilevel_variance`."""
    total = _cov(levels[0])
    for k in range(1, len(levels)):
        j = levels[k].shape[0]
        total = total + _cov(levels[k]) - _cov(levels[k - 1][:j])
    return total


def v_count(obs: dict[str, torch.Tensor]) -> int:
    return next(iter(obs.values())).shape[0]
