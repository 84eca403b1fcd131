"""Training time of a suite's network ensembles with two-time against equal-time kernel recording.

    python -m benchmarks.bench_equal_time [--suite default] [--limit N] [--json FILE]

Plans the suite's ensembles (``check.jobs``; ensembles that need two-time kernels are left
out), then runs each one's worker (``validate.jobs.ensemble_record``, training plus packing) twice
on one thread: with the trainer validate used before (``simulate.train`` without ``kernels=``,
which computes the two-time Gram matrices and keeps their diagonal) and with ``simulate.train``,
which validate now asks for ``kernels="equal_time"``. The order alternates between jobs so a
change of machine load does not favour one mode. Prints seconds per job and in total, and checks
that both modes store the same equal-time kernels (float32 rounding).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def two_time_train(problem, width, seeds=1, *, seed=0, device="cpu"):
    """``simulate.train`` as validate called it before equal-time recording (no ``kernels=``)."""
    from simulate import train

    return train(problem, width, seeds, seed=seed, device=device)


def suite_ensembles(name: str) -> list:
    """The suite's distinct ensemble jobs that read only equal-time kernels, costliest first."""
    from validate.plan import declared_jobs
    from validate.sources import Context
    from validate.suites import get_suite

    ctx, jobs = Context(progress=False), {}
    for check in get_suite(name).checks:
        for job in declared_jobs(check, ctx):
            if job.kind == "ensemble" and not job.two_time:
                jobs.setdefault(job.key(), job)
    return sorted(jobs.values(), key=lambda j: -j.cost())


def time_job(job, trainer) -> tuple[float, object]:
    from simulate.executors import one_thread
    from simulate.sweep import problem_payload
    from validate.jobs import ensemble_record

    t0 = time.perf_counter()
    with one_thread():
        rec = ensemble_record(problem_payload(job.problem), job.width, job.seeds, job.seed, job.device,
                              trainer, False)
    return time.perf_counter() - t0, rec


def main(argv=None) -> int:
    from simulate import train

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="default")
    ap.add_argument("--limit", type=int, default=None, help="only the N costliest ensembles")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)
    jobs = suite_ensembles(args.suite)[: args.limit]
    rows = []
    for i, job in enumerate(jobs):
        order = [("two_time", two_time_train), ("equal_time", train)]
        order = order if i % 2 == 0 else order[::-1]
        res = {mode: time_job(job, fn) for mode, fn in order}
        eq = {k: v for k, v in res["equal_time"][1].tensors.items() if "_eq." in k}
        same = all(torch.allclose(v, res["two_time"][1].tensors[k], rtol=1e-6, atol=1e-7) for k, v in eq.items())
        p = job.problem
        row = dict(depth=p.depth, activation=p.activation.name, gamma0=p.gamma0, steps=p.steps,
                   n_points=p.n_points, width=job.width, seeds=job.seeds,
                   two_time_s=round(res["two_time"][0], 3), equal_time_s=round(res["equal_time"][0], 3),
                   same_kernels=same)
        rows.append(row)
        print(json.dumps(row), flush=True)
    tot2, tot1 = sum(r["two_time_s"] for r in rows), sum(r["equal_time_s"] for r in rows)
    summary = dict(suite=args.suite, jobs=len(rows), two_time_s=round(tot2, 2), equal_time_s=round(tot1, 2),
                   saved_fraction=round(1 - tot1 / tot2, 3) if tot2 else None,
                   all_same_kernels=all(r["same_kernels"] for r in rows))
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"summary": summary, "jobs": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
