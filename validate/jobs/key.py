"""The key of a job: its specification plus the identities of its problem and callables."""

from __future__ import annotations

from typing import Any

from simulate.cache import spec_key
from simulate.identity import Uncacheable, digest, problem_identity


def job_key(spec: dict, problem: Any, parts: dict[str, Any]) -> tuple[str, str | None]:
    """The key of ``spec`` plus the identities of the problem and of ``parts`` (callables,
    options), and why it must not be cached (None: it may). A part whose identity cannot be told
    enters by its ``id`` (the key then holds for this process only)."""
    why = None
    try:
        spec["problem"] = problem_identity(problem)
    except Uncacheable as exc:  # a custom activation whose code cannot be digested
        spec["problem"], why = f"id:{id(problem)}", f"activation {problem.activation.name!r}: {exc}"
    for name, obj in parts.items():
        try:
            spec[name] = digest(obj)
        except Uncacheable as exc:
            spec[name], why = f"id:{id(obj)}", f"{name} {getattr(obj, '__name__', type(obj).__name__)!r}: {exc}"
    return spec_key(spec), why
