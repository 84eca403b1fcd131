"""Blocked causal Jacobians (theory.montecarlo.jacobians) against the dense route
(tests/mc_reference.pathwise_jacobians) and against autograd through the forward-stepped fields."""

import pytest
import torch

from mc_reference import pathwise_jacobians
from theory import get_activation
from theory.montecarlo import causal_jacobians, coupling, solve_fields


def _setup(act_name, t1=7, pa=3, s=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = t1 * pa
    rnd = lambda *sh: torch.randn(*sh, generator=g, dtype=torch.float64)  # noqa: E731
    w = rnd(n, n)
    phi_cov = w @ w.T / n
    w = rnd(n, n)
    g_cov = w @ w.T / n
    tk = torch.arange(t1).repeat_interleave(pa)
    causal_b = (tk[None, :] <= tk[:, None]).to(torch.float64) * rnd(n, n) * 0.1
    strict_a = (tk[None, :] < tk[:, None]).to(torch.float64) * rnd(n, n) * 0.1
    delta = rnd(n) * (torch.arange(n) % pa != pa - 1)  # last point is a test point
    c = coupling(strict_a, phi_cov, delta, 0.3, pa)
    d = coupling(causal_b, g_cov, delta, 0.3, pa)
    u, r = rnd(s, n), rnd(s, n)
    act = get_activation(act_name)
    h, z, gg, ph = solve_fields(u, r, c, d, act, pa)
    return act, u, r, c, d, h, z, pa


@pytest.mark.parametrize("act_name", ["tanh", "linear", "softplus"])
@pytest.mark.parametrize("blocks", [1, 3, 100])
def test_blocked_equals_dense(act_name, blocks):
    act, u, r, c, d, h, z, pa = _setup(act_name)
    ref = pathwise_jacobians(h, z, c, d, act, want_a=True, want_b=True, want_x=True, u=u, r=r,
                             chunk=2)
    got = causal_jacobians(h, z, c, d, act, pa, want_a=True, want_b=True, want_x=True, u=u, r=r,
                           chunk=2, blocks=blocks)
    for x, y in zip(got, ref):
        assert torch.allclose(x, y, atol=1e-12, rtol=1e-10)


def test_blocked_equals_autograd():
    """Independent reference: autograd Jacobians of the forward-stepped fields, per sample."""
    act, u, r, c, d, h, z, pa = _setup("tanh", s=2)
    n = u.shape[1]
    ja, jb = torch.zeros(n, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    for i in range(u.shape[0]):
        f_a = lambda rr: solve_fields(u[i : i + 1], rr[None], c, d, act, pa)[3][0]  # noqa: E731
        f_b = lambda uu: solve_fields(uu[None], r[i : i + 1], c, d, act, pa)[2][0]  # noqa: E731
        ja += torch.autograd.functional.jacobian(f_a, r[i])
        jb += torch.autograd.functional.jacobian(f_b, u[i])
    ja /= u.shape[0]
    jb /= u.shape[0]
    got_a, got_b = causal_jacobians(h, z, c, d, act, pa)
    assert torch.allclose(got_a, ja, atol=1e-12)
    assert torch.allclose(got_b, jb, atol=1e-12)


def test_split_half_means_and_standard_errors():
    """The split version returns the full-sample means (linear in the samples) and, for equal
    halves, |J_1 - J_2| / 2 computed here from two independent calls on the halves."""
    from theory.montecarlo import split_half_jacobians

    act, u, r, c, d, h, z, pa = _setup("tanh", s=6)
    ja, jb, jx, se_a, se_b = split_half_jacobians(h, z, c, d, act, pa, u=u, r=r)
    full = causal_jacobians(h, z, c, d, act, pa, want_x=True, u=u, r=r)
    for x, y in zip((ja, jb, jx), full):
        assert torch.allclose(x, y, atol=1e-12, rtol=1e-10)
    a1, b1 = causal_jacobians(h[:3], z[:3], c, d, act, pa, u=u[:3], r=r[:3])
    a2, b2 = causal_jacobians(h[3:], z[3:], c, d, act, pa, u=u[3:], r=r[3:])
    assert abs(se_a - float(torch.linalg.matrix_norm(a1 - a2)) / 2) < 1e-12
    assert abs(se_b - float(torch.linalg.matrix_norm(b1 - b2)) / 2) < 1e-12
    assert split_half_jacobians(h[:1], z[:1], c, d, act, pa)[3] == float("inf")
