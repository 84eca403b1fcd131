"""simulate.sweep: grids of jobs on Executors, on-disk cache, resume after interruption."""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading

import pytest
import torch

from theory.data import gaussian_data
from theory.problem import Problem
from simulate import train
from simulate.cache import read_record
from simulate.sweep import Job, cache_path, grid, run_sweep


def _problem(**kw):
    x, y, xt, yt = gaussian_data(5, 10, 2, seed=3)
    base = dict(depth=2, activation="relu", gamma0=1.0, eta=0.2, steps=6)
    return Problem(x, y, xt, yt, **{**base, **kw})


class CountingExecutor(cf.ThreadPoolExecutor):
    """Counts submissions; optionally fails the submissions whose (0-based) number is in ``fail``."""

    def __init__(self, fail=()):
        super().__init__(max_workers=2)
        self.submitted = 0
        self.fail = set(fail)
        self._lock = threading.Lock()

    def submit(self, fn, *args, **kwargs):
        with self._lock:
            n = self.submitted
            self.submitted += 1
        if n in self.fail:
            fut = cf.Future()
            fut.set_exception(RuntimeError("interrupted"))
            return fut
        return super().submit(fn, *args, **kwargs)


def test_grid_builds_every_combination_with_distinct_keys():
    p = _problem()
    jobs = grid(p, [16, 32], seeds=5, seeds_per_job=2, gamma0=[0.5, 1.0], depth=[1, 2])
    assert len(jobs) == 2 * 2 * 2 * 3
    assert len({j.key() for j in jobs}) == len(jobs)
    first = [j for j in jobs if j.width == 16 and j.problem.gamma0 == 0.5 and j.problem.depth == 1]
    assert [(j.seed, j.seeds) for j in first] == [(0, 2), (2, 2), (4, 1)]
    # the key changes with every part of the specification
    j = Job(p, width=16)
    variants = [Job(p.replace(eta=0.1), width=16), Job(p, width=17), Job(p, width=16, seeds=2),
                Job(p, width=16, seed=1), Job(p, width=16, dtype=torch.float32),
                Job(p, width=16, record=("ntk",)), Job(p, width=16, times=(0, 6))]
    assert len({v.key() for v in variants} | {j.key()}) == len(variants) + 1
    with pytest.raises(ValueError, match="gamma0"):
        grid(p, [16], gamma0=1.0)
    with pytest.raises(ValueError, match="record"):
        Job(p, width=16, record=("bogus",))


def test_resume_recomputes_nothing_cached_and_survives_failures(tmp_path):
    jobs = grid(_problem(), [8, 16], seeds=2, gamma0=[0.5, 1.0], record=("ntk",))
    # an interrupted first attempt: the second submission fails (jobs are submitted costliest
    # first), the others finish and are cached
    ex = CountingExecutor(fail={1})
    with pytest.raises(RuntimeError, match="interrupted"):
        run_sweep(jobs, cache_dir=tmp_path, executor=ex, progress=False)
    ex.shutdown()
    cached = [cache_path(tmp_path, j).exists() for j in jobs]
    assert sum(cached) == len(jobs) - 1
    failed = cached.index(False)
    corrupt = (failed + 1) % len(jobs)
    # leftovers of a crash mid-write: a temporary file and a truncated entry
    (tmp_path / ".junk.tmp").write_bytes(b"partial")
    cache_path(tmp_path, jobs[corrupt]).write_bytes(b"\x80\x02truncated")
    ex = CountingExecutor()
    with pytest.warns(UserWarning, match="unreadable"):
        results = run_sweep(jobs, cache_dir=tmp_path, executor=ex, progress=False)
    assert ex.submitted == 2  # the job that never finished and the corrupt one: nothing else
    ex.shutdown()
    for job, run in zip(jobs, results):
        ref = train(job.problem, job.width, job.seeds, seed=job.seed, record=("ntk",))
        torch.testing.assert_close(run.loss, ref.loss, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(run.ntk, ref.ntk, rtol=1e-12, atol=1e-14)
        assert run.problem is job.problem and run.phi is None
    # a complete cache: nothing submitted at all, paths only when asked
    ex = CountingExecutor()
    paths = run_sweep(jobs, cache_dir=tmp_path, executor=ex, progress=False, collect=False)
    assert ex.submitted == 0 and all(p.exists() for p in paths)
    ex.shutdown()
    # entries are versioned tensors-only archives (read_record checks format, version and key)
    assert read_record(paths[0], key=jobs[0].key(), kind="train").meta["width"] == jobs[0].width
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp") and f != ".junk.tmp"]


def test_default_process_pool_matches_in_process_training(tmp_path):
    jobs = grid(_problem(activation="tanh"), [8, 12], seeds=2, record=("phi",), times=[0, 3])
    results = run_sweep(jobs, cache_dir=tmp_path, max_workers=2, progress=False)
    for job, run in zip(jobs, results):
        ref = job.run()
        torch.testing.assert_close(run.phi[1], ref.phi[1], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(run.f_test, ref.f_test, rtol=1e-12, atol=1e-14)


def test_dask_executor(tmp_path):
    distributed = pytest.importorskip("distributed")
    jobs = grid(_problem(), [8], seeds=2, gamma0=[0.5, 2.0], record=None)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        results = run_sweep(jobs, cache_dir=tmp_path, executor=client.get_executor(), progress=False)
    for job, run in zip(jobs, results):
        torch.testing.assert_close(run.loss, job.run().loss, rtol=1e-12, atol=1e-14)
    ex = CountingExecutor()
    run_sweep(jobs, cache_dir=tmp_path, executor=ex, progress=False)
    assert ex.submitted == 0
    ex.shutdown()
