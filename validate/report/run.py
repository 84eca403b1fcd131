"""Run folders: tidy tables (CSV + Parquet), Markdown summary, HTML page with plots, summary.json.

Layout of ``<root>/<name>/``::

    tables/<table>.csv, tables/<table>.parquet   verdicts, measurements, curves, kernels
    summary.md      overall verdict, the verdict table first, how to read it, the figures by check
    index.html      the same document in HTML (validate.report.document)
    figures/*.png   every figure the tables allow (validate.report.figures)
    summary.json    machine-readable: overall verdict, counts, figures, suite, seeds, environment

Writes are atomic and never replace an existing folder unless asked (validate.report.folders).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from ..frame import CheckResult, overall
from .document import Document, Figure
from .figures import draw_all
from .folders import atomic_dir
from .tables import load_tables, save_tables

SHOWN = ["check", "observable", "layer", "scheme", "width", "gamma0", "depth", "time", "statistic",
         "estimate", "stderr", "tolerance", "verdict", "reason"]
#: Columns of SHOWN left out of the verdict table when no row has a value (``time``: the step of
#: a width study's rows, the time a width-independence check compares at).
OPTIONAL = ("time",)
HOW_TO_READ = """\
How to read this: each row is one hypothesis test. `pass` means the discrepancy is confidently
within the tolerance (its upper confidence bound is below it); `fail` means it is significantly
non-zero (lower bound above 0) and its estimate is beyond the tolerance; `inconclusive` means the
data cannot decide (the reason says why: too few widths or seeds, or a tolerance below the
noise). The bracket in a reason is the confidence interval of the number before it, which is
the row's estimate. `extrapolated_residual` is the relative distance between the theory and the
networks' ensemble mean extrapolated linearly in 1/N to infinite width, with the seed noise
subtracted. `rate` is the log-log slope of per-seed errors against width (about -1/2 expected).
Signed differences (`rel_diff_*`) pass when their whole interval lies within ±tolerance. Rows
with `gating = False` describe (where an approximation is refuted on a gamma0 grid,
per-observable contrasts, undecided rates) and do not decide the overall verdict. The numbers
behind every row and figure are in `tables/`.""".replace("\n", " ")


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions, device and git revision of this run."""
    import matplotlib
    import numpy
    import torch

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    return {
        "python": platform.python_version(), "platform": platform.platform(),
        "torch": torch.__version__, "numpy": numpy.__version__, "pandas": pd.__version__,
        "matplotlib": matplotlib.__version__, "device": device,
        "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
        "git_revision": rev,
    }


def read_tables(run_dir: Path | str) -> dict[str, pd.DataFrame]:
    """The tables of a run folder (Parquet when present, else CSV), with canonical columns."""
    return load_tables(Path(run_dir) / "tables", what=f"run folder {run_dir}")


def figure_index(verdicts: pd.DataFrame, plots: list) -> dict[str, list[str]]:
    """Check name -> its figure files, for every check of ``verdicts`` (empty list: no data to plot)."""
    index = {c: [] for c in dict.fromkeys(verdicts["check"].astype(str))}
    for p in plots:
        index.setdefault(p.check, []).append(p.file)
    return index


def report_document(tables: dict[str, pd.DataFrame], meta: dict, plots: list) -> Document:
    """The run report (summary.md and index.html) as one document."""
    v = tables["verdicts"]
    counts = v[v["gating"]]["verdict"].value_counts().to_dict()
    doc = Document(f"Validation report: {meta.get('name', '')}")
    doc.para(f"**Overall verdict: {overall(v).value.upper()}** "
             f"({', '.join(f'{k}: {n}' for k, n in sorted(counts.items()))}; gating rows only)")
    shown = [c for c in SHOWN if c not in OPTIONAL or v[c].notna().any()]
    doc.table(v.sort_values("gating", ascending=False, kind="stable")[shown + ["gating"]])
    doc.para(HOW_TO_READ)
    doc.heading("Figures")
    by_check = figure_index(v, plots)
    doc.bullets([f"{c}: " + (", ".join(f"[{f}](figures/{f})" for f in fs) if fs else "no figure (no curves, "
                             "per-seed errors or kernels recorded)") for c, fs in by_check.items()])
    for check in by_check:
        figs = [Figure(f"figures/{p.file}", p.caption) for p in plots if p.check == check]
        if figs:
            doc.heading(check, 3).figures(figs)
    doc.heading("Run")
    env = meta.get("environment", {})
    doc.bullets([f"{k}: {meta[k]}" for k in ("suite", "description", "seed", "device", "elapsed_s") if k in meta]
                + (["environment: " + ", ".join(f"{k} {x}" for k, x in env.items() if x)] if env else []))
    return doc


def render_into(folder: Path, tables: dict[str, pd.DataFrame], meta: dict) -> dict:
    """Draw the figures and write summary.md, index.html and summary.json into ``folder``."""
    plots = draw_all(tables, folder / "figures")
    v = tables["verdicts"]
    meta = dict(meta, figures=[p.file for p in plots], figures_by_check=figure_index(v, plots),
                overall=overall(v).value,
                counts={k: int(n) for k, n in v[v["gating"]]["verdict"].value_counts().items()})
    doc = report_document(tables, meta, plots)
    (folder / "summary.md").write_text(doc.markdown())
    doc.preformatted(json.dumps({k: x for k, x in meta.items() if k != "figures_by_check"}, indent=1, default=str))
    (folder / "index.html").write_text(doc.html())
    (folder / "summary.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def write_report(result: CheckResult, root: Path | str, name: str, meta: dict | None = None, *,
                 overwrite: bool = False) -> Path:
    """Write the run folder ``root/name`` atomically; returns its path.

    Raises ``validate.report.FolderExistsError`` (a ``FileExistsError`` and a ``ValueError``)
    naming the folder when it already exists, unless ``overwrite``; call
    ``validate.report.check_target(root / name)`` to find out before a long run.
    """
    meta = dict(meta or {}, name=name)

    def fill(tmp: Path) -> None:
        tables = save_tables(result.tables(), tmp / "tables", formats=("csv", "parquet"))
        render_into(tmp, tables, meta)

    return atomic_dir(Path(root) / name, fill, overwrite=overwrite)


def render(run_dir: Path | str) -> Path:
    """Re-render summary.md, index.html, figures and summary.json of a run folder from its tables."""
    run_dir = Path(run_dir)
    if not (run_dir / "tables").is_dir():
        raise FileNotFoundError(f"run folder {run_dir}: no tables/ folder (not a report run folder)")
    tables = read_tables(run_dir)
    meta = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    meta.setdefault("name", run_dir.name)

    def fill(tmp: Path) -> None:
        shutil.copytree(run_dir / "tables", tmp / "tables")
        render_into(tmp, tables, meta)

    return atomic_dir(run_dir, fill, overwrite=True)
