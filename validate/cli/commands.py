"""The ``dmft`` subcommands (``COMMANDS``), the checks they make before any work, and the exit codes."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Input errors (exit 2). Anything else raised by a command is a failed run (exit 1).
USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError, FileExistsError, ImportError)


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


def preflight(args) -> None:
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
    from ..sources import Context

    cache_dir = None if (not cache or getattr(args, "no_cache", False)) else _cache_dir(args)
    return Context(device=args.device, seed=args.seed, cache_dir=cache_dir, progress=not args.quiet)


def _spec(args):
    from ..spec import ProblemSpec

    return ProblemSpec(n_train=args.n_train, n_test=args.n_test, input_dim=args.input_dim,
                       data_seed=args.data_seed, target=args.target, depth=args.depth,
                       activation=args.activation, gamma0=args.gamma0, eta=args.eta, steps=args.steps)


def _print_verdicts(verdicts, out=None) -> None:
    from ..frame import overall

    out = out or sys.stdout
    g = verdicts[verdicts["gating"]]
    for r in g.itertuples(index=False):
        lay = "" if r.layer != r.layer else f"[{int(r.layer)}]"
        scheme = f" [{r.scheme}]" if r.scheme else ""
        print(f"{r.verdict.upper():13s} {r.check} {r.observable}{lay}{scheme} {r.statistic}: {r.reason}", file=out)
    print(f"overall: {overall(verdicts).value.upper()}", file=out)


def _exit(verdicts, strict: bool) -> int:
    from ..frame import Verdict, overall

    v = overall(verdicts)
    if v is Verdict.FAIL or (strict and v is Verdict.INCONCLUSIVE):
        return EXIT_FAIL
    return EXIT_PASS


def _save(obj, fields, path) -> None:
    from simulate.cache import save_torch

    save_torch({k: getattr(obj, k, None) for k in fields}, Path(path))


def _write_report(result, root: Path, name: str, meta: dict, overwrite: bool) -> Path:
    from ..report import write_report

    # the CLI has already refused an existing --name without --overwrite before any work
    return write_report(result, root, name, meta, overwrite=overwrite)


def cmd_validate(args) -> int:
    from ..report import environment
    from ..suites import get_suite, run_suite

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
    from ..claims import evaluate, load_claims
    from ..report import environment

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
    from ..report import read_tables, render

    run_dir = render(args.run_dir)
    _print_verdicts(read_tables(run_dir)["verdicts"])
    print(f"report: {run_dir}")
    return EXIT_PASS


def cmd_solve(args) -> int:
    from ..sources import default_solver

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
    from .. import sources
    from ..stats import mean_se

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


COMMANDS = {"validate": cmd_validate, "check": cmd_check, "report": cmd_report,
            "solve": cmd_solve, "simulate": cmd_simulate, "cache": cmd_cache}
