"""Issue-3 accuracy target (slow): the default Monte Carlo DMFT against wide tanh networks
extrapolated to infinite width (benchmarks.bench_mc_accuracy builds the reference: widths
512 .. 8192, seed ensembles, weighted fit a + b/N; cached on disk after the first run)."""

import os

import pytest
import torch

from benchmarks.bench_mc_accuracy import CACHE, accuracy_problem, compare, network_reference


@pytest.mark.slow
def test_default_solver_matches_extrapolated_networks():
    from theory.montecarlo import solve_mc

    pr = accuracy_problem()
    if os.path.exists(CACHE):
        ref = torch.load(CACHE)
    else:
        ref = network_reference(pr, progress=False)
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        torch.save(ref, CACHE)
    err = compare(solve_mc(pr), ref)
    assert err["loss_max_dev_over_initial"] < 0.01
    assert err["f_test_rel_frob"] < 0.02
    for l in (1, 2, 3):
        assert err[f"phi{l}_rel_frob"] < 0.02
