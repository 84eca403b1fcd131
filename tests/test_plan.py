"""Plan, then run (validate.plan): checks declare their jobs, undeclared ones are discovered, every
job runs through simulate.sweep on the chosen executor, and the verdicts do not depend on it."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from simulate import ExecutorSpec
from validate.checks import Breakdown, Convergence, WidthIndependence
from validate.frame import CheckResult, frame, verdict_row
from validate.sources import Context, Deferred, Pending
from validate.spec import ProblemSpec
from validate.suites import Suite, get_suite, run_suite
from dask_cluster import dask_scheduler  # noqa: F401 - a pytest fixture
from validate_fakes import fake_solver, fake_trainer

SPEC = ProblemSpec(n_train=5, n_test=2, input_dim=8, depth=2, gamma0=0.5, steps=6)


class CountingExecutor(cf.ThreadPoolExecutor):
    def __init__(self):
        super().__init__(max_workers=2)
        self.submitted = 0
        self._lock = threading.Lock()

    def submit(self, fn, *args, **kwargs):
        with self._lock:
            self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def _fakes(**kw):
    return Context(trainer=fake_trainer(), solver=fake_solver, progress=False, **kw)


CHECKS = (
    Convergence(name="conv", problem=SPEC, widths=(16, 32), seeds=4, observables=("loss", "phi_2t:1", "g")),
    Breakdown(name="bd", problem=SPEC, gamma0s=(0.25, 1.0), depths=(1, 2), observables=("ntk",)),
    Breakdown(name="bdn", problem=SPEC, gamma0s=(0.25, 1.0), schemes=("dmft", "ntk"), against="networks",
              widths=(16, 64), seeds=4, observables=("ntk",)),
    WidthIndependence(name="wi", problem=SPEC, widths=(16, 64), seeds=6),
)


def test_declared_jobs_cover_what_each_check_reads():
    ctx = _fakes()
    ex = CountingExecutor()
    planned, _ = run_suite(Suite("unit", "", CHECKS), ctx, executor=ex)
    ex.shutdown()
    assert ctx.session.passes == {c.name: 1 for c in CHECKS}  # nothing discovered late
    n_jobs = len({j.key() for c in CHECKS for j in c.jobs(ctx)})
    assert ex.submitted == n_jobs == ctx.stats["solves"] + ctx.stats["trained"]
    direct = CheckResult.concat([c.run(_fakes()) for c in CHECKS])  # the plain in-process path
    pd.testing.assert_frame_equal(planned.verdicts, direct.verdicts)


@dataclass(frozen=True)
class Sequential:
    """A check without ``jobs``: asks for the theory, then for networks one width at a time."""

    name: str = "sequential"

    def run(self, ctx):
        problem = SPEC.build()
        sol = ctx.theory(problem, "dmft")
        rows = []
        for w in (16, 32, 64):
            nets = ctx.networks(problem, w, 3)
            gap = float(abs(nets.loss.mean(0)[-1] - sol.loss[-1]))
            rows.append(verdict_row(check=self.name, observable="loss", statistic="gap", width=w,
                                    estimate=gap, verdict="pass", reason="ok"))
        return CheckResult(frame("verdicts", rows))


def test_a_check_without_declared_jobs_is_planned_pass_by_pass():
    ctx = _fakes()
    ex = CountingExecutor()
    res, seconds = run_suite(Suite("unit", "", (Sequential(),)), ctx, executor=ex)
    ex.shutdown()
    # pass 1 asks for the theory and width 16 (a Deferred is only touched in the gap), passes 2
    # and 3 for widths 32 and 64, pass 4 evaluates
    assert ctx.session.passes["sequential"] == 4
    assert ex.submitted == 4 and seconds["sequential"] > 0
    pd.testing.assert_frame_equal(res.verdicts, Sequential().run(_fakes()).verdicts)


def test_deferred_results_raise_pending_on_any_use():
    d = Deferred(object())
    for use in (lambda: d.loss, lambda: bool(d), lambda: d + 1, lambda: float(d), lambda: d[0], lambda: len(d)):
        with pytest.raises(Pending):
            use()
    # Pending is not an Exception: a check's "except Exception" cannot swallow it
    assert not issubclass(Pending, Exception)


def test_failed_job_raises_its_error_where_the_check_reads_it():
    def broken(problem, width, seeds=1, **_):
        raise RuntimeError(f"no memory for width {width}")

    ctx = Context(trainer=broken, solver=fake_solver, progress=False)
    conv = Convergence(name="c", problem=SPEC, widths=(16, 32), seeds=2, observables=("loss",))
    ctx.run(conv.jobs(ctx))
    assert ctx.stats == {"solves": 1, "trained": 0, "cache_hits": 0}
    with pytest.raises(RuntimeError, match="no memory for width 16"):
        ctx.networks(SPEC.build(), 16, 2)
    # planned and run on an executor, the check still turns the failure into its failed rows
    ex = CountingExecutor()
    planned, _ = run_suite(Suite("unit", "", (conv,)), Context(trainer=broken, solver=fake_solver, progress=False),
                           executor=ex)
    ex.shutdown()
    direct = conv.run(Context(trainer=broken, solver=fake_solver, progress=False))
    pd.testing.assert_frame_equal(planned.verdicts, direct.verdicts)
    assert (planned.verdicts["verdict"] == "fail").all() and planned.verdicts["reason"].str.contains("no memory").all()


def test_executor_names_parse_and_reject():
    assert ExecutorSpec.parse("processes:3") == ExecutorSpec("processes", workers=3)
    assert ExecutorSpec.parse("dask") == ExecutorSpec("dask")
    assert ExecutorSpec.parse("dask://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"
    for bad in ("threads", "processes:0", "processes:x", "serial:2", "dask://nohost", ""):
        with pytest.raises(ValueError, match="executor"):
            ExecutorSpec.parse(bad)


REAL = (
    Convergence(name="linear", problem=SPEC.replace(gamma0=1.0), widths=(16, 32, 64), seeds=4,
                observables=("loss", "ntk", "phi")),
    Convergence(name="tanh", problem=SPEC.replace(activation="tanh", gamma0=1.0, depth=1), widths=(16, 32),
                seeds=4, observables=("loss", "phi"), tolerance=0.2, solver_options={"samples": 400}),
    WidthIndependence(name="width", problem=SPEC.replace(gamma0=1.0), widths=(16, 64), seeds=4),
)


def _real(executor, tmp_path=None):
    ctx = Context(progress=False, cache_dir=tmp_path)
    res, _ = run_suite(Suite("real", "", REAL), ctx, executor=executor)
    return res.verdicts, ctx


def _same(a, b):
    cols = ["check", "observable", "layer", "width", "statistic", "verdict"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    np.testing.assert_allclose(a["estimate"].to_numpy(float), b["estimate"].to_numpy(float), rtol=0, atol=1e-9)


def test_verdicts_do_not_depend_on_the_executor(tmp_path):
    serial, _ = _real("serial")
    threads = cf.ThreadPoolExecutor(2)
    _same(serial, _real(threads)[0])
    threads.shutdown()
    procs, ctx = _real("processes:2", tmp_path / "cache")
    _same(serial, procs)
    # 3 linear + 2 tanh ensembles and the contrast's widest: the width check's fixed-gamma0 ones
    # are the linear convergence's (same problem, width, seeds), its narrowest contrast is too
    assert ctx.stats == {"solves": 2, "trained": 6, "cache_hits": 0}
    again, ctx = _real("processes:2", tmp_path / "cache")  # a rerun on the cache trains nothing
    _same(serial, again)
    assert ctx.stats == {"solves": 1, "trained": 0, "cache_hits": 7}  # the exact solve is not cached


@pytest.fixture(scope="module")
def serial_verdicts():
    return _real("serial")[0]


def test_dask_local_cluster_gives_the_serial_verdicts(serial_verdicts):
    pytest.importorskip("distributed")
    _same(serial_verdicts, _real("dask:2")[0])


@pytest.mark.slow
def test_a_separately_started_dask_scheduler_gives_the_serial_verdicts(serial_verdicts, dask_scheduler):
    _same(serial_verdicts, _real(f"dask://{dask_scheduler}")[0])
