"""Mehler-series pair moments (theory.montecarlo.mehler) against machine-precision 2-D quadrature
(theory.lazy.gaussian_moments) and closed forms, including correlations near +-1."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from theory import gaussian_moments, get_activation
from theory.montecarlo import mehler_matrix, pair_moments


def _cov(n, scale, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, n, generator=g, dtype=torch.float64)
    cov = z @ z.T / n * scale
    # near-duplicates: correlations 0.999 and -0.99 with point 0
    v = torch.zeros(n + 2, n, dtype=torch.float64)
    v[:n] = torch.eye(n, dtype=torch.float64)
    v[n, 0], v[n, 1] = 0.999, 0.03
    v[n + 1, 0], v[n + 1, 2] = -0.99, 0.1
    return v @ cov @ v.T


@pytest.mark.parametrize("name", ["tanh", "softplus", "erf"])
@pytest.mark.parametrize("scale", [0.2, 1.0, 3.0])
def test_mehler_matches_quadrature(name, scale):
    act = get_activation(name)
    cov = _cov(8, scale, seed=int(10 * scale))
    d = torch.diagonal(cov)
    ref_p, ref_d = gaussian_moments(act, d[:, None], d[None, :], cov, quadrature=True)
    for f, ref in ((act.phi, ref_p), (act.dphi, ref_d)):
        m, rem = mehler_matrix(f, cov)
        # error bounded by the Parseval remainder (relative), plus quadrature round-off
        bound = rem * float(torch.diagonal(ref).abs().max()) + 1e-11
        assert float((m - ref).abs().max()) <= bound
        assert float((m - ref).abs().max()) < 2e-4


def test_closed_form_path_and_diagonal():
    act = get_activation("erf")
    cov = _cov(6, 1.0, seed=3)
    e_p, e_d, rem = pair_moments(act, cov)
    d = torch.diagonal(cov)
    assert rem == 0.0
    assert torch.allclose(e_p, gaussian_moments(act, d[:, None], d[None, :], cov)[0], atol=1e-14)
    m, _ = mehler_matrix(act.phi, cov)
    assert torch.allclose(m, e_p, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.05, 4.0), st.floats(-0.999, 0.999), st.floats(0.05, 4.0))
def test_two_point_moments_tanh(qa, rho, qb):
    act = get_activation("tanh")
    c = rho * (qa * qb) ** 0.5
    cov = torch.tensor([[qa, c], [c, qb]], dtype=torch.float64)
    m, rem = mehler_matrix(act.phi, cov)
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    ref = gaussian_moments(act, t(qa), t(qb), t(c), quadrature=True)[0]
    assert abs(float(m[0, 1]) - float(ref)) <= rem * max(qa, qb, 1.0) + 1e-10
