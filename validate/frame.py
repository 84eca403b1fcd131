"""Tidy result tables (docs/design.md section 4).

Every check returns a :class:`CheckResult`: one ``verdicts`` frame (one row per tested
hypothesis, columns :data:`VERDICT_COLUMNS`) plus long-format data tables used by the reports
(``measurements``: scalar statistics per width/seed/gamma0; ``curves``: time series;
``kernels``: final kernel matrices). Reports are rendered from these tables alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


VERDICT_COLUMNS = [
    "check", "observable", "scheme", "width", "gamma0", "depth", "layer", "time",
    "statistic", "estimate", "stderr", "tolerance", "verdict", "reason", "gating",
]
MEASUREMENT_COLUMNS = [
    "check", "observable", "scheme", "source", "width", "gamma0", "depth", "layer", "seed",
    "statistic", "value", "stderr",
]
CURVE_COLUMNS = [
    "check", "observable", "source", "width", "gamma0", "depth", "layer", "time", "value", "stderr",
]
KERNEL_COLUMNS = ["check", "observable", "source", "width", "gamma0", "layer", "i", "j", "value"]

TABLES = {
    "verdicts": VERDICT_COLUMNS,
    "measurements": MEASUREMENT_COLUMNS,
    "curves": CURVE_COLUMNS,
    "kernels": KERNEL_COLUMNS,
}

_NUMERIC = {"width", "gamma0", "depth", "layer", "time", "seed", "i", "j",
            "estimate", "stderr", "tolerance", "value"}


def frame(name: str, rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """A frame of table ``name`` with its canonical columns (missing entries are NaN / None)."""
    cols = TABLES[name]
    df = pd.DataFrame(rows or [], columns=cols)
    for c in cols:
        if c in _NUMERIC:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    if "gating" in df:
        df["gating"] = df["gating"].fillna(True).astype(bool)
    for c in ("check", "observable", "scheme", "source", "statistic", "verdict", "reason"):
        if c in df:
            df[c] = df[c].astype("object").where(df[c].notna(), None)
    return df


def verdict_row(**kw: Any) -> dict[str, Any]:
    """One verdict row; ``verdict`` must be a :class:`Verdict` value, ``reason`` one line."""
    v = Verdict(kw["verdict"]).value
    reason = str(kw.get("reason", "")).replace("\n", " ")
    row = {c: kw.get(c, np.nan) for c in VERDICT_COLUMNS}
    row.update(verdict=v, reason=reason, gating=bool(kw.get("gating", True)))
    unknown = set(kw) - set(VERDICT_COLUMNS)
    if unknown:
        raise ValueError(f"verdict_row: unknown columns {sorted(unknown)}")
    return row


def overall(verdicts: pd.DataFrame) -> Verdict:
    """fail if any gating row failed; else inconclusive if any gating row is; else pass."""
    g = verdicts[verdicts["gating"]] if len(verdicts) else verdicts
    vs = set(g["verdict"]) if len(g) else set()
    if Verdict.FAIL.value in vs:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE.value in vs or not len(g):
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


@dataclass
class CheckResult:
    """Output of one check: the verdict rows and the data tables behind them."""

    verdicts: pd.DataFrame
    measurements: pd.DataFrame = field(default_factory=lambda: frame("measurements"))
    curves: pd.DataFrame = field(default_factory=lambda: frame("curves"))
    kernels: pd.DataFrame = field(default_factory=lambda: frame("kernels"))

    @property
    def verdict(self) -> Verdict:
        return overall(self.verdicts)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}

    @staticmethod
    def concat(results: list["CheckResult"]) -> "CheckResult":
        def cat(name):
            parts = [getattr(r, name) for r in results if len(getattr(r, name))]
            return frame(name, pd.concat(parts, ignore_index=True).to_dict("records")) if parts else frame(name)

        return CheckResult(**{name: cat(name) for name in TABLES})
