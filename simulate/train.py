"""``simulate.train``: full-batch gradient descent on S networks of one width, batched over seeds.

THEORY.md section 1 (conventions) and DESIGN.md (contract). The forward/backward/update maths is
in :mod:`simulate.mlp`; this module validates input, loops over time steps (causality forces
that loop), records observables, detects divergence and packs a :class:`Trajectories`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Iterable

import torch

from theory.problem import Problem

from .mlp import DIVERGENCE_FACTOR, equal_time_ntk, forward, gram_into, init_network, sgd_step
from .trajectories import OBSERVABLES, Trajectories

#: Working memory per batch of seeds on the CPU when ``memory_budget`` is not given (bytes).
CPU_MEMORY_BUDGET = 2 * 1024**3


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


def _check_times(times, steps: int) -> torch.Tensor:
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


def _bytes_per_seed(problem: Problem, width: int, n_times: int, record, dtype, dev) -> int:
    """Working memory of one network in bytes: weights, recorded features and activations."""
    el = torch.empty((), dtype=dtype).element_size()
    L, D, Pa = problem.depth, problem.input_dim, problem.n_points
    n_hist = L * (("phi" in record) + ("g" in record))
    per_seed = el * (
        width * D + (L - 1) * width**2 + width + n_hist * n_times * Pa * width + 8 * L * Pa * width
    )
    if dev.type == "cuda":
        per_seed += el * n_hist * (n_times * Pa) ** 2 // max(1, L)  # device-side Gram buffer
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


def _seed_chunk(per_seed: int, dev, budget, seeds: int) -> int:
    """How many seeds fit together in ``budget`` bytes of working memory (at least 1)."""
    if budget is None and dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = int(0.6 * free)
    elif budget is None:
        budget = CPU_MEMORY_BUDGET
    return max(1, min(seeds, int(budget // per_seed)))


def _check_inputs(problem, width, seeds, seed, device, dtype, record, times):
    """Every input check of :func:`train`, before anything is allocated: ``ValueError`` naming the
    field. Returns the device, the record tuple, the kernel times and the bytes per network."""
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
    dev = check_device(device)
    record = check_record(record)
    ktimes = _check_times(times, problem.steps)
    per_seed = _bytes_per_seed(problem, width, len(ktimes), record, dtype, dev)
    _check_width_fits(per_seed, width, dev, dtype)
    return dev, record, ktimes, per_seed


def train(
    problem: Problem,
    width: int,
    seeds: int = 1,
    *,
    seed: int = 0,
    device="cpu",
    dtype: torch.dtype = torch.float64,
    record: Iterable[str] | str | None = OBSERVABLES,
    times: Iterable[int] | None = None,
    progress: bool = False,
    memory_budget: int | None = None,
) -> Trajectories:
    """Train ``seeds`` networks of width ``width`` on ``problem`` by full-batch gradient descent.

    Network ``i`` (0-based) is initialised from seed ``seed + i``; the result for that network
    equals ``train(problem, width, 1, seed=seed + i)`` on the same device. Seeds are trained as one
    batched computation; when their working memory exceeds ``memory_budget`` bytes (default 2 GiB
    on the CPU, 60% of free GPU memory on CUDA) they are trained in consecutive batches.

    record: which of ``("ntk", "phi", "g")`` to record (loss and outputs always are).
    times:  step indices (0..T) at which the two-time kernels ``phi``/``g`` are recorded
            (default: all T + 1); their memory is ``S * (Tk * P_all)**2`` numbers per layer.
    Results are CPU tensors of ``dtype``. ``gamma0 = 0`` is rejected: the readout divides by
    gamma0; use a small gamma0 (e.g. 1e-3; outputs are centred, so this is well conditioned in
    float64) or ``theory.solve(problem, scheme="ntk")`` for the lazy limit.
    """
    dev, record, ktimes, per_seed = _check_inputs(problem, width, seeds, seed, device, dtype, record, times)
    chunk = _seed_chunk(per_seed, dev, memory_budget, seeds)

    T, P, Pa, L, S = problem.steps, problem.n_train, problem.n_points, problem.depth, seeds
    Tk = len(ktimes)
    slot = {int(k): i for i, k in enumerate(ktimes)}
    loss = torch.full((S, T + 1), float("nan"), dtype=dtype)
    f_all = torch.full((S, T + 1, Pa), float("nan"), dtype=dtype)
    ntk = torch.full((S, T + 1, Pa, Pa), float("nan"), dtype=dtype) if "ntk" in record else None
    kern = {n: [torch.empty((S, Tk, Pa, Tk, Pa), dtype=dtype) for _ in range(L)]  # every entry is written
            for n in ("phi", "g") if n in record}
    div_step = torch.full((S,), -1, dtype=torch.int64)

    x = problem.x_all.to(dev, dtype)
    y = problem.y_train.to(dev, dtype)
    kx = problem.kx.to(dev, dtype)
    c = problem.eta * problem.gamma0 / P
    need_g_last = "g" in record or "ntk" in record
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=S * (T + 1), desc=f"train N={width}", unit="seed-step")
    start = time.perf_counter()
    for s0 in range(0, S, chunk):
        s1 = min(S, s0 + chunk)
        n_s = s1 - s0
        net = init_network(problem.input_dim, width, L, list(range(seed + s0, seed + s1)), device=dev, dtype=dtype)
        hist = {n: [torch.empty(n_s, Tk, Pa, width, device=dev, dtype=dtype) for _ in range(L)] for n in kern}
        dead = torch.zeros(n_s, dtype=torch.bool, device=dev)
        first = torch.full((n_s,), -1, dtype=torch.int64, device=dev)
        f0 = None
        for k in range(T + 1):
            fields = forward(net, x, problem.activation, problem.gamma0, backward=k < T or need_g_last)
            if f0 is None:
                f0 = fields.f.clone()
            ft = fields.f - f0
            lk = ((ft[:, :P] - y) ** 2).mean(1)
            if k == 0:
                limit = DIVERGENCE_FACTOR * torch.clamp(lk, min=1.0)
            new = (~torch.isfinite(lk) | (lk > limit)) & ~dead
            first = torch.where(new, torch.full_like(first, k), first)
            dead = dead | new
            loss[s0:s1, k] = lk.cpu()
            f_all[s0:s1, k] = ft.cpu()
            if ntk is not None:
                ntk[s0:s1, k] = equal_time_ntk(fields, kx).cpu()
            if k in slot:
                for name, src in (("phi", fields.a), ("g", fields.g)):
                    if name in hist:
                        for j in range(L):
                            hist[name][j][:, slot[k]] = src[j]
            if bar is not None:
                bar.update(n_s)
            if k < T:
                if bool(dead.all()):
                    break
                delta = torch.where(dead[:, None], torch.zeros_like(lk)[:, None], y - ft[:, :P])
                sgd_step(net, fields, x[:P], delta, c)
        del net, fields
        for name, bufs in hist.items():
            for j, feats in enumerate(bufs):
                out = kern[name][j][s0:s1].view(n_s, Tk * Pa, Tk * Pa)
                flat = feats.view(n_s, Tk * Pa, width)
                if dev.type == "cpu":
                    gram_into(out, flat)
                else:
                    tmp = torch.empty(n_s, Tk * Pa, Tk * Pa, device=dev, dtype=dtype)
                    gram_into(tmp, flat)
                    out.copy_(tmp)
                    del tmp
                bufs[j] = None
        div_step[s0:s1] = first.cpu()
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - start

    diverged = div_step >= 0
    for i in torch.nonzero(diverged)[:, 0].tolist():  # mask entries from the divergence step on
        k = int(div_step[i])
        loss[i, k:] = float("nan")
        f_all[i, k:] = float("nan")
        if ntk is not None:
            ntk[i, k:] = float("nan")
        late = ktimes >= k
        for bufs in kern.values():
            for arr in bufs:
                arr[i, late] = float("nan")
                arr[i, :, :, late] = float("nan")
    return Trajectories(
        problem=problem,
        t=problem.times.to(dtype),
        loss=loss,
        f_train=f_all[:, :, :P].clone(),
        f_test=f_all[:, :, P:].clone() if Pa > P else None,
        ntk=ntk,
        phi=tuple(kern["phi"]) if "phi" in kern else None,
        g=tuple(kern["g"]) if "g" in kern else None,
        kernel_times=ktimes,
        diverged=diverged,
        diverged_step=div_step,
        width=width,
        seeds=S,
        seed=seed,
        device=str(dev),
        dtype=dtype,
        info={"wall_s": wall, "seed_chunk": chunk, "record": record},
    )
