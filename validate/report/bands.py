"""The finite-width band figure: theory +- 2 predicted standard deviations at each width.

Drawn from the ``curves`` rows of ``validate.checks.fluctuation``: source ``theory_band`` (the
infinite-width value, ``stderr`` = the predicted seed standard deviation at that width) and
source ``network_spread`` (the seed mean, ``stderr`` = the measured seed standard deviation).
One panel per width: where the prediction is right, the dashed lines of the measured spread lie
on the edges of the shaded band.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .style import file_key, legend_outside, panels, save, suptitle


def band_figures(tables: dict[str, pd.DataFrame], out: Path) -> list[tuple[str, str, str]]:
    """``(check, file, caption)`` of each band figure (one per check and observable)."""
    df = tables["curves"]
    df = df[df["source"].isin(["theory_band", "network_spread"])]
    done = []
    for (check, obs), grp in df.groupby(["check", "observable"], sort=True):
        widths = sorted(grp["width"].dropna().unique())
        fig, axes = panels(len(widths))
        for ax, w in zip(axes, widths):
            th = grp[(grp["source"] == "theory_band") & (grp["width"] == w)].sort_values("time")
            net = grp[(grp["source"] == "network_spread") & (grp["width"] == w)].sort_values("time")
            t, v, s = th["time"], th["value"], th["stderr"].fillna(0)
            ax.fill_between(t, v - 2 * s, v + 2 * s, color="0.8", label="theory ± 2 predicted s.d.")
            ax.plot(t, v, "k-", lw=1.2, label="theory")
            m, sd = net["value"], net["stderr"].fillna(0)
            ax.plot(net["time"], m, "C0-", lw=1, label="networks: seed mean")
            ax.plot(net["time"], m - 2 * sd, "C0--", lw=0.8, label="networks: ± 2 seed s.d.")
            ax.plot(net["time"], m + 2 * sd, "C0--", lw=0.8)
            ax.set(xlabel="t", ylabel=str(obs), title=f"N = {int(w)}")
        suptitle(fig, f"{check}: {obs}, theory ± 2 predicted standard deviations per width")
        legend_outside(fig)
        name = save(fig, out, f"band_{file_key(check, obs)}.png")
        done.append((check, name, f"{check}: {obs} of the theory with the band of ± 2 predicted seed standard "
                                  "deviations at each width (shaded) against the networks' seed mean and "
                                  "± 2 measured seed standard deviations (dashed)"))
    return done
