"""The coordinate-check figure of a width study (``validate.width_study``), drawn from its tables.

A check is a width study when its verdict table has ``width_exponent`` rows. Its tables hold
everything the figure shows: the ``curves`` rows (source ``network``) are the seed mean
(``value``) and its standard error (``stderr``) of each statistic per width and step
(``time``), with ``observable`` ``statistic[module]``, or ``loss`` / ``output`` for the whole
network; the verdict rows say which (module, statistic) pairs fail; the ``measurements`` rows
(each seed's final value, or the step it diverged at) give the number of seeds.

The figure: one row of panels per statistic (the deciding statistics first), one column per
chosen step. In each panel every recorded module is a line of its seed mean against width on
log-log axes, with a band of ``mean * exp(+-z se / mean)`` (z = 2): the interval of
``log(mean)`` that the width exponent's confidence interval is built from. A flat line is
width-independent (exponent 0). Modules with a failing gating row are drawn thick and marked
"FAIL" in their row's legend, which sits outside the panels on the right.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter, NullLocator

from ..frame import Verdict, overall
from ..stats import Z_DEFAULT
from .style import figure, suptitle, width_axis

#: The verdict statistic that marks a width study's check.
WIDTH_EXPONENT = "width_exponent"
#: Panel rows, in this order within the deciding statistics and then within the others.
STATISTIC_ORDER = ("loss", "delta_rms", "rms", "output")
#: Legend label of the network-level statistics (``loss``, ``output``).
NETWORK = "network"


def width_study_checks(verdicts: pd.DataFrame) -> list[str]:
    """The checks of ``verdicts`` that are width studies (they have ``width_exponent`` rows)."""
    return list(dict.fromkeys(verdicts.loc[verdicts["statistic"] == WIDTH_EXPONENT, "check"].astype(str)))


def split_observable(observable: str) -> tuple[str, str]:
    """``statistic[module]`` -> (statistic, module); ``loss`` / ``output`` -> (them, :data:`NETWORK`)."""
    stat, _, module = str(observable).partition("[")
    return (stat, module[:-1]) if module.endswith("]") else (stat, NETWORK)


def coordinate_summary(curves: pd.DataFrame, check: str) -> pd.DataFrame:
    """The width study's seed means: ``width, module, statistic, step, mean, stderr`` rows (in
    the curves table's order) of ``check``."""
    c = curves[(curves["check"] == check) & (curves["source"] == "network")]
    stat, module = zip(*map(split_observable, c["observable"])) if len(c) else ((), ())
    return pd.DataFrame({"width": c["width"].to_numpy(), "module": list(module), "statistic": list(stat),
                         "step": c["time"].to_numpy(), "mean": c["value"].to_numpy(),
                         "stderr": c["stderr"].to_numpy()})


def failing_pairs(verdicts: pd.DataFrame) -> set[tuple[str, str]]:
    """(module, statistic) of every failing gating row."""
    bad = verdicts[verdicts["gating"] & (verdicts["verdict"] == Verdict.FAIL.value)]
    return {split_observable(o)[::-1] for o in bad["observable"]}


def default_steps(steps: int, count: int = 4) -> list[int]:
    """Up to ``count`` steps spread over 1..steps (the first update and the last step included)."""
    return sorted({int(round(s)) for s in np.linspace(1, steps, min(count, steps))}) if steps >= 1 else [0]


def ordered_statistics(present, deciding) -> list[str]:
    """The deciding statistics first, then the other recorded ones (each in :data:`STATISTIC_ORDER`)."""
    present, deciding = set(present), set(deciding)
    order = [s for s in STATISTIC_ORDER if s in deciding] + [s for s in STATISTIC_ORDER if s not in deciding]
    return [s for s in order if s in present]


def _log_ticks(ax, count: int = 4) -> None:
    """``count`` labelled ticks spread geometrically over the y range (as few digits as tell them apart)."""
    lo, hi = ax.get_ylim()
    if not (lo > 0 and hi > lo):
        return
    raw = np.geomspace(lo, hi, count + 2)[1:-1]
    digits = next((d for d in range(2, 6) if len({f"{t:.{d}g}" for t in raw}) == count), 6)
    ax.yaxis.set_major_locator(FixedLocator(sorted({float(f"{t:.{digits}g}") for t in raw})))
    ax.yaxis.set_major_formatter(FormatStrFormatter(f"%.{digits}g"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _panel(ax, rows: pd.DataFrame, stat: str, failing: set, colour: dict) -> None:
    """The lines and seed bands of every module of one (statistic, step)."""
    for m, sub in rows.groupby("module", sort=False):
        sub = sub.sort_values("width")
        w, mean, se = (sub[c].to_numpy(dtype=float) for c in ("width", "mean", "stderr"))
        ok = mean > 0  # a log axis: exactly 0 (delta_rms at step 0) has no point
        if not ok.any():
            continue
        bad = (m, stat) in failing
        ax.plot(w[ok], mean[ok], "o-", ms=3, lw=2.4 if bad else 1.1, color=colour[m],
                label=m + ("  FAIL" if bad else ""))
        half = Z_DEFAULT * np.nan_to_num(se[ok] / mean[ok], nan=0.0, posinf=0.0)
        ax.fill_between(w[ok], mean[ok] * np.exp(-half), mean[ok] * np.exp(half), color=colour[m], alpha=0.18, lw=0)
    ax.set_yscale("log")
    _log_ticks(ax)
    ax.grid(True, which="major", alpha=0.3)


def draw_coordinate_check(summary: pd.DataFrame, failing: set[tuple[str, str]], *, title: str,
                          statistics: list[str], steps: list[int]):
    """The figure (module docstring). summary: :func:`coordinate_summary` rows; failing:
    (module, statistic) pairs with a failing gating row. Returns the (unsaved) figure."""
    modules = list(dict.fromkeys(summary["module"]))
    cmap = plt.get_cmap("tab10" if len(modules) <= 10 else "tab20")
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(modules)}
    ncols, nrows = len(steps), len(statistics)
    fig, axes = figure(nrows, ncols, size=((2.7 * ncols + 2.6) / ncols, 2.3 + 0.6 / nrows), sharex=True)
    for i, stat in enumerate(statistics):
        rows = summary[summary["statistic"] == stat]
        for j, step in enumerate(steps):
            ax = axes[i, j]
            _panel(ax, rows[rows["step"] == step], stat, failing, colour)
            width_axis(ax, summary["width"], label="width N" if i == nrows - 1 else "")
            if i == 0:
                ax.set_title(f"step {step}")
            if j == 0:
                ax.set_ylabel(stat)
        handles, labels = axes[i, -1].get_legend_handles_labels()
        if handles:
            axes[i, -1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.03, 1.0), frameon=False,
                               borderaxespad=0.0, ncol=-(-len(labels) // 12))
    suptitle(fig, title)
    return fig


def coordinate_figure(tables: dict[str, pd.DataFrame], check: str, *, steps: list[int] | None = None,
                      statistics: list[str] | None = None):
    """The coordinate-check figure of the width study ``check`` from a run's ``tables``.

    steps: the columns (default :func:`default_steps` of the last recorded step); statistics:
    the rows (default every recorded one, the deciding ones first). Returns the unsaved figure.
    """
    v = tables["verdicts"]
    if check not in width_study_checks(v):
        raise ValueError(f"check: {check!r} is not a width study (no {WIDTH_EXPONENT} verdict rows); "
                         f"width studies in these tables: {width_study_checks(v)}")
    v = v[v["check"] == check]
    summary = coordinate_summary(tables["curves"], check)
    recorded = sorted(set(summary["statistic"]))
    if statistics is None:
        deciding = {split_observable(o)[0] for o in v.loc[v["gating"], "observable"]}
        statistics = ordered_statistics(recorded, deciding)
    bad = [s for s in statistics if s not in recorded]
    if bad or not statistics:
        raise ValueError(f"statistics: {bad or 'none'} not recorded; valid values are {recorded}")
    last = int(summary["step"].max())
    steps = default_steps(last) if steps is None else [int(s) for s in steps]
    if not steps or not all(0 <= s <= last for s in steps):
        raise ValueError(f"steps: must be steps in 0..{last}, got {steps}")
    m = tables["measurements"]
    seeds = m.loc[m["check"] == check, "seed"].nunique()
    title = (f"{check}: {seeds} seeds per width, bands: mean x exp(±{Z_DEFAULT:g} se/mean); "
             f"verdict {overall(v).value.upper()}")
    return draw_coordinate_check(summary, failing_pairs(v), title=title, statistics=statistics, steps=steps)
