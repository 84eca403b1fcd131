"""The coordinate-check figure of a width study: each statistic against width, per module.

One row of panels per statistic, one column per chosen step. In each panel every recorded module
is a line of its seed mean against width on log-log axes, with a band of ``mean * exp(+-2 se /
mean)``: the z = 2 interval of ``log(mean)`` that the width exponent's confidence interval is
built from. A flat line is width-independent (exponent 0). Modules with a failing gating row are
drawn thick and marked "FAIL" in the legend, which sits outside the panels on the right.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter, NullLocator  # noqa: E402
import pandas as pd  # noqa: E402

from ..stats import Z_DEFAULT  # noqa: E402
from .config import NETWORK, STATISTICS  # noqa: E402


def default_steps(steps: int, count: int = 4) -> list[int]:
    """Up to ``count`` steps spread over 1..steps (the first update and the last step included)."""
    return sorted({int(round(s)) for s in np.linspace(1, steps, min(count, steps))})


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


def coordinate_check(summary: pd.DataFrame, failing: set[tuple[str, str]], *, title: str,
                     statistics: list[str], steps: list[int]):
    """The figure (module docstring). summary: width, module, statistic, step, mean, stderr rows;
    failing: (module, statistic) pairs with a failing gating row."""
    modules = list(dict.fromkeys(summary["module"]))
    colours = plt.get_cmap("tab10" if len(modules) <= 10 else "tab20")
    colour = {m: colours(i % colours.N) for i, m in enumerate(modules)}
    fig, axes = plt.subplots(len(statistics), len(steps), squeeze=False, sharex=True,
                             figsize=(2.7 * len(steps) + 2.6, 2.3 * len(statistics) + 0.6))
    for i, stat in enumerate(statistics):
        rows = summary[summary["statistic"] == stat]
        for j, step in enumerate(steps):
            ax = axes[i, j]
            at = rows[rows["step"] == step]
            for m, sub in at.groupby("module", sort=False):
                sub = sub.sort_values("width")
                w, mean, se = sub["width"].to_numpy(), sub["mean"].to_numpy(), sub["stderr"].to_numpy()
                ok = mean > 0
                if not ok.any():
                    continue
                bad = (m, stat) in failing
                label = ("network" if m == NETWORK else m) + ("  FAIL" if bad else "")
                ax.plot(w[ok], mean[ok], "o-", ms=3, lw=2.4 if bad else 1.1, color=colour[m], label=label)
                half = Z_DEFAULT * np.nan_to_num(se[ok] / mean[ok], nan=0.0, posinf=0.0)
                ax.fill_between(w[ok], mean[ok] * np.exp(-half), mean[ok] * np.exp(half), color=colour[m],
                                alpha=0.18, lw=0)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            widths = sorted(summary["width"].unique())
            ax.xaxis.set_major_locator(FixedLocator(widths))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
            ax.xaxis.set_minor_locator(NullLocator())
            _log_ticks(ax)
            ax.grid(True, which="major", alpha=0.3)
            if i == 0:
                ax.set_title(f"step {step}", fontsize=9)
            if j == 0:
                ax.set_ylabel(stat, fontsize=9)
            if i == len(statistics) - 1:
                ax.set_xlabel("width N", fontsize=9)
            ax.tick_params(labelsize=7)
        handles, labels = axes[i, -1].get_legend_handles_labels()
        if handles:
            axes[i, -1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.03, 1.0), fontsize=7,
                               frameon=False, borderaxespad=0.0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def ordered_statistics(present, observables) -> list[str]:
    """The deciding statistics first (in ``observables`` order), then the other recorded ones."""
    rest = [s for s in ("delta_rms", "rms", "output", "loss") if s not in observables]
    return [s for s in [*observables, *rest] if s in set(present) and s in STATISTICS]
