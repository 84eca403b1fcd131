"""Control variates for the kernel estimates: Gaussian fields with exactly known moments.

docs/theory.md section 2 ("variance reduction"). A control variate is a function ``Y`` of the SAME
sources whose second moment is known exactly; ``mean(X X^T - Y Y^T) + E[Y Y^T]`` is unbiased for
``E[X X^T]`` and carries only the noise of ``X X^T - Y Y^T``.

"lazy" (the gamma0 = 0 fields): ``Y_phi = phi(u)``, ``Y_g = phi'(u) r``.

"linearized" (default): the fields linearised in the sources with the MEAN Jacobians of the
previous iteration (independent samples, so the estimate stays unbiased)::

    Yh = Jhu u + Jhr r                        (Gaussian, cov  Sh = Jhu Cu Jhu^T + Jhr Cr Jhr^T)
    Y_phi = phi(Yh)                           E = E[phi(a) phi(a)^T], a ~ N(0, Sh)
    Y_g = phi'(Jhu u) o (Jzr r) + Jgu u       E = Phidot(Shu) o (Jzr Cr Jzr^T) + Jgu Cu Jgu^T

(the cross term vanishes: ``r`` is independent of ``u`` and has mean zero). With
``Jhu = <dh/du> = I + C <dg/du>``, ``Jhr = <dh/dr>``, ``Jzr = <dz/dr> = I + D <dphi/dr>``,
``Jgu = <dg/du>`` from the pathwise Jacobians (``theory.montecarlo.fields``). It reduces to "lazy" with
``Jhu = Jzr = I``, ``Jhr = Jgu = 0``, and is EXACT (zero variance) for a linear network at the
fixed point. Pair moments of non-closed-form activations come from the Mehler series
(``theory.montecarlo.mehler``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..activations import Activation
from .estimators import second_moment
from .mehler import pair_moments


@dataclass(frozen=True)
class Linearization:
    """Mean Jacobians of one layer's fields (each (n, n)); None entries mean the lazy values."""

    jhu: torch.Tensor | None = None
    jhr: torch.Tensor | None = None
    jzr: torch.Tensor | None = None
    jgu: torch.Tensor | None = None

    @staticmethod
    def from_responses(c, d, dphi_dr, dg_du, dh_dr) -> "Linearization":
        """From ``<dphi/dr>``, ``<dg/du>``, ``<dh/dr>`` and the couplings ``C``, ``D`` (n, n)."""
        eye = torch.eye(c.shape[0], dtype=c.dtype, device=c.device)
        return Linearization(jhu=eye + c @ dg_du, jhr=dh_dr, jzr=eye + d @ dphi_dr, jgu=dg_du)


def _apply(j, x):
    return x if j is None else x @ j.T


def _cov(j, c):
    return c if j is None else j @ c @ j.T


@dataclass(frozen=True)
class KernelEstimate:
    """Estimates (n, n), split-half standard errors (Frobenius), and for the output tangent the
    control fields ``a_y = phi'(Jhu u)`` (S, n) with ``e_dphi = E[a_y a_y^T]`` (n, n)."""

    phi: torch.Tensor
    g: torch.Tensor
    se_phi: float
    se_g: float
    a_y: torch.Tensor | None
    e_dphi: torch.Tensor | None
    remainder: float


def estimate_kernels(act: Activation, u, r, ph, g, cu, cr, lin: Linearization | None,
                     kind: str, weight: torch.Tensor | None = None) -> KernelEstimate:
    """``Phi = <phi(h) phi(h)^T>`` and ``G = <g g^T>`` from samples (S, n) with control variates.

    u, r: sources (S, n) with covariances cu, cr (n, n); ph = phi(h), g: fields (S, n).
    kind: "none", "lazy" or "linearized" (``lin`` None means lazy). ``weight`` (n, n): the
    entries the standard errors cover (None: all).
    """
    if kind == "none":
        k_phi, se_p = second_moment(ph, weight=weight)
        k_g, se_g = second_moment(g, weight=weight)
        return KernelEstimate(k_phi, k_g, se_p, se_g, None, None, 0.0)
    lin = lin if (kind == "linearized" and lin is not None) else Linearization()
    yhu = _apply(lin.jhu, u)
    yh = yhu if lin.jhr is None else yhu + r @ lin.jhr.T
    s_hu = _cov(lin.jhu, cu)
    s_h = s_hu if lin.jhr is None else s_hu + lin.jhr @ cr @ lin.jhr.T
    same = lin.jhr is None
    e_phi, e_dphi, rem = pair_moments(act, s_h, want_dphi=same)
    if not same:
        _, e_dphi, rem2 = pair_moments(act, s_hu, want_phi=False)
        rem = max(rem, rem2)
    a_y = act.dphi(yhu)
    y_g = a_y * _apply(lin.jzr, r)
    e_g = e_dphi * _cov(lin.jzr, cr)
    if lin.jgu is not None:
        y_g = y_g + u @ lin.jgu.T
        e_g = e_g + lin.jgu @ cu @ lin.jgu.T
    k_phi, se_p = second_moment(ph, act.phi(yh), e_phi, weight)
    k_g, se_g = second_moment(g, y_g, e_g, weight)
    return KernelEstimate(k_phi, k_g, se_p, se_g, a_y, e_dphi, rem)
