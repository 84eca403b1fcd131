"""The ``quick`` suite: CI-sized (< 2 min on 2 CPU cores). Deep linear MLPs on embedded
Gaussian data, lazy and rich gamma0, the exact linear theory."""

from __future__ import annotations

from ..checks import Breakdown, Convergence, WidthIndependence
from ..spec import ProblemSpec
from . import Suite

#: Shared data/architecture: P = 8 train + 4 test Gaussian points, D = 16, depth 2, T = 20.
BASE = ProblemSpec(n_train=8, n_test=4, input_dim=16, depth=2, activation="linear", eta=0.2, steps=20)


def build() -> Suite:
    return Suite(
        name="quick",
        description="deep linear MLPs: convergence (lazy and rich), breakdown, width independence",
        checks=(
            Convergence(name="convergence/linear-lazy", problem=BASE.replace(gamma0=0.1),
                        widths=(64, 128, 256), seeds=12, observables=("loss", "ntk"), tolerance=0.05),
            Convergence(name="convergence/linear-rich", problem=BASE.replace(gamma0=1.0),
                        widths=(64, 128, 256), seeds=12, observables=("loss", "ntk", "phi"), tolerance=0.05),
            Breakdown(name="breakdown/linear", problem=BASE.replace(depth=3), gamma0s=(0.1, 0.5, 1.0, 1.5),
                      observables=("loss", "ntk"), tolerance=0.02),
            WidthIndependence(name="width/linear-rich", problem=BASE.replace(gamma0=1.0),
                              widths=(64, 256), seeds=12, observables=("loss", "test_loss"), tolerance=0.05),
        ),
    )
