"""Hypothesis properties of the linear DMFT (docs/theory.md section 6): symmetry, PSD, causality,
permutation and rotation invariance."""

from __future__ import annotations


import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theory import Problem, Status, solve

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


def _valid_steps(sol) -> int:
    """Time points the properties apply to: all of them, or those before a divergence (the
    solver marks a diverged trajectory non-finite from ``diverged_step`` on)."""
    if sol.status is Status.DIVERGED:
        step = sol.info["diverged_step"]
        assert 0 < step <= sol.problem.steps and not torch.isfinite(sol.loss[step:]).all()
        return step
    assert sol.ok, sol.info.get("reason")
    return sol.problem.steps + 1


def _diverging() -> Problem:
    """A case hypothesis found in CI: past the critical gamma0 * eta, the loss blows up at step 4."""
    t = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
    return Problem(t([[0.7320, -0.6587, -0.3261, -0.8493, -0.0743]]), t([1.8765]),
                   t([[-0.6404, -1.6534, 0.3582, -1.6117, 0.7687], [-1.5158, -0.6326, 0.4176, -0.5030, 0.5745]]),
                   depth=2, activation="linear", gamma0=1.5, eta=0.52, steps=4)


@SETTINGS
@given(problems(), st.sampled_from(["dmft", "gia", "perturbative"]))
@example(_diverging(), "dmft")
def test_kernels_symmetric_psd_and_responses_causal(prob, scheme):
    sol = solve(prob, scheme=scheme)
    t = _valid_steps(sol)
    for kern in list(sol.phi) + list(sol.g):
        k = _flat(kern[:t, :, :t])
        scale = max(1.0, float(k.abs().max()))
        assert torch.allclose(k, k.T, atol=1e-12 * scale)
        if scheme != "perturbative":  # a truncated expansion need not be PSD
            assert float(torch.linalg.eigvalsh(k)[0]) > -1e-9 * scale
    if scheme == "dmft":
        native = sol.info["linear_responses"]
        for a in native["a"]:  # A(k, mu; s) = 0 for s >= k
            assert torch.all(torch.triu(a[:t, :, :t].permute(1, 0, 2)) == 0)
        for b in native["b"]:  # B(k; s, nu) = 0 for s >= k
            assert torch.all(torch.triu(b[:t, :t].permute(2, 0, 1)) == 0)
        for r in sol.response_a + sol.response_b:  # the common layout: 0 for s >= k
            assert torch.all(torch.triu(r[:t, :, :t].permute(1, 3, 0, 2)) == 0)


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
    t = _valid_steps(a)
    assert b.status is a.status and _valid_steps(b) == t
    perm = torch.cat([pt, P + pq]) if Q else pt
    assert torch.allclose(a.loss[:t], b.loss[:t], atol=1e-12)
    assert torch.allclose(a.f_train[:t, pt], b.f_train[:t], atol=1e-12)
    if Q:
        assert torch.allclose(a.f_test[:t, pq], b.f_test[:t], atol=1e-12)
    assert torch.allclose(a.ntk[:t, perm][:, :, perm], b.ntk[:t], atol=1e-11)
    for l in range(prob.depth):
        assert torch.allclose(a.phi[l][:t, perm][:, :, :t, perm], b.phi[l][:t, :, :t], atol=1e-11)
        assert torch.allclose(a.g[l][:t, :, :t], b.g[l][:t, :, :t], atol=1e-11)


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
    t = _valid_steps(a)
    assert b.status is a.status and _valid_steps(b) == t
    assert torch.allclose(a.loss[:t], b.loss[:t], atol=1e-12)
    assert torch.allclose(a.ntk[:t], b.ntk[:t], atol=1e-11)
    for l in range(prob.depth):
        assert torch.allclose(a.phi[l][:t, :, :t], b.phi[l][:t, :, :t], atol=1e-11)
