"""scheme="perturbative" of the Monte Carlo solver (theory.montecarlo.perturbative): against the exact
forward-mode-AD perturbation theory of the linear solver (theory.linear.perturbative), its O(h^2)
truncation in the difference step, and, for tanh, that common random numbers keep the 1/h^2 of
the difference from amplifying the sampling noise."""

from functools import partial

import pytest
import torch

from theory import Problem, Status, gaussian_data, solve

solve_mc = partial(solve, method="montecarlo")  # the sampler, also on linear networks


OPTS = dict(samples=400, response_samples=4)


def _problem(activation="linear", gamma0=1.0, depth=3):
    x, y, xt, yt = gaussian_data(4, 8, 1, seed=1)
    return Problem(x, y, xt, yt, depth=depth, activation=activation, gamma0=gamma0, eta=0.1,
                   steps=6)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("update", ["exact", "first_order"])
def test_linear_second_order_matches_exact_perturbation_theory(update):
    pr = _problem()
    ref = solve(pr, "perturbative", update=update)  # exact linear
    so_ref = ref.info["second_order"]
    errs = []
    for step in ((0.1, 0.05) if update == "exact" else (0.1,)):
        sol = solve_mc(pr, scheme="perturbative", update=update, perturbative_step=step, **OPTS)
        assert sol.status is Status.CONVERGED and sol.scheme == "perturbative"
        so = sol.info["second_order"]
        err = max([_rel(so[k], so_ref[k]) for k in ("loss", "f_train", "f_test", "ntk")]
                  + [_rel(a, b) for a, b in zip(so["phi"], so_ref["phi"])])
        errs.append(err)
        # q(0) + gamma0^2 q_2
        lazy = solve(pr, "ntk")
        e = pr.gamma0**2
        assert torch.allclose(sol.loss, lazy.loss + e * so["loss"], atol=1e-12)
        for l in range(pr.depth):
            assert torch.allclose(sol.phi[l], lazy.phi[l] + e * so["phi"][l], atol=1e-12)
            assert _rel(sol.g[l], ref.g[l]) < 5e-3
    assert errs[0] < 5e-3
    if len(errs) > 1:
        assert errs[1] < errs[0] / 2.5  # O(h^2) truncation, not noise


def test_tanh_common_random_numbers_make_q2_step_independent():
    """The 1/h^2 of the difference must not amplify sampling noise: with common random numbers
    q_2 from h = 0.1 and h = 0.05 agree far better than two seeds do (seed noise ~3-15%)."""
    pr = _problem(activation="tanh", gamma0=0.5, depth=2)
    a = solve_mc(pr, scheme="perturbative", perturbative_step=0.1, **OPTS).info["second_order"]
    b = solve_mc(pr, scheme="perturbative", perturbative_step=0.05, **OPTS).info["second_order"]
    for l in range(2):
        assert _rel(b["phi"][l], a["phi"][l]) < 0.02
        assert _rel(b["g"][l], a["g"][l]) < 0.02
    assert _rel(b["f_test"], a["f_test"]) < 0.05


def test_invalid_step_raises():
    with pytest.raises(ValueError, match="perturbative_step"):
        solve_mc(_problem(), scheme="perturbative", perturbative_step=0.0)
