"""The arguments of :func:`validate.width_study`, checked once into a frozen :class:`StudyConfig`.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (wrong value) whose
message starts with the argument's name and states what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

#: The recorded statistics (README "Your own model at any width").
STATISTICS = ("loss", "output", "rms", "delta_rms")
#: Module label of the network-level statistics ``loss`` and ``output``.
NETWORK = "(network)"
DEFAULT_WIDTHS = (64, 128, 256, 512)
BATCHING = ("auto", "vmap", "loop")
LOSSES = ("mse", "cross_entropy")


def _mse(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``mean((output - y)^2)``; an output of shape ``y.shape + (1,)`` is squeezed first."""
    if output.shape != y.shape and output.shape[:-1] == y.shape and output.shape[-1] == 1:
        output = output[..., 0]
    if output.shape != y.shape:
        raise ValueError(f"loss: 'mse' needs the output shape to match y, got output "
                         f"{tuple(output.shape)} and y {tuple(y.shape)}")
    return F.mse_loss(output, y.to(output.dtype))


def _cross_entropy(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, y)


@dataclass(frozen=True, eq=False)
class StudyConfig:
    """A checked width study.

    factories: width -> callable building the model; widths: sorted, distinct, >= 2 of them;
    data: ``(x, y)`` tensors or a callable ``(step, generator) -> (x, y)``; optimizer: callable
    ``(model, width) -> torch.optim.Optimizer``; loss: callable ``(output, y) -> scalar``;
    tolerance: one number per statistic; modules: glob patterns or None (every leaf module);
    expect: ``(pattern, exponent)`` pairs, first match wins; batching: "auto", "vmap", "loop".
    """

    factories: dict[int, Callable[[int], torch.nn.Module]]
    widths: tuple[int, ...]
    data: Any
    optimizer: Callable
    loss: Callable
    loss_name: str
    steps: int
    seeds: int
    seed: int
    device: torch.device
    observables: tuple[str, ...]
    tolerance: dict[str, float]
    modules: tuple[str, ...] | None
    expect: tuple[tuple[str, float], ...]
    batching: str
    name: str

    @property
    def full_batch(self) -> bool:
        return not callable(self.data)


def _int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
    return int(v)


def _number(name: str, v: Any, *, positive: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name}: must be a finite number{' > 0' if positive else ''}, got {v!r}")
    return float(v)


def _strings(name: str, v: Any) -> tuple[str, ...]:
    items = (v,) if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(s, str) and s for s in items):
        raise TypeError(f"{name}: must be a non-empty string or a non-empty list of strings, got {v!r}")
    return tuple(items)


def _factories(model: Any, widths: Any) -> tuple[dict[int, Callable], tuple[int, ...]]:
    if isinstance(model, Mapping):
        bad = [k for k, f in model.items() if isinstance(k, bool) or not isinstance(k, int) or not callable(f)]
        if bad or not model:
            raise TypeError(f"model: a dict must map integer widths to callables, got keys {list(model)[:5]!r}")
        widths = tuple(model) if widths is None else widths
    elif isinstance(model, torch.nn.Module) or not callable(model):
        raise TypeError(f"model: must be a callable width -> torch.nn.Module (or a dict {{width: callable}}), "
                        f"got {type(model).__name__}")
    widths = DEFAULT_WIDTHS if widths is None else widths
    if not isinstance(widths, (list, tuple)) or not widths:
        raise TypeError(f"widths: must be a list of integers, got {widths!r}")
    ws = tuple(sorted(_int("widths", w, 1) for w in widths))
    if len(set(ws)) < 2 or len(set(ws)) != len(ws):
        raise ValueError(f"widths: need at least two distinct widths, got {widths!r}")
    if isinstance(model, Mapping):
        missing = [w for w in ws if w not in model]
        if missing:
            raise ValueError(f"widths: {missing} are not keys of the model dict {sorted(model)}")
        return {w: model[w] for w in ws}, ws
    return {w: model for w in ws}, ws


def _data(data: Any) -> Any:
    if callable(data):
        return data
    if not isinstance(data, (list, tuple)) or len(data) != 2 or not all(torch.is_tensor(t) for t in data):
        raise TypeError("data: must be a pair (x, y) of tensors or a callable (step, generator) -> (x, y), "
                        f"got {type(data).__name__}")
    check_batch(*data, where="data")
    return tuple(data)


def check_batch(x: Any, y: Any, where: str) -> None:
    """Raise unless ``x``, ``y`` are tensors with the same number of rows and finite values."""
    if not (torch.is_tensor(x) and torch.is_tensor(y)):
        raise TypeError(f"data: {where} must give a pair (x, y) of tensors, got {type(x).__name__}, {type(y).__name__}")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"data: {where}: x and y need the same number of rows, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    for t, n in ((x, "x"), (y, "y")):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"data: {where}: {n} contains NaN or infinite values")


def _loss(loss: Any) -> tuple[Callable, str]:
    if callable(loss):
        return loss, getattr(loss, "__name__", type(loss).__name__)
    if loss == "mse":
        return _mse, "mse"
    if loss == "cross_entropy":
        return _cross_entropy, "cross_entropy"
    raise ValueError(f"loss: unknown value {loss!r}; valid values are {list(LOSSES)} or a callable (output, y) -> scalar")


def _device(device: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(f"device: not a torch device: {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but is not available; use 'cpu'")
    return dev


def _tolerance(tolerance: Any) -> dict[str, float]:
    if isinstance(tolerance, Mapping):
        bad = sorted(set(tolerance) - set(STATISTICS))
        if bad:
            raise ValueError(f"tolerance: unknown statistic {bad[0]!r}; valid keys are {list(STATISTICS)}")
        missing = [s for s in STATISTICS if s not in tolerance]
        if missing:
            raise ValueError(f"tolerance: a mapping needs a value for every statistic, missing {missing}")
        return {s: _number(f"tolerance[{s!r}]", tolerance[s], positive=True) for s in STATISTICS}
    t = _number("tolerance", tolerance, positive=True)
    return {s: t for s in STATISTICS}


def _expect(expect: Any) -> tuple[tuple[str, float], ...]:
    if expect is None:
        return ()
    if not isinstance(expect, Mapping) or not all(isinstance(k, str) and k for k in expect):
        raise TypeError(f"expect: must be a dict {{module pattern: expected width exponent}}, got {expect!r}")
    return tuple((k, _number(f"expect[{k!r}]", v, positive=False)) for k, v in expect.items())


def make_config(model, *, widths, data, optimizer, loss, steps, seeds, seed, device, observables,
                tolerance, modules, expect, batching, name) -> StudyConfig:
    """Check every argument of :func:`validate.width_study` (module docstring)."""
    factories, ws = _factories(model, widths)
    if not callable(optimizer) or isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer: must be a callable (model, width) -> torch.optim.Optimizer "
                        f"(one is built per model), got {type(optimizer).__name__}")
    obs = _strings("observables", observables)
    bad = [o for o in obs if o not in STATISTICS]
    if bad:
        raise ValueError(f"observables: unknown statistic {bad[0]!r}; valid values are {list(STATISTICS)}")
    if batching not in BATCHING:
        raise ValueError(f"batching: unknown value {batching!r}; valid values are {list(BATCHING)}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: must be a non-empty string, got {name!r}")
    loss_fn, loss_name = _loss(loss)
    return StudyConfig(
        factories=factories, widths=ws, data=_data(data), optimizer=optimizer, loss=loss_fn,
        loss_name=loss_name, steps=_int("steps", steps, 1), seeds=_int("seeds", seeds, 2),
        seed=_int("seed", seed, 0), device=_device(device), observables=tuple(dict.fromkeys(obs)),
        tolerance=_tolerance(tolerance), modules=None if modules is None else _strings("modules", modules),
        expect=_expect(expect), batching=batching, name=name)
