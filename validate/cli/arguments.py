"""The ``dmft`` argument parser: every subcommand, its options and their checked types."""

from __future__ import annotations

import argparse


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless the text already states it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text.lower():
            return text
        shown = "off" if action.default is False and action.const is True else "%(default)s"
        return f"{text} (default: {shown})"


def _int_at_least(lo: int):
    """An argparse type: an integer ``>= lo``, with a message naming the bound."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {v}")
        return v

    return parse


_positive_int, _count = _int_at_least(1), _int_at_least(0)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dmft-validate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _common(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--device", default="cpu", help="torch device for networks and solvers: cpu or cuda[:i]")
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--seed", type=_count, default=0, help="base random seed (network i uses seed + i)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch intra-op threads (default: torch's own choice; 1 is fastest on a busy machine)")


CACHE_HELP = "cache folder of solves and networks (default: $DMFT_CACHE, else reports/runs/.cache)"


def _runs(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--cache", default=None, help=CACHE_HELP)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--executor", default="processes",
                   help="where the jobs run: serial, processes[:N] (N local processes; without N, one per "
                        "available core), dask[:N] (a local Dask cluster) or dask://HOST:PORT (a running "
                        "Dask scheduler); the verdicts do not depend on it")
    p.add_argument("--strict", action="store_true", help=f"exit 1 when {what} is inconclusive")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder of the same --name (without it: exit 2)")


def _problem_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problem (embedded Gaussian data)")
    g.add_argument("--activation", default="linear", help="linear, relu, tanh, erf or softplus")
    g.add_argument("--depth", type=_positive_int, default=2, help="hidden layers L")
    g.add_argument("--gamma0", type=float, default=1.0, help="feature-learning strength (0: lazy)")
    g.add_argument("--eta", type=float, default=0.1, help="gradient-descent step size")
    g.add_argument("--steps", type=_positive_int, default=20, help="gradient-descent steps T")
    g.add_argument("--n-train", type=_positive_int, default=10, help="training points P")
    g.add_argument("--n-test", type=_count, default=0, help="test points Q")
    g.add_argument("--input-dim", type=_positive_int, default=20, help="input dimension D")
    g.add_argument("--data-seed", type=_count, default=0, help="seed of the data")
    g.add_argument("--target", default="linear", choices=["linear", "sign"], help="target function")


def _suites_epilog() -> str:
    from ..suites import catalog

    lines = [f"  {name:9s} {text}" for name, text in catalog().items()]
    return "built-in suites:\n" + "\n".join(lines) + "\n  FILE.toml a suite file ([[check]] tables; see examples/suite.toml)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dmft", formatter_class=_Help,
                                  description="Validate the infinite-width DMFT of feature learning "
                                              "against real networks trained at growing widths.",
                                  epilog="exit codes: 0 pass, 1 a check (or a solve/simulation) failed, "
                                         "2 usage or input error, 130 interrupted")
    top.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = lambda name, **kw: sub.add_parser(name, formatter_class=_Help, **kw)  # noqa: E731
    p = add("validate", help="run a validation suite and write a report folder", epilog=_suites_epilog(),
            description="Run a validation suite and write a report folder OUT/NAME.")
    p.add_argument("--suite", default="default", help="a built-in suite (listed below) or a suite .toml file")
    _common(p, "root folder of run folders (default: reports/runs)")
    p.add_argument("--name", default=None, help="run folder name (default: UTC start time and suite)")
    _runs(p, "the overall verdict")
    p = add("check", help="evaluate the claims of a TOML claim file", description="Evaluate a claim file.")
    p.add_argument("claims", help="claim file (.toml)")
    _common(p, "write a report folder under this root (default: no report)")
    p.add_argument("--name", default=None, help="run folder name (default: UTC start time and file name)")
    _runs(p, "a claim")
    p = add("report", help="re-render a report folder from its tables", description="Re-render a report.")
    p.add_argument("run_dir", help="a run folder written by dmft validate or dmft check")
    _common(p, "unused (default: the report is rendered in place)")
    p = add("solve", help="solve the infinite-width theory for one problem",
            description="Solve the infinite-width theory; exit 1 unless the solve is ok.")
    _problem_args(p)
    p.add_argument("--scheme", default="dmft", help="dmft, gia, ntk or perturbative")
    _common(p, "save the solution's arrays to this .pt file (default: not saved)")
    p = add("simulate", help="train finite-width networks for one problem",
            description="Train finite-width networks; exit 1 when every seed diverged.")
    _problem_args(p)
    p.add_argument("--width", type=_positive_int, required=True, help="hidden width N (required)")
    p.add_argument("--seeds", type=_positive_int, default=4, help="networks trained together")
    _common(p, "save the trajectories' arrays to this .pt file (default: not saved)")
    p = add("cache", help="show or remove the cache of solves and networks",
            description="Show (info) or remove (clean) the cache of solves and networks.")
    p.add_argument("action", choices=["info", "clean"], help="info: where, what and how big; clean: remove it")
    p.add_argument("--cache", default=None, help=CACHE_HELP)
    return top


# ---- checks before any work ------------------------------------------------------------------
