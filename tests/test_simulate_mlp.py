"""simulate.train / simulate.mlp against independent references (docs/theory.md sections 1, 3, 6)."""

from __future__ import annotations

import math

import pytest
import torch

from theory.data import gaussian_data
from theory.lazy import lazy_dynamics, lazy_kernels
from theory.problem import Problem
from simulate import DivergenceError, train
from simulate.mlp import equal_time_ntk, forward, init_network, sgd_step


def _problem(depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=10, P=6, Q=2, D=25, seed=1):
    x, y, xt, yt = gaussian_data(P, D, Q, seed=seed)
    return Problem(x, y, xt, yt, depth=depth, activation=activation, gamma0=gamma0, eta=eta, steps=steps)


# ------------------------------------------------------------------ independent autograd reference
def _ref_output(params: dict, x: torch.Tensor, act, gamma0: float) -> torch.Tensor:
    """One network written from docs/theory.md section 1 with plain ops (no batching)."""
    N, D = params["w"].shape[0], x.shape[1]
    a = act.phi(x @ params["W0"].T / math.sqrt(D))
    j = 1
    while f"W{j}" in params:
        a = act.phi(a @ params[f"W{j}"].T / math.sqrt(N))
        j += 1
    return a @ params["w"] / (gamma0 * N)


def _params_of(net, i: int) -> dict:
    p = {"W0": net.w0[i].clone(), "w": net.w[i].clone()}
    for j, W in enumerate(net.hidden):
        p[f"W{j + 1}"] = W[i].clone()
    return p


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_explicit_backward_step_equals_autograd(activation):
    p = _problem(activation=activation, gamma0=1.7, eta=0.3)
    N, P = 64, p.n_train
    net = init_network(p.input_dim, N, p.depth, [3, 4], device="cpu", dtype=torch.float64)
    x, y = p.x_all, p.y_train
    before = [_params_of(net, i) for i in range(2)]
    # take two steps so the second one starts from non-initial weights
    f0 = forward(net, x, p.activation, p.gamma0).f
    for _ in range(2):
        start = [_params_of(net, i) for i in range(2)]
        fields = forward(net, x, p.activation, p.gamma0)
        delta = y - (fields.f - f0)[:, :P]
        sgd_step(net, fields, x[:P], delta, p.eta * p.gamma0 / P)
        for i in range(2):
            prm = {k: v.clone().requires_grad_(True) for k, v in start[i].items()}
            f_init = _ref_output(before[i], x[:P], p.activation, p.gamma0)
            loss = 0.5 * ((_ref_output(prm, x[:P], p.activation, p.gamma0) - f_init - y) ** 2).mean()
            grads = torch.autograd.grad(loss, list(prm.values()))
            lr = p.eta * p.gamma0**2 * N
            after = _params_of(net, i)
            for (name, v), gr in zip(prm.items(), grads):
                torch.testing.assert_close(after[name], v.detach() - lr * gr, rtol=1e-10, atol=1e-10)


def _empirical_ntk(params: dict, x, act, gamma0) -> torch.Tensor:
    N = params["w"].shape[0]
    jac = torch.func.jacrev(lambda prm: _ref_output(prm, x, act, gamma0))(params)
    flat = torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], dim=1)
    return gamma0**2 * N * flat @ flat.T


def test_recorded_ntk_equals_parameter_gradient_ntk_and_predicts_step():
    p = _problem(activation="tanh", gamma0=1.3, eta=0.2, steps=6)
    N, P = 96, p.n_train
    run = train(p, N, 1, seed=11, record=("ntk",))
    net = init_network(p.input_dim, N, p.depth, [11], device="cpu", dtype=torch.float64)
    x = p.x_all
    f0 = forward(net, x, p.activation, p.gamma0).f
    for k in range(p.steps + 1):
        fields = forward(net, x, p.activation, p.gamma0)
        emp = _empirical_ntk(_params_of(net, 0), x, p.activation, p.gamma0)
        torch.testing.assert_close(run.ntk[0, k], emp, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(equal_time_ntk(fields, p.kx)[0], emp, rtol=1e-10, atol=1e-10)
        if k < p.steps:
            sgd_step(net, fields, x[:P], p.y_train - (fields.f - f0)[:, :P], p.eta * p.gamma0 / P)
    # first-order prediction of one step: the step is O(eta) and its error O(eta^2), so the
    # relative error is O(eta): it falls ~10x for eta / 10
    errs = []
    for eta in (1e-2, 1e-3):
        r = train(p.replace(eta=eta, steps=3), N, 1, seed=11, record=("ntk",))
        f = torch.cat([r.f_train, r.f_test], dim=2)[0]
        delta = p.y_train - r.f_train[0]
        pred = (eta / P) * torch.einsum("kab,kb->ka", r.ntk[0, :, :, :P], delta)
        errs.append(float(((f[1:] - f[:-1]) - pred[:-1]).abs().max() / pred[:-1].abs().max()))
    assert errs[1] < 1e-3
    assert 5 < errs[0] / errs[1] < 20


@pytest.mark.parametrize("activation,depth", [("tanh", 3), ("relu", 2)])
def test_initial_kernels_match_lazy_limit(activation, depth):
    """Wide networks at t = 0 vs theory.lazy: every entry within 6 standard errors (16 seeds)."""
    p = _problem(activation=activation, depth=depth, steps=1, P=5, Q=2)
    S = 16
    run = train(p, 2048, S, seed=0, times=[0])
    lazy = lazy_kernels(p.kx, p.depth, p.activation)
    pairs = [(run.ntk[:, 0], lazy.ntk)]
    for l in range(p.depth):
        pairs += [(run.phi[l][:, 0, :, 0], lazy.phi[l]), (run.g[l][:, 0, :, 0], lazy.g[l])]
    for sim, ref in pairs:
        sem = sim.std(0) / math.sqrt(S)
        z = (sim.mean(0) - ref) / sem
        assert z.abs().max() < 6.0, (z.abs().max(), ref)
        # and the fluctuation is genuinely O(1/sqrt N): per-seed spread well below the value
        assert float(sim.std(0).max()) < 0.2 * float(ref.abs().max())


def test_initial_output_scales_as_inverse_gamma0_sqrt_width_and_is_centred():
    """Depth 1: Var f(theta_0) = Phi^1_{mu mu} / (gamma0^2 N) exactly (w independent of h)."""
    p = _problem(depth=1, activation="tanh", P=4, Q=0)
    phi1 = torch.diagonal(lazy_kernels(p.kx, 1, p.activation).phi[0])
    S = 2000
    for N in (64, 1024):
        net = init_network(p.input_dim, N, 1, list(range(S)), device="cpu", dtype=torch.float64)
        for gamma0 in (0.5, 2.0):
            f0 = forward(net, p.x_all, p.activation, gamma0, backward=False).f  # (S, P)
            ratio = (f0**2).mean(0) * gamma0**2 * N / phi1
            # relative standard error of a variance from S Gaussian draws: sqrt(2 / S) = 0.032
            assert (ratio - 1).abs().max() < 5 * math.sqrt(2 / S), ratio
    run = train(p.replace(gamma0=0.5), 64, 3, record=None)
    assert torch.equal(run.f_train[:, 0], torch.zeros_like(run.f_train[:, 0]))
    torch.testing.assert_close(run.loss[:, 0], (p.y_train**2).mean().expand(3))


def test_small_gamma0_follows_lazy_dynamics():
    """gamma0 -> 0 (docs/theory.md sections 3, 6): outputs follow (I - eta K / P)^k y on the lazy NTK."""
    p = _problem(depth=2, activation="relu", gamma0=1e-3, eta=0.5, steps=20, P=8, Q=3)
    S = 6
    run = train(p, 1024, S, record=None)
    K = lazy_kernels(p.kx, p.depth, p.activation).ntk
    delta, f = lazy_dynamics(K, p.y_train, p.eta, p.steps)
    loss = (delta**2).mean(1)
    z = (run.mean("loss") - loss)[1:] / run.sem("loss")[1:]
    assert z.abs().max() < 5.0, z
    zf = (run.mean("f_test") - f[:, p.n_train:])[1:] / run.sem("f_test")[1:]
    assert zf.abs().max() < 5.0, zf
    # and the learning actually happened (the comparison is not trivially 0 = 0)
    assert float(loss[-1]) < 0.5 * float(loss[0])


def _loss_gap_z(p, gamma0_a, gamma0_b):
    S = 5
    a = train(p.replace(gamma0=gamma0_a), 256, S, seed=0, record=None)
    b = train(p.replace(gamma0=gamma0_b), 2048, S, seed=100, record=None)
    return (a.mean() - b.mean())[1:] / torch.sqrt(a.sem() ** 2 + b.sem() ** 2)[1:]


def test_width_invariance_at_fixed_gamma0_not_at_fixed_gamma():
    p = _problem(depth=2, activation="tanh", gamma0=1.0, eta=0.2, steps=30, P=8, Q=0)
    z_same = _loss_gap_z(p, 1.0, 1.0)
    assert z_same.abs().max() < 4.0, z_same
    # gamma = gamma0 sqrt(N) fixed: gamma0 falls by sqrt(8) at the wider network
    z_gamma = _loss_gap_z(p, 2.0, 2.0 / math.sqrt(8))
    assert z_gamma.abs().max() > 8.0, z_gamma


def test_batched_seeds_equal_single_seed_training():
    p = _problem(steps=8)
    run = train(p, 128, 3, seed=5)
    for i in range(3):
        one = train(p, 128, 1, seed=5 + i)
        for name in ("loss", "f_train", "f_test", "ntk"):
            torch.testing.assert_close(getattr(run, name)[i], getattr(one, name)[0], rtol=1e-10, atol=1e-12)
        for l in range(p.depth):
            torch.testing.assert_close(run.phi[l][i], one.phi[l][0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(run.g[l][i], one.g[l][0], rtol=1e-10, atol=1e-12)
    # chunked batches (tiny memory budget) give the same result
    small = train(p, 128, 3, seed=5, memory_budget=1)
    assert small.info["seed_chunk"] == 1
    torch.testing.assert_close(small.phi[1], run.phi[1], rtol=1e-10, atol=1e-12)


def test_kernels_symmetric_psd_and_consistent_with_ntk():
    p = _problem(steps=5)
    run = train(p, 200, 2, times=[0, 2, 5])
    n = 3 * p.n_points
    for l in range(p.depth):
        for arr in (run.phi[l], run.g[l]):
            m = arr.reshape(2, n, n)
            torch.testing.assert_close(m, m.mT)
            assert torch.linalg.eigvalsh(m).min() > -1e-10
    k = run.g_diag(0) * p.kx + run.g_diag(1) * run.phi_diag(0) + run.g_diag(2) * run.phi_diag(1) + run.phi_diag(2)
    torch.testing.assert_close(k, run.ntk[:, [0, 2, 5]])


def test_divergence_is_detected_and_masked():
    p0 = _problem(depth=3, activation="linear", gamma0=3.0, steps=2, Q=1)
    p = p0.replace(eta=0.9 * p0.eta_limit(), steps=30)
    run = train(p, 128, 3)
    assert run.diverged.all() and (run.diverged_step > 0).all()
    for i in range(3):
        k = int(run.diverged_step[i])
        assert torch.isfinite(run.loss[i, :k]).all() and torch.isnan(run.loss[i, k:]).all()
        assert not run.valid[i, k:].any() and run.valid[i, :k].all()
        assert torch.isnan(run.phi[0][i, k:]).all() and torch.isfinite(run.phi[0][i, :k, :, :k]).all()
    with pytest.raises(DivergenceError):
        run.raise_for_divergence()
    ok = train(p.replace(gamma0=0.05, eta=0.1), 64, 2, record=None)
    assert not ok.any_diverged and ok.raise_for_divergence() is ok
    assert torch.isfinite(ok.mean()).all()


def test_bad_input_is_rejected():
    p = _problem()
    with pytest.raises(ValueError, match="gamma0"):
        train(p.replace(gamma0=0.0), 16)
    with pytest.raises(ValueError, match="width"):
        train(p, 0)
    with pytest.raises(ValueError, match="record"):
        train(p, 16, record=("nope",))
    with pytest.raises(ValueError, match="times"):
        train(p, 16, times=[p.steps + 1])
    with pytest.raises(ValueError, match="device"):
        train(p, 16, device="tpu")
    with pytest.raises(ValueError, match="name"):
        train(p, 16, record=None).mean("ntk")


@pytest.mark.gpu
def test_cuda_smoke():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    p = _problem(steps=5)
    gpu = train(p, 256, 2, device="cuda")
    cpu = train(p, 256, 2, device="cpu")
    assert gpu.loss.device.type == "cpu" and gpu.phi[0].shape == cpu.phi[0].shape
    assert torch.isfinite(gpu.loss).all() and not gpu.any_diverged
    # different random streams on the two devices: agree only statistically (same lazy limit)
    assert (gpu.loss[:, 1] - cpu.loss[:, 1]).abs().max() < 0.2


@pytest.mark.parametrize("width", [10**6, 2**40])
def test_impossible_width_is_a_value_error_before_allocating(width):
    # one depth-2 network of width 10^6 holds a 10^6 x 10^6 float64 matrix (8 TB); 2^40 overflows
    # int64 element counts: a ValueError naming the field, not an allocator error
    with pytest.raises(ValueError, match=r"^width: .*GiB") as exc:
        train(_problem(), width, 1)
    assert "smaller width" in str(exc.value)
