"""The ``dmft`` command line (also ``python -m validate``).

    dmft validate [--suite quick|default|paper|FILE.toml]   run a suite, write a report folder
    dmft check CLAIMS.toml                                  evaluate a claim file
    dmft report RUN_DIR                                     re-render a report from its tables
    dmft solve  [problem options] [--scheme S]              infinite-width solution
    dmft simulate [problem options] --width N               finite-width networks
    dmft cache info|clean [--cache DIR]                     show or remove the cache

Exit codes: 0 all pass (inconclusive counts as pass unless --strict); 1 a check failed, or a
solve or simulation failed; 2 usage or input error (file, line and field named, before any
work); 130 interrupted (Ctrl-C). torch, pandas and matplotlib are imported only by the commands
that need them, so ``dmft --help`` and ``dmft --version`` answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Input errors (exit 2). Anything else raised by a command is a failed run (exit 1).
USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError, FileExistsError, ImportError)


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless the text already states it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text.lower():
            return text
        shown = "off" if action.default is False and action.const is True else "%(default)s"
        return f"{text} (default: {shown})"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {v}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {v}")
    return v


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
    from .suites import catalog

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

def _writable_dir(path: Path, field: str) -> None:
    """``ValueError`` naming ``field`` unless ``path`` is, or can be created as, a writable folder."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{field}: {path} exists and is not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{field}: cannot create {path}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{field}: {probe} is not writable")


def _writable_file(path: Path, field: str) -> None:
    if path.is_dir():
        raise ValueError(f"{field}: {path} is a folder; give a file name such as {path / 'out.pt'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{field}: {path} is not writable")
    _writable_dir(path.parent, field)


def _run_folder(args, root: Path, label: str) -> str:
    """The run folder's name under ``root``: ``--name`` (exit 2 if it exists, unless --overwrite)
    or the start time and ``label``, made unique."""
    _writable_dir(root, "--out")
    if args.name is not None:
        if not args.name or Path(args.name).name != args.name or args.name in (".", ".."):
            raise ValueError(f"--name: must be a plain folder name, got {args.name!r}")
        if (root / args.name).exists() and not args.overwrite:
            raise ValueError(f"--name: run folder {root / args.name} exists; choose another --name "
                             "or pass --overwrite to replace it")
        return args.name
    stem = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{label}"
    name, k = stem, 1
    while (root / name).exists():
        k += 1
        name = f"{stem}-{k}"
    return name


def _cache_dir(args) -> Path:
    """``--cache``, else the default cache folder (``simulate.cache.default_folder``)."""
    from simulate.cache import default_folder

    return Path(args.cache) if args.cache else default_folder()


def _preflight(args) -> None:
    """Every check that needs no work: device, threads, executor, output and cache paths."""
    if args.command == "cache":
        return
    if args.command != "report":
        from simulate import check_device

        check_device(args.device)
    if args.command in ("validate", "check"):
        from simulate import ExecutorSpec

        ExecutorSpec.parse(args.executor)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.command in ("solve", "simulate") and args.out:
        _writable_file(Path(args.out), "--out")
    if args.command in ("validate", "check") and not args.no_cache:
        _writable_dir(_cache_dir(args), "--cache")


# ---- commands ----------------------------------------------------------------------------------

def _context(args, cache=True):
    from .sources import Context

    cache_dir = None if (not cache or getattr(args, "no_cache", False)) else _cache_dir(args)
    return Context(device=args.device, seed=args.seed, cache_dir=cache_dir, progress=not args.quiet)


def _spec(args):
    from .spec import ProblemSpec

    return ProblemSpec(n_train=args.n_train, n_test=args.n_test, input_dim=args.input_dim,
                       data_seed=args.data_seed, target=args.target, depth=args.depth,
                       activation=args.activation, gamma0=args.gamma0, eta=args.eta, steps=args.steps)


def _print_verdicts(verdicts, out=None) -> None:
    from .frame import overall

    out = out or sys.stdout
    g = verdicts[verdicts["gating"]]
    for r in g.itertuples(index=False):
        lay = "" if r.layer != r.layer else f"[{int(r.layer)}]"
        scheme = f" [{r.scheme}]" if r.scheme else ""
        print(f"{r.verdict.upper():13s} {r.check} {r.observable}{lay}{scheme} {r.statistic}: {r.reason}", file=out)
    print(f"overall: {overall(verdicts).value.upper()}", file=out)


def _exit(verdicts, strict: bool) -> int:
    from .frame import Verdict, overall

    v = overall(verdicts)
    if v is Verdict.FAIL or (strict and v is Verdict.INCONCLUSIVE):
        return EXIT_FAIL
    return EXIT_PASS


def _save(obj, fields, path) -> None:
    from simulate.cache import save_torch

    save_torch({k: getattr(obj, k, None) for k in fields}, Path(path))


def _write_report(result, root: Path, name: str, meta: dict, overwrite: bool) -> Path:
    from .report import write_report

    # the CLI has already refused an existing --name without --overwrite before any work
    return write_report(result, root, name, meta, overwrite=overwrite)


def cmd_validate(args) -> int:
    from .report import environment
    from .suites import get_suite, run_suite

    suite = get_suite(args.suite)
    root = Path(args.out or "reports/runs")
    name = _run_folder(args, root, suite.name)
    ctx = _context(args)
    t0 = time.perf_counter()
    result, timings = run_suite(suite, ctx, executor=args.executor)
    meta = dict(suite=suite.name, description=suite.description, seed=args.seed, device=args.device,
                elapsed_s=round(time.perf_counter() - t0, 1), check_seconds=timings,
                work=ctx.stats, environment=environment(args.device))
    run_dir = _write_report(result, root, name, meta, args.overwrite)
    _print_verdicts(result.verdicts)
    print(f"report: {run_dir}")
    return _exit(result.verdicts, args.strict)


def cmd_check(args) -> int:
    from .claims import evaluate, load_claims
    from .report import environment

    if args.name is not None and not args.out:
        raise ValueError("--name: names the report folder, which dmft check writes only with --out")
    claims = load_claims(args.claims)
    name = _run_folder(args, Path(args.out), Path(args.claims).stem) if args.out else None
    ctx = _context(args)
    t0 = time.perf_counter()
    result = evaluate(claims, ctx, executor=args.executor)
    _print_verdicts(result.verdicts)
    if name is not None:
        meta = dict(suite=f"claims:{args.claims}", seed=args.seed, device=args.device,
                    elapsed_s=round(time.perf_counter() - t0, 1), environment=environment(args.device))
        print(f"report: {_write_report(result, Path(args.out), name, meta, args.overwrite)}")
    return _exit(result.verdicts, args.strict)


def cmd_report(args) -> int:
    from .report import read_tables, render

    run_dir = render(args.run_dir)
    _print_verdicts(read_tables(run_dir)["verdicts"])
    print(f"report: {run_dir}")
    return EXIT_PASS


def cmd_solve(args) -> int:
    from .sources import default_solver

    problem = _spec(args).build()
    sol = default_solver(problem, args.scheme, **({"device": args.device} if args.device != "cpu" else {}))
    why = sol.info.get("reason") if not sol.ok else None
    print(f"{args.scheme} solve of {problem!r}: status {sol.status.value}, iterations {sol.iterations}, "
          f"residual {sol.residual:.3g}" + (f" ({why})" if why else ""))
    for k in sorted({0, problem.steps // 2, problem.steps}):
        print(f"  t = {float(sol.t[k]):g}: train loss {float(sol.loss[k]):.6g}")
    if args.out:
        _save(sol, ("t", "loss", "f_train", "f_test", "ntk", "phi", "g"), args.out)
        print(f"saved: {args.out}")
    return EXIT_PASS if sol.ok else EXIT_FAIL


def cmd_simulate(args) -> int:
    from . import sources
    from .stats import mean_se

    problem = _spec(args).build()
    run = sources.default_trainer()(problem, args.width, seeds=args.seeds, seed=args.seed, device=args.device)
    n_div = int(run.diverged.sum())
    ok = ~run.diverged
    m, se = mean_se(run.loss[ok, -1].numpy()) if n_div < args.seeds else (float("nan"), float("nan"))
    print(f"width {args.width}, {args.seeds} seeds, {problem!r}: final train loss {m:.6g} ± {se:.2g}"
          f"{' (non-diverged seeds)' if n_div else ''}, diverged {n_div}")
    if args.out:
        _save(run, sources.FIELDS, args.out)
        print(f"saved: {args.out}")
    if n_div == args.seeds:
        print(f"dmft simulate: every seed diverged (first at step {int(run.diverged_step.min())}); "
              "lower eta or gamma0", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_PASS


def cmd_cache(args) -> int:
    from simulate.cache import clean, info

    folder = _cache_dir(args)
    if args.action == "clean":
        n, freed = clean(folder)
        print(f"cache {folder}: removed {n} files ({freed / 1e6:.1f} MB)")
        return EXIT_PASS
    i = info(folder)
    if not i["exists"]:
        print(f"cache {i['folder']}: does not exist")
        return EXIT_PASS
    print(f"cache {i['folder']}: {i['entries']} entries, {i['bytes'] / 1e6:.1f} MB")
    for kind, k in sorted(i["kinds"].items()):
        print(f"  {kind:10s} {k['entries']:5d} entries {k['bytes'] / 1e6:9.1f} MB")
    if i["other_files"]:
        print(f"  other files: {i['other_files']} ({i['other_bytes'] / 1e6:.1f} MB; older-format .pt files are "
              "removed by dmft cache clean)")
    if i["temp_files"]:
        print(f"  temporary files: {i['temp_files']} (of a running or killed run)")
    return EXIT_PASS


COMMANDS = {"validate": cmd_validate, "check": cmd_check, "report": cmd_report,
            "solve": cmd_solve, "simulate": cmd_simulate, "cache": cmd_cache}


def _run(argv: list[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        _preflight(args)
        return COMMANDS[args.command](args)
    except USAGE_ERRORS as exc:
        print(f"dmft {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, MemoryError, OSError) as exc:  # SolverError, DivergenceError, out of memory, ...
        print(f"dmft {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _one_line(message, category, filename, lineno, line=None) -> str:
    return f"dmft: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dmft`` console script; returns the exit code."""
    # torch's forward-mode AD (the perturbative scheme) scripts its decompositions with
    # torch.jit.script on first use, which warns on every run; nothing here uses TorchScript
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    old_format, warnings.formatwarning = warnings.formatwarning, _one_line  # e.g. a discarded cache entry
    try:
        return _run(argv)
    except KeyboardInterrupt:
        cmd = next((a for a in (argv if argv is not None else sys.argv[1:]) if a in COMMANDS), "")
        print(f"dmft{' ' + cmd if cmd else ''}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.formatwarning = old_format


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
