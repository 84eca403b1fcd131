"""The coordinate check of a width study is a figure of the report pipeline (validate.report).

It is drawn from the run folder's tables alone: ``study.report`` lists and links it under its
check, ``validate.report.render`` (``dmft report``) redraws it byte for byte after the figures
are deleted, and ``study.plot`` draws the same PNG from the same tables. It passes the report's
readability checks; failing modules are marked. The verdict table shows each row's step.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from torch import nn

from report_checks import captured_figures, figure_problems
from validate import width_study
from validate.frame import CheckResult, frame, verdict_row
from validate.report import coordinate_figure, read_tables, render, write_report

D = 4
X = torch.randn(12, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
Y = torch.tanh(X[:, 0] - X[:, 1])


class Grows(nn.Module):
    """``x W^T N^0.5 / sqrt(D)``, W (N, D) ~ N(0, 1): output rms ~ N^0.5 (width exponent 1/2)."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, D, dtype=torch.float64))
        self.c = width**0.5 / math.sqrt(D)

    def forward(self, x):
        return (x @ self.weight.T) * self.c


class Net(nn.Module):
    """``grows`` (rms ~ N^0.5), then a tanh layer ``flat`` whose rms is O(1), mean-field readout."""

    def __init__(self, width: int):
        super().__init__()
        self.grows = Grows(width)
        self.flat = nn.Tanh()
        self.out = nn.Linear(width, 1, dtype=torch.float64)

    def forward(self, x):
        return self.out(self.flat(self.grows(x) / self.grows.weight.shape[0] ** 0.5))


def sgd(model, width):
    return torch.optim.SGD(model.parameters(), lr=0.05)


@pytest.fixture(scope="module")
def failing():
    """``grows`` fails its rms exponent (1/2 against the expected 0), ``flat`` does not."""
    return width_study(Net, widths=(16, 64, 256), data=(X, Y), optimizer=sgd, steps=3, seeds=4,
                       observables=("rms",), modules=["grows", "flat"], name="growing")


@pytest.fixture(scope="module")
def folder(failing, tmp_path_factory):
    return failing.report(tmp_path_factory.mktemp("runs"), name="run")


FIGURE = "coordinate_check_growing.png"


def test_the_study_fails_on_the_module_that_grows(failing):
    assert failing.failing_modules() == ["grows"]  # the reference: the exponent 1/2 built into Grows


def test_report_lists_and_links_the_coordinate_check(folder):
    meta = json.loads((folder / "summary.json").read_text())
    assert FIGURE in meta["figures"] and FIGURE in meta["figures_by_check"]["growing"]
    assert (folder / "figures" / FIGURE).stat().st_size > 1000
    assert f"](figures/{FIGURE})" in (folder / "summary.md").read_text()
    assert f'src="figures/{FIGURE}"' in (folder / "index.html").read_text()
    assert not list(folder.glob("*.png"))  # nothing beside the folder's own layout


def test_render_redraws_it_from_the_tables_alone(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / "figures")
    for f in ("summary.md", "index.html", "summary.json"):
        (copy / f).unlink()
    render(copy)
    assert (copy / "figures" / FIGURE).read_bytes() == (folder / "figures" / FIGURE).read_bytes()
    meta = json.loads((copy / "summary.json").read_text())
    assert FIGURE in meta["figures_by_check"]["growing"]
    assert f"](figures/{FIGURE})" in (copy / "summary.md").read_text()


def test_plot_draws_the_reports_figure(failing, folder, tmp_path):
    """One implementation: study.plot() saves the same PNG as the report folder's."""
    failing.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes() == (folder / "figures" / FIGURE).read_bytes()


def test_figure_is_readable_and_marks_the_failing_module(failing, tmp_path, monkeypatch):
    with captured_figures(monkeypatch) as figs:
        write_report(failing.check_result(), tmp_path, "run")
        fig = figs[0]  # coordinate_check comes first among a check's figures
        assert fig.axes[0].get_title() == "step 1"
        assert not figure_problems(fig)
    row = lambda ax: ax.get_subplotspec().rowspan.start  # noqa: E731
    first_of_row = {ax.get_ylabel(): ax for ax in fig.axes if ax.get_ylabel()}
    stat = {row(ax): s for s, ax in first_of_row.items()}
    legends = {stat[row(ax)]: [t.get_text() for t in ax.get_legend().get_texts()]
               for ax in fig.axes if ax.get_legend() is not None}
    assert list(first_of_row)[0] == "rms"  # the deciding statistic comes first
    assert set(legends) == set(first_of_row)  # one legend per row
    assert "grows  FAIL" in legends["rms"] and "flat" in legends["rms"]
    assert not any("FAIL" in label for row, labels in legends.items() if row != "rms" for label in labels)
    widths = {ln.get_label(): ln.get_linewidth() for ln in first_of_row["rms"].get_lines()}
    assert widths["grows  FAIL"] > widths["flat"]


def test_verdict_table_shows_the_step(folder):
    lines = (folder / "summary.md").read_text().splitlines()
    header = next(l for l in lines if l.startswith("| check"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert "time" in cols
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines if l.startswith("| growing")]
    steps = {r[cols.index("time")] for r in rows if r[cols.index("observable")] == "rms[grows]"}
    assert steps == {"0", "1", "2", "3"}
    v = read_tables(folder)["verdicts"]
    assert len(rows) == len(v)


def test_time_column_is_left_out_when_no_row_has_one(tmp_path):
    row = verdict_row(check="c", observable="loss", statistic="s", estimate=0.0, stderr=0.01, tolerance=0.1,
                      verdict="pass", reason="0 within 0.1")
    run = write_report(CheckResult(verdicts=frame("verdicts", [row])), tmp_path, "plain")
    header = next(l for l in (run / "summary.md").read_text().splitlines() if l.startswith("| check"))
    assert "| time |" not in header and "| depth |" in header


def test_bad_figure_arguments_name_the_argument(failing):
    tables = failing.check_result().tables()
    with pytest.raises(ValueError, match="^check: 'other'"):
        coordinate_figure(tables, "other")
    with pytest.raises(ValueError, match=r"^steps: must be steps in 0\.\.3"):
        coordinate_figure(tables, "growing", steps=[9])
    with pytest.raises(ValueError, match="^statistics"):
        failing.plot(statistics=["grad"])
