"""The finite-width checks (validate.checks.fluctuation) and their statistics (validate.stats).

Synthetic networks (validate.synthetic) have a known N Var per entry, which
``synthetic_predictor`` returns: the correct prediction passes, planted faults fail (a prediction
scaled by 1.5 or 0.6, a theory mean off by more than the bias allowance), a non-ok or raising
prediction gives inconclusive or failed rows, the checks run in one planned batch, claims accept
them, and the report draws the bands. The statistics' intervals are checked for coverage on
Gaussian samples. Trained networks against the exact linear prediction: the slow test at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from report_checks import captured_figures, figure_problems, reason_disagreements
from theory import Status
from validate import report
from validate.checks import Fluctuation, SingleWidth
from validate.claims import evaluate, load_claims
from validate.frame import CheckResult, Verdict
from validate.power import scale_kernels
from validate.sources import Context
from validate.spec import ProblemSpec
from validate.stats import single_width_residual, variance_ratio
from validate.suites import Suite, run_suite
from validate.synthetic import synthetic_predictor
from validate_fakes import fake_solver, fake_trainer, truth

SPEC = ProblemSpec(n_train=4, n_test=2, input_dim=8, depth=2, activation="linear", gamma0=0.5, steps=6)
OBS = ("ntk", "phi", "g", "f_test")
GRID = dict(problem=SPEC, widths=(64, 256), seeds=400, observables=OBS)


def _ctx(**kw):
    kw.setdefault("trainer", fake_trainer(noise=1.0, bias=1.0))
    kw.setdefault("solver", fake_solver)
    kw.setdefault("predictor", synthetic_predictor(noise=1.0))
    return Context(progress=False, **kw)


def _verdicts(check, ctx):
    v = check.run(ctx).verdicts
    return v, set(v["verdict"])


# ----------------------------------------------------------------------------- statistics
def test_variance_ratio_interval_covers_the_truth_and_catches_a_wrong_variance():
    gen = torch.Generator().manual_seed(0)
    m = 12
    cov = 0.5 * torch.eye(m, dtype=torch.float64) + 0.5  # strongly correlated entries
    chol = torch.linalg.cholesky(cov)
    covered, wide = 0, []
    for _ in range(300):
        x = torch.randn(200, m, generator=gen, dtype=torch.float64) @ chol.T
        vr = variance_ratio(x, torch.diagonal(cov), z=2.0)
        covered += vr.lo <= 0.0 <= vr.hi
        wide.append(vr.hi - vr.lo)
    assert 0.92 <= covered / 300 <= 0.99  # two-sided ~95 % interval
    # correlated entries: (tr C)^2 / tr C^2 = 144 / 45 = 3.2 effective variables per seed, not 12
    # (treating the entries as independent would halve the interval)
    assert abs(np.median(wide) / (2 * 2.0 * math.sqrt(2 / (200 * 3.2))) - 1) < 0.1
    x = torch.randn(200, m, generator=gen, dtype=torch.float64) @ chol.T
    assert variance_ratio(x, 1.5 * torch.diagonal(cov)).hi < 0  # too large a prediction is seen


def test_variance_ratio_widens_for_heavy_tails_and_the_prediction_error():
    gen = torch.Generator().manual_seed(1)
    x = torch.distributions.StudentT(5.0).sample((400, 8)).to(torch.float64)
    var = torch.full((8,), 5.0 / 3.0, dtype=torch.float64)
    gauss = variance_ratio(torch.randn(400, 8, generator=gen, dtype=torch.float64), torch.ones(8, dtype=torch.float64))
    heavy = variance_ratio(x, var)
    assert heavy.dof < 0.7 * gauss.dof  # kurtosis: fewer effective degrees of freedom
    with_se = variance_ratio(x, var, 0.05 * var)
    assert with_se.lo < heavy.lo - 0.09 and with_se.hi > heavy.hi + 0.09


def test_single_width_residual_uses_the_predicted_noise():
    gen = torch.Generator().manual_seed(2)
    ref = torch.linspace(1.0, 2.0, 10, dtype=torch.float64)
    sig2 = (0.3 * ref) ** 2
    covered = 0
    for _ in range(200):
        x = ref + sig2.sqrt() * torch.randn(100, 10, generator=gen, dtype=torch.float64)
        res = single_width_residual(x, ref, sig2)
        covered += res.lo <= 0.0
    assert covered / 200 >= 0.95
    sig2 = (0.1 * ref) ** 2
    x = ref + sig2.sqrt() * torch.randn(400, 10, generator=gen, dtype=torch.float64)
    off = single_width_residual(x, ref * 1.03, sig2)  # 3 % off: 6 standard errors of the mean
    assert off.lo > 0.015 and abs(off.estimate - 0.03) < 0.01


def test_the_estimated_loss_bias_is_the_output_variance():
    """E[mean_mu (f_mu - y_mu)^2] - mean_mu (E f_mu - y_mu)^2 = sum_mu Var f_mu / P: the shift of
    ``bias_allowance`` against a Monte Carlo average of Gaussian outputs of known variance."""
    from types import SimpleNamespace

    from validate.checks.fluctuation import Arrays, bias_allowance
    from validate.jobs import Prediction

    gen = torch.Generator().manual_seed(3)
    P, N, S = 4, 64, 200_000
    f0 = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.3, -0.2, 0.5, 0.1]], dtype=torch.float64)  # (T+1, P)
    nvar = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 4.0, 0.5]], dtype=torch.float64)  # N Var f
    y = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    f = f0 + (nvar / N).sqrt() * torch.randn(S, *f0.shape, generator=gen, dtype=torch.float64)
    loss = ((f - y) ** 2).mean(-1)  # (S, T+1)
    ref = ((f0 - y) ** 2).mean(-1)
    pred = Prediction(None, {"f_train": nvar, "loss": torch.ones(2, dtype=torch.float64)}, {}, "exact", "x", "")
    a = Arrays(N, loss, torch.ones(2, dtype=torch.float64) / N, None, ref, None)
    shift, _ = bias_allowance("loss", a, pred, SimpleNamespace(n_train=P), slice(None), 2.0)
    measured = loss.mean(0) - ref
    se = loss.std(0) / S**0.5
    assert torch.allclose(shift, nvar.sum(-1) / (N * P))
    assert shift[1] > 8 * se[1] and abs(float(measured[1] - shift[1])) < 4 * float(se[1])
    assert float(shift[0]) == 0.0 == float(measured[0])


# ----------------------------------------------------------------------------- the checks
def test_correct_prediction_passes_and_the_band_curves_are_written():
    res = Fluctuation(name="fl", **GRID).run(_ctx())
    v = res.verdicts
    assert len(v) == 2 * 6 and set(v["verdict"]) == {"pass"}, v[["observable", "width", "reason"]].to_string()
    assert not reason_disagreements(v)
    c = res.curves
    assert set(c["source"]) == {"theory_band", "network_spread"} and set(c["width"]) == {64.0, 256.0}
    band = c[(c["source"] == "theory_band") & (c["observable"] == "ntk") & (c["width"] == 64)]
    sol = truth(SPEC.build())
    k00 = sol.ntk[:, 0, 0]
    assert np.allclose(band["value"], k00) and np.allclose(band["stderr"], k00.abs() / 8.0)  # |X| noise / sqrt(N)
    sw, verdicts = _verdicts(SingleWidth(name="sw", **GRID), _ctx())
    assert verdicts == {"pass"}, sw[["observable", "width", "reason"]].to_string()
    assert not reason_disagreements(sw)


@pytest.mark.parametrize("scale", [1.5, 0.6])
def test_a_prediction_scaled_by_1_5_or_0_6_fails(scale):
    v, verdicts = _verdicts(Fluctuation(**GRID), _ctx(predictor=synthetic_predictor(noise=1.0, scale=scale)))
    assert (v["verdict"] == "fail").all(), v[["observable", "width", "reason"]].to_string()


def test_a_theory_mean_off_beyond_the_allowance_fails_and_within_it_passes():
    # the synthetic networks sit around the true solution with relative bias 1/N; the allowance is
    # tolerance 0.01 + 2/N relative, the predicted noise of the mean 1/sqrt(N S) (0.0025 at N = 256)
    def off(factor):
        return lambda problem, scheme="dmft", **kw: scale_kernels(fake_solver(problem, scheme, **kw), factor)

    chk = SingleWidth(problem=SPEC, widths=(256,), seeds=400, observables=("ntk", "phi", "g"))
    v, verdicts = _verdicts(chk, _ctx(solver=off(1.04)))  # 16 standard errors, 1.9x the allowance
    assert verdicts == {"fail"}, v[["observable", "reason"]].to_string()
    v, verdicts = _verdicts(chk, _ctx(solver=off(1.005)))  # below the allowance
    assert verdicts == {"pass"}, v[["observable", "reason"]].to_string()
    # the mean fault does not show in the variance ratio (it is not a spread fault)
    v, verdicts = _verdicts(Fluctuation(problem=SPEC, widths=(256,), seeds=400, observables=("ntk",)),
                            _ctx(solver=off(1.04)))
    assert verdicts == {"pass"}


def test_a_larger_bias_than_bounded_is_caught_at_one_width():
    # networks with an O(1/N) bias 6/N: beyond the 2/N bound at N = 64, flagged without a second width
    v, verdicts = _verdicts(SingleWidth(problem=SPEC, widths=(64,), seeds=400, observables=("ntk", "phi")),
                            _ctx(trainer=fake_trainer(noise=1.0, bias=6.0)))
    assert verdicts == {"fail"}, v[["observable", "reason"]].to_string()


def test_non_ok_prediction_is_inconclusive_and_a_raising_one_fails():
    good = synthetic_predictor()

    def not_ok(problem, method="auto", **kw):
        return dataclasses.replace(good(problem, method, **kw), status=Status.MAX_ITERATIONS,
                                   info={"reason": "linearised solve stalled"})

    def raising(problem, method="auto", **kw):
        raise RuntimeError("out of memory")

    for check in (Fluctuation(**GRID), SingleWidth(**GRID)):
        v, verdicts = _verdicts(check, _ctx(predictor=not_ok))
        assert verdicts == {"inconclusive"} and v["reason"].str.contains("stalled").all()
        assert len(v) == 2 * 6 and v["gating"].all()
        v, verdicts = _verdicts(check, _ctx(predictor=raising))
        assert verdicts == {"fail"} and v["reason"].str.contains("out of memory").all()


def test_both_checks_share_one_planned_batch():
    ctx = _ctx()
    checks = (Fluctuation(name="fl", **GRID), SingleWidth(name="sw", **GRID))
    planned, _ = run_suite(Suite("unit", "", checks), ctx)
    assert ctx.session.passes == {"fl": 1, "sw": 1}  # the declared jobs cover everything read
    assert ctx.stats["solves"] == 1 and ctx.stats["trained"] == 2  # one prediction, one ensemble per width
    direct = CheckResult.concat([c.run(_ctx()) for c in checks])
    assert planned.verdicts.equals(direct.verdicts)


def test_a_monte_carlo_prediction_carries_its_standard_errors():
    """The planned job of the real Monte Carlo method (tiny tanh problem): every predicted field
    comes with a standard error of its shape, which the checks use to widen their intervals."""
    pr = ProblemSpec(n_train=3, n_test=1, input_dim=6, depth=2, activation="tanh", eta=0.2, steps=3,
                     gamma0=1.0).build()
    ctx = Context(progress=False)
    p = ctx.result(ctx.fluctuation_job(pr, "montecarlo", solver_options={"samples": 2000}, samples=200,
                                       population=400))
    assert p.ok and p.method == "montecarlo"
    assert sorted(p.var) == sorted(p.se) == ["f_test", "f_train", "g.0", "g.1", "loss", "ntk", "phi.0", "phi.1"]
    for k, v in p.var.items():
        se = p.se[k]
        assert se.shape == v.shape and bool(torch.isfinite(se).all()) and bool((se >= 0).all()), k
    assert float(p.se["loss"][1:].min()) > 0  # sampled, so not exact after the first step


def test_fields_are_checked():
    with pytest.raises(ValueError, match="observables"):
        Fluctuation(problem=SPEC, observables=("test_loss",))
    with pytest.raises(ValueError, match="seeds"):
        Fluctuation(problem=SPEC, seeds=2)
    with pytest.raises(ValueError, match="times"):
        SingleWidth(problem=SPEC, times="last")
    with pytest.raises(ValueError, match="bias"):
        SingleWidth(problem=SPEC, bias=-1.0)
    with pytest.raises(ValueError, match="method"):
        Fluctuation(problem=SPEC, method="exact")


def test_claims_of_both_kinds(tmp_path):
    text = """
[[claim]]
name = "spread"
kind = "fluctuation"
observables = ["ntk", "g"]
tolerance = 0.3
[claim.problem]
activation = "linear"
n_train = 4
n_test = 2
input_dim = 8
gamma0 = 0.5
steps = 6
[claim.grid]
widths = [256]
seeds = 400

[[claim]]
name = "mean-at-one-width"
kind = "single_width"
observable = "ntk"
tolerance = 0.01
[claim.problem]
activation = "linear"
n_train = 4
n_test = 2
input_dim = 8
gamma0 = 0.5
steps = 6
[claim.grid]
widths = [256]
seeds = 400
[claim.options]
bias = 2.0
"""
    path = tmp_path / "c.claims.toml"
    path.write_text(text)
    claims = load_claims(path)
    assert [c.statistic for c in claims] == ["fluctuation", "single_width_mean"]
    assert claims[1].check.tolerance == 0.01 and claims[1].check.bias == 2.0
    out = evaluate(claims, _ctx()).verdicts
    rows = out[out["statistic"] == "claim"]
    assert list(rows["verdict"]) == ["pass", "pass"], rows["reason"].tolist()


def test_the_example_claim_file_parses():
    from pathlib import Path

    claims = load_claims(Path(__file__).resolve().parent.parent / "examples" / "finite_width.claims.toml")
    assert [type(c.check) for c in claims] == [Fluctuation, SingleWidth]
    assert [c.check.widths for c in claims] == [(128,), (128,)] and claims[1].check.bias == 2.0


def test_report_draws_the_bands(tmp_path, monkeypatch):
    res = Fluctuation(name="fl", problem=SPEC, widths=(64, 256), seeds=100, observables=("loss", "g:1")).run(_ctx())
    meta = {"suite": "unit", "seed": 0, "environment": report.environment()}
    with captured_figures(monkeypatch) as figs:
        run = report.write_report(res, tmp_path, "r", meta)
        names = json.loads((run / "summary.json").read_text())["figures"]
        problems = {n: figure_problems(f) for n, f in zip(names, figs)}
    bands = sorted(n for n in names if n.startswith("band_"))
    assert len(bands) == 2 and json.loads((run / "summary.json").read_text())["figures_by_check"]["fl"] == bands
    assert not {k: v for k, v in problems.items() if v}


# ----------------------------------------------------------------------------- trained networks
def _scaled(factor):
    """The exact prediction with every variance times ``factor`` (a planted fault)."""
    from validate.jobs import default_predictor

    def predict(problem, method="auto", **kw):
        fl = default_predictor(problem, method, **kw)
        return dataclasses.replace(fl, loss=factor * fl.loss, ntk=factor * fl.ntk, phi=tuple(factor * p for p in fl.phi),
                                   g=tuple(factor * p for p in fl.g))

    return predict


@pytest.mark.slow
def test_trained_linear_networks_against_the_exact_prediction():
    """Real networks, the exact linear prediction: passes; the prediction times 2 or 0.5 fails,
    and so does a theory whose kernels are 10 % off (at one width, N = 128)."""
    from validate.jobs import default_predictor
    from validate.sources import default_solver

    spec = SPEC.replace(gamma0=1.0)
    grid = dict(problem=spec, widths=(128,), seeds=512, observables=("loss", "ntk", "phi", "g"))
    ctx = Context(progress=False)
    v, verdicts = _verdicts(Fluctuation(**grid), ctx)
    assert verdicts <= {"pass", "inconclusive"} and (v["verdict"] == "pass").mean() >= 0.8, v["reason"].tolist()
    v, verdicts = _verdicts(SingleWidth(**grid), ctx)
    assert verdicts == {"pass"}, v["reason"].tolist()
    for factor in (2.0, 0.5):
        v, verdicts = _verdicts(Fluctuation(**grid), dataclasses.replace(ctx, predictor=_scaled(factor)))
        assert verdicts == {"fail"}, (factor, v["reason"].tolist())

    def shifted(problem, scheme="dmft", **kw):
        return scale_kernels(default_solver(problem, scheme, **kw), 1.10)

    def own(problem, method="auto", *, solution=None, **kw):  # the variance stays the correct one
        return default_predictor(problem, method, **kw)

    v = SingleWidth(**grid).run(dataclasses.replace(ctx, solver=shifted, predictor=own)).verdicts
    kernels = v[v["observable"] != "loss"]
    assert set(kernels["verdict"]) == {"fail"}, kernels["reason"].tolist()
    assert set(v[v["observable"] == "loss"]["verdict"]) == {"pass"}  # the loss was not shifted
