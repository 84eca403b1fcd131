"""The result of ``theory.solve``: infinite-width trajectories as data (docs/design.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch

from .problem import Problem


class Status(str, Enum):
    """Outcome of a solve. ``ok`` is True only for EXACT and CONVERGED; every other status comes
    with ``Solution.info["reason"]`` saying why, in words."""

    EXACT = "exact"  # closed form, no iteration (lazy / NTK; linear perturbation theory)
    CONVERGED = "converged"  # fixed point reached: residual below the tolerance AND small
    MAX_ITERATIONS = "max_iterations"  # budget spent before the residual fell below the tolerance
    NOISE_LIMITED = "noise_limited"  # the Monte Carlo noise floor itself is too large to trust
    DIVERGED = "diverged"  # the dynamics blew up (info["diverged_step"]), past the critical gamma0

    @property
    def ok(self) -> bool:
        return self in (Status.EXACT, Status.CONVERGED)


class SolverError(RuntimeError):
    """Raised by ``solve(..., strict=True)`` when the status is not ok."""


@dataclass(frozen=True, eq=False)
class Solution:
    """Infinite-width prediction for a :class:`Problem` (float64 CPU tensors unless asked otherwise).

    T = problem.steps, P = training points, Q = test points, P_all = P + Q, L = problem.depth.

    t:        (T+1,) times ``k * eta``.
    loss:     (T+1,) training MSE ``mean_mu (f~_mu - y_mu)^2``.
    f_train:  (T+1, P) centred outputs on training points.
    f_test:   (T+1, Q) centred outputs on test points, or None without a test set.
    ntk:      (T+1, P_all, P_all) the NTK ``K(t, t)``, train then test points.
    phi:      tuple of L tensors (T+1, P_all, T+1, P_all): ``phi[l] = Phi^{l+1}(t, s)``.
    g:        tuple of L tensors (T+1, P_all, T+1, P_all): ``g[l] = G^{l+1}(t, s)``.
    response_a: tuple of L-1 tensors (T+1, P_all, T+1, P_all), indexed ``[k, mu, s, nu]``:
              ``response_a[l-1] = A^l = < d phi(h^l(k,mu)) / d r^l(s,nu) >``, l = 1..L-1
              (strictly causal: 0 for s >= k); docs/theory.md section 2.
    response_b: the same layout, ``response_b[l-1] = B^l = < d g^{l+1}(k,mu) / d u^{l+1}(s,nu) >``
              (causal: 0 for s > k). These are the responses the field equations use
              (``A^0 = B^L = 0``; ``A^L`` and ``B^0`` never enter). None where the scheme has
              none (ntk, gia, perturbative). Both solvers give this layout. In a linear network
              the backward fields carry no point index: ``B^l`` is the same for every ``mu``,
              and ``A^l(k,mu; s,nu) = A^l(k,mu; s) / P_all``, the response to the common source
              ``r^l(s)`` spread evenly over ``nu`` (every use sums over ``nu``); both are
              broadcast views. The exact linear solver also keeps its native set in
              ``info["linear_responses"]``: ``a[i] = A^{i+1}`` (T+1, P_all, T+1) and
              ``b[i] = B^i`` (T+1, T+1, P_all), i = 0..L-1 (``theory.linear``).
    status, iterations, residual: convergence report (:class:`Status`); ``residual`` is the
              relative change of the kernels the verdict was based on (0 for exact schemes) and
              ``info["tolerance"]`` the bound an iterative CONVERGED solve met. A status that is
              not ok always comes with ``info["reason"]``; DIVERGED with ``info["diverged_step"]``
              (the fields are NaN from that step on).
    scheme:   "dmft", "gia", "ntk" or "perturbative".
    info:     free-form details (samples used, timings, the Monte Carlo standard errors, ...).

    For ``scheme="perturbative"`` the fields are the truncated expansion
    ``q(0) + gamma0^2 q_2`` and ``info["second_order"]`` holds the ``q_2`` coefficients.
    Constant-in-time kernels (ntk scheme) are broadcast views (``expand``), not copies.
    """

    problem: Problem
    scheme: str
    t: torch.Tensor
    loss: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor
    phi: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    status: Status
    iterations: int
    residual: float
    response_a: tuple[torch.Tensor, ...] | None = None
    response_b: tuple[torch.Tensor, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T1, Pa = self.problem.steps + 1, self.problem.n_points
        check_fields(self, {"t": (T1,)}, kernel=(T1, Pa, T1, Pa))
        object.__setattr__(self, "status", Status(self.status))
        if not self.status.ok and not self.info.get("reason"):
            raise ValueError(f"Solution.info: status {self.status.value!r} needs a 'reason'")

    @property
    def ok(self) -> bool:
        return self.status.ok

    def raise_for_status(self) -> "Solution":
        """Raise :class:`SolverError` unless the status is ok; return self otherwise."""
        if not self.ok:
            raise SolverError(
                f"{self.scheme} solve of {self.problem!r} ended with status {self.status.value!r} "
                f"after {self.iterations} iterations (residual {self.residual:.3g})"
                + (f": {self.info['reason']}" if "reason" in self.info else "")
            )
        return self

    def phi_diag(self, layer: int) -> torch.Tensor:
        """(T+1, P_all, P_all) equal-time kernel ``Phi^{layer+1}(t, t)``."""
        return _equal_time(self.phi[layer])

    def g_diag(self, layer: int) -> torch.Tensor:
        """(T+1, P_all, P_all) equal-time kernel ``G^{layer+1}(t, t)``."""
        return _equal_time(self.g[layer])


def _equal_time(k: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(k, dim1=0, dim2=2).permute(2, 0, 1)


# ---------------------------------------------------------------------- the one builder

def check_fields(result: Any, extra: dict[str, tuple[int, ...]], *, kernel: tuple[int, ...]) -> None:
    """Shapes of the observables every result of a problem carries (``Solution``,
    ``theory.fluctuations.Fluctuations``): ``loss`` (T+1,), ``f_train`` (T+1, P), ``f_test``
    (T+1, Q) exactly when the problem has test points, ``ntk`` (T+1, P_all, P_all), the fields of
    ``extra``, and ``phi``, ``g`` as L tensors of shape ``kernel``. A ValueError names the field."""
    pr, who = result.problem, type(result).__name__
    T1 = pr.steps + 1
    expect = {"loss": (T1,), "f_train": (T1, pr.n_train), "ntk": (T1, pr.n_points, pr.n_points), **extra}
    if pr.n_test:
        expect["f_test"] = (T1, pr.n_test)
    for name, shape in expect.items():
        got = tuple(getattr(result, name).shape)
        if got != shape:
            raise ValueError(f"{who}.{name}: expected shape {shape}, got {got}")
    if (result.f_test is None) != (pr.n_test == 0):
        raise ValueError(f"{who}.f_test: must be given exactly when the problem has test points")
    for name in ("phi", "g"):
        seq = getattr(result, name)
        if len(seq) != pr.depth:
            raise ValueError(f"{who}.{name}: expected {pr.depth} layers, got {len(seq)}")
        for arr in seq:
            if tuple(arr.shape) != kernel:
                raise ValueError(f"{who}.{name}: expected per-layer shape {kernel}, got {tuple(arr.shape)}")


def build_solution(problem: Problem, scheme: str, *, f: torch.Tensor, ntk: torch.Tensor,
                   phi, g, status: Status, iterations: int = 0, residual: float = 0.0,
                   info: dict | None = None, response_a=None, response_b=None,
                   loss: torch.Tensor | None = None) -> Solution:
    """The one place a :class:`Solution` is assembled (every solver and scheme calls it).

    f (T+1, P_all): centred outputs, training points first; ntk (T+1, P_all, P_all);
    phi, g: L kernels, each (T+1, P_all, T+1, P_all) or flat (n, n) with n = (T+1) P_all
    (reshaped); response_a / response_b: L-1 responses in the same shapes, or None; loss (T+1,)
    when it is not the MSE of ``f`` (the perturbative scheme expands it itself). A DIVERGED
    status with ``info["diverged_step"] = k`` gets NaN from step k on (outputs, loss, NTK; the
    kernels and responses wherever either time is >= k).
    """
    t1, pa, p = problem.steps + 1, problem.n_points, problem.n_train
    info = {} if info is None else info
    shape4 = lambda m: m if m.ndim == 4 else m.reshape(t1, pa, t1, pa)  # noqa: E731
    phi, g = [shape4(m) for m in phi], [shape4(m) for m in g]
    resp = [None if r is None else [shape4(m) for m in r] for r in (response_a, response_b)]
    k = info.get("diverged_step")
    if Status(status) is Status.DIVERGED and k is not None:
        f, ntk = _nan_from(f, k, (0,)), _nan_from(ntk, k, (0,))
        loss = None if loss is None else _nan_from(loss, k, (0,))
        phi, g = [_nan_from(m, k, (0, 2)) for m in phi], [_nan_from(m, k, (0, 2)) for m in g]
        resp = [None if r is None else [_nan_from(m, k, (0, 2)) for m in r] for r in resp]
    y = problem.y_train.to(f)
    return Solution(
        problem=problem, scheme=scheme, t=problem.times.to(f),
        loss=((f[:, :p] - y) ** 2).mean(-1) if loss is None else loss,
        f_train=f[:, :p], f_test=f[:, p:] if problem.n_test else None, ntk=ntk,
        phi=tuple(phi), g=tuple(g), status=status, iterations=iterations, residual=residual,
        response_a=None if resp[0] is None else tuple(resp[0]),
        response_b=None if resp[1] is None else tuple(resp[1]), info=info,
    )


def constant_in_time(k: torch.Tensor, steps_plus_one: int) -> torch.Tensor:
    """(T+1, P_all, T+1, P_all) broadcast view of a (P_all, P_all) kernel constant in time."""
    return k[None, :, None, :].expand(steps_plus_one, k.shape[0], steps_plus_one, k.shape[1])


def point_free(k: torch.Tensor, n_points: int) -> torch.Tensor:
    """(T+1, P_all, T+1, P_all) broadcast view of a (T+1, T+1) kernel with no point index."""
    return k[:, None, :, None].expand(k.shape[0], n_points, k.shape[1], n_points)


def _nan_from(t: torch.Tensor, k: int, dims: tuple[int, ...]) -> torch.Tensor:
    """Copy of ``t`` with NaN at every time index >= k along ``dims``."""
    t = t.clone()
    for d in dims:
        idx = [slice(None)] * t.ndim
        idx[d] = slice(k, None)
        t[tuple(idx)] = math.nan
    return t
