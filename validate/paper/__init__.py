"""Reproduction of the paper's experiments (docs/theory.md section 7) as checks, figures and a report.

    from validate.paper import experiments
    checks = experiments("smoke")            # Fig. 1-4 and the Appendix, as suite checks
    python -m validate.paper --out reports/paper [--size cpu|full|smoke] [--device cuda]

Modules: ``sizes`` (smoke / cpu / full), ``fig1`` (deep tanh), ``linear`` (Figs. 2, 3), ``cnn``
(Fig. 4), ``appendix`` (two-layer ReLU), ``densities`` (preactivation densities), ``published``
(the paper's numbers beside ours), ``figures`` (paper-style figures), ``markdown`` (the report's
document), ``report`` (the committed report: tables, README.md, index.html, via validate.report),
``common`` (helpers shared by the experiments). ``python -m validate.paper --render`` redraws the
report from its tables.
"""

from __future__ import annotations

from .appendix import PaperAppendix
from .cnn import PaperFig4
from .fig1 import PaperFig1
from .linear import PaperFig2, PaperFig3
from .sizes import SIZES, resolve


def experiments(size: str | None = None) -> tuple:
    """The paper's experiments as suite checks (``size`` None: chosen at run time)."""
    return (PaperFig1(size=size), PaperFig2(size=size), PaperFig3(size=size), PaperFig4(size=size),
            PaperAppendix(size=size))


__all__ = ["SIZES", "PaperAppendix", "PaperFig1", "PaperFig2", "PaperFig3", "PaperFig4", "experiments",
           "resolve"]
