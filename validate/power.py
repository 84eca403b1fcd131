"""Power and false alarms of the convergence check (issue: "the statistics must be able to fail").

Planted faults are transformations of a correct ``theory.Solution``; the false-alarm rate is
measured on synthetic networks (``validate.synthetic``) whose infinite-width limit is, by
construction, the correct solution. ``python -m validate.power`` prints the measured rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from .checks.convergence import compare
from .frame import CheckResult, Verdict
from .synthetic import synthetic_networks


def scale_kernels(solution, factor: float = 1.05, which: str = "all"):
    """A copy of ``solution`` with its kernels multiplied by ``factor`` (a planted fault).

    which: "all" (ntk, every Phi and G), "ntk", "phi" or "g".
    """
    kw = {}
    if which in ("all", "ntk"):
        kw["ntk"] = solution.ntk * factor
    if which in ("all", "phi"):
        kw["phi"] = tuple(p * factor for p in solution.phi)
    if which in ("all", "g"):
        kw["g"] = tuple(p * factor for p in solution.g)
    return dataclasses.replace(solution, **kw)


def convergence_on(spec, problem, reference, nets, observables, *, tolerance, z=2.0, name="convergence"):
    """Run the convergence statistics of ``observables`` for given networks against ``reference``."""
    from .checks.common import expand_observables

    parts = [compare(name, spec, problem, reference, nets, o, l, scheme=reference.scheme,
                     tolerance=tolerance, z=z, plots=False)
             for o, l in expand_observables(observables, problem.depth)]
    return CheckResult.concat(parts)


def false_alarm_rate(spec, solution, *, widths=(128, 256, 512, 1024), seeds=64, repeats=50,
                     observables=("loss", "ntk", "phi", "g"), tolerance=0.03, noise=1.0, bias=1.0,
                     z=2.0) -> dict:
    """Fraction of repeats in which a correct theory gets a ``fail`` (per row and per check).

    Synthetic networks with known ``noise``/sqrt(N) fluctuations and ``bias``/N bias around
    ``solution`` (validate.synthetic); fresh seeds each repeat.
    """
    problem = solution.problem
    rows_fail = rows = checks_fail = inconclusive = 0
    for r in range(repeats):
        nets = {w: synthetic_networks(solution, w, seeds, noise=noise, bias=bias, seed=1000 + r) for w in widths}
        res = convergence_on(spec, problem, solution, nets, observables, tolerance=tolerance, z=z)
        v = res.verdicts
        rows += len(v)
        rows_fail += int((v["verdict"] == Verdict.FAIL.value).sum())
        checks_fail += int(res.verdict is Verdict.FAIL)
        inconclusive += int((v["verdict"] == Verdict.INCONCLUSIVE.value).sum())
    return dict(repeats=repeats, rows=rows, row_false_alarm=rows_fail / rows,
                check_false_alarm=checks_fail / repeats, row_inconclusive=inconclusive / rows)


def main(argv=None) -> None:  # pragma: no cover - a measurement script
    from theory import solve

    from .spec import ProblemSpec

    ap = argparse.ArgumentParser(description="false-alarm rate of the convergence check (synthetic networks)")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--tolerance", type=float, default=0.03)
    ap.add_argument("--noise", type=float, default=1.0, help="per-seed relative noise at N = 1")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    spec = ProblemSpec(n_train=8, n_test=4, input_dim=16, depth=2, activation="linear", gamma0=0.5, steps=20)
    sol = solve(spec.build(), "ntk")
    t0 = time.perf_counter()
    out = false_alarm_rate(spec, sol, repeats=args.repeats, seeds=args.seeds, tolerance=args.tolerance,
                           noise=args.noise)
    print(f"false alarms over {args.repeats} repeats (widths 128..1024, {args.seeds} seeds, "
          f"tolerance {args.tolerance:g}, noise {args.noise:g}, z=2): "
          f"per row {out['row_false_alarm']:.4f}, per check {out['check_false_alarm']:.4f}, "
          f"inconclusive rows {out['row_inconclusive']:.3f} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":  # pragma: no cover
    main()
