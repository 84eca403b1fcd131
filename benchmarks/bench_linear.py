"""Benchmark of the exact deep linear DMFT solve (THEORY.md section 4; paper Fig. 2/3 setting).

    python -m benchmarks.bench_linear

Times ``theory.solve`` at L=5, P=20, D=40, T=100, gamma0=1.5, eta=0.025 (target < 1 s on a
2-core CPU) and prints the scaling of the cost in T (25..200) and P (10..80). Timings are the
best of a few repeats; on a shared machine say so when quoting them.
"""

from __future__ import annotations

import time

import torch

from theory import Problem, solve
from theory.data import gaussian_data


def _time(prob, repeats=3, **kw):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        sol = solve(prob, **kw)
        best = min(best, time.perf_counter() - t)
    assert sol.ok, sol.status
    return best


def problem(P=20, T=100, L=5, D=40, gamma0=1.5, eta=0.025):
    x, y, _, _ = gaussian_data(P, D, seed=0)
    return Problem(x, y, depth=L, activation="linear", gamma0=gamma0, eta=eta, steps=T)


def main() -> None:
    print(f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}")
    base = problem()
    print(f"L=5 P=20 D=40 T=100 gamma0=1.5 eta=0.025: dmft {_time(base):.3f} s, "
          f"gia {_time(base, scheme='gia'):.3f} s, first_order {_time(base, update='first_order'):.3f} s, "
          f"perturbative {_time(base, scheme='perturbative'):.3f} s")
    print("scaling in T (P=20):")
    for T in (25, 50, 100, 200):
        print(f"  T={T:4d}  {_time(problem(T=T), repeats=2):.3f} s")
    print("scaling in P (T=100):")
    for P in (10, 20, 40, 80):
        print(f"  P={P:4d}  {_time(problem(P=P, D=max(40, P)), repeats=2):.3f} s")


if __name__ == "__main__":
    main()
