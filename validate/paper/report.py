"""The committed paper report: tables (CSV), README.md and index.html, figures.

``<out>/tables/*.csv`` and ``<out>/run.json`` are the data; everything else is rendered from them
by the report pipeline (``validate.report``): the paper-style figures (``validate.paper.figures``)
in ``figures/``, the run report's per-seed error, breakdown and width figures in ``figures/run/``, and one document
(``validate.paper.markdown``) written as README.md and index.html.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from ..frame import CheckResult, frame
from ..report import draw_all, load_tables as load_folder, save_tables as save_folder
from .figures import all_figures
from .markdown import paper_document


#: The run report's figure kinds added to the paper report (its own figures show curves and kernels).
MORE = ("errors", "breakdown", "widths")


def save_tables(result, out: Path, meta: dict) -> None:
    """Write ``out/tables/<name>.csv`` for every table and ``out/run.json``."""
    out = Path(out)
    save_folder(result.tables(), out / "tables", formats=("csv",))
    (out / "run.json").write_text(json.dumps(meta, indent=2, default=str))


def load_tables(out: Path) -> dict[str, pd.DataFrame]:
    """The tables of the paper report folder ``out``."""
    return load_folder(Path(out) / "tables", what=f"paper report {out}")


def render_paper_report(out: Path) -> Path:
    """README.md, index.html and the figures of ``out`` from ``out/tables`` and ``out/run.json``;
    returns the README's path."""
    out = Path(out)
    tables = load_tables(out)
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    figs = all_figures(tables, out / "figures")
    run_dir = out / "figures" / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # drawn afresh: no stale figure survives
    more = draw_all(tables, run_dir, kinds=MORE)
    doc = paper_document(tables, meta, figs, more)
    (out / "README.md").write_text(doc.markdown())
    (out / "index.html").write_text(doc.html())
    return out / "README.md"


def merge_tables(out: Path, result, meta: dict, rerun: list[str]):
    """``(result, meta)`` with the rows of the checks named in ``rerun`` (and their sub-checks,
    ``<name>/...``) taken from ``result`` and every other row kept from ``out/tables``; the
    timings of ``out/run.json`` are kept for the experiments that were not rerun."""
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
