"""Seed-to-seed spread of width-N networks against the finite-width theory (docs/finite_width.md).

``theory.fluctuations`` predicts ``N Var`` of every observable to leading order. Two statistics
per observable and width, both gating:

fluctuation        the pooled seed variance over the predicted one,
                   ``R = sum_e s_e^2 / sum_e (N Var_e / N)`` (entries ``e`` with a non-zero
                   prediction). For Gaussian seeds ``sum_e s_e^2`` is a sum of correlated
                   chi-square variables; Satterthwaite's approximation treats it as one with
                   ``nu = (S - 1) (tr C)^2 / tr C^2`` degrees of freedom (``C`` the seeds'
                   covariance across entries, ``tr C^2`` estimated without bias; ``nu`` runs from
                   ``S - 1`` for fully correlated entries up), giving the interval
                   ``[R nu / chi2_hi(nu), R nu / chi2_lo(nu)]``, widened by the prediction's own
                   Monte Carlo error. Decided on ``R - 1`` against ``tolerance``
                   (``validate.stats.decide``).
single_width_mean  the ensemble mean against the infinite-width theory at ONE width, with the
                   *predicted* noise of the mean ``sigma_e / sqrt(S)``: the noise-corrected
                   relative residual ``sqrt(|mean - theory|^2 - sum_e sigma_e^2 / S) / |theory|``
                   against ``mean_tolerance`` plus an O(1/N) allowance for the bias of the mean,
                   ``bias * |sigma| / (sqrt(N) |theory|)`` (the fluctuation's size times
                   ``N^{-1/2}``: a bound, calibrated on the false-alarm tests).

It also writes ``curves`` rows for the report's band figure: the theory with its predicted
standard deviation at each width (source ``theory_band``) and the networks' seed mean and seed
standard deviation (source ``network_spread``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from scipy import stats as sps

from simulate.cache import Record, spec_key
from simulate.identity import source_version
from simulate.sweep import problem_from_payload, problem_payload

from ..frame import CheckResult, frame, verdict_row
from ..metrics import TIME_SERIES
from ..spec import ProblemSpec
from ..stats import Z_DEFAULT, decide, ssqrt
from .common import Unavailable, attempt, base_row, ensemble, expand_observables, networks
from .fields import typed_fields

#: Observables with a prediction (``theory.fluctuations`` fields; ``phi``/``g`` are layered).
PREDICTED = ("loss", "f_train", "f_test", "ntk", "phi", "g")


@dataclass(frozen=True)
class Prediction:
    """What the checks read of a ``theory.Fluctuations``: ``var[key]`` (N Var), ``se[key]``
    (its standard error, zeros for exact methods) and ``mean[key]`` (the infinite-width value),
    keyed ``"loss"``, ``"ntk"``, ``"phi.0"``, ...; ``status`` and ``method`` as strings."""

    var: dict
    se: dict
    mean: dict
    status: str
    method: str
    reason: str

    @staticmethod
    def key(name: str, layer: int | None) -> str:
        return name if layer is None else f"{name}.{layer}"


@dataclass(frozen=True, eq=False)
class FluctuationTask:
    """``theory.fluctuations(problem, method, **options)`` as a ``simulate.sweep`` job."""

    problem: Any
    method: str
    options: dict
    kind = "fluctuation"
    uncacheable = None

    def __post_init__(self) -> None:
        from simulate.identity import problem_identity

        spec = {"kind": self.kind, "method": self.method, "options": self.options,
                "problem": problem_identity(self.problem), "code": source_version("theory")}
        object.__setattr__(self, "_key", spec_key(spec))
        object.__setattr__(self, "cached", self.method != "lazy")

    def key(self) -> str:
        return self._key

    def cost(self) -> float:
        n = (self.problem.steps + 1) * self.problem.n_points
        return float(self.options.get("samples") or 1000) * 1000.0 * n * n * self.problem.depth

    def payload(self):
        return fluctuation_record, (problem_payload(self.problem), self.method, self.options)

    def decode(self, rec: Record) -> Prediction:
        t = rec.tensors
        part = lambda p: {k[len(p) + 1:]: v for k, v in t.items() if k.startswith(p + ":")}  # noqa: E731
        return Prediction(part("var"), part("se"), part("mean"), **rec.meta)


def fluctuation_record(problem: dict, method: str, options: dict) -> Record:
    """Worker side of :class:`FluctuationTask`."""
    from theory import fluctuations

    fl = fluctuations(problem_from_payload(problem), method, **options)
    sol, L, P = fl.solution, fl.problem.depth, fl.problem.n_train
    se = fl.info.get("standard_error") or {}
    t = {}
    for name in ("loss", "f_train", "f_test", "ntk"):
        v = getattr(fl, name)
        if v is None:
            continue
        t[f"var:{name}"], t[f"mean:{name}"] = v, getattr(sol, name)
        src = se.get("f") if name.startswith("f_") else se.get(name)
        if src is not None:
            t[f"se:{name}"] = src[:, :P] if name == "f_train" else src[:, P:] if name == "f_test" else src
    for l in range(L):
        t[f"var:phi.{l}"], t[f"mean:phi.{l}"] = fl.phi[l], sol.phi_diag(l)
        t[f"var:g.{l}"], t[f"mean:g.{l}"] = fl.g[l], sol.g_diag(l)
        for name in ("phi", "g"):
            if name in se:
                t[f"se:{name}.{l}"] = se[name][l]
    t = {k: v.detach().to(torch.float64).contiguous() for k, v in t.items()}
    return Record(t, {"status": fl.status.value, "method": fl.method, "reason": str(fl.info.get("reason", ""))})


def variance_ratio(x: torch.Tensor, var: torch.Tensor, se: torch.Tensor | None, width: int,
                   z: float) -> tuple[float, float, float]:
    """Pooled seed variance over the prediction and its interval (module docstring).

    x: (S, ...) per-seed values; var, se: (...) predicted N Var and its standard error.
    """
    keep = var > 1e-9 * var.abs().max()
    s = x.shape[0]
    xs = x.reshape(s, -1)[:, keep.reshape(-1)].to(torch.float64)
    a = (xs - xs.mean(0)) / (s - 1) ** 0.5  # C_hat = a^T a
    emp = float((a**2).sum())
    r = emp / (float(var[keep].sum()) / width)
    dof = effective_dof(a)
    alpha = 2.0 * sps.norm.sf(z)
    lo, hi = r * dof / sps.chi2.ppf(1 - alpha / 2, dof), r * dof / sps.chi2.ppf(alpha / 2, dof)
    if se is not None:
        rel = float(se[keep].sum() / var[keep].sum())
        lo, hi = lo / (1 + z * rel), hi / max(1 - z * rel, 1e-12)
    return r, lo, hi


def effective_dof(a: torch.Tensor) -> float:
    """Satterthwaite's ``nu = (S - 1) (tr C)^2 / tr C^2`` for ``C_hat = a^T a`` (a: (S, M), the
    centred samples over sqrt(S - 1)), with the unbiased estimate of ``tr C^2`` of Gaussian
    samples; clipped to ``[S - 1, (S - 1) M]``."""
    n = a.shape[0] - 1
    gram = a @ a.T
    t2, t1 = float((gram**2).sum()), float(torch.trace(gram))
    tr2 = n * n / ((n - 1) * (n + 2)) * (t2 - t1 * t1 / n) if n >= 2 else t2
    nu = n * t1 * t1 / max(tr2, 1e-300)
    return float(min(max(nu, n), n * a.shape[1]))


def mean_residual(x: torch.Tensor, ref: torch.Tensor, var: torch.Tensor, width: int,
                  z: float) -> tuple[float, float, float, float]:
    """Noise-corrected relative residual of the ensemble mean with the *predicted* noise:
    ``(estimate, lo, hi, |sigma| / |theory|)`` (module docstring)."""
    s = x.shape[0]
    sig2 = var.clamp(min=0) / width  # per-seed variance of each entry
    r = x.mean(0) - ref
    ref2 = float((ref**2).sum()) or 1e-300
    noise = float(sig2.sum()) / s
    rho2 = (float((r**2).sum()) - noise) / ref2
    var_r2 = 2 * float((sig2**2).sum()) / s**2 + 4 * float((r**2 * sig2).sum()) / s
    se2 = var_r2**0.5 / ref2
    return max(rho2, 0.0) ** 0.5, ssqrt(rho2 - z * se2), ssqrt(rho2 + z * se2), (float(sig2.sum()) / ref2) ** 0.5


@dataclass(frozen=True)
class Fluctuation:
    """Measured seed spread and single-width means against ``theory.fluctuations`` (module docstring).

    observables: from :data:`PREDICTED` (``"phi"`` every layer, ``"phi:0"`` one).
    times: "all" steps or "final". tolerance: on the variance ratio ``R - 1`` (0.4: the seed
    standard deviation within about 18 %; a variance needs a few hundred seeds to be decided);
    mean_tolerance: on the single-width relative residual; bias: the O(1/N) allowance factor.
    method, fluct_options: for ``theory.fluctuations`` (e.g. samples, population).
    """

    problem: ProblemSpec
    widths: tuple[int, ...] = (128, 512)
    seeds: int = 256
    observables: tuple[str, ...] = ("loss", "ntk", "phi", "g")
    times: str = "all"
    tolerance: float = 0.4
    mean_tolerance: float = 0.02
    bias: float = 3.0
    z: float = Z_DEFAULT
    method: str = "auto"
    fluct_options: dict = field(default_factory=dict)
    name: str = "fluctuation"

    def __post_init__(self) -> None:
        typed_fields(self)
        if not self.widths:
            raise ValueError("widths: need at least one width, got []")
        if self.seeds < 3:
            raise ValueError(f"seeds: need at least 3 seeds for a variance, got {self.seeds}")
        if self.times not in ("all", "final"):
            raise ValueError(f"times: unknown value {self.times!r}; valid values are ['all', 'final']")
        bad = [o for o in self.observables if o.partition(":")[0] not in PREDICTED]
        if bad:
            raise ValueError(f"observables: {bad} have no prediction; valid values are {list(PREDICTED)}")
        expand_observables(self.observables, self.problem.depth)
        object.__setattr__(self, "widths", tuple(sorted(self.widths)))

    def statistics(self) -> tuple[str, ...]:
        return ("fluctuation", "single_width_mean")

    def _task(self, problem) -> FluctuationTask:
        return FluctuationTask(problem, self.method, dict(sorted(self.fluct_options.items())))

    def jobs(self, ctx) -> list:
        problem = self.problem.build()
        return [self._task(problem)] + [ctx.network_job(problem, w, self.seeds) for w in self.widths]

    def run(self, ctx) -> CheckResult:
        problem = self.problem.build()
        obs = expand_observables(self.observables, problem.depth)
        bases = [dict(base_row(self.name, self.problem, n, l, "fluctuations"), statistic=s, width=w,
                      tolerance=self.tolerance if s == "fluctuation" else self.mean_tolerance)
                 for n, l in obs for w in self.widths for s in self.statistics()]
        try:
            pred = attempt("theory fluctuations", ctx.result, self._task(problem))
            if pred.status not in ("exact", "converged"):
                raise Unavailable("inconclusive", f"theory fluctuations status {pred.status}: {pred.reason}; "
                                                  "no reference to compare with (not a verdict on the networks)")
            nets = {w: networks(ctx, problem, w, self.seeds) for w in self.widths}
        except Unavailable as exc:
            return CheckResult(frame("verdicts", exc.rows(bases)))
        rows, curves = [], []
        for name, layer in obs:
            k = Prediction.key(name, layer)
            var, se, ref = pred.var[k], pred.se.get(k), pred.mean[k]
            sel = slice(None) if self.times == "all" else slice(-1, None)
            base = base_row(self.name, self.problem, name, layer, "fluctuations")
            when = dict(time=float(problem.steps * problem.eta)) if self.times == "final" else {}
            for w, net in nets.items():
                x, dropped = ensemble(net, name, problem, layer)
                note = f"; {dropped} diverged seed(s) dropped" if dropped else ""
                rows += self._rows(base, when, w, x[:, sel], var[sel], None if se is None else se[sel], ref[sel], note)
                if name in TIME_SERIES:
                    curves += band_curves(base, w, problem, x, var, ref)
        return CheckResult(frame("verdicts", rows), curves=frame("curves", curves))

    def _rows(self, base, when, w, x, var, se, ref, note) -> list[dict]:
        if x.shape[0] < 3:
            why = f"only {x.shape[0]} usable seeds (need 3){note}"
            return [verdict_row(**base, **when, width=w, statistic=s, verdict="inconclusive", reason=why,
                                tolerance=self.tolerance if s == "fluctuation" else self.mean_tolerance)
                    for s in self.statistics()]
        r, lo, hi = variance_ratio(x, var, se, w, self.z)
        v1, why1 = decide(r - 1, (hi - lo) / (2 * self.z), self.tolerance, self.z, signed=True,
                          bounds=(lo - 1, hi - 1), what=f"seed variance / predicted - 1 (N={w}, {x.shape[0]} seeds)")
        est, mlo, mhi, size = mean_residual(x, ref, var, w, self.z)
        allow = self.bias * size / w**0.5
        tol = self.mean_tolerance + allow
        v2, why2 = decide(est, (mhi - mlo) / (2 * self.z), tol, self.z, bounds=(mlo, mhi),
                          what=f"relative residual of the mean at N={w} (predicted noise, O(1/N) allowance {allow:.2g})")
        return [verdict_row(**base, **when, width=w, statistic="fluctuation", estimate=r - 1,
                            stderr=(hi - lo) / (2 * self.z), tolerance=self.tolerance, verdict=v1, reason=why1 + note),
                verdict_row(**base, **when, width=w, statistic="single_width_mean", estimate=est,
                            stderr=(mhi - mlo) / (2 * self.z), tolerance=tol, verdict=v2, reason=why2 + note)]


def band_curves(base: dict, width: int, problem, x: torch.Tensor, var: torch.Tensor, ref: torch.Tensor) -> list[dict]:
    """Curve rows of a time series: theory with its predicted sd at ``width`` and the seed spread."""
    t = (torch.arange(problem.steps + 1) * problem.eta).tolist()
    sd = (var.clamp(min=0) / width).sqrt()
    m, s = x.mean(0), x.std(0, correction=1)
    out = []
    for k, tt in enumerate(t):
        out.append(dict(base, source="theory_band", width=width, time=tt, value=float(ref[k]), stderr=float(sd[k])))
        out.append(dict(base, source="network_spread", width=width, time=tt, value=float(m[k]), stderr=float(s[k])))
    return out


__all__ = ["Fluctuation", "FluctuationTask", "Prediction"]
