"""Paper-style figures of the paper report, drawn from the tidy tables alone (``validate.paper.report``).

Each function takes the tables and a folder and returns the PNG names it wrote (none when its
experiment is absent from the tables). They use the report pipeline's figure helpers
(``validate.report``): legends outside the data, width axes with a tick per width, heatmaps with
axis labels and colour bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..report import figure, kernel_row, legend_outside, panels, save, scheme_colours, suptitle, width_axis


def _starts(df: pd.DataFrame, col: str, prefix: str) -> pd.DataFrame:
    return df[df[col].astype(str).str.startswith(prefix)]


def fig1_loss(t, out):
    c = t["curves"]
    conv = c[(c["check"] == "fig1/tanh-L3/convergence") & (c["observable"] == "loss")]
    lazy = c[(c["check"] == "fig1/tanh-L3") & (c["source"] == "theory_lazy")]
    if not len(conv) and not len(lazy):
        return []
    fig, ax = panels(1)
    ax = ax[0]
    for w, sub in conv[conv["source"] == "network"].groupby("width"):
        ax.plot(sub["time"], sub["value"], "o", ms=2.5, alpha=0.7, label=f"networks N = {int(w)}")
    th = conv[conv["source"] == "theory"]
    ax.plot(th["time"], th["value"], "k-", label="DMFT gamma0 = 1")
    ax.plot(lazy["time"], lazy["value"], "k--", label="lazy (NTK)")
    ax.set(yscale="log", xlabel="t", ylabel="train loss", title="Fig. 1: tanh L = 3, loss")
    legend_outside(fig)
    return [save(fig, out, "fig1_loss.png")]


def fig1_alignment(t, out):
    m = t["measurements"]
    a = m[(m["check"] == "fig1/tanh-L3") & (m["statistic"] == "alignment")]
    if not len(a):
        return []
    fig, axes = figure(1, 2, size=(4.8, 3.0), sharey=True)
    for ax, obs, lab in zip(axes[0], ("phi_final", "g_final"), ("Phi^l", "G^l")):
        for layer, sub in a[a["observable"] == obs].groupby("layer"):
            g = sub.groupby("width")["value"]
            ax.errorbar(g.mean().index, g.mean(), yerr=g.sem().fillna(0), fmt="o-", ms=3,
                        label=f"layer {int(layer) + 1}")
        ax.axvline(500, color="grey", ls=":", lw=0.8, label="N = 500")
        width_axis(ax, a["width"])
        ax.set(title=f"alignment of final {lab} with the DMFT")
    axes[0, 0].set_ylabel("A(network, theory)")
    legend_outside(fig)
    return [save(fig, out, "fig1_alignment_vs_width.png")]


def fig1_densities(t, out):
    c = _starts(t["curves"], "observable", "h_density")
    c = c[c["check"] == "fig1/tanh-L3"]
    if not len(c):
        return []
    layers = sorted(c["layer"].dropna().unique())
    fig, axes = figure(2, len(layers), size=(3.0, 2.4))
    for i, (tag, lab) in enumerate((("h_density_t0", "t = 0"), ("h_density_tT", "t = T"))):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            sub = c[(c["observable"] == tag) & (c["layer"] == layer)]
            for src, st, name in (("theory", "k-", "theory samples"), ("network", "C1o", "network neurons")):
                s = sub[sub["source"] == src]
                ax.plot(s["time"], s["value"], st, ms=2.5, lw=1.2, label=name)
            ax.set(title=f"h^{int(layer) + 1}, {lab}", xlabel=f"h^{int(layer) + 1}", ylabel="density")
    suptitle(fig, "Fig. 1: preactivation densities of point 0, theory samples vs network neurons")
    legend_outside(fig)
    return [save(fig, out, "fig1_densities.png")]


def _matrix(s: pd.DataFrame) -> np.ndarray:
    n = int(s["i"].max()) + 1
    mat = np.full((n, n), np.nan)
    mat[s["i"].astype(int), s["j"].astype(int)] = s["value"]
    return mat


def kernels_grid(t, out, check: str, name: str, title: str):
    """Final Phi^l and G^l of ``check``: DMFT | widest networks | difference, one row per kernel."""
    k = t["kernels"]
    k = k[(k["check"] == check) & (k["observable"].isin(["phi_final", "g_final"]))]
    if not len(k):
        return []
    keys = sorted({(o, int(l)) for o, l in zip(k["observable"], k["layer"])}, key=lambda x: (x[0] != "phi_final", x))
    fig, axes = figure(len(keys), 3, size=(3.4, 2.7))
    for row, (obs, layer) in zip(axes, keys):
        sub = k[(k["observable"] == obs) & (k["layer"] == layer)]
        th, net = sub[sub["source"] == "theory"], sub[sub["source"] == "network"]
        lab = ("Phi" if obs == "phi_final" else "G") + f"^{layer + 1}"
        if not len(th) or not len(net):
            for ax in row:
                ax.set_axis_off()
            continue
        kernel_row(row, _matrix(th), _matrix(net), lab, f"N = {int(net['width'].iloc[0])}", reference="DMFT")
    suptitle(fig, title)
    return [save(fig, out, name)]


def fig2_loss(t, out):
    c = _starts(t["curves"], "check", "fig2/linear-depth/L")
    c = c[c["observable"] == "loss"]
    if not len(c):
        return []
    fig, ax = panels(1)
    ax = ax[0]
    for i, (depth, sub) in enumerate(c.groupby("depth")):
        col = f"C{i}"
        th = sub[sub["source"] == "theory"]
        ax.plot(th["time"], th["value"], "-", color=col, label=f"L = {int(depth)}")
        nets = sub[sub["source"] == "network"]
        if len(nets):
            top = nets[nets["width"] == nets["width"].max()]
            ax.plot(top["time"][::5], top["value"][::5], "o", color=col, ms=3)
    ax.plot([], [], "ko", ms=3, label="widest networks")
    ax.set(yscale="log", xlabel="t", ylabel="train loss", title="Fig. 2: deep linear, gamma0 = 1.5 (lines: DMFT)")
    legend_outside(fig)
    return [save(fig, out, "fig2_loss_by_depth.png")]


def fig2_movement(t, out):
    m = t["measurements"]
    m = m[(m["check"] == "fig2/linear-depth") & (m["statistic"] == "kernel_movement")]
    if not len(m):
        return []
    fig, ax = panels(1)
    ax = ax[0]
    th = m[m["source"] == "theory"].sort_values("depth")
    ax.plot(th["depth"], th["value"], "k-", label="DMFT")
    g = m[m["source"] == "network"].groupby("depth")["value"]
    ax.errorbar(g.mean().index, g.mean(), yerr=g.sem().fillna(0), fmt="o", label="networks (widest)")
    ax.set(xlabel="depth L", ylabel="|K(T) - K(0)| / |K(0)|", title="Fig. 2: NTK movement vs depth")
    ax.set_xticks(sorted(m["depth"].dropna().unique()))
    legend_outside(fig)
    return [save(fig, out, "fig2_movement.png")]


def fig3_alignment(t, out):
    m = t["measurements"]
    m = m[(m["check"] == "fig3/linear-approximations") & (m["statistic"] == "alignment")]
    if not len(m):
        return []
    fig, axes = figure(1, 2, size=(4.0, 3.0))
    colours = scheme_colours(sorted(m["scheme"].dropna().unique()))
    for ax, obs, lab in zip(axes[0], ("ntk_final", "phi_final"), ("NTK K(T)", "H^L(T)")):
        for scheme, sub in m[m["observable"] == obs].groupby("scheme"):
            g = sub.groupby("gamma0")["value"]
            ax.errorbar(g.mean().index, g.mean(), yerr=g.sem().fillna(0), fmt="o-", ms=3, label=scheme,
                        color=colours[scheme])
        ax.set(xlabel="gamma0", ylabel="alignment with networks", title=f"Fig. 3: {lab}, L = 5")
    legend_outside(fig)
    return [save(fig, out, "fig3_alignment.png")]


def fig3_breakdown(t, out):
    v = t["verdicts"]
    v = v[(v["check"] == "fig3/linear-approximations/breakdown")
          & v["statistic"].astype(str).str.startswith("rel_error_vs_")]
    if not len(v):
        return []
    fig, axes = figure(1, 2, size=(4.0, 3.0))
    colours = scheme_colours(sorted(v["scheme"].dropna().unique()))
    for ax, obs in zip(axes[0], ("loss", "ntk")):
        for scheme, sub in v[v["observable"] == obs].groupby("scheme"):
            sub = sub.sort_values("gamma0")
            ax.plot(sub["gamma0"], sub["estimate"].abs(), "o-", label=scheme, color=colours[scheme])
        ax.axhline(v["tolerance"].iloc[0], color="k", ls=":", label="tolerance")
        ax.set(yscale="log", xlabel="gamma0", ylabel=f"relative error of {obs} vs DMFT",
               title=f"Fig. 3: approximations, {obs}")
    legend_outside(fig)
    return [save(fig, out, "fig3_breakdown.png")]


def fig4_curves(t, out):
    """Rows: test MSE, test error, alignment; columns: gamma0; one line per channel count."""
    c = t["curves"]
    c = c[c["check"] == "fig4/cnn"]
    if not len(c):
        return []
    gs = sorted(c["gamma0"].unique())
    ws = sorted(c["width"].unique())
    obs_list = ("test_mse", "test_error", "alignment")
    fig, axes = figure(len(obs_list), len(gs), size=(3.2, 2.3), sharex=True, sharey="row")
    for i, obs in enumerate(obs_list):
        for j, g0 in enumerate(gs):
            ax = axes[i, j]
            for k, w in enumerate(ws):
                s = c[(c["observable"] == obs) & (c["gamma0"] == g0) & (c["width"] == w)]
                ax.plot(s["time"], s["value"], ("-", "--", ":")[k % 3], color=f"C{k}", lw=1.1,
                        label=f"N = {int(w)} channels")
            if i == 0:
                ax.set_title(f"gamma0 = {g0:g}")
            if j == 0:
                ax.set_ylabel(obs.replace("_", " "))
            if i == len(obs_list) - 1:
                ax.set_xlabel("epoch")
    suptitle(fig, "Fig. 4: CNN, seed means by width (alignment: last-layer kernel with y y^T)")
    legend_outside(fig)
    return [save(fig, out, "fig4_cnn.png")]


def appendix_loss(t, out):
    c = _starts(t["curves"], "check", "appendix/relu-L1/g")
    c = c[c["observable"] == "loss"]
    if not len(c):
        return []
    fig, ax = panels(1)
    ax = ax[0]
    for i, (g0, sub) in enumerate(c.groupby("gamma0")):
        th = sub[sub["source"] == "theory"]
        ax.plot(th["time"], th["value"], "-", color=f"C{i}", label=f"gamma0 = {g0:g}")
        nets = sub[sub["source"] == "network"]
        if len(nets):
            top = nets[nets["width"] == nets["width"].max()]
            ax.plot(top["time"], top["value"], "o", color=f"C{i}", ms=2.5)
    ax.plot([], [], "ko", ms=3, label="widest networks")
    ax.set(yscale="log", xlabel="t", ylabel="train loss", title="Appendix: ReLU L = 1 (lines: DMFT)")
    legend_outside(fig)
    return [save(fig, out, "appendix_loss.png")]


def all_figures(tables, out: Path) -> list[str]:
    """Every paper-style figure the tables allow, into ``out`` (created); returns the file names."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    files += fig1_loss(tables, out)
    files += fig1_alignment(tables, out)
    files += fig1_densities(tables, out)
    files += kernels_grid(tables, out, "fig1/tanh-L3/convergence", "fig1_kernels.png",
                          "Fig. 1: final kernels, DMFT vs widest networks")
    files += fig2_loss(tables, out)
    files += fig2_movement(tables, out)
    deep = _starts(tables["kernels"], "check", "fig2/linear-depth/L")
    if len(deep):
        last = sorted(deep["check"].unique(), key=lambda s: int(s.rsplit("L", 1)[1]))[-1]
        files += kernels_grid(tables, out, last, "fig2_final_H.png",
                              f"Fig. 2: final H^l at {last.rsplit('/', 1)[1]}, DMFT vs widest networks")
    files += fig3_alignment(tables, out)
    files += fig3_breakdown(tables, out)
    files += fig4_curves(tables, out)
    files += appendix_loss(tables, out)
    return files
