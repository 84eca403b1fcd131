"""What the Monte Carlo fixed-point loop holds fixed (:class:`Setup`) and what it iterates
(:class:`Iterate`), over one time horizon (docs/theory.md section 2).

Index convention (``theory.montecarlo.fields``): a (time, point) pair ``(k, mu)`` is flattened to
``k * P_all + mu``, so a kernel over all pairs is an ``(n, n)`` matrix, ``n = (T+1) P_all``, and
the kernels of a shorter horizon are the leading principal blocks.

Time-marching (``theory.montecarlo.march``) solves a growing horizon and keeps the times already accepted
fixed: ``Setup.frozen`` is the number of accepted times, and every update, residual and noise
estimate covers only the entries with at least one time ``>= frozen`` (:attr:`Setup.active`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..lazy import LazyKernels, lazy_dynamics, lazy_kernels
from .outputs import march, ntk_over_time
from .sampling import constant_in_time_factor, ones_factor
from ..problem import Problem


@dataclass(frozen=True, eq=False)
class Setup:
    """The fixed inputs of one run of the loop (``t1 = T + 1`` times, ``pa`` points, ``p`` train).

    kx (pa, pa), y (p,): data; lazy: the lazy kernels; f_x: factor of ``Kx`` repeated over time
    pairs; f_one: factor of ``G^{L+1} = 1``; kx_full, ones_nn: those covariances as (n, n).
    active (n, n) / active_t (t1, 1): 1 on the entries the loop may change (all when frozen = 0).
    """

    act: object
    depth: int
    eta: float
    gamma0: float
    t1: int
    pa: int
    p: int
    kx: torch.Tensor
    y: torch.Tensor
    lazy: LazyKernels
    f_x: torch.Tensor
    f_one: torch.Tensor
    kx_full: torch.Tensor
    ones_nn: torch.Tensor
    frozen: int
    active: torch.Tensor | None
    active_t: torch.Tensor | None

    @classmethod
    def build(cls, problem: Problem, gamma0: float, *, dtype, device, frozen: int = 0) -> "Setup":
        """The setup of ``problem`` (its ``steps`` set the horizon) at coupling ``gamma0``."""
        kw = dict(dtype=dtype, device=device)
        kx, y = problem.kx.to(**kw), problem.y_train.to(**kw)
        t1, pa = problem.steps + 1, problem.n_points
        n = t1 * pa
        active = active_t = None
        if frozen:
            tk = torch.arange(t1, device=device)
            active_t = (tk >= frozen).to(dtype)[:, None]
            tn = tk.repeat_interleave(pa)
            active = ((tn[:, None] >= frozen) | (tn[None, :] >= frozen)).to(dtype)
        return cls(act=problem.activation, depth=problem.depth, eta=problem.eta, gamma0=gamma0,
                   t1=t1, pa=pa, p=problem.n_train, kx=kx, y=y,
                   lazy=lazy_kernels(kx, problem.depth, problem.activation),
                   f_x=constant_in_time_factor(kx, t1), f_one=ones_factor(n, dtype, device),
                   kx_full=kx.repeat(t1, t1), ones_nn=torch.ones(n, n, **kw), frozen=frozen,
                   active=active, active_t=active_t)

    @property
    def n(self) -> int:
        return self.t1 * self.pa

    @property
    def scale(self) -> float:
        """``eta gamma0 / P``, the weight of the drive terms of the fields."""
        return self.eta * self.gamma0 / self.p

    def mix(self, old: torch.Tensor, new: torch.Tensor, beta: float) -> torch.Tensor:
        """``old + beta (new - old)`` on the active entries; (n, n) kernels or (t1, .) outputs."""
        step = beta * (new - old)
        if self.frozen:
            step = step * (self.active if old.shape == self.active.shape else self.active_t)
        return old + step

    def change(self, new: torch.Tensor, old: torch.Tensor) -> float:
        """Frobenius norm of ``new - old`` over the active entries."""
        diff = new - old
        if self.frozen:
            diff = diff * (self.active if diff.shape == self.active.shape else self.active_t)
        return float(torch.linalg.norm(diff))

    def ntk(self, phis, gs) -> torch.Tensor:
        """(t1, pa, pa) NTK of (n, n) kernels (``theory.montecarlo.outputs.ntk_over_time``)."""
        return ntk_over_time(phis, gs, self.kx, self.t1, self.pa)


@dataclass
class Iterate:
    """The state of the fixed-point iteration.

    phi, g: L kernels ``Phi^l``, ``G^l`` (n, n); a, b: the L - 1 responses ``A^l``, ``B^l``
    (n, n), l = 1..L-1 (docs/theory.md section 2); f_ref (t1, pa): the output of the last samples,
    generated with ``Delta = delta_ref`` (t1, p); delta (t1, p): the current ``Delta`` from the
    output march (``theory.montecarlo.outputs``).
    """

    phi: list
    g: list
    a: list
    b: list
    f_ref: torch.Tensor
    delta_ref: torch.Tensor
    delta: torch.Tensor

    @classmethod
    def lazy(cls, s: Setup) -> "Iterate":
        """Step 1 of the loop: lazy kernels constant in time, no responses, lazy outputs."""
        rep = lambda m: m.repeat(s.t1, s.t1)  # noqa: E731
        zeros = [torch.zeros(s.n, s.n, dtype=s.kx.dtype, device=s.kx.device) for _ in range(s.depth - 1)]
        delta, f = lazy_dynamics(s.lazy.ntk, s.y, s.eta, s.t1 - 1)
        return cls(phi=[rep(m) for m in s.lazy.phi], g=[rep(m) for m in s.lazy.g], a=zeros,
                   b=[z.clone() for z in zeros], f_ref=f, delta_ref=delta.clone(), delta=delta.clone())

    def extended(self, s: Setup) -> "Iterate":
        """This iterate (of a horizon ``t0 <= s.t1``) as the start of the longer horizon of ``s``:
        kernels and outputs of a new time copy the last old time; new responses start at 0."""
        t0 = self.f_ref.shape[0]
        n0 = t0 * s.pa
        device = self.f_ref.device
        times = torch.clamp(torch.arange(s.t1, device=device), max=t0 - 1)
        flat = (times[:, None] * s.pa + torch.arange(s.pa, device=device)[None, :]).reshape(-1)
        grow = lambda m: m[flat][:, flat].clone()  # noqa: E731

        def pad(m):
            out = torch.zeros(s.n, s.n, dtype=m.dtype, device=m.device)
            out[:n0, :n0] = m
            return out

        new = Iterate(phi=[grow(m) for m in self.phi], g=[grow(m) for m in self.g],
                      a=[pad(m) for m in self.a], b=[pad(m) for m in self.b],
                      f_ref=self.f_ref[times].clone(), delta_ref=self.delta_ref[times].clone(),
                      delta=self.delta[times].clone())
        new.delta, _ = march(s.y, s.ntk(new.phi, new.g), s.eta, f_ref=new.f_ref, delta_ref=new.delta_ref)
        return new
