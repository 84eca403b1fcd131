"""The dmft command line: subcommands, reports, cache reuse and exit codes (0 pass, 1 fail, 2 usage)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import validate.sources as sources
from validate.cli import main
from validate_fakes import fake_solver, fake_trainer  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent

SUITE = """\
name = "unit"
[[check]]
name = "conv"
kind = "convergence"
observables = ["loss", "ntk"]
tolerance = 0.03
[check.problem]
depth = 2
gamma0 = {g0}
n_train = 5
input_dim = 8
steps = 8
[check.grid]
widths = [64, 128, 256, 512]
seeds = 32
[check.options]
scheme = "{scheme}"
"""


@pytest.fixture
def fakes(monkeypatch):
    """Networks and theory with known truth (tests/validate_fakes.py) behind the real CLI."""
    monkeypatch.setattr(sources, "default_trainer", lambda: fake_trainer())
    monkeypatch.setattr(sources, "default_solver", fake_solver)


def _suite(tmp_path, scheme="dmft", g0=0.5):
    p = tmp_path / f"suite_{scheme}.toml"
    p.write_text(SUITE.format(scheme=scheme, g0=g0))
    return str(p)


def _args(tmp_path, *extra):
    return [*extra, "--quiet", "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")]


def test_validate_passes_writes_report_and_reuses_cache(tmp_path, fakes, capsys):
    assert main(["validate", "--suite", _suite(tmp_path), "--name", "r1", *_args(tmp_path)]) == 0
    run = tmp_path / "runs" / "r1"
    meta = json.loads((run / "summary.json").read_text())
    assert meta["overall"] == "pass" and meta["work"]["trained"] == 4
    assert main(["validate", "--suite", _suite(tmp_path), "--name", "r2", *_args(tmp_path)]) == 0
    meta = json.loads((tmp_path / "runs" / "r2" / "summary.json").read_text())
    assert meta["work"] == {"solves": 1, "trained": 0, "cache_hits": 4}
    assert "overall: PASS" in capsys.readouterr().out


def test_validate_exit_1_when_a_check_fails(tmp_path, fakes):
    # the fake NTK's kernels are off by 0.04 * 1.5^2 = 9 %: refuted
    assert main(["validate", "--suite", _suite(tmp_path, "ntk", 1.5), "--no-cache", "--quiet",
                 "--out", str(tmp_path / "runs")]) == 1


def test_check_claims(tmp_path, fakes):
    assert main(["check", str(ROOT / "examples" / "claims.toml"), *_args(tmp_path)]) == 0
    assert any((tmp_path / "runs").iterdir())
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "examples" / "claims.toml").read_text().replace("depth = 3", "depth = 0"))
    assert main(["check", str(bad), "--quiet"]) == 2


def test_report_rerenders(tmp_path, fakes):
    assert main(["validate", "--suite", _suite(tmp_path), "--name", "r", *_args(tmp_path)]) == 0
    run = tmp_path / "runs" / "r"
    (run / "index.html").unlink()
    assert main(["report", str(run)]) == 0 and (run / "index.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_solve_and_simulate(tmp_path, fakes, capsys):
    out = tmp_path / "sol.pt"
    assert main(["solve", "--scheme", "ntk", "--depth", "3", "--out", str(out)]) == 0 and out.exists()
    assert main(["simulate", "--width", "64", "--seeds", "3", "--quiet", "--out", str(tmp_path / "n.pt")]) == 0
    assert "final train loss" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main([]) == 2
    assert main(["validate", "--suite", "no-such-suite", "--quiet"]) == 2
    assert "valid values" in capsys.readouterr().err
    assert main(["solve", "--scheme", "bogus"]) == 2
    assert main(["solve", "--gamma0", "-1"]) == 2
    assert main(["validate", "--help"]) == 0


def test_python_dash_m_validate():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "validate", "check", "missing.toml"], capture_output=True,
                       text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and "missing.toml" in r.stderr


def test_builtin_suites_are_registered_data():
    from validate.suites import builtin_names, get_suite

    assert {"quick", "default"} <= set(builtin_names())
    for name in ("quick", "default"):
        s = get_suite(name)
        assert s.name == name and len(s.checks) >= 3 and all(hasattr(c, "run") for c in s.checks)
