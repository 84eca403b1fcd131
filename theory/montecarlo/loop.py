"""The fixed-point loop of the Monte Carlo solver and its stopping rule (docs/theory.md section 2).

Each iteration: one sweep (``theory.montecarlo.sweep``); a divergence watch (``theory.divergence``); the
residual (relative change of the kernels and outputs) against the Monte Carlo noise floor
(split-half standard errors); mixing with damping; the output march (``theory.montecarlo.outputs``).
After convergence a few more iterations are averaged (running mean) to lower the noise.

Stopping rule (issue: never call a large residual converged):
* CONVERGED needs the residual below the floor (``3 x noise`` or ``tol``) AND below
  ``RESIDUAL_MAX``, the noise below ``NOISE_MAX``, fresh responses that agree with the stored
  ones, at full samples and after at least ``L + 2`` iterations;
* the same, but with the residual or the noise above those absolute limits, is NOISE_LIMITED:
  the iteration is at its noise floor and the floor is too high to trust (more samples);
* kernels or loss blowing up (or non-finite) is DIVERGED with ``info["diverged_step"]``;
* otherwise the budget ends in MAX_ITERATIONS.

A CONVERGED solve reports the residual of the iteration that declared convergence (the averaging
iterations after it are not checked) and ``info["tolerance"]``, the bound it met. The residual
compares two single iterates, each with the full per-iteration noise; the answer averages
several and states its own errors (``info["standard_error"]``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from .. import divergence
from .errors import IterateSpread, observables, standard_errors
from .outputs import march
from .responses import TOL_FLOOR, ResponseBook
from .sampling import psd_project
from .setup import Iterate, Setup
from .sweep import SweepOut, Sweeper
from ..problem import Problem
from ..solution import Status

#: CONVERGED needs a residual (largest relative change of a kernel or the outputs between two
#: iterations) at most this large, whatever the noise estimate says.
RESIDUAL_MAX = 0.1
#: ... and a Monte Carlo noise floor (largest relative split-half standard error) at most this.
NOISE_MAX = 0.05


@dataclass(frozen=True)
class LoopOptions:
    """Options of the loop, already validated and normalised by ``theory.solve`` (the option
    table ``theory.solve.OPTIONS`` says what each means): update "exact" / "first_order",
    control_variate "linearized" / "lazy" / "none", warmup a tuple of fractions, tol None or
    at most ``RESIDUAL_MAX``, response_samples at most samples."""

    update: str = "exact"
    samples: int = 4000
    response_samples: int = 64
    damping: float = 1.0
    tol: float | None = None
    max_iterations: int = 30
    average_iterations: int = 2
    control_variate: str = "linearized"
    seed: int = 0
    device: object = "cpu"
    dtype: torch.dtype = torch.float64
    progress: bool = False
    gauss_seidel: bool = True
    warmup: tuple = ()
    response_every: int = 1
    response_average: bool = False


@dataclass
class Core:
    """What a run of the loop returns: kernels phi, g and responses a, b (lists of (n, n)), the
    outputs f (t1, pa) and ntk (t1, pa, pa), the report, and the final iterate (``state``)."""

    phi: list
    g: list
    a: list
    b: list
    f: torch.Tensor
    ntk: torch.Tensor
    status: Status
    iterations: int
    residual: float
    info: dict = field(default_factory=dict)
    state: Iterate | None = None


def run_iterations(problem: Problem, *, gamma0: float, scheme: str, options: LoopOptions,
                   init: Iterate | None = None, frozen: int = 0) -> Core:
    """The fixed-point loop over the horizon ``problem.steps`` at coupling ``gamma0`` (it may
    differ from ``problem.gamma0``: the perturbative scheme runs at +-h). ``init``: an iterate of
    a shorter horizon to start from, whose first ``frozen`` times stay fixed (time-marching)."""
    return FixedPoint(problem, gamma0, scheme, options, init, frozen).run()


class FixedPoint:
    """One run of the loop (the state lives here between iterations)."""

    def __init__(self, problem, gamma0, scheme, o: LoopOptions, init, frozen) -> None:
        self.t_start = time.perf_counter()
        self.o, self.scheme = o, scheme
        self.s = s = Setup.build(problem, gamma0, dtype=o.dtype, device=o.device, frozen=frozen)
        self.state = Iterate.lazy(s) if init is None else init.extended(s)
        use_resp = scheme == "dmft"
        jac = (use_resp and s.depth > 1) or o.control_variate == "linearized"
        self.book = ResponseBook(self.state.a, self.state.b, used=use_resp, jacobians=jac,
                                 every=o.response_every, average=o.response_average,
                                 warmup=len(o.warmup))
        gen = torch.Generator(device=o.device).manual_seed(int(o.seed))
        self.sweeper = Sweeper(s, samples=o.samples, response_samples=o.response_samples,
                               control_variate=o.control_variate, gauss_seidel=o.gauss_seidel,
                               gia=scheme == "gia", generator=gen)
        self.spread = IterateSpread()
        self.history: list = []
        self.f_out = self.state.f_ref
        self.status, self.residual, self.noise, self.se_rel = Status.MAX_ITERATIONS, math.inf, math.inf, []
        self.reason: str | None = None
        self.declared: tuple[float, float] | None = None  # (residual, tolerance) at convergence
        self.diverged_step: int | None = None
        self.remainder = 0.0

    def run(self) -> Core:
        o, averaging, n_avg, it = self.o, False, 0, 0
        for it in range(1, o.max_iterations + o.average_iterations + 1):
            frac = o.warmup[it - 1] if it <= len(o.warmup) else 1.0
            refresh = self.book.due(it, averaging)
            sw = self.sweeper.sweep(self.state, self.book, frac)
            self.remainder = max(self.remainder, sw.remainder)
            if self._diverged(sw):
                break
            self._measure(sw, it, refresh, averaging)
            n_avg += averaging
            self._advance(sw, 1.0 / (n_avg + 1) if averaging else o.damping)
            if averaging:
                self.spread.add(self._observables(sw))
                if n_avg >= o.average_iterations:
                    break
                continue
            verdict = self._verdict(it, refresh, frac)
            if verdict is Status.CONVERGED:
                self.status, averaging = Status.CONVERGED, True
                self.spread.add(self._observables(sw))
                if o.average_iterations == 0:
                    break
            elif verdict is Status.NOISE_LIMITED or it >= o.max_iterations:
                break
        return self._finish(it)

    # ------------------------------------------------------------------ per iteration
    def _diverged(self, sw: SweepOut) -> bool:
        """Divergence watch on the new estimates (``theory.divergence``)."""
        s = self.s
        y = s.y
        loss = ((sw.f[:, : s.p] - y) ** 2).mean(-1)
        step = divergence.blowup_step(loss, s.ntk(sw.phi, sw.g))
        finite = all(bool(torch.isfinite(m).all()) for m in sw.phi + sw.g)
        if step is None and finite:
            return False
        self.status = Status.DIVERGED
        self.diverged_step = step if step is not None else max(s.frozen, 1)
        self.reason = (f"{divergence.reason(self.diverged_step)} (or the whole-trajectory "
                       f"iteration itself diverged: march='auto' checks by marching in time)")
        return True

    def _measure(self, sw: SweepOut, it: int, refresh: bool, averaging: bool) -> None:
        """Residual (active entries, relative to the whole old kernel) and noise floor."""
        s, st = self.s, self.state
        rel = lambda new, old: s.change(new, old) / max(float(torch.linalg.norm(old)), 1e-300)  # noqa: E731
        rels = [rel(nw, od) for nw, od in zip(sw.phi + sw.g, st.phi + st.g)]
        f_scale = max(float(st.f_ref.norm()), float(s.y.norm()), 1e-300)
        rels.append(s.change(sw.f, st.f_ref) / f_scale)
        sizes = [max(float(torch.linalg.norm(m)), 1e-300) for pair in zip(sw.phi, sw.g) for m in pair]
        out_se = sw.se_out / (abs(s.gamma0) * f_scale)
        self.se_rel = [se / sz for se, sz in zip(sw.se, sizes)]
        self.residual, self.noise = max(rels), max(self.se_rel + [out_se])
        self.history.append({"iteration": it, "residual": self.residual, "noise": self.noise,
                             "changes": rels, "standard_errors": self.se_rel + [out_se],
                             "responses_refreshed": refresh, "response_changes": self.book.changes,
                             "response_noise": self.book.noise})
        if self.o.progress:
            print(f"[solve_mc] it {it}: residual {self.residual:.3e} noise {self.noise:.3e}"
                  f"{' responses ' + str([round(v, 3) for v in self.book.changes]) if refresh else ''}"
                  f"{' (averaging)' if averaging else ''}; changes (Phi^l, G^l, f) "
                  f"{[round(v, 4) for v in rels]}")

    def _advance(self, sw: SweepOut, beta: float) -> None:
        """Mix the new estimates in, fold in the responses, march the outputs."""
        s, st = self.s, self.state
        self.book.settle(len(self.history), s.mix)
        st.phi = [s.mix(o, nw, beta) for o, nw in zip(st.phi, sw.phi)]
        st.g = [s.mix(o, nw, beta) for o, nw in zip(st.g, sw.g)]
        st.a, st.b = self.book.a, self.book.b
        st.f_ref = s.mix(st.f_ref, sw.f, beta)
        st.delta_ref = s.mix(st.delta_ref, st.delta, beta)
        ntk = s.ntk(st.phi, st.g)
        if self.o.update == "first_order":
            st.delta, self.f_out = march(s.y, ntk, s.eta)
        else:
            st.delta, self.f_out = march(s.y, ntk, s.eta, f_ref=st.f_ref, delta_ref=st.delta_ref)

    def _verdict(self, it: int, refresh: bool, frac: float) -> Status | None:
        """CONVERGED / NOISE_LIMITED once the residual is at the noise floor (module docstring)."""
        floor = max(3.0 * self.noise, TOL_FLOOR) if self.o.tol is None else self.o.tol
        self.book.force = self.residual <= 2.0 * floor  # never stop on unchecked responses
        ready = (it >= self.s.depth + 2 and frac == 1.0 and it > len(self.o.warmup)
                 and (refresh or not self.book.jacobians) and self.book.agree)
        if not (ready and self.residual <= floor):
            if it >= self.o.max_iterations:
                self.reason = (f"residual {self.residual:.3g} still above the stopping floor "
                               f"{floor:.3g} after {it} iterations")
            return None
        if self.residual <= RESIDUAL_MAX and self.noise <= NOISE_MAX:
            self.declared = (self.residual, min(floor, RESIDUAL_MAX))
            return Status.CONVERGED
        self.status = Status.NOISE_LIMITED
        self.reason = (f"the iteration reached its Monte Carlo noise floor, but that floor is too "
                       f"high to trust: noise {self.noise:.3g} (limit {NOISE_MAX:g}), residual "
                       f"{self.residual:.3g} (limit {RESIDUAL_MAX:g}); more samples lower it")
        return Status.NOISE_LIMITED

    def _observables(self, sw: SweepOut) -> dict:
        return observables(sw.phi, sw.g, sw.f, self.s.ntk(sw.phi, sw.g), self.s.y, self.s.p)

    # ------------------------------------------------------------------ result
    def _finish(self, it: int) -> Core:
        s, st = self.s, self.state
        if self.status is Status.DIVERGED:  # the last iterate before the blow-up (NaN after it)
            phis, gs, f = st.phi, st.g, self.f_out
            ntk = s.ntk(phis, gs)
        else:  # the returned kernels are projected onto the PSD cone (the outputs are kept)
            phis, gs = [psd_project(m) for m in st.phi], [psd_project(m) for m in st.g]
            ntk, f = s.ntk(phis, gs), self.f_out
        info = {
            "samples": self.o.samples,
            "response_samples": self.o.response_samples if self.book.used else 0,
            "damping": self.o.damping, "update": self.o.update,
            "control_variate": self.o.control_variate, "mehler_remainder": self.remainder,
            "standard_error": standard_errors(self.spread, self.se_rel or [math.inf] * (2 * s.depth),
                                              s.depth, s.pa > s.p),
            "standard_error_window": self.spread.count, "response_refreshes": self.book.count,
            "history": self.history, "noise": self.noise,
            "timings": {**self.sweeper.timing, "total": time.perf_counter() - self.t_start},
            "seed": self.o.seed,
        }
        residual = self.residual
        if self.declared is not None:  # report the residual the verdict was based on
            residual, info["tolerance"] = self.declared
        if self.status is not Status.CONVERGED:
            info["reason"] = self.reason or f"stopped after {it} iterations"
        if self.diverged_step is not None:
            info["diverged_step"] = self.diverged_step
        return Core(phi=phis, g=gs, a=st.a, b=st.b, f=f, ntk=ntk, status=self.status,
                    iterations=it, residual=residual, info=info, state=st)
