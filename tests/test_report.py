"""Report folders: contents, re-rendering from the tables, atomic writes."""

import json

import pandas as pd
import pytest

from validate import report
from validate.checks import Breakdown, Convergence
from validate.frame import CheckResult
from validate.report import read_tables, render, write_report
from validate.sources import Context
from validate.spec import ProblemSpec
from validate_fakes import fake_solver, fake_trainer  # noqa: F401

SPEC = ProblemSpec(n_train=5, n_test=2, input_dim=8, depth=2, gamma0=0.5, steps=8)


@pytest.fixture(scope="module")
def result():
    ctx = Context(trainer=fake_trainer(), solver=fake_solver, progress=False)
    return CheckResult.concat([
        Convergence(problem=SPEC, widths=(32, 64, 128), seeds=8, observables=("loss", "ntk", "phi:0")).run(ctx),
        Breakdown(problem=SPEC, gamma0s=(0.5, 1.5), observables=("ntk",)).run(ctx),
    ])


def test_write_report_contents(tmp_path, result):
    run = write_report(result, tmp_path, "r1", {"suite": "unit", "seed": 0, "environment": report.environment()})
    for name in ("verdicts", "measurements", "curves", "kernels"):
        assert (run / "tables" / f"{name}.csv").stat().st_size > 0
        assert (run / "tables" / f"{name}.parquet").stat().st_size > 0
    md = (run / "summary.md").read_text()
    first_table_line = next(i for i, l in enumerate(md.splitlines()) if l.startswith("| check"))
    assert "Overall verdict" in md and first_table_line < 5  # the verdict table comes first
    assert "<img" in (run / "index.html").read_text()
    figs = sorted(p.name for p in (run / "figures").iterdir())
    assert any(f.startswith("curve_") for f in figs) and any(f.startswith("error_") for f in figs)
    assert any(f.startswith("kernel_") for f in figs) and any(f.startswith("breakdown_") for f in figs)
    meta = json.loads((run / "summary.json").read_text())
    assert meta["overall"] == result.verdict.value and meta["environment"]["torch"]
    assert "git_revision" in meta["environment"]
    back = read_tables(run)["verdicts"]
    pd.testing.assert_frame_equal(back.reset_index(drop=True), result.verdicts.reset_index(drop=True),
                                  check_dtype=False)


def test_render_recreates_from_tables(tmp_path, result):
    run = write_report(result, tmp_path, "r2")
    (run / "summary.md").unlink()
    for f in (run / "figures").iterdir():
        f.unlink()
    (run / "tables" / "verdicts.parquet").unlink()  # CSV alone is enough
    render(run)
    assert (run / "summary.md").exists() and any((run / "figures").iterdir())
    with pytest.raises(FileNotFoundError, match="tables"):
        render(tmp_path / "nothing")


def test_exception_mid_write_leaves_no_half_report(tmp_path, result, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "_markdown", boom)
    with pytest.raises(RuntimeError):
        write_report(result, tmp_path, "r3")
    assert list(tmp_path.iterdir()) == []  # neither the report nor a temporary folder
    monkeypatch.undo()
    run = write_report(result, tmp_path, "r4")
    before = (run / "summary.md").read_text()
    monkeypatch.setattr(report, "_markdown", boom)
    with pytest.raises(RuntimeError):
        write_report(result, tmp_path, "r4")
    assert (run / "summary.md").read_text() == before  # the old report is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r4"]
