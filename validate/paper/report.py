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
