"""Figs. 2 and 3 of the paper: deep linear networks (P = 20 Gaussian points in D = 40,
eta = 0.025, T = 100), where the DMFT is exact (docs/theory.md sections 4, 5, 7).

Fig. 2 (gamma0 = 1.5, depth 1..5): loss by depth, final H^l against networks (convergence check
per depth), kernel movement ``|K(T) - K(0)| / |K(0)|`` against depth (deeper moves more).
Fig. 3 (depth 5, gamma0 0.25..1.5): DMFT, NTK, GIA and perturbation theory against networks:
per-seed alignment of each theory's final kernels with the widest networks', and the gamma0 at
which each approximation breaks down (breakdown check against the exact DMFT).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import Breakdown, Convergence
from ..frame import CheckResult, Verdict, frame, verdict_row
from ..metrics import observable
from ..spec import ProblemSpec
from ..stats import decide, mean_se
from .common import not_available_row, seed_alignments, size_of, sub_context, try_theory

MOVE_TOLERANCE = 0.10  # relative difference of network and theory kernel movement
SCHEMES = ("dmft", "ntk", "gia", "perturbative")


def linear_spec(steps: int, depth: int, gamma0: float) -> ProblemSpec:
    return ProblemSpec(n_train=20, n_test=0, input_dim=40, depth=depth, activation="linear",
                       gamma0=gamma0, eta=0.025, steps=steps)


def movement(obj, problem) -> torch.Tensor:
    """``|K(T) - K(0)|_F / |K(0)|_F`` of the NTK (seed axis kept)."""
    k = observable(obj, "ntk", problem)
    d = (k[..., -1, :, :] - k[..., 0, :, :]).flatten(-2).norm(dim=-1)
    return d / k[..., 0, :, :].flatten(-2).norm(dim=-1)


@dataclass(frozen=True)
class PaperFig2:
    """Fig. 2 (module docstring)."""

    size: str | None = None
    gamma0: float = 1.5
    name: str = "fig2/linear-depth"

    def _convergence(self, sz, depth: int) -> Convergence:
        return Convergence(name=f"{self.name}/L{depth}", problem=linear_spec(sz.lin_steps, depth, self.gamma0),
                           widths=sz.lin_widths, seeds=sz.lin_seeds, observables=("loss", "phi"), tolerance=0.05)

    def jobs(self, ctx) -> list:
        """Every solve and ensemble :meth:`run` reads, so a run plans them in one batch (``validate.plan``)."""
        sz = size_of(self, ctx)
        sub = sub_context(ctx, sz.lin_steps, every=max(1, sz.lin_steps // 10))
        return [job for depth in sz.lin_depths for job in self._convergence(sz, depth).jobs(sub)]

    def run(self, ctx) -> CheckResult:
        sz = size_of(self, ctx)
        sub = sub_context(ctx, sz.lin_steps, every=max(1, sz.lin_steps // 10))
        parts, rows, meas, curves = [], [], [], []
        th_move, net_move = {}, {}
        top = max(sz.lin_widths)
        for depth in sz.lin_depths:
            spec = linear_spec(sz.lin_steps, depth, self.gamma0)
            problem = spec.build()
            parts.append(self._convergence(sz, depth).run(sub))
            sol = sub.theory(problem, "dmft")
            nets = sub.networks(problem, top, sz.lin_seeds)
            base = dict(check=self.name, observable="ntk_movement", gamma0=self.gamma0, depth=depth)
            th_move[depth] = float(movement(sol, problem))
            mv = movement(nets, problem).numpy()
            mv = mv[np.isfinite(mv)]
            net_move[depth] = mean_se(mv)
            meas.append(dict(base, scheme="dmft", source="theory", statistic="kernel_movement", value=th_move[depth]))
            meas += [dict(base, scheme="networks", source="network", width=top, seed=s,
                          statistic="kernel_movement", value=float(v)) for s, v in enumerate(mv)]
            d = (net_move[depth][0] - th_move[depth]) / th_move[depth]
            v, why = decide(d, net_move[depth][1] / th_move[depth], MOVE_TOLERANCE,
                            what=f"relative difference of network (N = {top}) and DMFT kernel movement",
                            signed=True)
            rows.append(verdict_row(**base, scheme="dmft", width=top, statistic="movement_rel_diff",
                                    estimate=d, stderr=net_move[depth][1] / th_move[depth],
                                    tolerance=MOVE_TOLERANCE, verdict=v, reason=why))
        ds = list(sz.lin_depths)
        steps = list(zip(ds, ds[1:]))
        th_steps = [th_move[b] > th_move[a] for a, b in steps]
        net_steps = [net_move[b][0] - net_move[a][0] > 2 * np.hypot(net_move[a][1], net_move[b][1])
                     for a, b in steps]
        th_up, net_up = all(th_steps), all(net_steps)
        ok = th_up and net_up
        n_up = sum(t and n for t, n in zip(th_steps, net_steps))  # the estimate: depth steps up in both
        rows.append(verdict_row(
            check=self.name, observable="ntk_movement", scheme="dmft", gamma0=self.gamma0, depth=max(ds),
            statistic="movement_increases_with_depth", estimate=float(n_up), tolerance=np.nan,
            verdict=Verdict.PASS if ok else (Verdict.FAIL if not th_up else Verdict.INCONCLUSIVE),
            reason=(f"{n_up} of {len(steps)} depth steps increase in both; theory "
                    + ", ".join(f"L={d}: {th_move[d]:.3g}" for d in ds) + "; networks "
                    + ", ".join(f"{net_move[d][0]:.3g}±{net_move[d][1]:.1g}" for d in ds)
                    + ("; both increase with depth" if ok else "; not increasing significantly"))))
        parts.append(CheckResult(frame("verdicts", rows), frame("measurements", meas), frame("curves", curves)))
        return CheckResult.concat(parts)


@dataclass(frozen=True)
class PaperFig3:
    """Fig. 3 (module docstring)."""

    size: str | None = None
    depth: int = 5
    name: str = "fig3/linear-approximations"

    def _breakdown(self, sz) -> Breakdown:
        lo = min(sz.f3_gamma0s)
        return Breakdown(name=self.name + "/breakdown", problem=linear_spec(sz.lin_steps, self.depth, 1.0),
                         gamma0s=sz.f3_gamma0s, observables=("loss", "ntk"), tolerance=0.02,
                         expect={"ntk": (lo, 1.5), "gia": (lo, 1.5), "perturbative": (lo, 1.5)})

    def jobs(self, ctx) -> list:
        """Every solve and ensemble :meth:`run` reads, so a run plans them in one batch (``validate.plan``)."""
        sz = size_of(self, ctx)
        sub = sub_context(ctx, sz.lin_steps, every=max(1, sz.lin_steps // 10))
        spec0, top = linear_spec(sz.lin_steps, self.depth, 1.0), max(sz.lin_widths)
        out = list(self._breakdown(sz).jobs(sub))
        for g0 in sz.f3_gamma0s:
            problem = spec0.replace(gamma0=g0).build()
            out += [sub.network_job(problem, top, sz.lin_seeds), *(sub.theory_job(problem, s) for s in SCHEMES)]
        return out

    def run(self, ctx) -> CheckResult:
        sz = size_of(self, ctx)
        sub = sub_context(ctx, sz.lin_steps, every=max(1, sz.lin_steps // 10))
        top = max(sz.lin_widths)
        spec0 = linear_spec(sz.lin_steps, self.depth, 1.0)
        brk = self._breakdown(sz)
        try:
            parts = [brk.run(sub)]
        except NotImplementedError as exc:  # a scheme missing in this build: report, do not crash
            parts = [CheckResult(frame("verdicts", [not_available_row(brk.name, "loss,ntk", "all", str(exc))]))]
        rows, meas = [], []
        g_top = max(sz.f3_gamma0s)
        at_top = {}
        for g0 in sz.f3_gamma0s:
            spec = spec0.replace(gamma0=g0)
            problem = spec.build()
            nets = sub.networks(problem, top, sz.lin_seeds)
            for scheme in SCHEMES:
                sol, why = try_theory(sub, problem, scheme)
                base = dict(check=self.name, scheme=scheme, gamma0=g0, depth=self.depth, width=top)
                if sol is None or why is not None and not torch.isfinite(sol.ntk).all():
                    rows.append(not_available_row(self.name, "ntk_final", scheme, why or "non-finite",
                                                  gamma0=g0, depth=self.depth))
                    continue
                for name, layer in (("ntk", None), ("phi", self.depth - 1)):
                    a = seed_alignments(nets, sol, name, layer)
                    meas += [dict(base, observable=f"{name}_final", source="network", seed=s,
                                  layer=np.nan if layer is None else layer, statistic="alignment",
                                  value=float(v)) for s, v in enumerate(a)]
                    if g0 == g_top:
                        at_top[(scheme, name)] = a
        for name in ("ntk", "phi"):
            if ("dmft", name) not in at_top:
                continue
            ref = at_top[("dmft", name)]
            for scheme in SCHEMES[1:]:
                if (scheme, name) not in at_top:
                    continue
                diff = ref - at_top[(scheme, name)]  # paired: same networks
                m, se = mean_se(diff)
                ok = m - 3 * se > 0
                rows.append(verdict_row(
                    check=self.name + "/dmft-best", observable=f"{name}_final", scheme=scheme, gamma0=g_top,
                    depth=self.depth, width=top, layer=np.nan if name == "ntk" else self.depth - 1,
                    statistic="alignment_gain_of_dmft", estimate=m, stderr=se, tolerance=0.0,
                    verdict=Verdict.PASS if ok else (Verdict.FAIL if m + 3 * se < 0 else Verdict.INCONCLUSIVE),
                    reason=(f"alignment with networks (N = {top}): dmft {ref.mean():.3f} vs {scheme} "
                            f"{at_top[(scheme, name)].mean():.3f}; paired gain {m:.3g} ± {se:.2g}"
                            + (": the DMFT is closer" if ok else ": not significantly closer"))))
        parts.append(CheckResult(frame("verdicts", rows), frame("measurements", meas)))
        return CheckResult.concat(parts)
