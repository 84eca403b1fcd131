"""Observables and distances between theory and networks (docs/theory.md sections 1 and 7).

An *observable* is a named array read off a ``theory.Solution`` (no seed axis) or a
``simulate.Trajectories``-like object (same fields with a leading seed axis ``S``):

    loss        (T+1,)            training MSE
    test_loss   (T+1,)            test MSE (needs y_test)
    test_error  (T+1,)            fraction of test points with sign(f~) != sign(y)
    f_train     (T+1, P)          centred outputs; f_test (T+1, Q) likewise
    ntk         (T+1, P_all, P_all)
    phi, g      (T+1, P_all, P_all)   equal-time kernels Phi^{l+1}(t,t), G^{l+1}(t,t) (``layer`` l)
    phi_2t, g_2t (T+1, P_all, T+1, P_all)   the two-time kernels
    ntk_final, phi_final, g_final   (P_all, P_all) at the last time
    alignment_yy (T+1,)          A(Phi^L(t,t)[train, train], y y^T), last hidden layer
The seed axis, when present, stays in front.
"""

from __future__ import annotations

from typing import Any

import torch

OBSERVABLES = (
    "loss", "test_loss", "test_error", "f_train", "f_test", "ntk", "phi", "g",
    "phi_2t", "g_2t", "ntk_final", "phi_final", "g_final", "alignment_yy",
)
LAYERED = {"phi", "g", "phi_2t", "g_2t", "phi_final", "g_final"}
#: Observables that are time series (the convergence check plots them as curves).
TIME_SERIES = {"loss", "test_loss", "test_error", "alignment_yy"}


def check_observable(name: str, layer: int | None = None, depth: int | None = None) -> None:
    """Raise ``ValueError`` naming the field for an unknown observable or a bad layer."""
    if name not in OBSERVABLES:
        raise ValueError(f"observable: unknown value {name!r}; valid values are {list(OBSERVABLES)}")
    if name in LAYERED:
        if layer is None:
            raise ValueError(f"layer: observable {name!r} needs a layer (0 .. depth-1)")
        if depth is not None and not 0 <= layer < depth:
            raise ValueError(f"layer: {layer} out of range 0 .. {depth - 1}")


def _equal_time(k: torch.Tensor) -> torch.Tensor:
    """(..., T+1, P, T+1, P) -> (..., T+1, P, P)."""
    return torch.diagonal(k, dim1=-4, dim2=-2).movedim(-1, -3)


def _f64(x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).detach().to("cpu", torch.float64)


def observable(obj: Any, name: str, problem: Any = None, layer: int | None = None) -> torch.Tensor:
    """The array of observable ``name`` (see the module docstring) from a Solution or Trajectories.

    ``problem`` defaults to ``obj.problem``; it supplies targets for test_loss / test_error /
    alignment_yy. Returns float64 CPU tensors; a leading seed axis is kept.
    """
    check_observable(name, layer)
    problem = problem if problem is not None else getattr(obj, "problem", None)
    if name in ("loss", "f_train", "f_test", "ntk"):
        v = getattr(obj, name)
        if v is None:
            raise ValueError(f"observable: {name!r} is not available (no test set recorded)")
        return _f64(v)
    if name in ("test_loss", "test_error"):
        if problem is None or problem.y_test is None or obj.f_test is None:
            raise ValueError(f"observable: {name!r} needs a test set with targets (y_test)")
        f, y = _f64(obj.f_test), _f64(problem.y_test)
        if name == "test_loss":
            return ((f - y) ** 2).mean(-1)
        return (torch.sign(f) != torch.sign(y)).to(torch.float64).mean(-1)
    if name == "ntk_final":
        return _f64(obj.ntk)[..., -1, :, :]
    if name == "alignment_yy":
        if problem is None:
            raise ValueError("observable: 'alignment_yy' needs the problem (targets)")
        p = problem.n_train
        k = _equal_time_kernel(obj, "phi", -1)[..., :p, :p]
        y = _f64(problem.y_train)
        return alignment(k, torch.outer(y, y), dims=2)
    base = name.split("_")[0]
    if name.endswith("_2t"):
        kern = getattr(obj, base)
        if kern is None:
            raise ValueError(f"observable: {name!r} needs the two-time kernels, which were not recorded")
        return _f64(kern[layer])
    eq = _equal_time_kernel(obj, base, layer)
    return eq[..., -1, :, :] if name.endswith("_final") else eq


def _equal_time_kernel(obj: Any, base: str, layer: int) -> torch.Tensor:
    """``Phi^{l+1}(t, t)`` / ``G^{l+1}(t, t)``: ``obj.phi_diag(layer)`` where ``obj`` has it (Solution,
    Trajectories, validate.jobs.Ensemble), else the diagonal of the two-time kernel."""
    diag = getattr(obj, f"{base}_diag", None)
    if callable(diag):
        return _f64(diag(layer if layer >= 0 else obj.problem.depth + layer))
    return _equal_time(_f64(getattr(obj, base)[layer]))


def _flat(x: torch.Tensor, dims: int) -> torch.Tensor:
    return x.reshape(*x.shape[: x.ndim - dims], -1) if dims else x[..., None]


def rel_error(x: torch.Tensor, ref: torch.Tensor, dims: int | None = None) -> torch.Tensor:
    """Relative Frobenius error ``|x - ref| / |ref|`` over the last ``dims`` axes.

    ``dims`` defaults to ``ref.ndim`` (x may carry extra leading axes, e.g. seeds).
    """
    x, ref = _f64(x), _f64(ref)
    dims = ref.ndim if dims is None else dims
    num = _flat(x - ref, dims).norm(dim=-1)
    den = _flat(ref, dims).norm(dim=-1)
    return num / den.clamp_min(torch.finfo(torch.float64).tiny)


def alignment(x: torch.Tensor, y: torch.Tensor, dims: int | None = None) -> torch.Tensor:
    """Kernel alignment ``A(X, Y) = <X, Y> / (|X| |Y|)`` over the last ``dims`` axes (docs/theory.md 7)."""
    x, y = _f64(x), _f64(y)
    dims = y.ndim if dims is None else dims
    xf, yf = _flat(x, dims), _flat(y, dims)
    num = (xf * yf).sum(-1)
    den = xf.norm(dim=-1) * yf.norm(dim=-1)
    return num / den.clamp_min(torch.finfo(torch.float64).tiny)
