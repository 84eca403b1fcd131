"""Speed of ``validate.width_study`` and the false-alarm rate of its verdicts.

    python -m benchmarks.bench_width_study [--repeats 3] [--false-alarm 10] [--device cpu]

Speed: a 4-width (64..512) x 8-seed x 20-step study of a 3-layer MLP (examples/width_models.py,
muP, full batch of 32 points, float64) three ways:

- ``width_study`` (seeds batched with vmap; the statistics and verdicts included);
- ``width_study(batching="loop")`` (the per-seed fallback);
- a coordinate-check loop in the style of mup's ``get_coord_data``, written here: for every
  seed and width a fresh model and optimizer, and at every step forward hooks on every module
  that store one number (the mean absolute output) with ``.item()``, then backward and step;
  no statistics.

Prints the best of ``--repeats`` wall times and the machine load (1-minute load average) next to
them: on a shared machine the numbers are upper bounds.

False alarms (``--false-alarm K``): the passing example models (the muP MLP at 64..512 with the
default tolerance; the CNN at 8..64 and the transformer block at 32..256 channels / width with
the small-width tolerance 0.2 on exponents, as in tests/test_width_study_examples.py), each
studied at base seeds 1..K. A false alarm is a study whose verdict is "fail"; the fraction of
failing gating rows and the fraction of inconclusive studies are printed too, and the power:
how often the two broken MLPs (standard parameterisation at a fixed rate; NTK readout) fail and
name the right module.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import pandas as pd
import torch

from validate import Verdict, width_study

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "width_models.py"
WIDTHS, SEEDS, STEPS = (64, 128, 256, 512), 8, 20
SMALL = {"loss": 0.1, "rms": 0.2, "delta_rms": 0.2, "output": 0.2}


def examples():
    spec = importlib.util.spec_from_file_location("width_models_bench", EXAMPLES)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def coord_check_loop(factory, make_optimizer, x, y, widths, seeds, steps, device) -> pd.DataFrame:
    """The mup-style loop: per seed, per width, per step, hooks that ``.item()`` every module."""
    records = []
    x, y = x.to(device), y.to(device)
    for seed in range(seeds):
        torch.manual_seed(seed)
        for width in widths:
            model = factory(width).to(device)
            opt = make_optimizer(model, width)
            for t in range(steps):
                def hook(name):
                    def record(module, args, out):
                        with torch.no_grad():
                            records.append(dict(width=width, seed=seed, t=t, module=name,
                                                l1=out.abs().mean().item()))
                    return record
                handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()]
                loss = torch.nn.functional.mse_loss(model(x)[:, 0], y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                for h in handles:
                    h.remove()
    return pd.DataFrame(records)


def best_time(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def speed(wm, repeats: int, device: str) -> None:
    x, y = wm.MLP_DATA
    common = dict(widths=WIDTHS, data=wm.MLP_DATA, optimizer=wm.mup_sgd, steps=STEPS, seeds=SEEDS, device=device)
    width_study(wm.MuPMLP, **{**common, "widths": (8, 16), "steps": 1})  # warm up vmap once
    print(f"study: widths {WIDTHS}, {SEEDS} seeds, {STEPS} steps, 3-layer muP MLP, P = {len(x)}, float64, "
          f"{device}, torch threads {torch.get_num_threads()}")
    runs = {
        "width_study (vmap over seeds)": lambda: width_study(wm.MuPMLP, **common),
        "width_study (batching='loop')": lambda: width_study(wm.MuPMLP, **common, batching="loop"),
        "mup get_coord_data-style loop": lambda: coord_check_loop(wm.MuPMLP, wm.mup_sgd, x, y, WIDTHS, SEEDS,
                                                                   STEPS, device),
    }
    for name, f in runs.items():
        load = os.getloadavg()[0]
        print(f"  {name:32s} {best_time(f, repeats):7.2f} s   (best of {repeats}; load average {load:.1f} "
              f"before, on {os.cpu_count()} cores)")
    s = width_study(wm.MuPMLP, **common)
    print("  per width (vmap path): " + ", ".join(f"N={w}: {i['seconds']:.2f} s" for w, i in s.info.items()))
    small = dict(common, widths=(8, 16, 32, 64))
    print(f"small widths {small['widths']} (overhead-bound rather than matmul-bound):")
    for name, f in {
        "width_study (vmap over seeds)": lambda: width_study(wm.MuPMLP, **small),
        "mup get_coord_data-style loop": lambda: coord_check_loop(wm.MuPMLP, wm.mup_sgd, x, y, small["widths"],
                                                                   SEEDS, STEPS, device),
    }.items():
        load = os.getloadavg()[0]
        print(f"  {name:32s} {best_time(f, repeats):7.2f} s   (best of {repeats}; load average {load:.1f})")


def false_alarms(wm, repeats: int, device: str) -> None:
    cases = [
        ("muP MLP 64..512, tol 0.1", wm.MuPMLP, wm.MLP_DATA, (64, 128, 256, 512), 10, 0.1),
        ("mean-field CNN 8..64, tol 0.2", wm.MeanFieldCNN, wm.IMAGE_DATA, (8, 16, 32, 64), 6, SMALL),
        ("muP transformer 32..256, tol 0.2", wm.MuPTransformerBlock, wm.TOKEN_DATA, (32, 64, 128, 256), 6, SMALL),
    ]
    print(f"false alarms over base seeds 1..{repeats} (16 seeds per width):")
    for name, model, data, widths, steps, tol in cases:
        t = time.perf_counter()
        verdicts, rows, fails = [], 0, 0
        for seed in range(1, repeats + 1):
            s = width_study(model, widths=widths, data=data, optimizer=wm.mup_sgd, steps=steps, seeds=16,
                            seed=seed, tolerance=tol, device=device)
            g = s.verdicts[s.verdicts["gating"]]
            verdicts.append(s.verdict)
            rows += len(g)
            fails += int((g["verdict"] == "fail").sum())
        n = {v: verdicts.count(v) for v in Verdict}
        print(f"  {name:34s} studies: fail {n[Verdict.FAIL]}/{repeats}, inconclusive "
              f"{n[Verdict.INCONCLUSIVE]}/{repeats}, pass {n[Verdict.PASS]}/{repeats}; gating rows failed "
              f"{fails}/{rows}; {time.perf_counter() - t:.0f} s")


def power(wm, repeats: int, device: str) -> None:
    """How often the two broken MLPs (tests/test_width_study_examples.py) are caught: 8 seeds."""
    cases = [("standard param., fixed lr (loss)", wm.sp_mlp, "loss"),
             ("NTK readout (hidden delta_rms)", wm.NTKReadoutMLP, "hidden1")]
    print(f"power over base seeds 1..{repeats} (8 seeds per width, widths 64..512, tol 0.1):")
    for name, model, module in cases:
        verdicts, named = [], 0
        for seed in range(1, repeats + 1):
            s = width_study(model, widths=(64, 128, 256, 512), data=wm.MLP_DATA, optimizer=wm.fixed_sgd,
                            steps=10, seeds=8, seed=seed, device=device)
            verdicts.append(s.verdict)
            named += module in s.failing_modules()
        print(f"  {name:34s} studies failed {verdicts.count(Verdict.FAIL)}/{repeats}; "
              f"'{module}' named in {named}/{repeats}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--false-alarm", type=int, default=0, metavar="K", help="also measure false alarms over K seeds")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    wm = examples()
    speed(wm, args.repeats, args.device)
    if args.false_alarm:
        false_alarms(wm, args.false_alarm, args.device)
        power(wm, args.false_alarm, args.device)


if __name__ == "__main__":
    main()
