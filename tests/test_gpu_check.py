"""``make gpu-check`` (benchmarks/gpu_check.py) at its small size on the CPU: every stage runs and
the JSON file carries the numbers; without CUDA and without DEVICE=cpu it refuses loudly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _make(tmp_path, *extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DEVICE", "SIZE", "OUT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OUT=str(tmp_path))
    return subprocess.run(["make", "-s", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_small_cpu_run_writes_every_stage(tmp_path):
    r = _make(tmp_path, "DEVICE=cpu", "SIZE=small")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((tmp_path / "gpu-check.json").read_text())
    assert rep["ok"] and rep["device"] == "cpu" and rep["size"] == "small"
    st = rep["stages"]
    assert list(st) == ["environment", "tests", "monte_carlo", "train"] and all(s["ok"] for s in st.values())
    assert st["environment"]["matmul_float64_gflops"] > 0 and st["environment"]["torch"] == torch.__version__
    t = st["tests"]
    assert t["tests"] >= 2 and t["failures"] == t["errors"] == 0  # the gpu tests: skipped without CUDA
    mc = st["monte_carlo"]
    assert mc["samples"] == 200 and mc["finite"] and mc["wall_s"] > 0 and mc["status"] in ("converged", "max_iterations")
    assert set(mc["standard_error"]) >= {"phi", "g"}
    tr = st["train"]
    assert (tr["width"], tr["seeds"], tr["diverged"]) == (64, 2, 0) and tr["gflops"] > 0 and tr["seed_batch"] == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here: the check would run")
def test_without_cuda_it_fails_unless_device_cpu(tmp_path):
    r = _make(tmp_path, "SIZE=small")
    assert r.returncode != 0 and "CUDA is not available" in r.stderr and "DEVICE=cpu" in r.stderr
    assert not (tmp_path / "gpu-check.json").exists()
