"""Index layout and the pieces both sampled and exact methods share (``docs/finite_width.md``).

A (time, point) pair ``(k, mu)`` is flattened to ``k * P_all + mu`` (n = (T+1) P_all), as in the
Monte Carlo solver; backward fields of linear networks carry no point index, so their kernels
are indexed by time only (``p_g = 1``, n_g = T+1), while nonlinear ones use ``p_g = P_all``.
Gradient-descent couplings (docs/theory.md section 2, with ``a = eta gamma0 / P``)::

    C_gd(k, mu; s, nu) = a [s < k] Phi^{l-1}(k, mu; s, nu) Delta_nu(s)     (p_g = P_all)
    C_gd(k, mu; s)     = a [s < k] sum_nu Phi^{l-1}(k, mu; s, nu) Delta_nu(s)   (p_g = 1)
    D_gd(k, mu; s, nu) = a [s < k] G^{l+1}(k, mu; s, nu) Delta_nu(s)       (p_g = P_all)
    D_gd(k; s, nu)     = a [s < k] G^{l+1}(k, s) Delta_nu(s)               (p_g = 1)

(``Delta`` is zero on test columns). Either the kernel or ``Delta`` may carry a leading batch
axis of tangent directions.
"""

from __future__ import annotations

import torch

from .interface import Problem


def factor_psd(cov: torch.Tensor, clip: float = 1e-12) -> torch.Tensor:
    """``W`` (n, rank) with ``W W^T`` the PSD part of ``cov`` (eigh, eigenvalues below
    ``clip * lambda_max`` dropped)."""
    lam, vec = torch.linalg.eigh(0.5 * (cov + cov.mT))
    keep = lam > clip * lam[-1].clamp(min=0.0)
    if not bool(keep.any()):
        return torch.zeros(cov.shape[0], 1, dtype=cov.dtype)
    return vec[:, keep] * lam[keep].sqrt()


class Layout:
    """Shapes and shared linear maps of one problem (``p_g``: points per backward time block)."""

    def __init__(self, problem: Problem, *, p_g: int, dtype=torch.float64):
        self.problem = problem
        self.depth, self.m = problem.depth, problem.steps + 1
        self.pa, self.p, self.p_g = problem.n_points, problem.n_train, p_g
        self.n, self.ng = self.m * self.pa, self.m * p_g
        self.kx = problem.kx.to(dtype)
        self.y = problem.y_train.to(dtype)
        self.eta, self.gamma0 = problem.eta, problem.gamma0
        self.a = problem.eta * problem.gamma0 / problem.n_train
        self.mask = torch.tril(torch.ones(self.m, self.m, dtype=dtype), -1)  # [s < k]

    def padded(self, delta: torch.Tensor) -> torch.Tensor:
        """``Delta`` (..., m, P) zero-padded to all points (..., m, P_all)."""
        pad = torch.zeros(*delta.shape[:-1], self.pa - self.p, dtype=delta.dtype)
        return torch.cat([delta, pad], -1)

    def c_gd(self, phi: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """GD coupling of ``h`` to ``g`` (see the module docstring); (..., n, n_g)."""
        m, pa = self.m, self.pa
        k4 = phi.reshape(*phi.shape[:-2], m, pa, m, pa)
        dl = self.padded(delta)
        if self.p_g == 1:
            out = torch.einsum("...kasb,...sb->...kas", k4, dl) * self.mask[:, None, :]
            return self.a * out.reshape(*out.shape[:-3], self.n, m)
        out = k4 * self.mask[:, None, :, None] * dl[..., None, None, :, :]
        return self.a * out.reshape(*out.shape[:-4], self.n, self.n)

    def d_gd(self, g: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """GD coupling of ``z`` to ``phi(h)``; (..., n_g, n)."""
        m, pa = self.m, self.pa
        dl = self.padded(delta)
        if self.p_g == 1:
            out = (g * self.mask)[..., :, :, None] * dl[..., None, :, :]
            return self.a * out.reshape(*out.shape[:-3], m, self.n)
        k4 = g.reshape(*g.shape[:-2], m, pa, m, pa)
        out = k4 * self.mask[:, None, :, None] * dl[..., None, None, :, :]
        return self.a * out.reshape(*out.shape[:-4], self.n, self.n)

    def c_row(self, phi: torch.Tensor, delta: torch.Tensor, k: int) -> torch.Tensor:
        """Row block ``k`` of :meth:`c_gd` on the columns of times ``< k`` (the others vanish):
        (..., P_all, k p_g); ``phi`` (..., n, n) and ``delta`` (..., m, P) broadcast."""
        pa = self.pa
        dl = self.padded(delta)[..., :k, :]  # (..., k, P_all)
        blk = phi[..., k * pa : (k + 1) * pa, : k * pa]
        if self.p_g == 1:
            blk = blk.reshape(*blk.shape[:-1], k, pa)
            return self.a * (blk * dl[..., None, :, :]).sum(-1)
        return self.a * blk * dl.reshape(*dl.shape[:-2], 1, k * pa)

    def d_row(self, g: torch.Tensor, delta: torch.Tensor, k: int) -> torch.Tensor:
        """Row block ``k`` of :meth:`d_gd` on the columns of times ``< k``: (..., p_g, k P_all);
        ``g`` (..., n_g, n_g) and ``delta`` (..., m, P) broadcast."""
        if self.p_g != 1:
            return self.c_row(g, delta, k)  # the same form when both carry every point
        dl = self.padded(delta)[..., :k, :]  # (..., k, P_all)
        row = g[..., k : k + 1, :k]  # (..., 1, k)
        out = row[..., None] * dl[..., None, :, :]  # (..., 1, k, P_all)
        return self.a * out.reshape(*out.shape[:-2], k * self.pa)

    def equal_time(self, k: torch.Tensor) -> torch.Tensor:
        """Equal-time blocks (c, m, P_all, P_all) of kernels (c, n, n)."""
        k5 = k.reshape(k.shape[0], self.m, self.pa, self.m, self.pa)
        return torch.diagonal(k5, dim1=1, dim2=3).permute(0, 3, 1, 2)

    def kx_factor(self) -> torch.Tensor:
        """Factor (n, rank) of ``Kx`` repeated over all time pairs (``u^1`` is constant in time)."""
        return factor_psd(self.kx).repeat(self.m, 1)

    def output_observables(self, df: torch.Tensor, f: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"f": df, "loss": d mean_mu (f~ - y)^2}`` for output tangents df (c, m, P_all)."""
        p = self.p
        return {"f": df, "loss": (2.0 / p) * ((f[:, :p] - self.y) * df[:, :, :p]).sum(-1)}

    def scales(self, f, ntk, phis, gs) -> dict[str, float]:
        """Base size of each observable: f (m, P_all), ntk (m, P_all, P_all), equal-time kernels
        ``phis``/``gs`` (lists of (m, P_all, P_all)); the loss scale is that of ``f - y``."""
        err = f[:, : self.p] - self.y
        return {"f": max(float(f.norm()), float(self.y.norm()) * self.m**0.5),
                "loss": float((err**2).mean(-1).norm()) + float(self.y.norm()) ** 2 / self.p,
                "ntk": float(ntk.norm()), "phi": float(sum(float(p.norm()) for p in phis)),
                "g": float(sum(float(g.norm()) for g in gs))}

    def zero_state(self, shapes: dict[str, tuple[int, ...]], c: int, dtype) -> dict[str, torch.Tensor]:
        return {k: torch.zeros(c, *s, dtype=dtype) for k, s in shapes.items()}
