"""Finite-width deep linear networks against the exact linear DMFT (docs/theory.md sections 1, 6).

The simulation is written here, independently of theory/ and simulate/: N(0,1) weights,
1/sqrt(fan_in), readout 1/(gamma0 N), centred output f - f(theta_0), learning rate
eta gamma0^2 N, full-batch gradient descent on (1/2P) sum (f~ - y)^2, seeds batched.
"""

from __future__ import annotations

import math

import pytest
import torch

from theory import Problem, gaussian_data, solve


def simulate(x, y, depth, gamma0, eta, steps, width, seeds, seed=0):
    """Returns (loss (S, T+1), [H^l(T,T) (S, P_all, P_all)]) for S = seeds networks of width N."""
    gen = torch.Generator().manual_seed(seed)
    S, (Pa, D), P, N = seeds, x.shape, y.shape[0], width
    Ws = [torch.randn(S, N, D, generator=gen, dtype=torch.float64)]
    Ws += [torch.randn(S, N, N, generator=gen, dtype=torch.float64) for _ in range(depth - 1)]
    w = torch.randn(S, N, generator=gen, dtype=torch.float64)
    params = Ws + [w]
    for p in params:
        p.requires_grad_(True)

    def forward():
        hs = [x @ Ws[0].transpose(1, 2) / math.sqrt(D)]
        for l in range(1, depth):
            hs.append(hs[-1] @ Ws[l].transpose(1, 2) / math.sqrt(N))
        return hs, (hs[-1] * w[:, None, :]).sum(-1) / (gamma0 * N)

    with torch.no_grad():
        f0 = forward()[1]
    losses = []
    for k in range(steps + 1):
        hs, f = forward()
        err = (f - f0)[:, :P] - y
        losses.append((err.detach() ** 2).mean(-1))
        if k == steps:
            break
        grads = torch.autograd.grad((err**2).sum() / (2 * P), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= eta * gamma0**2 * N * g
    return torch.stack(losses, 1), [(h @ h.transpose(1, 2) / N).detach() for h in hs]


@pytest.mark.slow
def test_deep_linear_networks_match_dmft_loss_and_final_kernels():
    x, y, xt, _ = gaussian_data(8, 16, 2, seed=1)
    L, g0, eta, T, N, S = 3, 1.0, 0.1, 30, 3000, 4
    prob = Problem(x, y, xt, depth=L, activation="linear", gamma0=g0, eta=eta, steps=T)
    sol, gia = solve(prob, strict=True), solve(prob, scheme="gia")
    loss, H = simulate(torch.cat([x, xt]), y, L, g0, eta, T, N, S)
    mean, se = loss.mean(0), loss.std(0) / math.sqrt(S)
    bias = 5.0 / N * sol.loss  # O(1/N) ensemble bias allowance
    assert torch.all((mean - sol.loss).abs()[1:] <= 4 * se[1:] + bias[1:])
    for l in range(L):
        ref, ref_gia = sol.phi_diag(l)[-1], gia.phi_diag(l)[-1]
        hm = H[l].mean(0)
        spread = (H[l] - hm).flatten(1).norm(dim=1).mean() / math.sqrt(S)
        err = (hm - ref).norm()
        assert err <= 4 * spread + 5.0 / N * ref.norm()
        assert (hm - ref_gia).norm() > err  # GIA is measurably worse at L = 3


@pytest.mark.slow
def test_exact_update_fits_gradient_descent_better_than_first_order_at_large_eta():
    x, y, xt, _ = gaussian_data(8, 16, 2, seed=1)
    L, g0, eta, T, N, S = 3, 1.5, 0.2, 20, 3000, 4
    prob = Problem(x, y, xt, depth=L, activation="linear", gamma0=g0, eta=eta, steps=T)
    exact, first = solve(prob, strict=True), solve(prob, update="first_order", strict=True)
    loss, _ = simulate(torch.cat([x, xt]), y, L, g0, eta, T, N, S, seed=7)
    mean, se = loss.mean(0), loss.std(0) / math.sqrt(S)
    err_exact = (mean - exact.loss).abs()
    err_first = (mean - first.loss).abs()
    assert torch.all(err_exact[1:] <= 4 * se[1:] + 5.0 / N * exact.loss[1:])
    assert err_exact.max() < 0.5 * err_first.max()
    assert err_first.max() > 4 * se.max()  # the first-order update is off by several SEs
