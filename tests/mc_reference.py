"""Dense references for the Monte Carlo solver's tests (not part of the package: the solver
uses the blocked causal route of ``theory.montecarlo.jacobians``).

``pathwise_jacobians``: the per-sample Jacobians of the causal field map as dense ``n x n``
triangular solves (docs/theory.md section 2, "pathwise derivatives"), with ``a = phi'(h)``,
``b = phi''(h) z`` and ``M = diag(b) + diag(a) D diag(a)``::

    dh/dr = (I - C M)^{-1} C diag(a)   ->  A^l     = < diag(a) dh/dr >
    dg/du = M (I - C M)^{-1}           ->  B^{l-1} = < dg/du >
"""

from __future__ import annotations

import torch

from theory import Activation


def pathwise_jacobians(h: torch.Tensor, z: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
                       act: Activation, *, want_a: bool, want_b: bool, want_x: bool = False,
                       chunk: int = 8,
                       u: torch.Tensor | None = None, r: torch.Tensor | None = None):
    """Sample means of the exact per-sample Jacobians (docs/theory.md section 2, pathwise).

    h, z: (S_r, n) fields of the samples to differentiate. Returns ``(A, B)`` (each (n, n) or
    None): ``A = < d phi(h) / d r >`` (strictly causal) and ``B = < d g / d u >`` (causal),
    and with ``want_x`` a third, ``X = < d h / d r >`` (for the control variates),
    with ``[row, column] = [(k, mu), (s, nu)]`` in the flattened index. Cost per sample: one
    ``n x n x n`` product and one or two triangular solves, batched over ``chunk`` samples.

    With the sources ``u``, ``r`` (S_r, n) of the same samples, the equal-time diagonal of ``B``
    gets a control variate: ``diag(phi''(u) r)`` has mean exactly 0 (u, r independent) and
    carries most of the per-sample noise of ``diag(b)`` at small and moderate gamma0.
    """
    s_count, n = h.shape
    acc_a = torch.zeros(n, n, dtype=h.dtype, device=h.device) if want_a else None
    acc_b = torch.zeros(n, n, dtype=h.dtype, device=h.device) if want_b else None
    acc_x = torch.zeros(n, n, dtype=h.dtype, device=h.device) if want_x else None
    eye = torch.eye(n, dtype=h.dtype, device=h.device)
    for start in range(0, s_count, chunk):
        hs, zs = h[start : start + chunk], z[start : start + chunk]
        a = act.dphi(hs)
        b = act.ddphi(hs) * zs
        ca = c[None] * a[:, None, :]  # C diag(a)
        da = d[None] * a[:, None, :]  # D diag(a)
        cm = c[None] * b[:, None, :] + (ca @ d) * a[:, None, :]  # C M
        lmat = eye - cm  # unit lower triangular
        if want_a or want_x:
            x = torch.linalg.solve_triangular(lmat, ca, upper=False, unitriangular=True)
            if want_a:
                acc_a += (a[:, :, None] * x).sum(0)
            if want_x:
                acc_x += x.sum(0)
        if want_b:
            m = torch.diag_embed(b) + a[:, :, None] * da  # M = diag(b) + diag(a) D diag(a)
            # (M (I - CM)^{-1})^T = (I - CM)^{-T} M^T
            y = torch.linalg.solve_triangular(lmat.transpose(1, 2), m.transpose(1, 2),
                                              upper=True, unitriangular=True)
            acc_b += y.transpose(1, 2).sum(0)
            if u is not None:
                cv = (act.ddphi(u[start : start + chunk]) * r[start : start + chunk]).sum(0)
                acc_b -= torch.diag(cv)
    if want_a:
        acc_a /= s_count
    if want_b:
        acc_b /= s_count
    if want_x:
        acc_x /= s_count
        return acc_a, acc_b, acc_x
    return acc_a, acc_b
