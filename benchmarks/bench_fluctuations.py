"""Accuracy and cost of ``theory.fluctuations`` (issue 13 targets).

    nice python -m benchmarks.bench_fluctuations [--quick] [--cache DIR]

1. Whitened two-layer linear network: predicted ``N Var`` against the exact Wishart reduction at
   N = 1e5 (``tests/finite_width_reference.py``); target within 5 % on every observable.
2. Deep linear (L = 3) and deep tanh (L = 2) networks: against brute-force ensembles of trained
   networks (``simulate.train``) at widths 256, 512, 1024; target within 10-15 % on the loss at
   every step, the NTK entries and the equal-time kernels, and ``N Var`` constant across widths.
3. Cost: time of ``fluctuations(problem)`` over the time of ``solve(problem)``, both with default
   options, on deep tanh and deep linear problems of several sizes; target <= 10. Each time is
   the best of a few runs (interleaved, so that both see the same load). ``--before`` also times
   the first defaults: for tanh every sampled site solved by the full model (population 2000,
   tol 1e-4) on 64 sites per layer, scaled to the default sites per layer (the cost is linear in
   the sites); for linear networks the sweeps of the closed-form map (``march=False``).

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


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def relative_se(fl) -> str:
    se = fl.info.get("standard_error") or {}
    out = []
    for k, v in as_fields(fl).items():
        if k in se:
            keep = v > 1e-6 * v.max()
            out.append(f"{k} {float((se[k] / v)[keep].median()):.1%}")
    return ", ".join(out)


def cost(name: str, prob: Problem, repeats: int, before: bool) -> None:
    """Best-of-``repeats`` times of ``solve`` and ``fluctuations`` (defaults), interleaved."""
    t_solve, t_fl, fl = [], [], None
    for _ in range(repeats):
        t_solve.append(timed(lambda: solve(prob))[1])
        fl, t = timed(lambda: fluctuations(prob))
        t_fl.append(t)
    ts, tf = min(t_solve), min(t_fl)
    head = f"   {name}: solve {ts:.3f} s, fluctuations {tf:.3f} s = {tf / ts:.1f} solves (load {os.getloadavg()[0]:.1f}); "
    if fl.info["method"] == "linear":
        print(head + f"{fl.info['directions']} exact directions, "
              + (f"one-pass march, check change {fl.residual:.1e}" if fl.iterations == 1 else
                 f"{fl.info['solver']}, {fl.iterations} sweeps"))
        if before:
            sol = solve(prob)
            t = min(timed(lambda: fluctuations(prob, solution=sol, march=False))[1] for _ in range(2))
            print(f"      sweeps of the closed-form map (march=False, the first default): {t:.2f} s = {t / ts:.0f} solves")
        return
    print(head + f"{fl.info['directions']} full + {fl.info['samples'] * prob.depth} control directions, "
          f"{'both levels by the one-pass march' if fl.info.get('solver') == 'march' else f'full model {fl.iterations} sweeps'}"
          f", {fl.info.get('precision')} population products; median relative SE: {relative_se(fl)}")
    if before:
        sol = solve(prob)
        old, t = timed(lambda: fluctuations(prob, solution=sol, samples=64, refine=64, population=2000, tol=1e-4,
                                            march=False, precision="double"))
        per_layer = fl.info["samples"]
        t_old = t * per_layer / 64
        print(f"      first defaults: ~{t_old:.0f} s = ~{t_old / ts:.0f} solves (64 sites per layer, scaled to "
              f"{per_layer})")


def costs(quick: bool, before: bool) -> None:
    print("3. cost, default options (best of interleaved runs)")
    cases = [("tanh L=2 T=8 (section 2)", problem("tanh", 2, 8, 1.0), 3)]
    if not quick:
        cases += [("tanh L=2 T=16", problem("tanh", 2, 16, 1.0), 3), ("tanh L=3 T=8", problem("tanh", 3, 8, 1.0), 3)]
    cases += [("linear L=2 T=8", problem("linear", 2, 8, 1.0), 9), ("linear L=3 T=8", problem("linear", 3, 8, 1.0), 9)]
    if not quick:
        cases += [("linear L=3 T=16", problem("linear", 3, 16, 1.0), 5)]
    for name, prob, repeats in cases:
        cost(name, prob, repeats if not quick else min(repeats, 3), before)


def networks(case: str, prob: Problem, widths: dict, cache: str, **opts) -> None:
    sol = solve(prob)
    fl, t_fl = timed(lambda: fluctuations(prob, solution=sol, **opts))
    print(f"2. {case}: {prob!r}")
    print(f"   status {fl.status.value}, {fl.info['directions']} fully solved noise directions, "
          f"{fl.iterations} sweeps, {t_fl:.1f} s; options {opts or 'default'}"
          + (f"; median relative SE: {relative_se(fl)}" if fl.info.get("standard_error") else ""))
    pred = as_fields(fl)
    for width, seeds in widths.items():
        res = compare(pred, ensemble(prob, width, seeds, cache), width)
        print(f"   N = {width:5d} ({seeds} seeds): "
              + "; ".join(f"{k} median {m:.3f} worst {w:.1%} (ens. SE {s:.1%})" for k, (m, w, s) in res.items()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and samples (minutes)")
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "dmft_validate"))
    ap.add_argument("--before", action="store_true", help="also time the first defaults (scaled)")
    ap.add_argument("--only", choices=("whitened", "networks", "cost"), help="run one section")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    q = args.quick
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.only in (None, "whitened"):
        whitened(100_000 if q else 1_000_000)
    if args.only in (None, "networks"):
        seeds = {256: 500, 512: 400} if q else {256: 2000, 512: 1500, 1024: 1000}
        networks("deep linear", problem("linear", 3, 6, 1.5), seeds, args.cache)
        tanh = problem("tanh", 2, 8, 1.0)
        networks("deep tanh", tanh, seeds, args.cache)  # the defaults whose cost section 3 times
        if not q:
            networks("deep tanh", tanh, seeds, args.cache, samples=2000, refine=256)
    if args.only in (None, "cost"):
        costs(q, args.before)


if __name__ == "__main__":
    main()
