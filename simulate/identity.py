"""Stable digests of values and code: the identity parts of a cache key (simulate.cache).

``digest(value)`` hashes data (numbers, strings, tensors, arrays, containers, enums) and code: a
Python function by its bytecode, constants, default values, closure values and the global
constants it names (functions, classes and modules it names enter by their qualified name, not
their code); a ``functools.partial``, a bound method or a callable object by their parts and
attributes; a C function (``torch.tanh``) by its qualified name. Anything else raises
:class:`Uncacheable`: its identity cannot be told, so results computed with it are not cached.

``problem_identity(problem)`` is ``Problem.fingerprint()`` plus the digest of a custom
activation (the fingerprint names an activation only by its name, so two custom activations
called "mine" would otherwise share cached results). ``source_version(*modules)`` hashes the
source files of the project modules a result depends on, so results of an edited solver or
trainer are recomputed instead of trusted.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import importlib.util
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

_SCALARS = (type(None), bool, int, float, complex, str, bytes)


class Uncacheable(TypeError):
    """A value whose identity cannot be digested (see the module docstring)."""


def digest(value: Any) -> str:
    """Hex SHA-256 of ``value``'s identity (module docstring); raises :class:`Uncacheable`."""
    h = hashlib.sha256()
    _feed(h, value, set())
    return h.hexdigest()


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _feed(h, v: Any, seen: set) -> None:
    put = lambda *parts: h.update(repr(parts).encode())  # noqa: E731
    if isinstance(v, _SCALARS):
        put(type(v).__name__, v)
    elif isinstance(v, (torch.dtype, torch.device)):
        put("torch", str(v))
    elif isinstance(v, enum.Enum):
        put("enum", _name(type(v)), v.value)
    elif torch.is_tensor(v):
        t = v.detach().cpu().contiguous()
        put("tensor", str(t.dtype), tuple(t.shape))
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(v, np.ndarray):
        put("array", str(v.dtype), v.shape)
        h.update(np.ascontiguousarray(v).tobytes())
    elif isinstance(v, np.generic):
        put("np", str(v.dtype), v.item())
    elif isinstance(v, (types.ModuleType, type)):
        put("name", getattr(v, "__name__", "?") if isinstance(v, types.ModuleType) else _name(v))
    elif id(v) in seen:
        put("cycle")
    else:
        seen.add(id(v))
        _feed_compound(h, v, seen, put)


def _feed_compound(h, v: Any, seen: set, put) -> None:
    if isinstance(v, (tuple, list)):
        put(type(v).__name__, len(v))
        for x in v:
            _feed(h, x, seen)
    elif isinstance(v, dict):
        put("dict", len(v))
        for k in sorted(v, key=repr):
            _feed(h, k, seen)
            _feed(h, v[k], seen)
    elif isinstance(v, (set, frozenset)):
        put("set", sorted(digest(x) for x in v))
    elif isinstance(v, types.FunctionType):
        put("function", _name(v))
        _feed_code(h, v.__code__, v.__globals__, seen)
        _feed(h, (v.__defaults__, v.__kwdefaults__), seen)
        _feed(h, tuple(c.cell_contents for c in v.__closure__ or ()), seen)
    elif isinstance(v, (types.BuiltinFunctionType, types.BuiltinMethodType, np.ufunc)) or (
            callable(v) and not hasattr(v, "__dict__") and hasattr(v, "__qualname__")):
        put("builtin", _name(v))
    elif isinstance(v, functools.partial):
        put("partial")
        _feed(h, (v.func, v.args, v.keywords), seen)
    elif isinstance(v, types.MethodType):
        put("method")
        _feed(h, (v.__func__, v.__self__), seen)
    elif hasattr(v, "__dict__"):  # dataclasses, callable objects, simple namespaces
        put("object", _name(type(v)))
        call = getattr(type(v), "__call__", None)
        if isinstance(call, types.FunctionType):
            _feed(h, call, seen)
        _feed(h, dict(vars(v)), seen)
    else:
        raise Uncacheable(f"cannot tell the identity of a {type(v).__name__} object")


def _feed_code(h, code: types.CodeType, globals_: dict, seen: set) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _feed_code(h, c, globals_, seen)
        else:
            _feed(h, c, seen)
    for name in code.co_names:  # global constants it reads; named callables enter by name only
        if name in globals_:
            g = globals_[name]
            if callable(g) or isinstance(g, types.ModuleType):
                h.update(f"global {name} = {_name(g) if not isinstance(g, types.ModuleType) else g.__name__}".encode())
            else:
                h.update(f"global {name}".encode())
                _feed(h, g, seen)


def problem_identity(problem: Any) -> dict:
    """``{"fingerprint": ..., "activation": ...}`` for a ``theory.Problem`` (module docstring)."""
    from theory.activations import BUILTIN

    act = problem.activation
    builtin = BUILTIN.get(act.name) is act
    return {"fingerprint": problem.fingerprint(),
            "activation": act.name if builtin else digest((act.name, act.phi, act.dphi, act.ddphi))}


@functools.lru_cache(maxsize=None)
def source_version(*modules: str) -> str:
    """Hex digest of the source files of ``modules`` (a package means every ``.py`` under it)."""
    h = hashlib.sha256()
    for mod in modules:
        spec = importlib.util.find_spec(mod)
        if spec is None or spec.origin is None:
            raise ValueError(f"modules: cannot find the source of {mod!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for f in files:
            h.update(str(f.relative_to(origin.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
