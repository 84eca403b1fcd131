"""Sizes of the paper experiments (docs/theory.md section 7): ``smoke`` (tests), ``cpu`` (the whole
suite in < 60 min on a 2-core CPU), ``full`` (the paper's sizes, for ``--device cuda``).

The size is chosen at run time: the ``DMFT_PAPER_SIZE`` environment variable when set, else
``full`` on a CUDA device and ``cpu`` otherwise. Every reduction of ``cpu`` against ``full`` is
listed in :data:`REDUCTIONS` and printed in the report.
"""

from __future__ import annotations

import os
from dataclasses import KW_ONLY, dataclass

SIZES = ("smoke", "cpu", "full")
ENV = "DMFT_PAPER_SIZE"
DATA_ENV = "DMFT_CIFAR_ROOT"


@dataclass(frozen=True)
class Size:
    """One size of every experiment. Widths are network widths (CNN: channels); seeds per width."""

    _: KW_ONLY
    name: str
    # Fig. 1: tanh, L = 3, P = 10, D = 25, eta = 0.1
    f1_steps: int
    f1_samples: int
    f1_response_samples: int
    f1_widths: tuple[int, ...]
    f1_seeds: int
    f1_converge_from: int  # widths >= this enter the convergence verdict
    f1_density_samples: int
    # Fig. 2 / 3: deep linear, P = 20, D = 40, eta = 0.025
    lin_steps: int
    lin_depths: tuple[int, ...]
    lin_widths: tuple[int, ...]
    lin_seeds: int
    f3_gamma0s: tuple[float, ...]
    # Fig. 4: CNN
    cnn_widths: tuple[int, ...]
    cnn_gamma0s: tuple[float, ...]
    cnn_epochs: int
    cnn_seeds: int
    cnn_n_train: int | None  # None: the full training set
    cnn_n_test: int | None
    # Appendix: ReLU, L = 1, P = 25, D = 40
    app_steps: int
    app_eta: float
    app_samples: int
    app_widths: tuple[int, ...]
    app_seeds: int

    def __post_init__(self) -> None:
        if self.name not in SIZES:
            raise ValueError(f"name: unknown size {self.name!r}; valid values are {list(SIZES)}")


FULL = Size(
    name="full", f1_steps=100, f1_samples=8000, f1_response_samples=256,
    f1_widths=(2, 8, 32, 128, 500, 1000, 2000, 4000), f1_seeds=10, f1_converge_from=500,
    f1_density_samples=8000,
    lin_steps=100, lin_depths=(1, 2, 3, 4, 5), lin_widths=(250, 500, 1000, 2000), lin_seeds=16,
    f3_gamma0s=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
    cnn_widths=(250, 500), cnn_gamma0s=(1.0, 5.0, 10.0), cnn_epochs=30, cnn_seeds=3,
    cnn_n_train=None, cnn_n_test=None,
    app_steps=200, app_eta=0.075, app_samples=8000, app_widths=(250, 500, 1000, 2000), app_seeds=10,
)

CPU = Size(
    name="cpu", f1_steps=100, f1_samples=4000, f1_response_samples=64,
    f1_widths=(2, 8, 32, 128, 512, 1024, 2048), f1_seeds=10, f1_converge_from=512,
    f1_density_samples=4000,
    lin_steps=100, lin_depths=(1, 2, 3, 4, 5), lin_widths=(256, 512, 1024), lin_seeds=8,
    f3_gamma0s=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
    cnn_widths=(128, 256), cnn_gamma0s=(1.0, 5.0, 10.0), cnn_epochs=60, cnn_seeds=8,
    cnn_n_train=None, cnn_n_test=None,
    app_steps=50, app_eta=0.3, app_samples=1000, app_widths=(256, 512, 1024, 2048), app_seeds=8,
)

SMOKE = Size(
    name="smoke", f1_steps=4, f1_samples=64, f1_response_samples=4,
    f1_widths=(2, 16, 64), f1_seeds=3, f1_converge_from=16, f1_density_samples=200,
    lin_steps=6, lin_depths=(1, 2), lin_widths=(16, 32), lin_seeds=3,
    f3_gamma0s=(0.25, 1.5),
    cnn_widths=(4, 8), cnn_gamma0s=(1.0, 5.0), cnn_epochs=1, cnn_seeds=2,
    cnn_n_train=32, cnn_n_test=16,
    app_steps=4, app_eta=0.3, app_samples=64, app_widths=(16, 32), app_seeds=3,
)

BY_NAME = {s.name: s for s in (SMOKE, CPU, FULL)}


def resolve(size: str | None, device: str = "cpu") -> Size:
    """The :class:`Size` named ``size``; None: ``$DMFT_PAPER_SIZE``, else by device."""
    name = size or os.environ.get(ENV) or ("full" if str(device).startswith("cuda") else "cpu")
    if name not in BY_NAME:
        raise ValueError(f"size: unknown value {name!r}; valid values are {list(SIZES)}")
    return BY_NAME[name]


def reductions(size: Size) -> list[str]:
    """Human-readable list of what ``size`` reduces relative to ``full`` (the paper's sizes)."""
    out = []
    for f in FULL.__dataclass_fields__:
        if f in ("_", "name"):
            continue
        a, b = getattr(size, f), getattr(FULL, f)
        if a != b:
            out.append(f"`{f}`: {a} (full: {b})")
    return out


def size_of_name(size: str | None, ctx) -> Size:
    """:func:`resolve` with the device of a validate ``Context``."""
    return resolve(size, getattr(ctx, "device", "cpu"))
