"""Property-based guard on every solver (issue 10, item 2): never a silent wrong answer.

Random small problems, rich gamma0 and time steps up to the stability limit, linear and
nonlinear activations, depth 1..3. Every ok solution is finite and its residual is within the
tolerance it reports; every other status says why (and DIVERGED at which step). The slow
variant holds ok answers against width-2048 networks and counts refusals and errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import Problem, Status, solve

#: Small Monte Carlo settings for the fast guard (the issue's fuzz used ~200 samples).
FAST = dict(samples=200, response_samples=8, max_iterations=12, march_replicas=2)


@st.composite
def problems(draw, max_steps: int = 5):
    p, q = draw(st.integers(1, 4)), draw(st.integers(0, 1))
    d, depth, steps = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, max_steps))
    act = draw(st.sampled_from(["linear", "tanh", "relu", "erf"]))
    gamma0 = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.5, 3.0]))
    frac = draw(st.sampled_from([0.1, 0.5, 0.8, 0.95]))  # of the stability limit
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.randn(p + q, d, generator=gen, dtype=torch.float64)
    y = torch.randn(p, generator=gen, dtype=torch.float64)
    base = Problem(x[:p], y, x[p:] if q else None, depth=depth, activation=act, gamma0=gamma0,
                   eta=1e-3, steps=steps)
    return base.replace(eta=frac * base.eta_limit())


def check_honest(sol) -> None:
    """The guard's property: ok means finite and within tolerance; not ok means a reason."""
    fields = [sol.loss, sol.f_train, sol.ntk, *sol.phi, *sol.g]
    if sol.f_test is not None:
        fields.append(sol.f_test)
    if sol.ok:
        assert all(bool(torch.isfinite(t).all()) for t in fields), sol.status
        if sol.status is Status.EXACT:
            assert sol.residual == 0.0
        else:
            assert math.isfinite(sol.residual) and sol.residual <= sol.info["tolerance"], sol.info
    else:
        assert sol.info["reason"]
        if sol.status is Status.DIVERGED:
            k = sol.info["diverged_step"]
            assert 0 < k <= sol.problem.steps and bool(torch.isfinite(sol.loss[:k]).all())


@settings(max_examples=30, deadline=None)
@given(problems())
def test_every_ok_solution_is_finite_and_within_its_tolerance(problem):
    check_honest(solve(problem, **FAST))


@settings(max_examples=8, deadline=None)
@given(problems(), st.sampled_from(["gia", "ntk", "perturbative"]))
def test_every_scheme_is_honest(problem, scheme):
    check_honest(solve(problem, scheme, **FAST))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_ok_solutions_agree_with_width_2048_networks():
    """Default samples against width-2048 networks (8 seeds) on random rich problems near the
    stability limit: an ok answer must be within 3 combined standard errors (relative Frobenius
    norm of the loss curve, plus 2 % for finite width). Prints how often the solver refused and
    how often an ok answer was wrong; wrong must be 0."""
    from simulate import train

    rows, gen = [], torch.Generator().manual_seed(11)
    for i in range(9):
        p, depth = 3 + i % 2, 1 + i % 3
        x = torch.randn(p, 4, generator=gen, dtype=torch.float64)
        y = torch.randn(p, generator=gen, dtype=torch.float64)
        act = ("tanh", "relu", "erf")[i % 3]
        base = Problem(x, y, depth=depth, activation=act, gamma0=(0.5, 1.0, 1.5)[i % 3],
                       eta=1e-3, steps=8)
        pr = base.replace(eta=(0.3, 0.6, 0.9)[(i // 3) % 3] * base.eta_limit())
        sol = solve(pr)
        if not sol.ok:
            rows.append((i, sol.status.value, None))
            print(f"problem {i}: {pr!r} refused: {sol.status.value}", flush=True)
            continue
        nets = train(pr, width=2048, seeds=8)
        ok = ~nets.diverged
        mean = nets.loss[ok].mean(0)
        sem = float((nets.loss[ok].std(0) / math.sqrt(int(ok.sum()))).norm())
        err = float((sol.loss - mean).norm() / mean.norm())
        se = math.hypot(sol.info["standard_error"]["loss"], sem / float(mean.norm()))
        rows.append((i, sol.status.value, err / (3 * se + 0.02)))
        print(f"problem {i}: {pr!r} {sol.status.value}, error {err:.3g} vs allowed {3 * se + 0.02:.3g}",
              flush=True)
    refused = sum(r[2] is None for r in rows)
    wrong = sum(r[2] is not None and r[2] > 1 for r in rows)
    print(f"\n{len(rows)} problems: {len(rows) - refused} ok, {refused} refused, {wrong} ok but wrong")
    for r in rows:
        print(r)
    assert wrong == 0
