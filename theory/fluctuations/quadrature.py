"""Exact quadrature sites of a deep linear network, for the one-pass march (``docs/finite_width.md`` s. 5).

In a linear network every single-site integrand (``h h^T``, ``g g^T``, ``u g^T``, ``h r^T``, the
output integrand) and every pathwise tangent of one is a quadratic form in the site's standard
normals ``zeta``: the sources are ``u = F_u zeta_u``, ``r = F_r zeta_r`` and the fields are linear
in them. A Gaussian average of a quadratic form only needs ``<zeta zeta^T> = I``, so a "population"
whose normals have exactly identity second moment reproduces every average of the DMFT map and
of its derivative exactly, with no sampling error. Less is needed: the identity only on the
directions of the normals that the factors use (:func:`_design`), so the smallest design is one
site per such direction, ``S`` = the summed ranks of the causal factors' time blocks (19 and 21
sites instead of the 42 and 37 nonzero factor columns for layers 2 and 3 at ``L = 3``, ``T = 8``).

With these sites the Monte Carlo march (``theory.fluctuations.march``) becomes an exact solve of the
linear model's ``t = D t + xi`` in one pass over time, in the linear layout (backward fields
without a point index): :class:`LinearSites` supplies what the march reads.
"""

from __future__ import annotations

import torch

from .factor import Causal, CausalRange
from .march import March


class _Sites:
    """The sites of one layer, each (S, .): normals ``zu``, ``zr``, sources ``u``, ``r``, fields
    ``h`` (= ``ph``) and ``g``."""

    def __init__(self, zu, zr, layer, fu, fr):
        self.zu, self.zr = zu, zr
        self.u, self.r = zu @ fu.T, zr @ fr.T
        self.g = (layer.kgu @ self.u.T + layer.v @ self.r.T).T  # g = V (r + D u)
        self.h = self.ph = self.u + (layer.c @ self.g.T).T  # h = u + C g


def _range(factor) -> torch.Tensor:
    """Orthonormal directions (cols, R) of the normals that a factor uses: for a
    :class:`theory.fluctuations.factor.Causal` the kept eigenvectors of each time block's
    conditional covariance (column block ``k`` of the factor is a matrix times that block's
    symmetric root, so the factor only sees these), for a plain factor its nonzero columns."""
    if isinstance(factor, Causal):  # CausalRange too
        n, p = factor.factor.shape[1], factor.p
        parts = []
        for k, (vec, s, _) in enumerate(factor.roots):
            kept = vec[:, s > 0]
            block = torch.zeros(n, kept.shape[1], dtype=kept.dtype)
            block[k * p : (k + 1) * p] = kept
            parts.append(block)
        return torch.cat(parts, 1)
    keep = torch.nonzero(factor.abs().amax(0) > 0).flatten()
    return torch.eye(factor.shape[1], dtype=factor.dtype)[:, keep]


def _design(*factors) -> list[torch.Tensor]:
    """Normals of the sites, one block (S, cols) per factor: site ``s`` is ``sqrt(S)`` times one of
    the directions of :func:`_range`, so ``(1/S) sum_s zeta_s zeta_s^T`` is the projector ``E E^T``
    on them, and ``F E E^T = F`` for every factor ``F``. That is all a first-order average needs:
    each pairs a tangent ``dF zeta`` (or a field) with a field linear in ``F zeta``, and
    ``<dF zeta (F zeta)^T> = dF E E^T F^T = dF F^T``."""
    ranges = [_range(f) for f in factors]
    S = sum(e.shape[1] for e in ranges)
    out, s0 = [], 0
    for e in ranges:
        z = torch.zeros(S, e.shape[0], dtype=e.dtype)
        z[s0 : s0 + e.shape[1]] = S**0.5 * e.T
        out.append(z)
        s0 += e.shape[1]
    return out


class LinearSites:
    """What :class:`theory.fluctuations.march.March` reads, for a
    :class:`theory.fluctuations.linear.LinearModel` (``model``) with the exact update.

    The sources of layer ``l >= 2`` are drawn by the causal factor of ``H^{l-1}`` (n, n), those of
    layer ``l <= L - 1`` by the causal factor of ``G^{l+1}`` (m, m), both regressed on the past
    normals (:class:`theory.fluctuations.factor.CausalRange`, whose singular-value cut is
    ``rcond``); ``u^1`` (``Kx`` in every time) and ``r^L`` (one N(0, 1)) do not move.
    """

    factor, phi_key, linear = "causal", "H", True

    def __init__(self, model, rcond: float):
        lay = self.lay = model.lay
        L, m = lay.depth, lay.m
        self.exact_update, self.step, self.delta = model.exact_update, model.step, model.delta
        self.phi, self.gk, self.ident = model.h, model.g, model.ident
        self.dt = self.work = model.delta.dtype
        self.cw = [None] + [model.layers[l].c for l in range(1, L + 1)]
        self.dw = [None] + [model.layers[l].d for l in range(1, L + 1)]
        self.roots_u = {l: CausalRange(model.h[l - 1], m=m, p=lay.pa, rcond=rcond) for l in range(2, L + 1)}
        self.roots_r = {l: CausalRange(model.g[l + 1], m=m, p=1, rcond=rcond) for l in range(1, L)}
        self.pop = [None]
        for l in range(1, L + 1):
            fu = self.roots_u[l] if l >= 2 else lay.kx_factor().to(self.dt)
            fr = self.roots_r[l] if l <= L - 1 else torch.ones(m, 1, dtype=self.dt)
            mat = lambda f: f.factor if isinstance(f, Causal) else f  # noqa: E731
            self.pop.append(_Sites(*_design(fu, fr), model.layers[l], mat(fu), mat(fr)))

    def residual(self) -> float:
        """Largest relative difference between the sites' kernels and the solution's (the design
        is exact; what is left is round-off and the factors' cut, measured ~3e-12)."""
        res = 0.0
        for l in range(1, self.lay.depth + 1):
            pop = self.pop[l]
            S = pop.h.shape[0]
            for new, old in ((pop.h.T @ pop.h / S, self.phi[l]), (pop.g.T @ pop.g / S, self.gk[l])):
                res = max(res, float((new - old).norm() / old.norm()))
        return res


#: Singular-value cut of the causal factors' past blocks (:class:`CausalRange`): the sites then
#: reproduce the kernels to 3e-12 (the kernel pseudo-inverse of ``Causal`` at its stable cut of
#: 1e-10 left 5e-7 at L = 3, T = 8 and 1e-5 at T = 16, and blew up at 1e-12).
FACTOR_RCOND = 1e-7
#: Largest ``chunk * n^2`` of one marched chunk of the linear method: its state blocks then stay
#: within a few MiB (measured at L = 3: T = 8, n = 36, one chunk of all 226 directions runs 1.4x
#: faster than one per layer; T = 16, n = 68, one of 280 runs 1.8x slower than three of ~93).
MARCH_ELEMENTS = 1 << 19


class LinearMarch(March):
    """The one-pass march over :class:`LinearSites`, marked ``checked``: every solved chunk is
    verified by a sweep of the linear model's own closed-form map on random combinations of its
    solutions (:func:`theory.fluctuations.propagate.probe`) and polished by sweeps if that check
    fails the tolerance, since the sites are only as exact as the causal factors' cut."""

    checked = True

    def __init__(self, model, rcond: float = FACTOR_RCOND):
        self.sites = LinearSites(model, rcond)
        super().__init__(self.sites)

    @staticmethod
    def chunk(chunk: int, n: int) -> int:
        """Directions marched together: ``chunk``, at most ``MARCH_ELEMENTS / n^2``, at least 1."""
        return max(1, min(chunk, MARCH_ELEMENTS // n**2))
