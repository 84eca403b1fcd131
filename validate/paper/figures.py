"""Paper-style figures of the report, drawn from the tidy tables alone (``validate.paper.report``).

Each function takes the tables and a folder and returns the PNG names it wrote (none when its
experiment is absent from the tables).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 80


def _save(fig, out: Path, name: str) -> list[str]:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    plt.close(fig)
    return [name]


def _starts(df: pd.DataFrame, col: str, prefix: str) -> pd.DataFrame:
    return df[df[col].astype(str).str.startswith(prefix)]


def fig1_loss(t, out):
    c = t["curves"]
    conv = c[(c["check"] == "fig1/tanh-L3/convergence") & (c["observable"] == "loss")]
    lazy = c[(c["check"] == "fig1/tanh-L3") & (c["source"] == "theory_lazy")]
    if not len(conv) and not len(lazy):
        return []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for w, sub in conv[conv["source"] == "network"].groupby("width"):
        ax.plot(sub["time"], sub["value"], "o", ms=2.5, alpha=0.7, label=f"networks N = {int(w)}")
    th = conv[conv["source"] == "theory"]
    ax.plot(th["time"], th["value"], "k-", label="DMFT gamma0 = 1")
    ax.plot(lazy["time"], lazy["value"], "k--", label="lazy (NTK)")
    ax.set(yscale="log", xlabel="t", ylabel="train loss", title="Fig. 1: tanh L = 3, loss")
    ax.legend(fontsize=7)
    return _save(fig, out, "fig1_loss.png")


def fig1_alignment(t, out):
    m = t["measurements"]
    a = m[(m["check"] == "fig1/tanh-L3") & (m["statistic"] == "alignment")]
    if not len(a):
        return []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for ax, obs, lab in zip(axes, ("phi_final", "g_final"), ("Phi^l", "G^l")):
        for layer, sub in a[a["observable"] == obs].groupby("layer"):
            g = sub.groupby("width")["value"]
            ax.errorbar(g.mean().index, g.mean(), yerr=g.sem().fillna(0), fmt="o-", ms=3,
                        label=f"layer {int(layer) + 1}")
        ax.set(xscale="log", xlabel="width N", title=f"alignment of final {lab} with the DMFT")
        ax.axvline(500, color="grey", ls=":", lw=0.8)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("A(network, theory)")
    return _save(fig, out, "fig1_alignment_vs_width.png")


def fig1_densities(t, out):
    c = _starts(t["curves"], "observable", "h_density")
    c = c[c["check"] == "fig1/tanh-L3"]
    if not len(c):
        return []
    layers = sorted(c["layer"].dropna().unique())
    fig, axes = plt.subplots(2, len(layers), figsize=(3 * len(layers), 5), squeeze=False)
    for i, (tag, lab) in enumerate((("h_density_t0", "t = 0"), ("h_density_tT", "t = T"))):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            sub = c[(c["observable"] == tag) & (c["layer"] == layer)]
            for src, st in (("theory", "k-"), ("network", "C1o")):
                s = sub[sub["source"] == src]
                ax.plot(s["time"], s["value"], st, ms=2.5, lw=1.2, label=src if src == "theory" else "neurons")
            ax.set_title(f"h^{int(layer) + 1}, {lab}", fontsize=9)
            ax.legend(fontsize=6)
    fig.suptitle("Fig. 1: preactivation densities (point 0), theory samples vs network neurons", fontsize=9)
    return _save(fig, out, "fig1_densities.png")


def kernels_grid(t, out, check: str, name: str, title: str):
    k = t["kernels"]
    k = k[(k["check"] == check) & (k["observable"].isin(["phi_final", "g_final"]))]
    if not len(k):
        return []
    keys = sorted({(o, int(l)) for o, l in zip(k["observable"], k["layer"])})
    fig, axes = plt.subplots(2, len(keys), figsize=(2.3 * len(keys), 4.6), squeeze=False)
    for j, (obs, layer) in enumerate(keys):
        sub = k[(k["observable"] == obs) & (k["layer"] == layer)]
        vmax = sub["value"].abs().max()
        for i, src in enumerate(("theory", "network")):
            s = sub[sub["source"] == src]
            if not len(s):
                continue
            n = int(s["i"].max()) + 1
            mat = np.full((n, n), np.nan)
            mat[s["i"].astype(int), s["j"].astype(int)] = s["value"]
            axes[i, j].imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            w = s["width"].iloc[0]
            lab = "Phi" if obs == "phi_final" else "G"
            axes[i, j].set_title(f"{lab}^{layer + 1} " + ("DMFT" if src == "theory" else f"N = {int(w)}"), fontsize=8)
            axes[i, j].axis("off")
    fig.suptitle(title, fontsize=9)
    return _save(fig, out, name)


def fig2_loss(t, out):
    c = _starts(t["curves"], "check", "fig2/linear-depth/L")
    c = c[c["observable"] == "loss"]
    if not len(c):
        return []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, (depth, sub) in enumerate(c.groupby("depth")):
        col = f"C{i}"
        th = sub[sub["source"] == "theory"]
        ax.plot(th["time"], th["value"], "-", color=col, label=f"L = {int(depth)}")
        nets = sub[sub["source"] == "network"]
        if len(nets):
            top = nets[nets["width"] == nets["width"].max()]
            ax.plot(top["time"][::5], top["value"][::5], "o", color=col, ms=3)
    ax.set(yscale="log", xlabel="t", ylabel="train loss",
           title="Fig. 2: deep linear, gamma0 = 1.5 (lines DMFT, dots widest nets)")
    ax.legend(fontsize=7)
    return _save(fig, out, "fig2_loss_by_depth.png")


def fig2_movement(t, out):
    m = t["measurements"]
    m = m[(m["check"] == "fig2/linear-depth") & (m["statistic"] == "kernel_movement")]
    if not len(m):
        return []
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    th = m[m["source"] == "theory"].sort_values("depth")
    ax.plot(th["depth"], th["value"], "k-", label="DMFT")
    g = m[m["source"] == "network"].groupby("depth")["value"]
    ax.errorbar(g.mean().index, g.mean(), yerr=g.sem().fillna(0), fmt="o", label="networks (widest)")
    ax.set(xlabel="depth L", ylabel="|K(T) - K(0)| / |K(0)|", title="Fig. 2: NTK movement vs depth")
    ax.legend(fontsize=7)
    return _save(fig, out, "fig2_movement.png")


def fig3_alignment(t, out):
    m = t["measurements"]
    m = m[(m["check"] == "fig3/linear-approximations") & (m["statistic"] == "alignment")]
    if not len(m):
        return []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, obs, lab in zip(axes, ("ntk_final", "phi_final"), ("NTK K(T)", "H^L(T)")):
        for scheme, sub in m[m["observable"] == obs].groupby("scheme"):
            g = sub.groupby("gamma0")["value"]
            ax.errorbar(g.mean().index, g.mean(), yerr=g.sem().fillna(0), fmt="o-", ms=3, label=scheme)
        ax.set(xlabel="gamma0", ylabel="alignment with networks", title=f"Fig. 3: {lab}, L = 5")
        ax.legend(fontsize=7)
    return _save(fig, out, "fig3_alignment.png")


def fig3_breakdown(t, out):
    v = t["verdicts"]
    v = v[(v["check"] == "fig3/linear-approximations/breakdown")
          & v["statistic"].astype(str).str.startswith("rel_error_vs_")]
    if not len(v):
        return []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, obs in zip(axes, ("loss", "ntk")):
        for scheme, sub in v[v["observable"] == obs].groupby("scheme"):
            sub = sub.sort_values("gamma0")
            ax.plot(sub["gamma0"], sub["estimate"].abs(), "o-", label=scheme)
        ax.axhline(v["tolerance"].iloc[0], color="k", ls=":", label="tolerance")
        ax.set(yscale="log", xlabel="gamma0", ylabel=f"relative error of {obs} vs DMFT",
               title=f"Fig. 3: approximations, {obs}")
        ax.legend(fontsize=7)
    return _save(fig, out, "fig3_breakdown.png")


def fig4_curves(t, out):
    c = t["curves"]
    c = c[c["check"] == "fig4/cnn"]
    if not len(c):
        return []
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    gs = sorted(c["gamma0"].unique())
    ws = sorted(c["width"].unique())
    for ax, obs in zip(axes, ("test_mse", "test_error", "alignment")):
        for i, g0 in enumerate(gs):
            for j, w in enumerate(ws):
                s = c[(c["observable"] == obs) & (c["gamma0"] == g0) & (c["width"] == w)]
                ax.plot(s["time"], s["value"], ("-", "--", ":")[j % 3], color=f"C{i}",
                        label=f"gamma0 = {g0:g}, N = {int(w)}")
        ax.set(xlabel="epoch", ylabel=obs, title=f"Fig. 4: {obs}")
    axes[0].legend(fontsize=6)
    return _save(fig, out, "fig4_cnn.png")


def appendix_loss(t, out):
    c = _starts(t["curves"], "check", "appendix/relu-L1/g")
    c = c[c["observable"] == "loss"]
    if not len(c):
        return []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, (g0, sub) in enumerate(c.groupby("gamma0")):
        th = sub[sub["source"] == "theory"]
        ax.plot(th["time"], th["value"], "-", color=f"C{i}", label=f"gamma0 = {g0:g}")
        nets = sub[sub["source"] == "network"]
        if len(nets):
            top = nets[nets["width"] == nets["width"].max()]
            ax.plot(top["time"], top["value"], "o", color=f"C{i}", ms=2.5)
    ax.set(yscale="log", xlabel="t", ylabel="train loss", title="Appendix: ReLU L = 1 (dots: widest nets)")
    ax.legend(fontsize=7)
    return _save(fig, out, "appendix_loss.png")


def all_figures(tables, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    files += fig1_loss(tables, out)
    files += fig1_alignment(tables, out)
    files += fig1_densities(tables, out)
    files += kernels_grid(tables, out, "fig1/tanh-L3/convergence", "fig1_kernels.png",
                          "Fig. 1: final kernels, DMFT (top) vs widest networks (bottom)")
    files += fig2_loss(tables, out)
    files += fig2_movement(tables, out)
    deep = _starts(tables["kernels"], "check", "fig2/linear-depth/L")
    if len(deep):
        last = sorted(deep["check"].unique(), key=lambda s: int(s.rsplit("L", 1)[1]))[-1]
        files += kernels_grid(tables, out, last, "fig2_final_H.png",
                              f"Fig. 2: final H^l at {last.rsplit('/', 1)[1]}, DMFT (top) vs networks (bottom)")
    files += fig3_alignment(tables, out)
    files += fig3_breakdown(tables, out)
    files += fig4_curves(tables, out)
    files += appendix_loss(tables, out)
    return files
