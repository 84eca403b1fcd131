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

Modules:
    arguments  the argument parser (``parser``)
    commands   the subcommands (``COMMANDS``), their preflight checks and the exit codes
"""

from __future__ import annotations

import sys
import warnings

from .arguments import parser
from .commands import COMMANDS, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_PASS, EXIT_USAGE, USAGE_ERRORS, preflight

__all__ = ["COMMANDS", "EXIT_FAIL", "EXIT_INTERRUPTED", "EXIT_PASS", "EXIT_USAGE", "main", "parser"]


def _run(argv: list[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        preflight(args)
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

