"""Benchmark of the exact deep linear DMFT solve (docs/theory.md section 4; paper Fig. 2/3 setting).

    python -m benchmarks.bench_linear [--quick]

Times ``theory.solve`` at L=5, P=20, D=40, T=100, gamma0=1.5, eta=0.025 (target < 1 s on a
2-core CPU): wall time (best of repeats) and CPU time of that same repeat (``time.process_time``,
less sensitive to other processes on a shared machine), the cost of each phase (march, assembly of
the ``H^l``, a-posteriori residual check), then the scaling in T (25..200, P=20) and in P (10..80,
T=100) with exponents fitted by least squares on log-log (all points, and the last two). The
machine load (``os.getloadavg``) is printed: quote it with the numbers.

Expected costs: march ``O(L P_all T^3)`` flops but overhead-bound (about 60 small operations per
layer and time row); assembly ``O(L P_all^2 T^3)`` (L rank-(T+1) updates of the
``(T+1) P_all``-square ``H^l``, output size ``L P_all^2 T^2``); residual check ``O(L P_all^2 T^2)``.
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch

from theory import Problem, gaussian_data, solve
from theory.linear import assemble, intra_op_threads, march, residual


def _best(fn, repeats):
    """(best wall seconds, CPU seconds of that run, last result)."""
    best = (math.inf, math.inf)
    out = None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best[0], best[1], out


def problem(P=20, T=100, L=5, D=40, gamma0=1.5, eta=0.025):
    x, y, _, _ = gaussian_data(P, D, seed=0)
    return Problem(x, y, depth=L, activation="linear", gamma0=gamma0, eta=eta, steps=T)


def _solve(prob, **kw):
    sol = solve(prob, **kw)
    assert sol.ok, (sol.status, sol.info.get("reason"))
    return sol


def phases(prob, repeats=3) -> dict:
    """Best wall / CPU seconds of march, assembly and residual check (one intra-op thread)."""
    kx, y, L, P = prob.kx, prob.y_train, prob.depth, prob.n_train
    eps, a = prob.gamma0**2, prob.eta / P
    kw = dict(depth=L, eps=eps, a=a, steps=prob.steps, gia=False, exact_update=True, blowup=1e8)
    with intra_op_threads(1):
        m = _best(lambda: march(kx, y, **kw), repeats)
        st = m[2]
        asm = _best(lambda: assemble(st, kx, eps, depth=L), repeats)
        H = [None] + asm[2]
        res = _best(
            lambda: residual(st, H, kx, y, depth=L, eps=eps, a=a, gia=False, exact_update=True), repeats
        )
    return {"march": m[:2], "assembly": asm[:2], "residual check": res[:2]}


def _fit(xs, ts):
    lx, lt = [math.log(v) for v in xs], [math.log(v) for v in ts]
    mx, mt = sum(lx) / len(lx), sum(lt) / len(lt)
    slope = sum((u - mx) * (v - mt) for u, v in zip(lx, lt)) / sum((u - mx) ** 2 for u in lx)
    return slope, (lt[-1] - lt[-2]) / (lx[-1] - lx[-2])


def _scan(name, values, make, repeats):
    print(f"scaling in {name}:")
    walls, cpus = [], []
    for v in values:
        w, c, _ = _best(lambda: _solve(make(v)), repeats)
        walls.append(w)
        cpus.append(c)
        print(f"  {name}={v:4d}  wall {w:7.3f} s  cpu {c:7.3f} s")
    for label, ts in (("wall", walls), ("cpu", cpus)):
        full, last = _fit(values, ts)
        print(f"  fitted exponent ({label}): {full:.2f} over all points, {last:.2f} between the last two")


def main() -> None:
    quick = "--quick" in sys.argv
    reps = 2 if quick else 5
    print(f"torch {torch.__version__}, torch intra-op threads {torch.get_num_threads()} "
          f"(the solve uses 1), cpus {os.cpu_count()}, load average {os.getloadavg()}")
    base = problem()
    _solve(base)  # warm up
    print("L=5 P=20 D=40 T=100 gamma0=1.5 eta=0.025, best of", reps)
    for label, kw in (("dmft", {}), ("gia", {"scheme": "gia"}), ("first_order", {"update": "first_order"}),
                      ("perturbative", {"scheme": "perturbative"})):
        w, c, _ = _best(lambda: _solve(base, **kw), reps if label != "perturbative" else 2)
        print(f"  {label:13s} wall {w:.3f} s  cpu {c:.3f} s")
    print("phases of the dmft solve:")
    for k, (w, c) in phases(base, reps).items():
        print(f"  {k:15s} wall {w:.3f} s  cpu {c:.3f} s")
    _scan("T", (25, 50, 100, 200), lambda T: problem(T=T), 2)
    _scan("P", (10, 20, 40, 80) if not quick else (10, 20, 40), lambda P: problem(P=P, D=max(40, P)), 2)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
