"""Pathwise response Jacobians exploiting causality: blocked triangular products and solves.

The per-sample Jacobians of the causal field map of ``theory.montecarlo.fields`` (docs/theory.md
section 2, "pathwise derivatives"; the tests keep the dense ``n x n`` route as a reference),
with ``a = phi'(h)``, ``b = phi''(h) z``, ``M = diag(b) + diag(a) D diag(a)`` and the unit
lower triangular ``L = I - C M``::

    X = dh/dr = L^{-1} C diag(a)        A = < diag(a) X >
    B = dg/du = M L^{-1}

Every factor is block lower triangular in time (``C`` strictly, ``D`` and ``M`` with dense
equal-time blocks), so every product and solve has a block-triangular result. The dense version
spends ``2 n^3`` flops on ``C diag(a) D`` and ``n^3`` on each of the two solves; here the
matrices are cut into column (or row) blocks of whole time steps and each block only touches the
part of the matrix that can be non-zero:

    (C diag(a) D)[J0:, J] = (C diag(a))[J0:, J0:] @ D[J0:, J]          ~ n^3 / 3 multiply-adds
    X[J0:, J]             = L[J0:, J0:]^{-1} (C diag(a))[J0:, J]        ~ n^3 / 3
    B[I, :I1]             = M[I, :I1] L[:I1, :I1]^{-1}                  ~ n^3 / 3

about 3x fewer flops than the dense route, in a handful of large BLAS / LAPACK calls per block.
"""

from __future__ import annotations

import math

import torch

from ..activations import Activation

#: Target rows per block (a block is a whole number of time steps), balancing the flops wasted
#: on the zero part of a block against per-call overhead. Measured on 2 CPU cores (P_all = 12,
#: 32 samples): at T = 20 (4 blocks) 0.054 s against 0.082 s with a fixed 10 blocks; at T = 100
#: (17 blocks) any choice between 64 and 128 rows or 10 blocks was within the machine's +-20 %
#: timing noise.
BLOCK_ROWS = 64


def _block_edges(n: int, n_points: int, blocks: int | None) -> list[int]:
    t1 = n // n_points
    per = max(1, math.ceil(BLOCK_ROWS / n_points)) if blocks is None else max(1, math.ceil(t1 / blocks))
    edges = list(range(0, t1, per)) + [t1]
    return [e * n_points for e in edges]


def causal_jacobians(h: torch.Tensor, z: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
                     act: Activation, n_points: int, *, want_a: bool = True,
                     want_b: bool = True, want_x: bool = False, chunk: int = 8,
                     u: torch.Tensor | None = None, r: torch.Tensor | None = None,
                     blocks: int | None = None, a_cv: torch.Tensor | None = None,
                     e_aa: torch.Tensor | None = None):
    """Sample means ``(A, B[, X])`` (each (n, n) or None) of the exact per-sample Jacobians.

    h, z: (S_r, n) fields of the samples to differentiate; c, d: (n, n) causal couplings
    (``theory.montecarlo.fields.coupling``); ``n_points`` = P_all (the time-block size). With the
    sources ``u``, ``r`` (S_r, n), the equal-time diagonal of ``B`` gets the zero-mean control
    variate ``diag(phi''(u) r)`` (it has mean exactly 0: ``u`` and ``r`` are independent).
    Results agree with the dense route to round-off.

    Control variate of the leading (first-order) terms: with control fields ``a_cv`` (S_r, n),
    functions of the sources only, whose ``E[a_cv a_cv^T] = e_aa`` (n, n) is known exactly
    (e.g. ``phi'`` of the linearised Gaussian field, ``theory.montecarlo.control``), the per-sample
    ``diag(a_cv) C diag(a_cv)`` (for ``A``) and ``diag(a_cv) D diag(a_cv)`` (for ``B``) are
    subtracted and their exact means ``C o e_aa``, ``D o e_aa`` added back. These mirror the
    first terms ``diag(a) C diag(a)`` and ``diag(a) D diag(a)`` of the Neumann series of ``A``
    and ``B``, which carry most of the per-sample noise.
    """
    s_count, n = h.shape
    kw = dict(dtype=h.dtype, device=h.device)
    edges = _block_edges(n, n_points, blocks)
    pairs = list(zip(edges[:-1], edges[1:]))
    acc_a = torch.zeros(n, n, **kw) if want_a else None
    acc_b = torch.zeros(n, n, **kw) if want_b else None
    acc_x = torch.zeros(n, n, **kw) if want_x else None
    need_x = want_a or want_x
    width = min(chunk, s_count)
    # work buffers, reused across chunks; only lower blocks are ever written or read
    lbuf = torch.empty(width, n, n, **kw)
    xbuf = torch.empty(width, n, n, **kw) if (need_x or want_b) else None
    for start in range(0, s_count, chunk):
        hs, zs = h[start : start + chunk], z[start : start + chunk]
        m_ = hs.shape[0]
        lmat, x = lbuf[:m_], xbuf[:m_]
        a = act.dphi(hs)
        b = act.ddphi(hs) * zs
        # L = I - C diag(b) - C (diag(a) D) diag(a), block column by block column; the product
        # for all samples of the chunk is ONE matrix product with the shared C
        for j0, j1 in pairs:
            w = j1 - j0
            ad = a[:, j0:, None] * d[None, j0:, j0:j1]  # (m, n - j0, w)
            prod = c[j0:, j0:] @ ad.permute(1, 0, 2).reshape(n - j0, m_ * w)
            prod = prod.reshape(n - j0, m_, w).permute(1, 0, 2)
            lmat[:, j0:, j0:j1] = -(prod * a[:, None, j0:j1] + c[None, j0:, j0:j1] * b[:, None, j0:j1])
        for j0, j1 in pairs:
            lmat[:, j0:j1, j0:j1].diagonal(dim1=1, dim2=2).add_(1.0)
        if need_x:
            # forward block substitution, block by block of the (lower) result:
            # X[I, J] = L[I,I]^{-1} (C[I, J] diag(a_J) - L[I, J0:I0] X[J0:I0, J])
            for bi, (i0, i1) in enumerate(pairs):
                lii = lmat[:, i0:i1, i0:i1]
                for j0, j1 in pairs[: bi + 1]:
                    rhs = c[None, i0:i1, j0:j1] * a[:, None, j0:j1]
                    if j0 < i0:
                        rhs = rhs - lmat[:, i0:i1, j0:i0] @ x[:, j0:i0, j0:j1]
                    blk = torch.linalg.solve_triangular(lii, rhs, upper=False, unitriangular=True)
                    x[:, i0:i1, j0:j1] = blk
                    if want_a:
                        acc_a[i0:i1, j0:j1] += (a[:, i0:i1, None] * blk).sum(0)
                    if want_x:
                        acc_x[i0:i1, j0:j1] += blk.sum(0)
        if want_b:
            # backward block substitution on B L = M, block by block of the (lower) result:
            # B[K, J] = (M[K, J] - B[K, J1:K1] L[J1:K1, J]) L[J,J]^{-1}
            bm = x  # X is no longer needed: reuse its buffer
            for bj in range(len(pairs) - 1, -1, -1):
                j0, j1 = pairs[bj]
                ljj = lmat[:, j0:j1, j0:j1]
                # M[J0:, J] = diag(b) + a D a on the rows that can be non-zero
                mcol = a[:, j0:, None] * d[None, j0:, j0:j1] * a[:, None, j0:j1]
                mcol[:, : j1 - j0].diagonal(dim1=1, dim2=2).add_(b[:, j0:j1])
                for k0, k1 in pairs[bj:]:
                    rhs = mcol[:, k0 - j0 : k1 - j0]
                    if k1 > j1:
                        rhs = rhs - bm[:, k0:k1, j1:k1] @ lmat[:, j1:k1, j0:j1]
                    blk = torch.linalg.solve_triangular(ljj, rhs, upper=False, left=False,
                                                        unitriangular=True)
                    bm[:, k0:k1, j0:j1] = blk
                    acc_b[k0:k1, j0:j1] += blk.sum(0)
            if u is not None:
                cv = (act.ddphi(u[start : start + chunk]) * r[start : start + chunk]).sum(0)
                acc_b -= torch.diag(cv)
    if a_cv is not None:
        corr = e_aa - a_cv.T @ a_cv / a_cv.shape[0]
        if want_a:
            acc_a += s_count * (c * corr)
        if want_b:
            acc_b += s_count * (d * corr)
    outs = []
    for acc in (acc_a, acc_b):
        outs.append(acc / s_count if acc is not None else None)
    if want_x:
        outs.append(acc_x / s_count)
    return tuple(outs)


def split_half_jacobians(h, z, c, d, act, n_points, *, u=None, r=None, a_cv=None, e_aa=None,
                         want_a=True, want_b=True, want_x=True, weight=None):
    """:func:`causal_jacobians` on the two halves of the samples: ``(A, B, X, se_a, se_b)`` with
    the full-sample means and the split-half standard errors (absolute Frobenius) of ``A``, ``B``
    (``se = |J_1 - J_2| / sqrt(1/n_1 + 1/n_2) / sqrt(n)``; inf with a single sample), over the
    entries where ``weight`` (n, n) is 1 when given."""
    s = h.shape[0]
    half = s // 2
    sl = lambda t, a, b: None if t is None else t[a:b]  # noqa: E731
    parts = []
    for a0, a1 in ((0, half), (half, s)) if half else ((0, s),):
        parts.append(causal_jacobians(h[a0:a1], z[a0:a1], c, d, act, n_points, want_a=want_a,
                                      want_b=want_b, want_x=want_x, u=sl(u, a0, a1),
                                      r=sl(r, a0, a1), a_cv=sl(a_cv, a0, a1), e_aa=e_aa))
    if not half:
        ja, jb, *jx = parts[0]
        return ja, jb, (jx[0] if jx else None), math.inf, math.inf
    w1, w2 = half / s, (s - half) / s
    mean = [None if p1 is None else w1 * p1 + w2 * p2 for p1, p2 in zip(*parts)]
    scale = 1.0 / math.sqrt((1.0 / half + 1.0 / (s - half)) * s)
    ses = [math.inf if p1 is None else float(torch.linalg.matrix_norm(
        (p1 - p2) if weight is None else (p1 - p2) * weight)) * scale
           for p1, p2 in zip(parts[0][:2], parts[1][:2])]
    return mean[0], mean[1], (mean[2] if want_x else None), ses[0], ses[1]
