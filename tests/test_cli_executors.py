"""``dmft validate --executor ...`` gives the serial verdict table; ``dmft cache info|clean``; a
truncated cache entry costs one warning line and a recomputation; a warm rerun trains nothing.

(The same behaviour at the library level, fast: tests/test_plan.py and tests/test_cache.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dask_cluster import dask_scheduler  # noqa: F401 - a pytest fixture
from validate.cli import main

ROOT = Path(__file__).resolve().parent.parent

#: Real networks (simulate.train) and the exact linear theory, small enough for seconds.
SUITE = """\
name = "tiny"
[[check]]
name = "conv"
kind = "convergence"
observables = ["loss", "ntk", "phi"]
tolerance = 0.1
[check.problem]
depth = 2
gamma0 = 1.0
n_train = 5
n_test = 2
input_dim = 8
steps = 6
[check.grid]
widths = [16, 32, 64]
seeds = 4
[[check]]
name = "width"
kind = "width_independence"
observables = ["loss", "test_loss"]
tolerance = 0.2
[check.problem]
depth = 2
gamma0 = 1.0
n_train = 5
n_test = 2
input_dim = 8
steps = 6
[check.grid]
widths = [16, 64]
seeds = 4
"""


def _validate(tmp_path, name, *flags, suite=None):
    if suite is None:
        suite = tmp_path / "tiny.toml"
        suite.write_text(SUITE)
    argv = ["validate", "--suite", str(suite), "--name", name, "--quiet", "--out", str(tmp_path / "runs"), *flags]
    code = main(argv if "--cache" in flags else [*argv, "--no-cache"])
    run = tmp_path / "runs" / name
    return code, pd.read_csv(run / "tables" / "verdicts.csv"), json.loads((run / "summary.json").read_text())


def _same(a, b):
    cols = ["check", "observable", "layer", "width", "statistic", "verdict", "reason"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    np.testing.assert_allclose(a["estimate"].to_numpy(float), b["estimate"].to_numpy(float), rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    code, verdicts, _ = _validate(tmp, "serial", "--executor", "serial")
    assert code == 0
    return verdicts


@pytest.mark.slow
def test_local_dask_cluster_writes_the_serial_verdict_table(tmp_path, serial):
    pytest.importorskip("distributed")
    code, verdicts, _ = _validate(tmp_path, "dask", "--executor", "dask:2")
    assert code == 0
    _same(serial, verdicts)


def test_default_executor_is_local_processes_and_a_warm_rerun_trains_nothing(tmp_path, serial):
    cache = str(tmp_path / "cache")
    code, verdicts, meta = _validate(tmp_path, "first", "--cache", cache)  # default: processes
    assert code == 0 and meta["work"] == {"solves": 1, "trained": 4, "cache_hits": 0}
    _same(serial, verdicts)
    code, verdicts, meta = _validate(tmp_path, "again", "--cache", cache, "--executor", "serial")
    assert code == 0 and meta["work"] == {"solves": 1, "trained": 0, "cache_hits": 4}
    _same(serial, verdicts)


@pytest.mark.slow
def test_separately_started_dask_scheduler_writes_the_serial_verdict_table(tmp_path, serial, dask_scheduler):
    code, verdicts, _ = _validate(tmp_path, "remote", "--executor", f"dask://{dask_scheduler}")
    assert code == 0
    _same(serial, verdicts)


@pytest.mark.slow
def test_quick_suite_on_dask_and_serial_write_the_same_verdict_table(tmp_path):
    pytest.importorskip("distributed")
    a = _validate(tmp_path, "serial", "--executor", "serial", suite="quick")
    b = _validate(tmp_path, "dask", "--executor", "dask", suite="quick")
    assert a[0] == b[0] == 0
    _same(a[1], b[1])


def _cli(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "validate", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=600)


def test_truncated_entry_is_one_warning_line_then_recomputed(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny.toml").write_text(SUITE)
    run = ["validate", "--suite", "tiny.toml", "--quiet", "--executor", "serial", "--cache", "c", "--out", "runs"]
    first = _cli(tmp_path, *run, "--name", "a")
    assert first.returncode == 0, first.stderr
    entries = sorted((tmp_path / "c").glob("*.npz"))
    assert len(entries) == 4
    victim = entries[0]
    victim.write_bytes(victim.read_bytes()[:1000])
    again = _cli(tmp_path, *run, "--name", "b")
    assert again.returncode == 0, again.stderr
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dmft: warning: cache:") and str(victim.name) in lines[0], lines
    meta = json.loads((tmp_path / "runs" / "b" / "summary.json").read_text())
    assert meta["work"] == {"solves": 1, "trained": 1, "cache_hits": 3}
    a = pd.read_csv(tmp_path / "runs" / "a" / "tables" / "verdicts.csv")
    b = pd.read_csv(tmp_path / "runs" / "b" / "tables" / "verdicts.csv")
    _same(a, b)
    # dmft cache info / clean, on the folder given and on the default one ($DMFT_CACHE)
    capsys.readouterr()
    assert main(["cache", "info", "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "4 entries" in out and "ensemble" in out
    monkeypatch.setenv("DMFT_CACHE", str(tmp_path / "c"))
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "c") in out and "4 entries" in out
    assert main(["cache", "clean"]) == 0
    assert "removed 4 files" in capsys.readouterr().out and not list((tmp_path / "c").glob("*.npz"))


def test_cache_command_on_an_empty_folder(tmp_path, capsys):
    assert main(["cache", "info", "--cache", str(tmp_path / "none")]) == 0
    assert "does not exist" in capsys.readouterr().out
    assert main(["cache", "clean", "--cache", str(tmp_path / "none")]) == 0
    assert "removed 0 files" in capsys.readouterr().out
    assert main(["cache", "bogus"]) == 2
