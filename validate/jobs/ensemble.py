"""``EnsembleTask``: an ensemble of trained MLPs, stored as the checks read it (``Ensemble``)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from simulate.cache import Record
from simulate.identity import source_version
from simulate.sweep import TRAIN_SOURCES, problem_from_payload, problem_payload

from .key import job_key

#: dtype of the stored NTK and kernels (see the package docstring).
KERNEL_DTYPE = torch.float32


@dataclass(frozen=True, eq=False)
class Ensemble:
    """Network ensemble as the checks read it (fields of ``simulate.Trajectories``, seed axis first).

    ``phi_eq[l]``, ``g_eq[l]``: (S, Tk, P_all, P_all) equal-time kernels at ``kernel_times``
    (float32); ``phi``/``g``: the two-time kernels (S, Tk, P_all, Tk, P_all), or None when not
    recorded. ``phi_diag(l)``/``g_diag(l)`` return the equal-time kernels, as on Trajectories.
    """

    problem: Any
    width: int
    seeds: int
    seed: int
    t: torch.Tensor
    loss: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor | None
    phi_eq: tuple | None
    g_eq: tuple | None
    phi: tuple | None
    g: tuple | None
    kernel_times: torch.Tensor
    diverged: torch.Tensor
    diverged_step: torch.Tensor
    info: dict = field(default_factory=dict)

    def phi_diag(self, layer: int) -> torch.Tensor:
        return self._eq("phi_eq", layer)

    def g_diag(self, layer: int) -> torch.Tensor:
        return self._eq("g_eq", layer)

    def _eq(self, name: str, layer: int) -> torch.Tensor:
        seq = getattr(self, name)
        if seq is None:
            raise ValueError(f"observable: the networks did not record {name[:-3]!r} kernels")
        return seq[layer]


@dataclass(frozen=True, eq=False)
class EnsembleTask:
    """``trainer(problem, width, seeds=seeds, seed=seed, device=device[, kernels=...])`` packed as an
    :class:`Ensemble` (``kernels``: module docstring)."""

    problem: Any
    width: int
    seeds: int
    seed: int
    device: str
    trainer: Callable[..., Any]
    two_time: bool = False
    kind = "ensemble"

    def __post_init__(self) -> None:
        spec = {"kind": self.kind, "width": int(self.width),
                "seeds": int(self.seeds), "seed": int(self.seed), "device": str(self.device),
                "two_time": bool(self.two_time), "kernels": self.kernels, "kernel_dtype": str(KERNEL_DTYPE),
                "code": source_version(*TRAIN_SOURCES), "torch": torch.__version__}
        key, why = job_key(spec, self.problem, {"trainer": self.trainer})
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "uncacheable", why)
        object.__setattr__(self, "cached", why is None)

    @property
    def kernels(self) -> str:
        """The ``kernels=`` mode the trainer is asked for ("two_time" or "equal_time")."""
        return "two_time" if self.two_time else "equal_time"

    def key(self) -> str:
        return self._key

    def cost(self) -> float:
        """Rough multiply-adds of the training: forward/backward/update products over T steps and
        the kernels' Gram matrices, to start the longest jobs first."""
        p, N, T1 = self.problem, self.width, self.problem.steps + 1
        steps = self.seeds * p.steps * N * (p.input_dim + (p.depth - 1) * N + p.n_points) * p.n_points * 6
        side = T1 * p.n_points if self.two_time else p.n_points
        grams = 4 * p.depth * self.seeds * side**2 * N * (1 if self.two_time else T1)
        return float(steps + grams)

    def payload(self):
        return ensemble_record, (problem_payload(self.problem), self.width, self.seeds, self.seed, self.device,
                                 self.trainer, self.two_time)

    def decode(self, rec: Record) -> Ensemble:
        t, L = rec.tensors, self.problem.depth
        layers = lambda n: tuple(t[f"{n}.{l}"] for l in range(L)) if f"{n}.0" in t else None  # noqa: E731
        return Ensemble(self.problem, int(self.width), int(self.seeds), int(self.seed), t["t"], t["loss"],
                        t["f_train"], t.get("f_test"), t.get("ntk"), layers("phi_eq"), layers("g_eq"),
                        layers("phi"), layers("g"), t["kernel_times"], t["diverged"], t["diverged_step"],
                        info=dict(rec.meta))


def takes_keyword(fn: Callable, name: str) -> bool:
    """Whether ``fn`` accepts the keyword argument ``name`` (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read: do not guess
        return False
    return any(p.kind is p.VAR_KEYWORD or (p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
               for p in params)


def ensemble_record(problem: dict, width, seeds, seed, device, trainer, two_time) -> Record:
    """Worker side of :class:`EnsembleTask` (what is stored: module docstring)."""
    pr = problem_from_payload(problem)
    mode = {"kernels": "equal_time"} if not two_time and takes_keyword(trainer, "kernels") else {}
    out = trainer(pr, width, seeds=seeds, seed=seed, device=device, **mode)
    f64 = lambda x: None if x is None else torch.as_tensor(x).detach().cpu().to(torch.float64)  # noqa: E731
    kt = getattr(out, "kernel_times", None)
    tensors = {"t": f64(out.t), "loss": f64(out.loss), "f_train": f64(out.f_train),
               "kernel_times": torch.arange(pr.steps + 1) if kt is None else torch.as_tensor(kt, dtype=torch.long),
               "diverged": torch.as_tensor(out.diverged, dtype=torch.bool),
               "diverged_step": torch.as_tensor(out.diverged_step, dtype=torch.long)}
    if getattr(out, "f_test", None) is not None:
        tensors["f_test"] = f64(out.f_test)
    if getattr(out, "ntk", None) is not None:
        tensors["ntk"] = out.ntk.detach().cpu().to(KERNEL_DTYPE)
    for name in ("phi", "g"):
        for l, k in enumerate(getattr(out, name, None) or ()):
            k = k.detach().cpu()
            tensors[f"{name}_eq.{l}"] = torch.diagonal(k, dim1=1, dim2=3).permute(0, 3, 1, 2).to(KERNEL_DTYPE)
            if two_time:
                tensors[f"{name}.{l}"] = k.to(KERNEL_DTYPE)
        if getattr(out, name, None) is None:  # recorded with kernels="equal_time"
            for l, k in enumerate(getattr(out, f"{name}_eq", None) or ()):
                tensors[f"{name}_eq.{l}"] = k.detach().cpu().to(KERNEL_DTYPE)
    info = getattr(out, "info", None) or {}
    return Record({k: v.contiguous() for k, v in tensors.items()},
                  {"wall_s": float(info.get("wall_s", float("nan")))})
