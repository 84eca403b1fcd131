"""Kernel estimators with lazy control variates and split-half standard errors.

docs/theory.md section 2 ("variance reduction"): the lazy fields -- the same sources with
``gamma0 = 0``, i.e. ``h = u`` and ``g = phi'(u) r`` -- have exactly known second moments
(docs/theory.md section 3; ``theory.montecarlo.mehler.pair_moments``; see ``theory.montecarlo.control``)::

    E[phi(u) phi(u)^T]                 = Phi_lazy(cov_u)
    E[(phi'(u) r)(phi'(u) r)^T]        = Phidot_lazy(cov_u) o cov_r      (u, r independent)

so ``mean(X X^T) - mean(Y Y^T) + E[Y Y^T]`` is unbiased for ``E[X X^T]`` and carries only the
noise of the (small at small gamma0) difference ``X X^T - Y Y^T``.
"""

from __future__ import annotations

import torch


def second_moment(x: torch.Tensor, y: torch.Tensor | None = None,
                  y_mean: torch.Tensor | None = None, weight: torch.Tensor | None = None):
    """Estimate ``E[x x^T]`` (x: (S, n) samples) with optional control variate ``y`` whose exact
    ``E[y y^T]`` is ``y_mean``. Returns ``(estimate (n, n), standard_error_frobenius)`` where the
    standard error comes from the two halves of the sample (``|K_1 - K_2| / 2``), over the
    entries where ``weight`` (n, n) is 1 when it is given (time-marching: the unaccepted times).
    """
    s = x.shape[0]
    half = s // 2
    parts = []
    for sl in (slice(0, half), slice(half, s)):
        xs = x[sl]
        if y is None:
            m = xs.T @ xs
        else:  # x x^T - y y^T = sym((x - y)^T (x + y)): one product instead of two
            ys = y[sl]
            m = (xs - ys).T @ (xs + ys)
            m = 0.5 * (m + m.T)
        parts.append(m / max(xs.shape[0], 1))
    est = (parts[0] * half + parts[1] * (s - half)) / s
    if y is not None:
        est = est + y_mean
    est = 0.5 * (est + est.T)
    diff = parts[0] - parts[1] if weight is None else (parts[0] - parts[1]) * weight
    se = float(torch.linalg.matrix_norm(diff)) / 2.0 if half else float("inf")
    return est, se
