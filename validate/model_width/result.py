"""The :class:`WidthStudy` returned by :func:`validate.width_study`: tables, verdict, figure, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..frame import CheckResult, Verdict, frame, overall
from ..report import coordinate_figure, environment, save, write_report
from .config import StudyConfig
from .runs import WidthRun
from .statistics import observable_label

CURVE_FIELDS = ["width", "seed", "step", "module", "statistic", "value"]


def tidy_curves(runs: list[WidthRun]) -> pd.DataFrame:
    """One row per (width, seed, step, module, statistic) recorded before any divergence."""
    parts = []
    for r in runs:
        for (module, stat), a in r.values.items():
            seed, step = np.meshgrid(np.arange(a.shape[0]), np.arange(a.shape[1]), indexing="ij")
            ok = np.isfinite(a)
            parts.append(pd.DataFrame({"width": r.width, "seed": seed[ok], "step": step[ok], "module": module,
                                       "statistic": stat, "value": a[ok]}))
    return pd.concat(parts, ignore_index=True)[CURVE_FIELDS]


@dataclass(frozen=True, eq=False)
class WidthStudy:
    """The result of a width study.

    curves: tidy frame ``width, seed, step, module, statistic, value``; verdicts: the project's
    verdict table (``validate.frame.VERDICT_COLUMNS``), one row per (module, statistic, step)
    (``observable`` is ``statistic[module]``, or ``loss`` / ``output``; ``time`` is the step);
    diverged: ``width, seed, step`` of every run that diverged; info: per-width path ("vmap" or
    "loop", with the reason for the loop) and seconds.
    """

    config: StudyConfig = field(repr=False)
    curves: pd.DataFrame
    verdicts: pd.DataFrame
    diverged: pd.DataFrame
    info: dict

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def verdict(self) -> Verdict:
        """Overall: fail if any gating row fails, else inconclusive if any is, else pass."""
        return overall(self.verdicts)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Seed means: ``width, module, statistic, step, mean, stderr, n`` (stderr = std / sqrt(n))."""
        g = self.curves.groupby(["width", "module", "statistic", "step"], sort=False)["value"]
        out = g.agg(mean="mean", std="std", n="count").reset_index()
        out["stderr"] = np.where(out["n"] > 1, out["std"] / np.sqrt(out["n"]), np.inf)
        return out.drop(columns="std")

    def failing(self) -> pd.DataFrame:
        """The gating rows that failed."""
        v = self.verdicts
        return v[v["gating"] & (v["verdict"] == Verdict.FAIL.value)]

    def failing_modules(self) -> list[str]:
        """Modules (or ``loss`` / ``output``) with a failing gating row, in table order."""
        obs = self.failing()["observable"]
        return list(dict.fromkeys(o.split("[", 1)[1][:-1] if "[" in o else o for o in obs))

    def plot(self, path: str | Path | None = None, *, steps: list[int] | None = None,
             statistics: list[str] | None = None):
        """The coordinate-check figure (``validate.report.coordinate``), drawn from the same
        tables as the report's; saved to ``path`` if given (and then closed).

        steps: the columns (default up to 4 spread over 1..steps); statistics: the rows
        (default every recorded one, the deciding ones first)."""
        fig = coordinate_figure(self.check_result().tables(), self.name, steps=steps, statistics=statistics)
        if path is not None:
            path = Path(path)
            save(fig, path.parent, path.name)
        return fig

    def check_result(self) -> CheckResult:
        """The project's tables: verdicts; curves (seed mean per width and step); measurements
        (each seed's final value, and ``diverged_step`` of the runs that diverged)."""
        s = self.summary
        base = dict(check=self.name, source="network")
        labels = [observable_label(st, m) for st, m in zip(s["statistic"], s["module"])]
        curves = pd.DataFrame({**base, "observable": labels, "width": s["width"], "time": s["step"],
                               "value": s["mean"], "stderr": s["stderr"]})
        c = self.curves
        last = c[c["step"] == self.config.steps]
        meas = pd.DataFrame({**base, "scheme": "networks", "statistic": "final", "width": last["width"],
                             "seed": last["seed"], "value": last["value"],
                             "observable": [observable_label(st, m) for st, m in zip(last["statistic"], last["module"])]})
        dead = pd.DataFrame({**base, "scheme": "networks", "statistic": "diverged_step", "observable": "loss",
                             "width": self.diverged["width"], "seed": self.diverged["seed"],
                             "value": self.diverged["step"]})
        return CheckResult(verdicts=frame("verdicts", self.verdicts.to_dict("records")),
                           measurements=frame("measurements", pd.concat([meas, dead]).to_dict("records")),
                           curves=frame("curves", curves.to_dict("records")))

    def report(self, out: str | Path, name: str | None = None) -> Path:
        """Write the standard run folder ``out/name`` atomically (``validate.report.write_report``,
        default name ``<UTC time>-<study name>``): the tables, summary.md, index.html and the
        figures, the coordinate check among them (``dmft report`` redraws them from the tables).
        Returns the folder."""
        cfg = self.config
        name = name or f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{self.name}"
        meta = dict(suite=f"width_study:{self.name}", seed=cfg.seed, device=str(cfg.device),
                    widths=list(cfg.widths), seeds=cfg.seeds, steps=cfg.steps, loss=cfg.loss_name,
                    observables=list(cfg.observables), tolerance=cfg.tolerance, expect=dict(cfg.expect),
                    elapsed_s=round(sum(v["seconds"] for v in self.info.values()), 2), width_runs=self.info,
                    environment=environment(str(cfg.device)))
        return write_report(self.check_result(), out, name, meta)
