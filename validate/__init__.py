"""Compare theory and networks: metrics, statistics, checks, claims, reports, the ``dmft`` CLI.

    from validate import Context, Convergence, ProblemSpec, run_suite, get_suite, write_report
    ctx = Context(device="cpu", seed=0, cache_dir="reports/cache")
    result, seconds = run_suite(get_suite("quick"), ctx)
    result.verdicts          # tidy pandas DataFrame, one row per hypothesis test
"""

from .checks import CHECKS, Breakdown, Convergence, WidthIndependence
from .claims import Claim, ClaimError, evaluate, load_claims, load_suite_file
from .frame import CheckResult, Verdict, overall
from .metrics import OBSERVABLES, alignment, observable, rel_error
from .report import read_tables, render, write_report
from .sources import Context
from .spec import ProblemSpec
from .stats import decide, extrapolated_residual, loglog_rate, relative_difference
from .suites import Suite, builtin_names, get_suite, run_suite
from .synthetic import synthetic_networks, synthetic_trainer
from .width_study import width_study

__all__ = [
    "CHECKS", "Breakdown", "CheckResult", "Claim", "ClaimError", "Context", "Convergence",
    "OBSERVABLES", "ProblemSpec", "Suite", "Verdict", "WidthIndependence", "alignment",
    "builtin_names", "decide", "evaluate", "extrapolated_residual", "get_suite", "load_claims",
    "load_suite_file", "loglog_rate", "observable", "overall", "read_tables", "rel_error",
    "relative_difference", "render", "run_suite", "synthetic_networks", "synthetic_trainer",
    "width_study", "write_report",
]
