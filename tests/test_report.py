"""Report folders: contents, re-rendering from the tables, atomic writes, permissions, no silent
replace, stale temporary folders, every figure drawn and readable, reasons that show the estimate."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from report_checks import captured_figures, figure_problems, reason_disagreements
from validate import report
from validate.checks import Breakdown, Convergence, WidthIndependence
from validate.frame import CheckResult
from validate.report import draw_all, read_tables, render, style, write_report
from validate.report import folders
from validate.sources import Context
from validate.spec import ProblemSpec
from validate.stats import decide
from validate_fakes import fake_solver, fake_trainer  # noqa: F401

REAL_DOCUMENT = report.run.report_document
SPEC = ProblemSpec(n_train=5, n_test=2, input_dim=8, depth=2, gamma0=0.5, steps=8)


@pytest.fixture(scope="module")
def result():
    ctx = Context(trainer=fake_trainer(), solver=fake_solver, progress=False)
    return CheckResult.concat([
        Convergence(name="conv", problem=SPEC, widths=(32, 64, 128), seeds=8,
                    observables=("loss", "test_loss", "ntk", "phi:0")).run(ctx),
        Breakdown(name="brk", problem=SPEC, gamma0s=(0.5, 1.5), observables=("ntk",)).run(ctx),
        Breakdown(name="brk-nets", problem=SPEC, gamma0s=(0.5, 1.5), observables=("loss",), against="networks",
                  widths=(32, 128), seeds=8, schemes=("dmft", "ntk")).run(ctx),
        WidthIndependence(name="wid", problem=SPEC, widths=(32, 128), seeds=8, observables=("loss",)).run(ctx),
    ])


@pytest.fixture(scope="module")
def drawn(result, tmp_path_factory):
    """One report folder with its real figures, and the readability problems of each figure
    (drawing is the slow part: done once). Returns (run folder, {file: problems})."""
    meta = {"suite": "unit", "seed": 0, "environment": report.environment()}
    with pytest.MonkeyPatch.context() as mp, captured_figures(mp) as figs:
        run = write_report(result, tmp_path_factory.mktemp("written"), "r1", meta)
        names = json.loads((run / "summary.json").read_text())["figures"]
        assert len(figs) == len(names) > 0
        problems = {n: figure_problems(f) for n, f in zip(names, figs)}
    return run, problems


@pytest.fixture
def written(drawn):
    return drawn[0]


@pytest.fixture
def stub_figures(monkeypatch):
    """For the tests of folder mechanics: one tiny PNG instead of the real figures."""
    def draw(tables, out, kinds=None):
        out.mkdir(parents=True, exist_ok=True)
        (out / "stub.png").write_bytes(b"png")
        return [report.Plot("conv", "stub.png", "stub")]

    monkeypatch.setattr(report.run, "draw_all", draw)


def test_write_report_contents(written, result):
    run = written
    for name in ("verdicts", "measurements", "curves", "kernels"):
        assert (run / "tables" / f"{name}.csv").stat().st_size > 0
        assert (run / "tables" / f"{name}.parquet").stat().st_size > 0
    md = (run / "summary.md").read_text()
    first_table_line = next(i for i, l in enumerate(md.splitlines()) if l.startswith("| check"))
    assert "Overall verdict" in md and first_table_line < 5  # the verdict table comes first
    assert "<img" in (run / "index.html").read_text()
    figs = sorted(p.name for p in (run / "figures").iterdir())
    for kind in ("curve_", "error_", "kernel_", "breakdown_", "width_"):
        assert any(f.startswith(kind) for f in figs), kind
    meta = json.loads((run / "summary.json").read_text())
    assert meta["overall"] == result.verdict.value and meta["environment"]["torch"]
    assert "git_revision" in meta["environment"]
    assert sorted(meta["figures"]) == figs  # every PNG is listed, none is missing
    back = read_tables(run)["verdicts"]
    pd.testing.assert_frame_equal(back.reset_index(drop=True), result.verdicts.reset_index(drop=True),
                                  check_dtype=False)


def test_every_check_gets_its_figures_listed(written, result):
    """No figure is dropped: every check with plottable data has figures, and the report lists
    every check with its figures (the old cap of 12 per kind left some out silently)."""
    run = written
    meta = json.loads((run / "summary.json").read_text())
    by_check = meta["figures_by_check"]
    assert set(by_check) == set(result.verdicts["check"])
    for check in ("conv", "brk", "brk-nets", "wid"):
        assert by_check[check], check
        for f in by_check[check]:
            assert (run / "figures" / f).exists()
    md = (run / "summary.md").read_text()
    assert all(f"figures/{f}" in md for fs in by_check.values() for f in fs)
    # one error-vs-width figure per (check, gamma0) with per-seed errors, however many there are
    m = result.measurements
    errs = m[(m["statistic"] == "rel_error") & (m["source"] == "network")]
    n_groups = len(errs.groupby(["check", "gamma0"]))
    assert sum(f.startswith("error_") for f in meta["figures"]) == n_groups


def test_many_groups_are_all_drawn(tmp_path, result, monkeypatch):
    """More groups than the old cap of 12: all are drawn (saving stubbed: only the count matters)."""
    monkeypatch.setattr(report.figures, "save", lambda fig, out, name: (style.plt.close(fig), name)[1])
    curves = result.curves
    copies = [curves.assign(check=f"c{i}") for i in range(14)]
    tables = dict(result.tables(), curves=pd.concat(copies, ignore_index=True))
    plots = draw_all(tables, tmp_path, kinds=("curves",))
    assert {p.check for p in plots} == {f"c{i}" for i in range(14)}


def test_figures_are_readable(drawn):
    """Every figure: tick labels do not overlap, legends sit outside the data and the title,
    heatmaps have axis labels and a labelled colour bar."""
    problems = drawn[1]
    assert not {k: v for k, v in problems.items() if v}


def test_crowded_width_ticks_are_thinned(tmp_path, monkeypatch):
    """Many widths on a narrow log axis overlap before ``save`` thins them, not after."""
    widths = [2**k for k in range(1, 14)]
    fig, (ax,) = style.panels(1, size=(2.0, 2.0))
    ax.plot(widths, np.linspace(0, 1, len(widths)))
    style.width_axis(ax, widths)
    assert style.overlapping_ticks(fig)  # the test can fail
    with captured_figures(monkeypatch) as figs:
        style.save(fig, tmp_path, "crowded.png")
        assert not style.overlapping_ticks(figs[0])
        labels = [t.get_text() for t in figs[0].axes[0].get_xticklabels()]
        assert labels[-1] == "8192"  # the widest width keeps its label


def test_render_recreates_from_tables(tmp_path, result, stub_figures):
    run = write_report(result, tmp_path, "r2")
    (run / "summary.md").unlink()
    for f in (run / "figures").iterdir():
        f.unlink()
    (run / "tables" / "verdicts.parquet").unlink()  # CSV alone is enough
    render(run)
    assert (run / "summary.md").exists() and any((run / "figures").iterdir())
    with pytest.raises(FileNotFoundError, match="tables"):
        render(tmp_path / "nothing")


def test_exception_mid_write_leaves_no_half_report(tmp_path, result, stub_figures, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report.run, "report_document", boom)
    with pytest.raises(RuntimeError):
        write_report(result, tmp_path, "r3")
    assert list(tmp_path.iterdir()) == []  # neither the report nor a temporary folder
    monkeypatch.setattr(report.run, "report_document", REAL_DOCUMENT)
    run = write_report(result, tmp_path, "r4")
    before = (run / "summary.md").read_text()
    monkeypatch.setattr(report.run, "report_document", boom)
    with pytest.raises(RuntimeError):
        write_report(result, tmp_path, "r4", overwrite=True)
    assert (run / "summary.md").read_text() == before  # the old report is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r4"]


def test_existing_folder_is_not_replaced_unless_asked(tmp_path, result, stub_figures):
    run = write_report(result, tmp_path, "same", {"suite": "first"})
    with pytest.raises(FileExistsError, match=str(run)):
        write_report(result, tmp_path, "same", {"suite": "second"})
    with pytest.raises(ValueError, match="already exists"):  # also an input error for the CLI (exit 2)
        report.check_target(run)
    assert json.loads((run / "summary.json").read_text())["suite"] == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same"]  # no temporary folder left
    write_report(result, tmp_path, "same", {"suite": "second"}, overwrite=True)
    assert json.loads((run / "summary.json").read_text())["suite"] == "second"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        write_report(result, tmp_path, "file", overwrite=True)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_run_folder_permissions_follow_the_umask(tmp_path, result, stub_figures, mask):
    old = os.umask(mask)
    try:
        run = write_report(result, tmp_path, f"perm{mask:o}")
    finally:
        os.umask(old)
    dirs = [run] + [p for p in run.rglob("*") if p.is_dir()]
    files = [p for p in run.rglob("*") if p.is_file()]
    assert files and len(dirs) >= 3
    for d in dirs:
        assert stat.S_IMODE(d.stat().st_mode) == 0o777 & ~mask, d
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporary_folders_are_removed(tmp_path, result, stub_figures):
    dead = tmp_path / folders.temp_name("old-run", pid=_dead_pid())
    alive = tmp_path / folders.temp_name("busy-run")  # a concurrent writer (this process)
    far_old = tmp_path / folders.temp_name("x", pid=1, host="otherhost")
    far_new = tmp_path / folders.temp_name("y", pid=1, host="otherhost")
    unrelated = tmp_path / ".not-ours"
    for d in (dead, alive, far_old, far_new, unrelated):
        (d / "figures").mkdir(parents=True)
        (d / "figures" / "f.png").write_text("x")
    then = time.time() - 2 * folders.STALE_AFTER_S
    for p in (far_old, far_old / "figures", far_old / "figures" / "f.png"):
        os.utime(p, (then, then))
    write_report(result, tmp_path, "new")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"new", alive.name, far_new.name, unrelated.name}


def test_folder_of_a_killed_run_is_removed_by_the_next(tmp_path, result, stub_figures):
    """SIGKILL skips every cleanup; the next write into the same root removes the leftover."""
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from validate.report import atomic_dir
        def fill(tmp):
            (tmp / "started").write_text("x")
            time.sleep(60)
        atomic_dir(Path({str(tmp_path)!r}) / "killed", fill)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd(),
                            env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        for _ in range(300):
            if list(tmp_path.glob(".killed.tmp-*/started")):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the writer did not start")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(tmp_path.glob(".killed.tmp-*"))
    write_report(result, tmp_path, "next")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next"]


def test_reasons_show_the_estimate_with_its_sign(result):
    """Every verdict row with a finite estimate states that number (sign included) in its reason."""
    assert not reason_disagreements(result.verdicts)


@given(d=st.floats(-0.5, 0.5, allow_nan=False).filter(lambda x: abs(x) > 1e-6),
       se=st.floats(1e-4, 0.2), tol=st.floats(0.01, 0.3))
def test_signed_decide_shows_the_sign_and_decides_on_the_magnitude(d, se, tol):
    v, why = decide(d, se, tol, what="relative difference", signed=True)
    assert why.startswith(f"relative difference {d:.3g} [")
    assert not reason_disagreements(pd.DataFrame([dict(check="x", statistic="s", estimate=d, reason=why)]))
    assert v is decide(abs(d), se, tol)[0]  # the same decision as the test on |d|
