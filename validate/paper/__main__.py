"""``python -m validate.paper --out reports/paper``: run the paper suite and write its report.

Writes ``<out>/tables/*.csv`` (the tidy tables), ``<out>/run.json`` (size, device, timings),
then ``<out>/README.md``, ``<out>/index.html`` and ``<out>/figures/*.png`` (validate.paper.report,
through the shared pipeline of validate.report). ``--render`` only re-renders an existing folder
from its tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m validate.paper", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="reports/paper")
    p.add_argument("--size", default=None, choices=["smoke", "cpu", "full"],
                   help="default: $DMFT_PAPER_SIZE, else full on cuda and cpu otherwise")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py (Fig. 4)")
    p.add_argument("--cache", default="reports/runs/.cache", help="network cache ('' for none)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--render", action="store_true", help="only re-render <out> from its tables")
    p.add_argument("--only", default=None,
                   help="comma-separated experiment prefixes to rerun (fig1,fig2,fig3,fig4,appendix); "
                        "the other experiments' rows are kept from <out>/tables")
    args = p.parse_args(argv)
    out = Path(args.out)
    from .report import merge_tables, render_paper_report, save_tables

    if args.render:
        render_paper_report(out)
        print(f"report: {out / 'README.md'}")
        return 0
    import torch

    from ..sources import Context
    from ..suites import run_suite
    from ..suites.paper import build
    from .sizes import DATA_ENV, ENV, resolve

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_root:
        os.environ[DATA_ENV] = args.data_root
    size = resolve(args.size, args.device)
    os.environ[ENV] = size.name
    suite = build(size.name)
    only = None
    if args.only:
        only = tuple(x.strip() for x in args.only.split(",") if x.strip())
        known = [c.name.split("/")[0] for c in suite.checks]
        bad = [x for x in only if x not in known]
        if bad:
            raise SystemExit(f"--only: unknown experiment(s) {bad}; valid values are {known}")
        if not (out / "tables").is_dir():
            raise SystemExit(f"--only: {out / 'tables'} does not exist; run the whole suite first")
        suite = dataclasses.replace(suite, checks=tuple(c for c in suite.checks if c.name.split("/")[0] in only))
    ctx = Context(device=args.device, seed=args.seed, cache_dir=Path(args.cache) if args.cache else None,
                  progress=not args.quiet)
    t0 = time.perf_counter()
    result, timings = run_suite(suite, ctx)
    meta = dict(size=size.name, device=args.device, seed=args.seed, elapsed_s=round(time.perf_counter() - t0, 1),
                check_seconds={k: round(v, 1) for k, v in timings.items()}, work=ctx.stats,
                threads=torch.get_num_threads(), command="python -m validate.paper " + " ".join(argv or sys.argv[1:]))
    if only is not None:
        result, meta = merge_tables(out, result, meta, [c.name for c in suite.checks])
    save_tables(result, out, meta)
    render_paper_report(out)
    print(f"report: {out / 'README.md'} ({meta['elapsed_s']} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
