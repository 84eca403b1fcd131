"""Gaussian pair moments ``E[f(a) f(b)]`` for every pair of an ``n``-dim Gaussian, in O(K n^2).

Used for the expectations of the control variates (docs/theory.md section 2, "variance reduction";
section 3 for the lazy moments). For ``(a, b)`` with variances ``qa``, ``qb`` and correlation
``rho``, Mehler's formula gives::

    E[f(a) f(b)] = sum_k  c_k(qa) c_k(qb) rho^k,     c_k(q) = E[f(sqrt(q) x) He_k(x)] / sqrt(k!)

(``He_k`` probabilists' Hermite polynomials, ``x ~ N(0, 1)``). The coefficients are 1-D integrals,
computed once per DIAGONAL entry (``n`` of them) by Gauss-Legendre quadrature on ``[-X, X]``
(the integrand decays like ``exp(-x^2/4)`` times an orthonormal Hermite function, so ``X = 14``
leaves ~1e-21); the matrix is a Horner sum of ``K + 1`` rank-one matrices times powers of the
correlation matrix. At ``rho = +-1`` the truncation error is at most the Parseval remainder
``E[f^2] - sum_k c_k^2``; it is reported, and the exact diagonal ``E[f(a)^2]`` (same 1-D rule)
replaces the series there. Activations with closed forms use them (``theory.lazy``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..activations import Activation
from ..lazy import gaussian_moments, has_closed_form

#: Terms of the Mehler series and quadrature nodes of the 1-D coefficient integrals.
TERMS = 80
NODES = 400
#: Half-width of the Gauss-Legendre range in units of the standard normal variable.
HALF_WIDTH = 14.0


@functools.lru_cache(maxsize=8)
def _rule(dtype, device):
    x, w = np.polynomial.legendre.leggauss(NODES)
    x = x * HALF_WIDTH
    w = w * HALF_WIDTH * np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return (torch.as_tensor(x, dtype=dtype, device=device),
            torch.as_tensor(w, dtype=dtype, device=device))


def hermite_coefficients(f, q: torch.Tensor, terms: int = TERMS):
    """``(c (terms+1, n), second (n,))``: normalised Hermite coefficients of ``f(sqrt(q) x)`` and
    the exact second moment ``E[f(sqrt(q) x)^2]`` for each variance ``q`` (n,)."""
    x, w = _rule(q.dtype, torch.device(q.device))
    vals = f(q.clamp(min=0.0).sqrt()[:, None] * x[None, :]) * w[None, :]  # (n, m)
    he = torch.empty(terms + 1, x.numel(), dtype=q.dtype, device=q.device)
    he[0] = 1.0
    if terms:
        he[1] = x
    for k in range(1, terms):  # normalised recurrence: h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k+1)
        he[k + 1] = (x * he[k] - math.sqrt(k) * he[k - 1]) / math.sqrt(k + 1)
    c = he @ vals.T
    second = (vals * f(q.clamp(min=0.0).sqrt()[:, None] * x[None, :])).sum(1)
    return c, second


def mehler_matrix(f, cov: torch.Tensor, terms: int = TERMS):
    """``E[f(a_i) f(a_j)]`` (n, n) for ``a ~ N(0, cov)``; also the largest relative Parseval
    remainder ``max_i (E f^2 - sum_k c_k^2) / E f^2`` (the truncation error bound at rho = 1)."""
    q = torch.diagonal(cov).clamp(min=0.0)
    c, second = hermite_coefficients(f, q, terms)
    sd = q.sqrt()
    inv = torch.where(sd > 0, 1.0 / sd.clamp(min=1e-300), torch.zeros_like(sd))
    rho = (cov * inv[:, None] * inv[None, :]).clamp(-1.0, 1.0)
    out = torch.outer(c[terms], c[terms])
    for k in range(terms - 1, -1, -1):
        out.mul_(rho).addr_(c[k], c[k])
    out.diagonal().copy_(second)
    remainder = float(((second - (c**2).sum(0)) / second.abs().clamp(min=1e-300)).abs().max())
    return 0.5 * (out + out.T), remainder


def pair_moments(act: Activation, cov: torch.Tensor, *, want_phi: bool = True,
                 want_dphi: bool = True):
    """``(E[phi(a) phi(a)^T], E[phi'(a) phi'(a)^T], remainder)`` for ``a ~ N(0, cov)``, cov (n, n).

    Closed forms (linear, relu, erf) through ``theory.lazy.gaussian_moments`` (remainder 0);
    any other activation through :func:`mehler_matrix`. Either moment may be skipped (None).
    """
    if has_closed_form(act):
        d = torch.diagonal(cov)
        e_phi, e_dphi = gaussian_moments(act, d[:, None], d[None, :], cov)
        return (e_phi if want_phi else None), (e_dphi if want_dphi else None), 0.0
    rem = 0.0
    e_phi = e_dphi = None
    if want_phi:
        e_phi, r1 = mehler_matrix(act.phi, cov)
        rem = max(rem, r1)
    if want_dphi:
        e_dphi, r2 = mehler_matrix(act.dphi, cov)
        rem = max(rem, r2)
    return e_phi, e_dphi, rem
