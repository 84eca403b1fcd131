"""README.md of the paper report: run facts, reductions, the comparison with the published
numbers, the verdicts of every experiment, and the figures (validate.paper.figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..frame import overall
from .figures import all_figures
from .published import NOTES, comparison
from .sizes import BY_NAME, reductions

SHOWN = ["check", "observable", "layer", "scheme", "width", "gamma0", "depth", "statistic", "estimate",
         "stderr", "verdict", "reason"]
EXPERIMENTS = (("fig1", "Fig. 1: deep tanh network (L = 3, P = 10, D = 25, eta = 0.1, gamma0 = 1 vs lazy)"),
               ("fig2", "Fig. 2: deep linear networks, depth 1..5, gamma0 = 1.5"),
               ("fig3", "Fig. 3: DMFT vs NTK vs GIA vs perturbation theory, deep linear L = 5"),
               ("fig4", "Fig. 4: CNN width independence at gamma0 in {1, 5, 10}"),
               ("appendix", "Appendix: two-layer ReLU, gamma0 in {0.2, 1, 2, 3}"))


def _fmt(x) -> str:
    if isinstance(x, float):
        return "" if pd.isna(x) else f"{x:.4g}"
    return "" if x is None else str(x).replace("|", "\\|")


def md_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(_fmt(x) for x in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines)


def write_markdown(out: Path, notes: str | None = None) -> Path:
    from .report import load_tables

    tables = load_tables(out)
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    figs = all_figures(tables, out / "figures")
    v = tables["verdicts"]
    size = BY_NAME.get(meta.get("size", ""), None)
    lines = ["# The paper's experiments, reproduced", "",
             "Bordelon & Pehlevan, *Self-Consistent Dynamical Field Theory of Kernel Evolution in Wide "
             "Neural Networks* (NeurIPS 2022): every experiment of THEORY.md section 7, infinite-width "
             "theory beside finite-width networks, with statistical verdicts.", "",
             f"**Overall verdict (gating rows): {overall(v).value.upper()}** — "
             + ", ".join(f"{k}: {n}" for k, n in sorted(v[v['gating']]['verdict'].value_counts().items())), "",
             "Regenerate: `make paper` (= `python -m validate.paper --out reports/paper`; add `--device cuda` "
             "for the paper's full sizes, `--data-root DIR` for CIFAR-10). Also `dmft validate --suite paper` "
             "(size from `$DMFT_PAPER_SIZE`, else by device) writes the generic run folder.", "",
             "## Run", ""]
    for k in ("size", "device", "seed", "threads", "elapsed_s", "command", "note"):
        if k in meta:
            lines.append(f"- {k}: {meta[k]}")
    if "check_seconds" in meta:
        lines.append("- seconds per experiment: " + ", ".join(f"{k} {s}" for k, s in meta["check_seconds"].items()))
    if "rerun" in meta:
        r = meta["rerun"]
        lines.append(f"- rerun: {', '.join(r.get('experiments', []))} in {r.get('elapsed_s')} s "
                     f"(`{r.get('command')}`); the other experiments' rows are from the run above, "
                     "and elapsed_s is the sum of the latest seconds per experiment")
    d = tables["measurements"]
    lr = d[(d["observable"] == "eta") & (d["statistic"] == "learning_rate")]
    if len(lr):
        lines.append("- Fig. 4 learning rate eta(gamma0) (parameter step eta gamma0^2 N): "
                     + ", ".join(f"gamma0 = {g:g}: {e:g}" for g, e in zip(lr["gamma0"], lr["value"])))
    ds = d[d["source"] == "data"]
    if len(ds):
        desc = ds["observable"].iloc[0].removeprefix("dataset:")
        n = dict(zip(ds["statistic"], ds["value"]))
        lines.append(f"- Fig. 4 data: {desc}; {int(n.get('n_train', 0))} training and "
                     f"{int(n.get('n_test', 0))} test images"
                     + (" (the full training set of the two classes)" if size is None or size.cnn_n_train is None
                        else " (subsampled at this size)"))
    if size is not None:
        red = reductions(size)
        lines += ["", "### Differences from the paper's sizes (`full`)", ""]
        lines += [f"- {r}" for r in red] if red else ["- nothing: the paper's sizes"]
    lines += ["", "## Our numbers beside the published ones", "", md_table(comparison(tables)), ""]
    notes = NOTES if notes is None else notes
    if notes and meta.get("size") == "cpu":  # the notes describe the committed cpu run
        lines += [notes, ""]
    for prefix, title in EXPERIMENTS:
        sub = v[v["check"].astype(str).str.startswith(prefix)]
        if not len(sub):
            continue
        g = sub[sub["gating"]]
        lines += [f"## {title}", "",
                  f"Gating verdict: **{overall(sub).value.upper()}** ("
                  + ", ".join(f"{k}: {n}" for k, n in sorted(g["verdict"].value_counts().items())) + ")", ""]
        lines += [f"![{f}](figures/{f})" for f in figs if f.startswith(prefix)] + [""]
        lines += ["<details><summary>verdict rows</summary>", "", md_table(sub[SHOWN + ["gating"]]), "",
                  "</details>", ""]
    lines += ["How to read the verdicts: `pass` = the discrepancy is confidently within its tolerance, "
              "`fail` = significantly beyond it, `inconclusive` = the data cannot decide (see the reason). "
              "Rows with gating = False describe and do not decide. All numbers are in `tables/*.csv`."]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
