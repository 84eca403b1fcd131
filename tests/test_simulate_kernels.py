"""Equal-time kernel recording (``train(kernels="equal_time")``): the diagonal of the two-time
kernels, through ``train``, the sweep cache and validate's ensembles (docs/theory.md section 1)."""

from __future__ import annotations

import pytest
import torch

from simulate import train
from simulate.sweep import Job, grid, run_sweep
from theory.data import gaussian_data
from theory.problem import Problem
from validate.sources import Context


def _problem(activation="tanh", gamma0=1.0, eta=0.1, steps=6, depth=3):
    x, y, xt, yt = gaussian_data(6, 25, 2, seed=1)
    return Problem(x, y, xt, yt, depth=depth, activation=activation, gamma0=gamma0, eta=eta, steps=steps)


def _diagonal(two_time: torch.Tensor) -> torch.Tensor:
    """(S, Tk, P, P) from (S, Tk, P, Tk, P) by explicit indexing (not Trajectories.phi_diag)."""
    return torch.stack([two_time[:, i, :, i, :] for i in range(two_time.shape[1])], dim=1)


def test_equal_time_mode_is_the_diagonal_of_the_two_time_mode():
    p = _problem()
    times = [0, 2, 6]
    two = train(p, 96, 3, seed=4, times=times)
    eq = train(p, 96, 3, seed=4, times=times, kernels="equal_time", memory_budget=1)  # one seed a batch
    assert eq.phi is None and eq.g is None and eq.info["kernels"] == "equal_time"
    assert eq.info["seed_chunk"] == 1 and torch.equal(eq.kernel_times, torch.tensor(times))
    for name in ("loss", "f_train", "f_test", "ntk"):  # the training itself is the same
        torch.testing.assert_close(getattr(eq, name), getattr(two, name), rtol=1e-12, atol=1e-14)
    for l in range(p.depth):
        for eq_k, eq_d, two_k in ((eq.phi_eq[l], eq.phi_diag(l), two.phi[l]), (eq.g_eq[l], eq.g_diag(l), two.g[l])):
            assert eq_k.shape == (3, len(times), p.n_points, p.n_points)
            torch.testing.assert_close(eq_k, _diagonal(two_k), rtol=1e-12, atol=1e-14)
            assert eq_d is eq_k
        torch.testing.assert_close(two.phi_diag(l), _diagonal(two.phi[l]), rtol=0, atol=0)
    torch.testing.assert_close(eq.mean("phi_eq")[0], _diagonal(two.phi[0]).mean(0), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="kernels='two_time'"):
        eq.mean("phi")


def test_equal_time_kernels_are_masked_after_divergence():
    p0 = _problem(activation="linear", gamma0=3.0, steps=2)
    p = p0.replace(eta=0.9 * p0.eta_limit(), steps=30)
    two = train(p, 128, 3, record=("phi",))
    eq = train(p, 128, 3, record=("phi",), kernels="equal_time")
    assert eq.diverged.all() and torch.equal(eq.diverged_step, two.diverged_step)
    for i in range(3):
        k = int(eq.diverged_step[i])
        assert torch.isnan(eq.phi_eq[0][i, k:]).all() and torch.isfinite(eq.phi_eq[0][i, :k]).all()
        torch.testing.assert_close(eq.phi_eq[0][i, :k], _diagonal(two.phi[0])[i, :k], rtol=1e-12, atol=1e-12)
    assert eq.g_eq is None and eq.ntk is None


def test_bad_kernel_mode_is_rejected():
    with pytest.raises(ValueError, match="kernels: unknown mode 'diagonal'"):
        train(_problem(), 16, kernels="diagonal")
    with pytest.raises(ValueError, match="kernels"):
        Job(_problem(), width=16, kernels="both")


def test_sweep_jobs_key_and_cache_the_kernel_mode(tmp_path):
    p = _problem(steps=4)
    two, eq = grid(p, [16], seeds=2, times=[0, 4]), grid(p, [16], seeds=2, times=[0, 4], kernels="equal_time")
    assert two[0].key() != eq[0].key()  # the mode enters the cache key
    first = run_sweep(two + eq, cache_dir=tmp_path, executor="serial", progress=False)
    again = run_sweep(eq, cache_dir=tmp_path, executor="serial", progress=False)  # read back from the cache
    for run in (first[1], again[0]):
        assert run.phi is None and run.phi_eq is not None
        for l in range(p.depth):
            torch.testing.assert_close(run.g_diag(l), _diagonal(first[0].g[l]), rtol=1e-12, atol=1e-14)


def test_ensembles_ask_for_equal_time_kernels_unless_two_time_ones_are_wanted():
    seen = []

    def trainer(problem, width, seeds=1, *, seed=0, device="cpu", kernels="two_time"):
        seen.append(kernels)
        return train(problem, width, seeds, seed=seed, device=device, kernels=kernels)

    def older(problem, width, seeds=1, *, seed=0, device="cpu"):  # does not take kernels=
        return train(problem, width, seeds, seed=seed, device=device)

    p = _problem(steps=4, depth=2)
    ctx = Context(trainer=trainer, progress=False)
    eq, two = ctx.networks(p, 32, 2), ctx.networks(p, 32, 2, two_time=True)
    assert seen == ["equal_time", "two_time"]
    assert ctx.network_job(p, 32, 2).key() != ctx.network_job(p, 32, 2, two_time=True).key()
    old = Context(trainer=older, progress=False).networks(p, 32, 2)
    assert eq.phi is None and two.phi is not None
    for l in range(p.depth):
        ref = _diagonal(two.phi[l])  # stored in float32: equal to its rounding
        for got in (eq.phi_diag(l), old.phi_diag(l)):
            torch.testing.assert_close(got, ref, rtol=2e-7, atol=1e-7)
