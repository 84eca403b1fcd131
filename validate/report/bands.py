"""The finite-width band figure: theory +- 2 predicted standard deviations at each width.

Drawn from the ``curves`` rows of ``validate.checks.fluctuation``: source ``theory_band`` (the
infinite-width value; ``stderr`` = the predicted seed standard deviation at that width) and
source ``network_spread`` (the seed mean; ``stderr`` = the measured seed standard deviation),
for the loss and the first entry of each output and kernel. One figure per check and
observable, one panel per width: where the prediction is right, the dashed lines of the
measured spread lie on the edges of the shaded band at every width.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .style import file_key, legend_outside, panels, save, suptitle

SOURCES = ("theory_band", "network_spread")


def _label(obs: str, layer) -> str:
    entry = "" if obs == "loss" else " entry 0" if obs.startswith("f_") else " entry (0, 0)"
    return (obs if pd.isna(layer) else f"{obs} layer {int(layer)}") + entry


def band_figures(tables: dict[str, pd.DataFrame], out: Path) -> list[tuple[str, str, str]]:
    """``(check, file, caption)`` of each band figure (one per check, observable and layer)."""
    df = tables["curves"]
    df = df[df["source"].isin(SOURCES)]
    done = []
    for (check, obs, layer), grp in df.groupby(["check", "observable", "layer"], sort=True, dropna=False):
        widths = sorted(grp["width"].dropna().unique())
        label = _label(str(obs), layer)
        fig, axes = panels(len(widths))
        for ax, w in zip(axes, widths):
            th = grp[(grp["source"] == "theory_band") & (grp["width"] == w)].sort_values("time")
            net = grp[(grp["source"] == "network_spread") & (grp["width"] == w)].sort_values("time")
            t, v, s = th["time"], th["value"], th["stderr"].fillna(0)
            ax.fill_between(t, v - 2 * s, v + 2 * s, color="0.82", label="theory ± 2 predicted s.d.")
            ax.plot(t, v, "k-", lw=1.2, label="theory (N = inf)")
            m, sd = net["value"], net["stderr"].fillna(0)
            ax.plot(net["time"], m, "C0-", lw=1, label="networks: seed mean")
            ax.plot(net["time"], m - 2 * sd, "C0--", lw=0.8, label="networks: ± 2 seed s.d.")
            ax.plot(net["time"], m + 2 * sd, "C0--", lw=0.8)
            ax.set(xlabel="time t", ylabel=label, title=f"N = {int(w)}")
            if obs == "loss" and (v > 0).all():  # the decay spans decades: a log axis shows the band
                ax.set_yscale("log")
                ax.set_ylim(bottom=0.5 * min(v.min(), m.min()))
        suptitle(fig, f"{check}: {label}, theory ± 2 predicted seed standard deviations per width")
        legend_outside(fig)
        key = str(obs) if pd.isna(layer) else f"{obs}{int(layer)}"
        name = save(fig, out, f"band_{file_key(check, key)}.png")
        done.append((check, name, f"{check}: {label} of the infinite-width theory with the band of ± 2 "
                                  "predicted seed standard deviations at each width (shaded), against the "
                                  "networks' seed mean and ± 2 measured seed standard deviations (dashed)"))
    return done
