"""Figures of a run report, drawn from the tidy tables alone (so ``dmft report`` can redraw them).

Every figure is drawn; none is left out. Each function takes the tables and an output folder and
returns one :class:`Plot` per PNG it wrote, naming the check it belongs to:

    coordinate_check  per width study (``validate.width_study``): each statistic against width
                  per module and step, seed bands, failing modules marked (report.coordinate)
    curves        per (check, gamma0): time series, theory against each width's ensemble mean
    errors        per (check, gamma0): per-seed relative error against width (log-log), one panel
                  per observable, the fitted rate and the N^-1/2 reference
    kernels       per (check, gamma0): final kernels, theory | widest networks | difference
    breakdown     per check: each approximation's discrepancy over gamma0, against the tolerance
    widths        per width-independence check: final ensemble means against width, at fixed
                  gamma0 (the test) and at fixed gamma (the contrast)
    bands         per fluctuation check and observable: theory +- 2 predicted seed standard
                  deviations at each width against the networks' spread (report.bands)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..stats import Z_DEFAULT
from .bands import band_figures
from .coordinate import coordinate_figure, width_study_checks
from .style import figure, file_key, heatmap, legend_outside, panels, save, suptitle, width_axis


@dataclass(frozen=True)
class Plot:
    """One PNG of a report: the check it shows, its file name (in ``figures/``), a caption."""

    check: str
    file: str
    caption: str


def _label(obs: str, layer) -> str:
    return obs if layer is None or (isinstance(layer, float) and np.isnan(layer)) else f"{obs}[{int(layer)}]"


#: Panel order of observables: outputs first, then kernels from the input layer up.
OBS_ORDER = ("loss", "test_loss", "test_error", "train_loss", "test_mse", "alignment", "alignment_yy",
             "f_train", "f_test", "ntk", "ntk_final", "phi", "phi_final", "g", "g_final")


def _obs_rank(key) -> tuple:
    obs = key[0] if isinstance(key, tuple) else key
    base = str(obs).split(",")[0]
    return (OBS_ORDER.index(base) if base in OBS_ORDER else len(OBS_ORDER), str(obs)) + tuple(
        -1 if pd.isna(k) else k for k in (key[1:] if isinstance(key, tuple) else ()) if not isinstance(k, str))


def _groups(df: pd.DataFrame, cols: list[str]):
    """``df.groupby(cols)`` as a list; groups led by an observable come in :data:`OBS_ORDER`."""
    if not len(df):
        return []
    groups = list(df.groupby(cols, dropna=False, sort=True))
    if cols and cols[0] == "observable":
        groups.sort(key=lambda kv: _obs_rank(kv[0]))
    return groups


#: One colour per scheme in every figure (others get the next free ones).
SCHEME_COLOURS = {"dmft": "C0", "ntk": "C1", "gia": "C2", "perturbative": "C3", "networks": "C4"}


def scheme_colours(schemes) -> dict:
    spare = iter(f"C{i}" for i in range(5, 10))
    return {s: SCHEME_COLOURS.get(s) or next(spare, "grey") for s in schemes}


def _width_colours(widths) -> dict:
    ws = sorted({float(w) for w in widths if np.isfinite(w)})
    cmap = plt.get_cmap("viridis")
    return {w: cmap(0.85 * i / max(len(ws) - 1, 1)) for i, w in enumerate(ws)}


def curves(tables: dict[str, pd.DataFrame], out: Path) -> list[Plot]:
    """Time series (loss, ...): the theory against the ensemble mean (± s.e.) of every width."""
    df = tables["curves"]
    # time series only: the paper's densities (observable h_density_*) keep field values in "time"
    df = df[df["source"].isin(["theory", "network"]) & ~df["observable"].astype(str).str.startswith("h_density")]
    plots = []
    for (check, g0), grp in _groups(df, ["check", "gamma0"]):
        keys = list(_groups(grp, ["observable", "layer"]))
        fig, axes = panels(len(keys))
        colours = _width_colours(grp["width"])
        for ax, ((obs, layer), sub) in zip(axes, keys):
            for w, net in sub[sub["source"] == "network"].groupby("width"):
                ax.errorbar(net["time"], net["value"], yerr=net["stderr"].fillna(0), fmt="o", ms=2.5, lw=0.8,
                            color=colours[float(w)], label=f"networks N = {int(w)}")
            th = sub[sub["source"] == "theory"]
            if len(th):
                ax.plot(th["time"], th["value"], "k-", lw=1.3, label="theory")
            if obs in ("loss", "test_loss") and (sub["value"] > 0).all():
                ax.set_yscale("log")
            ax.set(xlabel="t", ylabel=_label(obs, layer), title=_label(obs, layer))
        at = "" if pd.isna(g0) else f", gamma0 = {g0:g}"  # a width study of your own model has no gamma0
        suptitle(fig, check + at)
        legend_outside(fig)
        name = save(fig, out, f"curve_{file_key(check, g0)}.png")
        theory = "theory (line) and " if (grp["source"] == "theory").any() else ""
        plots.append(Plot(check, name, f"{check}: {theory}the networks' ensemble mean ± s.e. "
                                       f"per width (dots) over training time{at}"))
    return plots


def _error_panel(ax, m: pd.DataFrame, grp: pd.DataFrame, colours: dict) -> list[str]:
    """Per-seed errors, seed means, fits and the N^-1/2 reference of one observable; returns the
    fitted slopes as text."""
    slopes = []
    groups = list(grp.groupby("scheme", dropna=False))
    for i, (scheme, sub) in enumerate(groups):
        col = colours[scheme]
        # several schemes: shift each a little along the (log) width axis so coinciding ones stay visible
        dodge = 1.0 + 0.05 * (i - (len(groups) - 1) / 2) if len(groups) > 1 else 1.0
        ax.plot(sub["width"] * dodge, sub["value"], "o", ms=2.5, alpha=0.35, color=col)
        mean = sub.groupby("width")["value"].mean()
        ax.plot(mean.index * dodge, mean.values, "-", color=col, lw=1.3)
        first = sub.iloc[0]
        fit = m[(m["check"] == first["check"]) & (m["observable"] == first["observable"])
                & (m["source"] == "fit") & (m["scheme"] == scheme) & (m["gamma0"] == first["gamma0"])
                & ((m["layer"] == first["layer"]) | (m["layer"].isna() & pd.isna(first["layer"])))]
        slope = fit.loc[fit["statistic"] == "loglog_slope", "value"]
        icpt = fit.loc[fit["statistic"] == "loglog_intercept", "value"]
        if len(slope) and len(icpt):
            ws = np.geomspace(sub["width"].min(), sub["width"].max(), 20)
            ax.plot(ws, np.exp(icpt.iloc[0]) * ws ** slope.iloc[0], "--", color=col, lw=0.9)
            slopes.append(f"{slope.iloc[0]:.2f}")
    # the N^-1/2 reference starts at the first scheme's seed mean at the smallest width
    first = grp[grp["scheme"] == grp["scheme"].iloc[0]]
    ws = np.geomspace(grp["width"].min(), grp["width"].max(), 20)
    start = first[first["width"] == ws[0]]["value"].mean()
    ax.plot(ws, start * (ws / ws[0]) ** -0.5, "k:", lw=1)
    ax.set_yscale("log")
    width_axis(ax, grp["width"])
    return slopes


def errors(tables: dict[str, pd.DataFrame], out: Path) -> list[Plot]:
    """Per-seed relative error against width on log-log axes, per (check, gamma0)."""
    m = tables["measurements"]
    errs = m[(m["statistic"] == "rel_error") & (m["source"] == "network") & (m["value"] > 0)]
    plots = []
    for (check, g0), grp in _groups(errs, ["check", "gamma0"]):
        keys = list(_groups(grp, ["observable", "layer"]))
        schemes = sorted(grp["scheme"].dropna().unique())
        colours = scheme_colours(schemes)
        fig, axes = panels(len(keys))
        fitted = False
        for ax, ((obs, layer), sub) in zip(axes, keys):
            slopes = _error_panel(ax, m, sub, colours)
            fitted = fitted or bool(slopes)
            fit = f" (fit slope {', '.join(slopes)})" if slopes and len(schemes) == 1 else ""
            ax.set(ylabel="relative error", title=_label(obs, layer) + fit)
        style = [(Line2D([], [], color="k", marker="o", ls="", ms=3, alpha=0.5), "per seed"),
                 (Line2D([], [], color="k"), "mean over seeds"),
                 (Line2D([], [], color="k", ls="--"), "log-log fit"),
                 (Line2D([], [], color="k", ls=":"), "N^-1/2 slope")]
        style = [hl for hl in style if fitted or hl[1] != "log-log fit"]
        handles = [Line2D([], [], color=colours[s], lw=2) for s in schemes] + [h for h, _ in style]
        labels = [f"theory: {s}" for s in schemes] + [l for _, l in style]
        suptitle(fig, f"{check}, gamma0 = {g0:g}: error of width-N networks against the theory")
        legend_outside(fig, handles, labels)
        name = save(fig, out, f"error_{file_key(check, g0)}.png")
        plots.append(Plot(check, name, f"{check}: per-seed relative error of the networks against the theory "
                                       f"by width (log-log), with the fitted rate and the expected N^-1/2 slope"))
    return plots


def _matrix(sub: pd.DataFrame) -> np.ndarray:
    n = int(sub["i"].max()) + 1
    mat = np.full((n, int(sub["j"].max()) + 1), np.nan)
    mat[sub["i"].astype(int), sub["j"].astype(int)] = sub["value"]
    return mat


def kernel_row(axes, theory: np.ndarray, networks: np.ndarray, label: str, who: str = "networks",
               reference: str = "theory") -> None:
    """Three heatmaps on ``axes``: ``theory``, ``networks`` (one colour scale) and their difference
    (its own scale). ``label`` names the kernel, ``who`` the networks (e.g. "N = 512")."""
    vmax = float(np.nanmax(np.abs(np.concatenate([theory.ravel(), networks.ravel()]))))
    heatmap(axes[0], theory, vmax=vmax, title=f"{label}: {reference}", label=None)
    im = heatmap(axes[1], networks, vmax=vmax, title=f"{label}: {who}", label=None)
    axes[1].figure.colorbar(im, ax=[axes[0], axes[1]]).set_label(label)  # one scale for both
    heatmap(axes[2], networks - theory, title=f"{label}: difference", label=f"networks - {reference}",
            cmap="PuOr_r")


def kernels(tables: dict[str, pd.DataFrame], out: Path) -> list[Plot]:
    """Final-time kernels per (check, gamma0): theory | widest networks | networks - theory."""
    df = tables["kernels"]
    plots = []
    for (check, g0), grp in _groups(df, ["check", "gamma0"]):
        keys = list(_groups(grp, ["observable", "layer"]))
        fig, axes = figure(len(keys), 3, size=(3.5, 2.9))
        for row, ((obs, layer), sub) in zip(axes, keys):
            th, net = sub[sub["source"] == "theory"], sub[sub["source"] != "theory"]
            lab = _label(obs.replace("_final", ""), layer)
            if not len(th) or not len(net):
                for ax in row:
                    ax.set_axis_off()
                continue
            kernel_row(row, _matrix(th), _matrix(net), lab, f"networks N = {int(net['width'].iloc[0])}")
        suptitle(fig, f"{check}, gamma0 = {g0:g}: final kernels (points: train, then test)")
        name = save(fig, out, f"kernel_{file_key(check, g0)}.png")
        plots.append(Plot(check, name, f"{check}: final-time kernels of the theory and of the widest networks' "
                                       "ensemble mean, and their difference (own colour scale)"))
    return plots


MARKERS = {"pass": ("o", "full"), "fail": ("X", "full"), "inconclusive": ("o", "none")}


def _breakdown_rows(v: pd.DataFrame) -> pd.DataFrame:
    """Per-gamma0 rows of approximation checks: ``rel_error_vs_*`` (against a theory) or the
    residual rows of a check that also reports ``breakdown_gamma0`` (against the networks)."""
    stat = v["statistic"].astype(str)
    vs_theory = stat.str.startswith("rel_error_vs_")
    brk_checks = set(v.loc[stat == "breakdown_gamma0", "check"])
    vs_nets = (stat == "extrapolated_residual") & v["check"].isin(brk_checks)
    return v[vs_theory | vs_nets]


def _floored(values: pd.Series, tolerance: float) -> tuple[pd.Series, float]:
    """Values for a log axis: those <= 0 (exactly 0, or clipped at 0) go on a floor below every
    positive value and below the tolerance."""
    pos = values[values > 0]
    candidates = [float(pos.min())] if len(pos) else []
    if np.isfinite(tolerance) and tolerance > 0:
        candidates.append(tolerance)
    floor = min(candidates, default=1e-3) / 4
    return values.where(values > 0, floor), floor


def _breakdown_panel(ax, sub: pd.DataFrame, colours: dict) -> None:
    est, floor = _floored(sub["estimate"], float(sub["tolerance"].iloc[0]))
    sub = sub.assign(shown=est)
    for scheme, s in sub.groupby("scheme"):
        s = s.sort_values("gamma0")
        lo = (s["shown"] - Z_DEFAULT * s["stderr"].fillna(0)).clip(lower=floor)
        hi = s["shown"] + Z_DEFAULT * s["stderr"].fillna(0)
        ax.plot(s["gamma0"], s["shown"], "-", color=colours[scheme], lw=1)
        ax.vlines(s["gamma0"], lo, hi, color=colours[scheme], lw=0.8)
        for verdict, (mk, fill) in MARKERS.items():
            p = s[(s["verdict"] == verdict) & (s["estimate"] > 0)]
            ax.plot(p["gamma0"], p["shown"], mk, fillstyle=fill, color=colours[scheme], ms=5)
        z = s[s["estimate"] <= 0]
        ax.plot(z["gamma0"], z["shown"], "v", color=colours[scheme], ms=5)
    ax.axhline(sub["tolerance"].iloc[0], color="k", ls=":", lw=1)
    ax.set_yscale("log")


def breakdown(tables: dict[str, pd.DataFrame], out: Path) -> list[Plot]:
    """Each approximation's discrepancy over gamma0, against the tolerance (per check)."""
    rows = _breakdown_rows(tables["verdicts"])
    rows = rows[np.isfinite(rows["estimate"])]
    plots = []
    for check, grp in _groups(rows, ["check"]):
        check = check[0] if isinstance(check, tuple) else check
        keys = list(_groups(grp, ["observable", "layer", "depth"]))
        schemes = sorted(grp["scheme"].dropna().unique())
        colours = scheme_colours(schemes)
        fig, axes = panels(len(keys))
        for ax, ((obs, layer, depth), sub) in zip(axes, keys):
            _breakdown_panel(ax, sub, colours)
            depth_txt = "" if pd.isna(depth) else f", depth {depth:g}"
            ax.set(xlabel="gamma0", ylabel=str(sub["statistic"].iloc[0]).replace("_", " "),
                   title=_label(obs, layer) + depth_txt)
        handles = [Line2D([], [], color=colours[s], lw=2) for s in schemes] + [
            Line2D([], [], color="k", marker=mk, fillstyle=fill, ls="") for mk, fill in MARKERS.values()] + [
            Line2D([], [], color="k", marker="v", ls=""), Line2D([], [], color="k", ls=":")]
        labels = list(schemes) + [f"verdict {k}" for k in MARKERS] + ["exactly 0 (at the floor)", "tolerance"]
        suptitle(fig, f"{check}: where each approximation departs (bars: ±{Z_DEFAULT:g} s.e.)")
        legend_outside(fig, handles, labels)
        name = save(fig, out, f"breakdown_{file_key(check)}.png")
        plots.append(Plot(check, name, f"{check}: discrepancy of each scheme over gamma0 against the tolerance; "
                                       "crosses are refuted, filled dots agree, open dots undecided, "
                                       "triangles exactly 0"))
    return plots


def widths(tables: dict[str, pd.DataFrame], out: Path) -> list[Plot]:
    """Final ensemble means (± z s.e.) against width at fixed gamma0 and at fixed gamma."""
    m = tables["measurements"]
    m = m[(m["statistic"] == "final_mean") & m["source"].isin(["fixed_gamma0", "fixed_gamma"])]
    plots = []
    for check, grp in _groups(m, ["check"]):
        check = check[0] if isinstance(check, tuple) else check
        keys = list(_groups(grp, ["observable"]))
        fig, axes = panels(len(keys))
        for ax, (obs, sub) in zip(axes, keys):
            obs = obs[0] if isinstance(obs, tuple) else obs
            for i, (src, lab) in enumerate((("fixed_gamma0", "fixed gamma0 (the test)"),
                                            ("fixed_gamma", "fixed gamma (the contrast)"))):
                s = sub[sub["source"] == src].sort_values("width")
                if len(s):
                    ax.errorbar(s["width"], s["value"], yerr=Z_DEFAULT * s["stderr"].fillna(0), fmt="o-" if i == 0
                                else "s--", ms=4, capsize=2, color=f"C{i}", label=lab)
            width_axis(ax, sub["width"])
            ax.set(ylabel=f"final {obs}", title=obs)
        g0 = grp["gamma0"].iloc[0]
        suptitle(fig, f"{check}, gamma0 = {g0:g}: final ensemble means by width (bars: ±{Z_DEFAULT:g} s.e.)")
        legend_outside(fig)
        name = save(fig, out, f"width_{file_key(check)}.png")
        plots.append(Plot(check, name, f"{check}: final ensemble means against width; at fixed gamma0 they should "
                                       "agree, at fixed gamma (the contrast) wider networks are lazier"))
    return plots


def coordinate_check(tables: dict[str, pd.DataFrame], out: Path) -> list[Plot]:
    """The coordinate-check figure of every width study (``validate.report.coordinate``)."""
    plots = []
    for check in width_study_checks(tables["verdicts"]):
        name = save(coordinate_figure(tables, check), out, f"coordinate_check_{file_key(check)}.png")
        plots.append(Plot(check, name, f"{check}: coordinate check, each statistic's seed mean against width "
                                       "(log-log) per module and step, with z = 2 seed bands; a flat line is "
                                       "width-independent, thick lines marked FAIL are the failing modules"))
    return plots


def bands(tables: dict[str, pd.DataFrame], out: Path) -> list[Plot]:
    """Theory ± 2 predicted standard deviations per width (``validate.report.bands``)."""
    return [Plot(*p) for p in band_figures(tables, out)]


ALL = (coordinate_check, curves, errors, kernels, breakdown, widths, bands)
KINDS = tuple(f.__name__ for f in ALL)


def draw_all(tables: dict[str, pd.DataFrame], out: Path, kinds: tuple[str, ...] = KINDS) -> list[Plot]:
    """Every figure of the tables of the given ``kinds`` (default all of :data:`KINDS`) into
    ``out`` (created), in the order of :data:`ALL`."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"kinds: unknown {bad}; valid values are {list(KINDS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [p for draw in ALL if draw.__name__ in kinds for p in draw(tables, out)]
