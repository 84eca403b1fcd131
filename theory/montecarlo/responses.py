"""Bookkeeping of the response functions in the Monte Carlo loop (docs/theory.md section 2).

The responses ``A^l = <d phi(h^l) / d r^l>`` and ``B^l = <d g^{l+1} / d u^{l+1}>`` (l = 1..L-1,
(n, n) each) come from exact pathwise Jacobians of a subset of the samples
(``theory.montecarlo.jacobians``), the costliest part of an iteration. :class:`ResponseBook` decides when
to re-estimate them (*refresh*), checks each refresh against the stored estimate within the noise
of both (*check*: split-half standard errors), and keeps a *running mean* over consecutive
refreshes that agree, so their noise keeps falling near the fixed point.
"""

from __future__ import annotations

import math

import torch

#: Smallest relative change a check waits for (linear networks: the noise is ~0).
TOL_FLOOR = 1e-6


class ResponseBook:
    """Stored responses ``a`` (A^1..A^{L-1}) and ``b`` (B^1..B^{L-1}), each (n, n), and the schedule.

    used: the scheme uses responses ("dmft"); jacobians: Jacobians are computed at all (responses
    or the linearized control variate); every: refresh period after the warm-up; average: keep the
    running mean; warmup: number of warm-up iterations (each refreshes).
    """

    def __init__(self, a: list, b: list, *, used: bool, jacobians: bool, every: int,
                 average: bool, warmup: int) -> None:
        self.a, self.b = list(a), list(b)
        self.depth = len(a) + 1
        self.used, self.jacobians = used, jacobians
        self.every, self.average, self.warmup = every, average, warmup
        self.se = [math.inf] * (2 * (self.depth - 1))  # absolute split-half se of a, then b
        self.streak = 0  # consecutive agreeing refreshes in the running mean
        self.last = 0  # iteration of the last refresh
        self.force = False  # refresh on the next iteration (the residual is near the floor)
        self.count = 0  # refreshes so far
        self.start_sweep(False)

    # ------------------------------------------------------------------ schedule
    def due(self, it: int, averaging: bool) -> bool:
        """Whether iteration ``it`` re-estimates the Jacobians; opens the sweep's record."""
        refresh = self.jacobians and (it <= self.warmup + 1 or (self.force and not averaging)
                                      or it - self.last >= self.every)
        if refresh:
            self.last, self.count = it, self.count + 1
        self.start_sweep(refresh)
        return refresh

    def start_sweep(self, refresh: bool) -> None:
        self.refreshed = refresh
        self.changes: list[float] = []
        self.noise: list[float] = []
        self._new_se: dict[int, float] = {}
        self.new_a, self.new_b = list(self.a), list(self.b)

    # ------------------------------------------------------------------ one sweep
    def a_below(self, l: int, this_sweep: bool) -> torch.Tensor | None:
        """``A^{l-1}`` for the fields of layer ``l`` (None at l = 1 or without responses);
        ``this_sweep``: the estimate of this sweep (Gauss-Seidel) rather than the stored one."""
        if not self.used or l < 2:
            return None
        return (self.new_a if this_sweep else self.a)[l - 2]

    def b_at(self, l: int) -> torch.Tensor | None:
        """The stored ``B^l`` for the fields of layer ``l`` (None at l = L or without responses)."""
        return self.b[l - 1] if (self.used and l <= self.depth - 1) else None

    def record(self, l: int, ja, jb, se_a: float, se_b: float, change) -> None:
        """A refresh of layer ``l``: ``ja = A^l`` (used for l <= L-1), ``jb = B^{l-1}`` (l >= 2),
        with their split-half se; ``change(new, old)`` measures a difference (active entries)."""
        if not self.used:
            return
        last = self.depth - 1
        for k, new, se_new, ok in ((l - 1, ja, se_a, l <= last), (last + l - 2, jb, se_b, l >= 2)):
            if not ok:
                continue
            old = self.a[k] if k < last else self.b[k - last]
            size = max(float(torch.linalg.matrix_norm(new)), 1e-300)
            self.changes.append(change(new, old) / size)
            self.noise.append(math.hypot(se_new, self.se[k]) / size)
            self._new_se[k] = se_new
        if l <= last:
            self.new_a[l - 1] = ja
        if l >= 2:
            self.new_b[l - 2] = jb

    @property
    def agree(self) -> bool:
        """Every refreshed response is within 3 noise of the stored one (True when none was)."""
        return all(ch <= max(3.0 * nz, TOL_FLOOR) for ch, nz in zip(self.changes, self.noise))

    # ------------------------------------------------------------------ after the sweep
    def settle(self, it: int, mix) -> None:
        """Fold a refresh into the stored responses: a running mean while refreshes agree (reset
        by one that disagrees); ``mix(old, new, beta)`` does the (masked) update."""
        if not (self.refreshed and self.used):
            return
        running = self.average and it > self.warmup + 1 and bool(self.changes) and self.agree
        self.streak = self.streak + 1 if running else 0
        beta = 1.0 / (self.streak + 1)
        for k, se_new in self._new_se.items():
            self.se[k] = se_new * math.sqrt(beta) if self.streak else se_new
        self.a = [mix(o, nw, beta) for o, nw in zip(self.a, self.new_a)]
        self.b = [mix(o, nw, beta) for o, nw in zip(self.b, self.new_b)]
