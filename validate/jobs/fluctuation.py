"""``FluctuationTask``: ``theory.fluctuations`` with the Solution it linearised around (``Prediction``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from simulate.cache import Record
from simulate.identity import source_version
from simulate.sweep import problem_from_payload, problem_payload

from .key import job_key
from .solve import SolveTask, pack_solution, unpack_solution


#: The observables ``theory.fluctuations`` predicts (``phi``/``g`` per layer: keys "phi.0", ...).
PREDICTED = ("loss", "f_train", "f_test", "ntk", "phi", "g")


def default_predictor(problem, method="auto", **options):
    """``theory.fluctuations(problem, method, **options)``."""
    from theory import fluctuations

    return fluctuations(problem, method, **options)


def fluctuation_method(problem, method: str) -> str:
    """The method "auto" resolves to (``theory.fluctuation_method``, the rule of
    ``theory.fluctuations``); others unchanged."""
    from theory import fluctuation_method as resolve

    return resolve(problem, method).value


@dataclass(frozen=True, eq=False)
class Prediction:
    """What the checks read of a fluctuation prediction.

    solution: the infinite-width ``theory.Solution`` it linearised around; var[key]: ``N Var`` of
    each entry of observable ``key`` ("loss", "f_train", "f_test", "ntk", "phi.0", "g.1", ...;
    shaped like the observable); se[key]: its Monte Carlo standard error (absent for exact
    methods); status, method, reason: of the prediction (``theory.Status`` values).
    """

    solution: Any
    var: dict
    se: dict
    status: str
    method: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.status in ("exact", "converged")

    @staticmethod
    def key(name: str, layer: int | None) -> str:
        return name if layer is None else f"{name}.{layer}"


@dataclass(frozen=True, eq=False)
class FluctuationTask:
    """``predictor(problem, method, solution=sol, **options)`` around ``sol`` = the result of
    ``solve`` (a :class:`SolveTask`, computed again in the worker: one job, no dependency)."""

    solve: SolveTask
    method: str
    options: dict
    predictor: Callable[..., Any]
    kind = "fluctuation"

    def __post_init__(self) -> None:
        spec = {"kind": self.kind, "solve": self.solve.key(), "method": self.method,
                "code": source_version("theory")}
        key, why = job_key(spec, self.solve.problem, {"predictor": self.predictor, "options": self.options})
        why = why or self.solve.uncacheable
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "uncacheable", why)
        object.__setattr__(self, "cached", why is None and self.method != "lazy")

    @property
    def problem(self):
        return self.solve.problem

    def key(self) -> str:
        return self._key

    def cost(self) -> float:
        """Rough multiply-adds: a Monte Carlo prediction is a few Monte Carlo solves."""
        p, n = self.problem, (self.problem.steps + 1) * self.problem.n_points
        samples = float(self.options.get("samples") or 2000.0 / p.depth)  # the default: 2000 over the layers
        return 0.0 if self.method == "lazy" else 1000.0 * samples * n * n * p.depth

    def payload(self):
        s = self.solve
        return fluctuation_record, (problem_payload(s.problem), s.scheme, s.options, s.solver, self.method,
                                    self.options, self.predictor)

    def decode(self, rec: Record) -> Prediction:
        t = rec.tensors
        part = lambda p: {k[len(p) + 1:]: v for k, v in t.items() if k.startswith(p + ":")}  # noqa: E731
        meta = dict(rec.meta)
        sol = unpack_solution(self.problem, meta.pop("fields"), {k: v for k, v in t.items() if ":" not in k})
        return Prediction(sol, part("var"), part("se"), **meta)


def fluctuation_record(problem: dict, scheme: str, solve_options: dict, solver, method: str, options: dict,
                       predictor) -> Record:
    """Worker side of :class:`FluctuationTask`: the solution (as :class:`SolveTask` stores it) and
    ``var:KEY`` / ``se:KEY`` tensors of every predicted observable."""
    pr = problem_from_payload(problem)
    sol = solver(pr, scheme, **solve_options)
    t: dict = {}
    fields = pack_solution(sol, t)
    if sol.ok:
        fl = predictor(pr, method, solution=sol, **options)
        status, used, reason = fl.status, fl.method, str(fl.info.get("reason", ""))
        se = fl.info.get("standard_error") or {}
        P = pr.n_train
        split = {"f_train": lambda v: v[:, :P], "f_test": lambda v: v[:, P:]}
        for name in ("loss", "f_train", "f_test", "ntk"):
            if getattr(fl, name) is None:
                continue
            t[f"var:{name}"] = getattr(fl, name)
            src = se.get("f" if name in split else name)
            if src is not None:
                t[f"se:{name}"] = split[name](src) if name in split else src
        for l in range(pr.depth):
            for name in ("phi", "g"):
                t[f"var:{name}.{l}"] = getattr(fl, name)[l]
                if name in se:
                    t[f"se:{name}.{l}"] = se[name][l]
    else:
        status, used = sol.status, method
        reason = f"the infinite-width solution has status {sol.status.value!r}: {sol.info.get('reason', '')}"
    t = {k: torch.as_tensor(v).detach().cpu().contiguous() for k, v in t.items()}
    return Record(t, {"fields": fields, "status": getattr(status, "value", str(status)), "method": str(used),
                      "reason": reason})
