"""Perturbation theory (theory.linear.perturbative): AD coefficient vs the full solver and a closed form.

The closed form is derived independently (see theory/linear/perturbative.py docstring): the O(gamma0^2)
terms of the linear DMFT only involve lazy quantities, giving H^l_2 and G^l_2 in terms of
v_k = eta sum_{j<k} Delta0(j) and V_k = eta sum_{i<k} Delta0(i) v_i^T (exact in discrete time).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from theory import Problem, Status, gaussian_data, solve


def _problem(gamma0, depth=3, T=20, eta=0.1, P=5, D=7, Q=2, seed=3):
    x, y, xt, yt = gaussian_data(P, D, Q, seed=seed)
    return Problem(x, y, xt, yt, depth=depth, activation="linear", gamma0=gamma0, eta=eta, steps=T)


@pytest.mark.parametrize("update", ["exact", "first_order"])
def test_gap_to_full_solver_is_fourth_order(update):
    gs = np.array([0.05, 0.1, 0.2])
    gaps = []
    for g in gs:
        prob = _problem(float(g))
        full, pert = solve(prob, update=update), solve(prob, scheme="perturbative", update=update)
        assert pert.status is Status.EXACT
        gaps.append(
            [
                float((full.loss - pert.loss).abs().max()),
                float((full.f_test - pert.f_test).abs().max()),
                float((full.ntk - pert.ntk).abs().max()),
                float((full.phi[2] - pert.phi[2]).abs().max()),
                float((full.g[0] - pert.g[0]).abs().max()),
            ]
        )
    gaps = np.array(gaps)
    for col in gaps.T:
        slope = np.polyfit(np.log(gs), np.log(col), 1)[0]
        assert 3.8 < slope < 4.2, slope


def _closed_form(prob):
    L, P, eta, T = prob.depth, prob.n_train, prob.eta, prob.steps
    kx = prob.kx
    k0 = (L + 1) * kx[:P, :P]
    step = torch.eye(P, dtype=torch.float64) - eta * k0 / P
    d0 = [prob.y_train]
    for _ in range(T):
        d0.append(step @ d0[-1])
    d0 = torch.stack(d0)  # (m, P)
    v = eta * torch.cat([torch.zeros(1, P, dtype=torch.float64), torch.cumsum(d0, 0)[:-1]])
    outer = d0[:, :, None] * v[:, None, :]  # Delta0(i) v_i^T
    V = eta * torch.cat([torch.zeros(1, P, P, dtype=torch.float64), torch.cumsum(outer, 0)[:-1]])
    kt = kx[:, :P]
    kv = v @ kt.T  # (m, Pa)
    kVk = torch.einsum("ap,kpq,bq->kab", kt, V, kt)  # (m, Pa, Pa)
    vv = kv[:, None, :, None] * kv[None, :, None, :]  # (m, m, Pa, Pa) -> Kx v(t) v(s)^T Kx
    vv = vv.permute(0, 2, 1, 3)
    # sym[k, a, j, b] = (Kx V_k Kx)_ab + (Kx V_j^T Kx)_ab
    sym = kVk[:, :, None, :] + kVk.transpose(1, 2)[None, :, :, :].permute(0, 2, 1, 3)
    H2, G2 = [], []
    acc = torch.zeros_like(vv)
    for j in range(1, L + 1):
        acc = acc + (j**2 * vv + j * (L - j + 1) * sym) / P**2
        H2.append(acc.clone())
    trKV = torch.einsum("pq,kpq->k", kx[:P, :P], V)
    vkv = v @ kx[:P, :P] @ v.T
    for l in range(1, L + 1):
        g = torch.zeros(T + 1, T + 1, dtype=torch.float64)
        for j in range(l, L + 1):
            g = g + ((L - j + 1) * j * (trKV[:, None] + trKV[None, :]) + (L - j + 1) ** 2 * vkv) / P**2
        G2.append(g)
    return H2, G2


@pytest.mark.parametrize("update", ["exact", "first_order"])
def test_second_order_coefficients_match_closed_form(update):
    prob = _problem(0.7, depth=3, T=15)
    sol = solve(prob, scheme="perturbative", update=update)
    H2, G2 = _closed_form(prob)
    so = sol.info["second_order"]
    for l in range(3):
        scale = float(H2[l].abs().max())
        assert float((so["phi"][l] - H2[l]).abs().max()) < 1e-10 * scale
        assert float((so["g"][l] - G2[l]).abs().max()) < 1e-10 * float(G2[l].abs().max())
    # and the truncated expansion is built from them
    assert torch.allclose(sol.phi[1], prob.kx[None, :, None, :] + 0.49 * H2[1], atol=1e-12)


def test_closed_form_loss_correction_first_order_update():
    """Delta_1(k+1) = (I - a K0) Delta_1(k) - a K_1(k) Delta0(k), K_1 from the closed-form kernels."""
    prob = _problem(0.3, depth=2, T=12)
    L, P, a = prob.depth, prob.n_train, prob.eta / prob.n_train
    H2, G2 = _closed_form(prob)
    kx = prob.kx
    k0 = (L + 1) * kx
    k1 = []
    for k in range(prob.steps + 1):
        s = G2[0][k, k] * kx
        for l in range(1, L + 1):
            s = s + H2[l - 1][k, :, k, :] + (G2[l][k, k] * kx if l < L else 0)
        k1.append(s)
    d0, d1, f1 = [prob.y_train], [torch.zeros(P, dtype=torch.float64)], [torch.zeros(prob.n_points, dtype=torch.float64)]
    for k in range(prob.steps):
        f1.append(f1[-1] + a * (k0[:, :P] @ d1[-1] + k1[k][:, :P] @ d0[-1]))
        d1.append(-f1[-1][:P])
        d0.append(d0[-1] - a * k0[:P, :P] @ d0[-1])
    d0, d1 = torch.stack(d0), torch.stack(d1)
    loss2 = 2 * (d0 * d1).mean(-1)
    sol = solve(prob, scheme="perturbative", update="first_order")
    so = sol.info["second_order"]
    assert torch.allclose(so["loss"], loss2, rtol=1e-10, atol=1e-14)
    assert torch.allclose(so["f_test"], torch.stack(f1)[:, P:], rtol=1e-10, atol=1e-14)


def test_direct_perturbative_solve_is_quiet():
    """torch scripts its forward-AD decompositions on the first dual number of a process, with a
    ``torch.jit.script`` FutureWarning; theory silences exactly that one where it starts the dual
    numbers, so a direct solve in a fresh process (warnings as errors) prints nothing."""
    import os
    import subprocess
    import sys

    code = ("from theory import Problem, gaussian_data, solve\n"
            "x, y, _, _ = gaussian_data(4, 5, seed=0)\n"
            "p = Problem(x, y, depth=2, activation='linear', gamma0=0.5, eta=0.1, steps=4)\n"
            "assert solve(p, scheme='perturbative').ok\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=root, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
