"""The checked inputs of one ``simulate.train`` call and its memory plan (docs/theory.md section 1).

:func:`setup` checks every argument before anything is allocated (``ValueError``/``TypeError``
naming the field and the valid values), sizes the working memory of one network and chooses how
many seeds train together; the result is a :class:`TrainSetup`, which the training loop reads.

Kernel recording modes (``kernels=``):

    "two_time"    Phi^l(t, s), G^l(t, s) at every pair of kernel times: (S, Tk, P_all, Tk, P_all)
                  per layer; needs the features of every kernel time (S Tk P_all N numbers per
                  layer) and one Gram matrix of side Tk P_all at the end.
    "equal_time"  only Phi^l(t, t), G^l(t, t): (S, Tk, P_all, P_all) per layer, one Gram of side
                  P_all per kernel time (shared with the NTK), no feature history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from theory.problem import Problem

from .trajectories import OBSERVABLES

#: Working memory per batch of seeds on the CPU when ``memory_budget`` is not given (bytes).
CPU_MEMORY_BUDGET = 2 * 1024**3
#: The values of ``kernels=`` (module docstring).
KERNEL_MODES = ("two_time", "equal_time")


def check_device(device) -> torch.device:
    """``torch.device(device)`` for a CPU or an available CUDA device; else ``ValueError`` naming ``device``."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: cannot parse {device!r}; use 'cpu' or 'cuda[:i]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but torch.cuda.is_available() is False; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: {dev.type!r} is not supported; valid values are 'cpu' and 'cuda'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {device!r} does not exist; this machine has {torch.cuda.device_count()} "
                         "CUDA device(s), 'cuda:0' ..")
    return dev


def check_record(record) -> tuple[str, ...]:
    """The observables of ``record=`` in canonical order; ``ValueError`` naming ``record`` otherwise."""
    if record is None:
        return ()
    if isinstance(record, str):
        record = (record,)
    rec = tuple(dict.fromkeys(record))
    bad = [r for r in rec if r not in OBSERVABLES]
    if bad:
        raise ValueError(f"record: unknown observables {bad}; valid values are {list(OBSERVABLES)}")
    return tuple(r for r in OBSERVABLES if r in rec)


def check_kernels(kernels) -> str:
    """``kernels`` if it is one of :data:`KERNEL_MODES`; else ``ValueError`` naming ``kernels``."""
    if kernels not in KERNEL_MODES:
        raise ValueError(f"kernels: unknown mode {kernels!r}; valid values are {list(KERNEL_MODES)}")
    return kernels


def check_times(times, steps: int) -> torch.Tensor:
    """(Tk,) sorted unique int64 step indices in 0..steps (default: all); ``ValueError`` naming ``times``."""
    if times is None:
        return torch.arange(steps + 1)
    try:
        t = torch.as_tensor(list(times) if not torch.is_tensor(times) else times)
    except (TypeError, ValueError):
        raise ValueError(f"times: expected step indices in 0..{steps}, got {times!r}") from None
    if t.ndim != 1 or t.numel() == 0 or t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"times: expected a non-empty list of integer step indices in 0..{steps}")
    if int(t.min()) < 0 or int(t.max()) > steps:
        raise ValueError(f"times: step indices must lie in 0..{steps}, got {t.tolist()}")
    return torch.unique(t.to(torch.int64))


@dataclass(frozen=True, eq=False)
class TrainSetup:
    """Checked inputs of one ``train`` call, with the data on the training device.

    ktimes: (Tk,) kernel step indices. kernels: the recording mode (module docstring).
    chunk: seeds trained together. x (P_all, D), y (P,), kx (P_all, P_all): on ``dev`` in ``dtype``.
    """

    problem: Problem
    width: int
    seeds: int
    seed: int
    dev: torch.device
    dtype: torch.dtype
    record: tuple[str, ...]
    ktimes: torch.Tensor
    kernels: str
    chunk: int
    x: torch.Tensor
    y: torch.Tensor
    kx: torch.Tensor

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """The kernels recorded besides the NTK: a subset of ("phi", "g")."""
        return tuple(n for n in ("phi", "g") if n in self.record)

    @property
    def two_time(self) -> bool:
        return self.kernels == "two_time"


def bytes_per_seed(problem: Problem, width: int, n_times: int, record, kernels: str, dtype, dev) -> int:
    """Working memory of one network in bytes: weights, fields and, for two-time kernels, the
    features recorded at every kernel time (with a device-side Gram buffer on CUDA)."""
    el = torch.empty((), dtype=dtype).element_size()
    L, D, Pa = problem.depth, problem.input_dim, problem.n_points
    n_hist = L * (("phi" in record) + ("g" in record)) if kernels == "two_time" else 0
    per_seed = el * (
        width * D + (L - 1) * width**2 + width + n_hist * n_times * Pa * width + 8 * L * Pa * width
    )
    if dev.type == "cuda":
        per_seed += el * n_hist * (n_times * Pa) ** 2 // max(1, L)
    return per_seed


def _device_bytes(dev: torch.device) -> int | None:
    """Total memory of the device (physical memory for the CPU), or None where unknown."""
    try:
        if dev.type == "cuda":
            return int(torch.cuda.get_device_properties(dev).total_memory)
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError, RuntimeError):
        return None


def _check_width_fits(per_seed: int, width: int, dev: torch.device, dtype) -> None:
    """``ValueError`` naming ``width`` when one network cannot fit in the device's memory."""
    total = _device_bytes(dev)
    if total is not None and per_seed > total:
        raise ValueError(
            f"width: {width} needs about {per_seed / 2**30:.3g} GiB for one network ({dtype}) but the "
            f"{dev.type} device has {total / 2**30:.3g} GiB in all; use a smaller width"
        )


def seed_chunk(per_seed: int, dev, budget, seeds: int) -> int:
    """How many seeds fit together in ``budget`` bytes of working memory (at least 1)."""
    if budget is None and dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = int(0.6 * free)
    elif budget is None:
        budget = CPU_MEMORY_BUDGET
    return max(1, min(seeds, int(budget // per_seed)))


def _check_scalars(problem, width, seeds, seed, dtype) -> None:
    if not isinstance(problem, Problem):
        raise ValueError(f"problem: expected a theory.Problem, got {type(problem).__name__}")
    for name, v, lo in (("width", width, 1), ("seeds", seeds, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
    if problem.gamma0 <= 0.0:
        raise ValueError(
            "gamma0: must be > 0 for a finite network (the readout is w . phi / (gamma0 N)); "
            "use a small gamma0 such as 1e-3, or theory.solve(problem, scheme='ntk') for gamma0 = 0"
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype: must be a torch floating dtype (torch.float64, torch.float32), got {dtype!r}")


def setup(problem, width, seeds, *, seed, device, dtype, record, times, kernels, memory_budget) -> TrainSetup:
    """Every input check of ``train``, before anything is allocated, and its memory plan."""
    _check_scalars(problem, width, seeds, seed, dtype)
    dev = check_device(device)
    record = check_record(record)
    kernels = check_kernels(kernels)
    ktimes = check_times(times, problem.steps)
    per_seed = bytes_per_seed(problem, width, len(ktimes), record, kernels, dtype, dev)
    _check_width_fits(per_seed, width, dev, dtype)
    return TrainSetup(problem, width, seeds, seed, dev, dtype, record, ktimes, kernels,
                      seed_chunk(per_seed, dev, memory_budget, seeds),
                      problem.x_all.to(dev, dtype), problem.y_train.to(dev, dtype), problem.kx.to(dev, dtype))
