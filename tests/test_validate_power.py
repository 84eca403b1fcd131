"""Planted faults on REAL finite-width deep linear networks (simulate.train) against the exact
linear theory: the default convergence settings must flag each fault and pass the correct theory."""

import pytest
import torch

from theory import solve
from validate.checks import Convergence
from validate.frame import Verdict
from validate.power import scale_kernels
from validate.sources import Context
from validate.spec import ProblemSpec
from simulate import train

pytestmark = pytest.mark.slow
LAZY = ProblemSpec(n_train=6, n_test=3, input_dim=10, depth=2, activation="linear", gamma0=0.05, steps=10)


def _lazy_theory(problem, scheme="dmft", **_):
    return solve(problem)


@pytest.fixture(scope="module")
def ctx():
    torch.set_num_threads(1)
    return Context(trainer=train, solver=_lazy_theory, progress=False)


def _run(ctx, solver, spec=LAZY, **kw):
    ctx.solver = solver  # the solver's identity is part of each solve's key: nothing stale is reused
    return Convergence(problem=spec, **kw).run(ctx)


def test_correct_theory_passes(ctx):
    res = _run(ctx, _lazy_theory)
    assert res.verdict is Verdict.PASS, res.verdicts[["observable", "layer", "reason"]].to_string()


@pytest.mark.parametrize("which", ["ntk", "phi", "g"])
def test_kernel_scaled_by_5_percent_is_flagged(ctx, which):
    res = _run(ctx, lambda p, s="dmft", **_: scale_kernels(_lazy_theory(p), 1.05, which), observables=(which,))
    assert res.verdict is Verdict.FAIL, res.verdicts[["observable", "layer", "reason"]].to_string()


def test_ntk_approximation_at_gamma0_1p5_is_flagged(ctx):
    res = _run(ctx, lambda p, s="dmft", **_: solve(p, "ntk"), spec=LAZY.replace(gamma0=1.5, depth=3))
    assert res.verdict is Verdict.FAIL


def test_gamma0_off_by_10_percent_is_flagged(ctx):
    rich = LAZY.replace(gamma0=1.0)
    ok = _run(ctx, lambda p, s="dmft", **_: solve(p), spec=rich)
    bad = _run(ctx, lambda p, s="dmft", **_: solve(p.replace(gamma0=1.1 * p.gamma0)), spec=rich)
    assert ok.verdict is Verdict.PASS and bad.verdict is Verdict.FAIL
