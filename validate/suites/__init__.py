"""Suites are data: a registry of named lists of checks.

Every module in this package that defines ``build() -> Suite`` is a built-in suite named after
the module (``quick``, ``default``; a ``paper`` module added later appears by itself). A suite
can also be read from a TOML file with ``[[check]]`` tables (same schema as claim files, see
``validate.claims``).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..frame import CheckResult


@dataclass(frozen=True)
class Suite:
    """A named list of checks (objects with ``name`` and ``run(ctx) -> CheckResult``)."""

    name: str
    description: str
    checks: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.checks:
            raise ValueError(f"suite {self.name!r}: checks must not be empty")
        names = [c.name for c in self.checks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"suite {self.name!r}: check names must be unique, repeated: {dup}")


def builtin_names() -> list[str]:
    """Names of the built-in suites (modules of this package with a ``build`` function)."""
    out = []
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_") and hasattr(importlib.import_module(f"{__name__}.{mod.name}"), "build"):
            out.append(mod.name)
    return sorted(out)


def get_suite(spec: str) -> Suite:
    """A built-in suite by name, or a suite file (TOML with ``[[check]]`` tables) by path."""
    if spec in builtin_names():
        return importlib.import_module(f"{__name__}.{spec}").build()
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        from ..claims import load_suite_file

        return load_suite_file(path)
    raise ValueError(f"suite: unknown value {spec!r}; valid values are {builtin_names()} or a .toml file")


def run_suite(suite: Suite, ctx=None, *, executor=None) -> tuple[CheckResult, dict[str, float]]:
    """Run every check of ``suite`` (plan, then run: ``validate.plan``); returns the concatenated
    result and seconds per check.

    ctx: a ``validate.Context`` (default: a fresh one, no disk cache). executor: None or
    "serial" (here), "processes[:N]", "dask[:N]", "dask://HOST:PORT", or any
    ``concurrent.futures.Executor``. The verdicts do not depend on it.
    """
    from ..plan import run_checks
    from ..sources import Context

    results, seconds = run_checks(suite.checks, ctx if ctx is not None else Context(), executor=executor)
    return CheckResult.concat(results), seconds
