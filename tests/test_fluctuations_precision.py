"""Single-precision population products of the Monte Carlo fluctuation method
(``docs/finite_width.md`` section 7). Reference: the same computation in double precision (the
double path is itself checked against the exact linear method and trained ensembles)."""

from __future__ import annotations

import pytest

from theory import fluctuations, solve
from test_fluctuations_march import _worst, tanh_problem


@pytest.mark.parametrize("depth", [2, 3])
def test_single_precision_moves_the_variances_by_round_off_only(depth):
    prob = tanh_problem(depth)
    sol = solve(prob)
    opts = dict(solution=sol, samples=64, refine=16, population=200, seed=4)
    single = fluctuations(prob, **opts)
    double = fluctuations(prob, precision="double", **opts)
    assert single.info["precision"] == "float32" and double.info["precision"] == "float64"
    assert single.ok and double.ok
    assert _worst(single, double) < 5e-4  # measured 3e-5 (L = 2) and 8e-5 (L = 3)
    assert _worst(single, double) > 0.0  # the two really ran in different arithmetic


def test_precision_defaults_and_errors():
    prob = tanh_problem()
    first = solve(prob, update="first_order")
    fo = fluctuations(prob, solution=first, update="first_order", samples=20, refine=20, population=200)
    assert fo.info["precision"] == "float64"  # its sweeps stall above tol in single precision
    with pytest.raises(ValueError, match="precision"):
        fluctuations(prob, solution=first, update="first_order", precision="half")

