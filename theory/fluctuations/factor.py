"""Factors ``F F^T = Sigma`` of a source kernel and their tangents (``docs/finite_width.md`` s. 7).

A population draws its sources as ``u = F zeta`` with fixed standard normals ``zeta`` (common
random numbers), so a change ``dSigma`` of the kernel moves every site by ``dF zeta``. Two factors:

``Root``    the symmetric square root, ``dF`` by Daleckii-Krein; it mixes all times.
``Causal``  block lower triangular in time (``u(k)`` uses the normals of times ``<= k``), built
            by conditioning time block by time block:

                u(k) = R_k u(<k) + S_k^(1/2) zeta(k),   R_k = Sigma(k, <k) Sigma(<k, <k)^+,
                S_k = Sigma(k, k) - R_k Sigma(<k, k),

            so row block ``k`` of ``dF`` depends on ``dSigma`` at times ``<= k`` only, which is
            what a solve marched in time needs (``theory.fluctuations.march``). The past blocks
            of a kernel are often numerically singular; they are inverted on their range
            (``pinv_psd``) and the regression's tangent is projected on it, as in the response
            identity (``theory.fluctuations.identity``).

Both give ``F F^T = Sigma`` on the kept range (the causal one up to the directions that its
pseudo-inverses drop, a relative ``rcond``), and the same first-order change of the source
distribution; a population built with either is a valid estimate of the DMFT map.
"""

from __future__ import annotations

import torch

from .identity import pinv_psd

#: Eigenvalues below this fraction of the largest are dropped from the square roots.
CLIP = 1e-12


def _root(cov: torch.Tensor, scale: float | None = None):
    """Clipped symmetric root of a PSD matrix: ``(vec, s, weight)`` with the root
    ``vec diag(s) vec^T`` and the Daleckii-Krein weights ``1 / (s_i + s_j)`` (0 where both vanish).
    Eigenvalues below ``CLIP * scale`` (default: the largest eigenvalue) are dropped."""
    lam, vec = torch.linalg.eigh(0.5 * (cov + cov.mT))
    cut = CLIP * (lam[-1].clamp(min=0.0) if scale is None else scale)
    s = torch.where(lam > cut, lam.clamp(min=0.0).sqrt(), torch.zeros_like(lam))
    tot = s[:, None] + s[None, :]
    weight = torch.where(tot > 0, 1.0 / torch.where(tot > 0, tot, torch.ones_like(tot)), torch.zeros_like(tot))
    return vec, s, weight


def _root_tangent(vec: torch.Tensor, weight: torch.Tensor, dcov: torch.Tensor) -> torch.Tensor:
    """Daleckii-Krein derivative of the root ``vec diag(s) vec^T`` along ``dcov`` (c, n, n)."""
    return vec @ (weight * (vec.T @ dcov @ vec)) @ vec.T


class Root:
    """Symmetric square root of a PSD kernel (n, n) and its Frechet derivative (Daleckii-Krein)."""

    def __init__(self, cov: torch.Tensor):
        self.vec, s, self.weight = _root(cov)
        self.factor = (self.vec * s) @ self.vec.T

    def tangent(self, dcov: torch.Tensor) -> torch.Tensor:
        """``dF`` (c, n, n) for ``dcov`` (c, n, n)."""
        return _root_tangent(self.vec, self.weight, dcov)


class Causal:
    """Block lower-triangular factor of a PSD kernel ``cov`` (n, n) with ``m`` time blocks of ``p``.

    ``rcond``: relative eigenvalue cut of the pseudo-inverses of the past blocks.
    """

    def __init__(self, cov: torch.Tensor, *, m: int, p: int, rcond: float):
        self.m, self.p = m, p
        cov = 0.5 * (cov + cov.T)
        self.cov = cov
        scale = float(torch.linalg.eigvalsh(cov)[-1].clamp(min=0.0))
        f = torch.zeros_like(cov)
        self.reg, self.pinv, self.roots = [None] * m, [None] * m, [None] * m
        for k in range(m):
            b, past = slice(k * p, (k + 1) * p), slice(0, k * p)
            s_k = cov[b, b]
            if k:
                self.pinv[k] = pinv_psd(cov[past, past], rcond)
                self.reg[k] = cov[b, past] @ self.pinv[k]  # R_k (p, k p)
                s_k = s_k - self.reg[k] @ cov[past, b]
                f[b, past] = self.reg[k] @ f[past, past]
            self.roots[k] = _root(s_k, scale)
            vec, s, _ = self.roots[k]
            f[b, b] = (vec * s) @ vec.T
        self.factor = f

    def tangent_rows(self, k: int, dcov: torch.Tensor, df: torch.Tensor) -> None:
        """Fill row block ``k`` of ``df`` (c, n, n) in place from ``dcov`` (c, n, n) at times
        ``<= k`` and the rows ``< k`` of ``df`` already filled."""
        p = self.p
        b, past = slice(k * p, (k + 1) * p), slice(0, k * p)
        ds = dcov[:, b, b]
        if k:
            reg, pinv = self.reg[k], self.pinv[k]
            dreg = (dcov[:, b, past] - reg @ dcov[:, past, past]) @ pinv  # projected on the range
            ds = ds - dreg @ self.cov[past, b] - reg @ dcov[:, past, b]
            df[:, b, past] = dreg @ self.factor[past, past] + reg @ df[:, past, past]
        vec, _, weight = self.roots[k]
        df[:, b, b] = _root_tangent(vec, weight, ds)

    def tangent(self, dcov: torch.Tensor) -> torch.Tensor:
        """``dF`` (c, n, n) for ``dcov`` (c, n, n), row block by row block."""
        df = torch.zeros_like(dcov)
        for k in range(self.m):
            self.tangent_rows(k, dcov, df)
        return df


class CausalRange(Causal):
    """The factor of :class:`Causal` built by regressing on the past *normals*: for exact kernels.

    Row block ``k`` is ``F(k, <k) = Sigma(k, <k) F_{<k}^{+T}`` with ``F_{<k}`` the factor's past
    rows, so the pseudo-inverse is that of the factor (condition ``1 / sigma``) instead of the
    kernel's (``1 / lambda = 1 / sigma^2``); its tangent solves ``dF(k, <k) F_{<k}^T +
    F(k, <k) dF_{<k}^T = dSigma(k, <k)`` on the same range. The null directions of ``F_{<k}`` are
    those of the blocks' roots, whose normals no field uses. ``rcond`` cuts singular values of
    ``F_{<k}`` relative to the largest (the default for exact kernels, 1e-7, keeps the
    directions of kernel eigenvalues down to ~1e-14; the kernel pseudo-inverse of
    :class:`Causal` goes unstable below a 1e-10 cut, measured on deep linear networks).
    """

    def __init__(self, cov: torch.Tensor, *, m: int, p: int, rcond: float = 1e-7):
        self.m, self.p = m, p
        cov = 0.5 * (cov + cov.T)
        self.cov = cov
        scale = float(torch.linalg.eigvalsh(cov)[-1].clamp(min=0.0))
        f = torch.zeros_like(cov)
        self.fpinv, self.roots = [None] * m, [None] * m
        for k in range(m):
            b, past = slice(k * p, (k + 1) * p), slice(0, k * p)
            s_k = cov[b, b]
            if k:
                self.fpinv[k] = _pinv(f[past, past], rcond)
                f[b, past] = cov[b, past] @ self.fpinv[k].T
                s_k = s_k - f[b, past] @ f[b, past].T
            self.roots[k] = _root(s_k, scale)
            vec, s, _ = self.roots[k]
            f[b, b] = (vec * s) @ vec.T
        self.factor = f

    def tangent_rows(self, k: int, dcov: torch.Tensor, df: torch.Tensor) -> None:
        p, f = self.p, self.factor
        b, past = slice(k * p, (k + 1) * p), slice(0, k * p)
        ds = dcov[:, b, b]
        if k:
            fk = f[b, past]
            dfk = (dcov[:, b, past] - fk @ df[:, past, past].mT) @ self.fpinv[k].T
            df[:, b, past] = dfk
            prod = dfk @ fk.T
            ds = ds - prod - prod.mT
        vec, _, weight = self.roots[k]
        df[:, b, b] = _root_tangent(vec, weight, ds)


def _pinv(a: torch.Tensor, rcond: float) -> torch.Tensor:
    """Pseudo-inverse of a square matrix by SVD, singular values below ``rcond`` times the
    largest dropped."""
    u, s, vh = torch.linalg.svd(a)
    keep = s > rcond * s[0].clamp(min=0.0) if s.numel() else s > 0
    inv = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
    return (vh.mT * inv) @ u.mT
