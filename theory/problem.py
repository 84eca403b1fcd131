"""The frozen description of one experiment (docs/theory.md section 1).

A :class:`Problem` is turned into both the infinite-width prediction (``theory.solve``) and the
finite-width networks (``simulate.train``). It holds the data (train points first, then test
points), the architecture (``depth`` hidden layers, ``activation``) and the training
hyper-parameters (``gamma0``, ``eta``, ``steps``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np
import torch

from .activations import Activation, get_activation

ArrayLike = Any  # numpy array, torch tensor or nested sequence

#: Largest entry of the input Gram matrix ``Kx`` (and of the lazy NTK) a Problem accepts. The
#: solvers square kernels (eigendecompositions, products of two kernels), so entries much past
#: ``sqrt(float64 max) ~ 1e154`` overflow; 1e100 leaves room for the products of a deep network.
MAX_KERNEL = 1e100


def _as_matrix(name: str, value: ArrayLike) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.asarray(value, dtype=np.float64) if not torch.is_tensor(value) else value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be read as a numeric array ({exc})") from None
    t = t.detach().to(device="cpu", dtype=torch.float64).contiguous()
    if t.ndim != 2:
        raise ValueError(f"{name}: expected shape (points, input_dim), got {tuple(t.shape)}")
    if t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{name}: needs at least one point and one input dimension, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t


def _as_vector(name: str, value: ArrayLike, length: int) -> torch.Tensor:
    try:
        t = torch.as_tensor(np.asarray(value, dtype=np.float64) if not torch.is_tensor(value) else value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be read as a numeric array ({exc})") from None
    t = t.detach().to(device="cpu", dtype=torch.float64)
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1 or t.shape[0] != length:
        raise ValueError(f"{name}: expected shape ({length},) (one scalar target per point), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t.contiguous()


@dataclass(frozen=True, eq=False)
class Problem:
    """One experiment: data, architecture and training schedule.

    Fields (tensors are float64 on the CPU, whatever was passed in):
        x_train: (P, D) training inputs.
        y_train: (P,) scalar targets.
        x_test: (Q, D) test inputs, or None.
        y_test: (Q,) test targets, or None (allowed only with ``x_test``).
        depth: number of hidden layers L >= 1.
        activation: a name (see ``theory.activations.activation_names()``) or an object with
            ``phi``, ``dphi``, ``ddphi``; stored resolved as an :class:`Activation`.
        gamma0: feature-learning strength, >= 0 (0 is the lazy / static-NTK limit).
        eta: time step of gradient descent, > 0 (learning rate ``eta * gamma0**2 * N``).
        steps: number of gradient-descent steps T >= 1 (the time grid has T + 1 points).

    Bad input raises ``ValueError`` naming the field. A time step beyond the stability limit of
    the lazy dynamics (``eta * lambda_max(K_train) / P >= 2``) is rejected too.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    _: KW_ONLY
    depth: int = 3
    activation: Activation | str = "tanh"
    gamma0: float = 1.0
    eta: float = 0.1
    steps: int = 100
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        x = _as_matrix("x_train", self.x_train)
        set_("x_train", x)
        set_("y_train", _as_vector("y_train", self.y_train, x.shape[0]))
        if self.x_test is None:
            if self.y_test is not None:
                raise ValueError("y_test: given without x_test")
        else:
            xt = _as_matrix("x_test", self.x_test)
            if xt.shape[1] != x.shape[1]:
                raise ValueError(
                    f"x_test: input dimension {xt.shape[1]} differs from x_train's {x.shape[1]}"
                )
            set_("x_test", xt)
            if self.y_test is not None:
                set_("y_test", _as_vector("y_test", self.y_test, xt.shape[0]))
        for name in ("depth", "steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {v!r}")
            set_(name, int(v))
        set_("activation", get_activation(self.activation))
        for name, lo, strict in (("gamma0", 0.0, False), ("eta", 0.0, True)):
            v = getattr(self, name)
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: must be a real number, got {v!r}") from None
            if not math.isfinite(fv) or fv < lo or (strict and fv == lo):
                rel = ">" if strict else ">="
                raise ValueError(f"{name}: must be finite and {rel} {lo}, got {v!r}")
            set_(name, fv)
        self._check_scale()
        limit = self.eta_limit()
        if self.eta >= limit:
            raise ValueError(
                f"eta: {self.eta} is past the stability limit of gradient descent on the lazy NTK "
                f"(eta < 2 P / lambda_max(K) = {limit:.4g}); lower eta"
            )

    def _check_scale(self) -> None:
        """Reject inputs whose Gram matrix or lazy kernels overflow (ValueError naming the field)."""
        kx = self.kx
        big = torch.diagonal(kx)  # |x_mu|^2 / D bounds row mu (Cauchy-Schwarz)
        bad = ~torch.isfinite(big) | (big > MAX_KERNEL)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0])
            name = "x_train" if first < self.n_train else "x_test"
            top = float(big[bad].nan_to_num(nan=math.inf).max())
            got = "is not finite (overflow)" if not math.isfinite(top) else f"reaches {top:.3g}"
            raise ValueError(
                f"{name}: the input Gram matrix X X^T / D {got}, past the largest value the "
                f"solvers handle ({MAX_KERNEL:g}); rescale the inputs"
            )
        from .lazy import lazy_kernels  # local import: lazy.py imports this module

        ntk = lazy_kernels(kx, self.depth, self.activation).ntk
        size = float(ntk.abs().max())
        if not math.isfinite(size) or size > MAX_KERNEL:
            raise ValueError(
                f"x_train: the lazy NTK of these inputs reaches {size:.3g} (limit {MAX_KERNEL:g}) for "
                f"depth={self.depth}, activation={self.activation.name!r}; rescale the inputs"
            )
        self._cache["lazy_ntk"] = ntk

    # ----------------------------------------------------------------- derived quantities
    @property
    def n_train(self) -> int:
        """P, the number of training points."""
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        """Q, the number of test points (0 without a test set)."""
        return 0 if self.x_test is None else self.x_test.shape[0]

    @property
    def n_points(self) -> int:
        """P_all = P + Q."""
        return self.n_train + self.n_test

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def x_all(self) -> torch.Tensor:
        """(P_all, D): training points, then test points."""
        return self.x_train if self.x_test is None else torch.cat([self.x_train, self.x_test])

    @property
    def kx(self) -> torch.Tensor:
        """(P_all, P_all) input Gram matrix ``X X^T / D`` (docs/theory.md section 1)."""
        x = self.x_all
        return x @ x.T / self.input_dim

    @property
    def times(self) -> torch.Tensor:
        """(steps + 1,) the time grid ``t_k = k * eta``."""
        return torch.arange(self.steps + 1, dtype=torch.float64) * self.eta

    def eta_limit(self) -> float:
        """Largest stable time step of gradient descent on the lazy NTK: ``2 P / lambda_max``."""
        if "eta_limit" not in self._cache:
            from .lazy import lazy_kernels  # local import: lazy.py imports this module

            p = self.n_train
            k = self._cache.get("lazy_ntk")
            k = lazy_kernels(self.kx[:p, :p], self.depth, self.activation).ntk if k is None else k[:p, :p]
            try:
                lmax = float(torch.linalg.eigvalsh(0.5 * (k + k.T))[-1])
            except torch.linalg.LinAlgError as exc:  # pragma: no cover - guarded by _check_scale
                raise ValueError(f"x_train: the lazy NTK cannot be diagonalised ({exc})") from None
            self._cache["eta_limit"] = math.inf if lmax <= 0 else 2.0 * p / lmax
        return self._cache["eta_limit"]

    # ----------------------------------------------------------------- conveniences
    def replace(self, **changes: Any) -> "Problem":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """A stable hex digest of the full specification (data bytes and every parameter).

        Used as a cache key. A custom activation is identified by its name only.
        """
        h = hashlib.sha256()
        for name in ("x_train", "y_train", "x_test", "y_test"):
            v = getattr(self, name)
            h.update(name.encode())
            if v is not None:
                h.update(str(tuple(v.shape)).encode())
                h.update(v.numpy().tobytes())
        h.update(
            repr((self.depth, self.activation.name, self.gamma0, self.eta, self.steps)).encode()
        )
        return h.hexdigest()

    def __repr__(self) -> str:
        return (
            f"Problem(P={self.n_train}, Q={self.n_test}, D={self.input_dim}, depth={self.depth}, "
            f"activation={self.activation.name!r}, gamma0={self.gamma0}, eta={self.eta}, "
            f"steps={self.steps})"
        )
