"""Finite-width response functions from the transpose identity (``docs/finite_width.md`` section 3).

For the weight matrix between layers ``l-1`` and ``l`` the forward field of layer ``l`` and the
backward field of layer ``l-1`` are built from the same matrix, so their empirical cross moments
agree exactly at every width:

    (1/N) sum_a chi^l_a g^l_a^T = (1/N) sum_b phi(h^{l-1}_b) xi^{l-1}_b^T

With ``chi^l = u^l + A^{l-1} g^l`` and ``xi^{l-1} = r^{l-1} + B^{l-1} phi(h^{l-1})`` this reads

    A G - Phi B^T = Y - X,     X = <u^l g^l^T>,  Y = <phi(h^{l-1}) r^{l-1 T}>,
                               G = G^l,          Phi = Phi^{l-1}

with ``A`` strictly causal (row time k, column time s < k) and ``B`` causal (row time s, column
time t <= s). The equation at (row time k, column time s) is used once: for s < k it fixes row k
of ``A`` (given the earlier rows of ``B``), for s >= k column k of ``B^T`` (given rows <= k of
``A``), so a march over k solves it exactly. At infinite width Stein's lemma gives
``X = Phi B^T`` and ``Y = A G`` for the derivative responses, so the identity holds identically;
at finite width the empirical ``X``, ``Y``, ``Phi``, ``G`` fluctuate and this module gives the
first-order change of ``A`` and ``B`` (:meth:`Identity.tangent`).

The past-time blocks ``G_{<k}`` and ``Phi_{<=k}`` are often singular (deep linear networks have
exactly rank-deficient kernels) or nearly so: they are inverted on their range (pseudo-inverse by
``eigh``, eigenvalues below ``rcond * lambda_max`` dropped), and the tangent is the derivative
projected on that range, ``dx = (de - x dH) H^+`` for ``x H = e``. Components along the dropped
directions multiply field components of the same small size, so they do not reach the
observables at first order (``docs/finite_width.md`` section 3).
"""

from __future__ import annotations

import torch

#: Relative eigenvalue cut of the pseudo-inverses of past-time kernel blocks.
RCOND = 1e-10


def pinv_psd(h: torch.Tensor, rcond: float = RCOND) -> torch.Tensor:
    """Pseudo-inverse of the symmetric part of ``h`` (PSD up to round-off), by clipped ``eigh``."""
    if h.numel() == 0:
        return h.clone()
    lam, vec = torch.linalg.eigh(0.5 * (h + h.mT))
    keep = lam > rcond * lam[-1].clamp(min=0.0)
    inv = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
    return (vec * inv) @ vec.mT


class Identity:
    """The causal split of ``A G - Phi B^T = E`` for one pair of adjacent layers.

    a: (n_phi, n_g) base ``A^{l-1}``; b: (n_g, n_phi) base ``B^{l-1}``; phi: (n_phi, n_phi) the
    lower layer's ``Phi^{l-1}``; g: (n_g, n_g) the upper layer's ``G^l``. ``m`` time steps; the
    row blocks of ``phi`` have ``p_phi`` points per time, those of ``g`` ``p_g`` (``P_all`` for
    nonlinear networks, 1 for linear ones, whose backward fields carry no point index).
    """

    def __init__(self, a, b, phi, g, *, m: int, p_phi: int, p_g: int, rcond: float = RCOND):
        self.a, self.b, self.phi, self.g = a, b, phi, g
        self.m, self.p, self.q = m, p_phi, p_g
        self.g_pinv = [None] + [pinv_psd(g[: k * p_g, : k * p_g], rcond) for k in range(1, m)]
        self.phi_pinv = [pinv_psd(phi[: (k + 1) * p_phi, : (k + 1) * p_phi], rcond) for k in range(m)]

    def residual(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Largest entry of ``A G - Phi B^T - (Y - X)`` over the causal (solved) entries, relative."""
        r = self.a @ self.g - self.phi @ self.b.mT - (y - x)
        return float(r.abs().max()) / max(float((y - x).abs().max()), float(self.a.abs().max()), 1e-300)

    def tangent(self, dx, dy, dphi, dg) -> tuple[torch.Tensor, torch.Tensor]:
        """First-order ``(dA, dB)`` for tangents batched over a leading direction axis ``c``.

        dx, dy: (c, n_phi, n_g); dphi: (c, n_phi, n_phi) or None; dg: (c, n_g, n_g) or None.
        Returns dA (c, n_phi, n_g) strictly causal and dB (c, n_g, n_phi) causal.

        The linearised identity is ``dA G - Phi dB^T = R``, ``R = dE + dPhi B^T - A dG``. ``R``
        does not depend on the unknowns, so it is formed once by two batched products; on the
        entries the march uses, ``dPhi B^T`` and ``A dG`` only involve past times (``B`` causal,
        ``A`` strictly causal), so the full products equal the truncated ones. The march then
        needs two small products per row block for each unknown.
        """
        rhs = self.rhs(dx, dy, dphi, dg)
        c = rhs.shape[0]
        da = torch.zeros(c, *self.a.shape, dtype=rhs.dtype, device=rhs.device)
        dbt = torch.zeros(c, *self.b.mT.shape, dtype=rhs.dtype, device=rhs.device)  # dB^T
        for k in range(self.m):
            self.row_a(k, rhs, da, dbt)
            self.row_b(k, rhs, da, dbt)
        return da, dbt.mT

    def rhs(self, dx, dy, dphi, dg) -> torch.Tensor:
        """``R = dY - dX + dPhi B^T - A dG`` (c, n_phi, n_g); dphi, dg may be None (zero)."""
        return self.rhs_block(slice(None), slice(None), dx, dy, dphi, dg)

    def rhs_block(self, rows: slice, cols: slice, dx, dy, dphi, dg) -> torch.Tensor:
        """``R[:, rows, cols]`` (c, rows, cols) of :meth:`rhs` without forming the rest (what a
        march over time needs at one step); dphi, dg may be None (zero)."""
        out = dy[:, rows, cols] - dx[:, rows, cols]
        if dphi is not None:
            out = out + dphi[:, rows, :] @ self.b.mT[:, cols]
        if dg is not None:
            out = out - self.a[rows, :] @ dg[:, :, cols]
        return out

    def row_a(self, k: int, rhs: torch.Tensor, da: torch.Tensor, dbt: torch.Tensor) -> None:
        """Row block ``k`` of ``dA`` in place: ``(R + Phi dB^T)[k, <k] G_{<k}^+``; needs ``R`` at
        ``(k, <k)`` and the columns ``< k`` of ``dB^T``."""
        if k:
            p, q = self.p, self.q
            rows, past = slice(k * p, (k + 1) * p), slice(0, k * q)
            da[:, rows, past] = (rhs[:, rows, past] + self.phi[rows, :] @ dbt[:, :, past]) @ self.g_pinv[k]

    def row_b(self, k: int, rhs: torch.Tensor, da: torch.Tensor, dbt: torch.Tensor) -> None:
        """Column block ``k`` of ``dB^T`` in place: ``Phi_{<=k}^+ (dA G - R)[<=k, k]``; needs ``R``
        at ``(<=k, k)`` and the rows ``<= k`` of ``dA``."""
        p, q = self.p, self.q
        rk, ck = slice(0, (k + 1) * p), slice(k * q, (k + 1) * q)
        dbt[:, rk, ck] = self.phi_pinv[k] @ (da[:, rk, :] @ self.g[:, ck] - rhs[:, rk, ck])
