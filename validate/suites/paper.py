"""The ``paper`` suite: the experiments of Bordelon & Pehlevan (2022), theory beside networks
(docs/theory.md section 7): Fig. 1 (deep tanh), Fig. 2 (deep linear by depth), Fig. 3 (approximations
vs gamma0), Fig. 4 (CNN width independence) and the Appendix (two-layer ReLU).

Size: ``$DMFT_PAPER_SIZE`` (smoke, cpu, full), else ``full`` with ``--device cuda`` and ``cpu``
otherwise (see validate.paper.sizes). CIFAR-10 for Fig. 4 from ``$DMFT_CIFAR_ROOT`` when present,
else scikit-learn digits. The committed report with the published numbers:
``python -m validate.paper --out reports/paper`` (or ``make paper``).
"""

from __future__ import annotations

#: One line for ``dmft validate --help`` (validate.suites.catalog).
SUMMARY = "the paper's Figs. 1-4 and Appendix (size: $DMFT_PAPER_SIZE)"

from ..paper import experiments
from . import Suite


def build(size: str | None = None) -> Suite:
    return Suite(name="paper", description="the paper's Figs. 1-4 and Appendix, theory beside networks",
                 checks=experiments(size))
