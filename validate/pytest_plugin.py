"""pytest plugin: every ``*.claims.toml`` file is collected, and each of its claims is one test.

Installed with the package (entry point ``pytest11``: ``validate.pytest_plugin``), so a project
that installs ``dmft-validate`` gets, from a plain ``pytest`` run:

- a claim that passes: a passed test;
- a claim that fails: a failed test whose report shows the claim's verdict and the failing
  verdict rows (for ``model = "python"`` claims: the failing modules, statistics and steps);
- an inconclusive claim: a skipped test with the reason, or a failed one with ``--dmft-strict``;
- a malformed claim file: a collection error naming the file, line and field.

Options: ``--dmft-strict``, ``--dmft-device`` (default cpu), ``--dmft-seed`` (default 0),
``--dmft-cache`` (a network cache folder; default none). Claims are evaluated by
``validate.claims.evaluate``, exactly as ``dmft check`` does. Nothing heavy is imported until a
claim file is found, so the plugin costs nothing in projects without claim files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SUFFIX = ".claims.toml"
MAX_ROWS = 30


def pytest_addoption(parser) -> None:
    g = parser.getgroup("dmft", "dmft-validate claim files (*.claims.toml)")
    g.addoption("--dmft-strict", action="store_true", default=False,
                help="fail inconclusive claims instead of skipping them")
    g.addoption("--dmft-device", default="cpu", help="torch device for the claims' networks (default cpu)")
    g.addoption("--dmft-seed", type=int, default=0, help="base random seed of the claims (default 0)")
    g.addoption("--dmft-cache", default=None, help="network cache folder for the claims (default: no cache)")


def pytest_collect_file(file_path: Path, parent):
    if file_path.name.endswith(SUFFIX):
        return ClaimsFile.from_parent(parent, path=file_path)
    return None


class ClaimFailed(Exception):
    """A claim that failed (or was inconclusive under --dmft-strict); the text is the report."""


class ClaimsFile(pytest.File):
    """A claim file: one :class:`ClaimItem` per ``[[claim]]``."""

    def collect(self):
        from validate import ClaimError, load_claims

        try:
            claims = load_claims(self.path)
        except ClaimError as exc:
            raise self.CollectError(str(exc)) from None
        for claim in claims:
            yield ClaimItem.from_parent(self, name=claim.name, claim=claim)


def failure_report(claim_row, rows) -> str:
    """The claim's verdict and reason, then its failing rows (at most MAX_ROWS)."""
    lines = [f"claim {claim_row['check']!r}: {claim_row['verdict'].upper()}", f"  {claim_row['reason']}"]
    bad = rows[rows["verdict"] == "fail"]
    if len(bad):
        lines.append(f"failing verdict rows ({len(bad)}):")
        for r in bad.head(MAX_ROWS).itertuples(index=False):
            where = [f"width {int(r.width)}" if r.width == r.width else "", f"step {int(r.time)}" if r.time == r.time else ""]
            est = f"{r.estimate:.3g} ± {r.stderr:.2g}" if r.estimate == r.estimate else "-"
            lines.append(f"  {r.observable:24s} {r.statistic:20s} {' '.join(w for w in where if w):18s} "
                         f"{est:18s} {r.reason}")
        if len(bad) > MAX_ROWS:
            lines.append(f"  ... and {len(bad) - MAX_ROWS} more (run `dmft check {{file}} --out DIR` for the full report)")
    return "\n".join(lines)


class ClaimItem(pytest.Item):
    """One claim, evaluated with ``validate.claims.evaluate``."""

    def __init__(self, *, claim, **kw):
        super().__init__(**kw)
        self.claim = claim

    def runtest(self) -> None:
        from validate import Context, evaluate

        opt = self.config.getoption
        cache = opt("--dmft-cache")
        ctx = Context(device=opt("--dmft-device"), seed=opt("--dmft-seed"),
                      cache_dir=Path(cache) if cache else None, progress=False)
        v = evaluate([self.claim], ctx).verdicts
        head = v[v["statistic"] == "claim"].iloc[0]
        rows = v[v["statistic"] != "claim"]
        if head["verdict"] == "fail" or (head["verdict"] == "inconclusive" and opt("--dmft-strict")):
            raise ClaimFailed(failure_report(head, rows).replace("{file}", str(self.path)))
        if head["verdict"] == "inconclusive":
            pytest.skip(f"inconclusive: {head['reason']}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ClaimFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, (self.claim.line or 1) - 1, f"claim {self.claim.name}"
