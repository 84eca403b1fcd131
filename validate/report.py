"""Run folders: tidy tables (CSV + Parquet), Markdown summary, HTML page with plots, summary.json.

Layout of ``<root>/<name>/``::

    tables/<table>.csv, tables/<table>.parquet   verdicts, measurements, curves, kernels
    summary.md      overall verdict, the verdict table first, how to read it, environment
    index.html      the same with the figures
    figures/*.png   drawn from the tables (validate.plots)
    summary.json    machine-readable: overall verdict, counts, suite, seeds, environment

Writes are atomic: everything goes to a hidden temporary folder beside the target, which is
renamed into place only when complete; an exception leaves no half-written report.
"""

from __future__ import annotations

import html
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from . import plots
from .frame import TABLES, CheckResult, frame, overall

SHOWN = ["check", "observable", "layer", "scheme", "width", "gamma0", "depth", "statistic",
         "estimate", "stderr", "tolerance", "verdict", "reason"]
HOW_TO_READ = """\
How to read this: each row is one hypothesis test. `pass` means the discrepancy is confidently
within the tolerance (its upper confidence bound is below it); `fail` means it is significantly
non-zero (lower bound above 0) and its estimate is beyond the tolerance; `inconclusive` means the
data cannot decide (the reason says why: too few widths or seeds, or a tolerance below the
noise). `extrapolated_residual` is the relative distance between the theory and the networks'
ensemble mean extrapolated linearly in 1/N to infinite width, with the seed noise subtracted;
the bracket in its reason is the confidence interval. `rate` is the log-log slope of per-seed
errors against width (about -1/2 expected). Rows with `gating = False` describe (where an
approximation is refuted on a gamma0 grid, per-observable contrasts, undecided rates) and do
not decide the overall verdict. The numbers behind every row and figure are in `tables/`."""


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


def read_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The tables of a run folder (Parquet when present, else CSV), with canonical columns."""
    out = {}
    for name in TABLES:
        pq, csv = run_dir / "tables" / f"{name}.parquet", run_dir / "tables" / f"{name}.csv"
        if pq.exists():
            df = pd.read_parquet(pq)
        elif csv.exists():
            df = pd.read_csv(csv)
        else:
            raise FileNotFoundError(f"run folder {run_dir}: missing table {name} (tables/{name}.csv)")
        out[name] = frame(name, df.to_dict("records"))
    return out


def _markdown(tables, meta) -> str:
    v = tables["verdicts"]
    verdict = overall(v).value
    counts = v[v["gating"]]["verdict"].value_counts().to_dict()
    lines = [f"# Validation report: {meta.get('name', '')}", "",
             f"**Overall verdict: {verdict.upper()}** "
             f"({', '.join(f'{k}: {n}' for k, n in sorted(counts.items()))}; gating rows only)", ""]
    shown = v.sort_values("gating", ascending=False, kind="stable")
    lines.append(_md_table(shown[SHOWN + ["gating"]]))
    lines += ["", HOW_TO_READ, "", "## Run", ""]
    for k in ("suite", "seed", "device", "elapsed_s"):
        if k in meta:
            lines.append(f"- {k}: {meta[k]}")
    env = meta.get("environment", {})
    lines.append("- environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v))
    figs = meta.get("figures", [])
    if figs:
        lines += ["", "## Figures", ""] + [f"![{f}](figures/{f})" for f in figs]
    return "\n".join(lines) + "\n"


def _fmt(x) -> str:
    if isinstance(x, float):
        return "" if pd.isna(x) else f"{x:.4g}"
    return "" if x is None else str(x).replace("|", "\\|")


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep] + body)


def _html(tables, meta, md: str) -> str:
    v = tables["verdicts"]
    colour = {"pass": "#d4f4d4", "fail": "#f8d0d0", "inconclusive": "#f6ecc8"}
    rows = []
    for r in v.sort_values("gating", ascending=False, kind="stable").itertuples(index=False):
        cells = "".join(f"<td>{html.escape(_fmt(getattr(r, c)))}</td>" for c in SHOWN + ["gating"])
        rows.append(f'<tr style="background:{colour.get(r.verdict, "#fff")}">{cells}</tr>')
    table = ("<table border=1 cellspacing=0 cellpadding=3 style='font-size:12px'><tr>"
             + "".join(f"<th>{c}</th>" for c in SHOWN + ["gating"]) + "</tr>" + "".join(rows) + "</table>")
    figs = "".join(f'<figure><img src="figures/{f}"><figcaption>{f}</figcaption></figure>'
                   for f in meta.get("figures", []))
    verdict = overall(v).value
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(meta.get('name', ''))}</title>"
            f"</head><body><h1>Validation report: {html.escape(meta.get('name', ''))}</h1>"
            f"<h2>Overall verdict: {verdict.upper()}</h2>{table}"
            f"<p>{html.escape(HOW_TO_READ)}</p><h2>Figures</h2>{figs}"
            f"<h2>Run</h2><pre>{html.escape(json.dumps(meta, indent=1, default=str))}</pre></body></html>")


def _render_into(folder: Path, tables: dict[str, pd.DataFrame], meta: dict) -> dict:
    figdir = folder / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta["figures"] = [f for draw in plots.ALL for f in draw(tables, figdir)]
    v = tables["verdicts"]
    meta["overall"] = overall(v).value
    meta["counts"] = {k: int(n) for k, n in v[v["gating"]]["verdict"].value_counts().items()}
    md = _markdown(tables, meta)
    (folder / "summary.md").write_text(md)
    (folder / "index.html").write_text(_html(tables, meta, md))
    (folder / "summary.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def _atomic_dir(target: Path, fill) -> None:
    """Build a folder with ``fill(tmp)`` beside ``target``, then swap it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old.{os.getpid()}.{time.time_ns()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_report(result: CheckResult, root: Path | str, name: str, meta: dict | None = None) -> Path:
    """Write the run folder ``root/name`` atomically; returns its path."""
    target = Path(root) / name
    meta = dict(meta or {}, name=name)

    def fill(tmp: Path) -> None:
        (tmp / "tables").mkdir()
        tables = result.tables()
        for tname, df in tables.items():
            df = frame(tname, df.to_dict("records"))
            df.to_csv(tmp / "tables" / f"{tname}.csv", index=False)
            df.to_parquet(tmp / "tables" / f"{tname}.parquet", index=False)
        _render_into(tmp, tables, meta)

    _atomic_dir(target, fill)
    return target


def render(run_dir: Path | str) -> Path:
    """Re-render summary.md, index.html, figures and summary.json of a run folder from its tables."""
    run_dir = Path(run_dir)
    if not (run_dir / "tables").is_dir():
        raise FileNotFoundError(f"run folder {run_dir}: no tables/ folder (not a report run folder)")
    tables = read_tables(run_dir)
    meta = {}
    if (run_dir / "summary.json").exists():
        meta = json.loads((run_dir / "summary.json").read_text())
    meta.setdefault("name", run_dir.name)

    def fill(tmp: Path) -> None:
        shutil.copytree(run_dir / "tables", tmp / "tables")
        _render_into(tmp, tables, meta)

    _atomic_dir(run_dir, fill)
    return run_dir
