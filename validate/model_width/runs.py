"""Training the S seeds of one width and recording them: models, data, the step loop, the loop path.

Seeds: run ``i`` of width ``N`` builds its model under ``torch.manual_seed(model_seed(seed, N,
i))`` (the caller's random state is restored afterwards), so every (width, seed) pair has its
own independent initialisation and the statistics may treat widths as independent samples.
Data: all runs see the same batches. With full-batch ``(x, y)`` the fixed recording inputs are
``x`` and statistics are recorded during the training forward pass; with a callable
``data(step, generator)`` (generator seeded ``seed`` afresh for every run) the fixed inputs are
its step-0 batch, recorded in a separate no-grad pass before each step.

Step loop (:func:`drive`): for t = 0..steps, record the statistics at the current parameters,
then (t < steps) take one optimizer step on the batch of step t. A runner provides
``forward(x) -> (output (S, ...), module outputs {name: (S, ...)})``, ``losses(output, y) ->
(S,)`` and ``update(losses)``; :class:`LoopRunner` is one seed with the user's model and
optimizer as they are (the fallback path), ``batched.BatchedRunner`` all seeds at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .config import StudyConfig, check_batch
from .hooks import Recorder, Tracker, select_modules


class Unbatchable(Exception):
    """The seeds of this model or optimizer cannot be batched with vmap (the message says why)."""


@dataclass(frozen=True, eq=False)
class WidthRun:
    """The record of the S seeds of one width.

    values: ``(module, statistic) -> (S, steps + 1)`` float64, NaN from a run's divergence on;
    diverged_step: (S,) first step with a non-finite loss or statistic, -1 if none;
    path: "vmap" or "loop"; note: why the loop was used (empty otherwise); seconds: wall time.
    """

    width: int
    values: dict[tuple[str, str], np.ndarray]
    diverged_step: np.ndarray
    path: str
    note: str
    seconds: float


def model_seed(seed: int, width: int, index: int) -> int:
    """The torch seed of run ``index`` at ``width``: independent streams for every triple."""
    return int(np.random.SeedSequence([seed, width, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def build_models(cfg: StudyConfig, width: int) -> list[torch.nn.Module]:
    """The ``cfg.seeds`` models of ``width`` on ``cfg.device`` (module docstring: seeds)."""
    models = []
    for i in range(cfg.seeds):
        with torch.random.fork_rng():
            torch.manual_seed(model_seed(cfg.seed, width, i))
            m = cfg.factories[width](width)
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"model: model({width}) returned {type(m).__name__}, not a torch.nn.Module")
        models.append(m.to(cfg.device))
    return models


def build_optimizer(cfg: StudyConfig, model: torch.nn.Module, width: int) -> torch.optim.Optimizer:
    """``cfg.optimizer(model, width)``, checked to be a ``torch.optim.Optimizer``."""
    opt = cfg.optimizer(model, width)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"optimizer: optimizer(model, {width}) returned {type(opt).__name__}, "
                        "not a torch.optim.Optimizer")
    return opt


def scalar_losses(loss: torch.Tensor, seeds: int) -> torch.Tensor:
    """(S,) per-seed losses from what the loss function gave; a non-scalar loss is an error."""
    if not torch.is_tensor(loss) or loss.numel() != seeds:
        shape = tuple(loss.shape[1:]) if torch.is_tensor(loss) else type(loss).__name__
        raise ValueError(f"loss: must return a scalar tensor per run, got {shape}")
    return loss.reshape(seeds)


class DataStream:
    """The fixed recording batch ``probe`` and the training batches (module docstring: data)."""

    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self.full_batch = cfg.full_batch
        if self.full_batch:
            x, y = cfg.data
        else:
            x, y = self._call(0, torch.Generator().manual_seed(cfg.seed))
        self.probe = (x.to(cfg.device), y.to(cfg.device))

    def _call(self, step: int, gen: torch.Generator):
        b = self.cfg.data(step, gen)
        if not isinstance(b, (tuple, list)) or len(b) != 2:
            raise TypeError(f"data: data({step}, generator) must return a pair (x, y), got {type(b).__name__}")
        check_batch(*b, where=f"data({step}, generator)")
        return b

    def batches(self):
        """Training batches for steps 0, 1, ... (a fresh generator per run)."""
        gen = torch.Generator().manual_seed(self.cfg.seed)
        step = 0
        while True:
            x, y = self.probe if self.full_batch else self._call(step, gen)
            yield x.to(self.cfg.device), y.to(self.cfg.device)
            step += 1


def drive(runner, stream: DataStream, tracker: Tracker, steps: int) -> None:
    """The step loop (module docstring); stops early once every run has diverged."""
    x0, y0 = stream.probe
    batches = stream.batches()
    for t in range(steps + 1):
        last = t == steps
        train_here = stream.full_batch and not last
        with torch.set_grad_enabled(train_here):
            out, outs = runner.forward(x0)
            loss = runner.losses(out, y0)
        tracker.record(t, outs, out, loss)
        if last or tracker.all_diverged:
            return
        if not train_here:
            xb, yb = next(batches)
            out, _ = runner.forward(xb)
            loss = runner.losses(out, yb)
        runner.update(loss)


def step_optimizer(opt: torch.optim.Optimizer, losses: torch.Tensor) -> None:
    """One optimizer step on the sum of the finite per-run losses (a diverged run adds nothing)."""
    opt.zero_grad(set_to_none=True)
    torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses)).sum().backward()
    opt.step()


class LoopRunner:
    """One seed: the user's model and optimizer as they are (S = 1)."""

    def __init__(self, cfg: StudyConfig, width: int, model: torch.nn.Module):
        self.model, self.loss = model, cfg.loss
        self.opt = build_optimizer(cfg, model, width)
        self.rec = Recorder(select_modules(model, cfg.modules))

    def forward(self, x):
        self.rec.collect()
        out = self.model(x)
        if not torch.is_tensor(out):
            raise TypeError(f"model: forward must return a tensor, got {type(out).__name__}")
        return out[None], {k: v[None] for k, v in self.rec.collect().items()}

    def losses(self, out, y):
        return scalar_losses(self.loss(out[0], y), 1)

    def update(self, losses):
        step_optimizer(self.opt, losses)


def run_loop(cfg: StudyConfig, width: int, note: str = "") -> WidthRun:
    """All seeds of ``width``, one after the other (the fallback path)."""
    t0 = time.perf_counter()
    stream = DataStream(cfg)
    values, dead = [], []
    for model in build_models(cfg, width):
        runner = LoopRunner(cfg, width, model)
        tracker = Tracker(1, cfg.steps)
        try:
            drive(runner, stream, tracker, cfg.steps)
        finally:
            runner.rec.close()
        values.append(tracker.values())
        dead.append(tracker.diverged_step[0])
    keys = values[0].keys()
    merged = {k: np.concatenate([v[k] for v in values], 0) for k in keys}
    return WidthRun(width, merged, np.array(dead), "loop", note, time.perf_counter() - t0)
