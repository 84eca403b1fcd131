"""Grids of ``simulate.train`` jobs (widths x seeds x gamma0 x any Problem field) on any Executor.

DESIGN.md "Scale" and "Results are data". Each :class:`Job` is independent; :func:`run_sweep`
submits the jobs that are not yet cached to a ``concurrent.futures.Executor`` (a local process
pool with one BLAS thread per worker by default; a Dask ``distributed.Client(...).get_executor()``
works the same way) and writes every finished job to ``<cache_dir>/<key>.pt``, where ``key``
hashes the full specification (problem fingerprint, width, seeds, seed, device, dtype, recorded
observables, kernel times and :data:`FORMAT_VERSION`). Files are written to a temporary name and
moved into place with ``os.replace``, so an interrupted sweep never leaves a corrupt entry and a
re-run repeats only the unfinished jobs. Cache files hold plain tensors and numbers (loaded with
``torch.load(weights_only=True)``); the Problem is re-attached from the job on loading.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import itertools
import multiprocessing
import os
import tempfile
import warnings
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from theory.activations import BUILTIN
from theory.problem import Problem

from .train import check_record, train
from .trajectories import OBSERVABLES, Trajectories

#: Bump when the layout of a cached result changes: old entries are then ignored.
FORMAT_VERSION = 1
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Job:
    """One call ``train(problem, width, seeds, seed=seed, ...)``."""

    problem: Problem
    _: KW_ONLY
    width: int
    seeds: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: torch.dtype = torch.float64
    record: tuple[str, ...] = OBSERVABLES
    times: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "record", check_record(self.record))
        if self.times is not None:
            object.__setattr__(self, "times", tuple(int(t) for t in self.times))

    def key(self) -> str:
        """Hex digest of the full specification (the cache file name)."""
        spec = (FORMAT_VERSION, self.problem.fingerprint(), self.width, self.seeds, self.seed,
                str(torch.device(self.device)), str(self.dtype), self.record, self.times)
        return hashlib.sha256(repr(spec).encode()).hexdigest()[:40]

    def run(self, progress: bool = False) -> Trajectories:
        return train(self.problem, self.width, self.seeds, seed=self.seed, device=self.device,
                     dtype=self.dtype, record=self.record, times=self.times, progress=progress)


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
    **axes: Sequence[Any],
) -> list[Job]:
    """Jobs for every width x value of each Problem field in ``axes`` (e.g. ``gamma0=[0.5, 1]``,
    ``depth=[1, 2]``) x seed batch.

    ``seeds`` networks per grid point, trained ``seeds_per_job`` at a time (default: all in one
    batched job); batch ``k`` starts at seed ``seed + k * seeds_per_job``. The same seeds are used at
    every grid point (common random numbers across widths are not implied: widths differ).
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
                                device=device, dtype=dtype, record=record, times=times))
    return jobs


# ----------------------------------------------------------------------------- (de)serialisation
def _problem_payload(problem: Problem) -> dict:
    act = problem.activation
    if BUILTIN.get(act.name) is not act:
        act_spec = act  # a custom activation travels as itself (must be picklable for processes)
    else:
        act_spec = act.name
    return {"x_train": problem.x_train, "y_train": problem.y_train, "x_test": problem.x_test,
            "y_test": problem.y_test, "depth": problem.depth, "activation": act_spec,
            "gamma0": problem.gamma0, "eta": problem.eta, "steps": problem.steps}


def _job_payload(job: Job) -> dict:
    return {"problem": _problem_payload(job.problem), "width": job.width, "seeds": job.seeds,
            "seed": job.seed, "device": job.device, "dtype": str(job.dtype).removeprefix("torch."),
            "record": job.record, "times": job.times}


def _to_record(run: Trajectories) -> dict:
    return {"format": FORMAT_VERSION, "t": run.t, "loss": run.loss, "f_train": run.f_train,
            "f_test": run.f_test, "ntk": run.ntk, "phi": None if run.phi is None else list(run.phi),
            "g": None if run.g is None else list(run.g), "kernel_times": run.kernel_times,
            "diverged": run.diverged, "diverged_step": run.diverged_step, "width": run.width,
            "seeds": run.seeds, "seed": run.seed, "device": run.device,
            "wall_s": float(run.info.get("wall_s", float("nan")))}


def _from_record(rec: dict, job: Job) -> Trajectories:
    tup = lambda v: None if v is None else tuple(v)  # noqa: E731
    return Trajectories(
        job.problem, rec["t"], rec["loss"], rec["f_train"], rec["f_test"], rec["ntk"], tup(rec["phi"]),
        tup(rec["g"]), rec["kernel_times"], rec["diverged"], rec["diverged_step"], width=rec["width"],
        seeds=rec["seeds"], seed=rec["seed"], device=rec["device"], dtype=job.dtype,
        info={"wall_s": rec["wall_s"], "record": job.record},
    )


def run_payload(payload: dict) -> dict:
    """Worker entry point: rebuild the job from plain data, train, return plain data."""
    p = dict(payload["problem"])
    job = Job(Problem(p.pop("x_train"), p.pop("y_train"), p.pop("x_test"), p.pop("y_test"), **p),
              width=payload["width"], seeds=payload["seeds"], seed=payload["seed"],
              device=payload["device"], dtype=getattr(torch, payload["dtype"]),
              record=payload["record"], times=payload["times"])
    return _to_record(job.run())


def _worker_init() -> None:
    for name in _THREAD_ENV:
        os.environ[name] = "1"
    torch.set_num_threads(1)


@contextlib.contextmanager
def _single_thread_env():
    """Children spawned inside see one BLAS/OpenMP thread from their first import on."""
    old = {n: os.environ.get(n) for n in _THREAD_ENV}
    os.environ.update({n: "1" for n in _THREAD_ENV})
    try:
        yield
    finally:
        for n, v in old.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


# ----------------------------------------------------------------------------- cache + runner
def cache_path(cache_dir, job: Job) -> Path:
    return Path(cache_dir) / f"{job.key()}.pt"


def _save_atomic(path: Path, rec: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(rec, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _load(path: Path, job: Job) -> Trajectories | None:
    if not path.exists():
        return None
    try:
        rec = torch.load(path, weights_only=True)
        if rec.get("format") != FORMAT_VERSION:
            return None
        return _from_record(rec, job)
    except Exception as exc:  # unreadable entry: recompute it
        warnings.warn(f"sweep cache: ignoring unreadable {path.name} ({exc}); recomputing", stacklevel=3)
        return None


def run_sweep(
    jobs: Sequence[Job],
    *,
    cache_dir=None,
    executor: cf.Executor | None = None,
    max_workers: int | None = None,
    progress: bool = True,
    collect: bool = True,
) -> list:
    """Run every job not already in ``cache_dir``; return results in the order of ``jobs``.

    executor: any ``concurrent.futures.Executor`` (not shut down here). Default: a local
        ``ProcessPoolExecutor`` (spawned workers, one BLAS thread each, ``max_workers`` defaults
        to the CPU count), or in-process execution when there is a single job to run.
    collect: return :class:`Trajectories` (True) or, with a cache, only the cache paths (False:
        bounded memory for big sweeps).
    A failing job raises its exception after every other job has finished (and been cached). Progress is a tqdm bar over jobs.
    """
    jobs = list(jobs)
    if not collect and cache_dir is None:
        raise ValueError("collect: False needs a cache_dir to write the results to")
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    results: list = [None] * len(jobs)
    todo = []
    for i, job in enumerate(jobs):
        hit = _load(cache_path(cache_dir, job), job) if cache_dir is not None else None
        if hit is None:
            todo.append(i)
        else:
            results[i] = hit if collect else cache_path(cache_dir, job)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="sweep", unit="job")

    def finish(i: int, rec: dict) -> None:
        if cache_dir is not None:
            _save_atomic(cache_path(cache_dir, jobs[i]), rec)
        results[i] = _from_record(rec, jobs[i]) if collect else cache_path(cache_dir, jobs[i])
        if bar is not None:
            bar.update(1)

    try:
        if executor is None and len(todo) <= 1:
            for i in todo:
                finish(i, run_payload(_job_payload(jobs[i])))
        else:
            own = executor is None
            with _single_thread_env():
                ex = executor or cf.ProcessPoolExecutor(
                    max_workers=max_workers or os.cpu_count() or 1,
                    mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)
                try:
                    futures = {ex.submit(run_payload, _job_payload(jobs[i])): i for i in todo}
                    errors = []
                    for fut in cf.as_completed(futures):  # keep every job that finishes
                        try:
                            rec = fut.result()
                        except Exception as exc:
                            errors.append(exc)
                            continue
                        finish(futures[fut], rec)
                    if errors:
                        raise errors[0]
                finally:
                    if own:
                        ex.shutdown(cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()
    return results
