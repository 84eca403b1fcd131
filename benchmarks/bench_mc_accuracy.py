"""Accuracy of the Monte Carlo DMFT solver against wide networks extrapolated to N -> infinity.

    python -m benchmarks.bench_mc_accuracy [--reference-only] [--cache PATH] [solver options]

Issue 3 target (docs/theory.md section 2, section 6): deep tanh network, L = 3, P = 10 train and 4
test points, D = 25, gamma0 = 1, eta = 0.1, 50 steps. Networks of widths 512 .. 8192
(``simulate.train``, ensembles of seeds, more seeds at small widths) give, per observable, the
seed mean at each width; a weighted least-squares fit ``a + b / N`` (weights from the seed
variance) gives the infinite-width value ``a`` and its standard error. The DMFT (default
``solve_mc`` settings) must have

    loss within 1% of the initial loss at every step,
    test outputs and every Phi^l(t, t) within 2% in relative Frobenius norm.

The reference is cached on disk (``--cache``) because it is the expensive part (minutes).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from theory import Problem, gaussian_data

#: widths and seeds per width (more seeds where the O(N^-1/2) fluctuations are larger)
WIDTHS = {512: 64, 1024: 32, 2048: 16, 4096: 8, 8192: 4}
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "dmft_validate", "mc_accuracy_ref.pt")


def accuracy_problem(steps: int = 50) -> Problem:
    x, y, xt, yt = gaussian_data(10, 25, 4, seed=0)
    return Problem(x, y, xt, yt, depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=steps)


def _observables(loss, f_test, phis):
    """Per-network observables: loss (.., T+1), f_test (.., T+1, Q), Phi^l(t,t) (.., T+1, Pa, Pa)."""
    diag = [torch.diagonal(p, dim1=-4, dim2=-2).movedim(-1, -3) for p in phis]
    return {"loss": loss, "f_test": f_test, **{f"phi{l + 1}": d for l, d in enumerate(diag)}}


def network_reference(problem: Problem, widths=WIDTHS, progress=True) -> dict:
    """Fit ``a + b/N`` to the seed means at each width. Returns {name: (a, se_a, means)}."""
    from simulate import train

    per_width = {}
    for n, seeds in widths.items():
        t = time.perf_counter()
        run = train(problem, n, seeds, seed=1000 * n, record=("phi",))
        assert not bool(run.diverged.any()), f"width {n}: diverged"
        obs = _observables(run.loss, run.f_test, run.phi)
        per_width[n] = {k: (v.mean(0), v.var(0) / seeds) for k, v in obs.items()}
        if progress:
            print(f"  width {n} x {seeds} seeds: {time.perf_counter() - t:.1f} s", flush=True)
    ns = torch.tensor(list(widths), dtype=torch.float64)
    out = {}
    for key in per_width[next(iter(widths))]:
        means = torch.stack([per_width[n][key][0] for n in widths])  # (W, ...)
        var = torch.stack([per_width[n][key][1] for n in widths]).clamp(min=1e-30)
        w = 1.0 / var
        x = (1.0 / ns).reshape(-1, *([1] * (means.ndim - 1)))
        # weighted least squares for (a, b) elementwise
        s0, s1, s2 = w.sum(0), (w * x).sum(0), (w * x * x).sum(0)
        t0, t1 = (w * means).sum(0), (w * x * means).sum(0)
        det = s0 * s2 - s1 * s1
        a = (s2 * t0 - s1 * t1) / det
        se_a = (s2 / det).sqrt()
        out[key] = (a, se_a, means)
    return out


def compare(sol, ref: dict) -> dict:
    """Errors of a Solution against the extrapolated reference (issue-3 metrics)."""
    mine = _observables(sol.loss, sol.f_test, sol.phi)
    res = {}
    a, se, _ = ref["loss"]
    res["loss_max_dev_over_initial"] = float((mine["loss"] - a).abs().max() / a[0])
    res["loss_ref_se_over_initial"] = float(se.max() / a[0])
    for key in [k for k in ref if k != "loss"]:
        a, se, _ = ref[key]
        res[f"{key}_rel_frob"] = float((mine[key] - a).norm() / a.norm())
        res[f"{key}_ref_rel_se"] = float(se.norm() / a.norm())
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=CACHE)
    ap.add_argument("--reference-only", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--response-samples", type=int, default=None)
    ap.add_argument("--response-every", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scheme", default="dmft")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load {os.getloadavg()}")
    pr = accuracy_problem()
    if os.path.exists(args.cache):
        ref = torch.load(args.cache)
    else:
        t = time.perf_counter()
        ref = network_reference(pr)
        os.makedirs(os.path.dirname(args.cache), exist_ok=True)
        torch.save(ref, args.cache)
        print(f"network reference: {time.perf_counter() - t:.1f} s")
    if args.reference_only:
        return
    from theory import solve as solve_mc  # nonlinear: the Monte Carlo solver

    kw = {k: v for k, v in (("samples", args.samples), ("response_samples", args.response_samples),
                            ("response_every", args.response_every)) if v is not None}
    t = time.perf_counter()
    sol = solve_mc(pr, scheme=args.scheme, seed=args.seed, **kw)
    print(f"solve_mc ({args.scheme}): {time.perf_counter() - t:.1f} s, {sol.status.value}, "
          f"{sol.iterations} iterations, residual {sol.residual:.2e}")
    for k, v in compare(sol, ref).items():
        print(f"  {k}: {v:.4f}")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
