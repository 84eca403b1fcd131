"""``SolveTask``: a theory solve, stored as the whole ``theory.Solution`` (see the package docstring)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from simulate.cache import Record, pack, unpack
from simulate.identity import source_version
from simulate.sweep import problem_from_payload, problem_payload

from .key import job_key


@dataclass(frozen=True, eq=False)
class SolveTask:
    """``solver(problem, scheme, **options)`` (``validate.sources.default_solver`` by default)."""

    problem: Any
    scheme: str
    options: dict
    solver: Callable[..., Any]
    kind = "solve"

    def __post_init__(self) -> None:
        spec = {"kind": self.kind, "scheme": self.scheme, "code": source_version("theory")}
        key, why = job_key(spec, self.problem, {"solver": self.solver, "options": self.options})
        monte_carlo = (not self.problem.activation.is_linear and self.problem.gamma0 > 0
                       and self.scheme != "ntk")
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "uncacheable", why)
        object.__setattr__(self, "cached", why is None and monte_carlo)

    def key(self) -> str:
        return self._key

    def cost(self) -> float:
        """Rough multiply-adds, to start the longest jobs first: ~10 iterations of the
        Monte Carlo kernels (samples x ((T+1) P_all)^2 x L), with the responses about 10x that."""
        if not self.cached:
            return 0.0
        p, n = self.problem, (self.problem.steps + 1) * self.problem.n_points
        return 100.0 * float(self.options.get("samples", 4000)) * n * n * p.depth

    def payload(self):
        return solve_record, (problem_payload(self.problem), self.scheme, self.options, self.solver)

    def decode(self, rec: Record):
        return unpack_solution(self.problem, rec.meta["fields"], rec.tensors)


def solve_record(problem: dict, scheme: str, options: dict, solver) -> Record:
    """Worker side of :class:`SolveTask`: every field of the Solution but its problem."""
    sol = solver(problem_from_payload(problem), scheme, **options)
    tensors: dict = {}
    fields = pack_solution(sol, tensors)
    return Record({k: v.contiguous() for k, v in tensors.items()}, {"fields": fields})


def pack_solution(sol, tensors: dict) -> dict:
    """The fields of a Solution but its problem, packed into ``tensors`` (``simulate.cache.pack``)."""
    return {f.name: pack(getattr(sol, f.name), f.name, tensors) for f in dataclasses.fields(sol) if f.name != "problem"}


def unpack_solution(problem, fields: dict, tensors: dict):
    from theory import Solution

    return Solution(problem=problem, **unpack(fields, tensors))
