"""The checks: each a frozen dataclass with ``run(ctx) -> CheckResult`` (see validate.frame).

``CHECKS`` maps the kind names used in suite and claim files to the classes.

    convergence.py   networks of growing width converge to a scheme's solution
    breakdown.py     where NTK, GIA and perturbation theory part from the DMFT
    width.py         width independence at fixed gamma0, with the fixed-gamma contrast
    cnn_width.py     the same for CNNs (channel counts)
    fluctuation.py   seed variance and single-width means against theory.fluctuations
    common.py        shared helpers; ``Unavailable``: rows when a solve/training gives no answer
    fields.py        strict typed fields of the check dataclasses
"""

from .breakdown import Breakdown
from .cnn_width import CNNWidthIndependence
from .convergence import Convergence
from .fluctuation import Fluctuation, SingleWidth
from .width import WidthIndependence

CHECKS = {
    "convergence": Convergence,
    "breakdown": Breakdown,
    "width_independence": WidthIndependence,
    "cnn_width_independence": CNNWidthIndependence,
    "fluctuation": Fluctuation,
    "single_width": SingleWidth,
}

__all__ = ["CHECKS", "Breakdown", "CNNWidthIndependence", "Convergence", "Fluctuation", "SingleWidth", "WidthIndependence"]
