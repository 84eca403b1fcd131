"""The one-pass time march of the Monte Carlo linearised map and its causal source factor
(``docs/finite_width.md`` sections 7 and 9).

References: the same model solved by sweeps to a tight tolerance (an independent solver of the
same equations), the exact linear method (``tests/test_fluctuations.py``), and the defining
properties of a causal factor."""

from __future__ import annotations

import pytest
import torch

from theory import Problem, Status, fluctuations, solve
from theory.fluctuations import Causal, CausalRange


def tanh_problem(depth=2, steps=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, generator=g, dtype=torch.float64)
    xt = torch.randn(1, 5, generator=g, dtype=torch.float64)
    return Problem(x, y, x_test=xt, depth=depth, activation="tanh", gamma0=1.2, eta=0.3, steps=steps)


def _worst(a, b):
    fields = [(a.loss, b.loss), (a.f_train, b.f_train), (a.f_test, b.f_test), (a.ntk, b.ntk)]
    fields += list(zip(a.phi + a.g, b.phi + b.g))
    return max(float((x - y).abs().max() / y.abs().max()) for x, y in fields)


@pytest.mark.parametrize("depth,samples,refine", [(2, 60, 60), (3, 96, 32)])
def test_march_equals_the_swept_solve_of_the_same_model(depth, samples, refine):
    """One pass over time gives what sweeps to 1e-10 give, on a nonlinear network (where the
    phi'' z terms of the field tangents are live), single- and two-level."""
    prob = tanh_problem(depth)
    sol = solve(prob)
    opts = dict(solution=sol, samples=samples, refine=refine, population=200, seed=1)
    one = fluctuations(prob, march=True, precision="double", **opts)
    swept = fluctuations(prob, march=False, tol=1e-10, max_iterations=400, precision="double", **opts)
    assert one.info["solver"] == "march" and swept.info["solver"] == "iterate"
    if refine < samples:  # both levels are solved the same way
        assert one.info["control_solver"] == "march" and swept.info["control_solver"] == "iterate"
    assert one.status is Status.CONVERGED and swept.status is Status.CONVERGED
    assert one.iterations == 1 and swept.iterations > 5
    assert _worst(one, swept) < 1e-7


def test_march_is_the_default_for_the_exact_update_only():
    prob = tanh_problem()
    sol = solve(prob)
    assert fluctuations(prob, solution=sol, samples=20, refine=20, population=200).info["solver"] == "march"
    first = solve(prob, update="first_order")
    fo = fluctuations(prob, solution=first, update="first_order", samples=20, refine=20, population=200)
    assert fo.info["solver"] == "iterate" and fo.info["control_solver"] is None  # refine = samples
    fo2 = fluctuations(prob, solution=first, update="first_order", samples=20, refine=10, population=200)
    assert fo2.info["control_solver"] == "2 sweeps"
    with pytest.raises(ValueError, match="march"):
        fluctuations(prob, solution=first, update="first_order", march=True)
    with pytest.raises(ValueError, match="march"):
        fluctuations(prob, march="yes")


def _kernel(n, gen):
    w = torch.randn(n, n + 2, generator=gen, dtype=torch.float64)
    return w @ w.T / n + 0.2 * torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("kind,rcond", [(Causal, 1e-12), (CausalRange, 1e-7)])
def test_causal_factor_is_a_causal_factor_with_a_causal_tangent(kind, rcond):
    gen = torch.Generator().manual_seed(4)
    m, p = 5, 3
    n = m * p
    cov = _kernel(n, gen)
    fac = kind(cov, m=m, p=p, rcond=rcond)
    f = fac.factor
    t = torch.arange(m).repeat_interleave(p)
    assert torch.equal(f[t[None, :] > t[:, None]], torch.zeros(int((t[None, :] > t[:, None]).sum()), dtype=f.dtype))
    assert float((f @ f.T - cov).abs().max()) < 1e-12
    d = torch.randn(2, n, n, generator=gen, dtype=torch.float64)
    dcov = d + d.mT
    df = fac.tangent(dcov)
    assert float((df @ f.T + f @ df.mT - dcov).abs().max()) < 1e-10 * float(dcov.abs().max())
    # rows of time <= k do not move when dcov changes at later times only
    k = 2
    late = dcov.clone()
    late[:, (k + 1) * p :, :] += 1.0
    late[:, :, (k + 1) * p :] += 1.0
    assert torch.equal(fac.tangent(late)[:, : (k + 1) * p], df[:, : (k + 1) * p])


def test_range_factor_of_a_rank_deficient_kernel():
    """A kernel of rank 8 over 15 entries with eigenvalues spread down to 1e-12 of the largest
    (as in linear networks): the factor regressed on the past normals reproduces it, and its
    tangent along changes within the kernel's range solves the defining equation, to round-off
    (measured 5e-15; the kernel pseudo-inverse of ``Causal`` leaves 1e-8 at its 1e-10 cut)."""
    gen = torch.Generator().manual_seed(5)
    m, p, r = 5, 3, 8
    w = torch.randn(m * p, r, generator=gen, dtype=torch.float64) * torch.logspace(0, -6, r, dtype=torch.float64)
    cov = w @ w.T
    fac = CausalRange(cov, m=m, p=p)
    f = fac.factor
    assert float((f @ f.T - cov).abs().max()) < 1e-12 * float(cov.abs().max())
    b = torch.randn(2, r, r, generator=gen, dtype=torch.float64)
    dcov = w @ (b + b.mT) @ w.T
    df = fac.tangent(dcov)
    assert float((df @ f.T + f @ df.mT - dcov).abs().max()) < 1e-12 * float(dcov.abs().max())


def test_chunks_are_capped_by_memory():
    """A direction chunk never asks for more than the memory caps allow, and at least 1."""
    from theory.fluctuations.montecarlo import BUFFER_ELEMENTS, FULL_CHUNK, full_chunk

    assert full_chunk(256, 36, 1000) == FULL_CHUNK
    assert full_chunk(256, 1020, 1000) == BUFFER_ELEMENTS // (1020 * 1000)
    assert full_chunk(256, 10**5, 10**4) == 1
    assert full_chunk(3, 36, 1000) == 3
