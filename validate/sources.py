"""Where the numbers come from: the theory (``theory.solve``) and networks (``simulate.train``).

Checks only talk to a :class:`Context`: ``ctx.theory(problem, scheme)``, ``ctx.networks(problem,
width, seeds)`` and ``ctx.result(job)`` (any ``validate.jobs`` job). Each request is a job with a
key over its full specification (``validate.jobs``); results are memoised for the run and
computed through ``simulate.sweep.run_sweep`` with the disk cache under ``cache_dir``, so a rerun
reuses finished work. Tests inject a synthetic ``trainer`` or ``solver``.

Plan, then run (``validate.plan``): in a *planning* pass a request whose result is not there yet
returns a :class:`Deferred` stand-in and is recorded; touching the stand-in raises
:class:`Pending`, which ends that pass of the check. The recorded jobs then run together on the
chosen executor, and the check is evaluated again.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from .jobs import EnsembleTask, SolveTask

Trainer = Callable[..., Any]  # trainer(problem, width, seeds=S, *, seed=0, device="cpu"[, kernels=...])


def default_trainer() -> Trainer:
    """``simulate.train``."""
    from simulate import train

    return train


def default_solver(problem, scheme="dmft", **kw):
    """``theory.solve(problem, scheme, **kw)``."""
    from theory import solve

    return solve(problem, scheme=scheme, **kw)


#: The fields of a network ensemble that ``dmft simulate --out`` stores.
FIELDS = ("t", "loss", "f_train", "f_test", "ntk", "phi", "g", "kernel_times", "diverged", "diverged_step")


class Pending(BaseException):
    """A planning pass touched a result that has not been computed yet (see module docstring).

    A BaseException, so that a check's ``except Exception`` (turning a failed solve into an
    inconclusive row) lets it through.
    """


def _pending(self, *args, **kwargs):
    raise Pending(object.__getattribute__(self, "job"))


class Deferred:
    """Stands in for a result a planning pass asked for: every use raises :class:`Pending`."""

    __slots__ = ("job",)

    def __init__(self, job) -> None:
        object.__setattr__(self, "job", job)

    def __repr__(self) -> str:
        return f"Deferred({type(self.job).__name__})"

    __getattr__ = _pending
    __bool__ = __len__ = __iter__ = __getitem__ = __contains__ = __call__ = _pending
    __float__ = __int__ = __index__ = __array__ = __format__ = __str__ = _pending
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _pending
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _pending
    __neg__ = __abs__ = __pow__ = __matmul__ = __rmatmul__ = _pending


@dataclass
class Session:
    """What the Contexts of one run share (a ``dataclasses.replace`` copy shares it too).

    results: job key -> result, or the exception its job raised; seconds: job key -> seconds of work.
    planning: True during a planning pass; wanted: the jobs asked for in it and not yet computed;
    passes: check name -> planning passes it took (1 when its declared jobs were complete).
    """

    results: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    planning: bool = False
    wanted: dict = field(default_factory=dict)
    warned: set = field(default_factory=set)
    passes: dict = field(default_factory=dict)


@dataclass
class Context:
    """Run-wide settings and the results shared by the checks of one run."""

    device: str = "cpu"
    seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True
    trainer: Trainer | None = None
    solver: Callable[..., Any] | None = None
    solver_options: dict = field(default_factory=dict)
    session: Session = field(default_factory=Session, repr=False)
    stats: dict = field(default_factory=lambda: {"solves": 0, "trained": 0, "cache_hits": 0})

    # ------------------------------------------------------------------ jobs
    def theory_job(self, problem, scheme: str = "dmft", **options) -> SolveTask:
        """The solve of ``problem`` under ``scheme``.

        ``options`` (e.g. Monte Carlo samples) override the run-wide ``solver_options``; both are
        dropped where the solver takes none (the ntk scheme, gamma0 = 0).
        """
        opts = {**self.solver_options, **options} if scheme != "ntk" and problem.gamma0 else {}
        return SolveTask(problem, str(scheme), dict(sorted(opts.items())), self.solver or default_solver)

    def network_job(self, problem, width: int, seeds: int, *, two_time: bool = False) -> EnsembleTask:
        """An ensemble of ``seeds`` networks of width ``width`` (two-time kernels if asked)."""
        return EnsembleTask(problem, int(width), int(seeds), int(self.seed), str(self.device),
                            self.trainer or default_trainer(), bool(two_time))

    # ------------------------------------------------------------------ results
    def theory(self, problem, scheme: str = "dmft", **options):
        """The infinite-width solution of ``problem`` under ``scheme`` (see :meth:`theory_job`)."""
        return self.result(self.theory_job(problem, scheme, **options))

    def networks(self, problem, width: int, seeds: int, *, two_time: bool = False):
        """The ensemble of :meth:`network_job` (a ``validate.jobs.Ensemble``)."""
        return self.result(self.network_job(problem, width, seeds, two_time=two_time))

    def result(self, job):
        """The result of ``job``: memoised; in a planning pass a :class:`Deferred` until it has run;
        otherwise computed here. A job that raised raises the same exception again."""
        key = job.key()
        if key not in self.session.results:
            if self.session.planning:
                self.session.wanted.setdefault(key, job)
                return Deferred(job)
            self.run([job])
        out = self.session.results[key]
        if isinstance(out, BaseException):
            raise out
        return out

    def run(self, jobs, executor=None) -> None:
        """Compute the ``jobs`` not yet memoised (duplicates once) on ``executor`` (None: here)."""
        todo = {}
        for job in jobs:
            todo.setdefault(job.key(), job)
        todo = [j for k, j in todo.items() if k not in self.session.results]
        if not todo:
            return
        self._warn_uncacheable(todo)
        from simulate.sweep import run_sweep

        out = run_sweep(todo, cache_dir=self.cache_dir, executor=executor or "serial", progress=self.progress,
                        errors="return", on_result=self._count)
        for job, res in zip(todo, out):
            self.session.results[job.key()] = res

    def _count(self, job, result, cached: bool, seconds: float) -> None:
        self.session.seconds[job.key()] = seconds
        if cached:
            self.stats["cache_hits"] += 1
        else:
            self.stats["solves" if job.kind == "solve" else "trained"] += 1

    def _warn_uncacheable(self, jobs) -> None:
        if self.cache_dir is None:
            return
        for job in jobs:
            why = getattr(job, "uncacheable", None)
            if why and why not in self.session.warned:
                self.session.warned.add(why)
                warnings.warn(f"cache: not caching results of {why}", stacklevel=3)

    def bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, file=sys.stderr, disable=not self.progress, leave=False)
