"""Where the numbers come from: the theory (``theory.solve``) and networks (``simulate.train``).

A :class:`Context` memoises solutions and trajectories for one run and caches network ensembles
on disk, keyed by the full specification (problem fingerprint, width, seeds, seed, trainer), so a
rerun reuses finished simulations. Checks only talk to a Context, so tests can inject a
synthetic or stand-in trainer.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

Trainer = Callable[..., Any]  # trainer(problem, width, seeds=S, *, seed=0, device="cpu")


def default_trainer() -> Trainer:
    """``simulate.train``."""
    from simulate import train

    return train


def default_solver(problem, scheme="dmft", **kw):
    from theory import solve

    return solve(problem, scheme=scheme, **kw)


#: The fields of a network ensemble that the cache (and ``dmft simulate --out``) stores.
FIELDS = ("t", "loss", "f_train", "f_test", "ntk", "phi", "g", "kernel_times", "diverged", "diverged_step")


@dataclass
class Stored:
    """A trajectories object reloaded from the disk cache (same fields as simulate.Trajectories)."""

    problem: Any
    width: int
    t: Any = None
    loss: Any = None
    f_train: Any = None
    f_test: Any = None
    ntk: Any = None
    phi: Any = None
    g: Any = None
    kernel_times: Any = None
    diverged: Any = None
    diverged_step: Any = None


@dataclass
class Context:
    """Run-wide settings and memo tables shared by the checks of one run."""

    device: str = "cpu"
    seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True
    trainer: Trainer | None = None
    solver: Callable[..., Any] | None = None
    solver_options: dict = field(default_factory=dict)
    _solutions: dict = field(default_factory=dict, repr=False)
    _nets: dict = field(default_factory=dict, repr=False)
    stats: dict = field(default_factory=lambda: {"solves": 0, "trained": 0, "cache_hits": 0})

    def theory(self, problem, scheme: str = "dmft", **options):
        """The (memoised) infinite-width solution of ``problem`` under ``scheme``.

        ``options`` (e.g. Monte Carlo samples) override the run-wide ``solver_options``; both are
        dropped where the solver takes none (the ntk scheme, gamma0 = 0).
        """
        opts = {**self.solver_options, **options} if scheme != "ntk" and problem.gamma0 else {}
        key = (problem.fingerprint(), scheme, repr(sorted(opts.items())))
        if key not in self._solutions:
            solver = self.solver or default_solver
            self._solutions[key] = solver(problem, scheme, **opts)
            self.stats["solves"] += 1
        return self._solutions[key]

    def trainer_name(self) -> str:
        t = self.trainer or default_trainer()
        return f"{getattr(t, '__module__', '')}.{getattr(t, '__name__', type(t).__name__)}"

    def networks(self, problem, width: int, seeds: int):
        """Ensemble of ``seeds`` networks of width ``width`` (memoised, disk-cached)."""
        key = hashlib.sha256(repr((problem.fingerprint(), width, seeds, self.seed,
                                   self.trainer_name())).encode()).hexdigest()[:24]
        if key in self._nets:
            return self._nets[key]
        path = self.cache_dir / f"{key}.pt" if self.cache_dir else None
        if path is not None and path.exists():
            data = torch.load(path, weights_only=False)
            out = Stored(problem=problem, width=width, **data)
            self.stats["cache_hits"] += 1
        else:
            trainer = self.trainer or default_trainer()
            out = trainer(problem, width, seeds=seeds, seed=self.seed, device=self.device)
            self.stats["trained"] += 1
            if path is not None:
                atomic_save({k: to_cpu(getattr(out, k, None)) for k in FIELDS}, path)
        self._nets[key] = out
        return out

    def bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, file=sys.stderr, disable=not self.progress, leave=False)


def to_cpu(v):
    """Tensors (also inside tuples and lists) detached and moved to the CPU; other values as they are."""
    if torch.is_tensor(v):
        return v.detach().cpu()
    if isinstance(v, (tuple, list)):
        return tuple(to_cpu(x) for x in v)
    return v


def atomic_save(obj, path: Path) -> None:
    """``torch.save(obj, path)`` through a temporary file in the same folder, renamed into place;
    the temporary file is removed on any error, Ctrl-C included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        os.close(fd)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
