"""One rule for "the infinite-width dynamics diverge", shared by every solver.

Past the critical ``gamma0 * eta`` the kernels grow and gradient descent leaves its stability
region: the loss and the NTK grow without bound (docs/theory.md section 4: the solver "must
report that (status DIVERGED with the step), never return garbage"). On a finite time grid "without bound" is a threshold: step ``k``
has diverged when ``max(loss(k), max |K(k)|)`` is non-finite or exceeds ``BLOWUP`` times its
value at step 0. Solvers report it as ``Status.DIVERGED`` with ``info["diverged_step"] = k``
and ``info["reason"]`` from :func:`reason`.
"""

from __future__ import annotations

import math

import torch

#: Growth of ``max(loss, max |NTK|)`` over its value at step 0 that counts as divergence.
BLOWUP = 1e8


def worst(*sizes: float) -> float:
    """The largest of ``sizes``, or inf when any is NaN (Python's ``max`` may drop a NaN)."""
    return math.inf if any(math.isnan(s) for s in sizes) else max(sizes)


def blew_up(size: float, size0: float, blowup: float = BLOWUP) -> bool:
    """True when ``size`` is non-finite or above ``blowup * size0``."""
    return not math.isfinite(size) or size > blowup * max(size0, 1e-300)


def blowup_step(loss: torch.Tensor, ntk: torch.Tensor, blowup: float = BLOWUP) -> int | None:
    """First step ``k`` whose loss (T+1,) or NTK (T+1, P_all, P_all) blew up, or None."""
    size = torch.maximum(loss, ntk.abs().flatten(1).amax(1))
    size = torch.where(torch.isnan(loss) | torch.isnan(ntk).flatten(1).any(1),
                       torch.full_like(size, math.inf), size)
    bad = ~torch.isfinite(size) | (size > blowup * max(float(size[0]), 1e-300))
    hits = torch.nonzero(bad)
    return int(hits[0]) if hits.numel() else None


def reason(step: int, blowup: float = BLOWUP) -> str:
    """The ``info["reason"]`` of a diverged solve."""
    return (f"loss or kernels blew up at step {step} (growth beyond {blowup:g} x the initial "
            f"scale, or non-finite): gamma0 * eta is past the critical value, where the "
            f"dynamics of gradient descent diverge")
