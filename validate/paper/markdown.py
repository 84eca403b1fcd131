"""The paper report's document (README.md): run facts, reductions, the comparison with the
published numbers, the verdicts of every experiment, and the figures.

Built as a ``validate.report.Document`` from the tables and run facts alone (no file access), so
the paper report and the run report share one pipeline from tables to Markdown and HTML.
"""

from __future__ import annotations

import pandas as pd

from ..frame import overall
from ..report import Document, Figure, Plot
from .published import NOTES, comparison
from .sizes import BY_NAME, reductions

SHOWN = ["check", "observable", "layer", "scheme", "width", "gamma0", "depth", "statistic", "estimate",
         "stderr", "verdict", "reason"]
EXPERIMENTS = (("fig1", "Fig. 1: deep tanh network (L = 3, P = 10, D = 25, eta = 0.1, gamma0 = 1 vs lazy)"),
               ("fig2", "Fig. 2: deep linear networks, depth 1..5, gamma0 = 1.5"),
               ("fig3", "Fig. 3: DMFT vs NTK vs GIA vs perturbation theory, deep linear L = 5"),
               ("fig4", "Fig. 4: CNN width independence at gamma0 in {1, 5, 10}"),
               ("appendix", "Appendix: two-layer ReLU, gamma0 in {0.2, 1, 2, 3}"))
INTRO = ("Bordelon & Pehlevan, *Self-Consistent Dynamical Field Theory of Kernel Evolution in Wide "
         "Neural Networks* (NeurIPS 2022): every experiment of docs/theory.md section 7, infinite-width "
         "theory beside finite-width networks, with statistical verdicts.")
REGENERATE = ("Regenerate: `make paper` (= `python -m validate.paper --out reports/paper`; add `--device cuda` "
              "for the paper's full sizes, `--data-root DIR` for CIFAR-10; `--render` redraws this page and "
              "the figures from `tables/` alone). Also `dmft validate --suite paper` (size from "
              "`$DMFT_PAPER_SIZE`, else by device) writes the generic run folder.")
HOW_TO_READ = ("How to read the verdicts: `pass` = the discrepancy is confidently within its tolerance, "
               "`fail` = significantly beyond it, `inconclusive` = the data cannot decide (see the reason). "
               "Rows with gating = False describe and do not decide. All numbers are in `tables/*.csv`.")


def _counts(v: pd.DataFrame) -> str:
    g = v[v["gating"]]
    return ", ".join(f"{k}: {n}" for k, n in sorted(g["verdict"].value_counts().items()))


def run_facts(tables: dict[str, pd.DataFrame], meta: dict) -> list[str]:
    """The bullet list of the "Run" section."""
    lines = [f"{k}: {meta[k]}" for k in ("size", "device", "seed", "threads", "elapsed_s", "command", "note")
             if k in meta]
    if "check_seconds" in meta:
        lines.append("seconds per experiment: " + ", ".join(f"{k} {s}" for k, s in meta["check_seconds"].items()))
    if "rerun" in meta:
        r = meta["rerun"]
        lines.append(f"rerun: {', '.join(r.get('experiments', []))} in {r.get('elapsed_s')} s "
                     f"(`{r.get('command')}`); the other experiments' rows are from the run above, "
                     "and elapsed_s is the sum of the latest seconds per experiment")
    d = tables["measurements"]
    lr = d[(d["observable"] == "eta") & (d["statistic"] == "learning_rate")]
    if len(lr):
        lines.append("Fig. 4 learning rate eta(gamma0) (parameter step eta gamma0^2 N): "
                     + ", ".join(f"gamma0 = {g:g}: {e:g}" for g, e in zip(lr["gamma0"], lr["value"])))
    ds = d[d["source"] == "data"]
    if len(ds):
        size = BY_NAME.get(meta.get("size", ""), None)
        desc = ds["observable"].iloc[0].removeprefix("dataset:")
        n = dict(zip(ds["statistic"], ds["value"]))
        lines.append(f"Fig. 4 data: {desc}; {int(n.get('n_train', 0))} training and "
                     f"{int(n.get('n_test', 0))} test images"
                     + (" (the full training set of the two classes)" if size is None or size.cnn_n_train is None
                        else " (subsampled at this size)"))
    return lines


def paper_document(tables: dict[str, pd.DataFrame], meta: dict, figures: list[str],
                   more: list[Plot] = (), notes: str | None = None) -> Document:
    """The paper report. ``figures``: paper-style PNG names (in ``figures/``, prefixed by
    experiment); ``more``: the run report's standard figures (in ``figures/run/``), shown folded
    under their experiment; ``notes``: the discussion (default ``published.NOTES``, cpu size only)."""
    v = tables["verdicts"]
    doc = Document("The paper's experiments, reproduced")
    doc.para(INTRO).para(f"**Overall verdict (gating rows): {overall(v).value.upper()}** — {_counts(v)}")
    doc.para(REGENERATE).heading("Run").bullets(run_facts(tables, meta))
    size = BY_NAME.get(meta.get("size", ""), None)
    if size is not None:
        red = reductions(size)
        doc.heading("Differences from the paper's sizes (`full`)", 3)
        doc.bullets(red or ["nothing: the paper's sizes"])
    doc.heading("Our numbers beside the published ones").table(comparison(tables))
    notes = NOTES if notes is None else notes
    if notes and meta.get("size") == "cpu":  # the notes describe the committed cpu run
        doc.markdown_text(notes)
    for prefix, title in EXPERIMENTS:
        sub = v[v["check"].astype(str).str.startswith(prefix)]
        if not len(sub):
            continue
        doc.heading(title)
        doc.para(f"Gating verdict: **{overall(sub).value.upper()}** ({_counts(sub)})")
        doc.figures([Figure(f"figures/{f}", f) for f in figures if f.startswith(prefix)])
        extra = [Figure(f"figures/run/{p.file}", p.caption) for p in more if p.check.startswith(prefix)]
        if extra:
            doc.details(f"more figures ({len(extra)}: per-seed errors against width, breakdown, widths)",
                        Document("").figures(extra))
        doc.details("verdict rows", Document("").table(sub[SHOWN + ["gating"]]))
    doc.para(HOW_TO_READ)
    return doc
