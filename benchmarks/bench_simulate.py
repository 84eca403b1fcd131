"""Speed and memory of ``simulate.train`` on the Fig. 1 problem (docs/theory.md section 7).

    python -m benchmarks.bench_simulate [--quick] [--device cuda] [--widths 128 256 ...]

Prints: the machine's float64 matmul rate (square GEMM and the thin batched product the trainer
is made of), the width sweep {128..4096} x 8 seeds with every kernel recorded (time per width,
total, peak resident memory), batched seeds vs a per-model loop at width 1024, and the achieved
GFLOP/s against the matmul bound (flops counted below).
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import torch

from simulate import train
from theory.data import gaussian_data
from theory.problem import Problem


def fig1_problem(steps: int = 100) -> Problem:
    x, y, xt, yt = gaussian_data(10, 25, 4, seed=0)
    return Problem(x, y, xt, yt, depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=steps)


def train_flops(p: Problem, width: int, seeds: int, kernels: bool) -> float:
    """Multiply-add flops (2 per MAC) of one ``train`` call, dominant terms.

    Per step: forward (x W0^T, L-1 hidden products, readout) and backward (L-1 products) over all
    P_all points, weight updates over the P training points; NTK grams (2L of them, P_all^2 N)
    per step; two-time grams (2L of (T+1) P_all square, block lower triangle = 36/64 of full).
    """
    S, N, D, L, P, Pa, T = seeds, width, p.input_dim, p.depth, p.n_train, p.n_points, p.steps
    step = 2 * S * (Pa * D * N + 2 * (L - 1) * Pa * N * N + (L - 1) * P * N * N + P * N * D + Pa * N)
    total = (T + 1) * step
    if kernels:
        total += (T + 1) * 2 * L * 2 * S * Pa * Pa * N
        n = (T + 1) * Pa
        total += 2 * L * 2 * S * n * n * N * 36 / 64
    return float(total)


def matmul_rates(dev: str) -> tuple[float, float]:
    """(square GEMM GFLOP/s at 2048, thin batched (8, 14, 1024) @ (8, 1024, 1024) GFLOP/s)."""
    def rate(f, flops, reps=5):
        f()
        sync(dev)
        t = time.perf_counter()
        for _ in range(reps):
            f()
        sync(dev)
        return flops * reps / (time.perf_counter() - t) / 1e9

    kw = dict(dtype=torch.float64, device=dev)
    a, b = torch.randn(2048, 2048, **kw), torch.randn(2048, 2048, **kw)
    sq = rate(lambda: a @ b, 2 * 2048**3)
    u, w = torch.randn(8, 14, 1024, **kw), torch.randn(8, 1024, 1024, **kw)
    thin = rate(lambda: torch.bmm(u, w.mT), 2 * 8 * 14 * 1024 * 1024, reps=20)
    return sq, thin


def sync(dev: str) -> None:
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--widths", type=int, nargs="*", default=[128, 256, 512, 1024, 2048, 4096])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="widths up to 1024, T = 30")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--skip-loop", action="store_true", help="skip the batched-vs-loop comparison")
    ap.add_argument("--skip-sweep", action="store_true", help="skip the width sweep")
    ap.add_argument("--loop-widths", type=int, nargs="*", default=[128, 1024])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    steps = 30 if args.quick else 100
    widths = [w for w in args.widths if w <= 1024] if args.quick else args.widths
    p = fig1_problem(steps)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}")
    print(f"problem {p!r}, seeds {args.seeds}")
    sq, thin = matmul_rates(dev)
    print(f"matmul float64: square 2048 GEMM {sq:.1f} GFLOP/s; thin bmm (8,14,1024)x(8,1024,1024) {thin:.1f} GFLOP/s")

    if not args.skip_sweep:
        sweep(p, widths, args.seeds, dev)
    if not args.skip_loop:
        for w in args.loop_widths:
            batched_vs_loop(p, w, args.seeds, dev, sq, thin)


def sweep(p: Problem, widths, seeds: int, dev: str) -> None:
    print("\n== width sweep, all kernels recorded ==")
    total = 0.0
    for w in widths:
        gc.collect()
        sync(dev)
        t = time.perf_counter()
        run = train(p, w, seeds, device=dev)
        sync(dev)
        dt = time.perf_counter() - t
        total += dt
        fl = train_flops(p, w, seeds, True)
        kern_gb = sum(a.numel() * a.element_size() for a in run.phi + run.g) / 1024**3
        print(f"N={w:5d}: {dt:7.2f} s  {fl / dt / 1e9:6.1f} GFLOP/s  final loss {float(run.mean()[-1]):.4f}  "
              f"kernels {kern_gb:.2f} GB  seed batch {run.info['seed_chunk']}  peak RSS {peak_rss_gb():.2f} GB")
        del run
    print(f"total {total:.1f} s (target < 180 s on 2 cores); peak RSS {peak_rss_gb():.2f} GB (target < 4 GB)")


def batched_vs_loop(p: Problem, w: int, seeds: int, dev: str, sq: float, thin: float) -> None:
    print(f"\n== {seeds} batched seeds vs a loop of single-seed train calls, width {w} ==")
    for label, record in (("training only", None), ("all kernels", ("ntk", "phi", "g"))):
        sync(dev)
        t = time.perf_counter()
        train(p, w, seeds, device=dev, record=record)
        sync(dev)
        batched = time.perf_counter() - t
        t = time.perf_counter()
        for s in range(seeds):
            train(p, w, 1, seed=s, device=dev, record=record)
        sync(dev)
        loop = time.perf_counter() - t
        fl = train_flops(p, w, seeds, record is not None)
        print(f"{label:13s}: batched {batched:6.2f} s, loop {loop:6.2f} s, speed-up {loop / batched:4.2f}x; "
              f"batched {fl / batched / 1e9:5.1f} GFLOP/s = {fl / batched / 1e9 / thin:4.2f} of thin bmm, "
              f"{fl / batched / 1e9 / sq:4.2f} of square GEMM")


if __name__ == "__main__":
    main()
