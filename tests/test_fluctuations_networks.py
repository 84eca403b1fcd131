"""theory.fluctuations against brute-force ensembles of trained networks (slow).

Hundreds of seeds per width, trained by ``simulate.train``; the measured ``N * Var`` is compared
entry by entry with the prediction, allowing four combined standard errors (ensemble fourth
moments, and the Monte Carlo error of the prediction), 10 % of the entry, and an O(1/N) term of
the field's scale, ``10 max(field) / N``: where the first-order sensitivity nearly vanishes the
next order dominates (deep linear, ``f~`` of point 0 at step 2: predicted 0.0042, measured
0.0215 at N = 256 and 0.0119 at N = 512, an excess of 4.4 / N against a field maximum of 0.58).
The medians over entries must agree within 7 %. The deep linear case is where the
response structure shows: the derivative-integrand ("naive") propagation is 13-18 % low on the losses of
the last three steps and up to 20 % low on the top-layer kernel for this problem (measured with a
dense implementation of it), so it fails these checks.
"""

from __future__ import annotations

import pytest
import torch

from simulate import train
from theory import Problem, fluctuations

pytestmark = pytest.mark.slow


def problem(act: str, depth: int, steps: int, gamma0: float) -> Problem:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, generator=g, dtype=torch.float64)
    xt = torch.randn(1, 5, generator=g, dtype=torch.float64)
    return Problem(x, y, x_test=xt, depth=depth, activation=act, gamma0=gamma0, eta=0.3, steps=steps)


def ensemble(prob: Problem, width: int, seeds: int) -> dict[str, torch.Tensor]:
    """Per-seed observables (seed axis first) in the layout of Fluctuations."""
    run = train(prob, width=width, seeds=seeds, record=("ntk", "phi", "g"))
    eq = lambda k: torch.diagonal(k, dim1=1, dim2=3).permute(0, 3, 1, 2)  # noqa: E731
    return {"loss": run.loss, "f": torch.cat([run.f_train, run.f_test], 2), "ntk": run.ntk,
            "phi": torch.stack([eq(p) for p in run.phi], 1), "g": torch.stack([eq(p) for p in run.g], 1)}


def predicted(fl) -> tuple[dict, dict]:
    se = fl.info["standard_error"]
    pred = {"loss": fl.loss, "f": torch.cat([fl.f_train, fl.f_test], 1), "ntk": fl.ntk,
            "phi": torch.stack(fl.phi), "g": torch.stack(fl.g)}
    zero = {k: torch.zeros_like(v) for k, v in pred.items()}
    if not se:
        return pred, zero
    return pred, {"loss": se["loss"], "f": se["f"], "ntk": se["ntk"], "phi": se["phi"], "g": se["g"]}


def check(prob, fl, width, seeds):
    runs = ensemble(prob, width, seeds)
    pred, pse = predicted(fl)
    for name, vals in runs.items():
        x = vals - vals.mean(0)
        emp = width * (x**2).mean(0) * seeds / (seeds - 1)
        ese = width * ((x**4).mean(0) - (x**2).mean(0) ** 2).clamp(min=0).sqrt() / seeds**0.5
        p = pred[name]
        keep = p > 1e-6 * p.max()
        allowed = 4 * (ese**2 + pse[name] ** 2).sqrt() + 0.10 * p + 10.0 * p.max() / width
        bad = ((emp - p).abs() > allowed) & keep
        assert not bool(bad.any()), f"{name} at N={width}: {int(bad.sum())} of {int(keep.sum())} entries"
        ratio = float((emp[keep] / p[keep]).median())
        assert abs(ratio - 1) < 0.07, f"{name} at N={width}: median ratio {ratio:.3f}"


@pytest.mark.parametrize("width,seeds", [(256, 2000), (512, 1500)])
def test_deep_linear_matches_trained_ensembles(width, seeds):
    prob = problem("linear", 3, 6, 1.5)
    check(prob, fluctuations(prob), width, seeds)


def test_deep_tanh_matches_trained_ensembles():
    """The medians must agree within 7 %, so the prediction's own error must be well below that:
    2000 sites per layer with 256 of them fully solved (median relative standard error ~5 % on
    the loss, as the 2000 fully solved sites this test used before the two-level estimate). The
    default 64 fully solved sites (loss error ~6-8 %) gave a loss median ratio of 0.929 here."""
    prob = problem("tanh", 2, 8, 1.0)
    fl = fluctuations(prob, samples=2000, refine=256, population=1000)
    assert fl.ok and fl.info["refine"] == 256
    check(prob, fl, 512, 1500)
