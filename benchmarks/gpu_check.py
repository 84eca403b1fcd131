"""The prepared GPU check (``make gpu-check``): the ``gpu`` tests and the GPU benchmarks, one JSON file.

    python -m benchmarks.gpu_check [--device cuda|cpu] [--size full|small] [--out FILE]

Stages, each timed and written to the JSON file as soon as it ends (a run cut short keeps what
it finished):

1. ``environment``: torch, CUDA, the device's name and memory, its float64 matmul rate.
2. ``tests``: ``pytest -m gpu`` (counts of passed, failed, skipped from its JUnit XML).
3. ``monte_carlo``: ``theory.solve`` of the paper's Fig. 1 problem (tanh, L = 3, P = 10,
   D = 25, eta = 0.1, gamma0 = 1, T = 100) with 10,000 samples and 256 response samples.
4. ``train``: ``simulate.train`` on the same problem at width 16384 x 8 seeds, every kernel
   recorded (time, seed batches, GFLOP/s, peak device memory).

Sizes: ``full`` (default; under 8 minutes on one H200 is the target) or ``small`` (T = 5, 200
samples, width 64 x 2 seeds: seconds, for testing this script on a CPU). ``--device`` defaults
to ``$DEVICE`` or ``cuda``; without CUDA the check exits 2 at once unless ``--device cpu``
(``DEVICE=cpu``) is given. ``--out`` defaults to ``$OUT/gpu-check.json`` when ``$OUT`` is set,
else ``reports/gpu-check.json``. Exit code: 0 when every stage ran and no test failed, 1
otherwise, 2 for CUDA missing or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    "full": dict(steps=100, samples=10_000, response_samples=256, width=16384, seeds=8),
    "small": dict(steps=5, samples=200, response_samples=8, width=64, seeds=2),
}


def fig1_problem(steps: int):
    """The paper's Fig. 1 problem (docs/theory.md section 7) with ``steps`` steps."""
    from theory import Problem
    from theory.data import gaussian_data

    x, y, _, _ = gaussian_data(10, 25, 0, seed=0)
    return Problem(x, y, depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=steps)


def sync(dev: str) -> None:
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def environment(dev: str) -> dict:
    out = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
           "cuda": torch.version.cuda, "device": dev, "python": sys.version.split()[0]}
    if dev.startswith("cuda"):
        p = torch.cuda.get_device_properties(torch.device(dev))
        out.update(name=p.name, memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count)
    n = 4096 if dev.startswith("cuda") else 512
    a = torch.randn(n, n, dtype=torch.float64, device=dev)
    a @ a
    sync(dev)
    t = time.perf_counter()
    for _ in range(5):
        a @ a
    sync(dev)
    out["matmul_float64_gflops"] = round(2 * n**3 * 5 / (time.perf_counter() - t) / 1e9, 1)
    return out


def gpu_tests(timeout: float) -> dict:
    """``pytest -m gpu`` in a subprocess; counts from its JUnit XML."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "gpu.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", f"--junitxml={xml}",
               str(ROOT / "tests")]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if xml.exists():
            suite = ET.parse(xml).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            counts = {k: int(suite.get(k, 0)) for k in counts}
    failed = counts["failures"] + counts["errors"]
    return {"returncode": r.returncode, **counts, "passed": counts["tests"] - failed - counts["skipped"],
            "tail": r.stdout[-2000:]}


def monte_carlo(dev: str, sz: dict) -> dict:
    from theory import solve

    p = fig1_problem(sz["steps"])
    sync(dev)
    t = time.perf_counter()
    sol = solve(p, samples=sz["samples"], response_samples=sz["response_samples"], device=dev)
    sync(dev)
    wall = time.perf_counter() - t
    se = sol.info.get("standard_error", {})
    return {"wall_s": round(wall, 2), "status": sol.status.value, "iterations": sol.iterations,
            "residual": float(sol.residual), "samples": sz["samples"], "response_samples": sz["response_samples"],
            "steps": sz["steps"], "final_loss": float(sol.loss[-1]), "finite": bool(torch.isfinite(sol.loss).all()),
            "standard_error": json.loads(json.dumps(se, default=lambda v: v.tolist() if torch.is_tensor(v) else str(v))),
            "timings_s": {k: round(float(v), 2) for k, v in (sol.info.get("timings") or {}).items()}}


def training(dev: str, sz: dict) -> dict:
    from benchmarks.bench_simulate import train_flops
    from simulate import train

    p = fig1_problem(sz["steps"])
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(dev)
    t = time.perf_counter()
    run = train(p, sz["width"], sz["seeds"], device=dev)
    sync(dev)
    wall = time.perf_counter() - t
    out = {"wall_s": round(wall, 2), "width": sz["width"], "seeds": sz["seeds"], "steps": sz["steps"],
           "seed_batch": run.info["seed_chunk"], "diverged": int(run.diverged.sum()),
           "final_loss_mean": float(run.loss[:, -1].mean()),
           "gflops": round(train_flops(p, sz["width"], sz["seeds"], True) / wall / 1e9, 1)}
    if dev.startswith("cuda"):
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def _write(path: Path, report: dict) -> None:
    from simulate import atomic_write

    atomic_write(path, lambda fh: fh.write(json.dumps(report, indent=2).encode()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=os.environ.get("DEVICE") or "cuda", help="cuda (default) or cpu")
    ap.add_argument("--size", default=os.environ.get("SIZE") or "full", choices=sorted(SIZES))
    default_out = Path(os.environ["OUT"]) / "gpu-check.json" if os.environ.get("OUT") else ROOT / "reports/gpu-check.json"
    ap.add_argument("--out", default=str(default_out), help=f"JSON file (default {default_out})")
    ap.add_argument("--skip-tests", action="store_true", help="leave out the pytest stage")
    ap.add_argument("--test-timeout", type=float, default=240.0)
    args = ap.parse_args(argv)
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: error: CUDA is not available (torch.cuda.is_available() is False); "
              "give DEVICE=cpu to run the check on the CPU", file=sys.stderr)
        return 2
    if not (dev == "cpu" or dev.startswith("cuda")):
        print(f"gpu-check: error: --device {dev!r}: valid values are cuda, cuda:N and cpu", file=sys.stderr)
        return 2
    out = Path(args.out)
    report = {"device": dev, "size": args.size, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "stages": {}}
    stages = [("environment", lambda: environment(dev))]
    if not args.skip_tests:
        stages.append(("tests", lambda: gpu_tests(args.test_timeout)))
    stages += [("monte_carlo", lambda: monte_carlo(dev, SIZES[args.size])),
               ("train", lambda: training(dev, SIZES[args.size]))]
    ok, t0 = True, time.perf_counter()
    for name, fn in stages:
        t = time.perf_counter()
        try:
            res = fn()
            res_ok = name != "tests" or (res["failures"] + res["errors"] == 0 and res["returncode"] in (0, 5))
        except Exception as exc:  # the stage's error is its result; the next stages still run
            res, res_ok = {"error": f"{type(exc).__name__}: {exc}"}, False
        res["seconds"] = round(time.perf_counter() - t, 2)
        res["ok"] = res_ok
        ok = ok and res_ok
        report["stages"][name] = res
        report["total_s"], report["ok"] = round(time.perf_counter() - t0, 2), ok
        _write(out, report)
        print(f"gpu-check: {name}: {'ok' if res_ok else 'FAILED'} ({res['seconds']} s)", flush=True)
    print(f"gpu-check: {'ok' if ok else 'FAILED'} in {report['total_s']} s; wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
