"""The paper suite at smoke size: every experiment produces its tables, figures and verdicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from report_checks import captured_figures, figure_problems, reason_disagreements
from validate.paper import experiments
from validate.paper.densities import network_fields, theory_fields
from validate.paper.sizes import SIZES, resolve
from validate.sources import Context
from validate.suites import builtin_names, get_suite, run_suite

PREFIXES = ("fig1", "fig2", "fig3", "fig4", "appendix")


@pytest.fixture(scope="module")
def smoke_ctx():
    return Context(progress=False)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke_ctx):
    from validate.paper.report import render_paper_report, save_tables
    from validate.suites.paper import build

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("paper")
    result, timings = run_suite(build("smoke"), smoke_ctx)
    save_tables(result, out, dict(size="smoke", device="cpu", elapsed_s=sum(timings.values())))
    with pytest.MonkeyPatch.context() as mp, captured_figures(mp) as figs:
        render_paper_report(out)
        problems = [([a.get_title() for a in f.axes][:1], figure_problems(f)) for f in figs]
    return result, out, problems


def test_paper_run_is_planned_in_one_batch(smoke_run, smoke_ctx):
    """Every experiment declares its solves, ensembles and CNN trainings (``jobs``), so the planner
    runs them in one batch and evaluates each experiment once (no pass discovers late work)."""
    from validate.suites.paper import build

    checks = build("smoke").checks
    assert all(callable(getattr(c, "jobs", None)) for c in checks)
    assert smoke_ctx.session.passes == {c.name: 1 for c in checks}
    assert smoke_ctx.stats["trained"] > 0 and smoke_ctx.stats["solves"] > 0


def test_paper_is_a_builtin_suite():
    assert "paper" in builtin_names()
    assert [c.name.split("/")[0] for c in get_suite("paper").checks] == list(PREFIXES)


def test_sizes_resolve_and_reject(monkeypatch):
    monkeypatch.delenv("DMFT_PAPER_SIZE", raising=False)
    assert resolve(None, "cpu").name == "cpu"
    assert resolve(None, "cuda").name == "full"
    monkeypatch.setenv("DMFT_PAPER_SIZE", "smoke")
    assert resolve(None, "cuda").name == "smoke"
    with pytest.raises(ValueError, match="size"):
        resolve("huge")
    assert set(SIZES) == {"smoke", "cpu", "full"}


def test_every_experiment_has_verdicts_and_data(smoke_run):
    result, _, _ = smoke_run
    v = result.verdicts
    for p in PREFIXES:
        sub = v[v["check"].str.startswith(p)]
        assert len(sub), p
        assert sub["gating"].any(), f"{p}: no gating verdict"
        assert set(sub["verdict"]) <= {"pass", "fail", "inconclusive"}
    c, m = result.curves, result.measurements
    assert {"h_density_t0", "h_density_tT"} <= set(c["observable"])
    assert (m["statistic"] == "alignment").sum() > 0
    assert (m["statistic"] == "kernel_movement").sum() > 0
    assert set(c[c["check"] == "fig4/cnn"]["observable"]) == {"test_mse", "test_error", "alignment"}
    # Fig. 3 compares all four schemes with the networks
    a = m[(m["check"] == "fig3/linear-approximations") & (m["statistic"] == "alignment")]
    assert set(a["scheme"]) == {"dmft", "ntk", "gia", "perturbative"}
    assert a["value"].between(-1 - 1e-12, 1 + 1e-12).all()


def test_report_has_figures_and_comparison_table(smoke_run):
    _, out, _ = smoke_run
    md = (out / "README.md").read_text()
    assert "Our numbers beside the published ones" in md
    assert "0.76" in md and "0.99" in md  # the published Fig. 3 numbers are quoted
    figs = {p.name for p in (out / "figures").glob("*.png")}
    for f in ("fig1_loss.png", "fig1_alignment_vs_width.png", "fig1_densities.png", "fig2_movement.png",
              "fig3_alignment.png", "fig4_cnn.png", "appendix_loss.png"):
        assert f in figs
        assert f"figures/{f}" in md


def test_paper_figures_are_readable(smoke_run):
    """Paper-style and standard figures: no overlapping ticks, legends outside the data,
    heatmaps with axis labels and colour bars."""
    _, out, problems = smoke_run
    assert len(problems) >= 10
    assert not [p for p in problems if p[1]]


def test_paper_reasons_show_the_estimate_with_its_sign(smoke_run):
    result, _, _ = smoke_run
    assert not reason_disagreements(result.verdicts)


def test_paper_report_is_one_document_in_markdown_and_html(smoke_run):
    """README.md and index.html come from one document; the repository's own docs are cited."""
    _, out, _ = smoke_run
    md, page = (out / "README.md").read_text(), (out / "index.html").read_text()
    assert "THEORY.md" not in md and "docs/theory.md section 7" in md
    for title in ("Our numbers beside the published ones", "Run"):
        assert f"## {title}" in md and f"<h2>{title}</h2>" in page
    imgs = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert imgs and all(f'src="{p}"' in page and (out / p).exists() for p in imgs)


def test_theory_fields_start_as_the_input_gaussian():
    """h^1(0) = u^1 ~ N(0, Kx) exactly (docs/theory.md section 2): sample covariance matches Kx."""
    from theory import Problem, solve
    from theory.data import gaussian_data

    x, y, _, _ = gaussian_data(4, 6, 0, seed=1)
    pr = Problem(x, y, depth=2, activation="tanh", gamma0=1.0, eta=0.1, steps=3)
    sol = solve(pr, samples=256, response_samples=4)
    h1 = theory_fields(sol, 20000, seed=3)[0][:, 0, :]  # (S, P)
    cov = h1.T @ h1 / h1.shape[0]
    assert torch.allclose(cov, pr.kx.to(cov), atol=0.05)


def test_network_fields_start_as_the_input_gaussian():
    from theory import Problem
    from theory.data import gaussian_data

    x, y, _, _ = gaussian_data(4, 6, 0, seed=1)
    pr = Problem(x, y, depth=2, activation="tanh", gamma0=1.0, eta=0.1, steps=2)
    h = network_fields(pr, 4000, seeds=2)
    h1 = h[0][0].permute(1, 0, 2).reshape(4, -1)  # (P, seeds * N) at t = 0
    cov = h1 @ h1.T / h1.shape[1]
    assert torch.allclose(cov, pr.kx.to(cov), atol=0.1)
    assert h[0].shape == (2, 2, 4, 4000)


def test_only_rerun_replaces_just_its_rows(smoke_run, tmp_path):
    """``--only``: the rerun experiment's rows replace the saved ones, every other row is kept."""
    import json
    import shutil

    from validate.frame import CheckResult, frame
    from validate.paper.report import load_tables, merge_tables

    _, out, _ = smoke_run
    dst = tmp_path / "paper"
    shutil.copytree(out, dst)
    (dst / "run.json").write_text(json.dumps({"size": "smoke", "check_seconds": {"fig1/tanh-L3": 5.0,
                                                                                 "appendix/relu-L1": 2.0}}))
    old = load_tables(dst)["verdicts"]
    is_app = old["check"].str.startswith("appendix/")
    new = old[is_app].assign(reason="rerun")
    merged, meta = merge_tables(dst, CheckResult(frame("verdicts", new.to_dict("records"))),
                                {"check_seconds": {"appendix/relu-L1": 1.0}, "elapsed_s": 1.0},
                                ["appendix/relu-L1"])
    v = merged.verdicts
    got_app = v[v["check"].str.startswith("appendix/")]
    assert len(got_app) == is_app.sum() and (got_app["reason"] == "rerun").all()
    assert len(v) == len(old)
    assert (v[~v["check"].str.startswith("appendix/")]["reason"] != "rerun").all()
    assert meta["check_seconds"] == {"fig1/tanh-L3": 5.0, "appendix/relu-L1": 1.0}
    assert meta["rerun"]["experiments"] == ["appendix/relu-L1"]


def test_only_rejects_unknown_experiment(tmp_path):
    from validate.paper.__main__ import main

    with pytest.raises(SystemExit, match="--only"):
        main(["--size", "smoke", "--only", "fig9", "--out", str(tmp_path), "--cache", ""])


def test_cnn_learning_rate_scales_like_one_over_gamma0():
    from validate.paper.cnn import ETA0, eta_for

    assert eta_for(1.0) == ETA0
    assert eta_for(5.0) * 5.0 == pytest.approx(ETA0) and eta_for(10.0) * 10.0 == pytest.approx(ETA0)


def test_fig1_theory_error_reaches_the_convergence_check():
    """The Monte Carlo solution carries its standard error (Solution.info) and the convergence
    check reads one for every Fig. 1 observable, so theory noise widens the residual bounds."""
    from theory import Problem, solve
    from theory.data import gaussian_data
    from validate.checks.common import theory_stderr
    from validate.metrics import observable
    from validate.paper.sizes import CPU

    assert (CPU.f1_samples, CPU.f1_response_samples) >= (4000, 64)  # the solver's defaults
    x, y, _, _ = gaussian_data(4, 6, 0, seed=1)
    pr = Problem(x, y, depth=2, activation="tanh", gamma0=1.0, eta=0.1, steps=3)
    sol = solve(pr, samples=256, response_samples=4)
    for name, layer in (("loss", None), ("ntk", None), ("phi", 0), ("g", 1)):
        ref = observable(sol, name, pr, layer)
        se = theory_stderr(sol, name, layer, ref)
        assert se is not None and se.shape == ref.shape and float(se.norm()) > 0, name
