"""Width (channel) independence of CNNs at fixed gamma0 (docs/theory.md sections 1, 6; paper Fig. 4).

The same statistics as :class:`~validate.checks.width.WidthIndependence` (an equivalence test on
the relative difference of ensemble means against the widest network, then the contrast at
fixed ``gamma = gamma0 sqrt(N_min)``), for CNNs trained by ``simulate.cnn.train_cnn`` on a
two-class image set (``validate.cnn_spec.CNNSpec``). The widths are channel counts N. The contrast
applies as for MLPs: with ``lr_scaling = "mean_field"`` the learning rate eta gamma0^2 N is then
the same at every width, so wider CNNs are lazier.

Observables (per seed, over the non-diverged seeds): ``test_mse`` (alias ``test_loss``),
``test_error``, ``alignment`` (last-layer feature kernel vs y y^T on the probe points) and
``train_loss`` at the final evaluation; with a ``_mean`` suffix, their average over the
evaluations after step 0 (over training). Ensembles are memoised and disk-cached in the Context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cnn_spec import CNNSpec
from ..jobs import CNN_FIELDS, CNNTask
from .common import attempt
from .width import WidthIndependence

ALIASES = {"test_loss": "test_mse"}
CNN_SCALARS = tuple(n + suffix for suffix in ("", "_mean") for n in (*CNN_FIELDS, *ALIASES))


def cnn_job(ctx, spec: CNNSpec, width: int, seeds: int) -> CNNTask:
    """The job training ``seeds`` CNNs with ``width`` channels on ``spec`` (run seed ``ctx.seed``)."""
    return CNNTask(spec, int(width), int(seeds), int(ctx.seed), str(ctx.device))


def cnn_runs(ctx, spec: CNNSpec, width: int, seeds: int) -> dict[str, torch.Tensor]:
    """The (S, E) curves ``CNN_FIELDS`` and ``diverged`` (S,) of ``seeds`` CNNs with ``width`` channels
    (memoised and disk-cached by the Context, like ``Context.networks`` for MLPs)."""
    return ctx.result(cnn_job(ctx, spec, width, seeds))


def cnn_scalar(runs: dict[str, torch.Tensor], name: str) -> np.ndarray:
    """Per-seed values of observable ``name`` (module docstring), diverged / non-finite seeds dropped."""
    base = name.removesuffix("_mean")
    curve = runs[ALIASES.get(base, base)].to(torch.float64)
    x = curve[:, 1:].mean(1) if name.endswith("_mean") and curve.shape[1] > 1 else curve[:, -1]
    ok = ~torch.as_tensor(runs["diverged"], dtype=torch.bool) & torch.isfinite(x)
    return x[ok].numpy()


@dataclass(frozen=True)
class CNNWidthIndependence(WidthIndependence):
    """CNN observables agree across channel counts ``widths`` at fixed gamma0 (module docstring)."""

    problem: CNNSpec = CNNSpec()
    widths: tuple[int, ...] = (16, 64)
    seeds: int = 8
    observables: tuple[str, ...] = ("test_mse",)
    name: str = "cnn_width_independence"
    _allowed = CNN_SCALARS

    def __post_init__(self) -> None:
        if not isinstance(self.problem, CNNSpec):
            raise ValueError(f"problem: must be a validate.cnn_spec.CNNSpec, got {type(self.problem).__name__}")
        if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths: channel counts must be integers >= 1, got {self.widths!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 2:
            raise ValueError(f"seeds: need an integer >= 2 (standard errors), got {self.seeds!r}")
        super().__post_init__()

    def _time(self) -> float:
        """Final evaluation time, in epochs."""
        return float(self.problem.epochs)

    def _job(self, ctx, spec, width):
        return cnn_job(ctx, spec, width, self.seeds)

    def _final(self, ctx, spec, width):
        runs = attempt(f"CNN training ({width} channels, {self.seeds} seeds)", ctx.result, self._job(ctx, spec, width))
        return {o: cnn_scalar(runs, o) for o in self.observables}
