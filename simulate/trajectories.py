"""The result of ``simulate.train``: finite-width trajectories with a leading seed axis.

Fields mirror ``theory.Solution`` (DESIGN.md) with a seed axis ``S`` in front. Divergent seeds
are flagged (``diverged``, ``diverged_step``) and their entries from the divergence step on are
masked with NaN; :meth:`Trajectories.mean` and :meth:`Trajectories.sem` ignore masked entries.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import torch

#: Observables that ``record=`` can choose (loss and outputs are always recorded).
OBSERVABLES = ("ntk", "phi", "g")
#: Fields that :meth:`Trajectories.mean` and :meth:`Trajectories.sem` average.
FIELDS = ("loss", "f_train", "f_test", "ntk", "phi", "g", "phi_eq", "g_eq")


class DivergenceError(RuntimeError):
    """Raised by :meth:`Trajectories.raise_for_divergence` when some seed diverged."""


@dataclass(frozen=True, eq=False)
class Trajectories:
    """Training trajectories of ``seeds`` networks of one width (docs/theory.md section 1).

    S = seeds, T = problem.steps, P / Q = train / test points, P_all = P + Q, L = depth,
    Tk = len(kernel_times) (T + 1 unless ``times=`` chose a subset).

    t:             (T+1,) times ``k * eta``.
    loss:          (S, T+1) training MSE ``mean_mu (f~_mu - y_mu)^2`` (no 1/2).
    f_train:       (S, T+1, P) centred outputs ``f(theta_k) - f(theta_0)`` on training points.
    f_test:        (S, T+1, Q) the same on test points, or None without a test set.
    ntk:           (S, T+1, P_all, P_all) ``K(t,t) = sum_l G^{l+1}(t,t) * Phi^l(t,t)``, or None.
    phi:           tuple of L tensors (S, Tk, P_all, Tk, P_all), ``phi[l] = Phi^{l+1}(t, s)``, or None
                   (not recorded, or recorded with ``kernels="equal_time"``).
    g:             tuple of L tensors (S, Tk, P_all, Tk, P_all), ``g[l] = G^{l+1}(t, s)``, or None.
    kernel_times:  (Tk,) int64 step indices at which the kernels (``phi``, ``g``, ``phi_eq``, ``g_eq``)
                   were recorded.
    diverged:      (S,) bool, True where the loss became non-finite or exploded.
    diverged_step: (S,) int64, the first step flagged as diverged, -1 where none.
    width, seeds, seed: N, S and the seed of the first network (network i used ``seed + i``).
    device, dtype: where and in which precision the networks were trained (results are on the CPU).
    info:          free-form details (wall time, seed chunking, kernel mode, ...).
    phi_eq, g_eq:  tuples of L tensors (S, Tk, P_all, P_all), the equal-time kernels
                   ``Phi^{l+1}(t, t)``, ``G^{l+1}(t, t)`` recorded with ``kernels="equal_time"``
                   (else None). :meth:`phi_diag` / :meth:`g_diag` read them in either mode.

    Entries at steps ``>= diverged_step`` of a diverged seed are NaN (for the two-time kernels:
    wherever either time is ``>= diverged_step``).
    """

    problem: Any
    t: torch.Tensor
    loss: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor | None
    phi: tuple[torch.Tensor, ...] | None
    g: tuple[torch.Tensor, ...] | None
    kernel_times: torch.Tensor
    diverged: torch.Tensor
    diverged_step: torch.Tensor
    _: KW_ONLY
    width: int
    seeds: int
    seed: int = 0
    device: str = "cpu"
    dtype: torch.dtype = torch.float64
    info: dict[str, Any] = field(default_factory=dict)
    phi_eq: tuple[torch.Tensor, ...] | None = None
    g_eq: tuple[torch.Tensor, ...] | None = None

    def __post_init__(self) -> None:
        p = self.problem
        S, T1, P, Q, Pa, L = self.seeds, p.steps + 1, p.n_train, p.n_test, p.n_points, p.depth
        Tk = len(self.kernel_times)
        expect = {
            "t": (T1,),
            "loss": (S, T1),
            "f_train": (S, T1, P),
            "diverged": (S,),
            "diverged_step": (S,),
        }
        if Q:
            expect["f_test"] = (S, T1, Q)
        if self.ntk is not None:
            expect["ntk"] = (S, T1, Pa, Pa)
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Trajectories.{name}: expected shape {shape}, got {got}")
        if (self.f_test is None) != (Q == 0):
            raise ValueError("Trajectories.f_test: must be given exactly when the problem has test points")
        layer_shapes = {"phi": (S, Tk, Pa, Tk, Pa), "g": (S, Tk, Pa, Tk, Pa),
                        "phi_eq": (S, Tk, Pa, Pa), "g_eq": (S, Tk, Pa, Pa)}
        for name, shape in layer_shapes.items():
            seq = getattr(self, name)
            if seq is None:
                continue
            if len(seq) != L:
                raise ValueError(f"Trajectories.{name}: expected {L} layers, got {len(seq)}")
            for arr in seq:
                if tuple(arr.shape) != shape:
                    raise ValueError(
                        f"Trajectories.{name}: expected per-layer shape {shape}, got {tuple(arr.shape)}"
                    )

    # ------------------------------------------------------------------ convenience
    @property
    def valid(self) -> torch.Tensor:
        """(S, T+1) bool: True where the entry is not masked by divergence."""
        T1 = self.t.shape[0]
        steps = torch.arange(T1)[None, :]
        stop = torch.where(self.diverged, self.diverged_step, torch.full_like(self.diverged_step, T1))
        return steps < stop[:, None]

    @property
    def any_diverged(self) -> bool:
        return bool(self.diverged.any())

    def raise_for_divergence(self) -> "Trajectories":
        """Raise :class:`DivergenceError` if any seed diverged; return self otherwise."""
        if self.any_diverged:
            bad = {int(i) + self.seed: int(self.diverged_step[i]) for i in torch.nonzero(self.diverged)}
            raise DivergenceError(
                f"training of width {self.width} diverged for seeds {sorted(bad)} "
                f"(seed: first diverged step) {bad}; lower eta or gamma0"
            )
        return self

    def _field(self, name: str):
        if name not in FIELDS:
            raise ValueError(f"name: unknown field {name!r}; valid fields are {list(FIELDS)}")
        value = getattr(self, name)
        if value is None:
            how = {"phi": "record=..., kernels='two_time'", "g": "record=..., kernels='two_time'",
                   "phi_eq": "record=..., kernels='equal_time'", "g_eq": "record=..., kernels='equal_time'"}
            raise ValueError(f"name: field {name!r} was not recorded (see train({how.get(name, 'record=...')}))")
        return value

    def mean(self, name: str = "loss"):
        """Ensemble mean over seeds of a field, ignoring masked (diverged) entries.

        Returns the field's shape without the seed axis (a tuple per layer for phi and g);
        NaN where every seed is masked.
        """
        value = self._field(name)
        if isinstance(value, tuple):
            return tuple(torch.nanmean(v, dim=0) for v in value)
        return torch.nanmean(value, dim=0)

    def sem(self, name: str = "loss"):
        """Standard error of the ensemble mean (sample std with ddof=1 over sqrt(n)), per entry.

        NaN where fewer than two seeds are valid.
        """
        def one(v: torch.Tensor) -> torch.Tensor:
            ok = ~torch.isnan(v)
            n = ok.sum(0)
            mu = torch.nanmean(v, dim=0)
            dev = torch.where(ok, v - mu, torch.zeros_like(v))
            var = (dev**2).sum(0) / (n - 1).clamp(min=1)
            out = torch.sqrt(var / n.clamp(min=1))
            return torch.where(n >= 2, out, torch.full_like(out, float("nan")))

        value = self._field(name)
        if isinstance(value, tuple):
            return tuple(one(v) for v in value)
        return one(value)

    def phi_diag(self, layer: int) -> torch.Tensor:
        """(S, Tk, P_all, P_all) equal-time kernel ``Phi^{layer+1}(t, t)`` at ``kernel_times``."""
        return self._diag("phi", layer)

    def g_diag(self, layer: int) -> torch.Tensor:
        """(S, Tk, P_all, P_all) equal-time kernel ``G^{layer+1}(t, t)`` at ``kernel_times``."""
        return self._diag("g", layer)

    def _diag(self, name: str, layer: int) -> torch.Tensor:
        if getattr(self, name) is None and getattr(self, name + "_eq") is not None:
            return self._field(name + "_eq")[layer]
        return torch.diagonal(self._field(name)[layer], dim1=1, dim2=3).permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        rec = [n for n in OBSERVABLES if getattr(self, n) is not None]
        rec += [f"{n}(t,t)" for n in ("phi", "g") if getattr(self, n + "_eq") is not None]
        return (
            f"Trajectories({self.problem!r}, width={self.width}, seeds={self.seeds}, "
            f"seed={self.seed}, recorded={rec}, diverged={int(self.diverged.sum())})"
        )
