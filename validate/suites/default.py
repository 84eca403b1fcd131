"""The ``default`` suite (< 10 min on 2 CPU cores): embedded Gaussian data; deep linear MLPs
(exact theory) and deep tanh MLPs (Monte Carlo theory); lazy vs rich gamma0; all schemes."""

from __future__ import annotations

import importlib.util

from ..checks import Breakdown, Convergence, WidthIndependence
from ..spec import ProblemSpec
from . import Suite

LINEAR = ProblemSpec(n_train=10, n_test=4, input_dim=20, depth=3, activation="linear", eta=0.1, steps=30)
TANH = ProblemSpec(n_train=8, n_test=4, input_dim=16, depth=2, activation="tanh", eta=0.2, steps=20)


def _linear_checks() -> tuple:
    return (
        # lazy: every scheme must agree with the networks
        *(Convergence(name=f"convergence/linear-lazy-{s}", problem=LINEAR.replace(gamma0=0.05), scheme=s,
                      widths=(64, 128, 256, 512), seeds=12, observables=("loss", "ntk"), tolerance=0.03)
          for s in ("dmft", "ntk", "gia", "perturbative")),
        Convergence(name="convergence/linear-rich", problem=LINEAR.replace(gamma0=1.0),
                    widths=(64, 128, 256, 512), seeds=12, observables=("loss", "test_loss", "ntk", "phi", "g"),
                    tolerance=0.03),
        Breakdown(name="breakdown/linear-theory", problem=LINEAR, gamma0s=(0.1, 0.25, 0.5, 1.0, 1.5),
                  depths=(1, 2, 3), observables=("loss", "ntk"), tolerance=0.02),
        Breakdown(name="breakdown/linear-networks", problem=LINEAR, gamma0s=(0.25, 1.0),
                  schemes=("dmft", "ntk", "gia", "perturbative"), against="networks",
                  widths=(128, 256, 512), seeds=8, observables=("loss",), tolerance=0.03),
        WidthIndependence(name="width/linear-rich", problem=LINEAR.replace(gamma0=1.0),
                          widths=(64, 512), seeds=12, observables=("loss", "test_loss"), tolerance=0.05),
    )


def _tanh_checks() -> tuple:
    # ---- TANH: the Monte Carlo solver (theory.montecarlo) decides these; included when present.
    if importlib.util.find_spec("theory.montecarlo") is None:
        return (
            WidthIndependence(name="width/tanh-rich", problem=TANH.replace(gamma0=1.0),
                              widths=(64, 256), seeds=12, observables=("loss", "test_loss"), tolerance=0.05),
        )
    return (
        Convergence(name="convergence/tanh-lazy", problem=TANH.replace(gamma0=0.05),
                    widths=(64, 128, 256), seeds=12, observables=("loss", "ntk"), tolerance=0.05),
        Convergence(name="convergence/tanh-rich", problem=TANH.replace(gamma0=1.0),
                    widths=(64, 128, 256), seeds=12, observables=("loss", "ntk", "phi"), tolerance=0.05),
        WidthIndependence(name="width/tanh-rich", problem=TANH.replace(gamma0=1.0),
                          widths=(64, 256), seeds=12, observables=("loss", "test_loss"), tolerance=0.05),
    )


def build() -> Suite:
    return Suite(name="default",
                 description="deep linear and deep tanh MLPs, lazy vs rich gamma0, all schemes",
                 checks=_linear_checks() + _tanh_checks())
