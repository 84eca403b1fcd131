"""``simulate.train``: full-batch gradient descent on S networks of one width, batched over seeds.

docs/theory.md section 1 (conventions) and DESIGN.md (contract). The forward/backward/update maths is
in :mod:`simulate.mlp` and the input checks and memory plan in :mod:`simulate.inputs`. Here: a
:class:`Recording` (the result buffers of every seed) and a :class:`SeedBatch` (the training
state of the seeds that train together) whose :meth:`SeedBatch.step` runs one time step (causality
forces the loop over steps), records its observables and flags divergence; ``train`` runs the
batches and packs a :class:`Trajectories`.
"""

from __future__ import annotations

import time
from typing import Iterable

import torch

from theory.problem import Problem

from .mlp import DIVERGENCE_FACTOR, forward, gram_into, init_network, layer_grams, ntk_from_grams, sgd_step
from .inputs import TrainSetup, setup
from .trajectories import OBSERVABLES, Trajectories


class Recording:
    """The result buffers of one ``train`` call for all S seeds (CPU tensors of ``dtype``).

    loss (S, T+1), f_all (S, T+1, P_all), ntk (S, T+1, P_all, P_all) or None; kernels: name ->
    L tensors, (S, Tk, P_all, Tk, P_all) for two-time kernels, (S, Tk, P_all, P_all) for
    equal-time ones; div_step (S,) int64, -1 where a seed did not diverge. Entries a batch never
    reached (it stopped when all its seeds diverged) stay NaN.
    """

    def __init__(self, st: TrainSetup):
        p, S = st.problem, st.seeds
        T1, Pa, Tk = p.steps + 1, p.n_points, len(st.ktimes)
        nan = lambda *shape: torch.full(shape, float("nan"), dtype=st.dtype)  # noqa: E731
        self.loss = nan(S, T1)
        self.f_all = nan(S, T1, Pa)
        self.ntk = nan(S, T1, Pa, Pa) if "ntk" in st.record else None
        shape = (S, Tk, Pa, Tk, Pa) if st.two_time else (S, Tk, Pa, Pa)
        self.kernels = {n: [nan(*shape) for _ in range(p.depth)] for n in st.kernel_names}
        self.div_step = torch.full((S,), -1, dtype=torch.int64)

    def mask_diverged(self, ktimes: torch.Tensor) -> None:
        """NaN from each diverged seed's divergence step on (two-time kernels: where either time is)."""
        nan = float("nan")
        for i in torch.nonzero(self.div_step >= 0)[:, 0].tolist():
            k = int(self.div_step[i])
            self.loss[i, k:] = nan
            self.f_all[i, k:] = nan
            if self.ntk is not None:
                self.ntk[i, k:] = nan
            late = ktimes >= k
            for arrs in self.kernels.values():
                for arr in arrs:
                    arr[i, late] = nan
                    if arr.ndim == 5:
                        arr[i, :, :, late] = nan

    def trajectories(self, st: TrainSetup, info: dict) -> Trajectories:
        """The :class:`Trajectories` of these buffers (call :meth:`mask_diverged` first)."""
        p, P = st.problem, st.problem.n_train
        two, eq = {}, {}
        for name, arrs in self.kernels.items():
            (two if st.two_time else eq)[name] = tuple(arrs)
        return Trajectories(
            problem=p, t=p.times.to(st.dtype), loss=self.loss, f_train=self.f_all[:, :, :P].clone(),
            f_test=self.f_all[:, :, P:].clone() if p.n_points > P else None, ntk=self.ntk,
            phi=two.get("phi"), g=two.get("g"), kernel_times=st.ktimes, diverged=self.div_step >= 0,
            diverged_step=self.div_step, width=st.width, seeds=st.seeds, seed=st.seed, device=str(st.dev),
            dtype=st.dtype, info=info, phi_eq=eq.get("phi"), g_eq=eq.get("g"),
        )


class SeedBatch:
    """Training state of seeds ``s0 .. s1-1`` of one ``train`` call, trained as one batch.

    Holds their networks, the initial outputs, divergence flags and, for two-time kernels, the
    features ``phi(h^l)``, ``g^l`` at every kernel time, (n, Tk, P_all, N) per layer.
    """

    def __init__(self, st: TrainSetup, rec: Recording, s0: int, s1: int):
        self.st, self.rec, self.rows = st, rec, slice(s0, s1)
        p, n = st.problem, s1 - s0
        self.net = init_network(p.input_dim, st.width, p.depth, list(range(st.seed + s0, st.seed + s1)),
                                device=st.dev, dtype=st.dtype)
        self.slot = {int(k): i for i, k in enumerate(st.ktimes)}
        shape = (n, len(st.ktimes), p.n_points, st.width)
        self.hist = {name: [torch.empty(shape, device=st.dev, dtype=st.dtype) for _ in range(p.depth)]
                     for name in (st.kernel_names if st.two_time else ())}
        self.dead = torch.zeros(n, dtype=torch.bool, device=st.dev)
        self.first = torch.full((n,), -1, dtype=torch.int64, device=st.dev)
        self.f0 = self.limit = None
        self.lr = p.eta * p.gamma0 / p.n_train  # c of simulate.mlp.sgd_step

    @property
    def size(self) -> int:
        return self.rows.stop - self.rows.start

    def step(self, k: int) -> bool:
        """Forward pass at step ``k``, record it, then (k < T) one gradient step on the seeds that
        have not diverged. False when every seed has diverged (training stops)."""
        st, p = self.st, self.st.problem
        backward = k < p.steps or "g" in st.record or "ntk" in st.record
        fields = forward(self.net, st.x, p.activation, p.gamma0, backward=backward)
        if self.f0 is None:
            self.f0 = fields.f.clone()
        ft = fields.f - self.f0
        lk = ((ft[:, : p.n_train] - st.y) ** 2).mean(1)
        self._flag(k, lk)
        self._record(k, fields, ft, lk)
        if k == p.steps:
            return True
        if bool(self.dead.all()):
            return False
        delta = torch.where(self.dead[:, None], torch.zeros_like(lk)[:, None], st.y - ft[:, : p.n_train])
        sgd_step(self.net, fields, st.x[: p.n_train], delta, self.lr)
        return True

    def _flag(self, k: int, lk: torch.Tensor) -> None:
        """Flag seeds whose loss is non-finite or exceeds DIVERGENCE_FACTOR * max(1, loss(0))."""
        if self.limit is None:
            self.limit = DIVERGENCE_FACTOR * torch.clamp(lk, min=1.0)
        new = (~torch.isfinite(lk) | (lk > self.limit)) & ~self.dead
        self.first = torch.where(new, torch.full_like(self.first, k), self.first)
        self.dead = self.dead | new

    def _record(self, k: int, fields, ft: torch.Tensor, lk: torch.Tensor) -> None:
        st, rec, rows = self.st, self.rec, self.rows
        rec.loss[rows, k] = lk.cpu()
        rec.f_all[rows, k] = ft.cpu()
        names = st.kernel_names if k in self.slot else ()
        if st.two_time:
            for name in names:
                for j, src in enumerate(fields.a if name == "phi" else fields.g):
                    self.hist[name][j][:, self.slot[k]] = src
            names = ()
        ntk = rec.ntk is not None
        if not (ntk or names):
            return
        phi, g = layer_grams(fields, phi=ntk or "phi" in names, g=ntk or "g" in names)
        if ntk:
            rec.ntk[rows, k] = ntk_from_grams(phi, g, st.kx).cpu()
        for name, grams in (("phi", phi), ("g", g)):
            if name in names:
                for j, m in enumerate(grams):
                    rec.kernels[name][j][rows, self.slot[k]] = m.cpu()

    def finish(self) -> None:
        """Write the two-time kernels (one Gram matrix per layer) and the divergence steps."""
        st, n = self.st, self.size
        side = len(st.ktimes) * st.problem.n_points
        self.net = None
        for name, bufs in self.hist.items():
            for j, feats in enumerate(bufs):
                out = self.rec.kernels[name][j][self.rows].view(n, side, side)
                flat = feats.view(n, side, st.width)
                if st.dev.type == "cpu":
                    gram_into(out, flat)
                else:
                    tmp = torch.empty(n, side, side, device=st.dev, dtype=st.dtype)
                    gram_into(tmp, flat)
                    out.copy_(tmp)
                    del tmp
                bufs[j] = None
        self.rec.div_step[self.rows] = self.first.cpu()


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
    kernels: str = "two_time",
    progress: bool = False,
    memory_budget: int | None = None,
) -> Trajectories:
    """Train ``seeds`` networks of width ``width`` on ``problem`` by full-batch gradient descent.

    Network ``i`` (0-based) is initialised from seed ``seed + i``; the result for that network
    equals ``train(problem, width, 1, seed=seed + i)`` on the same device. Seeds are trained as one
    batched computation; when their working memory exceeds ``memory_budget`` bytes (default 2 GiB
    on the CPU, 60% of free GPU memory on CUDA) they are trained in consecutive batches.

    record:  which of ``("ntk", "phi", "g")`` to record (loss and outputs always are).
    times:   step indices (0..T) at which the kernels ``phi``/``g`` are recorded (default: all T + 1).
    kernels: ``"two_time"`` (default): ``phi``/``g`` are the two-time kernels, ``S * (Tk * P_all)**2``
             numbers per layer; ``"equal_time"``: only ``Phi(t, t)``, ``G(t, t)`` are computed, in
             ``phi_eq``/``g_eq`` (``phi``/``g`` are None), at a fraction of the cost and memory.
             ``phi_diag``/``g_diag`` read the equal-time kernels in both modes.
    Results are CPU tensors of ``dtype``. ``gamma0 = 0`` is rejected: the readout divides by
    gamma0; use a small gamma0 (e.g. 1e-3; outputs are centred, so this is well conditioned in
    float64) or ``theory.solve(problem, scheme="ntk")`` for the lazy limit.
    """
    st = setup(problem, width, seeds, seed=seed, device=device, dtype=dtype, record=record, times=times,
               kernels=kernels, memory_budget=memory_budget)
    rec = Recording(st)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=seeds * (problem.steps + 1), desc=f"train N={width}", unit="seed-step")
    start = time.perf_counter()
    for s0 in range(0, seeds, st.chunk):
        batch = SeedBatch(st, rec, s0, min(seeds, s0 + st.chunk))
        for k in range(problem.steps + 1):
            going = batch.step(k)
            if bar is not None:
                bar.update(batch.size)
            if not going:
                break
        batch.finish()
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - start
    rec.mask_diverged(st.ktimes)
    return rec.trajectories(st, {"wall_s": wall, "seed_chunk": st.chunk, "record": st.record,
                                 "kernels": st.kernels})
