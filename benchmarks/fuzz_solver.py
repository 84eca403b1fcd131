"""Fuzz of ``theory.solve`` on random small problems: is any ok answer silently wrong?

    python -m benchmarks.fuzz_solver [--problems 600] [--samples 200] [--check 10] [--seed 0]

Random problems (P 1..4, Q 0..1, D 1..5, depth 1..3, T 1..10; linear, tanh, relu, erf, softplus;
gamma0 in {0.1 .. 3}; eta up to 0.95 of the stability limit) are solved at small Monte Carlo
settings. Prints the counts of ok / refused (by status) / diverged, and the number of ok
answers that are non-finite or whose residual is above their tolerance (must be 0). With
``--check N``, N of the ok nonlinear problems are solved again at the default samples and held
against width-2048 networks (8 seeds): relative Frobenius error of the loss curve against
3 combined standard errors + 2 % (finite width). Run it with ``nice`` and one thread.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import time

import torch

from theory import Problem, Status, solve

ACTIVATIONS = ("linear", "tanh", "relu", "erf", "softplus")
GAMMA0 = (0.1, 0.5, 1.0, 1.5, 2.0, 3.0)
ETA_FRACTION = (0.1, 0.5, 0.7, 0.9, 0.95)


def random_problem(gen: torch.Generator) -> Problem:
    pick = lambda seq: seq[int(torch.randint(len(seq), (1,), generator=gen))]  # noqa: E731
    rint = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=gen))  # noqa: E731
    p, q, d = rint(1, 4), rint(0, 1), rint(1, 5)
    x = torch.randn(p + q, d, generator=gen, dtype=torch.float64)
    y = torch.randn(p, generator=gen, dtype=torch.float64)
    base = Problem(x[:p], y, x[p:] if q else None, depth=rint(1, 3), activation=pick(ACTIVATIONS),
                   gamma0=pick(GAMMA0), eta=1e-3, steps=rint(1, 10))
    return base.replace(eta=pick(ETA_FRACTION) * base.eta_limit())


def silent_failure(sol) -> str | None:
    """Why an ok solution is not trustworthy (None if it is, or if it is not ok)."""
    if not sol.ok:
        return None
    fields = [sol.loss, sol.f_train, sol.ntk, *sol.phi, *sol.g] + ([sol.f_test] if sol.f_test is not None else [])
    if not all(bool(torch.isfinite(t).all()) for t in fields):
        return "non-finite"
    if sol.status is not Status.EXACT and not sol.residual <= sol.info.get("tolerance", math.inf):
        return f"residual {sol.residual:.3g} above tolerance {sol.info.get('tolerance')}"
    return None


def against_networks(problem: Problem) -> tuple[str, float | None]:
    """(status, error / allowed) of a default-samples solve against width-2048 networks."""
    from simulate import train

    sol = solve(problem)
    if not sol.ok:
        return sol.status.value, None
    nets = train(problem, width=2048, seeds=8)
    keep = ~nets.diverged
    if int(keep.sum()) < 2:
        return "networks diverged", None
    mean = nets.loss[keep].mean(0)
    sem = float((nets.loss[keep].std(0) / math.sqrt(int(keep.sum()))).norm()) / float(mean.norm())
    err = float((sol.loss - mean).norm() / mean.norm())
    return sol.status.value, err / (3 * math.hypot(sol.info["standard_error"]["loss"], sem) + 0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=600)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--check", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    counts, silent, checked = collections.Counter(), [], []
    opts = dict(samples=args.samples, response_samples=8)
    t0 = time.perf_counter()
    for i in range(args.problems):
        pr = random_problem(gen)
        sol = solve(pr, **opts)
        counts[sol.status.value] += 1
        why = silent_failure(sol)
        if why:
            silent.append((i, repr(pr), why))
        if sol.ok and not pr.activation.is_linear and len(checked) < args.check:
            checked.append((i, pr))
        if (i + 1) % 50 == 0:
            print(f"[{i + 1}/{args.problems}] {dict(counts)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    ok = counts["exact"] + counts["converged"]
    print(f"\n{args.problems} problems at {args.samples} samples in {time.perf_counter() - t0:.0f} s "
          f"(load {os.getloadavg()[0]:.1f})")
    print(f"ok {ok} (exact {counts['exact']}, converged {counts['converged']}); refused "
          f"{counts['noise_limited'] + counts['max_iterations']} (noise_limited {counts['noise_limited']}, "
          f"max_iterations {counts['max_iterations']}); diverged {counts['diverged']}")
    print(f"ok but non-finite or above tolerance: {len(silent)}")
    for row in silent:
        print("  ", row)
    if checked:
        rows = [(i, *against_networks(pr)) for i, pr in checked]
        wrong = [r for r in rows if r[2] is not None and r[2] > 1]
        refused = [r for r in rows if r[2] is None]
        print(f"\nre-run at default samples vs width-2048 networks: {len(rows)} problems, "
              f"{len(rows) - len(refused)} ok, {len(refused)} refused, {len(wrong)} ok but wrong")
        for r in rows:
            print("  ", r)


if __name__ == "__main__":
    main()
