"""Compare theory and networks: metrics, statistics, checks, claims, reports, the ``dmft`` CLI.

    from validate import Context, Convergence, ProblemSpec, run_suite, get_suite, write_report
    ctx = Context(device="cpu", seed=0, cache_dir="reports/cache")
    result, seconds = run_suite(get_suite("quick"), ctx)
    result.verdicts          # tidy pandas DataFrame, one row per hypothesis test

Modules: ``checks/`` (the checks), ``claims`` (claim files), ``suites/`` (built-in suites and
suite files), ``spec`` / ``cnn_spec`` (problem specifications), ``sources`` (theory and networks
for a run: the Context), ``jobs`` (the solves and ensembles a run submits, what the cache
stores), ``plan`` (plan, then run: every check's jobs on one executor), ``frame`` (result tables), ``metrics``, ``stats``, ``power``, ``synthetic``,
``report`` / ``plots`` (run folders), ``paper/`` (the paper's experiments), ``cli`` (``dmft``).

The names below are imported on first use (PEP 562), so ``import validate`` and ``dmft --help``
do not load torch, pandas or matplotlib.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "checks": ("CHECKS", "Breakdown", "Convergence", "WidthIndependence"),
    "claims": ("Claim", "ClaimError", "evaluate", "load_claims"),
    "frame": ("CheckResult", "Verdict", "overall"),
    "metrics": ("OBSERVABLES", "alignment", "observable", "rel_error"),
    "report": ("read_tables", "render", "write_report"),
    "sources": ("Context",),
    "spec": ("ProblemSpec",),
    "stats": ("decide", "extrapolated_residual", "loglog_rate", "relative_difference"),
    "suites": ("Suite", "builtin_names", "get_suite", "load_suite_file", "run_suite"),
    "plan": ("run_checks",),
    "synthetic": ("synthetic_networks", "synthetic_trainer"),
    "model_width": ("width_study",),
}
_MODULE = {name: mod for mod, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE)


def __getattr__(name: str):
    if name in _MODULE:
        value = getattr(importlib.import_module(f".{_MODULE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'validate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
