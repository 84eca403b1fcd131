"""validate.width_study on small synthetic models: arguments, statistics, batching, divergence, outputs.

The references are independent of the code under test: a power law whose exponent is known by
construction, the coverage of a confidence interval over many simulated experiments, the
per-seed loop (the user's model and optimizer run as they are) as the reference for vmap.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from validate import Verdict, read_tables, width_study
from validate.model_width import NETWORK, width_exponent

D = 4
X = torch.randn(12, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
Y = torch.tanh(X[:, 0] - X[:, 1])


class PowerLayer(nn.Module):
    """``(x W^T) * N^alpha / sqrt(D)`` with W (N, D) ~ N(0, 1): its output rms is ~ N^alpha."""

    def __init__(self, width: int, alpha: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, D, dtype=torch.float64))
        self.c = width**alpha / math.sqrt(D)

    def forward(self, x):
        return (x @ self.weight.T) * self.c


class PowerNet(nn.Module):
    def __init__(self, width: int, alpha: float = 0.5):
        super().__init__()
        self.a = PowerLayer(width, alpha)
        self.act = nn.Tanh()
        self.out = nn.Linear(width, 1, dtype=torch.float64)

    def forward(self, x):
        return self.out(self.act(self.a(x)) / self.a.weight.shape[0] ** 0.5)


def small_mlp(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(D, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 1)).double()


def sgd(model, width):
    return torch.optim.SGD(model.parameters(), lr=0.05)


def study(model=small_mlp, **kw):
    args = dict(widths=(8, 16, 32), data=(X, Y), optimizer=sgd, steps=3, seeds=3)
    return width_study(model, **{**args, **kw})


# ---------------------------------------------------------------- the width exponent statistic

def test_exponent_of_an_exact_power_law():
    widths = np.array([16, 32, 64, 128])
    alpha, c = -0.37, 2.5
    # symmetric deviations leave every seed mean exactly c N^alpha
    samples = [c * w**alpha * np.array([0.9, 1.1, 1.0]) for w in widths]
    ex = width_exponent(widths, samples)
    assert ex.slope == pytest.approx(alpha, abs=1e-12)
    assert ex.stderr > 0


def test_exponent_interval_covers_the_truth_95_percent():
    """Over many simulated experiments, slope +- 2 se covers the exponent of the means ~95 %."""
    rng = np.random.default_rng(1)
    widths = np.array([32, 64, 128, 256])
    alpha, S, trials = 0.2, 32, 1500
    hits = 0
    for _ in range(trials):
        samples = [w**alpha * (1 + 0.05 * rng.standard_normal(S)) for w in widths]
        ex = width_exponent(widths, samples)
        hits += abs(ex.slope - alpha) <= 2 * ex.stderr
    assert 0.93 <= hits / trials <= 0.975


def test_nonpositive_mean_has_no_exponent():
    ex = width_exponent([8, 16], [np.array([0.0, 0.0]), np.array([1.0, 2.0])])
    assert np.isnan(ex.slope) and ex.stderr == np.inf


# ---------------------------------------------------------------- verdicts on a known exponent

def test_known_exponent_passes_with_its_expectation_and_fails_without():
    kw = dict(model=PowerNet, widths=(16, 64, 256), observables=("rms",), modules=["a"], seeds=4, steps=2)
    right = study(**kw, expect={"a": 0.5})
    wrong = study(**kw)
    assert right.verdict is Verdict.PASS, right.verdicts[["observable", "time", "reason"]]
    assert wrong.verdict is Verdict.FAIL
    rows = wrong.failing()
    assert set(rows["observable"]) == {"rms[a]"} and set(rows["time"]) == {1.0, 2.0}
    assert rows["estimate"].between(0.45, 0.55).all()
    assert "module 'a'" in rows["reason"].iloc[0] and "expected 0" in rows["reason"].iloc[0]
    assert wrong.failing_modules() == ["a"]


def test_first_matching_expect_pattern_wins_and_step_zero_does_not_gate():
    s = study(model=PowerNet, widths=(16, 64, 256), observables=("rms",), modules=["a"], seeds=4, steps=2,
              expect={"a*": 0.5, "a": 0.0})
    assert s.verdict is Verdict.PASS
    v = s.verdicts
    assert not v[v["time"] == 0]["gating"].any()
    assert v[(v["time"] >= 1) & (v["observable"] == "rms[a]")]["gating"].all()


def test_noise_below_tolerance_is_inconclusive_and_says_what_would_decide():
    s = study(model=PowerNet, widths=(16, 17), observables=("rms",), modules=["a"], seeds=2, steps=1,
              expect={"a": 0.5}, tolerance=0.01)
    row = s.verdicts[(s.verdicts["time"] == 1) & (s.verdicts["observable"] == "rms[a]")].iloc[0]
    assert row["verdict"] == "inconclusive" and "add seeds or widths" in row["reason"]


def test_loss_rows_compare_every_width_with_the_widest():
    s = study()
    loss = s.verdicts[s.verdicts["observable"] == "loss"]
    assert set(loss["statistic"]) == {"rel_diff_vs_widest"}
    assert sorted(set(loss["width"])) == [8.0, 16.0]
    assert len(loss) == 2 * (3 + 1)
    # the estimate is the relative difference of the seed means, recomputed from the curves
    c = s.curves[(s.curves["statistic"] == "loss") & (s.curves["step"] == 3)]
    m = c.groupby("width")["value"].mean()
    row = loss[(loss["width"] == 8) & (loss["time"] == 3)].iloc[0]
    assert row["estimate"] == pytest.approx((m[8] - m[32]) / m[32], rel=1e-12)


# ---------------------------------------------------------------- recording

def test_curves_are_tidy_and_delta_rms_is_zero_at_step_zero():
    s = study()
    assert list(s.curves.columns) == ["width", "seed", "step", "module", "statistic", "value"]
    assert set(s.curves["statistic"]) == {"loss", "output", "rms", "delta_rms"}
    assert set(s.curves["module"]) == {NETWORK, "0", "1", "2", "3", "4"}
    assert len(s.curves) == 3 * 3 * 4 * (2 + 5 * 2)
    d0 = s.curves[(s.curves["statistic"] == "delta_rms") & (s.curves["step"] == 0)]
    assert (d0["value"] == 0).all()
    # output rms equals the last module's rms (the network output is that module's output)
    c = s.curves.set_index(["width", "seed", "step", "module", "statistic"])["value"]
    assert np.allclose(c.xs((NETWORK, "output"), level=(3, 4)), c.xs(("4", "rms"), level=(3, 4)))


def test_rms_and_delta_rms_match_a_direct_computation():
    """Rebuild seed 0 of one width by hand and recompute its module output statistics."""
    from validate.model_width.runs import model_seed

    s = study(widths=(8, 16), steps=2)
    torch.manual_seed(model_seed(0, 16, 0))
    m = small_mlp(16)
    opt = sgd(m, 16)
    outs = []
    for _ in range(3):
        h = m[1](m[0](X))
        outs.append(h.detach())
        opt.zero_grad()
        nn.functional.mse_loss(m(X)[:, 0], Y).backward()
        opt.step()
    c = s.curves
    sel = c[(c["width"] == 16) & (c["seed"] == 0) & (c["module"] == "1")].set_index(["statistic", "step"])["value"]
    for t in range(3):
        assert sel[("rms", t)] == pytest.approx(outs[t].pow(2).mean().sqrt().item(), rel=1e-10)
        assert sel[("delta_rms", t)] == pytest.approx((outs[t] - outs[0]).pow(2).mean().sqrt().item(),
                                                      rel=1e-10, abs=1e-15)


class TupleNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.lin = nn.Linear(D, width, dtype=torch.float64)
        self.act = nn.Tanh()
        self.out = nn.Linear(width, 1, dtype=torch.float64)

    def forward(self, x):
        h = self.act(self.lin(x))
        h = self.act(h)  # the same module twice
        return self.out(h)


def test_repeated_calls_and_glob_patterns():
    s = study(model=TupleNet, modules=["a*", "l?n"], widths=(8, 16), steps=1)
    assert set(s.curves["module"]) == {NETWORK, "act", "act#2", "lin"}


def test_minibatch_callable_uses_fixed_inputs_for_recording():
    calls = []

    def data(step, gen):
        calls.append(step)
        idx = torch.randint(0, len(X), (6,), generator=gen)
        return X[idx], Y[idx]

    s = study(data=data, steps=3, widths=(8, 16))
    assert s.verdicts["verdict"].isin(["pass", "fail", "inconclusive"]).all()
    # fixed probe batch: delta at step 0 is 0 and every run draws the same batch sequence
    assert (s.curves[(s.curves["statistic"] == "delta_rms") & (s.curves["step"] == 0)]["value"] == 0).all()
    assert calls.count(0) >= 2 and max(calls) == 2


# ---------------------------------------------------------------- batched seeds vs the loop

@pytest.mark.parametrize("make_opt", [
    lambda m, n: torch.optim.Adam(m.parameters(), lr=0.01),
    lambda m, n: torch.optim.SGD([{"params": list(m.parameters())[:2], "lr": 0.1 / n},
                                  {"params": list(m.parameters())[2:], "lr": 0.05, "momentum": 0.9}]),
])
def test_vmap_and_loop_give_the_same_curves(make_opt):
    a = study(optimizer=make_opt, batching="vmap", steps=4)
    b = study(optimizer=make_opt, batching="loop", steps=4)
    assert {i["path"] for i in a.info.values()} == {"vmap"}
    assert {i["path"] for i in b.info.values()} == {"loop"}
    key = ["width", "seed", "step", "module", "statistic"]
    m = a.curves.merge(b.curves, on=key, suffixes=("_v", "_l"))
    assert len(m) == len(a.curves) == len(b.curves)
    assert np.allclose(m["value_v"], m["value_l"], rtol=1e-9, atol=1e-13)
    pd.testing.assert_series_equal(a.verdicts["verdict"], b.verdicts["verdict"])


class MySGD(torch.optim.SGD):
    pass


def test_unknown_optimizer_falls_back_to_the_loop():
    s = study(optimizer=lambda m, n: MySGD(m.parameters(), lr=0.05), widths=(8, 16), steps=1)
    assert {i["path"] for i in s.info.values()} == {"loop"}
    assert "not known to act elementwise" in s.info[8]["note"]
    with pytest.raises(ValueError, match="^batching: 'vmap' is not possible"):
        study(optimizer=lambda m, n: MySGD(m.parameters(), lr=0.05), widths=(8, 16), steps=1, batching="vmap")


class BranchyNet(nn.Module):
    """Data-dependent Python control flow: vmap cannot trace it."""

    def __init__(self, width):
        super().__init__()
        self.lin = nn.Linear(D, width, dtype=torch.float64)
        self.out = nn.Linear(width, 1, dtype=torch.float64)

    def forward(self, x):
        h = self.lin(x)
        if h.sum() > 1e9:
            h = h * 0
        return self.out(torch.tanh(h))


def test_model_vmap_cannot_run_falls_back_to_the_loop():
    s = study(model=BranchyNet, widths=(8, 16), steps=1)
    assert {i["path"] for i in s.info.values()} == {"loop"}
    assert "vmap cannot run the model" in s.info[8]["note"]
    assert len(s.verdicts)


# ---------------------------------------------------------------- divergence

def test_a_diverging_run_is_recorded_and_fails_its_rows():
    linear = lambda n: nn.Sequential(nn.Linear(D, n), nn.Linear(n, 1)).double()  # noqa: E731
    big = lambda m, n: torch.optim.SGD(m.parameters(), lr=0.5 * n)  # noqa: E731  the wide nets blow up
    s = study(model=linear, optimizer=big, widths=(2, 64), steps=40, seeds=2)
    assert len(s.diverged) and set(s.diverged.columns) == {"width", "seed", "step"}
    assert np.isfinite(s.curves["value"]).all()
    first = int(s.diverged["step"].min())
    v = s.verdicts[s.verdicts["gating"]]
    after = v[v["time"] >= first]
    assert (after["verdict"] == "fail").all() and after["reason"].str.contains("diverged").all()
    assert s.verdict is Verdict.FAIL
    w, seed, step = s.diverged.sort_values("step").iloc[0]
    assert f"width {w} seed {seed} at step {step}" in after["reason"].iloc[0]
    # nothing is recorded for a diverged run from its divergence step on
    c = s.curves
    assert not len(c[(c["width"] == w) & (c["seed"] == seed) & (c["step"] >= step)])


# ---------------------------------------------------------------- arguments

def not_a_module(width):
    return "nope"


@pytest.mark.parametrize("kw, exc, field", [
    (dict(model=nn.Linear(2, 2)), TypeError, "model"),
    (dict(model={8: small_mlp, "x": small_mlp}), TypeError, "model"),
    (dict(model={8: small_mlp, 16: small_mlp}, widths=(8, 32)), ValueError, "widths"),
    (dict(widths=(8,)), ValueError, "widths"),
    (dict(widths=(8, 8)), ValueError, "widths"),
    (dict(widths=(0, 8)), ValueError, "widths"),
    (dict(data="x"), TypeError, "data"),
    (dict(data=(X, Y[:3])), ValueError, "data"),
    (dict(data=(X * np.nan, Y)), ValueError, "data"),
    (dict(optimizer=3), TypeError, "optimizer"),
    (dict(loss="l1"), ValueError, "loss"),
    (dict(steps=0), ValueError, "steps"),
    (dict(seeds=1), ValueError, "seeds"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(device="nonsense"), ValueError, "device"),
    (dict(observables=("loss", "grad")), ValueError, "observables"),
    (dict(observables=()), TypeError, "observables"),
    (dict(tolerance=0), ValueError, "tolerance"),
    (dict(tolerance={"loss": 0.1}), ValueError, "tolerance"),
    (dict(modules=["nomatch*"]), ValueError, "modules"),
    (dict(expect={"0": "big"}), ValueError, "expect"),
    (dict(batching="gpu"), ValueError, "batching"),
    (dict(model=not_a_module), TypeError, "model"),
    (dict(optimizer=lambda m, n: "sgd"), TypeError, "optimizer"),
    (dict(loss=lambda out, y: (out[:, 0] - y) ** 2), ValueError, "loss"),
    (dict(data=lambda step, gen: X), TypeError, "data"),
])
def test_bad_arguments_name_the_argument(kw, exc, field):
    with pytest.raises(exc, match=rf"^{field}"):
        study(**kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="^device: CUDA"):
        study(device="cuda")


# ---------------------------------------------------------------- figure and report

def test_plot_has_one_panel_per_statistic_and_step(tmp_path):
    s = study(steps=4, modules=["1", "3"])
    fig = s.plot(steps=[1, 4])
    assert len([a for a in fig.axes if a.get_xscale() == "log"]) == 4 * 2
    assert fig.axes[0].get_yscale() == "log"
    assert fig.axes[0].get_title() == "step 1"
    legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    assert len(legends) == 4  # one per row, outside the data
    s.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_report_writes_the_standard_run_folder(tmp_path):
    s = study(modules=["1"])
    folder = s.report(tmp_path, name="run")
    assert (folder / "summary.md").exists() and (folder / "index.html").exists()
    # the coordinate check is one of the report's figures (tests/test_width_study_report.py)
    assert (folder / "figures" / "coordinate_check_width_study.png").exists()
    tables = read_tables(folder)
    assert len(tables["verdicts"]) == len(s.verdicts)
    assert list(tables["verdicts"]["verdict"]) == list(s.verdicts["verdict"])
    assert s.verdict.value.upper() in (folder / "summary.md").read_text()


@pytest.mark.gpu
def test_runs_on_cuda_with_the_same_curves_as_the_cpu():
    a = study(device="cuda", widths=(8, 16), steps=2)
    b = study(widths=(8, 16), steps=2)
    assert {i["path"] for i in a.info.values()} == {"vmap"}
    assert np.allclose(a.curves["value"], b.curves["value"], rtol=1e-6, atol=1e-9)


def test_the_front_door_stays_a_function_after_its_subpackage_is_imported():
    import validate
    import validate.claims  # noqa: F401  (imports validate.model_width lazily for python claims)
    import validate.model_width.claim  # noqa: F401

    assert callable(validate.width_study) and validate.width_study.__module__ == "validate.model_width.study"
    assert validate.width_study is width_study
