"""Checks that a report reads well, shared by the report and paper tests.

- :func:`reason_disagreements`: verdict rows whose reason text does not show the row's estimate
  (to its printed precision and with its sign).
- :func:`captured_figures`: a context manager that keeps every figure the report pipeline saves
  open, so :func:`figure_problems` can inspect it (overlapping tick labels, legends over data or
  titles, heatmaps without axis labels or colour bar).
"""

from __future__ import annotations

import contextlib
import math
import re

import numpy as np
import pandas as pd

from validate.report import style

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _matches(token: str, value: float) -> bool:
    """Whether ``token`` is ``value`` printed with the token's own precision."""
    try:
        t = float(token)
    except ValueError:
        return False
    mant, _, exp = token.lower().partition("e")
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    ulp = 10.0 ** (int(exp or 0) - decimals)
    if "." not in mant and t != 0:  # "%g" may drop trailing zeros of an integer mantissa
        ulp = max(ulp, 10.0 ** (math.floor(math.log10(abs(t))) - 2))
    return abs(t - value) <= 0.5 * ulp * (1 + 1e-9) + 1e-12 * abs(value)


def reason_disagreements(verdicts: pd.DataFrame) -> list[tuple]:
    """(check, statistic, estimate, reason) of every row with a finite estimate whose reason
    contains no number equal to the estimate (sign included)."""
    bad = []
    for r in verdicts.itertuples(index=False):
        est = r.estimate
        if est is None or not np.isfinite(est):
            continue
        tokens = NUMBER.findall(str(r.reason).replace("−", "-"))
        if not any(_matches(t, float(est)) for t in tokens):
            bad.append((r.check, r.statistic, est, r.reason))
    return bad


@contextlib.contextmanager
def captured_figures(monkeypatch):
    """Within the block, figures saved by ``validate.report.style.save`` stay open; yields the
    list they are appended to (closed on exit)."""
    kept = []
    close = style.plt.close
    monkeypatch.setattr(style.plt, "close", lambda fig=None: kept.append(fig))
    try:
        yield kept
    finally:
        monkeypatch.setattr(style.plt, "close", close)
        for fig in kept:
            close(fig)


def figure_problems(fig) -> list[str]:
    """What is unreadable in ``fig``: overlapping tick labels, legends over data or the title,
    heatmaps without axis labels or colour bar."""
    problems = [f"overlapping {name} tick labels in {ax.get_title()!r}" for ax, name in style.overlapping_ticks(fig)]
    problems += [f"legend over data: {[t.get_text() for t in lg.get_texts()][:3]}" for lg in style.legends_inside(fig)]
    images = [im for ax in fig.axes for im in ax.get_images()]
    bars = [im.colorbar for im in images if im.colorbar is not None and im.colorbar.ax.get_ylabel()]
    for im in images:
        ax = im.axes
        if not (ax.get_xlabel() and ax.get_ylabel()):
            problems.append(f"heatmap {ax.get_title()!r} without axis labels")
        scale = (im.get_cmap().name, im.norm.vmin, im.norm.vmax)
        if not any((b.mappable.get_cmap().name, b.mappable.norm.vmin, b.mappable.norm.vmax) == scale for b in bars):
            problems.append(f"heatmap {ax.get_title()!r} without a labelled colour bar of its scale")
    return problems
