"""Plan, then run: every job a list of checks needs, on one executor, then the checks' verdicts.

1. Each check that declares its jobs (``check.jobs(ctx) -> list`` of ``validate.jobs`` jobs)
   contributes them; all of them, deduplicated by key, run together through
   ``simulate.sweep.run_sweep`` on the executor, with the Context's disk cache.
2. Each check is evaluated in a planning pass (``validate.sources``). A check that asks for a
   result that is not there (one without ``jobs``, or whose ``jobs`` missed something) has that
   pass discarded; the jobs it asked for, over all checks, run together, and it is evaluated
   again. So every check runs, declared or not, and a declared one is evaluated once.

The verdicts do not depend on the executor: a job computes the same result wherever it runs (one
thread, the same code and seeds), and every result is read back from its record.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from simulate.executors import open_executor

from .sources import Pending


def declared_jobs(check: Any, ctx) -> list:
    """``check.jobs(ctx)``, or [] for a check that declares none."""
    jobs = getattr(check, "jobs", None)
    return list(jobs(ctx)) if callable(jobs) else []


def evaluate(check: Any, ctx) -> tuple[Any, dict]:
    """One planning pass of ``check``: (its result, {}) or (None, the jobs it still needs)."""
    session = ctx.session
    session.planning, session.wanted = True, {}
    session.passes[check.name] = session.passes.get(check.name, 0) + 1
    try:
        result = check.run(ctx)
    except Pending:
        result = None
    finally:
        session.planning = False
        wanted, session.wanted = session.wanted, {}
    if result is None and not wanted:
        raise RuntimeError(f"check {check.name!r}: touched a planning stand-in of an earlier pass")
    return (None if wanted else result), wanted


def run_checks(checks: Sequence[Any], ctx, *, executor=None) -> tuple[list, dict[str, float]]:
    """The results of ``checks`` (in order) and seconds per check (its evaluation plus the work
    of the jobs it asked for first). ``executor``: None or "serial", a name such as
    "processes:4" or "dask://host:8786" (``simulate.executors``), or any Executor."""
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"checks: names must be unique, repeated: {sorted({n for n in names if names.count(n) > 1})}")
    seconds = {c.name: 0.0 for c in checks}
    owner: dict[str, str] = {}
    results: dict[str, Any] = {}
    with open_executor(executor) as ex:
        wanted = {}
        for c in checks:
            for job in declared_jobs(c, ctx):
                wanted.setdefault(job.key(), job)
                owner.setdefault(job.key(), c.name)
        todo = list(checks)
        while True:
            ctx.run(list(wanted.values()), ex)
            if not todo:
                break
            wanted, left = {}, []
            for c in todo:
                t0 = time.perf_counter()
                res, more = evaluate(c, ctx)
                seconds[c.name] += time.perf_counter() - t0
                for k, job in more.items():
                    wanted.setdefault(k, job)
                    owner.setdefault(k, c.name)
                if more:
                    left.append(c)
                else:
                    results[c.name] = res
            todo = left
    for key, name in owner.items():
        seconds[name] += ctx.session.seconds.get(key, 0.0)
    return [results[c.name] for c in checks], seconds
