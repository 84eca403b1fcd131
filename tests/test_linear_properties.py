"""Hypothesis properties of the linear DMFT (docs/theory.md section 6): symmetry, PSD, causality,
permutation and rotation invariance."""

from __future__ import annotations


import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import Problem, solve

SETTINGS = settings(max_examples=12, deadline=None)


@st.composite
def problems(draw):
    P = draw(st.integers(1, 4))
    Q = draw(st.integers(0, 2))
    D = draw(st.integers(1, 6))
    L = draw(st.integers(1, 3))
    T = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**16))
    gamma0 = draw(st.floats(0.1, 1.5))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(P + Q, D, generator=gen, dtype=torch.float64)
    y = torch.randn(P, generator=gen, dtype=torch.float64)
    kx = x[:P] @ x[:P].T / D
    lmax = float(torch.linalg.eigvalsh(kx)[-1])
    eta = draw(st.floats(0.05, 0.6)) * P / ((L + 1) * max(lmax, 1e-3))
    xt = x[P:] if Q else None
    return Problem(x[:P], y, xt, depth=L, activation="linear", gamma0=gamma0, eta=eta, steps=T)


def _flat(k):
    m, p = k.shape[0], k.shape[1]
    return k.reshape(m * p, m * p)


@SETTINGS
@given(problems(), st.sampled_from(["dmft", "gia", "perturbative"]))
def test_kernels_symmetric_psd_and_responses_causal(prob, scheme):
    sol = solve(prob, scheme=scheme)
    for kern in list(sol.phi) + list(sol.g):
        k = _flat(kern)
        scale = max(1.0, float(k.abs().max()))
        assert torch.allclose(k, k.T, atol=1e-12 * scale)
        if scheme != "perturbative":  # a truncated expansion need not be PSD
            assert float(torch.linalg.eigvalsh(k)[0]) > -1e-9 * scale
    if scheme == "dmft":
        native = sol.info["linear_responses"]
        for a in native["a"]:  # A(k, mu; s) = 0 for s >= k
            assert torch.all(torch.triu(a.permute(1, 0, 2)) == 0)
        for b in native["b"]:  # B(k; s, nu) = 0 for s >= k
            assert torch.all(torch.triu(b.permute(2, 0, 1)) == 0)
        for r in sol.response_a + sol.response_b:  # the common layout: 0 for s >= k
            assert torch.all(torch.triu(r.permute(1, 3, 0, 2)) == 0)


@SETTINGS
@given(problems(), st.integers(0, 2**16))
def test_permuting_points_permutes_outputs(prob, seed):
    gen = torch.Generator().manual_seed(seed)
    P, Q = prob.n_train, prob.n_test
    pt = torch.randperm(P, generator=gen)
    pq = torch.randperm(Q, generator=gen) if Q else None
    prob2 = prob.replace(
        x_train=prob.x_train[pt], y_train=prob.y_train[pt], x_test=prob.x_test[pq] if Q else None
    )
    a, b = solve(prob), solve(prob2)
    perm = torch.cat([pt, P + pq]) if Q else pt
    assert torch.allclose(a.loss, b.loss, atol=1e-12)
    assert torch.allclose(a.f_train[:, pt], b.f_train, atol=1e-12)
    if Q:
        assert torch.allclose(a.f_test[:, pq], b.f_test, atol=1e-12)
    assert torch.allclose(a.ntk[:, perm][:, :, perm], b.ntk, atol=1e-11)
    for l in range(prob.depth):
        assert torch.allclose(a.phi[l][:, perm][:, :, :, perm], b.phi[l], atol=1e-11)
        assert torch.allclose(a.g[l], b.g[l], atol=1e-11)


@SETTINGS
@given(problems(), st.integers(0, 2**16))
def test_rotating_inputs_changes_nothing(prob, seed):
    gen = torch.Generator().manual_seed(seed)
    D = prob.input_dim
    rot, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
    prob2 = prob.replace(
        x_train=prob.x_train @ rot, x_test=None if prob.x_test is None else prob.x_test @ rot
    )
    a, b = solve(prob), solve(prob2)
    assert torch.allclose(a.loss, b.loss, atol=1e-12)
    assert torch.allclose(a.ntk, b.ntk, atol=1e-11)
    for l in range(prob.depth):
        assert torch.allclose(a.phi[l], b.phi[l], atol=1e-11)
