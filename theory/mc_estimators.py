"""Kernel estimators with lazy control variates and split-half standard errors.

THEORY.md section 2 ("variance reduction"): the lazy fields -- the same sources with
``gamma0 = 0``, i.e. ``h = u`` and ``g = phi'(u) r`` -- have exactly known second moments
(THEORY.md section 3; ``theory.lazy.gaussian_moments``)::

    E[phi(u) phi(u)^T]                 = Phi_lazy(cov_u)
    E[(phi'(u) r)(phi'(u) r)^T]        = Phidot_lazy(cov_u) o cov_r      (u, r independent)

so ``mean(X X^T) - mean(Y Y^T) + E[Y Y^T]`` is unbiased for ``E[X X^T]`` and carries only the
noise of the (small at small gamma0) difference ``X X^T - Y Y^T``.
"""

from __future__ import annotations

import torch

import math

import numpy as np

from .activations import Activation
from .lazy import gaussian_moments, has_closed_form

#: Gauss-Hermite nodes per dimension for activations without a closed form. The control
#: variate's expectation only has to be far more accurate than the Monte Carlo noise (~1e-3):
#: for tanh at unit variance 24 nodes leave about 1e-7.
HERMITE_NODES = 24
_CHUNK = 1 << 21


def lazy_moments(act: Activation, cov: torch.Tensor, *, nodes: int | None = None):
    """``(E[phi(u) phi(u)^T], E[phi'(u) phi'(u)^T])`` for ``u ~ N(0, cov)``, cov (n, n).

    Evaluated on the upper triangle only and mirrored (half the quadrature work).
    """
    n = cov.shape[0]
    iu = torch.triu_indices(n, n, device=cov.device)
    d = torch.diagonal(cov)
    qa, qb, c = d[iu[0]], d[iu[1]], cov[iu[0], iu[1]]
    if has_closed_form(act):
        e_phi, e_dphi = gaussian_moments(act, qa, qb, c)
    else:
        e_phi, e_dphi = _hermite(act, qa, qb, c, nodes or HERMITE_NODES)
    out_phi = torch.empty_like(cov)
    out_dphi = torch.empty_like(cov)
    for out, vals in ((out_phi, e_phi), (out_dphi, e_dphi)):
        out[iu[0], iu[1]] = vals
        out[iu[1], iu[0]] = vals
    return out_phi, out_dphi


def _hermite(act: Activation, qa, qb, c, nodes: int):
    """Product Gauss-Hermite rule in whitened coordinates (vectorised over pairs)."""
    x_np, w_np = np.polynomial.hermite_e.hermegauss(nodes)
    x = torch.as_tensor(x_np, dtype=qa.dtype, device=qa.device)
    w = torch.as_tensor(w_np / math.sqrt(2.0 * math.pi), dtype=qa.dtype, device=qa.device)
    l11 = qa.clamp(min=0.0).sqrt()
    safe = torch.where(l11 > 0, l11, torch.ones_like(l11))
    l21 = torch.where(l11 > 0, c / safe, torch.zeros_like(c))
    l22 = (qb - l21**2).clamp(min=0.0).sqrt()
    out_p, out_d = torch.empty_like(qa), torch.empty_like(qa)
    step = max(1, _CHUNK // nodes**2)
    for s in range(0, qa.numel(), step):
        sl = slice(s, s + step)
        a = l11[sl, None] * x  # (c, m)
        b = (l21[sl, None, None] * x[None, :, None] + l22[sl, None, None] * x[None, None, :])
        wa = w[None, :]
        out_p[sl] = ((act.phi(a) * wa)[:, :, None] * act.phi(b) * w[None, None, :]).sum((1, 2))
        out_d[sl] = ((act.dphi(a) * wa)[:, :, None] * act.dphi(b) * w[None, None, :]).sum((1, 2))
    return out_p, out_d


def second_moment(x: torch.Tensor, y: torch.Tensor | None = None,
                  y_mean: torch.Tensor | None = None):
    """Estimate ``E[x x^T]`` (x: (S, n) samples) with optional control variate ``y`` whose exact
    ``E[y y^T]`` is ``y_mean``. Returns ``(estimate (n, n), standard_error_frobenius)`` where the
    standard error comes from the two halves of the sample (``|K_1 - K_2| / 2``).
    """
    s = x.shape[0]
    half = s // 2
    parts = []
    for sl in (slice(0, half), slice(half, s)):
        xs = x[sl]
        m = xs.T @ xs
        if y is not None:
            ys = y[sl]
            m = m - ys.T @ ys
        parts.append(m / max(xs.shape[0], 1))
    est = (parts[0] * half + parts[1] * (s - half)) / s
    if y is not None:
        est = est + y_mean
    est = 0.5 * (est + est.T)
    se = float(torch.linalg.matrix_norm(parts[0] - parts[1])) / 2.0 if half else float("inf")
    return est, se
