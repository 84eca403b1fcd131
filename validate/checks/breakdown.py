"""Approximation breakdown: where NTK, GIA and perturbation theory part from the self-consistent
solution (THEORY.md section 5), over a gamma0 grid and optionally a depth grid.

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
from .common import expand_observables, theory_stderr
from .convergence import compare

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
        if not self.gamma0s or any(g < 0 for g in self.gamma0s):
            raise ValueError(f"gamma0s: need non-negative values, got {self.gamma0s!r}")
        object.__setattr__(self, "gamma0s", tuple(sorted(float(g) for g in self.gamma0s)))
        bad = [s for s in self.schemes if s not in SCHEMES + ("dmft",)]
        if bad:
            raise ValueError(f"schemes: unknown {bad}; valid values are {list(SCHEMES) + ['dmft']}")
        if self.against not in ("theory", "networks"):
            raise ValueError(f"against: unknown value {self.against!r}; valid values are ['theory', 'networks']")
        for s, iv in self.expect.items():
            if s not in self.schemes or len(iv) != 2:
                raise ValueError(f"expect: {s!r} must be one of the schemes with an interval [lo, hi]")
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

    def run(self, ctx) -> CheckResult:
        depths = self.depths or (self.problem.depth,)
        parts, summary = [], []
        bar = ctx.bar(len(depths) * len(self.gamma0s), f"{self.name}: gamma0 grid")
        for depth in depths:
            first = {s: None for s in self.schemes}
            for g0 in self.gamma0s:
                spec = self.problem.replace(depth=depth, gamma0=g0)
                res = self._one(ctx, spec)
                parts.append(res)
                for s in self.schemes:
                    v = res.verdicts[res.verdicts["scheme"] == s]["verdict"]
                    if first[s] is None and (v == Verdict.FAIL.value).any():
                        first[s] = g0
                bar.update()
            summary += [self._summary(depth, s, first[s]) for s in self.schemes]
        bar.close()
        out = CheckResult.concat(parts)
        out.verdicts = frame("verdicts", out.verdicts.to_dict("records") + summary)
        return out

    def _one(self, ctx, spec) -> CheckResult:
        problem = spec.build()
        obs = expand_observables(self.observables, spec.depth)
        if self.against == "networks":
            nets = {w: ctx.networks(problem, w, self.seeds) for w in self.widths}
            sols = {s: ctx.theory(problem, s, **self.solver_options) for s in self.schemes}
            parts = [compare(self.name, spec, problem, sols[s], nets, n, l, scheme=s, tolerance=self.tolerance,
                             z=self.z, seed=ctx.seed, rate=False, plots=False)
                     for s in self.schemes for n, l in obs]
            res = CheckResult.concat(parts)
            res.verdicts["gating"] = False
            return res
        ref = ctx.theory(problem, self.reference, **self.solver_options)
        rows, meas = [], []
        for s in self.schemes:
            sol = ctx.theory(problem, s, **self.solver_options)
            for name, layer in obs:
                base = dict(check=self.name, observable=name, scheme=s, gamma0=spec.gamma0,
                            depth=spec.depth, layer=np.nan if layer is None else layer, gating=False)
                if not (ref.ok and sol.ok):
                    bad = self.reference if not ref.ok else s
                    rows.append(verdict_row(**base, statistic="rel_error_vs_" + self.reference,
                                            tolerance=self.tolerance, verdict=Verdict.INCONCLUSIVE,
                                            reason=f"{bad} solve status {(ref if not ref.ok else sol).status.value}"))
                    continue
                r = observable(ref, name, problem, layer)
                err = float(rel_error(observable(sol, name, problem, layer), r))
                se = 0.0
                for x in (ref, sol):
                    e = theory_stderr(x, name, layer, r)
                    se = float(np.hypot(se, 0.0 if e is None else float(e.norm() / r.norm())))
                v, why = decide(err, se, self.tolerance, self.z, what=f"relative error vs {self.reference}")
                rows.append(verdict_row(**base, statistic="rel_error_vs_" + self.reference, estimate=err,
                                        stderr=se, tolerance=self.tolerance, verdict=v,
                                        reason=why.replace("within tolerance", "agrees").replace(
                                            "significantly non-zero and beyond tolerance", "refuted")))
                meas.append({k: v for k, v in base.items() if k != "gating"} | dict(
                    source=self.reference, statistic="rel_error", value=err, stderr=se))
        return CheckResult(frame("verdicts", rows), frame("measurements", meas))

    def _summary(self, depth, scheme, g0):
        found = "never refuted on the grid" if g0 is None else f"first refuted at gamma0 = {g0:g}"
        base = dict(check=self.name, observable=",".join(self.observables), scheme=scheme, depth=depth,
                    statistic="breakdown_gamma0", estimate=np.inf if g0 is None else g0,
                    tolerance=self.tolerance)
        if scheme not in self.expect:
            return verdict_row(**base, verdict=Verdict.PASS, gating=False, reason=f"{found} (reported, no expectation)")
        lo, hi = (float(v) for v in self.expect[scheme])
        g = np.inf if g0 is None else g0
        ok = lo <= g <= hi
        return verdict_row(**base, verdict=Verdict.PASS if ok else Verdict.FAIL,
                           reason=f"{found}; expected in [{lo:g}, {hi:g}]")
