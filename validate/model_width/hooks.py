"""Forward hooks that catch module outputs, and the per-step statistics computed from them.

A :class:`Recorder` hooks the chosen modules of one model. During each forward pass it keeps
every floating-point tensor a hooked module returns, keyed by the module's name. A tuple or dict
output gives ``name[i]`` / ``name[key]``, and a module called twice in one pass gives ``name#2``.
Under ``torch.func.vmap`` the caught tensors are batched; the vmapped function returns
:meth:`Recorder.collect`, so they leave vmap with a leading seed axis.

A :class:`Tracker` turns the outputs of S runs at each recorded step into the statistics
(README "Your own model at any width"), each an ``(S,)`` tensor:

    rms        sqrt(mean(o_t^2))           over every element of the module's output o_t
    delta_rms  sqrt(mean((o_t - o_0)^2))   the change since step 0 on the same fixed inputs
    output     sqrt(mean(f_t^2))           the network output f_t
    loss       the loss on the fixed inputs

A run whose loss or any statistic is NaN or infinite is marked diverged at that step; its
values from that step on are NaN.
"""

from __future__ import annotations

from collections import Counter
from fnmatch import fnmatchcase

import numpy as np
import torch

from .config import NETWORK


def leaf_modules(model: torch.nn.Module) -> list[str]:
    """Names of the modules without children (the root excluded)."""
    return [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def select_modules(model: torch.nn.Module, patterns: tuple[str, ...] | None) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` pairs to record: every leaf module, or those matching the glob ``patterns``.

    Raises ``ValueError`` (field ``modules``) for a pattern that matches no module.
    """
    named = dict(model.named_modules())
    if patterns is None:
        return [(n, named[n]) for n in leaf_modules(model)]
    chosen = []
    for p in patterns:
        hits = [n for n in named if n and fnmatchcase(n, p)]
        if not hits:
            shown = ", ".join(list(n for n in named if n)[:20])
            raise ValueError(f"modules: pattern {p!r} matches no module of the model; its modules are: {shown}")
        chosen += [n for n in hits if n not in chosen]
    return [(n, named[n]) for n in chosen]


def _tensors(name: str, out):
    if torch.is_tensor(out):
        if out.is_floating_point() or out.is_complex():
            yield name, out
    elif isinstance(out, (tuple, list)):
        for i, o in enumerate(out):
            yield from _tensors(f"{name}[{i}]", o)
    elif isinstance(out, dict):
        for k, o in out.items():
            yield from _tensors(f"{name}[{k}]", o)


class Recorder:
    """Forward hooks on ``modules`` (pairs from :func:`select_modules`) that keep their outputs."""

    def __init__(self, modules: list[tuple[str, torch.nn.Module]]):
        self._outputs: dict[str, torch.Tensor] = {}
        self._calls: Counter = Counter()
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in modules]

    def _hook(self, name: str):
        def hook(module, args, output):
            for key, t in _tensors(name, output):
                k = self._calls[key]
                self._calls[key] += 1
                self._outputs[key if k == 0 else f"{key}#{k + 1}"] = t
        return hook

    def collect(self) -> dict[str, torch.Tensor]:
        """The outputs caught since the last call (and forget them)."""
        out, self._outputs = self._outputs, {}
        self._calls.clear()
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class Tracker:
    """Statistics of ``S`` runs over steps ``0..steps`` (module docstring)."""

    def __init__(self, seeds: int, steps: int):
        self.S, self.steps = seeds, steps
        self._ref: dict[str, torch.Tensor] = {}
        self._values: dict[tuple[str, str], list[torch.Tensor]] = {}
        self.diverged_step = np.full(seeds, -1)

    def _add(self, key, v: torch.Tensor) -> None:
        self._values.setdefault(key, []).append(v.detach().to(torch.float64))

    def record(self, step: int, outputs: dict[str, torch.Tensor], output: torch.Tensor, loss: torch.Tensor) -> None:
        """Record step ``step``: ``outputs`` module -> (S, ...), network ``output`` (S, ...), ``loss`` (S,)."""
        if step == 0:
            self._ref = {k: o.detach().reshape(self.S, -1).clone() for k, o in outputs.items()}
        elif set(outputs) != set(self._ref):
            changed = sorted(set(outputs) ^ set(self._ref))
            raise ValueError(f"model: the hooked module outputs changed between steps 0 and {step} ({changed[:5]}); "
                             "record modules whose outputs are the same at every step")
        finite = torch.isfinite(loss.detach()).reshape(self.S)
        for k, o in outputs.items():
            flat = o.detach().reshape(self.S, -1)
            rms = flat.pow(2).mean(1).sqrt()
            delta = (flat - self._ref[k]).pow(2).mean(1).sqrt()
            finite &= torch.isfinite(rms) & torch.isfinite(delta)
            self._add((k, "rms"), rms)
            self._add((k, "delta_rms"), delta)
        out = output.detach().reshape(self.S, -1).pow(2).mean(1).sqrt()
        finite &= torch.isfinite(out)
        self._add((NETWORK, "output"), out)
        self._add((NETWORK, "loss"), loss.detach().reshape(self.S))
        newly = (~finite).cpu().numpy() & (self.diverged_step < 0)
        self.diverged_step[newly] = step

    @property
    def all_diverged(self) -> bool:
        return bool((self.diverged_step >= 0).all())

    def values(self) -> dict[tuple[str, str], np.ndarray]:
        """``(module, statistic) -> (S, steps + 1)`` float64, NaN from a run's divergence on."""
        out = {}
        for key, vs in self._values.items():
            a = torch.stack(vs, 1).cpu().numpy()
            if a.shape[1] < self.steps + 1:  # stopped early: every run had diverged
                a = np.concatenate([a, np.full((self.S, self.steps + 1 - a.shape[1]), np.nan)], 1)
            for s, d in enumerate(self.diverged_step):
                if d >= 0:
                    a[s, d:] = np.nan
            out[key] = a
        return out
