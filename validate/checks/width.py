"""Width independence at fixed gamma0, with the contrast at fixed gamma = gamma0 sqrt(N).

At fixed gamma0 the DMFT limit does not depend on N (docs/theory.md section 1, 6), so scalar
observables at the final time agree across widths within a relative tolerance: an equivalence
test on the difference of ensemble means (with standard errors) against the widest network.
The contrast keeps ``gamma = gamma0 sqrt(N_min)`` fixed instead (so wider networks are lazier):
the same test must refute width independence there (significant and beyond the tolerance), or
the test had no power; then the verdict is inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frame import CheckResult, Verdict, frame, verdict_row
from ..spec import ProblemSpec
from ..stats import Z_DEFAULT, decide, mean_se, relative_difference
from .common import Unavailable, attempt, ensemble
from .fields import typed_fields

SCALARS = ("loss", "test_loss", "test_error", "alignment_yy")


@dataclass(frozen=True)
class WidthIndependence:
    """Final-time scalar observables agree across ``widths`` at fixed gamma0 (module docstring)."""

    problem: ProblemSpec
    widths: tuple[int, ...] = (128, 512)
    seeds: int = 32
    observables: tuple[str, ...] = ("loss",)
    tolerance: float = 0.1
    z: float = Z_DEFAULT
    contrast: bool = True
    name: str = "width_independence"
    _allowed = SCALARS  # class attribute (not a field): the observables this check can read

    def __post_init__(self) -> None:
        typed_fields(self)  # types and bounds: widths >= 1, seeds >= 1, tolerance > 0, ...
        if len(self.widths) < 2:
            raise ValueError(f"widths: need at least two widths, got {list(self.widths)!r}")
        object.__setattr__(self, "widths", tuple(sorted(self.widths)))
        bad = [o for o in self.observables if o not in self._allowed]
        if bad:
            raise ValueError(f"observables: {bad} not allowed here; valid values are {list(self._allowed)}")

    def statistics(self) -> tuple[str, ...]:
        """The ``statistic`` values of this check's verdict rows."""
        return ("rel_diff_vs_widest",) + (("rel_diff_fixed_gamma", "contrast_shown") if self.contrast else ())

    def _time(self) -> float:
        """The time of the final observation (t = steps * eta)."""
        return self.problem.steps * self.problem.eta

    def _job(self, ctx, spec, width):
        """The ensemble job of ``spec`` at ``width``."""
        return ctx.network_job(spec.build(), width, self.seeds)

    def _final(self, ctx, spec, width):
        nets = attempt(f"training (width {width}, {self.seeds} seeds)", ctx.result, self._job(ctx, spec, width))
        return {o: ensemble(nets, o, nets.problem, None)[0][:, -1].numpy() for o in self.observables}

    def _contrast_spec(self, width):
        """The problem at fixed gamma = gamma0 sqrt(N_min) for width ``width``."""
        return self.problem.replace(gamma0=self.problem.gamma0 * (self.widths[0] / width) ** 0.5)

    def _points(self) -> list:
        """(spec, width) of every ensemble: each width at gamma0, then the contrast's two."""
        pts = [(self.problem, w) for w in self.widths]
        if self.contrast:
            pts += [(self._contrast_spec(w), w) for w in (self.widths[0], self.widths[-1])]
        return pts

    def jobs(self, ctx) -> list:
        return [self._job(ctx, spec, w) for spec, w in self._points()]

    def _ensembles(self, ctx) -> tuple[dict, dict]:
        """Final values at fixed gamma0 per width, and (contrast) at fixed gamma for the extremes."""
        fixed = {w: self._final(ctx, self.problem, w) for w in self.widths}
        g_fixed = {}
        if self.contrast:
            for w in (self.widths[0], self.widths[-1]):
                g_fixed[w] = self._final(ctx, self._contrast_spec(w), w)
        return fixed, g_fixed

    def run(self, ctx) -> CheckResult:
        rows, meas, contrasts = [], [], []
        top = self.widths[-1]
        try:
            fixed, g_fixed = self._ensembles(ctx)
        except Unavailable as exc:
            return CheckResult(frame("verdicts", exc.rows([
                dict(check=self.name, observable=o, scheme="networks", gamma0=self.problem.gamma0,
                     depth=self.problem.depth, time=self._time(), width=w, statistic="rel_diff_vs_widest",
                     tolerance=self.tolerance) for o in self.observables for w in self.widths[:-1]])))
        for o in self.observables:
            base = dict(check=self.name, observable=o, scheme="networks", gamma0=self.problem.gamma0,
                        depth=self.problem.depth, time=self._time())
            for w, vals in fixed.items():
                m, se = mean_se(vals[o])
                meas.append(dict(base, source="fixed_gamma0", width=w, statistic="final_mean", value=m, stderr=se))
            for w in self.widths[:-1]:
                d, se = relative_difference(fixed[w][o], fixed[top][o])
                v, why = decide(d, se, self.tolerance, self.z, what=f"relative difference N={w} vs N={top}",
                                signed=True)
                rows.append(verdict_row(**base, width=w, statistic="rel_diff_vs_widest", estimate=d,
                                        stderr=se, tolerance=self.tolerance, verdict=v, reason=why))
            if self.contrast:
                lo = self.widths[0]
                d, se = relative_difference(g_fixed[lo][o], g_fixed[top][o])
                for w, vals in g_fixed.items():
                    m, s = mean_se(vals[o])
                    meas.append(dict(base, source="fixed_gamma", width=w, statistic="final_mean", value=m, stderr=s))
                shown = decide(d, se, self.tolerance, self.z, signed=True)[0] is Verdict.FAIL
                why = (f"contrast at fixed gamma = gamma0 sqrt({lo}): relative difference N={lo} vs N={top} "
                       f"{d:.3g} ± {se:.2g} vs tolerance {self.tolerance:g}")
                rows.append(verdict_row(**dict(base, scheme="contrast_fixed_gamma"), width=lo,
                                        statistic="rel_diff_fixed_gamma", estimate=d, stderr=se,
                                        tolerance=self.tolerance, gating=False,
                                        verdict=Verdict.PASS if shown else Verdict.INCONCLUSIVE,
                                        reason=why + (": widths differ, as they should" if shown else
                                                      ": no significant difference for this observable")))
                contrasts.append((o, shown))
        if self.contrast:
            shown = [o for o, ok in contrasts if ok]
            rows.append(verdict_row(
                check=self.name, observable=",".join(self.observables), scheme="contrast_fixed_gamma",
                gamma0=self.problem.gamma0, depth=self.problem.depth, width=self.widths[0],
                statistic="contrast_shown", estimate=len(shown), tolerance=self.tolerance,
                verdict=Verdict.PASS if shown else Verdict.INCONCLUSIVE,
                reason=(f"at fixed gamma the widths differ in {len(shown)} of {len(contrasts)} observables "
                        f"{shown}: the test can see width dependence"
                        if shown else f"at fixed gamma 0 of {len(contrasts)} observables differ across widths: the test "
                        "showed no power here (use a wider width range)")))
        return CheckResult(frame("verdicts", rows), frame("measurements", meas))
