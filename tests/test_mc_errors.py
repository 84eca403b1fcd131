"""The Monte Carlo standard errors in ``info["standard_error"]`` (theory.montecarlo.errors) are
calibrated: the spread of the returned observables over independent seeds (an independent
measurement of the noise) agrees with the reported relative errors within a factor 2."""

import math
from functools import partial

import torch

from theory import Problem, Status, gaussian_data, solve
from theory.montecarlo import IterateSpread

solve_mc = partial(solve, method="montecarlo")  # the sampler, also on linear networks


NAMES = ("loss", "f_train", "f_test", "ntk", "phi", "g")


def test_iterate_spread_matches_direct_formula():
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64) + 2.0
    sp = IterateSpread()
    for x in xs:
        sp.add({"x": x})
    mean = xs.mean(0)
    sd2 = float(((xs - mean) ** 2).sum()) / 4
    assert math.isclose(sp.relative_se("x"), math.sqrt(sd2 / 5) / float(mean.norm()), rel_tol=1e-12)
    one = IterateSpread()
    one.add({"x": xs[0]})
    assert one.relative_se("x") is None


def test_reported_errors_are_calibrated_against_seed_spread():
    x, y, xt, yt = gaussian_data(4, 8, 2, seed=1)
    pr = Problem(x, y, xt, yt, depth=2, activation="tanh", gamma0=1.0, eta=0.1, steps=6)
    sols = [solve_mc(pr, samples=400, response_samples=16, seed=s) for s in range(10)]
    assert all(s.status is Status.CONVERGED for s in sols)
    for s in sols:
        assert set(NAMES) <= set(s.info["standard_error"])
    for name in NAMES:
        for l in range(2) if name in ("phi", "g") else (None,):
            vals = torch.stack([getattr(s, name) if l is None else getattr(s, name)[l] for s in sols])
            mean = vals.mean(0)
            spread = math.sqrt(float(((vals - mean) ** 2).sum()) / (len(sols) - 1)) / float(mean.norm())
            rep = [s.info["standard_error"][name] for s in sols]
            rep = sum(r if l is None else r[l] for r in rep) / len(rep)
            assert 0.5 < rep / spread < 2.0, (name, l, rep, spread)


def test_per_iteration_noise_floor_is_calibrated_per_kernel():
    """The stopping rule's noise floor (``history[i]["standard_errors"]``, per layer
    ``[se_Phi, se_G]``) is calibrated kernel by kernel: one iteration from the (deterministic)
    lazy start, repeated over seeds, spreads as much as each kernel's reported split-half error
    (Jacobi sweep, so that no layer sees another layer's fresh noise, which the split halves of
    one layer cannot see: ``theory.montecarlo.errors``).
    At L = 3 the kernels' norms differ several-fold, so an error divided by the wrong kernel's
    norm is caught."""
    x, y, xt, yt = gaussian_data(4, 8, 2, seed=1)
    pr = Problem(x, y, xt, yt, depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=6)
    sols = [solve_mc(pr, samples=400, response_samples=8, seed=s, max_iterations=1, march="never",
                     average_iterations=0, warmup=(), control_variate="none", gauss_seidel=False)
            for s in range(12)]
    for l in range(3):
        for k, name in enumerate(("phi", "g")):
            vals = torch.stack([getattr(s, name)[l] for s in sols])
            mean = vals.mean(0)
            spread = math.sqrt(float(((vals - mean) ** 2).sum()) / (len(sols) - 1)) / float(mean.norm())
            rep = sum(s.info["history"][0]["standard_errors"][2 * l + k] for s in sols) / len(sols)
            assert 0.6 < rep / spread < 1.6, (name, l, rep, spread)
