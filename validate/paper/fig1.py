"""Fig. 1 of the paper: a deep tanh network (L = 3, P = 10 Gaussian points in D = 25, eta = 0.1,
gamma0 = 1) against its DMFT, with the lazy limit for contrast (docs/theory.md section 7).

Produces: loss curves (theory rich and lazy, networks by width), final kernels (via the
convergence check), per-layer alignment of network and theory kernels against width (2 ..
2000+, 10 seeds), preactivation densities at the start and the end (theory samples vs network
neurons), and verdicts: convergence (extrapolated residual and N^-1/2 rate), alignment from
N ~ 500 on, and the densities' Kolmogorov-Smirnov test.

Densities are stored in the ``curves`` table with ``observable = "h_density_t0"`` or
``"h_density_tT"``; there the ``time`` column holds the preactivation value (bin centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ..checks import Convergence
from ..frame import CheckResult, Verdict, frame, verdict_row
from ..spec import ProblemSpec
from ..stats import decide, mean_se
from .common import not_available_row, seed_alignments, size_of, sub_context, try_theory
from .densities import common_edges, histogram, network_fields, theory_fields

ALIGN_TOLERANCE = 0.02  # 1 - alignment at N ~ 500 ("near 1")
KS_ALPHA = 1e-3  # densities differ when the KS p-value is below this


def problem_spec(steps: int) -> ProblemSpec:
    return ProblemSpec(n_train=10, n_test=0, input_dim=25, depth=3, activation="tanh",
                       gamma0=1.0, eta=0.1, steps=steps)


@dataclass(frozen=True)
class PaperFig1:
    """Fig. 1 (module docstring). ``size``: "smoke", "cpu", "full" or None (by device / env)."""

    size: str | None = None
    name: str = "fig1/tanh-L3"

    def _setup(self, ctx):
        """(size, spec, problem, the sparse-kernel context, Monte Carlo options)."""
        sz = size_of(self, ctx)
        spec = problem_spec(sz.f1_steps)
        sub = sub_context(ctx, sz.f1_steps, every=max(1, sz.f1_steps // 10))
        return sz, spec, spec.build(), sub, dict(samples=sz.f1_samples, response_samples=sz.f1_response_samples)

    def _convergence(self, sz, spec, opts) -> Convergence:
        """The convergence verdict on the wide networks (shares the memoised networks and solution)."""
        wide = tuple(w for w in sz.f1_widths if w >= sz.f1_converge_from)
        return Convergence(name=self.name + "/convergence", problem=spec, widths=wide, seeds=sz.f1_seeds,
                           observables=("loss", "ntk", "phi", "g"), tolerance=0.05, solver_options=opts)

    def jobs(self, ctx) -> list:
        """Every solve and ensemble :meth:`run` reads, so a run plans them in one batch (``validate.plan``)."""
        sz, spec, problem, sub, opts = self._setup(ctx)
        return [sub.theory_job(problem, "dmft", **opts), sub.theory_job(problem, "ntk"),
                *self._convergence(sz, spec, opts).jobs(sub),
                *(sub.network_job(problem, w, sz.f1_seeds) for w in sz.f1_widths)]

    def run(self, ctx) -> CheckResult:
        sz, spec, problem, sub, opts = self._setup(ctx)
        rows, meas, curves = [], [], []
        base = dict(check=self.name, gamma0=spec.gamma0, depth=spec.depth)
        sol, why = try_theory(sub, problem, "dmft", **opts)
        lazy = sub.theory(problem, "ntk")
        for k, tt in enumerate(lazy.t.tolist()):
            curves.append(dict(base, observable="loss", source="theory_lazy", time=tt, value=float(lazy.loss[k])))
        if why is not None:
            rows.append(not_available_row(self.name, "all", "dmft", why, gamma0=spec.gamma0, depth=spec.depth))
            return CheckResult(frame("verdicts", rows), curves=frame("curves", curves))
        conv = self._convergence(sz, spec, opts).run(sub)
        # alignment against width, every width 2 .. 2000+
        for w in sz.f1_widths:
            nets = sub.networks(problem, w, sz.f1_seeds)
            for name, layers in (("phi", range(spec.depth)), ("g", range(spec.depth)), ("ntk", [None])):
                for layer in layers:
                    a = seed_alignments(nets, sol, name, layer)
                    for s, v in enumerate(a):
                        meas.append(dict(base, observable=f"{name}_final", scheme="dmft", source="network",
                                         width=w, layer=np.nan if layer is None else layer, seed=s,
                                         statistic="alignment", value=float(v)))
        rows += self._alignment_rows(meas, sz, spec)
        d_rows, d_curves = self._densities(sol, problem, sz, ctx.seed)
        rows += d_rows
        curves += d_curves
        # feature learning: the rich kernels are not the lazy ones (descriptive)
        for layer in range(spec.depth):
            from ..metrics import observable, rel_error

            d = float(rel_error(observable(sol, "phi_final", problem, layer),
                                observable(lazy, "phi_final", problem, layer)))
            meas.append(dict(base, observable="phi_final", scheme="dmft", source="theory", layer=layer,
                             statistic="rel_change_vs_lazy", value=d))
        out = CheckResult.concat([conv, CheckResult(frame("verdicts", rows), frame("measurements", meas),
                                                    frame("curves", curves))])
        return out

    def _alignment_rows(self, meas, sz, spec):
        rows = []
        target = min((w for w in sz.f1_widths if w >= sz.f1_converge_from), default=max(sz.f1_widths))
        for name, layers in (("phi", range(spec.depth)), ("g", range(spec.depth))):
            for layer in layers:
                vals = [m["value"] for m in meas if m["width"] == target and m["layer"] == layer
                        and m["observable"] == f"{name}_final"]
                m, se = mean_se(np.asarray(vals))
                v, why = decide(1.0 - m, se, ALIGN_TOLERANCE, what=f"1 - alignment at N = {target}")
                rows.append(verdict_row(check=self.name + "/alignment", observable=f"{name}_final",
                                        scheme="dmft", width=target, gamma0=spec.gamma0, depth=spec.depth,
                                        layer=layer, statistic="one_minus_alignment", estimate=1.0 - m,
                                        stderr=se, tolerance=ALIGN_TOLERANCE, verdict=v, reason=why))
        return rows

    def _densities(self, sol, problem, sz, seed):
        th = theory_fields(sol, sz.f1_density_samples, seed=seed)
        width = max(sz.f1_widths)
        nets = network_fields(problem, width, seeds=2, seed=seed + 10_000)
        rows, curves = [], []
        T = problem.steps
        for l in range(problem.depth):
            for k, (tag, idx) in enumerate((("t0", 0), ("tT", T))):
                a = th[l][:, idx, 0].numpy()
                b = nets[l][k, :, 0, :].reshape(-1).numpy()  # neurons of point 0, both seeds
                edges = common_edges(a, b)
                mids = 0.5 * (edges[1:] + edges[:-1])
                for src, vals in (("theory", a), ("network", b)):
                    dens = histogram(vals, edges)
                    curves += [dict(check=self.name, observable=f"h_density_{tag}", source=src,
                                    width=np.nan if src == "theory" else width, gamma0=problem.gamma0,
                                    depth=problem.depth, layer=l, time=float(x), value=float(d))
                               for x, d in zip(mids, dens)]
                ks = sps.ks_2samp(a, b)
                ok = ks.pvalue >= KS_ALPHA
                rows.append(verdict_row(
                    check=self.name + "/density", observable=f"h_density_{tag}", scheme="dmft", width=width,
                    gamma0=problem.gamma0, depth=problem.depth, layer=l, time=float(idx * problem.eta),
                    statistic="ks_distance", estimate=float(ks.statistic), stderr=np.nan, tolerance=KS_ALPHA,
                    verdict=Verdict.PASS if ok else Verdict.FAIL,
                    reason=(f"KS distance {ks.statistic:.3g}, p = {ks.pvalue:.2g} ({len(a)} theory samples, "
                            f"{len(b)} neurons of point 0): " + ("same law" if ok else "laws differ (p < 1e-3)"))))
        return rows, curves
