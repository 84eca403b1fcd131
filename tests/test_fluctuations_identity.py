"""The causal split of the linearised transpose identity (``docs/finite_width.md`` section 3).

Reference: the defining equation itself. For invertible past-time kernels the unknowns (``dA``
strictly causal, ``dB`` causal) are exactly as many as the equations, so the solved tangent must
satisfy ``dA G + A dG - dPhi B^T - Phi dB^T = dY - dX`` at every entry, whatever the inputs.
"""

from __future__ import annotations

import pytest
import torch

from theory.fluctuations import Identity


def _psd(n, gen):
    w = torch.randn(n, n + 3, generator=gen, dtype=torch.float64)
    return w @ w.T / n + 0.5 * torch.eye(n, dtype=torch.float64)


def _sym(c, n, gen):
    x = torch.randn(c, n, n, generator=gen, dtype=torch.float64)
    return x + x.mT


@pytest.mark.parametrize("p,q", [(3, 3), (3, 1)])  # nonlinear layout (q = P_all), linear (q = 1)
def test_tangent_solves_the_linearised_identity_exactly(p, q):
    gen = torch.Generator().manual_seed(11)
    m = 5
    tp, tq = torch.arange(m).repeat_interleave(p), torch.arange(m).repeat_interleave(q)
    strict = (tq[None, :] < tp[:, None]).double()  # A (row time > column time)
    causal = (tp[None, :] <= tq[:, None]).double()  # B (column time <= row time)
    a = torch.randn(m * p, m * q, generator=gen, dtype=torch.float64) * strict
    b = torch.randn(m * q, m * p, generator=gen, dtype=torch.float64) * causal
    phi, g = _psd(m * p, gen), _psd(m * q, gen)
    ident = Identity(a, b, phi, g, m=m, p_phi=p, p_g=q)
    c = 4
    dx = torch.randn(c, m * p, m * q, generator=gen, dtype=torch.float64)
    dy = torch.randn(c, m * p, m * q, generator=gen, dtype=torch.float64)
    dphi, dg = _sym(c, m * p, gen), _sym(c, m * q, gen)
    da, db = ident.tangent(dx, dy, dphi, dg)
    assert torch.equal(da * (1 - strict), torch.zeros_like(da))
    assert torch.equal(db * (1 - causal), torch.zeros_like(db))
    res = da @ g + a @ dg - dphi @ b.T - phi @ db.mT - (dy - dx)
    assert float(res.abs().max()) < 1e-10 * float((dy - dx).abs().max())
    # without kernel tangents the same equation with dPhi = dG = 0
    da0, db0 = ident.tangent(dx, dy, None, None)
    res0 = da0 @ g - phi @ db0.mT - (dy - dx)
    assert float(res0.abs().max()) < 1e-10 * float((dy - dx).abs().max())
