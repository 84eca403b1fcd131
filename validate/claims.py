"""Claim files and the checks of suite files (TOML, read with tomllib, or tomli before Python 3.11).

A claim names a problem, a grid, an observable, a statistic and a tolerance; ``dmft check``
evaluates each claim with the matching check and reports pass / fail / inconclusive. Schema (one
``[[claim]]`` table per claim; a suite file uses ``[[check]]`` tables with the same keys)::

    [[claim]]
    name = "rich-loss-width-independent"      # required, unique
    statement = "free text shown in the report"
    kind = "width_independence"               # convergence | width_independence | breakdown |
                                              # fluctuation | single_width (docs/finite_width.md)
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

Strict: every field is checked against its type (``widths = 64``, ``widths = [16.5, 32]``,
``gamma0 = "1.5"`` or ``gamma0 = true`` are errors, never coerced), unknown fields, options and
statistics are errors, and each problem is built once so that e.g. an eta past the stability
limit is reported here, not in the middle of a run. Errors (:class:`ClaimError`) name the file,
the line and the field. Suite files are read by ``validate.suites.load_suite_file`` with
:func:`parse_tables` and :func:`build_check`.

A ``model = "python"`` claim studies any PyTorch model named by ``"module:callable"`` references
(``validate.model_width.claim`` documents and checks its fields).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .checks import CHECKS
from .cnn_spec import CNNSpec
from .frame import CheckResult, Verdict, frame, overall, verdict_row
from .spec import ProblemSpec

DEFAULT_STATISTIC = {
    "convergence": "extrapolated_residual",
    "width_independence": "rel_diff_vs_widest",
    "breakdown": "rel_error_vs_dmft",
    "cnn_width_independence": "rel_diff_vs_widest",
    "fluctuation": "fluctuation",
    "single_width": "single_width_mean",
}
KEYS = {"name", "statement", "kind", "observable", "observables", "statistic", "tolerance",
        "problem", "grid", "options"}
#: grid field -> keyword of the check class
GRID = {"widths": "widths", "seeds": "seeds", "gamma0": "gamma0s", "depth": "depths"}
GRID_KEYS = set(GRID)
#: check keywords that a claim sets through its own fields, not through [claim.options]
SET_ELSEWHERE = {"problem": "problem", "name": "name", "tolerance": "tolerance",
                 "observables": "observable(s)", **{kw: f"grid.{g}" for g, kw in GRID.items()}}


class ClaimError(ValueError):
    """A malformed claim or suite file; the message names the file, line and field."""


def _line_of(text: str, header: str, index: int, key: str | None) -> int | None:
    """1-based line of the dotted ``key`` (``"grid.widths"``) inside the ``index``-th
    ``[[header]]`` table: in its ``[header.grid]`` sub-table, as a dotted key or an inline table;
    the table's own line when the key is absent or None."""
    lines = text.splitlines()
    starts = [i for i, l in enumerate(lines) if re.match(rf"\s*\[\[\s*{header}\s*\]\]", l)]
    if index >= len(starts):
        return None
    start = starts[index]
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\s*\[\[", lines[i])), len(lines))
    if key is None:
        return start + 1
    *table, leaf = key.split(".")
    sub, cur, inline = ".".join(table), "", None
    for i in range(start + 1, end):
        m = re.match(rf"\s*\[\s*{header}\.([\w.]+)\s*\]", lines[i])
        if m:
            cur = m.group(1)
            if cur == key:
                return i + 1
            continue
        if cur == sub and re.match(rf"\s*{re.escape(leaf)}\s*=", lines[i]):
            return i + 1
        if cur == "" and re.match(rf"\s*{re.escape(key)}\s*=", lines[i]):
            return i + 1
        if cur == "" and table and inline is None and re.match(rf"\s*{re.escape(table[0])}\s*=", lines[i]):
            inline = i + 1
    return inline or start + 1


@dataclass(frozen=True)
class Claim:
    """One parsed claim: the check to run and which of its rows decide."""

    name: str
    statement: str
    kind: str
    statistic: str
    check: Any
    line: int | None = None


def _top_line(text: str, key: str) -> int | None:
    for i, l in enumerate(text.splitlines()):
        if re.match(r"\s*\[", l):
            return None
        if re.match(rf"\s*{re.escape(key)}\s*=", l):
            return i + 1
    return None


def parse_tables(path: Path, header: str, top: tuple[str, ...] = ()) -> tuple[str, dict, list[dict]]:
    """``(text, document, [[header]] tables)`` of a TOML file; ``top``: allowed top-level fields
    besides ``header``. Raises :class:`ClaimError` naming the file (and line)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ClaimError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ClaimError(f"{path}: not a text file (UTF-8 TOML expected)") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimError(f"{path}: not valid TOML: {exc}") from None
    items = doc.get(header)
    if not isinstance(items, list) or not items:
        raise ClaimError(f"{path}: no [[{header}]] tables found (field '{header}')")
    for k, v in doc.items():
        line = _top_line(text, k)
        where = f"{path}:{line}" if line else str(path)
        if k not in (header, *top):
            raise ClaimError(f"{where}: field '{k}': unknown top-level field; valid fields are "
                             f"{sorted((header, *top))}")
        if k != header and not isinstance(v, str):
            raise ClaimError(f"{where}: field '{k}': must be a string, got {v!r}")
    return text, doc, items


class _Where:
    """Builds the :class:`ClaimError` of one ``[[header]]`` table (file, line, field)."""

    def __init__(self, path, text, header, index, item) -> None:
        self.path, self.text, self.header, self.index, self.item = path, text, header, index, item

    def __call__(self, field: str, msg: str) -> ClaimError:
        line = _line_of(self.text, self.header, self.index, field)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ClaimError(f"{where}: [[{self.header}]] #{self.index + 1}, field '{field}': {msg}")

    def field_of(self, kw: str) -> str:
        """The claim field behind a check keyword (``gamma0s`` -> ``grid.gamma0``)."""
        if kw in ("observables", "observable", "layer"):
            return "observables" if "observables" in self.item else "observable"
        if kw in ("tolerance", "name"):
            return kw
        grid = {v: g for g, v in GRID.items()}
        if kw in grid:
            return f"grid.{grid[kw]}"
        return f"options.{kw}"


def _header_fields(item: dict, err: _Where) -> tuple[str, list[str] | None]:
    """Check the plain fields of one table; returns (kind, observables or None)."""
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise err(unknown[0], f"unknown field; valid fields are {sorted(KEYS)}")
    for req in ("name", "kind", "tolerance"):
        if req not in item:
            raise err(req, "required field is missing")
    for key in ("name", "statement", "kind", "statistic", "observable"):
        if key in item and not isinstance(item[key], str):
            raise err(key, f"must be a string, got {item[key]!r}")
    if not item["name"]:
        raise err("name", "must be a non-empty string")
    if item["kind"] not in CHECKS:
        raise err("kind", f"unknown value {item['kind']!r}; valid values are {sorted(CHECKS)}")
    if "observable" in item and "observables" in item:
        raise err("observables", "give either 'observable' or 'observables', not both")
    obs = item.get("observables", [item["observable"]] if "observable" in item else None)
    if "observables" in item and (not isinstance(obs, list) or not obs or not all(isinstance(o, str) for o in obs)):
        raise err("observables", f"must be a non-empty list of strings, got {obs!r}")
    for sub in ("problem", "grid", "options"):
        if not isinstance(item.get(sub, {}), dict):
            raise err(sub, f"must be a table, got {item[sub]!r}")
    bad = sorted(set(item.get("grid", {})) - GRID_KEYS)
    if bad:
        raise err(f"grid.{bad[0]}", f"unknown grid field; valid fields are {sorted(GRID_KEYS)}")
    return item["kind"], obs


def _problem(item: dict, kind: str, err: _Where):
    """(kind, spec): the problem table as a ProblemSpec or (``model = "cnn"``) a CNNSpec."""
    problem = item.get("problem", {})
    is_cnn = problem.get("model") == "cnn" or kind == "cnn_width_independence"
    if is_cnn:  # CNNs: width independence only, with validate.cnn_spec.CNNSpec fields
        if kind not in ("width_independence", "cnn_width_independence"):
            raise err("problem.model", f"model 'cnn' supports only kind 'width_independence', got {kind!r}")
        kind = "cnn_width_independence"
    cls = CNNSpec if is_cnn else ProblemSpec
    try:
        return kind, cls.from_dict(problem)
    except (TypeError, ValueError) as exc:
        field = str(exc).split(":")[0].strip()
        raise err(f"problem.{field}" if field in problem or field in cls.field_names() else "problem",
                  str(exc)) from None


def _keywords(item: dict, kind: str, obs, spec, err: _Where) -> dict[str, Any]:
    """The keyword arguments of the check class from the claim's fields, grid and options."""
    kw: dict[str, Any] = dict(problem=spec, tolerance=item["tolerance"], name=item["name"])
    if obs is not None:
        kw["observables"] = obs
    grid = item.get("grid", {})
    if kind != "breakdown" and ("gamma0" in grid or "depth" in grid):
        raise err("grid.gamma0" if "gamma0" in grid else "grid.depth",
                  "grids over gamma0/depth are only for kind 'breakdown'; set problem.gamma0 instead")
    kw.update({GRID[g]: v for g, v in grid.items()})
    fields = {f.name for f in dataclasses.fields(CHECKS[kind])}
    valid = sorted(fields - set(SET_ELSEWHERE))
    for k, v in item.get("options", {}).items():
        if k in SET_ELSEWHERE:
            raise err(f"options.{k}", f"set by the claim's field '{SET_ELSEWHERE[k]}', not an option")
        if k not in fields:
            raise err(f"options.{k}", f"unknown option for kind {item['kind']!r}; valid options are {valid}")
        kw[k] = v
    return kw


def build_check(path: Path, text: str, header: str, i: int, item: Any) -> Any:
    """The check of the ``i``-th ``[[header]]`` table ``item`` (see the module docstring)."""
    err = _Where(path, text, header, i, item)
    if not isinstance(item, dict):
        raise err(header, "must be a table")
    if isinstance(item.get("problem"), dict) and item["problem"].get("model") == "python":
        from .model_width import build_claim_check  # any PyTorch model (validate.width_study)

        return build_claim_check(item, Path(path).parent, err)
    kind, obs = _header_fields(item, err)
    kind, spec = _problem(item, kind, err)
    kw = _keywords(item, kind, obs, spec, err)
    try:
        check = CHECKS[kind](**kw)
    except (TypeError, ValueError) as exc:
        field = str(exc).split(":")[0].strip()
        raise err(err.field_of(field) if re.fullmatch(r"\w+", field) else "options", str(exc)) from None
    if "statistic" in item and item["statistic"] not in check.statistics():
        raise err("statistic", f"unknown value {item['statistic']!r}; the rows of kind {item['kind']!r} "
                               f"have the statistics {list(check.statistics())}")
    if isinstance(spec, ProblemSpec):  # eta past the stability limit, activation names, ...
        for depth in getattr(check, "depths", ()) or (spec.depth,):
            try:
                spec.replace(depth=depth).build()
            except ValueError as exc:
                field = str(exc).split(":")[0].strip()
                raise err(f"problem.{field}" if field in spec.field_names() else "problem", str(exc)) from None
    return check


def load_claims(path: Path | str) -> list[Claim]:
    """Parse a claim file; raises :class:`ClaimError` naming the line and field."""
    path = Path(path)
    text, _, items = parse_tables(path, "claim")
    claims, seen = [], set()
    for i, item in enumerate(items):
        check = build_check(path, text, "claim", i, item)
        if check.name in seen:
            raise ClaimError(f"{path}:{_line_of(text, 'claim', i, 'name')}: [[claim]] #{i + 1}, "
                             f"field 'name': duplicate claim name {check.name!r}")
        seen.add(check.name)
        claims.append(Claim(name=check.name, statement=item.get("statement", ""), kind=item["kind"],
                            statistic=item.get("statistic", getattr(check, "statistic", None)
                                               or DEFAULT_STATISTIC[item["kind"]]), check=check,
                            line=_line_of(text, "claim", i, None)))
    return claims


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
