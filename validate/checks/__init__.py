"""The checks: each a frozen dataclass with ``run(ctx) -> CheckResult`` (see validate.frame).

``CHECKS`` maps the kind names used in suite and claim files to the classes.
"""

from .breakdown import Breakdown
from .cnn_width import CNNWidthIndependence
from .convergence import Convergence
from .width import WidthIndependence

CHECKS = {
    "convergence": Convergence,
    "breakdown": Breakdown,
    "width_independence": WidthIndependence,
    "cnn_width_independence": CNNWidthIndependence,
}

__all__ = ["CHECKS", "Breakdown", "CNNWidthIndependence", "Convergence", "WidthIndependence"]
