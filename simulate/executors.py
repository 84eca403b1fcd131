"""Where jobs run: executors named by a string, and one BLAS/torch thread per job.

    serial             in the calling process, one job after another
    processes[:N]      a local pool of N spawned processes (default: the available cores)
    dask[:N]           a ``distributed.LocalCluster`` of N single-threaded worker processes
    dask://HOST:PORT   a running Dask scheduler (``dask scheduler`` + ``dask worker``); its workers
                       must be able to import this project (install it on every worker)

Any ``concurrent.futures.Executor`` works as well (``distributed.Client(...).get_executor()``
is one). Every job runs with one torch and one BLAS thread (:func:`one_thread`): jobs are the
unit of parallelism, and on a machine with as many busy processes as cores, extra threads per
process slow the linear algebra down many-fold.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from dataclasses import dataclass
from typing import Iterator

import torch

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
KINDS = ("serial", "processes", "dask")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed executor name (module docstring)."""

    kind: str
    workers: int | None = None
    address: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ExecutorSpec":
        valid = "valid values are serial, processes[:N], dask[:N] and dask://HOST:PORT"
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"executor: expected a name, got {text!r}; {valid}")
        text = text.strip()
        if text.startswith("dask://"):
            host, _, port = text[len("dask://"):].rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"executor: {text!r} needs a host and a port, e.g. dask://127.0.0.1:8786")
            return cls("dask", address=f"tcp://{host}:{port}")
        kind, sep, n = text.partition(":")
        if kind not in KINDS:
            raise ValueError(f"executor: unknown value {text!r}; {valid}")
        if not sep:
            return cls(kind)
        if kind == "serial" or not n.isdigit() or int(n) < 1:
            raise ValueError(f"executor: {text!r}: the worker count must be an integer >= 1 ({valid})")
        return cls(kind, workers=int(n))


@contextlib.contextmanager
def single_thread_env() -> Iterator[None]:
    """Processes started inside see one OpenMP/BLAS thread from their first import on."""
    old = {n: os.environ.get(n) for n in THREAD_ENV}
    os.environ.update({n: "1" for n in THREAD_ENV})
    try:
        yield
    finally:
        for n, v in old.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the body with one torch intra-op thread and one BLAS thread, then restore both."""
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(old)


def _worker_init() -> None:
    os.environ.update({n: "1" for n in THREAD_ENV})
    torch.set_num_threads(1)


def process_pool(workers: int | None = None) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (default: the available cores), one thread each."""
    with single_thread_env():
        return cf.ProcessPoolExecutor(max_workers=workers or available_cores(),
                                      mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)


@contextlib.contextmanager
def closing(ex: cf.Executor) -> Iterator[cf.Executor]:
    """Shut ``ex`` down on exit: waiting for its jobs normally, at once on an error or Ctrl-C."""
    try:
        yield ex
    except BaseException:
        _terminate_workers(ex)  # first: shutdown() forgets the pool's processes
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(cancel_futures=True)


def _terminate_workers(ex: cf.Executor) -> None:
    """Stop a process pool's running jobs now (Ctrl-C must not wait for a long training)."""
    terminate = getattr(ex, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for proc in list((getattr(ex, "_processes", None) or {}).values()):  # the pool's own processes
        proc.terminate()


@contextlib.contextmanager
def open_executor(spec: "str | cf.Executor | None") -> Iterator[cf.Executor | None]:
    """The executor named by ``spec`` (module docstring) for the body; None means serial.

    An Executor passed in is yielded as it is and not shut down; executors opened here are
    shut down (and a local Dask cluster closed) on exit.
    """
    if spec is None or isinstance(spec, cf.Executor):
        yield spec
        return
    es = ExecutorSpec.parse(spec)
    if es.kind == "serial":
        yield None
    elif es.kind == "processes":
        pool = process_pool(es.workers)
        with closing(pool):
            yield pool
    else:
        with _dask_client(es) as client:
            yield client.get_executor()


@contextlib.contextmanager
def _dask_client(es: ExecutorSpec):
    try:
        import distributed
    except ImportError:
        raise ValueError("executor: dask needs the 'distributed' package (pip install 'dmft-validate[dask]')") from None
    if es.address is not None:
        try:
            client = distributed.Client(es.address, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"executor: no Dask scheduler answers at {es.address} ({exc})") from None
        with client:
            yield client
        return
    with single_thread_env():
        cluster = distributed.LocalCluster(n_workers=es.workers or available_cores(), threads_per_worker=1,
                                           processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        yield client
