"""The dmft command line: subcommands, reports, cache reuse and exit codes (0 pass, 1 fail, 2 usage)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
    # serial: the fakes' trainer is a closure, which a process pool cannot take
    return [*extra, "--quiet", "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"),
            "--executor", "serial"]


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
    assert main(["validate", "--suite", _suite(tmp_path, "ntk", 1.5), "--no-cache", "--quiet", "--executor", "serial",
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


# ---- strict CLI: input errors exit 2 before any work ------------------------------------------

@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if anything is trained or solved."""
    def forbidden(*a, **k):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(sources, "default_trainer", lambda: forbidden)
    monkeypatch.setattr(sources, "default_solver", forbidden)


def _warm(tmp_path):
    """A run whose networks are all in the cache afterwards (the fakes behind the real CLI)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sources, "default_trainer", lambda: fake_trainer())
        mp.setattr(sources, "default_solver", fake_solver)
        assert main(["validate", "--suite", _suite(tmp_path), "--name", "warm", *_args(tmp_path)]) == 0


BAD_FLAGS = [
    (["--threads", "-1"], "--threads"),
    (["--threads", "0"], "--threads"),
    (["--device", "cuda:x"], "device"),
    (["--device", "tpu"], "device"),
    (["--device", "cuda:99"], "device"),
    (["--executor", "threads"], "executor"),
    (["--executor", "processes:0"], "executor"),
    (["--executor", "dask://nohost"], "executor"),
]
if not torch.cuda.is_available():
    BAD_FLAGS.append((["--device", "cuda"], "CUDA"))


@pytest.mark.parametrize("flags, words", BAD_FLAGS)
def test_bad_flags_exit_2_before_any_work_even_with_a_warm_cache(tmp_path, capsys, flags, words, request):
    _warm(tmp_path)
    request.getfixturevalue("no_work")
    capsys.readouterr()
    assert main(["validate", "--suite", _suite(tmp_path), "--name", "r2", *_args(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert words in err[-1] and err[-1].startswith("dmft validate: error:"), err  # argparse adds its usage
    assert not (tmp_path / "runs" / "r2").exists()
    assert main(["simulate", "--width", "16", "--quiet", *flags]) == 2


def test_out_and_cache_are_checked_before_the_run(tmp_path, no_work, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    suite = _suite(tmp_path)
    for argv, words in (
        (["validate", "--suite", suite, "--quiet", "--out", str(a_file)], "not a folder"),
        (["validate", "--suite", suite, "--quiet", "--out", str(a_file / "sub")], "is a file"),
        (["validate", "--suite", suite, "--quiet", "--out", str(tmp_path), "--cache", str(a_file)], "--cache"),
        (["check", str(ROOT / "examples" / "claims.toml"), "--quiet", "--out", str(a_file)], "--out"),
        (["solve", "--out", str(tmp_path)], "is a folder"),
        (["simulate", "--width", "8", "--out", str(a_file / "x.pt")], "not a folder"),
        (["validate", "--suite", suite, "--quiet", "--out", str(tmp_path), "--name", "../up"], "--name"),
        (["check", str(ROOT / "examples" / "claims.toml"), "--quiet", "--name", "x"], "--out"),
    ):
        assert main(argv) == 2, argv
        assert words in capsys.readouterr().err, argv


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_out_is_rejected(tmp_path, no_work, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert main(["validate", "--suite", _suite(tmp_path), "--quiet", "--out", str(ro / "runs")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_an_existing_run_folder_is_not_replaced_without_overwrite(tmp_path, fakes, capsys):
    argv = ["validate", "--suite", _suite(tmp_path), "--name", "r", *_args(tmp_path)]
    assert main(argv) == 0
    run = tmp_path / "runs" / "r"
    (run / "mine.txt").write_text("keep me")
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err and (run / "mine.txt").read_text() == "keep me"
    assert main([*argv, "--overwrite"]) == 0
    assert not (run / "mine.txt").exists() and (run / "summary.json").exists()


def test_default_run_names_never_collide(tmp_path, fakes, monkeypatch):
    # two runs that start (and end) in the same second get two folders
    import datetime as dt

    import validate.cli.commands as cli  # the run-folder names are made there

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(cli, "datetime", Frozen)
    for _ in range(2):
        assert main(["validate", "--suite", _suite(tmp_path), *_args(tmp_path)]) == 0
    names = sorted(p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    assert names == ["20300102T030405Z-unit", "20300102T030405Z-unit-2"]


# ---- exit codes: a failed solve or simulation is 1, not 2 ------------------------------------------

def test_a_raising_solver_inside_a_check_is_failed_rows_and_exit_1(tmp_path, monkeypatch, capsys):
    from theory import SolverError

    def raising(problem, scheme="dmft", **_):
        raise SolverError("dmft solve ended with status 'diverged' at step 7")

    monkeypatch.setattr(sources, "default_trainer", lambda: fake_trainer())
    monkeypatch.setattr(sources, "default_solver", raising)
    assert main(["validate", "--suite", _suite(tmp_path), "--name", "r", *_args(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "SolverError" in out and "step 7" in out
    assert (tmp_path / "runs" / "r" / "summary.json").exists()


def test_solve_exits_1_when_the_solver_raises_or_is_not_ok(monkeypatch, capsys):
    import dataclasses

    from theory import SolverError, Status

    def raising(problem, scheme="dmft", **_):
        raise SolverError("no convergence")

    monkeypatch.setattr(sources, "default_solver", raising)
    assert main(["solve", "--depth", "2"]) == 1
    assert "SolverError: no convergence" in capsys.readouterr().err
    monkeypatch.setattr(sources, "default_solver", lambda p, s="dmft", **k: dataclasses.replace(
        fake_solver(p, s), status=Status.DIVERGED, info={"reason": "kernels exploded"}))
    assert main(["solve", "--depth", "2"]) == 1
    assert "kernels exploded" in capsys.readouterr().out


def test_simulate_exits_1_when_every_seed_diverged(monkeypatch, capsys):
    import dataclasses

    def diverging(problem, width, seeds=1, **kw):
        run = fake_trainer()(problem, width, seeds=seeds, **kw)
        return dataclasses.replace(run, diverged=torch.ones(seeds, dtype=torch.bool),
                                   diverged_step=torch.full((seeds,), 3))

    monkeypatch.setattr(sources, "default_trainer", lambda: diverging)
    assert main(["simulate", "--width", "64", "--seeds", "3", "--quiet"]) == 1
    assert "every seed diverged" in capsys.readouterr().err


def test_simulate_impossible_width_exits_2_naming_width(capsys):
    assert main(["simulate", "--width", str(10**7), "--seeds", "1", "--quiet"]) == 2
    assert "width:" in capsys.readouterr().err


# ---- a finished CLI: version, help with defaults, lazy imports, no FutureWarning, Ctrl-C --------------

def test_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dmft {version('dmft-validate')}"


def test_every_option_shows_its_default_and_the_suites_are_listed(capsys):
    import argparse

    from validate.cli import parser
    from validate.suites import builtin_names

    top = parser()
    subs = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in subs.items():
        fmt = sub._get_formatter()
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.dest)
                assert "default" in fmt._get_help_string(action).lower(), (name, action.option_strings)
    assert main(["validate", "--help"]) == 0
    out = capsys.readouterr().out
    listed = out.split("built-in suites:")[1]
    assert all(f"  {s} " in listed for s in builtin_names()) and {"quick", "default", "paper"} <= set(builtin_names())


def _python(code, *args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, **kw)


def test_help_imports_no_torch_pandas_or_matplotlib():
    code = ("import sys, contextlib, io\n"
            "from validate.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['--help']) == 0 and main(['validate', '--help']) == 0 and main(['--version']) == 0\n"
            "import validate\n"
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'numpy') if m in sys.modules))")
    r = _python(code)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_no_torch_jit_script_future_warning():
    # the perturbative scheme uses forward-mode AD, whose first use scripts decompositions
    r = subprocess.run([sys.executable, "-W", "always", "-m", "validate", "solve", "--scheme", "perturbative",
                        "--depth", "2", "--steps", "4"], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert "jit" not in r.stderr and "Warning" not in r.stderr, r.stderr


CTRL_C_SUITE = """\
[[check]]
name = "slow"
kind = "convergence"
observables = ["loss"]
tolerance = 0.05
[check.problem]
depth = 2
n_train = 8
input_dim = 16
steps = 40
[check.grid]
widths = [64, 128, 256, 512, 1024, 2048, 4096]
seeds = 64
"""


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


@pytest.mark.parametrize("executor", ["serial", "processes:2"])
def test_ctrl_c_prints_one_line_exits_130_and_leaves_no_temporary_files(tmp_path, executor):
    import signal
    import time

    if executor != "serial" and not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("needs Linux /proc to see the worker processes")
    suite = tmp_path / "slow.toml"
    suite.write_text(CTRL_C_SUITE)
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    p = subprocess.Popen([sys.executable, "-m", "validate", "validate", "--suite", str(suite), "--quiet",
                          "--out", str(runs), "--cache", str(cache), "--threads", "1", "--executor", executor],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120

    def under_way():  # the first ensemble is cached (serial), or both workers are running
        if executor == "serial":
            return cache.exists() and any(cache.glob("*.npz"))
        return len(_children(p.pid)) >= 3  # two workers and multiprocessing's resource tracker

    while not under_way() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if executor != "serial":
        time.sleep(3.0)  # let the workers import torch and start training
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ["dmft validate: interrupted"], err
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*"))
    assert not runs.exists() or not list(runs.iterdir())


def test_ctrl_c_while_writing_the_report_removes_its_temporary_folder(tmp_path, fakes, monkeypatch, capsys):
    from validate.report import run as report_run

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_run, "render_into", interrupted)
    assert main(["validate", "--suite", _suite(tmp_path), "--name", "r", *_args(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "dmft validate: interrupted"
    assert list((tmp_path / "runs").iterdir()) == []
