"""Claim files and suite files (TOML, read with tomllib).

A claim names a problem, a grid, an observable, a statistic and a tolerance; ``dmft check``
evaluates each claim with the matching check and reports pass / fail / inconclusive. Schema (one
``[[claim]]`` table per claim; a suite file uses ``[[check]]`` tables with the same keys)::

    [[claim]]
    name = "rich-loss-width-independent"      # required, unique
    statement = "free text shown in the report"
    kind = "width_independence"               # convergence | width_independence | breakdown
    observable = "loss"                       # or observables = ["loss", "test_loss"]
    statistic = "rel_diff_vs_widest"          # optional: which rows decide (default per kind)
    tolerance = 0.05                          # required, > 0
    [claim.problem]                           # validate.spec.ProblemSpec fields
    activation = "linear"
    depth = 2
    gamma0 = 1.0
    [claim.grid]                              # widths, seeds; gamma0 and depth lists (breakdown)
    widths = [64, 256]
    seeds = 8
    [claim.options]                           # any other parameter of the check class
    contrast = false

A CNN claim sets ``model = "cnn"`` in ``[claim.problem]`` and takes the fields of
``validate.cnn_spec.CNNSpec`` there (data = "digits", classes, n_train, n_test, depth, gamma0,
eta, batch_size, epochs, ...); the grid's widths are channel counts. Only kind
"width_independence" applies (run by ``CNNWidthIndependence``; observables test_mse / test_loss,
test_error, alignment, train_loss, final or with a ``_mean`` suffix averaged over training).

Errors name the file, the line (where it can be found) and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checks import CHECKS
from .frame import CheckResult, Verdict, frame, overall, verdict_row
from .cnn_spec import CNNSpec
from .spec import ProblemSpec

DEFAULT_STATISTIC = {
    "convergence": "extrapolated_residual",
    "width_independence": "rel_diff_vs_widest",
    "breakdown": "rel_error_vs_dmft",
    "cnn_width_independence": "rel_diff_vs_widest",
}
KEYS = {"name", "statement", "kind", "observable", "observables", "statistic", "tolerance",
        "problem", "grid", "options"}
GRID_KEYS = {"widths", "seeds", "gamma0", "depth"}


class ClaimError(ValueError):
    """A malformed claim or suite file; the message names the file, line and field."""


def _line_of(text: str, header: str, index: int, key: str | None) -> int | None:
    """1-based line of ``key`` inside the ``index``-th ``[[header]]`` table (or of the header)."""
    lines = text.splitlines()
    starts = [i for i, l in enumerate(lines) if re.match(rf"\s*\[\[\s*{header}\s*\]\]", l)]
    if index >= len(starts):
        return None
    start = starts[index]
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\s*\[\[", lines[i])), len(lines))
    if key is not None:
        leaf = key.split(".")[-1]
        for i in range(start, end):
            if re.match(rf"\s*{re.escape(leaf)}\s*=", lines[i]):
                return i + 1
    return start + 1


@dataclass(frozen=True)
class Claim:
    """One parsed claim: the check to run and which of its rows decide."""

    name: str
    statement: str
    kind: str
    statistic: str
    check: Any
    line: int | None = None


def _parse_tables(path: Path, header: str) -> tuple[str, dict, list[dict]]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ClaimError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimError(f"{path}: not valid TOML: {exc}") from None
    items = doc.get(header)
    if not isinstance(items, list) or not items:
        raise ClaimError(f"{path}: no [[{header}]] tables found (field '{header}')")
    return text, doc, items


def _build(path, text, header, i, item) -> tuple[Any, dict]:
    def err(field, msg):
        line = _line_of(text, header, i, field)
        where = f"{path}:{line}" if line else str(path)
        return ClaimError(f"{where}: [[{header}]] #{i + 1}, field '{field}': {msg}")

    if not isinstance(item, dict):
        raise err(header, "must be a table")
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise err(unknown[0], f"unknown field; valid fields are {sorted(KEYS)}")
    for req in ("name", "kind", "tolerance"):
        if req not in item:
            raise err(req, "required field is missing")
    if not isinstance(item["name"], str) or not item["name"]:
        raise err("name", "must be a non-empty string")
    kind = item["kind"]
    if kind not in CHECKS:
        raise err("kind", f"unknown value {kind!r}; valid values are {sorted(CHECKS)}")
    tol = item["tolerance"]
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise err("tolerance", f"must be a number > 0, got {tol!r}")
    if "observable" in item and "observables" in item:
        raise err("observables", "give either 'observable' or 'observables', not both")
    obs = item.get("observables", [item["observable"]] if "observable" in item else None)
    if obs is not None and (not isinstance(obs, list) or not all(isinstance(o, str) for o in obs)):
        raise err("observable", "must be a string (or 'observables' a list of strings)")
    for sub in ("problem", "grid", "options"):
        if not isinstance(item.get(sub, {}), dict):
            raise err(sub, "must be a table")
    grid = item.get("grid", {})
    bad = sorted(set(grid) - GRID_KEYS)
    if bad:
        raise err(f"grid.{bad[0]}", f"unknown grid field; valid fields are {sorted(GRID_KEYS)}")
    problem = item.get("problem", {})
    is_cnn = problem.get("model") == "cnn" or kind == "cnn_width_independence"
    if is_cnn:  # CNNs: width independence only, with validate.cnn_spec.CNNSpec fields
        if kind not in ("width_independence", "cnn_width_independence"):
            raise err("problem.model", f"model 'cnn' supports only kind 'width_independence', got {kind!r}")
        kind = "cnn_width_independence"
    try:
        spec = (CNNSpec if is_cnn else ProblemSpec).from_dict(problem)
    except (TypeError, ValueError) as exc:
        field = str(exc).split(":")[0].strip()
        raise err(f"problem.{field}", str(exc)) from None
    kw: dict[str, Any] = dict(problem=spec, tolerance=float(tol), name=item["name"])
    if obs is not None:
        kw["observables"] = tuple(obs)
    for g, target in (("widths", "widths"), ("seeds", "seeds")):
        if g in grid:
            kw[target] = tuple(grid[g]) if g == "widths" else grid[g]
    if kind == "breakdown":
        if "gamma0" in grid:
            kw["gamma0s"] = tuple(grid["gamma0"])
        if "depth" in grid:
            kw["depths"] = tuple(grid["depth"])
    elif "gamma0" in grid or "depth" in grid:
        raise err("grid.gamma0" if "gamma0" in grid else "grid.depth",
                  f"grids over gamma0/depth are only for kind 'breakdown'; set problem.gamma0 instead")
    for k, v in item.get("options", {}).items():
        kw[k] = tuple(v) if isinstance(v, list) else v
    try:
        check = CHECKS[kind](**kw)
    except TypeError as exc:
        m = re.search(r"argument '(\w+)'", str(exc))
        raise err(f"options.{m.group(1)}" if m else "options", str(exc)) from None
    except ValueError as exc:
        field = str(exc).split(":")[0].strip()
        raise err(field, str(exc)) from None
    return check, kw


def load_claims(path: Path | str) -> list[Claim]:
    """Parse a claim file; raises :class:`ClaimError` naming the line and field."""
    path = Path(path)
    text, _, items = _parse_tables(path, "claim")
    claims, seen = [], set()
    for i, item in enumerate(items):
        check, _ = _build(path, text, "claim", i, item)
        if check.name in seen:
            raise ClaimError(f"{path}:{_line_of(text, 'claim', i, 'name')}: [[claim]] #{i + 1}, "
                             f"field 'name': duplicate claim name {check.name!r}")
        seen.add(check.name)
        stat = item.get("statistic", DEFAULT_STATISTIC[item["kind"]])
        if not isinstance(stat, str):
            raise ClaimError(f"{path}:{_line_of(text, 'claim', i, 'statistic')}: field 'statistic': must be a string")
        claims.append(Claim(name=check.name, statement=str(item.get("statement", "")), kind=item["kind"],
                            statistic=stat, check=check, line=_line_of(text, "claim", i, None)))
    return claims


def load_suite_file(path: Path | str):
    """A suite from a TOML file with ``[[check]]`` tables (optional top-level name, description)."""
    from .suites import Suite

    path = Path(path)
    text, doc, items = _parse_tables(path, "check")
    checks = [_build(path, text, "check", i, item)[0] for i, item in enumerate(items)]
    try:
        return Suite(name=str(doc.get("name", path.stem)), description=str(doc.get("description", "")),
                     checks=tuple(checks))
    except ValueError as exc:
        raise ClaimError(f"{path}: {exc}") from None


def evaluate(claims: list[Claim], ctx, *, executor=None) -> CheckResult:
    """Run every claim's check (plan, then run on ``executor``: see ``validate.plan``); add one
    gating ``claim`` row per claim (the underlying rows are kept, non-gating). A claim passes
    when all its deciding rows pass, fails when any fails."""
    from .plan import run_checks

    parts, rows = [], []
    results, _ = run_checks([c.check for c in claims], ctx, executor=executor)
    for c, res in zip(claims, results):
        v = res.verdicts
        v["gating"] = False
        sel = v[v["statistic"] == c.statistic]
        if not len(sel):
            verdict, why = Verdict.INCONCLUSIVE, f"the check produced no {c.statistic!r} rows"
        else:
            verdict = overall(sel.assign(gating=True))
            counts = sel["verdict"].value_counts().to_dict()
            why = f"{c.statistic}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            worst = sel[sel["verdict"] == verdict.value]
            if len(worst):
                why += f"; e.g. {worst['reason'].iloc[0]}"
        rows.append(verdict_row(check=c.name, observable=",".join(getattr(c.check, "observables", ())),
                                scheme=c.kind, gamma0=getattr(c.check.problem, "gamma0", np.nan),
                                depth=getattr(c.check.problem, "depth", np.nan), statistic="claim",
                                tolerance=c.check.tolerance, verdict=verdict,
                                reason=(f"{c.statement} — " if c.statement else "") + why))
        parts.append(res)
    out = CheckResult.concat(parts)
    out.verdicts = frame("verdicts", rows + out.verdicts.to_dict("records"))
    return out
