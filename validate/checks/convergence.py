"""Convergence of finite-width networks to the theory (DESIGN.md "Statistics, not eyeballing").

For each observable: per-seed relative Frobenius error and kernel alignment against the theory
at every width; a log-log fit of the per-seed errors against width (rate consistent with
N^{-1/2}, docs/theory.md section 6); and the ensemble mean extrapolated linearly in 1/N to
N -> infinity, whose residual must be consistent with zero (within the tolerance) given the
seed noise and the theory's own Monte Carlo error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..frame import CheckResult, Verdict, frame, verdict_row
from ..metrics import TIME_SERIES, alignment, observable, rel_error
from ..spec import ProblemSpec
from ..stats import Z_DEFAULT, decide, extrapolated_residual, loglog_rate, mean_se
from .fields import typed_fields
from .common import (Unavailable, base_row, ensemble, ensembles, expand_observables, steps_of, theory,
                     theory_on_grid, theory_stderr)

KERNEL_PLOTS = {"ntk": "ntk_final", "phi": "phi_final", "g": "g_final"}


@dataclass(frozen=True)
class Convergence:
    """Networks of growing width converge to ``scheme``'s solution of ``problem``.

    observables: names from ``validate.metrics.OBSERVABLES``; ``"phi"`` means every layer,
    ``"phi:0"`` one layer. tolerance: largest acceptable relative residual at N -> infinity.
    rate_tolerance: slack on the N^{-1/2} rate (slopes in [-1 - tol, -1/2 + tol] are consistent).
    solver_options: keywords for ``theory.solve`` (e.g. Monte Carlo samples for nonlinear nets).
    """

    problem: ProblemSpec
    widths: tuple[int, ...] = (128, 256, 512, 1024)
    seeds: int = 64
    observables: tuple[str, ...] = ("loss", "ntk", "phi", "g")
    scheme: str = "dmft"
    tolerance: float = 0.03
    rate_tolerance: float = 0.2
    z: float = Z_DEFAULT
    min_widths: int = 2
    min_seeds: int = 3
    solver_options: dict = field(default_factory=dict)
    name: str = "convergence"

    def __post_init__(self) -> None:
        typed_fields(self)  # types and bounds: widths >= 1, seeds >= 1, tolerance > 0, ...
        if not self.widths:
            raise ValueError("widths: need at least one width, got []")
        object.__setattr__(self, "widths", tuple(sorted(self.widths)))
        expand_observables(self.observables, self.problem.depth)

    def _two_time(self) -> bool:
        return any(o.partition(":")[0].endswith("_2t") for o in self.observables)

    def jobs(self, ctx) -> list:
        """The theory solve and the ensemble at every width (``validate.plan``)."""
        problem = self.problem.build()
        return [ctx.theory_job(problem, self.scheme, **self.solver_options),
                *(ctx.network_job(problem, w, self.seeds, two_time=self._two_time()) for w in self.widths)]

    def statistics(self) -> tuple[str, ...]:
        """The ``statistic`` values of this check's verdict rows."""
        return ("rate", "extrapolated_residual")

    def run(self, ctx) -> CheckResult:
        problem = self.problem.build()
        obs = expand_observables(self.observables, problem.depth)
        try:
            sol = theory(ctx, problem, self.scheme, **self.solver_options)
            nets = ensembles(ctx, problem, self.widths, self.seeds, self.name, two_time=self._two_time())
        except Unavailable as exc:
            return CheckResult(frame("verdicts", exc.rows(
                [dict(base_row(self.name, self.problem, name, layer, self.scheme),
                      statistic="extrapolated_residual", tolerance=self.tolerance) for name, layer in obs])))
        parts = [compare(self.name, self.problem, problem, sol, nets, name, layer, scheme=self.scheme,
                         tolerance=self.tolerance, rate_tolerance=self.rate_tolerance, z=self.z,
                         min_widths=self.min_widths, min_seeds=self.min_seeds, seed=ctx.seed)
                 for name, layer in obs]
        return CheckResult.concat(parts)


def compare(check, spec, problem, sol, nets, name, layer, *, scheme, tolerance, rate_tolerance=0.2,
            z=Z_DEFAULT, min_widths=2, min_seeds=3, seed=0, rate=True, plots=True) -> CheckResult:
    """All rows of one observable: measurements, the rate fit and the extrapolated residual."""
    base = base_row(check, spec, name, layer, scheme)
    ref_full = ensemble_ref = None
    samples, used, meas, curves, kern = {}, [], [], [], []
    dropped = 0
    for w, net in nets.items():
        x, nd = ensemble(net, name, problem, layer)
        dropped += nd
        ref = theory_on_grid(sol, name, problem, layer, net)
        ref_full = ref if ref_full is None else ref_full
        err = rel_error(x, ref)
        ali = alignment(x, ref)
        for s in range(len(err)):
            for stat, v in (("rel_error", err[s]), ("alignment", ali[s])):
                meas.append(dict(base, source="network", width=w, seed=s, statistic=stat, value=float(v)))
        if len(x) >= min_seeds:
            samples[w] = x
            used.append(w)
        if plots and name in TIME_SERIES:
            m = x.mean(0)
            se = x.std(0) / max(len(x), 1) ** 0.5 if len(x) > 1 else torch.full_like(m, np.nan)
            ts = sol.t[steps_of(net, name, problem.steps)]
            for k, tt in enumerate(ts.tolist()):
                curves.append(dict(base, source="network", width=w, time=tt, value=float(m[k]),
                                   stderr=float(se[k])))
        ensemble_ref = (w, x)
    if plots and name in TIME_SERIES:
        for k, tt in enumerate(sol.t.tolist()):
            curves.append(dict(base, source="theory", time=tt, value=float(observable(sol, name, problem, layer)[k])))
    if plots and name in KERNEL_PLOTS and ensemble_ref is not None and len(ensemble_ref[1]):
        w, x = ensemble_ref
        fin = KERNEL_PLOTS[name]
        pairs = (("theory", np.nan, observable(sol, fin, problem, layer)),
                 ("network", w, _final(x, name)))
        for src, ww, mat in pairs:
            m = mat.numpy()
            ii, jj = np.indices(m.shape)
            kern += [dict(base, observable=fin, source=src, width=ww, i=int(i), j=int(j), value=float(v))
                     for i, j, v in zip(ii.ravel(), jj.ravel(), m.ravel())]
    rows = []
    note = f"; {dropped} diverged seed(s) dropped" if dropped else ""
    if len(used) < min_widths:
        reason = (f"too few widths with >= {min_seeds} usable seeds ({len(used)} < {min_widths})" + note)
        rows.append(verdict_row(**base, statistic="extrapolated_residual", tolerance=tolerance,
                                verdict=Verdict.INCONCLUSIVE, reason=reason))
    else:
        ws = np.array(used, dtype=float)
        if rate:
            e = [rel_error(samples[w], ref_full).numpy() for w in used]
            fit = loglog_rate(np.repeat(ws, [len(v) for v in e]), np.concatenate(e))
            v, r = _rate_verdict(fit, rate_tolerance, z)
            # an undecided rate does not gate (the residual decides); a plateau does
            rows.append(verdict_row(**base, statistic="rate", estimate=fit.slope, stderr=fit.stderr,
                                    tolerance=rate_tolerance, verdict=v, reason=r + note,
                                    gating=v is not Verdict.INCONCLUSIVE))
            meas += [dict(base, source="fit", statistic="loglog_slope", value=fit.slope, stderr=fit.stderr),
                     dict(base, source="fit", statistic="loglog_intercept", value=fit.intercept)]
        res = extrapolated_residual([samples[w] for w in used], used, ref_full,
                                    theory_stderr(sol, name, layer, ref_full), z=z)
        v, r = decide(res.estimate, res.stderr, tolerance, z, what="N->inf residual",
                      bounds=(res.lo, res.hi))
        rows.append(verdict_row(**base, width=float("inf"), statistic="extrapolated_residual",
                                estimate=res.estimate, stderr=res.stderr, tolerance=tolerance,
                                verdict=v, reason=f"{r} (widths {used[0]}..{used[-1]}){note}"))
        meas.append(dict(base, source="fit", width=float("inf"), statistic="residual_raw",
                         value=res.raw, stderr=res.noise))
    return CheckResult(frame("verdicts", rows), frame("measurements", meas),
                       frame("curves", curves), frame("kernels", kern))


def _final(x: torch.Tensor, name: str) -> torch.Tensor:
    """Ensemble-mean final-time kernel from per-seed equal-time kernels (S, T, P, P)."""
    return x.mean(0)[-1]


def _rate_verdict(fit, tol, z):
    lo_ok, hi_ok = -1.0 - tol, -0.5 + tol
    txt = f"log-log slope {fit.slope:.3f} ± {fit.stderr:.2g} vs N^-1/2 (consistent range [{lo_ok:g}, {hi_ok:g}])"
    if not np.isfinite(fit.stderr):
        return Verdict.INCONCLUSIVE, f"{txt}: too few points to fit a rate"
    if fit.slope - z * fit.stderr > hi_ok:
        return Verdict.FAIL, f"{txt}: errors shrink significantly slower than N^-1/2 (a plateau)"
    if fit.slope + z * fit.stderr <= hi_ok and fit.slope - z * fit.stderr >= lo_ok:
        return Verdict.PASS, f"{txt}: consistent"
    return Verdict.INCONCLUSIVE, f"{txt}: the fit cannot decide"
