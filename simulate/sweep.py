"""Independent jobs on any Executor, with the on-disk cache: grids of ``simulate.train`` jobs and
any other job that follows :class:`Task` (``validate`` submits its solves and ensembles here).

DESIGN.md "Scale" and "Results are data". :func:`run_sweep` looks every job up in the cache
(``simulate.cache``), submits the others to a ``concurrent.futures.Executor`` (a local process
pool with one BLAS thread per worker by default; ``"serial"`` runs them here; a Dask
``distributed.Client(...).get_executor()`` works the same way), stores each result as it arrives
and returns them in order, so an interrupted sweep resumes where it stopped. Every result, cached
or not, goes through its job's record (``payload`` computes it in the worker, ``decode`` reads it
back), so what a job returns does not depend on where it ran.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import pickle
import time
import warnings
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import torch

from theory.problem import Problem

from .cache import Cache, Record, spec_key
from .executors import closing, one_thread, process_pool
from .identity import problem_identity, source_version
from .inputs import check_kernels, check_record
from .train import train
from .trajectories import OBSERVABLES, Trajectories

#: The modules a training result depends on (their source enters the key).
TRAIN_SOURCES = ("simulate", "theory.problem", "theory.activations")


class Task(Protocol):
    """A job :func:`run_sweep` can run: plain data in, a :class:`~simulate.cache.Record` out.

    kind:      a short name ("train", "solve", ...), stored with the entry.
    cached:    whether results go to the disk cache (False: recomputed every run).
    key():     hex digest of everything that changes the result (the cache file name).
    cost():    optional, a rough work estimate: on an executor the costliest jobs start first.
    payload(): ``(function, args)``, picklable; ``function(*args) -> Record`` runs in a worker.
    decode(record): the result object.
    """

    kind: str
    cached: bool

    def key(self) -> str: ...

    def payload(self) -> tuple[Callable[..., Record], tuple]: ...

    def decode(self, record: Record) -> Any: ...


# ----------------------------------------------------------------------------- problems as data
def problem_payload(problem: Problem) -> dict:
    """A Problem as plain data (a custom activation travels as itself: it must pickle)."""
    from theory.activations import BUILTIN

    act = problem.activation
    return {"x_train": problem.x_train, "y_train": problem.y_train, "x_test": problem.x_test,
            "y_test": problem.y_test, "depth": problem.depth,
            "activation": act.name if BUILTIN.get(act.name) is act else act,
            "gamma0": problem.gamma0, "eta": problem.eta, "steps": problem.steps}


def problem_from_payload(p: dict) -> Problem:
    p = dict(p)
    return Problem(p.pop("x_train"), p.pop("y_train"), p.pop("x_test"), p.pop("y_test"), **p)


# ----------------------------------------------------------------------------- training jobs
@dataclass(frozen=True)
class Job:
    """One call ``train(problem, width, seeds, seed=seed, ...)``, stored losslessly (``kernels``:
    "two_time" or "equal_time", see ``simulate.train``)."""

    problem: Problem
    _: KW_ONLY
    width: int
    seeds: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: torch.dtype = torch.float64
    record: tuple[str, ...] = OBSERVABLES
    times: tuple[int, ...] | None = None
    kernels: str = "two_time"
    kind = "train"
    cached = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "record", check_record(self.record))
        check_kernels(self.kernels)
        if self.times is not None:
            object.__setattr__(self, "times", tuple(int(t) for t in self.times))

    def key(self) -> str:
        """Hex digest of the full specification (the cache file name)."""
        return spec_key({"kind": self.kind, "problem": problem_identity(self.problem), "width": self.width,
                         "seeds": self.seeds, "seed": self.seed, "device": str(torch.device(self.device)),
                         "dtype": str(self.dtype), "record": self.record, "times": self.times,
                         "kernels": self.kernels,
                         "code": source_version(*TRAIN_SOURCES), "torch": torch.__version__})

    def payload(self):
        return train_record, (problem_payload(self.problem), self.width, self.seeds, self.seed, self.device,
                              str(self.dtype).removeprefix("torch."), self.record, self.times, self.kernels)

    def decode(self, rec: Record) -> Trajectories:
        t, m = rec.tensors, rec.meta
        L = self.problem.depth
        layers = lambda n: tuple(t[f"{n}.{l}"] for l in range(L)) if f"{n}.0" in t else None  # noqa: E731
        return Trajectories(
            self.problem, t["t"], t["loss"], t["f_train"], t.get("f_test"), t.get("ntk"), layers("phi"),
            layers("g"), t["kernel_times"], t["diverged"], t["diverged_step"], width=m["width"],
            seeds=m["seeds"], seed=m["seed"], device=m["device"], dtype=self.dtype,
            info={"wall_s": m["wall_s"], "record": self.record, "kernels": self.kernels},
            phi_eq=layers("phi_eq"), g_eq=layers("g_eq"))

    def cost(self) -> float:
        """Rough multiply-adds (products over T steps and the kernels' Grams), longest first."""
        p, N = self.problem, self.width
        tk = len(self.times or range(p.steps + 1))
        side = tk * p.n_points if self.kernels == "two_time" else p.n_points
        grams = 4 * p.depth * self.seeds * side * side * N * (1 if self.kernels == "two_time" else tk)
        return float(self.seeds * p.steps * N * (p.input_dim + (p.depth - 1) * N + p.n_points) * p.n_points * 6
                     + grams * bool(set(self.record) & {"phi", "g"}))

    def run(self, progress: bool = False) -> Trajectories:
        return train(self.problem, self.width, self.seeds, seed=self.seed, device=self.device,
                     dtype=self.dtype, record=self.record, times=self.times, kernels=self.kernels,
                     progress=progress)


def train_record(problem: dict, width, seeds, seed, device, dtype, record, times, kernels) -> Record:
    """Worker side of :class:`Job`: train and return every field as tensors."""
    run = train(problem_from_payload(problem), width, seeds, seed=seed, device=device,
                dtype=getattr(torch, dtype), record=record, times=times, kernels=kernels)
    tensors = {n: getattr(run, n) for n in ("t", "loss", "f_train", "f_test", "ntk", "kernel_times",
                                            "diverged", "diverged_step") if getattr(run, n) is not None}
    for n in ("phi", "g", "phi_eq", "g_eq"):
        for l, k in enumerate(getattr(run, n) or ()):
            tensors[f"{n}.{l}"] = k
    return Record(tensors, {"width": run.width, "seeds": run.seeds, "seed": run.seed, "device": run.device,
                            "wall_s": float(run.info.get("wall_s", float("nan")))})


def grid(
    problem: Problem,
    widths: Sequence[int],
    *,
    seeds: int = 1,
    seeds_per_job: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    record: Iterable[str] | None = OBSERVABLES,
    times: Sequence[int] | None = None,
    kernels: str = "two_time",
    **axes: Sequence[Any],
) -> list[Job]:
    """Jobs for every width x value of each Problem field in ``axes`` (e.g. ``gamma0=[0.5, 1]``,
    ``depth=[1, 2]``) x seed batch.

    ``seeds`` networks per grid point, trained ``seeds_per_job`` at a time (default: all in one
    batched job); batch ``k`` starts at seed ``seed + k * seeds_per_job``. The same seeds are used at
    every grid point (common random numbers across widths are not implied: widths differ).
    ``record``, ``times`` and ``kernels`` are passed to every ``train`` call.
    """
    spj = seeds if seeds_per_job is None else seeds_per_job
    if isinstance(spj, bool) or not isinstance(spj, int) or spj < 1:
        raise ValueError(f"seeds_per_job: must be a positive integer, got {seeds_per_job!r}")
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"{name}: grid axes take a list of values, got {values!r}")
    names = list(axes)
    jobs = []
    for width in widths:
        for combo in itertools.product(*(list(axes[n]) for n in names)):
            prob = problem.replace(**dict(zip(names, combo))) if names else problem
            for start in range(0, seeds, spj):
                jobs.append(Job(prob, width=int(width), seeds=min(spj, seeds - start), seed=seed + start,
                                device=device, dtype=dtype, record=record, times=times,
                                kernels=kernels))
    return jobs


# ----------------------------------------------------------------------------- runner
def execute(fn: Callable[..., Record], args: tuple) -> tuple[Record, float]:
    """Run one job's payload on one thread (wherever it is called); returns (record, seconds)."""
    t0 = time.perf_counter()
    with one_thread():
        rec = fn(*args)
    return rec, time.perf_counter() - t0


def cache_path(cache_dir, job: Task) -> Path:
    return Path(cache_dir) / f"{job.key()}.npz"


def _picklable(obj) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


@dataclass
class _Run:
    """State of one :func:`run_sweep` call."""

    jobs: list
    cache: Cache | None
    collect: bool
    on_result: Callable | None
    bar: Any = None

    def __post_init__(self) -> None:
        self.results: list = [None] * len(self.jobs)
        self.errors: list = []

    def lookup(self, i: int) -> bool:
        job = self.jobs[i]
        rec = self.cache.get(job.key(), job.kind) if self.cache is not None and job.cached else None
        if rec is None:
            return False
        try:
            self.finish(i, rec, 0.0, store=False)
        except Exception as exc:  # a record this job cannot decode is as good as missing
            warnings.warn(f"cache: ignoring unreadable entry {cache_path(self.cache.folder, job)}: "
                          f"{exc}; recomputing it", stacklevel=3)
            return False
        return True

    def finish(self, i: int, rec: Record, wall: float, store: bool = True) -> None:
        job = self.jobs[i]
        result = job.decode(rec)
        if store and self.cache is not None and job.cached:
            self.cache.put(job.key(), job.kind, rec)
        self.results[i] = result if self.collect else cache_path(self.cache.folder, job)
        if self.on_result is not None:
            self.on_result(job, result, not store, wall)
        if self.bar is not None:
            self.bar.update(1)

    def fail(self, i: int, exc: BaseException) -> None:
        self.errors.append(exc)
        self.results[i] = exc
        if self.bar is not None:
            self.bar.update(1)


def run_sweep(
    jobs: Sequence[Task],
    *,
    cache_dir=None,
    executor: cf.Executor | str | None = None,
    max_workers: int | None = None,
    progress: bool = True,
    collect: bool = True,
    errors: str = "raise",
    on_result: Callable | None = None,
) -> list:
    """Run every job not already in ``cache_dir``; return results in the order of ``jobs``.

    executor: any ``concurrent.futures.Executor`` (not shut down here), or ``"serial"`` (here, one
        job after another). Default: a local process pool (spawned workers, one BLAS thread each,
        ``max_workers`` defaults to the available cores), or in-process for a single job. Jobs
        whose payload does not pickle run here, with a warning.
    collect: return results (True) or, with a cache, only the cache paths (False: bounded memory).
    errors: "raise" (default): a failing job raises its exception after every other job has
        finished (and been cached); "return": its exception is returned in its place.
    on_result: ``on_result(job, result, cached, seconds)`` is called as each result arrives.
    Progress is a tqdm bar over jobs on stderr. Jobs with equal keys run once.
    """
    jobs = list(jobs)
    if errors not in ("raise", "return"):
        raise ValueError(f"errors: unknown value {errors!r}; valid values are ['raise', 'return']")
    if not collect and cache_dir is None:
        raise ValueError("collect: False needs a cache_dir to write the results to")
    run = _Run(jobs, Cache(cache_dir) if cache_dir is not None else None, collect, on_result)
    first: dict[str, int] = {}
    todo = []
    for i, job in enumerate(jobs):
        k = job.key()
        if k not in first:
            first[k] = i
            todo.append(i)
    if progress:
        from tqdm.auto import tqdm

        run.bar = tqdm(total=len(todo), desc="jobs", unit="job", leave=False)
    try:
        todo = [i for i in todo if not run.lookup(i)]
        _submit(run, todo, executor, max_workers)
    finally:
        if run.bar is not None:
            run.bar.close()
    for i, job in enumerate(jobs):  # duplicates share their first job's result
        run.results[i] = run.results[first[job.key()]]
    if run.errors and errors == "raise":
        raise run.errors[0]
    return run.results


def _submit(run: _Run, todo: list[int], executor, max_workers) -> None:
    serial = executor == "serial" or (executor is None and len(todo) <= 1)
    if serial or not todo:
        local = todo
    else:
        threads = isinstance(executor, cf.ThreadPoolExecutor)
        local = [i for i in todo if not threads and not _picklable(run.jobs[i].payload())]
        if local:
            warnings.warn(f"{len(local)} job(s) do not pickle (e.g. a lambda activation or trainer); "
                          "running them in this process", stacklevel=3)
        remote = [i for i in todo if i not in set(local)]
        remote.sort(key=lambda i: -float(getattr(run.jobs[i], "cost", lambda: 0.0)()))  # longest first
        own = executor is None
        ex = process_pool(max_workers) if own else executor
        with closing(ex) if own else contextlib.nullcontext(ex):
            futures = {ex.submit(execute, *run.jobs[i].payload()): i for i in remote}
            for fut in cf.as_completed(futures):  # keep every job that finishes
                _finish(run, futures[fut], fut.result)
    for i in local:
        _finish(run, i, lambda: execute(*run.jobs[i].payload()))


def _finish(run: _Run, i: int, outcome: Callable[[], tuple[Record, float]]) -> None:
    """Store job ``i``'s outcome; its exception (in the job, decoding or storing) is its result."""
    try:
        rec, wall = outcome()
        run.finish(i, rec, wall)
    except Exception as exc:
        run.fail(i, exc)
