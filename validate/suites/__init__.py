"""Suites are data: a registry of named lists of checks.

Every module in this package that defines ``build() -> Suite`` is a built-in suite named after
the module (``quick``, ``default``; a ``paper`` module added later appears by itself). A suite
can also be read from a TOML file with ``[[check]]`` tables (same schema as claim files, see
``validate.claims``).
"""

from __future__ import annotations

import importlib
import pkgutil
import time
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


def run_suite(suite: Suite, ctx) -> tuple[CheckResult, dict[str, float]]:
    """Run every check of ``suite``; returns the concatenated result and seconds per check."""
    results, timings = [], {}
    bar = ctx.bar(len(suite.checks), f"suite {suite.name}")
    for check in suite.checks:
        t0 = time.perf_counter()
        results.append(check.run(ctx))
        timings[check.name] = time.perf_counter() - t0
        bar.update()
    bar.close()
    return CheckResult.concat(results), timings
