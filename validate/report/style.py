"""Matplotlib helpers shared by every report figure (run report and paper report).

The rules they enforce: legends sit outside the axes (they never cover data); width axes are
logarithmic with a tick at each width, labelled as plain integers; heatmaps have axis labels and a
labelled colour bar; tick labels that would overlap are thinned before saving (:func:`declutter`);
figures are saved with a tight bounding box so outside legends are kept.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

DPI = 100
FONT = 8
plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT + 1, "legend.fontsize": FONT - 1,
                     "figure.titlesize": FONT + 2})


def file_key(*parts) -> str:
    """A file-name-safe key from ``parts`` (None and NaN left out)."""
    s = "_".join(str(p) for p in parts if p is not None and not (isinstance(p, float) and np.isnan(p)))
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in s)


def figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (4.2, 3.0), **kw):
    """``plt.subplots`` with constrained layout (room for outside legends, colour bars, titles);
    ``size`` is per panel. Returns (fig, axes) with axes a 2-D array."""
    return plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
                        layout="constrained", **kw)


def panels(n: int, ncols: int | None = None, size: tuple[float, float] = (3.4, 2.7), **kw):
    """A figure with ``n`` panels on a near-square grid of at most 3 columns; returns (fig, axes).

    Grid cells left over are switched off; :func:`legend_outside` puts a figure legend there.
    """
    ncols = ncols or min(3, int(np.ceil(np.sqrt(n))))
    ncols = max(1, min(ncols, n))
    if n == 1:
        size = (size[0] * 1.35, size[1] * 1.2)
    fig, axes = figure(-(-n // ncols), ncols, size, **kw)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_axis_off()
    return fig, flat[:n]


def _spare(fig):
    return [ax for ax in fig.axes if not ax.axison and not ax.has_data()]


def legend_outside(target, handles=None, labels=None, *, ncol: int = 1):
    """Put one legend for ``target`` (a Figure, or an Axes) outside every plotting area.

    It goes into a switched-off grid cell when the figure has one (see :func:`panels`), else to
    the right of the figure. Handles default to the labelled artists of all axes (deduplicated by
    label). Returns the legend, or None when there is nothing to show.
    """
    fig = target if isinstance(target, matplotlib.figure.Figure) else target.figure
    if handles is None:
        axes = fig.axes if target is fig else [target]
        seen = {}
        for ax in axes:
            for h, l in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(l, h)
        labels, handles = list(seen), list(seen.values())
    if not handles:
        return None
    spare = _spare(fig)
    if spare:
        return spare[0].legend(handles, labels, loc="upper left", ncol=ncol, frameon=False)
    if fig.get_figwidth() < 6:  # a narrow figure: below, in columns, keeps the plot its width
        return fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 2), frameon=False)
    return fig.legend(handles, labels, loc="outside right center", ncol=ncol, frameon=False)


def suptitle(fig, text: str):
    """The figure title, wrapped to the figure's width."""
    chars = max(30, int(fig.get_figwidth() * 72 / (0.55 * (FONT + 2))))
    return fig.suptitle(textwrap.fill(text, chars))


def width_axis(ax, widths, label: str = "width N") -> None:
    """Logarithmic x axis with a tick at each width (plain integers, no minor ticks)."""
    ws = sorted({int(w) for w in widths if np.isfinite(w) and w > 0})
    ax.set_xscale("log")
    if ws:
        ax.xaxis.set_major_locator(FixedLocator(ws))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ws, [str(w) for w in ws])
        lo, hi = ws[0], ws[-1]
        pad = (hi / lo) ** 0.06 if hi > lo else 1.3
        ax.set_xlim(lo / pad, hi * pad)
    ax.set_xlabel(label)


def heatmap(ax, mat, *, vmax: float | None = None, cmap: str = "RdBu_r", title: str = "",
            label: str | None = "value", xlabel: str = "point j", ylabel: str = "point i"):
    """Draw ``mat`` (n, m) on ``ax`` with axis labels, integer ticks and a colour bar labelled
    ``label`` (``label=None``: no colour bar here; the caller adds one shared with other axes).

    Colours are symmetric about 0 (``vmax`` defaults to the largest magnitude). Returns the image.
    """
    mat = np.asarray(mat, dtype=float)
    if vmax is None:
        finite = np.abs(mat[np.isfinite(mat)])
        vmax = float(finite.max()) if finite.size else 1.0
    vmax = vmax or 1.0
    im = ax.imshow(mat, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    n, m = mat.shape
    step = max(1, int(np.ceil(max(n, m) / 6)))
    ax.set_xticks(range(0, m, step))
    ax.set_yticks(range(0, n, step))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    finite = mat[np.isfinite(mat)]
    if finite.size and np.ptp(finite) <= 1e-9 * max(float(np.abs(finite).max()), 1e-300):
        ax.text(0.5, 0.5, f"constant {float(finite.mean()):.4g}", transform=ax.transAxes, ha="center",
                va="center", fontsize=FONT + 1, bbox=dict(facecolor="white", alpha=0.85, lw=0))
    if label is not None:
        ax.figure.colorbar(im, ax=ax).set_label(label)
    return im


def _labels(axis) -> list:
    fig = axis.axes.figure
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for tick in axis.get_major_ticks():
        lab = tick.label1
        if not (tick.get_visible() and lab.get_visible() and lab.get_text()):
            continue
        if not lo - 1e-9 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi - lo):
            continue
        out.append(lab.get_window_extent(fig.canvas.get_renderer()))
    return out


def _crowded(a, b, pad: float) -> bool:
    """Whether two label boxes overlap or come closer than ``pad`` pixels."""
    return a.x0 - pad < b.x1 and b.x0 - pad < a.x1 and a.y0 - pad < b.y1 and b.y0 - pad < a.y1


def overlapping_ticks(fig, pad: float = 3.0, draw: bool = True) -> list[tuple]:
    """``(axes, "x" or "y")`` for every axis of ``fig`` whose visible tick labels overlap or come
    within ``pad`` pixels of each other. ``draw=False``: the figure was just drawn as it is."""
    if draw:
        fig.draw_without_rendering()
    bad = []
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            boxes = _labels(axis)
            if any(_crowded(a, b, pad) for i, a in enumerate(boxes) for b in boxes[i + 1:]):
                bad.append((ax, name))
    return bad


def legends_inside(fig) -> list:
    """The legends of ``fig`` that overlap a plotting area (other than a switched-off grid cell)
    or the figure's title."""
    fig.draw_without_rendering()
    r = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    spare = _spare(fig)
    areas = [ax.get_window_extent(r) for ax in fig.axes if ax not in spare]
    title = getattr(fig, "_suptitle", None)
    if title is not None and title.get_text():
        areas.append(title.get_window_extent(r))
    return [lg for lg in legends if any(lg.get_window_extent(r).overlaps(a) for a in areas)]


def declutter(fig, drawn: bool = False) -> None:
    """Thin the ticks of every axis whose labels crowd each other (keep every 2nd tick, counted
    from the last, and repeat while they still crowd). ``drawn``: the figure was just drawn."""
    for i in range(4):
        bad = overlapping_ticks(fig, draw=not (i == 0 and drawn))
        if not bad:
            return
        for ax, name in bad:
            axis = ax.xaxis if name == "x" else ax.yaxis
            locs = list(axis.get_majorticklocs())
            texts = [t.get_text() for t in axis.get_majorticklabels()]
            keep = [j for j in range(len(locs)) if (len(locs) - 1 - j) % 2 == 0]  # the last tick stays
            locs, texts = [locs[j] for j in keep], [texts[j] for j in keep]
            if name == "x":
                ax.set_xticks(locs, texts)
            else:
                ax.set_yticks(locs, texts)
            axis.set_minor_locator(NullLocator())


def save(fig, out: Path, name: str) -> str:
    """Declutter, save ``out/name`` at :data:`DPI`, close; returns ``name``.

    Constrained layout keeps outside legends, colour bars and titles within the figure. It runs
    once, then the positions are frozen: each later draw (measuring ticks, saving) would
    otherwise repeat it, and it is most of the cost of a many-panel figure.
    """
    fig.draw_without_rendering()
    if fig.get_layout_engine() is not None:
        fig.set_layout_engine("none")
    declutter(fig, drawn=True)
    fig.savefig(Path(out) / name, dpi=DPI)
    plt.close(fig)
    return name
