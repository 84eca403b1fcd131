"""A theory without an answer, or a solve/training that raises, inside a check.

A non-ok theory status makes that check's rows inconclusive, with the status and the solver's
reason, never a verdict on the networks; an exception from a solve or a training becomes failed
rows naming the error (``dmft`` exits 1, not 2).
"""

import dataclasses

import numpy as np
import pytest

from theory import SolverError, Status
from simulate import DivergenceError
from validate.checks import Breakdown, Convergence, WidthIndependence
from validate.frame import Verdict
from validate.power import scale_kernels
from validate.sources import Context
from validate.spec import ProblemSpec
from validate_fakes import PLANTED, fake_solver, fake_trainer

SPEC = ProblemSpec(n_train=6, n_test=3, input_dim=10, depth=2, activation="linear", gamma0=0.5, steps=10)
WHY = "noise floor 1.19 above 5 %"


def _ctx(**kw):
    kw.setdefault("trainer", fake_trainer())
    kw.setdefault("solver", fake_solver)
    return Context(progress=False, **kw)


def _not_ok(sol, factor=1.0):
    """``sol`` with kernels scaled by ``factor`` (a wrong answer) and a non-ok status and reason."""
    bad = scale_kernels(sol, factor) if factor != 1.0 else sol
    return dataclasses.replace(bad, status=Status.MAX_ITERATIONS, info={"reason": WHY})


def _bad_at(scheme=None, gamma0=None, factor=1.0):
    """A fake solver whose ``scheme`` solve (any, if None) at ``gamma0`` (any, if None) is not ok."""
    def solver(problem, s="dmft", **kw):
        sol = fake_solver(problem, s, **kw)
        hit = (scheme is None or s == scheme) and (gamma0 is None or np.isclose(problem.gamma0, gamma0))
        return _not_ok(sol, factor) if hit else sol
    return solver


def test_convergence_non_ok_theory_is_inconclusive_with_status_and_reason():
    # the theory's (wrong, 30 % off) answer is never compared: no fail that blames the networks
    res = Convergence(problem=SPEC, observables=("loss", "ntk")).run(_ctx(solver=_bad_at(factor=1.3)))
    v = res.verdicts
    assert len(v) == 2 and (v["verdict"] == "inconclusive").all() and v["gating"].all()
    assert v["reason"].str.contains("max_iterations").all() and v["reason"].str.contains(WHY).all()
    assert res.verdict is Verdict.INCONCLUSIVE


def test_breakdown_against_networks_non_ok_theory_is_not_a_fail():
    # against the networks, a non-ok ntk theory 30 % off used to give "fail" rows
    res = Breakdown(problem=SPEC, gamma0s=(0.5,), schemes=("ntk",), against="networks",
                    widths=(64, 256), seeds=16, observables=("ntk",),
                    expect={"ntk": (0.5, 0.5)}).run(_ctx(solver=_bad_at("ntk", factor=1.3)))
    v = res.verdicts
    assert (v["verdict"] != "fail").all(), v[["statistic", "verdict", "reason"]].to_string()
    per = v[v["statistic"] == "extrapolated_residual"]
    assert len(per) and per["reason"].str.contains(WHY).all()
    summary = v[v["statistic"] == "breakdown_gamma0"].iloc[0]
    assert summary["verdict"] == "inconclusive" and summary["gating"]


def test_breakdown_summary_is_inconclusive_when_the_theory_fails_below_the_first_refutation():
    # planted ntk error 0.04 gamma0^2: refuted from gamma0 = 1.0 on. With no ntk answer at 1.0 the
    # first refutation seen is 1.5, which an expectation of [1.5, 1.5] must not accept as a pass
    grid = (0.5, 1.0, 1.5)
    assert [PLANTED["ntk"] * g**2 > 0.02 for g in grid] == [False, True, True]
    chk = Breakdown(problem=SPEC, gamma0s=grid, schemes=("ntk",), observables=("ntk",), tolerance=0.02,
                    expect={"ntk": (1.5, 1.5)})
    res = chk.run(_ctx(solver=_bad_at("ntk", 1.0)))
    summary = res.verdicts[res.verdicts["statistic"] == "breakdown_gamma0"].iloc[0]
    assert summary["verdict"] == "inconclusive" and summary["gating"]
    assert "gamma0 = 1" in summary["reason"] and WHY in summary["reason"]
    per = res.verdicts[(res.verdicts["statistic"] == "rel_error_vs_dmft") & (res.verdicts["gamma0"] == 1.0)]
    assert (per["verdict"] == "inconclusive").all()
    # a non-ok reference (dmft) solve leaves every scheme without an answer at that gamma0
    res = chk.run(_ctx(solver=_bad_at("dmft", 1.0)))
    assert res.verdicts[res.verdicts["statistic"] == "breakdown_gamma0"]["verdict"].iloc[0] == "inconclusive"
    # above the first refutation a non-ok solve does not matter
    res = dataclasses.replace(chk, expect={"ntk": (1.0, 1.0)}).run(_ctx(solver=_bad_at("ntk", 1.5)))
    assert res.verdict is Verdict.PASS


def test_solver_exception_is_failed_rows_naming_the_error():
    def raising(problem, scheme="dmft", **_):
        raise SolverError("dmft solve ended with status 'diverged' at step 7")

    res = Convergence(problem=SPEC, observables=("loss", "ntk")).run(_ctx(solver=raising))
    v = res.verdicts
    assert len(v) == 2 and (v["verdict"] == "fail").all() and v["gating"].all()
    assert v["reason"].str.contains("SolverError").all() and v["reason"].str.contains("step 7").all()


@pytest.mark.parametrize("error", [DivergenceError("seed 3 diverged at step 5"), MemoryError("out of memory")])
def test_training_exception_is_failed_rows(error):
    def trainer(problem, width, seeds=1, **_):
        raise error

    res = WidthIndependence(problem=SPEC, widths=(64, 256), seeds=8).run(_ctx(trainer=trainer))
    v = res.verdicts
    assert len(v) == 1 and v["verdict"].iloc[0] == "fail"
    assert type(error).__name__ in v["reason"].iloc[0] and str(error) in v["reason"].iloc[0]


def test_ctrl_c_inside_a_training_is_not_swallowed():
    def trainer(problem, width, seeds=1, **_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        WidthIndependence(problem=SPEC, widths=(64, 256), seeds=8).run(_ctx(trainer=trainer))
