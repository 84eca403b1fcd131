"""Benchmark of the Monte Carlo DMFT solver on the paper's Fig. 1 problem (docs/theory.md section 7).

    python -m benchmarks.bench_mc [--full] [--threads N]

Prints: time to a converged T = 20 solve; cost per outer iteration at T in {25, 50, 100} and
samples in {1000, 4000} (one iteration each, with its split by phase); the machine's measured
float64 matmul throughput and the fraction the dominant phase reaches. ``--full`` adds the
converged T = 100 solve (minutes). Timings on a shared machine: report ``uptime`` with them.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from theory import Problem, gaussian_data, solve


def fig1(steps: int) -> Problem:
    x, y, xt, yt = gaussian_data(10, 25, 2, seed=0)
    return Problem(x, y, xt, yt, depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=steps)


def matmul_gflops(n: int = 1024, reps: int = 5) -> float:
    a = torch.randn(n, n, dtype=torch.float64)
    a @ a
    t = time.perf_counter()
    for _ in range(reps):
        a @ a
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--response-samples", type=int, default=64)
    ap.add_argument("--response-every", type=int, default=2)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"threads {torch.get_num_threads()}, load {os.getloadavg()}")
    gf = matmul_gflops()
    print(f"float64 matmul throughput: {gf:.1f} GFLOP/s")
    t = time.perf_counter()
    sol = solve(fig1(20), response_samples=args.response_samples,
                   response_every=args.response_every)
    print(f"T=20 converged solve: {time.perf_counter() - t:.1f} s, status {sol.status.value}, "
          f"iterations {sol.iterations} ({sol.info['response_refreshes']} response refreshes), "
          f"residual {sol.residual:.2e}, se {sol.info['standard_error']}")
    for steps in (25, 50, 100):
        for samples in (1000, 4000):
            pr = fig1(steps)
            t = time.perf_counter()
            s = solve(pr, samples=samples, response_samples=args.response_samples,
                         max_iterations=1, average_iterations=0, warmup=(), march="never")
            dt = time.perf_counter() - t
            n = (steps + 1) * pr.n_points
            tim = {k: round(v, 2) for k, v in s.info["timings"].items()}
            # responses: ~(4/3) n^3 multiply-adds x 2 flops / 2 (triangular) per sample and layer
            flops = 4 / 3 * n**3 * args.response_samples * pr.depth  # blocked causal route
            frac = flops / max(tim["responses"], 1e-9) / 1e9 / gf
            print(f"T={steps:3d} S={samples:5d} n={n:5d}: {dt:6.2f} s/iteration {tim} "
                  f"responses at {100 * frac:.0f}% of matmul peak")
    if args.full:
        t = time.perf_counter()
        sol = solve(fig1(100), response_samples=args.response_samples,
                       response_every=args.response_every, progress=True)
        print(f"T=100 converged solve: {time.perf_counter() - t:.1f} s, status "
              f"{sol.status.value}, iterations {sol.iterations} "
              f"({sol.info['response_refreshes']} response refreshes), residual {sol.residual:.2e}")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
