"""All seeds of one width in one computation: ``torch.func`` stacking, ``vmap`` forward and backward.

The S models are stacked with ``torch.func.stack_module_state``: every parameter becomes one leaf
tensor of shape ``(S, *shape)``. The forward pass is ``vmap`` over ``functional_call`` of the
seed-0 model (its hooks fire inside vmap, so the recorded outputs come back with a seed axis),
and the backward pass runs through vmap into the stacked leaves, giving each seed's gradient in
its own slice (the summed loss has no cross-seed terms).

The optimizer stays the user's. ``optimizer(model_0, width)`` is called on the ordinary seed-0
model, so the user's rule sees the real shapes and names. An optimizer of the same class is
then built over the stacked leaves with the same parameter groups and hyperparameters (so the
rule should only build the optimizer: hooks it registers on the model stay on seed 0). For an
optimizer whose update acts on each parameter entry on its own (:data:`ELEMENTWISE`: SGD, Adam,
AdamW, ...), one step on a stacked leaf is exactly S independent steps, one per seed. Any other
optimizer class (LBFGS, Muon, Adafactor, a subclass, a custom one), a model that vmap cannot
run (data-dependent control flow, in-place buffer updates, ``.item()``), or tensors in the
optimizer that are not parameters of the model raise :class:`~.runs.Unbatchable`, and the
caller falls back to the per-seed loop.
"""

from __future__ import annotations

import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from .config import StudyConfig
from .hooks import Recorder, Tracker, select_modules
from .runs import (DataStream, Unbatchable, WidthRun, build_models, build_optimizer, drive, scalar_losses,
                   step_optimizer)

#: Optimizer classes whose step updates every parameter entry from its own gradient and state only.
ELEMENTWISE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adamax, torch.optim.NAdam,
               torch.optim.RAdam, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adadelta,
               torch.optim.Rprop, torch.optim.ASGD)
_VMAP_ERRORS = (RuntimeError, NotImplementedError)


def mirror_optimizer(opt: torch.optim.Optimizer, model: torch.nn.Module,
                     stacked: dict[str, torch.Tensor]) -> torch.optim.Optimizer:
    """An optimizer of ``type(opt)`` over the stacked leaves, group for group (module docstring)."""
    if type(opt) not in ELEMENTWISE:
        raise Unbatchable(f"optimizer {type(opt).__name__} is not known to act elementwise")
    if opt.state:
        raise Unbatchable("the optimizer already holds state when it is created")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for g in opt.param_groups:
        missing = [p for p in g["params"] if id(p) not in names or names[id(p)] not in stacked]
        if missing:
            raise Unbatchable("the optimizer holds tensors that are not parameters of the model")
        groups.append({**{k: v for k, v in g.items() if k != "params"},
                       "params": [stacked[names[id(p)]] for p in g["params"]]})
    try:
        return type(opt)(groups)
    except (TypeError, ValueError) as exc:
        raise Unbatchable(f"cannot rebuild {type(opt).__name__} over the stacked parameters ({exc})") from None


class BatchedRunner:
    """The S seeds of one width as stacked leaves, run through vmap (module docstring)."""

    def __init__(self, cfg: StudyConfig, width: int, models: list[torch.nn.Module]):
        base = models[0]
        opt = build_optimizer(cfg, base, width)
        self.params, self.buffers = stack_module_state(models)
        self.opt = mirror_optimizer(opt, base, self.params)
        self.rec = Recorder(select_modules(base, cfg.modules))
        self.S = len(models)

        def forward(p, b, x):
            self.rec.collect()
            out = functional_call(base, (p, b), (x,))
            if not torch.is_tensor(out):
                raise TypeError(f"model: forward must return a tensor, got {type(out).__name__}")
            return out, self.rec.collect()

        self._forward = vmap(forward, in_dims=(0, 0, None), randomness="different")
        self._loss = vmap(cfg.loss, in_dims=(0, None))

    def forward(self, x):
        try:
            return self._forward(self.params, self.buffers, x)
        except _VMAP_ERRORS as exc:
            raise Unbatchable(f"vmap cannot run the model's forward pass ({type(exc).__name__}: {exc})") from None

    def losses(self, out, y):
        try:
            loss = self._loss(out, y)
        except _VMAP_ERRORS as exc:
            raise Unbatchable(f"vmap cannot run the loss ({type(exc).__name__}: {exc})") from None
        return scalar_losses(loss, self.S)

    def update(self, losses):
        try:
            step_optimizer(self.opt, losses)
        except _VMAP_ERRORS as exc:
            raise Unbatchable(f"the backward pass through vmap failed ({type(exc).__name__}: {exc})") from None


def run_batched(cfg: StudyConfig, width: int) -> WidthRun:
    """All seeds of ``width`` at once; raises :class:`Unbatchable` when vmap cannot be used."""
    t0 = time.perf_counter()
    runner = BatchedRunner(cfg, width, build_models(cfg, width))
    tracker = Tracker(cfg.seeds, cfg.steps)
    try:
        drive(runner, DataStream(cfg), tracker, cfg.steps)
    finally:
        runner.rec.close()
    return WidthRun(width, tracker.values(), tracker.diverged_step.copy(), "vmap", "", time.perf_counter() - t0)
