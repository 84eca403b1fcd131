"""Strict, typed fields for the check dataclasses: no silent coercion.

:func:`typed_fields` checks every field of a check against its annotation (``int``, ``float``,
``bool``, ``str``, ``dict``, ``tuple[X, ...]``, a spec class) and the conventional bounds of
:data:`BOUNDS`, and stores lists as tuples and whole floats as floats. ``16.5`` or ``"16"`` for
an integer, ``true`` or ``"1.5"`` for a number, a number where a list is expected: each is a
``ValueError`` whose message starts with the field's name (``"widths: ..."``), which claim and
suite files map back to their own field and line.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from typing import Any

#: Lower bounds of the fields that mean the same in every check: (bound, inclusive).
BOUNDS = {
    "widths": (1, True), "seeds": (1, True), "depths": (1, True), "min_widths": (1, True),
    "min_seeds": (1, True), "gamma0s": (0.0, True), "tolerance": (0.0, False),
    "rate_tolerance": (0.0, True), "z": (0.0, False),
}


def _scalar(name: str, kind: type, v: Any) -> Any:
    if kind is bool:
        if not isinstance(v, bool):
            raise ValueError(f"{name}: must be true or false, got {v!r}")
        return v
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name}: must be an integer, got {v!r}")
        return int(v)
    if kind is float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"{name}: must be a finite number, got {v!r}")
        return float(v)
    if kind is str:
        if not isinstance(v, str):
            raise ValueError(f"{name}: must be a string, got {v!r}")
        return v
    if kind is dict:
        if not isinstance(v, dict):
            raise ValueError(f"{name}: must be a table (mapping), got {v!r}")
        return v
    if not isinstance(v, kind):
        raise ValueError(f"{name}: must be a {kind.__name__}, got {type(v).__name__}")
    return v


def _bound(name: str, v: Any) -> None:
    if name not in BOUNDS:
        return
    lo, inclusive = BOUNDS[name]
    if not (v >= lo if inclusive else v > lo):
        raise ValueError(f"{name}: must be {'>=' if inclusive else '>'} {lo:g}, got {v!r}")


def check_value(name: str, hint: Any, v: Any) -> Any:
    """``v`` checked against the annotation ``hint`` (and :data:`BOUNDS`), normalised."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"{name}: must be a list, got {v!r}")
        kinds = [args[0]] * len(v) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(kinds) != len(v):
            raise ValueError(f"{name}: must be a list of {len(kinds)} values, got {v!r}")
        out = []
        for k, x in zip(kinds, v):
            try:
                out.append(_scalar(name, k, x))
            except ValueError:
                raise ValueError(f"{name}: every entry must be {_noun(k)}, got {x!r} in {list(v)!r}") from None
            _bound(name, out[-1])
        return tuple(out)
    out = _scalar(name, hint, v)
    _bound(name, out)
    return out


def _noun(kind: type) -> str:
    return {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}.get(
        kind, f"a {getattr(kind, '__name__', kind)}")


def typed_fields(obj: Any) -> None:
    """Check and normalise every field of the frozen dataclass ``obj`` in place (module docstring)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        object.__setattr__(obj, f.name, check_value(f.name, hints[f.name], getattr(obj, f.name)))
