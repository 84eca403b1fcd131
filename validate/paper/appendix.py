"""Appendix of the paper: a two-layer ReLU network (L = 1, P = 25 Gaussian points in D = 40,
eta = 0.075, T = 200; the cpu size shortens the run, see validate.paper.sizes) at gamma0 in
{0.2, 1, 2, 3}: the DMFT loss and kernels track the networks at every gamma0 (convergence check
per gamma0, Monte Carlo theory)."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import Convergence
from ..frame import CheckResult, frame
from ..spec import ProblemSpec
from .common import not_available_row, size_of, sub_context, try_theory

GAMMA0S = (0.2, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class PaperAppendix:
    """Appendix (module docstring)."""

    size: str | None = None
    name: str = "appendix/relu-L1"

    def _checks(self, ctx):
        """(the sparse-kernel context, [(gamma0, its convergence check)])."""
        sz = size_of(self, ctx)
        sub = sub_context(ctx, sz.app_steps, every=max(1, sz.app_steps // 10))
        opts = dict(samples=sz.app_samples, response_samples=4)
        checks = []
        for g0 in GAMMA0S:
            spec = ProblemSpec(n_train=25, n_test=0, input_dim=40, depth=1, activation="relu",
                               gamma0=g0, eta=sz.app_eta, steps=sz.app_steps)
            checks.append((g0, Convergence(name=f"{self.name}/g{g0:g}", problem=spec, widths=sz.app_widths,
                                           seeds=sz.app_seeds, observables=("loss", "ntk", "phi"),
                                           tolerance=0.05, solver_options=opts)))
        return sub, checks

    def jobs(self, ctx) -> list:
        """Every solve and ensemble :meth:`run` reads, so a run plans them in one batch (``validate.plan``)."""
        sub, checks = self._checks(ctx)
        return [job for _, conv in checks for job in conv.jobs(sub)]

    def run(self, ctx) -> CheckResult:
        sub, checks = self._checks(ctx)
        parts = []
        for g0, conv in checks:
            _, why = try_theory(sub, conv.problem.build(), "dmft", **conv.solver_options)
            if why is not None:
                parts.append(CheckResult(frame("verdicts", [not_available_row(
                    self.name, "loss", "dmft", why, gamma0=g0, depth=1)])))
                continue
            parts.append(conv.run(sub))
        return CheckResult.concat(parts)
