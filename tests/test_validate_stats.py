"""Statistics and metrics of validate on data with known truth (independent closed forms)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import solve
from validate.frame import Verdict
from validate.metrics import alignment, observable, rel_error
from validate.spec import ProblemSpec
from validate.stats import (decide, extrapolated_residual, intercept_weights, loglog_rate,
                            relative_difference)


@given(st.lists(st.integers(2, 5000), min_size=2, max_size=6, unique=True),
       st.floats(-3, 3), st.floats(-50, 50))
@settings(max_examples=40, deadline=None)
def test_intercept_weights_recover_exact_intercept(widths, a, b):
    w = np.array(sorted(widths), float)
    c = intercept_weights(w, np.full(len(w), 7.0))
    assert np.isclose(c.sum(), 1.0) and np.isclose((c / w).sum(), 0.0, atol=1e-12)
    assert np.isclose(c @ (a + b / w), a, atol=1e-9 * (1 + abs(b)))


def _gaussian_samples(gen, widths, seeds, delta, m=30, sigma=1.0, bias=0.5):
    """samples[k] = ref + delta_vec + bias/N + sigma/sqrt(N) * noise, with |delta_vec|/|ref| = delta."""
    ref = torch.linspace(1.0, 2.0, m, dtype=torch.float64)
    d = torch.randn(m, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    d = d / d.norm() * delta * ref.norm()
    out = [ref + d + bias / n + sigma / n**0.5 * torch.randn(seeds, m, generator=gen, dtype=torch.float64)
           for n in widths]
    return out, ref


@pytest.mark.parametrize("delta", [0.0, 0.05])
def test_residual_is_unbiased_and_its_error_calibrated(delta):
    gen = torch.Generator().manual_seed(0)
    widths = [64, 128, 256, 512]
    rho2, se = [], []
    for _ in range(300):
        s, ref = _gaussian_samples(gen, widths, 6, delta)
        r = extrapolated_residual(s, widths, ref)
        rho2.append(r.rho2)
        se.append(r.rho2_se)
    rho2 = np.array(rho2)
    # unbiased: mean of rho2 is delta^2 within 4 standard errors of the mean
    assert abs(rho2.mean() - delta**2) < 4 * rho2.std() / np.sqrt(len(rho2))
    # calibrated: the reported standard error matches the spread within 25 %
    assert 0.75 < np.median(se) / rho2.std() < 1.25


def test_residual_theory_noise_widens_bounds():
    gen = torch.Generator().manual_seed(1)
    s, ref = _gaussian_samples(gen, [100, 400], 8, 0.0, sigma=0.1)
    exact = extrapolated_residual(s, [100, 400], ref)
    noisy_ref = ref + 0.01 * torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    r = extrapolated_residual(s, [100, 400], noisy_ref, torch.full_like(ref, 0.01))
    assert r.hi - r.lo > exact.hi - exact.lo
    assert r.lo < 0.0  # still consistent with zero


def test_loglog_rate_recovers_power_law():
    rng = np.random.default_rng(0)
    w = np.repeat([32, 64, 128, 256, 512], 10).astype(float)
    e = 3.0 * w**-0.5 * np.exp(0.1 * rng.standard_normal(len(w)))
    fit = loglog_rate(w, e)
    assert abs(fit.slope + 0.5) < 3 * fit.stderr and fit.stderr < 0.05
    assert abs(np.exp(fit.intercept) - 3.0) < 0.5


def test_decide_branches():
    assert decide(0.10, 0.01, 0.05)[0] is Verdict.FAIL
    assert decide(0.01, 0.01, 0.05)[0] is Verdict.PASS
    v, why = decide(0.0, 0.05, 0.05)
    assert v is Verdict.INCONCLUSIVE and "noise" in why
    v, why = decide(0.05, 0.005, 0.05)
    assert v is Verdict.INCONCLUSIVE and "close" in why
    assert decide(float("nan"), 0.0, 0.05)[0] is Verdict.FAIL


def test_relative_difference_closed_form():
    a, b = np.array([1.0, 3.0]), np.array([2.0, 2.0, 2.0])
    d, se = relative_difference(a, b)
    # se of mean(a) = sqrt(2) / sqrt(2) = 1; b has no spread; relative to mean(b) = 2
    assert d == 0.0 and np.isclose(se, 0.5)


def test_metrics_closed_forms():
    x = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    y = torch.eye(2, dtype=torch.float64)
    assert torch.isclose(alignment(x, y), torch.tensor(7.0 / (5.0 * 2**0.5), dtype=torch.float64))
    assert torch.isclose(rel_error(x, y), torch.tensor((4 + 9) ** 0.5 / 2**0.5, dtype=torch.float64))
    # leading seed axis is kept
    assert rel_error(torch.stack([x, y]), y).shape == (2,)


def test_observables_from_solution_shapes_and_equal_time():
    spec = ProblemSpec(n_train=5, n_test=3, input_dim=7, depth=2, steps=4)
    sol = solve(spec.build(), "ntk")
    assert observable(sol, "phi", layer=1).shape == (5, 8, 8)
    assert torch.equal(observable(sol, "phi", layer=1), sol.phi_diag(1))
    assert observable(sol, "g_final", layer=0).shape == (8, 8)
    assert observable(sol, "test_loss").shape == (5,)
    a = observable(sol, "alignment_yy")
    assert a.shape == (5,) and (a.abs() <= 1 + 1e-12).all()
    with pytest.raises(ValueError, match="observable"):
        observable(sol, "bogus")
    with pytest.raises(ValueError, match="layer"):
        observable(sol, "phi")
