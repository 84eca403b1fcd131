"""Accuracy and cost of ``theory.fluctuations`` (issue 13 targets).

    nice python -m benchmarks.bench_fluctuations [--quick] [--cache DIR]

1. Whitened two-layer linear network: predicted ``N Var`` against the exact Wishart reduction at
   N = 1e5 (``tests/finite_width_reference.py``); target within 5 % on every observable.
2. Deep linear (L = 3) and deep tanh (L = 2) networks: against brute-force ensembles of trained
   networks (``simulate.train``) at widths 256, 512, 1024; target within 10-15 % on the loss at
   every step, the NTK entries and the equal-time kernels, and ``N Var`` constant across widths.
3. Cost: time of ``fluctuations`` over the time of ``solve`` on the same problem; target <= 10.

Run it with one thread and ``nice`` on a shared machine; timings under load are upper bounds.
Ensembles are cached (``--cache``) because they are the expensive part.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from simulate import train
from theory import Problem, fluctuations, solve

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from finite_width_reference import two_layer_from_gram, whitened_inputs, wishart_gram  # noqa: E402

FIELDS = ("loss", "f", "ntk", "phi", "g")


def problem(act: str, depth: int, steps: int, gamma0: float) -> Problem:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, generator=g, dtype=torch.float64)
    xt = torch.randn(1, 5, generator=g, dtype=torch.float64)
    return Problem(x, y, x_test=xt, depth=depth, activation=act, gamma0=gamma0, eta=0.3, steps=steps)


def as_fields(fl) -> dict[str, torch.Tensor]:
    return {"loss": fl.loss, "f": torch.cat([fl.f_train] + ([fl.f_test] if fl.f_test is not None else []), 1),
            "ntk": fl.ntk, "phi": torch.stack(fl.phi), "g": torch.stack(fl.g)}


def ensemble(prob: Problem, width: int, seeds: int, cache: str) -> dict[str, torch.Tensor]:
    path = os.path.join(cache, f"fluct_{prob.fingerprint()[:16]}_N{width}_S{seeds}.pt")
    if os.path.exists(path):
        return torch.load(path)
    run = train(prob, width=width, seeds=seeds, record=("ntk", "phi", "g"))
    eq = lambda k: torch.diagonal(k, dim1=1, dim2=3).permute(0, 3, 1, 2)  # noqa: E731
    out = {"loss": run.loss, "f": torch.cat([run.f_train, run.f_test], 2), "ntk": run.ntk,
           "phi": torch.stack([eq(p) for p in run.phi], 1), "g": torch.stack([eq(p) for p in run.g], 1)}
    os.makedirs(cache, exist_ok=True)
    torch.save(out, path)
    return out


def compare(pred: dict, samples: dict, width: int) -> dict[str, tuple[float, float, float]]:
    """Per field: (median ratio measured/predicted, largest |ratio - 1|, median ensemble rel. SE)."""
    out = {}
    for k in FIELDS:
        x = samples[k] - samples[k].mean(0)
        emp = width * x.var(0)
        se = width * ((x**4).mean(0) - (x**2).mean(0) ** 2).clamp(min=0).sqrt() / x.shape[0] ** 0.5
        p = pred[k]
        keep = p > 1e-6 * p.max()
        r = emp[keep] / p[keep]
        out[k] = (float(r.median()), float((r - 1).abs().max()), float((se[keep] / p[keep]).median()))
    return out


def whitened(count: int) -> None:
    x = whitened_inputs(5, 8)
    y = torch.tensor([1.0, -0.5, 0.7], dtype=torch.float64)
    print("1. whitened two-layer linear network vs exact Wishart reduction (N = 1e5)")
    for gamma0 in (0.5, 1.5):
        prob = Problem(x[:3], y, x_test=x[3:], depth=1, activation="linear", gamma0=gamma0, eta=0.4, steps=8)
        pred = as_fields(fluctuations(prob))
        pred["g"] = pred["g"][0, :, 0, 0]
        pred["phi"] = pred["phi"][0]
        ref = two_layer_from_gram(wishart_gram(10**5, 6, count, seed=5), y, 2, gamma0=gamma0,
                                  eta=prob.eta, steps=prob.steps)
        worst = {}
        for k in FIELDS:
            var = 10**5 * ref[k].var(0)
            keep = pred[k] > 1e-6 * pred[k].max()
            worst[k] = float(((var - pred[k]).abs() / pred[k])[keep].max())
        print(f"   gamma0 = {gamma0}: largest |ref / pred - 1| per field "
              + ", ".join(f"{k} {v:.2%}" for k, v in worst.items())
              + f"  (reference SE ~{(2 / count) ** 0.5:.2%})")


def networks(case: str, prob: Problem, widths: dict, cache: str, **opts) -> None:
    t0 = time.perf_counter()
    sol = solve(prob)
    t_solve = time.perf_counter() - t0
    t0 = time.perf_counter()
    fl = fluctuations(prob, solution=sol, **opts)
    t_fl = time.perf_counter() - t0
    print(f"2. {case}: {prob!r}")
    print(f"   status {fl.status.value}, {fl.info['directions']} noise directions, {fl.iterations} sweeps; "
          f"solve {t_solve:.1f} s, fluctuations {t_fl:.1f} s = {t_fl / max(t_solve, 1e-9):.0f} solves")
    pred = as_fields(fl)
    for width, seeds in widths.items():
        res = compare(pred, ensemble(prob, width, seeds, cache), width)
        print(f"   N = {width:5d} ({seeds} seeds): "
              + "; ".join(f"{k} median {m:.3f} worst {w:.1%} (ens. SE {s:.1%})" for k, (m, w, s) in res.items()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and samples (minutes)")
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "dmft_validate"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    q = args.quick
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    whitened(100_000 if q else 1_000_000)
    seeds = {256: 500, 512: 400} if q else {256: 2000, 512: 1500, 1024: 1000}
    networks("deep linear", problem("linear", 3, 6, 1.5), seeds, args.cache)
    networks("deep tanh", problem("tanh", 2, 8, 1.0), seeds, args.cache,
             samples=500 if q else 2000, population=500 if q else 1000)


if __name__ == "__main__":
    main()
