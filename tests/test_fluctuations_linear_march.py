"""The linear method's one-pass march over exact quadrature sites (``docs/finite_width.md`` s. 5).

References: the linear method's own sweeps of its closed-form map (an independent solver: no
sites, no causal factors), the full coupling matrices for their row blocks, and the defining
property of the site design (it reproduces the kernels)."""

from __future__ import annotations

import pytest
import torch

from theory import Problem, Status, fluctuations, solve
from theory.fluctuations import Layout, LinearModel, probe, propagate


def problem(depth=2, steps=6, gamma0=1.2, test=True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, generator=g, dtype=torch.float64)
    xt = torch.randn(1, 5, generator=g, dtype=torch.float64) if test else None
    return Problem(x, y, x_test=xt, depth=depth, activation="linear", gamma0=gamma0, eta=0.3, steps=steps)


def _worst(a, b):
    fields = [(a.loss, b.loss), (a.f_train, b.f_train), (a.ntk, b.ntk)] + list(zip(a.phi + a.g, b.phi + b.g))
    return max(float((x - y).abs().max() / y.abs().max()) for x, y in fields)


@pytest.mark.parametrize("p_g", [1, 4])
def test_row_couplings_are_the_rows_of_the_full_couplings(p_g):
    prob = problem(steps=4)
    lay = Layout(prob, p_g=p_g)
    gen = torch.Generator().manual_seed(3)
    phi = torch.randn(2, lay.n, lay.n, generator=gen, dtype=torch.float64)
    g = torch.randn(2, lay.ng, lay.ng, generator=gen, dtype=torch.float64)
    delta = torch.randn(2, lay.m, lay.p, generator=gen, dtype=torch.float64)
    c_full, d_full = lay.c_gd(phi, delta), lay.d_gd(g, delta)
    for k in range(1, lay.m):
        rows_c, rows_d = slice(k * lay.pa, (k + 1) * lay.pa), slice(k * p_g, (k + 1) * p_g)
        assert torch.allclose(lay.c_row(phi, delta, k), c_full[:, rows_c, : k * p_g], atol=1e-14)
        assert torch.allclose(lay.d_row(g, delta, k), d_full[:, rows_d, : k * lay.pa], atol=1e-14)
        assert float(c_full[:, rows_c, k * p_g :].abs().max()) == 0.0  # strictly causal
        # a fixed kernel with batched errors, as the march uses them
        assert torch.allclose(lay.c_row(phi[0], delta, k), lay.c_gd(phi[0], delta)[:, rows_c, : k * p_g])


def test_quadrature_sites_reproduce_the_kernels():
    """One site per direction of the normals that the causal factors use: the sites' source
    averages are exactly the factors' products, their normals have the projector as second
    moment, and their field kernels are the solution's up to the factors' eigenvalue cut."""
    sol = solve(problem(depth=3, steps=6))
    model = LinearModel(sol, exact_update=True, samples=None, seed=0, chunk=64, march=True)
    sites = model.march.sites
    for l in (2, 3):
        pop, fu = sites.pop[l], sites.roots_u[l].factor
        S = pop.h.shape[0]
        assert S < fu.shape[1] + sites.lay.m  # fewer sites than factor columns
        # F E E^T = F up to what the factor's singular-value cut leaves outside the roots'
        # ranges (measured 3e-10 of |F| ~ 1), and the sources' second moment is F F^T
        assert torch.allclose(fu @ (pop.zu.T @ pop.zu / S), fu, atol=1e-9)
        assert torch.allclose(pop.u.T @ pop.u / S, fu @ fu.T, atol=1e-12)
        assert float((pop.zu.T @ pop.zr).abs().max()) == 0.0  # independent sources
    fr = sites.roots_r[1].factor
    assert torch.allclose(sites.pop[1].r.T @ sites.pop[1].r / sites.pop[1].r.shape[0], fr @ fr.T, atol=1e-12)
    assert sites.residual() < 1e-10  # measured 2e-12


def _spread(a, b, name):
    return float((getattr(a, name) - getattr(b, name)).abs().max() / getattr(b, name).abs().max())


@pytest.mark.parametrize("depth,gamma0", [(2, 1.2), (3, 1.2), (3, 1.0)])
def test_linear_march_equals_the_closed_form_sweeps(depth, gamma0):
    """The march and the sweeps agree as closely as the sweeps agree with themselves when their
    eigenvalue cut moves from 1e-10 to 1e-8 (the accuracy the near-singular kernels of linear
    networks allow: at L = 3, gamma0 = 1.2 that moves the G variances by ~2e-3)."""
    prob = problem(depth=depth, gamma0=gamma0)
    sol = solve(prob)
    one = fluctuations(prob, solution=sol)
    swept = fluctuations(prob, solution=sol, march=False)
    assert one.info["solver"] == "march" and swept.info["solver"] == "iterate"
    assert one.status is Status.CONVERGED and one.iterations == 1 and swept.iterations > depth
    assert one.residual <= 1e-3  # the check's change
    cut = LinearModel(sol, exact_update=True, samples=None, seed=0, chunk=256, rcond=1e-8)
    var = propagate(cut, tol=1e-9, max_iterations=200)[0]
    for name, key in (("loss", "loss"), ("ntk", "ntk")):
        own = float((var[key] - getattr(swept, name)).abs().max() / getattr(swept, name).abs().max())
        assert _spread(one, swept, name) < max(2 * own, 1e-5), name
    own_g = max(float((var["g"][l] - b).abs().max() / b.abs().max()) for l, b in enumerate(swept.g))
    worst_g = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(one.g, swept.g))
    assert worst_g < max(2 * own_g, 1e-5)


def test_a_failed_check_is_polished_by_sweeps():
    prob = problem(depth=3)
    sol = solve(prob)
    tight = fluctuations(prob, solution=sol, tol=1e-9, max_iterations=200)
    swept = fluctuations(prob, solution=sol, tol=1e-9, max_iterations=200, march=False)
    assert tight.info["solver"] == "march" and tight.iterations > 1 and tight.residual <= 1e-9
    assert _worst(tight, swept) < 1e-5


def test_the_check_sees_a_wrong_solution():
    sol = solve(problem(depth=2))
    model = LinearModel(sol, exact_update=True, samples=None, seed=0, chunk=256, march=True)
    d = next(model.directions())
    t = model.march.solve(d.state)
    assert probe(model, t, d.state) < 1e-3
    bad = {k: v.clone() for k, v in t.items()}
    bad["G1"] *= 1.01  # the backward kernels of the first layer 1 % off
    assert probe(model, bad, d.state) > 1e-3


def test_march_needs_the_exact_update():
    prob = problem()
    first = solve(prob, update="first_order")
    fo = fluctuations(prob, solution=first, update="first_order")
    assert fo.info["solver"] == "iterate" and fo.ok
    with pytest.raises(ValueError, match="march"):
        fluctuations(prob, solution=first, update="first_order", march=True)
