"""Approximation breakdown: where NTK, GIA and perturbation theory part from the self-consistent
solution (docs/theory.md section 5), over a gamma0 grid and optionally a depth grid.

Per (depth, gamma0, scheme, observable) a row says whether the approximation agrees with the
reference (``pass``) or is refuted (``fail``): these rows describe and are not gating. Per
(depth, scheme) a summary row gives the smallest refuted gamma0; it gates the run only when an
expected breakdown interval is given (``expect``), and passes when the found value lies in it.
With ``against="networks"`` the reference is the networks' N -> infinity extrapolation (the
convergence statistic) instead of the dmft solution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..frame import CheckResult, Verdict, frame, verdict_row
from ..metrics import observable, rel_error
from ..spec import ProblemSpec
from ..stats import Z_DEFAULT, decide
from .common import Unavailable, base_row, ensembles, expand_observables, theory, theory_stderr
from .convergence import compare
from .fields import typed_fields

SCHEMES = ("ntk", "gia", "perturbative")


@dataclass(frozen=True)
class Breakdown:
    """Smallest gamma0 at which each approximation is refuted (see module docstring).

    expect: {scheme: (lo, hi)}: the breakdown gamma0 must lie in [lo, hi]; ``hi = inf`` allows
    "never within the grid". Schemes absent from ``expect`` are reported, not gated.
    """

    problem: ProblemSpec
    gamma0s: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5)
    depths: tuple[int, ...] = ()
    schemes: tuple[str, ...] = SCHEMES
    reference: str = "dmft"
    observables: tuple[str, ...] = ("loss", "ntk")
    tolerance: float = 0.02
    z: float = Z_DEFAULT
    expect: dict = field(default_factory=dict)
    against: str = "theory"
    widths: tuple[int, ...] = (128, 256, 512, 1024)
    seeds: int = 64
    solver_options: dict = field(default_factory=dict)
    name: str = "breakdown"

    def __post_init__(self) -> None:
        typed_fields(self)  # types and bounds: gamma0s >= 0, depths >= 1, tolerance > 0, ...
        if not self.gamma0s:
            raise ValueError("gamma0s: need at least one gamma0, got []")
        object.__setattr__(self, "gamma0s", tuple(sorted(self.gamma0s)))
        valid = list(SCHEMES) + ["dmft"]
        bad = [s for s in self.schemes if s not in valid]
        if bad or not self.schemes:
            raise ValueError(f"schemes: unknown {bad}; valid values are {valid}" if bad else
                             f"schemes: need at least one scheme of {valid}")
        if self.reference not in valid:
            raise ValueError(f"reference: unknown value {self.reference!r}; valid values are {valid}")
        if self.against not in ("theory", "networks"):
            raise ValueError(f"against: unknown value {self.against!r}; valid values are ['theory', 'networks']")
        expect = {}
        for s, iv in self.expect.items():
            if s not in self.schemes or not isinstance(iv, (list, tuple)) or len(iv) != 2 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in iv):
                raise ValueError(f"expect: {s!r} must be one of the schemes {list(self.schemes)} with an "
                                 f"interval [lo, hi] of two numbers, got {iv!r}")
            expect[s] = (float(iv[0]), float(iv[1]))
        object.__setattr__(self, "expect", expect)
        expand_observables(self.observables, self.problem.depth)

    def jobs(self, ctx) -> list:
        """Every solve (reference and schemes) and, against networks, every ensemble of the grid."""
        out = []
        for depth in self.depths or (self.problem.depth,):
            for g0 in self.gamma0s:
                problem = self.problem.replace(depth=depth, gamma0=g0).build()
                schemes = self.schemes if self.against == "networks" else (self.reference, *self.schemes)
                out += [ctx.theory_job(problem, s, **self.solver_options) for s in schemes]
                if self.against == "networks":
                    out += [ctx.network_job(problem, w, self.seeds) for w in self.widths]
        return out

    def statistics(self) -> tuple[str, ...]:
        """The ``statistic`` values of this check's verdict rows."""
        per = "extrapolated_residual" if self.against == "networks" else "rel_error_vs_" + self.reference
        return (per, "breakdown_gamma0")

    def run(self, ctx) -> CheckResult:
        depths = self.depths or (self.problem.depth,)
        parts, summary = [], []
        bar = ctx.bar(len(depths) * len(self.gamma0s), f"{self.name}: gamma0 grid")
        for depth in depths:
            first = {s: None for s in self.schemes}
            gaps = {s: [] for s in self.schemes}  # (gamma0, Unavailable) before the first refutation
            for g0 in self.gamma0s:
                spec = self.problem.replace(depth=depth, gamma0=g0)
                res, missing = self._one(ctx, spec)
                parts.append(res)
                for s in self.schemes:
                    if first[s] is not None:
                        continue
                    if s in missing:
                        gaps[s].append((g0, missing[s]))
                        continue
                    v = res.verdicts[res.verdicts["scheme"] == s]["verdict"]
                    if (v == Verdict.FAIL.value).any():
                        first[s] = g0
                bar.update()
            summary += [self._summary(depth, s, first[s], gaps[s]) for s in self.schemes]
        bar.close()
        out = CheckResult.concat(parts)
        out.verdicts = frame("verdicts", out.verdicts.to_dict("records") + summary)
        return out

    def _bases(self, spec, obs, schemes, statistic) -> list[dict]:
        return [dict(base_row(self.name, spec, n, l, s), statistic=statistic, tolerance=self.tolerance,
                     gating=False) for s in schemes for n, l in obs]

    def _one(self, ctx, spec) -> tuple[CheckResult, dict[str, Unavailable]]:
        """Rows of one (depth, gamma0) point and the schemes that had no answer there."""
        problem = spec.build()
        obs = expand_observables(self.observables, spec.depth)
        if self.against == "networks":
            return self._one_networks(ctx, spec, problem, obs)
        stat = "rel_error_vs_" + self.reference
        try:
            ref = theory(ctx, problem, self.reference, **self.solver_options)
        except Unavailable as exc:
            return CheckResult(frame("verdicts", exc.rows(self._bases(spec, obs, self.schemes, stat)))), \
                {s: exc for s in self.schemes}
        rows, meas, missing = [], [], {}
        for s in self.schemes:
            try:
                sol = theory(ctx, problem, s, **self.solver_options)
            except Unavailable as exc:
                rows += exc.rows(self._bases(spec, obs, (s,), stat))
                missing[s] = exc
                continue
            for name, layer in obs:
                row, m = self._versus(spec, problem, ref, sol, s, name, layer)
                rows.append(row)
                meas.append(m)
        return CheckResult(frame("verdicts", rows), frame("measurements", meas)), missing

    def _one_networks(self, ctx, spec, problem, obs) -> tuple[CheckResult, dict[str, Unavailable]]:
        stat = "extrapolated_residual"
        try:
            nets = ensembles(ctx, problem, self.widths, self.seeds, self.name)
        except Unavailable as exc:
            return CheckResult(frame("verdicts", exc.rows(self._bases(spec, obs, self.schemes, stat)))), \
                {s: exc for s in self.schemes}
        parts, missing = [], {}
        for s in self.schemes:
            try:
                sol = theory(ctx, problem, s, **self.solver_options)
            except Unavailable as exc:
                parts.append(CheckResult(frame("verdicts", exc.rows(self._bases(spec, obs, (s,), stat)))))
                missing[s] = exc
                continue
            for n, l in obs:
                res = compare(self.name, spec, problem, sol, nets, n, l, scheme=s, tolerance=self.tolerance,
                              z=self.z, seed=ctx.seed, rate=False, plots=False)
                res.verdicts["gating"] = False
                parts.append(res)
        return CheckResult.concat(parts), missing

    def _versus(self, spec, problem, ref, sol, scheme, name, layer) -> tuple[dict, dict]:
        """The verdict row and the measurement of ``scheme`` against the reference solution."""
        base = dict(base_row(self.name, spec, name, layer, scheme), gating=False)
        r = observable(ref, name, problem, layer)
        err = float(rel_error(observable(sol, name, problem, layer), r))
        se = 0.0
        for x in (ref, sol):
            e = theory_stderr(x, name, layer, r)
            se = float(np.hypot(se, 0.0 if e is None else float(e.norm() / r.norm())))
        v, why = decide(err, se, self.tolerance, self.z, what=f"relative error vs {self.reference}")
        row = verdict_row(**base, statistic="rel_error_vs_" + self.reference, estimate=err, stderr=se,
                          tolerance=self.tolerance, verdict=v,
                          reason=why.replace("within tolerance", "agrees").replace(
                              "significantly non-zero and beyond tolerance", "refuted"))
        meas = {k: v for k, v in base.items() if k != "gating"} | dict(
            source=self.reference, statistic="rel_error", value=err, stderr=se)
        return row, meas

    def _summary(self, depth, scheme, g0, gaps=()):
        found = "never refuted on the grid" if g0 is None else f"first refuted at gamma0 = {g0:g}"
        base = dict(check=self.name, observable=",".join(self.observables), scheme=scheme, depth=depth,
                    statistic="breakdown_gamma0", estimate=np.inf if g0 is None else g0,
                    tolerance=self.tolerance)
        expected = scheme in self.expect
        if gaps:  # no answer at some gamma0 below the first refutation: the breakdown may lie there
            failed = any(exc.verdict is Verdict.FAIL for _, exc in gaps)
            where = ", ".join(f"{g:g}" for g, _ in gaps)
            return verdict_row(**base, verdict=Verdict.FAIL if failed else Verdict.INCONCLUSIVE,
                               gating=expected or failed,
                               reason=f"{found}, but no answer at gamma0 = {where}: {gaps[0][1].reason}")
        if not expected:
            return verdict_row(**base, verdict=Verdict.PASS, gating=False, reason=f"{found} (reported, no expectation)")
        lo, hi = (float(v) for v in self.expect[scheme])
        g = np.inf if g0 is None else g0
        ok = lo <= g <= hi
        return verdict_row(**base, verdict=Verdict.PASS if ok else Verdict.FAIL,
                           reason=f"{found}; expected in [{lo:g}, {hi:g}]")
