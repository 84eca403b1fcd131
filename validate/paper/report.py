"""The committed paper report: tables (CSV), README.md with the comparison table, figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..frame import TABLES, frame


def save_tables(result, out: Path, meta: dict) -> None:
    """Write ``out/tables/<name>.csv`` for every table and ``out/run.json``."""
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for name, df in result.tables().items():
        frame(name, df.to_dict("records")).to_csv(out / "tables" / f"{name}.csv", index=False)
    (out / "run.json").write_text(json.dumps(meta, indent=2, default=str))


def load_tables(out: Path) -> dict[str, pd.DataFrame]:
    return {n: frame(n, pd.read_csv(out / "tables" / f"{n}.csv").to_dict("records")) for n in TABLES}


def render_paper_report(out: Path) -> None:
    """README.md and figures from ``out/tables`` and ``out/run.json``."""
    from .markdown import write_markdown

    write_markdown(Path(out))


def merge_tables(out: Path, result, meta: dict, rerun: list[str]):
    """``(result, meta)`` with the rows of the checks named in ``rerun`` (and their sub-checks,
    ``<name>/...``) taken from ``result`` and every other row kept from ``out/tables``; the
    timings of ``out/run.json`` are kept for the experiments that were not rerun."""
    from ..frame import CheckResult

    old = load_tables(out)

    def keep(df):
        c = df["check"].astype(str)
        hit = c.isin(rerun) | c.apply(lambda s: any(s.startswith(n + "/") for n in rerun))
        return df[~hit]

    kept = CheckResult(**{n: frame(n, keep(df).to_dict("records")) for n, df in old.items()})
    merged = CheckResult.concat([kept, result])
    prev = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    seconds = {**prev.get("check_seconds", {}), **meta.get("check_seconds", {})}
    meta = {**prev, **meta, "check_seconds": seconds, "elapsed_s": round(sum(seconds.values()), 1),
            "rerun": {"experiments": rerun, "elapsed_s": meta.get("elapsed_s"),
                      "command": meta.get("command")}}
    return merged, meta
