"""The tidy tables of a report folder on disk: ``<folder>/<table>.csv`` (and ``.parquet``).

Every report (run folders, the paper report) stores its tables here, with the canonical
columns of ``validate.frame.TABLES``, and reads them back the same way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..frame import TABLES, frame

FORMATS = ("csv", "parquet")


def save_tables(tables: dict[str, pd.DataFrame], folder: Path | str,
                formats: tuple[str, ...] = FORMATS) -> dict[str, pd.DataFrame]:
    """Write every table of ``tables`` to ``folder`` in each of ``formats``; returns the tables
    in canonical form (the frames that were written)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"formats: unknown {bad}; valid values are {list(FORMATS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in TABLES:
        df = frame(name, tables[name].to_dict("records") if name in tables else None)
        if "csv" in formats:
            df.to_csv(folder / f"{name}.csv", index=False)
        if "parquet" in formats:
            df.to_parquet(folder / f"{name}.parquet", index=False)
        out[name] = df
    return out


def load_tables(folder: Path | str, what: str | None = None) -> dict[str, pd.DataFrame]:
    """The tables in ``folder`` (Parquet when present, else CSV), with canonical columns.

    Raises ``FileNotFoundError`` naming the missing table (``what`` names the report folder).
    """
    folder = Path(folder)
    out = {}
    for name in TABLES:
        pq, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
        if pq.exists():
            df = pd.read_parquet(pq)
        elif csv.exists():
            df = pd.read_csv(csv)
        else:
            raise FileNotFoundError(f"{what or folder}: missing table {name} ({csv})")
        out[name] = frame(name, df.to_dict("records"))
    return out
