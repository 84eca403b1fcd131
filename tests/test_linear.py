"""Exact linear DMFT (theory.linear) against independent references (docs/theory.md sections 4-6).

References derived by hand in our conventions (docs/theory.md section 1) for a two-layer linear network
on whitened training data (X X^T / D = I_P): writing w = a w0 + b g0, W = W0 + (p w0 + q g0) xy^T
with g0 = W0 xy and xy = sum_mu yhat_mu x_mu / sqrt(D), gradient descent with step eta is, at
infinite width and with c = eta gamma0 / P and delta = |y| - (a p + b (1 + q)) / gamma0,

    a' = a + c delta p,  b' = b + c delta (1 + q),  p' = p + c delta a,  q' = q + c delta b,

f~(x) = (a p + b (1 + q)) rho(x) / gamma0 with rho(x) = sum_mu yhat_mu Kx[mu, x],
G^1(k, j) = a_k a_j + b_k b_j and H^1(k, j) = Kx + rho rho^T ((1+q_k)(1+q_j) + p_k p_j - 1).
Gradient flow gives s = G^1(t,t) = sqrt(1 + gamma0^2 (|y| - delta)^2) and the scalar ODE
d delta/dt = -(2/P) delta sqrt(1 + gamma0^2 (|y| - delta)^2) (NTK 2I at gamma0 = 0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from theory import Problem, SolverError, Status, gaussian_data, solve


def whitened(P, D, Q=0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
    x = basis[:P] * math.sqrt(D)
    y = torch.randn(P, generator=gen, dtype=torch.float64)
    xt = torch.randn(Q, D, generator=gen, dtype=torch.float64) if Q else None
    return x, y, xt


def two_layer_gd(x, y, xt, gamma0, eta, steps):
    """Exact infinite-width gradient descent of the whitened two-layer net (module docstring)."""
    P, D = x.shape
    xall = x if xt is None else torch.cat([x, xt])
    kx = xall @ xall.T / D
    ynorm = float(y.norm())
    rho = kx[:, :P] @ (y / ynorm)
    c = eta * gamma0 / P
    a, b, p, q = 1.0, 0.0, 0.0, 0.0
    rows = []
    for _ in range(steps + 1):
        F = (a * p + b * (1 + q)) / gamma0
        rows.append((a, b, p, q, F))
        delta = ynorm - F
        a, b, p, q = a + c * delta * p, b + c * delta * (1 + q), p + c * delta * a, q + c * delta * b
    a, b, p, q, F = (torch.tensor(v, dtype=torch.float64) for v in zip(*rows))
    f = F[:, None] * rho[None, :]
    G = a[:, None] * a[None, :] + b[:, None] * b[None, :]
    coef = (1 + q)[:, None] * (1 + q)[None, :] + p[:, None] * p[None, :] - 1
    H = kx[None, :, None, :] + coef[:, None, :, None] * (rho[:, None] * rho[None, :])[None, :, None, :]
    return f, G, H


@pytest.mark.parametrize("gamma0", [0.5, 1.0, 2.0])
def test_two_layer_exact_update_matches_exact_gradient_descent(gamma0):
    x, y, xt = whitened(4, 7, Q=2, seed=1)
    eta, T = 0.4, 25
    prob = Problem(x, y, xt, depth=1, activation="linear", gamma0=gamma0, eta=eta, steps=T)
    sol = solve(prob, strict=True)
    f, G, H = two_layer_gd(x, y, xt, gamma0, eta, T)
    assert torch.allclose(sol.f_train, f[:, :4], rtol=0, atol=1e-10)
    assert torch.allclose(sol.f_test, f[:, 4:], rtol=0, atol=1e-10)
    assert torch.allclose(sol.loss, ((f[:, :4] - y) ** 2).mean(-1), rtol=0, atol=1e-10)
    assert torch.allclose(sol.g[0][:, 0, :, 0], G, rtol=0, atol=1e-10)
    assert torch.allclose(sol.phi[0], H, rtol=0, atol=1e-10)
    eq_G = torch.diagonal(G)[:, None, None]
    ntk = eq_G * prob.kx + sol.phi_diag(0)  # G^1 H^0 + G^2 H^1
    assert torch.allclose(sol.ntk, ntk, rtol=0, atol=1e-10)
    assert sol.residual < 1e-12


@pytest.mark.parametrize("gamma0", [0.5, 1.0, 2.0])
def test_two_layer_first_order_matches_gradient_flow_ode(gamma0):
    x, y, _ = whitened(1, 3, seed=2)
    y = torch.ones(1, dtype=torch.float64)
    T, tmax = 400, 0.3
    prob = Problem(x, y, depth=1, activation="linear", gamma0=gamma0, eta=tmax / T, steps=T)
    sol = solve(prob, update="first_order", strict=True)
    rhs = lambda t, d: -2.0 * d * np.sqrt(1.0 + gamma0**2 * (1.0 - d) ** 2)  # noqa: E731  (P = 1)
    ref = solve_ivp(rhs, (0, tmax), [1.0], t_eval=sol.t.numpy(), rtol=1e-12, atol=1e-14)
    delta = torch.tensor(ref.y[0])
    s = torch.sqrt(1.0 + gamma0**2 * (1.0 - delta) ** 2)
    assert ((sol.loss.sqrt() - delta).abs() / delta).max() < 1e-3
    assert ((sol.ntk[:, 0, 0] - 2 * s).abs() / (2 * s)).max() < 1e-3
    assert ((sol.g_diag(0)[:, 0, 0] - s).abs() / s).max() < 1e-3
    assert delta[-1] < 0.75  # the comparison covers real learning, not just t ~ 0


def _problem(gamma0, depth=2, P=5, D=7, Q=2, T=15, eta=0.2, seed=3):
    x, y, xt, yt = gaussian_data(P, D, Q, seed=seed)
    return Problem(x, y, xt, yt, depth=depth, activation="linear", gamma0=gamma0, eta=eta, steps=T)


@pytest.mark.parametrize("update", ["exact", "first_order"])
def test_small_gamma0_tends_to_lazy_dynamics_like_gamma0_squared(update):
    gaps = []
    for g in (0.02, 0.04, 0.08):
        prob = _problem(g, depth=3)
        sol = solve(prob, update=update)
        lazy = solve(prob, "ntk")
        gap = max(
            float((sol.loss - lazy.loss).abs().max()),
            float((sol.f_test - lazy.f_test).abs().max()),
            float((sol.ntk - lazy.ntk).abs().max()),
            max(float((sol.phi[l] - lazy.phi[l]).abs().max()) for l in range(3)),
            max(float((sol.g[l] - lazy.g[l]).abs().max()) for l in range(3)),
        )
        gaps.append(gap)
    ratios = [gaps[i + 1] / gaps[i] for i in range(2)]
    assert all(3.6 < r < 4.4 for r in ratios), ratios
    assert gaps[0] < 1e-2


def test_gia_equals_dmft_at_one_layer_and_differs_deeper():
    one = _problem(1.5, depth=1)
    a, b = solve(one), solve(one, scheme="gia")
    assert b.response_a is None and b.response_b is None
    assert torch.allclose(a.loss, b.loss, rtol=0, atol=1e-13)
    assert torch.allclose(a.phi[0], b.phi[0], rtol=0, atol=1e-12)
    assert torch.allclose(a.g[0], b.g[0], rtol=0, atol=1e-12)
    two = _problem(1.5, depth=2)
    a, b = solve(two), solve(two, scheme="gia")
    assert (a.loss - b.loss).abs().max() > 1e-3
    assert (a.phi[1] - b.phi[1]).abs().max() > 1e-3


def test_status_shapes_and_views():
    prob = _problem(1.0, depth=3)
    sol = solve(prob, strict=True)
    assert sol.status is Status.CONVERGED and sol.residual < 1e-10
    T1, Pa = prob.steps + 1, prob.n_points
    native = sol.info["linear_responses"]  # the linear solver's own layout
    assert len(native["a"]) == 3 and native["a"][0].shape == (T1, Pa, T1)
    assert len(native["b"]) == 3 and native["b"][0].shape == (T1, T1, Pa)
    assert torch.all(native["b"][1][:, :, prob.n_train :] == 0)
    # the layout every solver shares (theory.Solution): A^1, A^2 and B^1, B^2
    assert len(sol.response_a) == 2 and len(sol.response_b) == 2
    assert all(r.shape == (T1, Pa, T1, Pa) for r in sol.response_a + sol.response_b)
    assert torch.all(sol.response_b[0][..., prob.n_train :] == 0)
    assert sol.response_b[0].stride()[1] == 0 and sol.response_a[0].stride()[3] == 0  # views
    assert sol.g[0].stride()[1] == 0  # point-independent: a broadcast view
    assert torch.isfinite(sol.phi[2]).all()


def test_past_critical_gamma0_reports_divergence_and_strict_raises():
    x, y, _ = whitened(1, 3, seed=4)
    prob = Problem(x, torch.ones(1), depth=1, activation="linear", gamma0=10.0, eta=0.3, steps=40)
    sol = solve(prob)
    assert sol.status is Status.DIVERGED and not sol.ok
    assert "reason" in sol.info and "diverged_step" in sol.info
    k = sol.info["diverged_step"]
    assert torch.isnan(sol.loss[k:]).all() and torch.isfinite(sol.loss[:k]).all()
    with pytest.raises(SolverError):
        solve(prob, strict=True)
    # the same eta at a moderate gamma0 is fine
    assert solve(prob.replace(gamma0=1.0)).status is Status.CONVERGED


@pytest.mark.parametrize(
    "kw",
    [
        {"scheme": "bogus"},
        {"update": "second_order"},
        {"tol": -1.0},
        {"max_iterations": 0},
        {"dtype": torch.int64},
        {"threads": 0},
    ],
)
def test_invalid_options_raise(kw):
    with pytest.raises(ValueError):
        solve(_problem(1.0), **kw)


def test_front_door_rejects_unknown_scheme_and_update():
    with pytest.raises(ValueError, match="valid values"):
        solve(_problem(1.0), scheme="exact")
    with pytest.raises(ValueError, match="valid values"):
        solve(_problem(1.0), update="euler")
