"""The ``quick`` suite: CI-sized (< 2 min on 2 CPU cores). Deep linear MLPs on embedded
Gaussian data with the exact linear theory: convergence in the rich regime, the breakdown of the
approximations, width independence with its fixed-gamma contrast."""

from __future__ import annotations

#: One line for ``dmft validate --help`` (validate.suites.catalog).
SUMMARY = "CI-sized (< 2 min on 2 cores): deep linear MLPs against the exact theory"

from ..checks import Breakdown, Convergence, WidthIndependence
from ..spec import ProblemSpec
from . import Suite

#: P = 8 train + 4 test Gaussian points in D = 16, depth 2, eta = 0.2, T = 20 steps.
BASE = ProblemSpec(n_train=8, n_test=4, input_dim=16, depth=2, activation="linear", eta=0.2, steps=20)
#: docs/theory.md section 5: every approximation agrees with the DMFT in the lazy limit (gamma0 = 0.05
#: is below the first refuted grid point) and, at depth 3, all are refuted by gamma0 = 1.5.
EXPECT_DEPTH3 = {"ntk": (0.25, 1.5), "gia": (0.25, 1.5), "perturbative": (0.25, 1.5)}


def build() -> Suite:
    rich = BASE.replace(gamma0=1.0)
    return Suite(
        name="quick",
        description="deep linear MLPs: convergence (rich), approximation breakdown, width independence",
        checks=(
            Convergence(name="convergence/linear-rich", problem=rich, widths=(64, 128, 256, 512), seeds=32,
                        observables=("loss", "ntk", "phi"), tolerance=0.05),
            Breakdown(name="breakdown/linear-theory", problem=BASE.replace(depth=3),
                      gamma0s=(0.05, 0.5, 1.0, 1.5), observables=("loss", "ntk"), tolerance=0.02,
                      expect=EXPECT_DEPTH3),
            WidthIndependence(name="width/linear-rich", problem=rich, widths=(128, 512), seeds=32,
                              observables=("loss", "test_loss"), tolerance=0.1),
        ),
    )

