"""Figures of a report, drawn from the tidy tables alone (so ``dmft report`` can redraw them).

Each function takes the tables and an output folder and returns the PNG file names it wrote.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

MAX_FIGURES = 12  # per kind, to keep reports small


def _key(*parts) -> str:
    s = "_".join(str(p) for p in parts if p is not None and not (isinstance(p, float) and np.isnan(p)))
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in s)


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=80)
    plt.close(fig)
    return name


def curves(tables: dict[str, pd.DataFrame], out: Path) -> list[str]:
    """Time series (loss, ...): the theory against the ensemble mean of every width."""
    df = tables["curves"]
    files = []
    for (check, obs, g0), grp in list(df.groupby(["check", "observable", "gamma0"], dropna=False))[:MAX_FIGURES]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        th = grp[grp["source"] == "theory"]
        nets = grp[grp["source"] == "network"]
        for w, sub in nets.groupby("width"):
            ax.errorbar(sub["time"], sub["value"], yerr=sub["stderr"], fmt="o", ms=2.5, lw=0.8,
                        label=f"N = {int(w)}", alpha=0.8)
        if len(th):
            ax.plot(th["time"], th["value"], "k-", lw=1.5, label="theory")
        ax.set_xlabel("t")
        ax.set_ylabel(obs)
        if obs in ("loss", "test_loss") and (grp["value"] > 0).all():
            ax.set_yscale("log")
        ax.set_title(f"{check}: {obs}, gamma0 = {g0:g}", fontsize=9)
        ax.legend(fontsize=7)
        files.append(_save(fig, out, f"curve_{_key(check, obs, g0)}.png"))
    return files


def error_vs_width(tables: dict[str, pd.DataFrame], out: Path) -> list[str]:
    """Per-seed relative error against width on log-log axes, with the fitted rate and N^-1/2."""
    m = tables["measurements"]
    files = []
    errs = m[(m["statistic"] == "rel_error") & (m["source"] == "network")]
    for (check, scheme, g0), grp in list(errs.groupby(["check", "scheme", "gamma0"], dropna=False))[:MAX_FIGURES]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for (obs, layer), sub in grp.groupby(["observable", "layer"], dropna=False):
            lab = obs if np.isnan(layer) else f"{obs}[{int(layer)}]"
            line = ax.plot(sub["width"], sub["value"], "o", ms=3, alpha=0.5)[0]
            mean = sub.groupby("width")["value"].mean()
            ax.plot(mean.index, mean.values, "-", color=line.get_color(), label=lab)
            fit = m[(m["check"] == check) & (m["observable"] == obs) & (m["source"] == "fit")
                    & (m["scheme"] == scheme) & (m["gamma0"] == g0)
                    & ((m["layer"] == layer) | (np.isnan(layer) & m["layer"].isna()))]
            slope = fit.loc[fit["statistic"] == "loglog_slope", "value"]
            icpt = fit.loc[fit["statistic"] == "loglog_intercept", "value"]
            if len(slope) and len(icpt):
                ws = np.geomspace(sub["width"].min(), sub["width"].max(), 20)
                ax.plot(ws, np.exp(icpt.iloc[0]) * ws ** slope.iloc[0], "--", color=line.get_color(),
                        lw=0.8, label=f"fit N^{slope.iloc[0]:.2f}")
        ws = np.geomspace(grp["width"].min(), grp["width"].max(), 20)
        ax.plot(ws, grp["value"].median() * (ws / np.sqrt(ws.min() * ws.max())) ** -0.5, "k:", lw=1, label="N^-1/2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width N")
        ax.set_ylabel("relative error vs theory")
        ax.set_title(f"{check} ({scheme}), gamma0 = {g0:g}", fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        files.append(_save(fig, out, f"error_{_key(check, scheme, g0)}.png"))
    return files


def kernels(tables: dict[str, pd.DataFrame], out: Path) -> list[str]:
    """Final-time kernels: theory and widest-network ensemble mean side by side."""
    df = tables["kernels"]
    files = []
    for (check, obs, layer, g0), grp in list(df.groupby(["check", "observable", "layer", "gamma0"], dropna=False))[:MAX_FIGURES]:
        srcs = list(grp.groupby(["source", "width"], dropna=False))
        fig, axes = plt.subplots(1, len(srcs), figsize=(3.2 * len(srcs), 3))
        axes = np.atleast_1d(axes)
        vmax = grp["value"].abs().max()
        for ax, ((src, w), sub) in zip(axes, srcs):
            n = int(sub["i"].max()) + 1
            mat = np.full((n, n), np.nan)
            mat[sub["i"].astype(int), sub["j"].astype(int)] = sub["value"]
            im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_title(src if np.isnan(w) else f"{src} N = {int(w)}", fontsize=8)
        fig.colorbar(im, ax=list(axes), shrink=0.8)
        lab = obs if np.isnan(layer) else f"{obs}[{int(layer)}]"
        fig.suptitle(f"{check}: {lab}, gamma0 = {g0:g}", fontsize=9)
        fig.savefig(out / (name := f"kernel_{_key(check, obs, layer, g0)}.png"), dpi=80)
        plt.close(fig)
        files.append(name)
    return files


def breakdown(tables: dict[str, pd.DataFrame], out: Path) -> list[str]:
    """Relative error of each approximation against the reference, over gamma0."""
    v = tables["verdicts"]
    rows = v[v["statistic"].astype(str).str.startswith("rel_error_vs_")]
    files = []
    for (check, obs, depth), grp in list(rows.groupby(["check", "observable", "depth"], dropna=False))[:MAX_FIGURES]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for scheme, sub in grp.groupby("scheme"):
            sub = sub.sort_values("gamma0")
            ax.plot(sub["gamma0"], sub["estimate"], "o-", label=scheme)
        tol = grp["tolerance"].iloc[0]
        ax.axhline(tol, color="k", ls=":", label=f"tolerance {tol:g}")
        ax.set_yscale("log")
        ax.set_xlabel("gamma0")
        ax.set_ylabel(f"relative error of {obs}")
        ax.set_title(f"{check}: depth {depth:g}, vs {grp['statistic'].iloc[0][13:]}", fontsize=9)
        ax.legend(fontsize=7)
        files.append(_save(fig, out, f"breakdown_{_key(check, obs, depth)}.png"))
    return files


ALL = (curves, error_vs_width, kernels, breakdown)
