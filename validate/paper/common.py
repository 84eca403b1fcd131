"""Helpers shared by the paper experiments: a network source that records the kernels at a few
times only, solves that report "not implemented" instead of crashing, and alignments."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..frame import Verdict, verdict_row
from ..metrics import alignment
from .sizes import Size, resolve, size_of_name


class KernelTimesTrainer:
    """``simulate.train`` recording the kernels at every ``every``-th step (and the last).

    Recording all ``T + 1`` times costs ``S ((T+1) P)^2`` numbers per kernel and layer for the
    two-time kernels (about 0.5 GB for Fig. 1 at 10 seeds); the checks only need a few times.
    ``kernels`` is passed on (validate asks for ``"equal_time"`` where it reads no two-time
    kernel). The name enters the network cache key, so ensembles recorded differently are never
    mixed up.
    """

    def __init__(self, steps: int, every: int):
        self.times = tuple(sorted(set(range(0, steps + 1, max(1, every))) | {steps}))
        self.__name__ = f"train_times_{every}_{steps}"
        self.__module__ = "simulate"

    def __call__(self, problem, width, seeds=1, *, seed=0, device="cpu", kernels="two_time"):
        from simulate import train

        return train(problem, width, seeds, seed=seed, device=device, times=self.times, kernels=kernels)


def sub_context(ctx, steps: int, every: int = 10):
    """``ctx`` sharing its memo tables, with the sparse-kernel trainer (unless a trainer is set)."""
    if ctx.trainer is not None:
        return ctx
    return dataclasses.replace(ctx, trainer=KernelTimesTrainer(steps, every))


def size_of(check: Any, ctx) -> Size:
    """The :class:`Size` of ``check`` (its ``size`` field, else env var / device of ``ctx``)."""
    return size_of_name(check.size, ctx)


def try_theory(ctx, problem, scheme: str, **options):
    """``(solution, None)`` or ``(None, why)`` when the scheme is not implemented here or fails."""
    try:
        sol = ctx.theory(problem, scheme, **options)
    except NotImplementedError as exc:
        return None, f"{scheme}: not implemented ({exc})"
    if not sol.ok:
        return sol, f"{scheme}: solve status {sol.status.value}"
    return sol, None


def not_available_row(check: str, observable: str, scheme: str, why: str, **kw) -> dict:
    """An inconclusive, non-gating row saying why a comparison could not be made."""
    return verdict_row(check=check, observable=observable, scheme=scheme, statistic="not_available",
                       verdict=Verdict.INCONCLUSIVE, reason=why, gating=False, **kw)


def final_kernel(obj, name: str, layer: int | None = None) -> torch.Tensor:
    """Final-time equal-time kernel (``ntk`` or ``phi``/``g`` of ``layer``), seed axis kept."""
    from ..metrics import observable

    return observable(obj, f"{name}_final", None, layer)


def seed_alignments(nets, sol, name: str, layer: int | None = None) -> np.ndarray:
    """Per-seed alignment ``A(K_net, K_theory)`` of the final kernel (docs/theory.md section 7)."""
    x = final_kernel(nets, name, layer)
    ok = torch.isfinite(x.reshape(x.shape[0], -1)).all(-1)
    return alignment(x[ok], final_kernel(sol, name, layer)).numpy()
