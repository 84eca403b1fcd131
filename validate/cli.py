"""The ``dmft`` command line (also ``python -m validate``).

    dmft validate [--suite quick|default|FILE.toml]   run a suite, write a report folder
    dmft check CLAIMS.toml                            evaluate a claim file
    dmft report RUN_DIR                               re-render a report from its tables
    dmft solve  [problem options] [--scheme S]        infinite-width solution
    dmft simulate [problem options] --width N         finite-width networks

Exit codes: 0 all pass (inconclusive counts as pass unless --strict), 1 a check failed,
2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .frame import Verdict, overall

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _common(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--device", default="cpu", help="torch device for networks and solvers (default cpu)")
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's; 1 is fastest on a busy machine)")


def _problem_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problem (embedded Gaussian data)")
    g.add_argument("--activation", default="linear")
    g.add_argument("--depth", type=int, default=2)
    g.add_argument("--gamma0", type=float, default=1.0)
    g.add_argument("--eta", type=float, default=0.1)
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--n-train", type=int, default=10)
    g.add_argument("--n-test", type=int, default=0)
    g.add_argument("--input-dim", type=int, default=20)
    g.add_argument("--data-seed", type=int, default=0)
    g.add_argument("--target", default="linear", choices=["linear", "sign"])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dmft", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("validate", help="run a validation suite and write a report folder")
    p.add_argument("--suite", default="default", help="quick, default, another built-in, or a suite .toml file")
    _common(p, "root folder of run folders (default reports/runs)")
    p.add_argument("--name", default=None, help="run folder name (default: UTC timestamp and suite)")
    p.add_argument("--cache", default="reports/runs/.cache", help="network cache folder (default reports/runs/.cache)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the network cache")
    p.add_argument("--strict", action="store_true", help="exit 1 when the overall verdict is inconclusive")
    p = sub.add_parser("check", help="evaluate the claims of a TOML claim file")
    p.add_argument("claims", help="claim file (.toml)")
    _common(p, "write a report folder under this root (default: no report)")
    p.add_argument("--cache", default="reports/runs/.cache")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 when a claim is inconclusive")
    p = sub.add_parser("report", help="re-render a report folder from its tables")
    p.add_argument("run_dir")
    _common(p, "unused (the report is rendered in place)")
    p = sub.add_parser("solve", help="solve the infinite-width theory for one problem")
    _problem_args(p)
    p.add_argument("--scheme", default="dmft", help="dmft, gia, ntk or perturbative")
    _common(p, "save the solution's arrays to this .pt file")
    p = sub.add_parser("simulate", help="train finite-width networks for one problem")
    _problem_args(p)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--seeds", type=int, default=4)
    _common(p, "save the trajectories' arrays to this .pt file")
    return top


def _context(args, cache=True):
    from .sources import Context

    cache_dir = None if (not cache or getattr(args, "no_cache", False)) else Path(args.cache)
    return Context(device=args.device, seed=args.seed, cache_dir=cache_dir, progress=not args.quiet)


def _spec(args):
    from .spec import ProblemSpec

    return ProblemSpec(n_train=args.n_train, n_test=args.n_test, input_dim=args.input_dim,
                       data_seed=args.data_seed, target=args.target, depth=args.depth,
                       activation=args.activation, gamma0=args.gamma0, eta=args.eta, steps=args.steps)


def _print_verdicts(verdicts, out=None) -> None:
    out = out or sys.stdout
    g = verdicts[verdicts["gating"]]
    for r in g.itertuples(index=False):
        lay = "" if r.layer != r.layer else f"[{int(r.layer)}]"
        scheme = f" [{r.scheme}]" if r.scheme else ""
        print(f"{r.verdict.upper():13s} {r.check} {r.observable}{lay}{scheme} {r.statistic}: {r.reason}", file=out)
    print(f"overall: {overall(verdicts).value.upper()}", file=out)


def _exit(verdicts, strict: bool) -> int:
    v = overall(verdicts)
    if v is Verdict.FAIL or (strict and v is Verdict.INCONCLUSIVE):
        return EXIT_FAIL
    return EXIT_PASS


def _save(obj, fields, path) -> None:
    from simulate.cache import save_torch

    save_torch({k: getattr(obj, k, None) for k in fields}, Path(path))


def cmd_validate(args) -> int:
    from .report import environment, write_report
    from .suites import get_suite, run_suite

    suite = get_suite(args.suite)
    ctx = _context(args)
    t0 = time.perf_counter()
    result, timings = run_suite(suite, ctx)
    name = args.name or f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{suite.name}"
    meta = dict(suite=suite.name, description=suite.description, seed=args.seed, device=args.device,
                elapsed_s=round(time.perf_counter() - t0, 1), check_seconds=timings,
                work=ctx.stats, environment=environment(args.device))
    run_dir = write_report(result, Path(args.out or "reports/runs"), name, meta)
    _print_verdicts(result.verdicts)
    print(f"report: {run_dir}")
    return _exit(result.verdicts, args.strict)


def cmd_check(args) -> int:
    from .claims import evaluate, load_claims
    from .report import environment, write_report

    claims = load_claims(args.claims)
    ctx = _context(args)
    t0 = time.perf_counter()
    result = evaluate(claims, ctx)
    _print_verdicts(result.verdicts)
    if args.out:
        name = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{Path(args.claims).stem}"
        meta = dict(suite=f"claims:{args.claims}", seed=args.seed, device=args.device,
                    elapsed_s=round(time.perf_counter() - t0, 1), environment=environment(args.device))
        print(f"report: {write_report(result, Path(args.out), name, meta)}")
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
    print(f"{args.scheme} solve of {problem!r}: status {sol.status.value}, iterations {sol.iterations}, "
          f"residual {sol.residual:.3g}")
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
    final = run.loss[:, -1].numpy()
    m, se = mean_se(final)
    print(f"width {args.width}, {args.seeds} seeds, {problem!r}: final train loss {m:.6g} ± {se:.2g}, "
          f"diverged {int(run.diverged.sum())}")
    if args.out:
        _save(run, ("t", "loss", "f_train", "f_test", "ntk", "phi", "g", "kernel_times", "diverged",
                    "diverged_step"), args.out)
        print(f"saved: {args.out}")
    return EXIT_PASS


COMMANDS = {"validate": cmd_validate, "check": cmd_check, "report": cmd_report,
            "solve": cmd_solve, "simulate": cmd_simulate}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dmft`` console script; returns the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as exc:
        print(f"dmft {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
