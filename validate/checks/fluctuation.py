"""Seed spread and single-width means of width-N networks against ``theory.fluctuations``.

``docs/finite_width.md`` section 10. ``theory.fluctuations`` predicts ``N Var`` of every
observable to leading order in 1/N. Two checks read that prediction, both from planned jobs (the
prediction with the infinite-width solution it linearised around, ``ctx.fluctuation_job``, and
one ensemble per width), so a suite that runs both on one problem computes everything once:

Fluctuation (kind "fluctuation", statistic "fluctuation")
    the pooled seed variance at width N over the predicted one, ``log R`` with its chi-square
    interval (``validate.stats.variance_ratio``), decided on ``|log R|`` against ``tolerance``
    (default 0.3: the variance within a factor 1.35, the seed standard deviation within 16 %).
    It also writes the band curves of the report (theory +- 2 predicted standard deviations).

SingleWidth (kind "single_width", statistic "single_width_mean")
    the ensemble mean at ONE width against the theory with the predicted noise of the mean,
    ``sigma / sqrt(seeds)`` (``validate.stats.single_width_residual``), decided against
    ``tolerance`` plus an allowance for the O(1/N) bias of the mean (:func:`bias_allowance`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..frame import CheckResult, Verdict, frame, verdict_row
from ..jobs import PREDICTED, Prediction
from ..metrics import observable
from ..spec import ProblemSpec
from ..stats import Z_DEFAULT, decide, single_width_residual, variance_ratio
from .common import Unavailable, attempt, base_row, ensemble, expand_observables, networks, theory_stderr
from .fields import typed_fields

#: Default factor of the O(1/N) bias bound (:func:`bias_allowance`; docs/finite_width.md section 10).
BIAS = 2.0


@dataclass(frozen=True)
class Arrays:
    """One observable at one width: seeds ``x`` (S, T+1, ...); the predicted per-seed variance
    ``var = N Var / N`` and its standard error ``se`` (or None); the theory ``ref`` and its Monte
    Carlo standard error ``ref_se`` (or None); all over the same times."""

    width: int
    x: torch.Tensor
    var: torch.Tensor
    se: torch.Tensor | None
    ref: torch.Tensor
    ref_se: torch.Tensor | None


def arrays(pred: Prediction, problem, name: str, layer: int | None, width: int, x: torch.Tensor,
           sel: slice) -> Arrays:
    key = Prediction.key(name, layer)
    ref = observable(pred.solution, name, problem, layer)
    ref_se = theory_stderr(pred.solution, name, layer, ref)
    se = pred.se.get(key)
    cut = lambda t: None if t is None else t[sel]  # noqa: E731
    return Arrays(width, x[:, sel], pred.var[key][sel] / width, cut(se / width if se is not None else None),
                  ref[sel], cut(ref_se))


def bias_allowance(name: str, a: Arrays, pred: Prediction, problem, sel: slice, bias: float) -> tuple[torch.Tensor, float]:
    """``(shift, allowance)``: the estimated O(1/N) bias of the mean, added to the theory, and the
    bound on the rest, relative to ``|theory|`` (docs/finite_width.md section 10).

    Estimated: the loss is ``|f - y|^2 / P``, so its mean at width N exceeds the loss of the mean
    outputs by ``sum_mu Var f_mu / P``, which the prediction gives (``shift``, zero for the other
    observables). Bounded: the remaining O(1/N) bias (the shift of the saddle point) by
    ``bias * sqrt(sum_e N Var_e) / (N |theory|)``, the size of the fluctuation times ``N^{-1/2}``.
    """
    shift = torch.zeros_like(a.ref)
    if name == "loss" and "f_train" in pred.var:
        shift = pred.var["f_train"][sel].clamp(min=0).sum(-1) / problem.n_train / a.width
    ref_norm = float(a.ref.norm()) or 1e-300
    return shift, bias * float((a.var.clamp(min=0) * a.width).sum()) ** 0.5 / (a.width * ref_norm)


@dataclass(frozen=True)
class Fluctuation:
    """Measured seed variance at each width against ``theory.fluctuations`` (module docstring).

    observables: from ``validate.jobs.PREDICTED`` (``"phi"`` every layer, ``"phi:0"`` one).
    times: "all" steps (pooled) or "final". tolerance: on ``|log(seed variance / predicted)|``.
    method, prediction_options: of ``theory.fluctuations`` (e.g. samples, population);
    solver_options: of the infinite-width solve it linearises around.
    """

    problem: ProblemSpec
    widths: tuple[int, ...] = (128, 512)
    seeds: int = 256
    observables: tuple[str, ...] = ("loss", "ntk", "phi", "g")
    times: str = "all"
    tolerance: float = 0.3
    z: float = Z_DEFAULT
    method: str = "auto"
    prediction_options: dict = field(default_factory=dict)
    solver_options: dict = field(default_factory=dict)
    name: str = "fluctuation"
    statistic = "fluctuation"

    def __post_init__(self) -> None:
        typed_fields(self)
        if not self.widths:
            raise ValueError("widths: need at least one width, got []")
        if self.seeds < 3:
            raise ValueError(f"seeds: need at least 3 seeds for a variance, got {self.seeds}")
        if self.times not in ("all", "final"):
            raise ValueError(f"times: unknown value {self.times!r}; valid values are ['all', 'final']")
        if self.method not in ("auto", "lazy", "linear", "montecarlo"):
            raise ValueError(f"method: unknown value {self.method!r}; valid values are "
                             "['auto', 'lazy', 'linear', 'montecarlo']")
        bad = [o for o in self.observables if o.partition(":")[0] not in PREDICTED]
        if bad:
            raise ValueError(f"observables: {bad} have no prediction; valid values are {list(PREDICTED)}")
        expand_observables(self.observables, self.problem.depth)
        object.__setattr__(self, "widths", tuple(sorted(self.widths)))

    def statistics(self) -> tuple[str, ...]:
        return (self.statistic,)

    def _prediction_job(self, ctx, problem):
        return ctx.fluctuation_job(problem, self.method, solver_options=self.solver_options, **self.prediction_options)

    def jobs(self, ctx) -> list:
        problem = self.problem.build()
        return [self._prediction_job(ctx, problem)] + [ctx.network_job(problem, w, self.seeds) for w in self.widths]

    def run(self, ctx) -> CheckResult:
        problem = self.problem.build()
        obs = expand_observables(self.observables, problem.depth)
        when = dict(time=float(problem.steps * problem.eta)) if self.times == "final" else {}
        bases = [dict(base_row(self.name, self.problem, n, l, "fluctuations"), **when, statistic=self.statistic,
                      width=w, tolerance=self.tolerance) for n, l in obs for w in self.widths]
        try:
            pred = attempt("theory fluctuations", ctx.result, self._prediction_job(ctx, problem))
            if not pred.ok:
                raise Unavailable(Verdict.INCONCLUSIVE, f"theory fluctuations ({pred.method}) status {pred.status}"
                                  f": {pred.reason}; no reference to compare with (not a verdict on the networks)")
            nets = {w: networks(ctx, problem, w, self.seeds) for w in self.widths}
        except Unavailable as exc:
            return CheckResult(frame("verdicts", exc.rows(bases)))
        rows, curves = [], []
        sel = slice(None) if self.times == "all" else slice(-1, None)
        for name, layer in obs:
            base = dict(base_row(self.name, self.problem, name, layer, "fluctuations"), **when)
            for w, net in nets.items():
                x, dropped = ensemble(net, name, problem, layer)
                note = f"; {dropped} diverged seed(s) dropped" if dropped else ""
                row = dict(base, width=w, statistic=self.statistic, tolerance=self.tolerance)
                if x.shape[0] < 3:
                    rows.append(verdict_row(**row, verdict=Verdict.INCONCLUSIVE,
                                            reason=f"only {x.shape[0]} usable seeds (need 3){note}"))
                    continue
                a = arrays(pred, problem, name, layer, w, x, sel)
                row.update(self.decide(name, a, pred, problem, sel))
                row["reason"] += note + f" [{pred.method}]"
                rows.append(verdict_row(**row))
                curves += self.curves(base, name, arrays(pred, problem, name, layer, w, x, slice(None)), problem)
        return CheckResult(frame("verdicts", rows), curves=frame("curves", curves))

    def decide(self, name: str, a: Arrays, pred: Prediction, problem, sel: slice) -> dict:
        """Estimate, standard error, verdict and reason of one row (the variance ratio)."""
        vr = variance_ratio(a.x, a.var, a.se, z=self.z)
        v, why = decide(vr.estimate, vr.stderr, self.tolerance, self.z, signed=True, bounds=(vr.lo, vr.hi),
                        what=f"log(seed variance / predicted) at N={a.width} ({a.x.shape[0]} seeds, "
                             f"ratio {vr.ratio:.3g}, {vr.dof:.0f} dof)")
        return dict(estimate=vr.estimate, stderr=vr.stderr, verdict=v, reason=why)

    def curves(self, base: dict, name: str, a: Arrays, problem) -> list[dict]:
        """Band rows of one width (``validate.report.bands``): the theory with its predicted
        standard deviation (source ``theory_band``) and the seed mean with the measured seed
        standard deviation (source ``network_spread``); the whole series of the loss, the first
        entry of the outputs and kernels."""
        first = lambda t: t.reshape(t.shape[0], -1)[:, 0]  # noqa: E731  (T+1, ...) -> (T+1,)
        ref, sd = first(a.ref), first(a.var).clamp(min=0).sqrt()
        xs = a.x.reshape(*a.x.shape[:2], -1)[:, :, 0]
        m, s = xs.mean(0), xs.std(0, correction=1)
        t = (torch.arange(ref.shape[0]) * problem.eta).tolist()
        out = []
        for k, tt in enumerate(t):
            out.append(dict(base, source="theory_band", width=a.width, time=tt, value=float(ref[k]),
                            stderr=float(sd[k])))
            out.append(dict(base, source="network_spread", width=a.width, time=tt, value=float(m[k]),
                            stderr=float(s[k])))
        return out


@dataclass(frozen=True)
class SingleWidth(Fluctuation):
    """The ensemble mean at each width, separately, against the theory with the predicted noise
    and the O(1/N) bias allowance (module docstring). tolerance: on the relative residual, on
    top of the allowance; bias: the factor of the bias bound (:func:`bias_allowance`)."""

    tolerance: float = 0.01
    bias: float = BIAS
    name: str = "single_width"
    statistic = "single_width_mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bias < 0:
            raise ValueError(f"bias: must be >= 0, got {self.bias!r}")

    def decide(self, name: str, a: Arrays, pred: Prediction, problem, sel: slice) -> dict:
        shift, allow = bias_allowance(name, a, pred, problem, sel, self.bias)
        res = single_width_residual(a.x, a.ref + shift, a.var, a.ref_se, z=self.z)
        tol = self.tolerance + allow
        est = "estimated loss bias added, " if bool((shift != 0).any()) else ""
        v, why = decide(res.estimate, res.stderr, tol, self.z, bounds=(res.lo, res.hi),
                        what=f"relative residual of the mean at N={a.width} ({a.x.shape[0]} seeds, predicted "
                             f"noise {res.noise:.2g}; {est}O(1/N) allowance {allow:.2g})")
        return dict(estimate=res.estimate, stderr=res.stderr, tolerance=tol, verdict=v, reason=why)

    def curves(self, base, name, a, problem) -> list[dict]:
        return []


__all__ = ["BIAS", "Fluctuation", "SingleWidth", "bias_allowance"]
