"""theory.fluctuations against independent references (docs/finite_width.md section 8).

Fast tests: the exact finite-width reduction of whitened two-layer linear networks (Wishart),
limits (gamma0 -> 0, closed forms of the lazy kernels), random networks at initialisation,
two implementations of the same equations (Monte Carlo vs exact on linear networks), and input
checks. Brute-force ensembles of trained networks are in test_fluctuations_networks.py (slow).
"""

from __future__ import annotations

import math

import pytest
import torch

from finite_width_reference import network_gram, two_layer_from_gram, whitened_inputs, wishart_gram
from simulate.mlp import forward, init_network
from theory import Problem, SolverError, Status, fluctuations, solve
from theory.fluctuations import Fluctuations


def small(depth=2, act="linear", gamma0=1.2, steps=4, test=True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, generator=g, dtype=torch.float64)
    xt = torch.randn(1, 5, generator=g, dtype=torch.float64) if test else None
    return Problem(x, y, x_test=xt, depth=depth, activation=act, gamma0=gamma0, eta=0.3, steps=steps)


def whitened(gamma0=1.0, steps=8):
    x = whitened_inputs(5, 8)
    y = torch.tensor([1.0, -0.5, 0.7], dtype=torch.float64)
    return Problem(x[:3], y, x_test=x[3:], depth=1, activation="linear", gamma0=gamma0, eta=0.4,
                   steps=steps)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_wishart_reduction_reproduces_trained_networks():
    """The reference itself: a whitened two-layer network is a function of its Gram matrix."""
    from simulate import train

    prob = whitened(steps=6)
    run = train(prob, width=48, seeds=3, seed=11)
    net = init_network(8, 48, 1, [11, 12, 13], device="cpu", dtype=torch.float64)
    ref = two_layer_from_gram(network_gram(net.w0, net.w, prob.x_all), prob.y_train, 2,
                              gamma0=prob.gamma0, eta=prob.eta, steps=prob.steps)
    assert float((ref["loss"] - run.loss).abs().max()) < 1e-12
    assert float((ref["ntk"] - run.ntk).abs().max()) < 1e-12
    assert float((ref["f"][:, :, 3:] - run.f_test).abs().max()) < 1e-12


def test_two_layer_whitened_matches_exact_finite_width():
    """N Var of every observable equals the exact Wishart reduction at N = 1e5 (within 4 standard
    errors of the reference, which has 1.5e5 samples: ~0.8 %)."""
    gamma0 = 1.5
    prob = whitened(gamma0=gamma0)
    fl = fluctuations(prob)
    assert fl.method == "linear" and fl.status is Status.CONVERGED
    width, count = 10**5, 150_000
    ref = two_layer_from_gram(wishart_gram(width, 6, count, seed=3), prob.y_train, 2,
                              gamma0=gamma0, eta=prob.eta, steps=prob.steps)
    pred = {"loss": fl.loss, "f": torch.cat([fl.f_train, fl.f_test], 1), "ntk": fl.ntk,
            "phi": fl.phi[0], "g": fl.g[0][:, 0, 0]}
    for name, p in pred.items():
        x = ref[name] - ref[name].mean(0)
        var = width * (x**2).mean(0)
        se = width * ((x**4).mean(0) - (x**2).mean(0) ** 2).clamp(min=0).sqrt() / math.sqrt(count)
        keep = p > 1e-6 * p.max()
        assert bool(((var - p).abs() <= 4 * se + 2e-3 * p)[keep].all()), name


def test_lazy_limit_of_the_linear_method():
    """gamma0 -> 0: the exact linear fluctuations equal the lazy closed forms (O(gamma0^2))."""
    for depth in (1, 3):
        prob = small(depth=depth, gamma0=1e-3, steps=5)
        a, b = fluctuations(prob, "linear"), fluctuations(prob.replace(gamma0=0.0))
        assert b.method == "lazy" and b.status is Status.EXACT
        for name in ("loss", "f_train", "f_test", "ntk"):
            assert rel(getattr(a, name)[1:], getattr(b, name)[1:]) < 1e-4, name
        for l in range(depth):
            assert rel(a.phi[l], b.phi[l]) < 1e-4 and rel(a.g[l], b.g[l]) < 1e-4


def test_lazy_linear_closed_forms():
    """Linear network at initialisation: Phi^l is an average of l independent Wishart factors,
    N Var Phi^l_ab = l (K_aa K_bb + K_ab^2); G^l a product of L-l+1 chi-square means, 2 (L-l+1)."""
    prob = small(depth=3, gamma0=0.0)
    fl = fluctuations(prob)
    kx = prob.kx
    d = torch.diagonal(kx)
    for l in range(3):
        assert rel(fl.phi[l][2], (l + 1) * (d[:, None] * d[None] + kx**2)) < 1e-12
        assert abs(float(fl.g[l][2, 0, 1]) - 2 * (3 - l)) < 1e-12


def test_lazy_nonlinear_matches_random_networks_at_initialisation():
    """tanh, L = 2: N Var of the initial kernels of 2000 random width-256 networks agrees with the
    lazy prediction within 15 % (about 4 standard errors of the ensemble plus the O(1/N) bias)."""
    prob = small(depth=2, act="tanh", gamma0=0.0)
    fl = fluctuations(prob, samples=1 << 17)
    width, seeds = 256, 2000
    x = prob.x_all
    vals = {"phi1": [], "phi2": [], "g1": [], "g2": []}
    for s0 in range(0, seeds, 500):
        net = init_network(5, width, 2, list(range(s0, s0 + 500)), device="cpu", dtype=torch.float64)
        fields = forward(net, x, prob.activation, 1.0)
        gram = lambda u: u @ u.mT / width  # noqa: E731
        vals["phi1"].append(gram(fields.a[0]))
        vals["phi2"].append(gram(fields.a[1]))
        vals["g1"].append(gram(fields.g[0]))
        vals["g2"].append(gram(fields.g[1]))
    pred = {"phi1": fl.phi[0][0], "phi2": fl.phi[1][0], "g1": fl.g[0][0], "g2": fl.g[1][0]}
    for k, v in vals.items():
        emp = width * torch.cat(v).var(0)
        assert float((emp / pred[k] - 1).abs().max()) < 0.15, k


@pytest.mark.parametrize("march,precision", [(True, "double"), (False, "double"), (True, "single")])
def test_montecarlo_equals_exact_on_linear_networks(march, precision):
    """Two implementations of the same equations: the sampled-site machinery (moment-matched
    population, causal-factor tangents, identity in the per-point layout; solved by the time
    march or by sweeps) with the exact Wick noise reproduces the exact linear method; in single
    precision population products too, to the same tolerance."""
    prob = small(depth=2, gamma0=1.5, steps=5)
    ex = fluctuations(prob, "linear")
    mc = fluctuations(prob, "montecarlo", solution=ex.solution, population=300, tol=1e-6, march=march,
                      precision=precision)
    assert mc.info["noise"] == "exact" and mc.status is Status.CONVERGED
    for name in ("loss", "f_train", "f_test", "ntk"):
        assert rel(getattr(mc, name)[1:], getattr(ex, name)[1:]) < 5e-4, name
    for l in range(2):
        assert rel(mc.phi[l], ex.phi[l]) < 5e-4 and rel(mc.g[l], ex.g[l]) < 5e-4


def test_sampled_noise_agrees_with_the_wick_basis():
    prob = small(depth=2, gamma0=1.0, steps=4)
    ex = fluctuations(prob, "linear")
    sm = fluctuations(prob, "linear", samples=2000, seed=2)
    se = sm.info["standard_error"]
    assert sm.info["noise"] == "sampled"
    assert bool(((sm.loss - ex.loss).abs() <= 4.5 * se["loss"] + 1e-12).all())
    assert bool(((sm.ntk - ex.ntk).abs() <= 4.5 * se["ntk"] + 1e-12).all())


def test_base_point_is_self_consistent():
    """The finite-width map (responses from the transpose identity) reproduces the solver's own
    infinite-width solution, responses included, to round-off."""
    fl = fluctuations(small(depth=3, gamma0=1.3, steps=6), "linear")
    assert fl.info["base_residual"] < 1e-10


def test_result_shapes_std_and_first_order_update():
    prob = small(depth=2, steps=3)
    fl = fluctuations(prob, update="first_order")
    assert isinstance(fl, Fluctuations) and fl.ok
    assert fl.loss.shape == (4,) and fl.loss_cov.shape == (4, 4) and fl.f_test.shape == (4, 1)
    assert torch.allclose(torch.diagonal(fl.loss_cov), fl.loss)
    sd = fl.std(400)
    assert torch.allclose(sd.ntk, (fl.ntk / 400).sqrt()) and sd.width == 400
    assert torch.allclose(sd.loss_cov, fl.loss_cov / 400)
    lazy = fluctuations(prob.replace(gamma0=1e-4), update="first_order")
    assert rel(lazy.loss[1:], fluctuations(prob.replace(gamma0=0.0)).loss[1:]) < 1e-4


def test_input_errors_name_the_field():
    prob = small()
    with pytest.raises(ValueError, match="method"):
        fluctuations(prob, "magic")
    with pytest.raises(ValueError, match="samples"):
        fluctuations(prob, samples=1)
    with pytest.raises(ValueError, match="tol"):
        fluctuations(prob, tol=-1.0)
    with pytest.raises(ValueError, match="update"):
        fluctuations(prob, update="euler")
    with pytest.raises(ValueError, match="method"):
        fluctuations(small(act="tanh"), "linear")
    with pytest.raises(ValueError, match="solution"):
        fluctuations(prob, solution=solve(small(steps=5)))
    with pytest.raises(ValueError, match="width"):
        fluctuations(prob).std(0)
    with pytest.raises(TypeError, match="problem"):
        fluctuations("not a problem")
    with pytest.raises(ValueError, match="progress"):
        fluctuations(prob, progress="yes")


def test_progress_reports_every_solved_direction(capsys):
    """One line per solved chunk; the last count of each layer adds up to the directions solved
    (sweeps: per layer; the march takes the exact directions of all layers together)."""
    fl = fluctuations(small(), chunk=16, progress=True, march=False)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[fluctuations]")]
    last = {}
    for ln in lines:
        layer, kind, count = ln.split()[2:5]
        assert kind == "exact" and "sweeps" in ln
        last[layer] = int(count)
    assert set(last) == {"1", "2"} and sum(last.values()) == fl.info["directions"]
    assert len(lines) >= 2 * 2  # more than one chunk per layer at chunk=16
    fl = fluctuations(small(), chunk=16, progress=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[fluctuations]")]
    assert all(ln.split()[1:4] == ["all", "layers", "exact"] and "march" in ln for ln in lines)
    assert int(lines[-1].split()[4]) == fl.info["directions"] and len(lines) == -(-fl.info["directions"] // 16)
    fluctuations(small(), chunk=16)
    assert "[fluctuations]" not in capsys.readouterr().out


def test_diverged_solution_gives_nan_and_its_status():
    prob = small(depth=3, gamma0=40.0, steps=6)
    fl = fluctuations(prob)
    assert fl.status is Status.DIVERGED and not fl.ok
    assert bool(torch.isnan(fl.loss).all())
    with pytest.raises(SolverError):
        fluctuations(prob, strict=True)


def test_the_method_rule_is_one_public_function():
    """``theory.fluctuation_method`` is the rule ``fluctuations`` follows (validate plans with it)."""
    import pytest as _pytest

    from theory import Problem, fluctuation_method, gaussian_data

    x, y, _, _ = gaussian_data(3, 4, 0, seed=1)
    base = dict(depth=2, eta=0.1, steps=2)
    assert fluctuation_method(Problem(x, y, activation="tanh", gamma0=0.0, **base)).value == "lazy"
    assert fluctuation_method(Problem(x, y, activation="linear", gamma0=1.0, **base)).value == "linear"
    assert fluctuation_method(Problem(x, y, activation="tanh", gamma0=1.0, **base)).value == "montecarlo"
    assert fluctuation_method(Problem(x, y, activation="tanh", gamma0=1.0, **base), "linear").value == "linear"
    with _pytest.raises(ValueError, match="method"):
        fluctuation_method(Problem(x, y, activation="tanh", gamma0=1.0, **base), "wick")


@pytest.mark.slow
def test_long_deep_linear_trajectory_converges_with_the_default_budget():
    """L = 3, T = 16: with a fixed budget of 60 sweeps the linear method's sweeps ended
    MAX_ITERATIONS (change 9e-7); the default budget grows with T and the result is converged and
    matches a 1e-10 solve."""
    from theory import Problem, fluctuations, solve

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, generator=g, dtype=torch.float64)
    xt = torch.randn(1, 5, generator=g, dtype=torch.float64)
    p = Problem(x, y, x_test=xt, depth=3, activation="linear", gamma0=1.0, eta=0.3, steps=16)
    sol = solve(p)
    fl = fluctuations(p, solution=sol, march=False)
    assert fl.ok, fl.info.get("reason")
    ref = fluctuations(p, solution=sol, tol=1e-10, max_iterations=300, march=False)
    for k in ("loss", "f_train", "ntk"):
        a, b = getattr(fl, k), getattr(ref, k)
        assert float((a - b).abs().max() / b.abs().max()) < 1e-5
