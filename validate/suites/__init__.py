"""Suites are data: a registry of named lists of checks.

Every module in this package that defines ``build() -> Suite`` is a built-in suite named after
the module, described in one line by its ``SUMMARY`` string:

    quick.py      CI-sized: deep linear MLPs with the exact linear theory
    default.py    deep linear and deep tanh MLPs, lazy vs rich gamma0, all schemes
    paper.py      the experiments of Bordelon & Pehlevan (2022)

A suite can also be read from a TOML file with ``[[check]]`` tables (:func:`load_suite_file`;
same schema as claim files, see ``validate.claims``). Listing the suites (:func:`catalog`) reads
the modules' source and imports nothing, so ``dmft validate --help`` stays fast.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


def catalog() -> dict[str, str]:
    """``{name: one-line description}`` of the built-in suites, read from the source (no import)."""
    out = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_") or mod.ispkg:
            continue
        tree = ast.parse((Path(__path__[0]) / f"{mod.name}.py").read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "build" for n in tree.body):
            summary = [n.value.value for n in tree.body if isinstance(n, ast.Assign)
                       and [getattr(t, "id", None) for t in n.targets] == ["SUMMARY"]
                       and isinstance(n.value, ast.Constant)]
            doc = " ".join((ast.get_docstring(tree) or "").split("\n\n")[0].split())
            out[mod.name] = summary[0] if summary else doc
    return dict(sorted(out.items()))


def builtin_names() -> list[str]:
    """Names of the built-in suites (modules of this package with a ``build`` function)."""
    return list(catalog())


def get_suite(spec: str) -> Suite:
    """A built-in suite by name, or a suite file (TOML with ``[[check]]`` tables) by path."""
    if spec in builtin_names():
        return importlib.import_module(f"{__name__}.{spec}").build()
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return load_suite_file(path)
    raise ValueError(f"suite: unknown value {spec!r}; valid values are {builtin_names()} or a .toml file")


def load_suite_file(path: Path | str) -> Suite:
    """A suite from a TOML file with ``[[check]]`` tables (optional top-level name, description);
    raises ``validate.claims.ClaimError`` naming the file, line and field."""
    from ..claims import ClaimError, build_check, parse_tables

    path = Path(path)
    text, doc, items = parse_tables(path, "check", top=("name", "description"))
    checks = [build_check(path, text, "check", i, item) for i, item in enumerate(items)]
    try:
        return Suite(name=doc.get("name", path.stem), description=doc.get("description", ""),
                     checks=tuple(checks))
    except ValueError as exc:
        raise ClaimError(f"{path}: {exc}") from None


def run_suite(suite: Suite, ctx=None, *, executor=None) -> tuple[Any, dict[str, float]]:
    """Run every check of ``suite`` (plan, then run: ``validate.plan``); returns the concatenated
    ``CheckResult`` and seconds per check.

    ctx: a ``validate.Context`` (default: a fresh one, no disk cache). executor: None or
    "serial" (here), "processes[:N]", "dask[:N]", "dask://HOST:PORT", or any
    ``concurrent.futures.Executor``. The verdicts do not depend on it.
    """
    from ..frame import CheckResult
    from ..plan import run_checks
    from ..sources import Context

    results, seconds = run_checks(suite.checks, ctx if ctx is not None else Context(), executor=executor)
    return CheckResult.concat(results), seconds
